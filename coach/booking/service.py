"""Booking: offerings, availability, slots, and the one state machine every booking moves through.

Services never commit; the caller (a view or a job) commits once, so a change, its
audit event and its outbox event land together or not at all.

Lifecycle::

    requested ─┬─ confirm ──▶ confirmed ── start ──▶ active ── end ──▶ ended
               ├─ decline ──▶ declined       │                 │            │
               ├─ expire ───▶ expired        ├─ cancel ──▶ cancelled       │
               └─ cancel ───▶ cancelled      └───────── no_show ◀──────────┘

Every transition is a compare-and-swap on the status the caller saw: of a racing
accept and expire exactly one changes the row.
"""
from __future__ import annotations

import dataclasses
import hashlib
import secrets
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from coach.booking import slots as slotlib
from coach.booking.models import (
    LIVE_STATUSES,
    AvailabilityOverride,
    AvailabilityRule,
    Booking,
    CalendarFeed,
    CoachCalendar,
    CoachingSession,
    Offering,
    TimeOff,
)
from coach.dbutil import insert_or_raise
from coach.extensions import db
from coach.ids import parse_uuid as _uuid
from coach.orgs.models import Membership, Organization
from coach.platform import audit
from coach.platform.outbox import emit
from coach.timezones import is_valid_timezone
from coach.errors import DomainError
from coach.booking.events import BOOKING_REMINDER, STATUS_TOPICS

UTC = timezone.utc
NOTE_MAX = 2000
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# action → (statuses it may start from, status it leads to)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "confirm": (("requested",), "confirmed"),
    "decline": (("requested",), "declined"),
    "expire": (("requested",), "expired"),
    "cancel": (("requested", "confirmed"), "cancelled"),
    "start": (("confirmed",), "active"),
    "end": (("active",), "ended"),
    "no_show": (("confirmed", "active", "ended"), "no_show"),
}


PAST = {"confirm": "confirmed", "decline": "declined", "cancel": "cancelled", "no_show": "marked as a no-show",
        "expire": "expired", "start": "started", "end": "ended"}


class BookingError(DomainError):
    """A request that cannot be carried out; the message is safe to show. HTTP 422."""

    status = 422


class SlotTaken(BookingError):
    """The time was free a moment ago and is not any more. HTTP 409."""

    status = 409


def _now() -> datetime:
    return datetime.now(UTC)


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


# Two transactions inserting conflicting rows under an exclusion constraint at the same moment each
# wait for the other; PostgreSQL then aborts one with a deadlock (40P01) instead of 23P01. For the
# loser that means the same thing: someone else holds the time.
EXCLUDED = ("23P01", "40P01")


# --- who may do what ------------------------------------------------------------------------------

def manages_calendar(actor: Membership, coach: Membership) -> bool:
    """The coach themself, or an admin or scheduler of the organization."""
    return actor.id == coach.id or actor.role in ("admin", "scheduler")


def books_for_others(actor: Membership) -> bool:
    return actor.role in ("admin", "scheduler")


def may_view(actor: Membership, booking: Booking) -> bool:
    return actor.id in (booking.athlete_membership_id, booking.coach_membership_id) or books_for_others(actor)


# --- loaders ----------------------------------------------------------------------------------------

def coaches(org: Organization) -> list[Membership]:
    from coach.orgs.service import members_with_role

    return members_with_role(org, "coach", limit=500)


def get_coach(org: Organization, membership_id) -> Membership | None:
    mid = _uuid(membership_id)
    if mid is None:
        return None
    return db.session.scalar(select(Membership).where(
        Membership.tenant_id == org.id, Membership.id == mid, Membership.role == "coach"))


def get_athlete(org: Organization, membership_id) -> Membership | None:
    mid = _uuid(membership_id)
    if mid is None:
        return None
    return db.session.scalar(select(Membership).where(
        Membership.tenant_id == org.id, Membership.id == mid, Membership.role == "athlete"))


def get_offering(org: Organization, offering_id) -> Offering | None:
    oid = _uuid(offering_id)
    if oid is None:
        return None
    return db.session.scalar(select(Offering).where(Offering.tenant_id == org.id, Offering.id == oid))


def get_booking(org: Organization, booking_id) -> Booking | None:
    bid = _uuid(booking_id)
    if bid is None:
        return None
    return db.session.scalar(select(Booking).where(Booking.tenant_id == org.id, Booking.id == bid))


def offerings_of(coach: Membership, include_inactive: bool = False) -> list[Offering]:
    query = select(Offering).where(Offering.tenant_id == coach.tenant_id,
                                   Offering.coach_membership_id == coach.id)
    if not include_inactive:
        query = query.where(Offering.active.is_(True))
    return list(db.session.scalars(query.order_by(Offering.active.desc(), func.lower(Offering.title))))


