"""Booking's public face: offerings, availability, slots, and the one state machine every booking moves through.

Views, jobs, other domains and tests call ``service.x``; the code lives in the modules by concern:
:mod:`~coach.booking.access` (who may do what, loaders), :mod:`~coach.booking.availability` (the coach's
calendar, offerings, hours, slots), :mod:`~coach.booking.lifecycle` (requesting, rescheduling, the state
machine and its topics), :mod:`~coach.booking.sweeps` (what the clock moves), :mod:`~coach.booking.feeds`
(calendar feeds) and :mod:`~coach.booking.lists` (lists for pages). Services never commit.
"""
from __future__ import annotations

from coach.booking.access import (
    bookable_coaches,
    books_for_others,
    coaches,
    get_athlete,
    get_booking,
    get_coach,
    get_offering,
    manages_calendar,
    may_view,
    offerings_of,
)
from coach.booking.availability import (
    OFFERING_FIELDS,
    WEEKDAYS,
    add_rule,
    add_time_off,
    available_slots,
    check_time,
    clear_override,
    coach_timezone,
    delete_rule,
    delete_time_off,
    first_free_slot,
    minutes_label,
    save_offering,
    set_coach_timezone,
    set_offering_active,
    set_override,
    slot_rules,
    upcoming_overrides,
    upcoming_time_off,
    week_slots,
    week_window,
    weekly_rules,
    zone,
)
from coach.booking.errors import BookingError, SlotTaken
from coach.booking.feeds import feed_bookings, feed_owner, has_feed, regenerate_feed
from coach.booking.lifecycle import (
    NOTE_MAX,
    PAST,
    TRANSITIONS,
    actions_for,
    allowed_actions,
    is_late_cancellation,
    late_at,
    request_booking,
    reschedule_booking,
    transition,
)
from coach.booking.lists import SessionRow, bookings_for, pending_count, session_lists, session_row
from coach.booking.sweeps import REMINDERS, SweepResult, due_tenants, moments_for, run_due

__all__ = [
    # errors
    "BookingError", "SlotTaken",
    # access
    "bookable_coaches", "books_for_others", "coaches", "get_athlete", "get_booking", "get_coach", "get_offering",
    "manages_calendar", "may_view", "offerings_of",
    # availability
    "OFFERING_FIELDS", "WEEKDAYS", "add_rule", "add_time_off", "available_slots", "check_time", "clear_override",
    "coach_timezone", "delete_rule", "delete_time_off", "first_free_slot", "minutes_label", "save_offering",
    "set_coach_timezone", "set_offering_active", "set_override", "slot_rules", "upcoming_overrides",
    "upcoming_time_off", "week_slots", "week_window", "weekly_rules", "zone",
    # lifecycle
    "NOTE_MAX", "PAST", "TRANSITIONS", "actions_for", "allowed_actions", "is_late_cancellation", "late_at",
    "request_booking", "reschedule_booking", "transition",
    # sweeps
    "REMINDERS", "SweepResult", "due_tenants", "moments_for", "run_due",
    # feeds
    "feed_bookings", "feed_owner", "has_feed", "regenerate_feed",
    # lists
    "SessionRow", "bookings_for", "pending_count", "session_lists", "session_row",
]
