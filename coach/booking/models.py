"""Offerings, availability, sessions and bookings.

A :class:`CoachingSession` is a block of a coach's time; a :class:`Booking` is
one athlete's place in it (one for a one-on-one offering, up to the capacity for
a group). ``live_seats`` counts the bookings that hold the time (requested,
confirmed, active); while it is above zero the session's range, widened by its
buffers, takes part in the exclusion constraint that keeps a coach from being
booked twice (see migration 0004). The constraints live in the migration; these
models map the columns.
"""
from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Boolean, Date, DateTime, Integer, SmallInteger, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from coach import money
from coach.dbutil import TenantScoped, tenant_fk, tenant_relationship
from coach.extensions import db
from coach.orgs.models import Membership

# Statuses in which a booking holds the coach's time. ``held``: kept for a checkout that is still open
# (see coach.payments); it expires like a request when the checkout is not paid in time.
LIVE_STATUSES = ("held", "requested", "confirmed", "active")
STATUSES = LIVE_STATUSES + ("declined", "expired", "cancelled", "ended", "no_show")
STATUS_LABELS = {
    "held": "Awaiting payment",
    "requested": "Requested", "confirmed": "Confirmed", "active": "In progress", "declined": "Declined",
    "expired": "Expired", "cancelled": "Cancelled", "ended": "Ended", "no_show": "No-show",
}


class CoachCalendar(TenantScoped, db.Model):
    """A coach's booking settings: the time zone their availability is stated in."""

    __tablename__ = "coach_calendars"
    __table_args__ = (tenant_fk("coach_membership_id", "memberships", "fk_coach_calendars_coach"),)

    coach_membership_id: Mapped[uuid.UUID] = mapped_column()
    timezone: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Offering(TenantScoped, db.Model):
    """A kind of session a coach offers: what, how long, how much, and the booking rules."""

    __tablename__ = "offerings"
    __table_args__ = (tenant_fk("coach_membership_id", "memberships", "fk_offerings_coach"),)

    coach_membership_id: Mapped[uuid.UUID] = mapped_column()
    title: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    duration_minutes: Mapped[int] = mapped_column(SmallInteger)
    price_minor: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    location: Mapped[str] = mapped_column(String(200), default="")
    meeting_url: Mapped[str] = mapped_column(String(500), default="")
    capacity: Mapped[int] = mapped_column(SmallInteger, default=1)
    auto_confirm: Mapped[bool] = mapped_column(Boolean, default=False)
    buffer_before_minutes: Mapped[int] = mapped_column(SmallInteger, default=0)
    buffer_after_minutes: Mapped[int] = mapped_column(SmallInteger, default=0)
    min_notice_minutes: Mapped[int] = mapped_column(Integer, default=120)
    max_per_day: Mapped[int | None] = mapped_column(SmallInteger)
    horizon_days: Mapped[int] = mapped_column(SmallInteger, default=60)
    cancellation_window_hours: Mapped[int] = mapped_column(SmallInteger, default=24)
    # What cancelling inside the window (or not showing up) costs: "forfeit", "fee" or "refund".
    late_cancel_policy: Mapped[str] = mapped_column(String(8), default="forfeit")
    late_cancel_fee_percent: Mapped[int] = mapped_column(SmallInteger, default=50)
    # A full group session's waitlist: "auto" gives a freed seat to the first waiting, "offer" offers it to them
    # for waitlist_offer_minutes, "off" keeps no list.
    waitlist_mode: Mapped[str] = mapped_column(String(8), default="auto")
    waitlist_offer_minutes: Mapped[int] = mapped_column(SmallInteger, default=120)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    coach: Mapped[Membership] = tenant_relationship("Offering", "coach_membership_id", "Membership")

    @property
    def price_label(self) -> str:
        if not self.price_minor:
            return "Free"
        return money.format(self.price_minor, self.currency)


class AvailabilityRule(TenantScoped, db.Model):
    """Weekly hours: on ``weekday`` (Monday = 0) from ``start_minute`` to ``end_minute``, coach's wall clock."""

    __tablename__ = "availability_rules"
    __table_args__ = (tenant_fk("coach_membership_id", "memberships", "fk_availability_rules_coach"),)

    coach_membership_id: Mapped[uuid.UUID] = mapped_column()
    weekday: Mapped[int] = mapped_column(SmallInteger)
    start_minute: Mapped[int] = mapped_column(SmallInteger)
    end_minute: Mapped[int] = mapped_column(SmallInteger)