def bookable_coaches(org: Organization) -> list[tuple[Membership, int]]:
    """Coaches with the number of active offerings each has, by name."""
    from coach.accounts.models import User

    counts = (select(Offering.coach_membership_id, func.count().label("n"))
              .where(Offering.tenant_id == org.id, Offering.active.is_(True))
              .group_by(Offering.coach_membership_id).subquery())
    rows = db.session.execute(
        select(Membership, func.coalesce(counts.c.n, 0)).join(Membership.user)
        .outerjoin(counts, counts.c.coach_membership_id == Membership.id)
        .where(Membership.tenant_id == org.id, Membership.role == "coach")
        .order_by(func.lower(User.display_name)))
    return [(m, n) for m, n in rows]


# --- coach calendar and time zone ---------------------------------------------------------------------

def coach_timezone(coach: Membership) -> str:
    """The zone the coach's availability is stated in (their own profile zone until they set one)."""
    tz = db.session.scalar(select(CoachCalendar.timezone).where(
        CoachCalendar.tenant_id == coach.tenant_id, CoachCalendar.coach_membership_id == coach.id))
    return tz or coach.user.timezone or "UTC"


def set_coach_timezone(coach: Membership, tz: str, actor: Membership) -> None:
    if not is_valid_timezone(tz):
        raise BookingError("Choose a time zone from the list.")
    calendar = db.session.scalar(select(CoachCalendar).where(
        CoachCalendar.tenant_id == coach.tenant_id, CoachCalendar.coach_membership_id == coach.id)
        .with_for_update())
    if calendar is None:
        calendar = CoachCalendar(tenant_id=coach.tenant_id, coach_membership_id=coach.id, timezone=tz)
        db.session.add(calendar)
    calendar.timezone = tz
    calendar.updated_at = _now()
    db.session.flush()
    audit.record("availability.timezone_set", actor=actor.user, target_type="membership", target_id=coach.id,
                 details={"timezone": tz})


# --- offerings ---------------------------------------------------------------------------------------

OFFERING_FIELDS = ("title", "description", "duration_minutes", "price_minor", "currency", "location",
                   "meeting_url", "capacity", "auto_confirm", "buffer_before_minutes", "buffer_after_minutes",
                   "min_notice_minutes", "max_per_day", "horizon_days", "cancellation_window_hours")


def save_offering(coach: Membership, values: dict, actor: Membership, offering: Offering | None = None) -> Offering:
    """Create an offering for ``coach`` or update ``offering`` from validated ``values``."""
    created = offering is None
    if offering is None:
        offering = Offering(tenant_id=coach.tenant_id, coach_membership_id=coach.id)
        db.session.add(offering)
    for name in OFFERING_FIELDS:
        if name in values:
            setattr(offering, name, values[name])
    offering.title = (offering.title or "").strip()
    offering.currency = (offering.currency or "EUR").upper()
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError as exc:
        if _sqlstate(exc) == "23514":
            raise BookingError("Some values are outside what an offering allows. Check the form.") from exc
        raise
    audit.record("offering.created" if created else "offering.updated", actor=actor.user,
                 target_type="offering", target_id=offering.id, details={"title": offering.title})
    return offering


def set_offering_active(offering: Offering, active: bool, actor: Membership) -> None:
    """Archive (hide from booking) or restore an offering; existing bookings are untouched."""
    offering.active = active
    db.session.flush()
    audit.record("offering.restored" if active else "offering.archived", actor=actor.user,
                 target_type="offering", target_id=offering.id, details={"title": offering.title})


# --- availability ------------------------------------------------------------------------------------

