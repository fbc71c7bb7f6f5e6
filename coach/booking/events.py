"""Outbox topics of the booking domain (see :mod:`coach.platform.events`).

A booking's status change emits the topic of the status it reached, with the payload
``BOOKING_CHANGE``; the reminders emit ``BOOKING_REMINDER``.
"""
from __future__ import annotations

from coach.platform.events import Topic

BOOKING_CHANGE = (
    "booking_id; from (the status before, null for a new booking); to (the status now); "
    "coach_membership_id; athlete_membership_id; actor_membership_id (null when the clock did it); "
    "starts_at, ends_at, expires_at (ISO 8601, UTC); reason (why it was cancelled: \"rescheduled\" when a new "
    "booking replaced it, else null); rescheduled_from_id (the booking this one replaced, or null); calendar_uid "
    "(the appointment's UID, the same across reschedules); calendar_sequence (its SEQUENCE after this change); "
    "series_batch (present and true when a recurring series' action made the change: the series' own topic below "
    "tells people once, so notifications skip it; every other consumer takes it as usual)"
)

BOOKING_HELD = Topic("booking.held", BOOKING_CHANGE)
BOOKING_REQUESTED = Topic("booking.requested", BOOKING_CHANGE)
BOOKING_CONFIRMED = Topic("booking.confirmed", BOOKING_CHANGE)
BOOKING_ACTIVE = Topic("booking.active", BOOKING_CHANGE)
BOOKING_DECLINED = Topic("booking.declined", BOOKING_CHANGE)
BOOKING_EXPIRED = Topic("booking.expired", BOOKING_CHANGE)
BOOKING_CANCELLED = Topic("booking.cancelled", BOOKING_CHANGE)
BOOKING_ENDED = Topic("booking.ended", BOOKING_CHANGE)
BOOKING_NO_SHOW = Topic("booking.no_show", BOOKING_CHANGE)
BOOKING_REMINDER = Topic("booking.reminder", "booking_id; which (the reminder: 24h or 1h); starts_at (ISO 8601)")
# A full group session's waitlist (see coach.booking.waitlist): a freed seat was booked for the first in line
# ("auto"), or offered to them until offered_until ("offer"; the seat is held by a "held" booking meanwhile).
WAITLIST_CHANGE = ("entry_id; session_id; offering_id; athlete_membership_id; booking_id; starts_at (ISO 8601, UTC); "
                   "offered_until (ISO 8601, UTC; null when booked)")
WAITLIST_BOOKED = Topic("booking.waitlist_booked", WAITLIST_CHANGE)
WAITLIST_OFFERED = Topic("booking.waitlist_offered", WAITLIST_CHANGE)

# A recurring series (see coach.booking.series): one event per action, emitted in the action's transaction next to
# the occurrences' own status events (those carry series_batch: true). Notifications tell each person once from it.
SERIES_CHANGE = ("series_id; action (booked | cancelled | moved); actor_membership_id; from_index (the first "
                 "occurrence changed); booking_ids (the bookings booked, cancelled, or moved to, in order); "
                 "calendar_sequences (each one's SEQUENCE after the change, in the same order); previous_ids (moved: "
                 "the bookings each replaced; else empty); skipped (booked: the planned starts not booked, ISO 8601 "
                 "UTC, with why: [[start, reason], ...]; else empty)")
SERIES_BOOKED = Topic("booking.series_booked", SERIES_CHANGE)
SERIES_CANCELLED = Topic("booking.series_cancelled", SERIES_CHANGE)
SERIES_MOVED = Topic("booking.series_moved", SERIES_CHANGE)
SERIES_TOPICS = {"booked": SERIES_BOOKED, "cancelled": SERIES_CANCELLED, "moved": SERIES_MOVED}

# The topic a booking's status change emits, by the status reached.
STATUS_TOPICS = {
    "held": BOOKING_HELD, "requested": BOOKING_REQUESTED, "confirmed": BOOKING_CONFIRMED, "active": BOOKING_ACTIVE,
    "declined": BOOKING_DECLINED, "expired": BOOKING_EXPIRED, "cancelled": BOOKING_CANCELLED,
    "ended": BOOKING_ENDED, "no_show": BOOKING_NO_SHOW,
}

# What a coach offers and when they are free changed (the public directory shows prices and the next free slot).
OFFERING_CHANGED = Topic("booking.offering_changed",
                         "offering_id; coach_membership_id: an offering was created, edited, archived or restored")
AVAILABILITY_CHANGED = Topic("booking.availability_changed",
                             "coach_membership_id: weekly hours, a date's hours, time off or the coach's zone changed")