class AvailabilityOverride(TenantScoped, db.Model):
    """One date's hours instead of the weekly rules; a row with no minutes closes the day."""

    __tablename__ = "availability_overrides"
    __table_args__ = (tenant_fk("coach_membership_id", "memberships", "fk_availability_overrides_coach"),)

    coach_membership_id: Mapped[uuid.UUID] = mapped_column()
    on_date: Mapped[date] = mapped_column(Date)
    start_minute: Mapped[int | None] = mapped_column(SmallInteger)
    end_minute: Mapped[int | None] = mapped_column(SmallInteger)


class TimeOff(TenantScoped, db.Model):
    """A range of instants in which the coach takes no sessions."""

    __tablename__ = "time_off"
    __table_args__ = (tenant_fk("coach_membership_id", "memberships", "fk_time_off_coach"),)

    coach_membership_id: Mapped[uuid.UUID] = mapped_column()
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(String(200), default="")


class CoachingSession(TenantScoped, db.Model):
    """A held block of a coach's time for one offering; bookings are the places in it."""

    __tablename__ = "coaching_sessions"
    __table_args__ = (
        tenant_fk("coach_membership_id", "memberships", "fk_coaching_sessions_coach"),
        tenant_fk("offering_id", "offerings", "fk_coaching_sessions_offering"),
    )

    coach_membership_id: Mapped[uuid.UUID] = mapped_column()
    offering_id: Mapped[uuid.UUID] = mapped_column()
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    busy_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    busy_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    capacity: Mapped[int] = mapped_column(SmallInteger)
    live_seats: Mapped[int] = mapped_column(SmallInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Booking(TenantScoped, db.Model):
    """One athlete's place in a session, and where it is in its lifecycle."""

    __tablename__ = "bookings"
    __table_args__ = (
        tenant_fk("session_id", "coaching_sessions", "fk_bookings_session"),
        tenant_fk("offering_id", "offerings", "fk_bookings_offering"),
        tenant_fk("coach_membership_id", "memberships", "fk_bookings_coach"),
        tenant_fk("athlete_membership_id", "memberships", "fk_bookings_athlete"),
    )

    session_id: Mapped[uuid.UUID] = mapped_column()
    offering_id: Mapped[uuid.UUID] = mapped_column()
    coach_membership_id: Mapped[uuid.UUID] = mapped_column()
    athlete_membership_id: Mapped[uuid.UUID] = mapped_column()
    booked_by_membership_id: Mapped[uuid.UUID | None] = mapped_column()
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    late_cancellation: Mapped[bool] = mapped_column(Boolean, default=False)
    cancelled_by_membership_id: Mapped[uuid.UUID | None] = mapped_column()
    rescheduled_from_id: Mapped[uuid.UUID | None] = mapped_column()
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    reminder_24h_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reminder_1h_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The calendar identity of the appointment: a rescheduled booking inherits the UID of the one it replaced
    # (NULL: "booking-<id>@coach"), and SEQUENCE rises with every change, so invitations replace each other.
    calendar_uid: Mapped[str | None] = mapped_column(String(200))
    calendar_sequence: Mapped[int] = mapped_column(Integer, default=0)
    series_id: Mapped[uuid.UUID | None] = mapped_column()
    series_index: Mapped[int | None] = mapped_column(SmallInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    offering: Mapped[Offering] = tenant_relationship("Booking", "offering_id", "Offering")
    coach: Mapped[Membership] = tenant_relationship("Booking", "coach_membership_id", "Membership")
    athlete: Mapped[Membership] = tenant_relationship("Booking", "athlete_membership_id", "Membership")

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    @property
    def uid(self) -> str:
        """The calendar UID (RFC 5545) of this appointment, the same across reschedules."""
        return self.calendar_uid or f"booking-{self.id}@coach"


class CalendarFeed(TenantScoped, db.Model):
    """A member's secret ICS subscription address (only a hash of the secret is stored)."""

    __tablename__ = "calendar_feeds"
    __table_args__ = (tenant_fk("membership_id", "memberships", "fk_calendar_feeds_membership"),)

    membership_id: Mapped[uuid.UUID] = mapped_column()
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ExternalBusy(TenantScoped, db.Model):
    """One busy occurrence read from a coach's own calendar (see :mod:`coach.calsync`): it blocks slots like
    time off. Only the times are kept, never what the appointment is."""

    __tablename__ = "external_busy"
    __table_args__ = (
        tenant_fk("source_id", "calendar_sources", "fk_external_busy_source"),
        tenant_fk("coach_membership_id", "memberships", "fk_external_busy_coach"),
    )

    source_id: Mapped[uuid.UUID] = mapped_column()
    coach_membership_id: Mapped[uuid.UUID] = mapped_column()
    href: Mapped[str] = mapped_column(String(1000))
    etag: Mapped[str] = mapped_column(String(500), default="")
    uid: Mapped[str] = mapped_column(String(500), default="")
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


SERIES_STATUSES = ("active", "cancelled", "ended")


class BookingSeries(TenantScoped, db.Model):
    """A recurring series: every ``interval_weeks`` weeks at the same wall-clock time in ``timezone``,
    ``occurrences`` times (or until ``until_date``); each occurrence is a :class:`Booking` with ``series_id``."""

    __tablename__ = "booking_series"
    __table_args__ = (
        tenant_fk("offering_id", "offerings", "fk_booking_series_offering"),
        tenant_fk("coach_membership_id", "memberships", "fk_booking_series_coach"),
        tenant_fk("athlete_membership_id", "memberships", "fk_booking_series_athlete"),
    )

    offering_id: Mapped[uuid.UUID] = mapped_column()
    coach_membership_id: Mapped[uuid.UUID] = mapped_column()
    athlete_membership_id: Mapped[uuid.UUID] = mapped_column()
    created_by_membership_id: Mapped[uuid.UUID | None] = mapped_column()
    interval_weeks: Mapped[int] = mapped_column(SmallInteger, default=1)
    occurrences: Mapped[int] = mapped_column(SmallInteger)
    until_date: Mapped[date | None] = mapped_column(Date)
    first_starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    timezone: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(12), default="active")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    offering: Mapped[Offering] = tenant_relationship("BookingSeries", "offering_id", "Offering")
    coach: Mapped[Membership] = tenant_relationship("BookingSeries", "coach_membership_id", "Membership")
    athlete: Mapped[Membership] = tenant_relationship("BookingSeries", "athlete_membership_id", "Membership")


WAITLIST_OPEN = ("waiting", "offered")


class WaitlistEntry(TenantScoped, db.Model):
    """An athlete's place in the line for a full group session."""

    __tablename__ = "waitlist_entries"
    __table_args__ = (
        tenant_fk("session_id", "coaching_sessions", "fk_waitlist_entries_session"),
        tenant_fk("offering_id", "offerings", "fk_waitlist_entries_offering"),
        tenant_fk("athlete_membership_id", "memberships", "fk_waitlist_entries_athlete"),
    )

    session_id: Mapped[uuid.UUID] = mapped_column()
    offering_id: Mapped[uuid.UUID] = mapped_column()
    athlete_membership_id: Mapped[uuid.UUID] = mapped_column()
    added_by_membership_id: Mapped[uuid.UUID | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(12), default="waiting")
    offered_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    booking_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    athlete: Mapped[Membership] = tenant_relationship("WaitlistEntry", "athlete_membership_id", "Membership")


MANAGE_ACTIONS = ("view", "cancel", "reschedule")


class BookingLink(TenantScoped, db.Model):
    """A link in a booking email that lets its reader view, cancel or reschedule that one booking without
    logging in (see :mod:`coach.booking.manage_links`); only the SHA-256 of its secret is stored."""

    __tablename__ = "booking_links"
    __table_args__ = (tenant_fk("booking_id", "bookings", "fk_booking_links_booking"),)

    booking_id: Mapped[uuid.UUID] = mapped_column()
    action: Mapped[str] = mapped_column(String(12))
    token_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