def minutes_label(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def weekly_rules(coach: Membership) -> dict[int, list[AvailabilityRule]]:
    rules: dict[int, list[AvailabilityRule]] = {day: [] for day in range(7)}
    for rule in db.session.scalars(select(AvailabilityRule).where(
            AvailabilityRule.tenant_id == coach.tenant_id, AvailabilityRule.coach_membership_id == coach.id)
            .order_by(AvailabilityRule.weekday, AvailabilityRule.start_minute)):
        rules[rule.weekday].append(rule)
    return rules


def _check_interval(start: int, end: int) -> None:
    if not (0 <= start < 1440 and 0 < end <= 1440):
        raise BookingError("Times must lie within the day (00:00 to 24:00).")
    if start >= end:
        raise BookingError("The end must be after the start.")


def _overlap_message(existing: list[tuple[int, int]], start: int, end: int) -> str | None:
    for other_start, other_end in existing:
        if start < other_end and other_start < end:
            return (f"{minutes_label(start)}–{minutes_label(end)} overlaps "
                    f"{minutes_label(other_start)}–{minutes_label(other_end)}.")
    return None


def _insert_excluding(row, overlap_message: str) -> None:
    """Insert in a savepoint; the exclusion constraint (a concurrent overlapping insert) becomes a message."""
    insert_or_raise(row, BookingError(overlap_message), (*EXCLUDED, "23514"))


def add_rule(coach: Membership, weekday: int, start: int, end: int, actor: Membership) -> AvailabilityRule:
    """Add weekly hours; inverted or overlapping intervals are refused with a message."""
    if weekday not in range(7):
        raise BookingError("Choose a day of the week.")
    _check_interval(start, end)
    existing = [(r.start_minute, r.end_minute) for r in weekly_rules(coach)[weekday]]
    problem = _overlap_message(existing, start, end)
    if problem:
        raise BookingError(problem)
    rule = AvailabilityRule(tenant_id=coach.tenant_id, coach_membership_id=coach.id, weekday=weekday,
                            start_minute=start, end_minute=end)
    _insert_excluding(rule, "These hours overlap hours you already have on that day.")
    audit.record("availability.rule_added", actor=actor.user, target_type="membership", target_id=coach.id,
                 details={"weekday": WEEKDAYS[weekday], "from": minutes_label(start), "to": minutes_label(end)})
    return rule


def delete_rule(coach: Membership, rule_id, actor: Membership) -> bool:
    rid = _uuid(rule_id)
    rule = db.session.scalar(select(AvailabilityRule).where(
        AvailabilityRule.tenant_id == coach.tenant_id, AvailabilityRule.coach_membership_id == coach.id,
        AvailabilityRule.id == rid)) if rid else None
    if rule is None:
        return False
    db.session.delete(rule)
    db.session.flush()
    audit.record("availability.rule_removed", actor=actor.user, target_type="membership", target_id=coach.id,
                 details={"weekday": WEEKDAYS[rule.weekday], "from": minutes_label(rule.start_minute),
                          "to": minutes_label(rule.end_minute)})
    return True


def upcoming_overrides(coach: Membership, today: date) -> dict[date, list[AvailabilityOverride]]:
    result: dict[date, list[AvailabilityOverride]] = defaultdict(list)
    for row in db.session.scalars(select(AvailabilityOverride).where(
            AvailabilityOverride.tenant_id == coach.tenant_id, AvailabilityOverride.coach_membership_id == coach.id,
            AvailabilityOverride.on_date >= today)
            .order_by(AvailabilityOverride.on_date, AvailabilityOverride.start_minute.nulls_first()).limit(400)):
        result[row.on_date].append(row)
    return dict(result)


def set_override(coach: Membership, on_date: date, intervals: list[tuple[int, int]], actor: Membership) -> None:
    """Replace ``on_date``'s hours with ``intervals``; an empty list closes the day."""
    for start, end in intervals:
        _check_interval(start, end)
    ordered = sorted(intervals)
    for (a_start, a_end), (b_start, b_end) in zip(ordered, ordered[1:]):
        if b_start < a_end:
            raise BookingError(f"{minutes_label(b_start)}–{minutes_label(b_end)} overlaps "
                               f"{minutes_label(a_start)}–{minutes_label(a_end)}.")
    clear_override(coach, on_date)
    for start, end in ordered or [(None, None)]:
        _insert_excluding(AvailabilityOverride(tenant_id=coach.tenant_id, coach_membership_id=coach.id,
                                               on_date=on_date, start_minute=start, end_minute=end),
                          "These hours overlap each other.")
    audit.record("availability.override_set", actor=actor.user, target_type="membership", target_id=coach.id,
                 details={"date": on_date.isoformat(),
                          "hours": [f"{minutes_label(s)}–{minutes_label(e)}" for s, e in ordered] or "closed"})


def clear_override(coach: Membership, on_date: date) -> int:
    return db.session.execute(delete(AvailabilityOverride).where(
        AvailabilityOverride.tenant_id == coach.tenant_id, AvailabilityOverride.coach_membership_id == coach.id,
        AvailabilityOverride.on_date == on_date)).rowcount


def upcoming_time_off(coach: Membership, now: datetime) -> list[TimeOff]:
    return list(db.session.scalars(select(TimeOff).where(
        TimeOff.tenant_id == coach.tenant_id, TimeOff.coach_membership_id == coach.id, TimeOff.ends_at > now)
        .order_by(TimeOff.starts_at).limit(200)))


def add_time_off(coach: Membership, starts_at: datetime, ends_at: datetime, reason: str,
                 actor: Membership) -> TimeOff:
    """Block ``[starts_at, ends_at)``. Sessions already booked in it stay booked (the coach cancels them)."""
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise BookingError("That time is not valid.")
    if starts_at >= ends_at:
        raise BookingError("Time off must end after it starts.")
    if ends_at - starts_at > timedelta(days=366):
        raise BookingError("Time off can be at most a year at a time.")
    row = TimeOff(tenant_id=coach.tenant_id, coach_membership_id=coach.id, starts_at=starts_at, ends_at=ends_at,
                  reason=reason.strip()[:200])
    db.session.add(row)
    db.session.flush()
    audit.record("availability.time_off_added", actor=actor.user, target_type="membership", target_id=coach.id,
                 details={"from": starts_at.isoformat(), "to": ends_at.isoformat()})
    return row


def delete_time_off(coach: Membership, time_off_id, actor: Membership) -> bool:
    tid = _uuid(time_off_id)
    deleted = db.session.execute(delete(TimeOff).where(
        TimeOff.tenant_id == coach.tenant_id, TimeOff.coach_membership_id == coach.id, TimeOff.id == tid)
    ).rowcount if tid else 0
    if deleted:
        audit.record("availability.time_off_removed", actor=actor.user, target_type="membership",
                     target_id=coach.id, details={"id": str(tid)})
    return bool(deleted)


# --- slots -------------------------------------------------------------------------------------------

def slot_rules(offering: Offering, window_start: datetime, window_end: datetime, *, with_busy: bool = True,
               ignore_session: uuid.UUID | None = None, tz: str | None = None) -> slotlib.SlotRules:
    """Load everything :func:`coach.booking.slots.compute_slots` needs for ``offering`` around a window.

    Four queries whatever the size of the window: rules, overrides, time off, held sessions.

    :param ignore_session: a session to treat as free (the one a reschedule gives up).
    """
    coach = offering.coach
    tz = tz or coach_timezone(coach)
    zone = ZoneInfo(tz)
    # Widen by a day and the longest buffer on each side: intervals and busy ranges near the edges count.
    pad = timedelta(days=1, minutes=240)
    lo, hi = window_start - pad, window_end + pad
    weekly: dict[int, list[slotlib.Interval]] = defaultdict(list)
    for weekday, start, end in db.session.execute(select(
            AvailabilityRule.weekday, AvailabilityRule.start_minute, AvailabilityRule.end_minute).where(
            AvailabilityRule.tenant_id == coach.tenant_id, AvailabilityRule.coach_membership_id == coach.id)):
        weekly[weekday].append(slotlib.Interval(start, end))
    overrides: dict[date, list[slotlib.Interval]] = defaultdict(list)
    for on_date, start, end in db.session.execute(select(
            AvailabilityOverride.on_date, AvailabilityOverride.start_minute, AvailabilityOverride.end_minute).where(
            AvailabilityOverride.tenant_id == coach.tenant_id, AvailabilityOverride.coach_membership_id == coach.id,
            AvailabilityOverride.on_date.between(lo.astimezone(zone).date(), hi.astimezone(zone).date()))):
        overrides[on_date]  # a closed day is present with no intervals
        if start is not None:
            overrides[on_date].append(slotlib.Interval(start, end))
    time_off = [tuple(r) for r in db.session.execute(select(TimeOff.starts_at, TimeOff.ends_at).where(
        TimeOff.tenant_id == coach.tenant_id, TimeOff.coach_membership_id == coach.id,
        TimeOff.starts_at < hi, TimeOff.ends_at > lo))]
    busy, open_sessions, day_counts = [], [], defaultdict(int)
    if with_busy:
        for sid, offering_id, starts_at, ends_at, busy_from, busy_until, capacity, seats in db.session.execute(select(
                CoachingSession.id, CoachingSession.offering_id, CoachingSession.starts_at, CoachingSession.ends_at,
                CoachingSession.busy_from, CoachingSession.busy_until, CoachingSession.capacity,
                CoachingSession.live_seats).where(
                CoachingSession.tenant_id == coach.tenant_id, CoachingSession.coach_membership_id == coach.id,
                CoachingSession.live_seats > 0, CoachingSession.busy_from < hi, CoachingSession.busy_until > lo)):
            if sid == ignore_session:
                continue
            busy.append((busy_from, busy_until))
            if offering_id == offering.id:
                day_counts[starts_at.astimezone(zone).date()] += 1
                if seats < capacity:
                    open_sessions.append(slotlib.OpenSession(starts_at, ends_at, capacity - seats))
    return slotlib.SlotRules(
        timezone=tz, duration=offering.duration_minutes, weekly=weekly, overrides=overrides, time_off=time_off,
        busy=busy, buffer_before=offering.buffer_before_minutes, buffer_after=offering.buffer_after_minutes,
        min_notice=offering.min_notice_minutes, horizon_days=offering.horizon_days,
        max_per_day=offering.max_per_day, day_counts=day_counts, open_sessions=open_sessions)


def available_slots(offering: Offering, window_start: datetime, window_end: datetime, now: datetime | None = None,
                    ignore_session: uuid.UUID | None = None, tz: str | None = None) -> list[slotlib.Slot]:
    """Bookable slots of ``offering`` starting in ``[window_start, window_end)``, UTC.

    :param tz: the coach's zone, when the caller already knows it (saves a query).
    """
    rules = slot_rules(offering, window_start, window_end, ignore_session=ignore_session, tz=tz)
    return slotlib.compute_slots(rules, window_start, window_end, now or _now())


def week_window(week_start: date, tz: str) -> tuple[datetime, datetime]:
    """Monday 00:00 to the next Monday 00:00 in ``tz``, as UTC instants."""
    zone = ZoneInfo(tz)
    start = slotlib.wall_to_utc(week_start, 0, zone)
    end = slotlib.wall_to_utc(week_start + timedelta(days=7), 0, zone)
    return start, end


# --- requesting a booking ----------------------------------------------------------------------------

def _check_slot(offering: Offering, starts_at: datetime, now: datetime,
                ignore_session: uuid.UUID | None) -> slotlib.Slot:
    """The slot starting at ``starts_at``; :class:`SlotTaken` if it was offered but is busy now."""
    window = (starts_at, starts_at + timedelta(minutes=1))
    rules = slot_rules(offering, *window, ignore_session=ignore_session)
    for slot in slotlib.compute_slots(rules, *window, now):
        if slot.starts_at == starts_at:
            return slot
    # Would it be offered if nobody had booked anything? Then it was taken, not invalid.
    free_rules = dataclasses.replace(rules, busy=(), open_sessions=(), day_counts={})
    if any(s.starts_at == starts_at for s in slotlib.compute_slots(free_rules, *window, now)):
        raise SlotTaken("This time was just taken. Choose another.")
    if starts_at < now:
        raise BookingError("That time is in the past. Choose a time from the calendar.")
    raise BookingError("That time is not available for this offering. Choose a time from the calendar.")


def _hold_seat(offering: Offering, starts_at: datetime, ends_at: datetime) -> CoachingSession:
    """Take a seat: in an open group session at that time, or in a new session holding the coach's time."""
    # One seat-taker per coach at a time, until its transaction ends. Without it, two requests writing
    # overlapping sessions (or one joining a group session that another's new session overlaps) each wait
    # for the other's uncommitted row in the exclusion check, and PostgreSQL aborts one with a deadlock.
    # The exclusion constraint still decides who gets the time; this only puts the contenders in a line.
    db.session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                       {"key": f"coach-seats:{offering.tenant_id}:{offering.coach_membership_id}"})
    for attempt in range(2):
        if offering.capacity > 1:
            taken = db.session.execute(
                update(CoachingSession).where(
                    CoachingSession.tenant_id == offering.tenant_id, CoachingSession.offering_id == offering.id,
                    CoachingSession.starts_at == starts_at, CoachingSession.live_seats > 0)
                .values(live_seats=CoachingSession.live_seats + 1)
                .where(CoachingSession.live_seats < CoachingSession.capacity)
                .returning(CoachingSession.id)).scalar()
            if taken is not None:
                return db.session.get(CoachingSession, taken)
            full = db.session.scalar(select(func.count()).select_from(CoachingSession).where(
                CoachingSession.tenant_id == offering.tenant_id, CoachingSession.offering_id == offering.id,
                CoachingSession.starts_at == starts_at, CoachingSession.live_seats > 0))
            if full:
                raise SlotTaken("This session just filled up. Choose another time.")
        session = CoachingSession(
            tenant_id=offering.tenant_id, coach_membership_id=offering.coach_membership_id, offering_id=offering.id,
            starts_at=starts_at, ends_at=ends_at,
            busy_from=starts_at - timedelta(minutes=offering.buffer_before_minutes),
            busy_until=ends_at + timedelta(minutes=offering.buffer_after_minutes),
            capacity=offering.capacity, live_seats=1)
        try:
            with db.session.begin_nested():
                db.session.add(session)
                db.session.flush()
            return session
        except DBAPIError as exc:
            if _sqlstate(exc) not in EXCLUDED:
                raise
            # Someone else holds this time. For a group, they may have just opened this very session.
            if offering.capacity == 1 or attempt:
                raise SlotTaken("This time was just taken. Choose another.") from exc
    raise SlotTaken("This time was just taken. Choose another.")


def request_booking(offering: Offering, athlete: Membership, starts_at: datetime, note: str, actor: Membership,
                    now: datetime | None = None, rescheduled_from: Booking | None = None) -> Booking:
    """Book ``athlete`` into ``offering`` at ``starts_at`` (UTC).

    Auto-confirm offerings are confirmed at once; others wait for the coach. The coach's
    time is held by the database's exclusion constraint, so of concurrent requests for
    overlapping times exactly one succeeds and the others get :class:`SlotTaken`.
    """
    now = now or _now()
    note = (note or "").strip()
    if len(note) > NOTE_MAX:
        raise BookingError(f"A note can have at most {NOTE_MAX:,} characters.")
    if not offering.active:
        raise BookingError("This offering is no longer available.")
    if athlete.role != "athlete" or athlete.tenant_id != offering.tenant_id:
        raise BookingError("Sessions are booked for athletes of this organization.")
    if starts_at.tzinfo is None:
        raise BookingError("That time is not valid.")
    starts_at = starts_at.astimezone(UTC)
    ignore = rescheduled_from.session_id if rescheduled_from and offering.capacity == 1 else None
    slot = _check_slot(offering, starts_at, now, ignore)
    status = "confirmed" if offering.auto_confirm else "requested"
    ttl = timedelta(hours=current_app.config["BOOKING_REQUEST_TTL_HOURS"])
    try:
        # One savepoint for the seat and the booking: a refusal leaves no seat taken in the caller's transaction.
        with db.session.begin_nested():
            session = _hold_seat(offering, slot.starts_at, slot.ends_at)
            booking = Booking(
                tenant_id=offering.tenant_id, session_id=session.id, offering_id=offering.id,
                coach_membership_id=offering.coach_membership_id, athlete_membership_id=athlete.id,
                booked_by_membership_id=actor.id, starts_at=session.starts_at, ends_at=session.ends_at, status=status,
                note=note, expires_at=None if offering.auto_confirm else min(now + ttl, slot.starts_at),
                confirmed_at=now if offering.auto_confirm else None, status_changed_at=now,
                rescheduled_from_id=rescheduled_from.id if rescheduled_from else None)
            db.session.add(booking)
            db.session.flush()
    except IntegrityError as exc:
        if _sqlstate(exc) == "23505":
            raise BookingError(f"{athlete.user.display_name} already has a place in this session.") from exc
        raise
    audit.record(f"booking.{status}", actor=actor.user, target_type="booking", target_id=booking.id,
                 details={"offering": offering.title, "athlete": athlete.user.email,
                          "starts_at": slot.starts_at.isoformat(), "to": status,
                          **({"rescheduled_from": str(rescheduled_from.id)} if rescheduled_from else {})})
    _emit(booking, None, status, actor)
    return booking


def reschedule_booking(booking: Booking, starts_at: datetime, actor: Membership, note: str | None = None,
                       now: datetime | None = None) -> Booking:
    """Cancel ``booking`` and book the same offering at ``starts_at``, linked, in one transaction.

    If the new time cannot be booked nothing changes: the old booking stays as it was.
    """
    now = now or _now()
    if "reschedule" not in allowed_actions(booking, actor, now):
        raise BookingError(f"This booking is {booking.status_label.lower()}; it cannot be rescheduled now.")
    with db.session.begin_nested():
        transition(booking, "cancel", actor, now=now, reason="rescheduled")
        return request_booking(booking.offering, booking.athlete, starts_at,
                               booking.note if note is None else note, actor, now=now, rescheduled_from=booking)


# --- the state machine -------------------------------------------------------------------------------

def allowed_actions(booking: Booking, actor: Membership, now: datetime | None = None) -> set[str]:
    """What ``actor`` may do with ``booking`` now (drives the buttons a page shows)."""
    now = now or _now()
    actions: set[str] = set()
    manages = manages_calendar(actor, booking.coach)
    is_athlete = actor.id == booking.athlete_membership_id or books_for_others(actor)
    if booking.status == "requested" and manages:
        actions |= {"confirm", "decline"}
    if booking.status in ("requested", "confirmed") and booking.starts_at > now and (manages or is_athlete):
        actions.add("cancel")
        if is_athlete:
            actions.add("reschedule")
    if booking.status in ("confirmed", "active", "ended") and booking.starts_at <= now and manages:
        actions.add("no_show")
    return actions


def is_late_cancellation(booking: Booking, now: datetime) -> bool:
    window = timedelta(hours=booking.offering.cancellation_window_hours)
    return booking.status == "confirmed" and now > booking.starts_at - window


def transition(booking: Booking, action: str, actor: Membership | None, now: datetime | None = None,
               reason: str | None = None) -> Booking:
    """Apply ``action`` to ``booking`` as a compare-and-swap on the status it was loaded with.

    :param actor: the member acting; ``None`` for the system (expiry, start, end).
    :raises BookingError: the action is not possible from the current status, or the booking
        changed since it was loaded (the message says what it is now).
    """
    now = now or _now()
    if action not in TRANSITIONS:
        raise BookingError("Unknown action.")
    if actor is not None and action in ("confirm", "decline", "cancel", "no_show") \
            and action not in allowed_actions(booking, actor, now):
        raise BookingError(f"This booking is {booking.status_label.lower()}; it cannot be {PAST[action]} now.")
    sources, target = TRANSITIONS[action]
    seen = booking.status
    if seen not in sources:
        raise BookingError(f"This booking is {booking.status_label.lower()} and cannot change that way.")
    values = {"status": target, "status_changed_at": now}
    if target == "confirmed":
        values["confirmed_at"] = now
    if target == "cancelled":
        values["late_cancellation"] = is_late_cancellation(booking, now)
        values["cancelled_by_membership_id"] = actor.id if actor else None
    changed = db.session.execute(
        update(Booking).where(Booking.tenant_id == booking.tenant_id, Booking.id == booking.id,
                              Booking.status == seen)
        .values(**values).returning(Booking.id)).scalar()
    if changed is None:
        db.session.refresh(booking)
        raise BookingError(f"This booking changed meanwhile: it is now {booking.status_label.lower()}.")
    if seen in LIVE_STATUSES and target not in LIVE_STATUSES:
        _release_seats([booking.session_id])
    db.session.refresh(booking)
    details = {"from": seen, "to": target}
    if target == "cancelled":
        details["late"] = booking.late_cancellation
        if reason:
            details["reason"] = reason
    audit.record(f"booking.{target}", actor=actor.user if actor else None,
                 actor_label=None if actor else "system", target_type="booking", target_id=booking.id,
                 details=details)
    _emit(booking, seen, target, actor)
    return booking


def _release_seats(session_ids: list[uuid.UUID]) -> None:
    counts: dict[uuid.UUID, int] = defaultdict(int)
    for sid in session_ids:
        counts[sid] += 1
    for sid, n in counts.items():
        db.session.execute(update(CoachingSession).where(CoachingSession.id == sid)
                           .values(live_seats=CoachingSession.live_seats - n))


def _emit(booking: Booking, before: str | None, after: str, actor: Membership | None) -> None:
    emit(STATUS_TOPICS[after], {
        "booking_id": str(booking.id), "from": before, "to": after,
        "coach_membership_id": str(booking.coach_membership_id),
        "athlete_membership_id": str(booking.athlete_membership_id),
        "actor_membership_id": str(actor.id) if actor else None,
        "starts_at": booking.starts_at.isoformat(), "ends_at": booking.ends_at.isoformat(),
        "expires_at": booking.expires_at.isoformat() if booking.expires_at else None,
    })


# --- scheduled transitions and reminders -------------------------------------------------------------

@dataclass
class SweepResult:
    expired: int = 0
    started: int = 0
    ended: int = 0
    reminders: int = 0

    @property
    def total(self) -> int:
        return self.expired + self.started + self.ended + self.reminders


def _sweep_transition(tenant_id: uuid.UUID, action: str, condition, now: datetime) -> int:
    """Move every booking of the organization matching ``condition`` by ``action``, set-based."""
    sources, target = TRANSITIONS[action]
    rows = db.session.execute(
        update(Booking).where(Booking.tenant_id == tenant_id, Booking.status.in_(sources), condition)
        .values(status=target, status_changed_at=now)
        .returning(Booking.id, Booking.status, Booking.session_id)).all()
    if not rows:
        return 0
    if sources[0] in LIVE_STATUSES and target not in LIVE_STATUSES:
        _release_seats([row.session_id for row in rows])
    changed = db.session.scalars(select(Booking).where(Booking.tenant_id == tenant_id,
                                                       Booking.id.in_([r.id for r in rows]))).all()
    for booking in changed:
        audit.record(f"booking.{target}", actor_label="system", target_type="booking", target_id=booking.id,
                     details={"from": sources[0], "to": target})
        _emit(booking, sources[0], target, None)
    return len(rows)


def run_due(tenant_id: uuid.UUID, now: datetime | None = None) -> SweepResult:
    """Apply every transition and reminder that is due in one organization. Idempotent.

    Each statement re-checks the status it changes, so a second run (or a run racing the
    precise job for the same moment) finds nothing left to do.
    """
    now = now or _now()
    grace = timedelta(minutes=current_app.config["BOOKING_END_GRACE_MINUTES"])
    result = SweepResult()
    result.expired = _sweep_transition(tenant_id, "expire", Booking.expires_at <= now, now)
    result.started = _sweep_transition(tenant_id, "start", Booking.starts_at <= now, now)
    result.ended = _sweep_transition(tenant_id, "end", Booking.ends_at + grace <= now, now)
    result.reminders = _send_reminders(tenant_id, now)
    return result


REMINDERS = {
    # kind → (column, how long before the start, the next reminder's lead time)
    "24h": ("reminder_24h_sent_at", timedelta(hours=24), timedelta(hours=1)),
    "1h": ("reminder_1h_sent_at", timedelta(hours=1), timedelta(0)),
}


def _send_reminders(tenant_id: uuid.UUID, now: datetime) -> int:
    """Mark due reminders sent and emit their events in the same transaction: each goes out once
    (the notifications' consumer tells both people, in the app and by email as they chose)."""
    sent = 0
    for kind, (column, lead, next_lead) in REMINDERS.items():
        col = getattr(Booking, column)
        ids = db.session.scalars(
            update(Booking).where(
                Booking.tenant_id == tenant_id, Booking.status == "confirmed", col.is_(None),
                Booking.confirmed_at <= Booking.starts_at - lead,
                Booking.starts_at - lead <= now, Booking.starts_at - next_lead > now)
            .values({column: now}).returning(Booking.id)).all()
        for booking in db.session.scalars(select(Booking).where(Booking.tenant_id == tenant_id,
                                                                Booking.id.in_(ids))):
            emit(BOOKING_REMINDER, {"booking_id": str(booking.id), "which": kind,
                                      "starts_at": booking.starts_at.isoformat()})
            sent += 1
    return sent


def _zone(tz: str) -> ZoneInfo:
    """The zone ``tz`` names, UTC if it names none (the booking pages read times in it)."""
    try:
        return ZoneInfo(tz)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def due_tenants(now: datetime | None = None) -> list[uuid.UUID]:
    """Organizations with a transition or reminder due (through a narrow definer function)."""
    grace = timedelta(minutes=current_app.config["BOOKING_END_GRACE_MINUTES"])
    return list(db.session.scalars(text("SELECT bookings_due_tenants(:now, :grace)"),
                                   {"now": now or _now(), "grace": grace}))


def moments_for(payload: dict) -> list[datetime]:
    """The exact instants at which a booking event's booking may next need the sweep."""
    grace = timedelta(minutes=current_app.config["BOOKING_END_GRACE_MINUTES"])
    to = payload.get("to")
    starts_at = datetime.fromisoformat(payload["starts_at"])
    ends_at = datetime.fromisoformat(payload["ends_at"])
    if to == "requested" and payload.get("expires_at"):
        return [datetime.fromisoformat(payload["expires_at"])]
    if to == "confirmed":
        return [starts_at - timedelta(hours=24), starts_at - timedelta(hours=1), starts_at, ends_at + grace]
    if to == "active":
        return [ends_at + grace]
    return []


# --- lists for pages ---------------------------------------------------------------------------------

def bookings_for(membership: Membership, *, as_coach: bool, statuses: tuple[str, ...] | None = None,
                 after: datetime | None = None, before: datetime | None = None, newest_first: bool = False,
                 limit: int = 50) -> list[Booking]:
    """A member's bookings, as coach or as athlete, filtered by status and start time (one query)."""
    column = Booking.coach_membership_id if as_coach else Booking.athlete_membership_id
    query = select(Booking).where(Booking.tenant_id == membership.tenant_id, column == membership.id)
    if statuses:
        query = query.where(Booking.status.in_(statuses))
    if after is not None:
        query = query.where(Booking.starts_at >= after)
    if before is not None:
        query = query.where(Booking.starts_at < before)
    order = (Booking.starts_at.desc(), Booking.id.desc()) if newest_first else (Booking.starts_at, Booking.id)
    return list(db.session.scalars(query.order_by(*order).limit(limit)))


# --- calendar feeds ----------------------------------------------------------------------------------

def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def has_feed(membership: Membership) -> bool:
    return db.session.scalar(select(func.count()).select_from(CalendarFeed).where(
        CalendarFeed.tenant_id == membership.tenant_id, CalendarFeed.membership_id == membership.id)) > 0


def regenerate_feed(membership: Membership) -> str:
    """Issue a new secret feed address for ``membership``; the old one stops working. Returns the secret."""
    secret = secrets.token_urlsafe(32)
    feed = db.session.scalar(select(CalendarFeed).where(
        CalendarFeed.tenant_id == membership.tenant_id, CalendarFeed.membership_id == membership.id)
        .with_for_update())
    if feed is None:
        feed = CalendarFeed(tenant_id=membership.tenant_id, membership_id=membership.id, token_hash=_hash(secret))
        db.session.add(feed)
    else:
        feed.token_hash = _hash(secret)
        feed.created_at = _now()
    db.session.flush()
    audit.record("calendar_feed.issued", actor=membership.user, target_type="membership", target_id=membership.id)
    return secret


def feed_owner(org: Organization, secret: str) -> Membership | None:
    if not secret or len(secret) > 100:
        return None
    membership_id = db.session.scalar(select(CalendarFeed.membership_id).where(
        CalendarFeed.tenant_id == org.id, CalendarFeed.token_hash == _hash(secret)))
    return db.session.get(Membership, membership_id) if membership_id else None


def feed_bookings(membership: Membership, now: datetime | None = None) -> list[Booking]:
    """What a member's calendar feed lists: their sessions from 60 days ago on, as coach and as athlete.

    Declined, expired and cancelled ones stay listed (marked cancelled), so a calendar app that
    showed a request as tentative removes it.
    """
    since = (now or _now()) - timedelta(days=60)
    return list(db.session.scalars(select(Booking).where(
        Booking.tenant_id == membership.tenant_id,
        or_(Booking.coach_membership_id == membership.id, Booking.athlete_membership_id == membership.id),
        Booking.starts_at >= since)
        .order_by(Booking.starts_at).limit(2000)))


def pending_count(membership: Membership) -> int:
    return db.session.scalar(select(func.count()).select_from(Booking).where(
        Booking.tenant_id == membership.tenant_id, Booking.coach_membership_id == membership.id,
        Booking.status == "requested")) or 0

