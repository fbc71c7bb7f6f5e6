"""A coach's calendar: the zone it is read in, offerings, weekly hours, date overrides, time off, and the
bookable slots they leave (loaded here, computed by the pure :mod:`coach.booking.slots`).

Services never commit; the caller commits once.
"""
from __future__ import annotations

import dataclasses
import uuid
from collections import defaultdict
from datetime import date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.exc import IntegrityError

from coach import clock
from coach.booking import slots as slotlib
from coach.booking.errors import EXCLUDED, BookingError, sqlstate
from coach.booking.events import AVAILABILITY_CHANGED, OFFERING_CHANGED
from coach.booking.models import (AvailabilityOverride, AvailabilityRule, CoachCalendar, CoachingSession,
                                  ExternalBusy, Offering, TimeOff)
from coach.dbutil import insert_or_raise
from coach.extensions import db
from coach.ids import parse_uuid as _uuid
from coach.orgs.models import Membership
from coach.platform import audit
from coach.platform.outbox import emit
from coach.timezones import is_valid_timezone

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _availability_changed(coach: Membership) -> None:
    emit(AVAILABILITY_CHANGED, {"coach_membership_id": str(coach.id)}, tenant_id=coach.tenant_id)


def _offering_changed(offering: Offering) -> None:
    emit(OFFERING_CHANGED, {"offering_id": str(offering.id), "coach_membership_id": str(offering.coach_membership_id)},
         tenant_id=offering.tenant_id)


def zone(tz: str) -> ZoneInfo:
    """The zone ``tz`` names, UTC if it names none (the booking pages read times in it)."""
    try:
        return ZoneInfo(tz)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


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
    calendar.updated_at = clock.now()
    db.session.flush()
    audit.record("availability.timezone_set", actor=actor.user, target_type="membership", target_id=coach.id,
                 details={"timezone": tz})
    _availability_changed(coach)


# --- offerings ---------------------------------------------------------------------------------------

OFFERING_FIELDS = ("title", "description", "duration_minutes", "price_minor", "currency", "location",
                   "meeting_url", "capacity", "auto_confirm", "buffer_before_minutes", "buffer_after_minutes",
                   "min_notice_minutes", "max_per_day", "horizon_days", "cancellation_window_hours",
                   "late_cancel_policy", "late_cancel_fee_percent", "waitlist_mode", "waitlist_offer_minutes")


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
        if sqlstate(exc) == "23514":
            raise BookingError("Some values are outside what an offering allows. Check the form.") from exc
        raise
    audit.record("offering.created" if created else "offering.updated", actor=actor.user,
                 target_type="offering", target_id=offering.id, details={"title": offering.title})
    _offering_changed(offering)
    return offering


def set_offering_active(offering: Offering, active: bool, actor: Membership) -> None:
    """Archive (hide from booking) or restore an offering; existing bookings are untouched."""
    offering.active = active
    db.session.flush()
    audit.record("offering.restored" if active else "offering.archived", actor=actor.user,
                 target_type="offering", target_id=offering.id, details={"title": offering.title})
    _offering_changed(offering)


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
    _availability_changed(coach)
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
    _availability_changed(coach)
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
    _availability_changed(coach)


def clear_override(coach: Membership, on_date: date) -> int:
    cleared = db.session.execute(delete(AvailabilityOverride).where(
        AvailabilityOverride.tenant_id == coach.tenant_id, AvailabilityOverride.coach_membership_id == coach.id,
        AvailabilityOverride.on_date == on_date)).rowcount
    if cleared:
        _availability_changed(coach)
    return cleared


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
    _availability_changed(coach)
    return row


def delete_time_off(coach: Membership, time_off_id, actor: Membership) -> bool:
    tid = _uuid(time_off_id)
    deleted = db.session.execute(delete(TimeOff).where(
        TimeOff.tenant_id == coach.tenant_id, TimeOff.coach_membership_id == coach.id, TimeOff.id == tid)
    ).rowcount if tid else 0
    if deleted:
        audit.record("availability.time_off_removed", actor=actor.user, target_type="membership",
                     target_id=coach.id, details={"id": str(tid)})
        _availability_changed(coach)
    return bool(deleted)


# --- slots -------------------------------------------------------------------------------------------


@cache
def _calendar_statement(with_busy: bool):
    """Everything a coach's slots depend on, in one statement built once (only its parameters change, so
    SQLAlchemy reuses the compiled form): the coach's zone, weekly rules, date overrides, time off and held
    sessions, each set as one JSON array. One round trip instead of five: the calendar is the page athletes
    open most, and each statement costs a round trip and its planning on every view."""
    tenant, coach = bindparam("tenant_id"), bindparam("coach_id")
    lo, hi = bindparam("lo"), bindparam("hi")

    def rows(*columns):
        return func.json_agg(func.json_build_array(*columns))

    parts = [
        select(CoachCalendar.timezone).where(
            CoachCalendar.tenant_id == tenant, CoachCalendar.coach_membership_id == coach),
        select(rows(AvailabilityRule.weekday, AvailabilityRule.start_minute, AvailabilityRule.end_minute)).where(
            AvailabilityRule.tenant_id == tenant, AvailabilityRule.coach_membership_id == coach),
        select(rows(AvailabilityOverride.on_date, AvailabilityOverride.start_minute,
                    AvailabilityOverride.end_minute)).where(
            AvailabilityOverride.tenant_id == tenant, AvailabilityOverride.coach_membership_id == coach,
            AvailabilityOverride.on_date.between(bindparam("first_day"), bindparam("last_day"))),
        select(rows(TimeOff.starts_at, TimeOff.ends_at)).where(
            TimeOff.tenant_id == tenant, TimeOff.coach_membership_id == coach, TimeOff.starts_at < hi,
            TimeOff.ends_at > lo),
    ]
    if with_busy:
        parts.append(select(rows(
            CoachingSession.id, CoachingSession.offering_id, CoachingSession.starts_at, CoachingSession.ends_at,
            CoachingSession.busy_from, CoachingSession.busy_until, CoachingSession.capacity,
            CoachingSession.live_seats)).where(
            CoachingSession.tenant_id == tenant, CoachingSession.coach_membership_id == coach,
            CoachingSession.live_seats > 0, CoachingSession.busy_from < hi, CoachingSession.busy_until > lo))
        # Busy time read from the coach's own calendars (coach.calsync): it blocks like a held session.
        parts.append(select(rows(ExternalBusy.starts_at, ExternalBusy.ends_at)).where(
            ExternalBusy.tenant_id == tenant, ExternalBusy.coach_membership_id == coach, ExternalBusy.starts_at < hi,
            ExternalBusy.ends_at > lo))
    return select(*(part.scalar_subquery() for part in parts))


def slot_rules(offering: Offering, window_start: datetime, window_end: datetime, *, with_busy: bool = True,
               ignore_session: uuid.UUID | None = None, tz: str | None = None) -> slotlib.SlotRules:
    """Load everything :func:`coach.booking.slots.compute_slots` needs for ``offering`` around a window.

    One statement whatever the size of the window: the coach's zone, rules, overrides, time off, held sessions
    and the busy time synced from the coach's own calendars.

    :param ignore_session: a session to treat as free (the one a reschedule gives up).
    :param tz: the coach's zone, when the caller knows it (else the coach's calendar's, or their profile's).
    """
    coach = offering.coach
    # Widen by a day and the longest buffer on each side: intervals and busy ranges near the edges count.
    pad = timedelta(days=1, minutes=240)
    lo, hi = window_start - pad, window_end + pad
    # Overrides are dates on the coach's wall clock, not known before the statement: a day more on each side
    # of the UTC dates covers every zone (a date outside the window is never looked up).
    found = db.session.execute(_calendar_statement(with_busy), {
        "tenant_id": coach.tenant_id, "coach_id": coach.id, "lo": lo, "hi": hi,
        "first_day": lo.date() - timedelta(days=1), "last_day": hi.date() + timedelta(days=1)}).one()
    calendar_tz, rule_rows, override_rows, time_off_rows = found[:4]
    tz = tz or calendar_tz or coach.user.timezone or "UTC"
    wall = ZoneInfo(tz)
    weekly: dict[int, list[slotlib.Interval]] = defaultdict(list)
    for weekday, start, end in rule_rows or ():
        weekly[weekday].append(slotlib.Interval(start, end))
    overrides: dict[date, list[slotlib.Interval]] = defaultdict(list)
    for on_date, start, end in override_rows or ():
        day = overrides[date.fromisoformat(on_date)]  # a closed day is present with no intervals
        if start is not None:
            day.append(slotlib.Interval(start, end))
    time_off = [(_instant(a), _instant(b)) for a, b in time_off_rows or ()]
    busy, open_sessions, day_counts = [], [], defaultdict(int)
    ignored, this_offering = str(ignore_session) if ignore_session else None, str(offering.id)
    for sid, offering_id, starts_at, ends_at, busy_from, busy_until, capacity, seats in \
            (found[4] if with_busy else None) or ():
        if sid == ignored:
            continue
        busy.append((_instant(busy_from), _instant(busy_until)))
        if offering_id == this_offering:
            starts_at = _instant(starts_at)
            day_counts[starts_at.astimezone(wall).date()] += 1
            if seats < capacity:
                open_sessions.append(slotlib.OpenSession(starts_at, _instant(ends_at), capacity - seats))
    if with_busy:
        busy.extend((_instant(a), _instant(b)) for a, b in found[5] or ())
    return slotlib.SlotRules(
        timezone=tz, duration=offering.duration_minutes, weekly=weekly, overrides=overrides, time_off=time_off,
        busy=busy, buffer_before=offering.buffer_before_minutes, buffer_after=offering.buffer_after_minutes,
        min_notice=offering.min_notice_minutes, horizon_days=offering.horizon_days,
        max_per_day=offering.max_per_day, day_counts=day_counts, open_sessions=open_sessions)


def _instant(value: str) -> datetime:
    """A ``timestamptz`` as JSON gives it (ISO 8601 with its offset) as an aware datetime."""
    return datetime.fromisoformat(value)


def available_slots(offering: Offering, window_start: datetime, window_end: datetime, now: datetime | None = None,
                    ignore_session: uuid.UUID | None = None, tz: str | None = None) -> list[slotlib.Slot]:
    """Bookable slots of ``offering`` starting in ``[window_start, window_end)``, UTC.

    :param tz: the coach's zone, when the caller already knows it (saves a query).
    """
    return week_slots(offering, window_start, window_end, now, ignore_session, tz)[0]


def week_slots(offering: Offering, window_start: datetime, window_end: datetime, now: datetime | None = None,
               ignore_session: uuid.UUID | None = None, tz: str | None = None) -> tuple[list[slotlib.Slot], str]:
    """:func:`available_slots` and the coach's zone they were read in (one statement for both)."""
    rules = slot_rules(offering, window_start, window_end, ignore_session=ignore_session, tz=tz)
    return slotlib.compute_slots(rules, window_start, window_end, now or clock.now()), rules.timezone


def first_free_slot(offering: Offering, window_start: datetime, now: datetime | None = None,
                    ignore_session: uuid.UUID | None = None) -> slotlib.Slot | None:
    """The first bookable slot of ``offering`` from ``window_start`` to the end of its booking horizon, or None.

    One statement for the whole horizon, then the slots a week at a time until a week has one: the calendar
    opens on the first week with free times without rendering the empty weeks before it.
    """
    now = now or clock.now()
    end = now + timedelta(days=offering.horizon_days)
    if window_start >= end:
        return None
    rules = slot_rules(offering, window_start, end, ignore_session=ignore_session)
    start = window_start
    while start < end:
        stop = min(start + timedelta(days=7), end)
        found = slotlib.compute_slots(rules, start, stop, now)
        if found:
            return found[0]
        start = stop
    return None


TAKEN, PAST, CLOSED = "taken", "past", "closed"


@dataclasses.dataclass(frozen=True)
class TimeCheck:
    """Whether a chosen start can still be booked; if not, why (``TAKEN``, ``PAST`` or ``CLOSED``: no longer in
    the coach's hours) and the free slots nearest to it."""

    free: bool
    reason: str | None = None
    alternatives: tuple[slotlib.Slot, ...] = ()


def check_time(offering: Offering, starts_at: datetime, now: datetime | None = None,
               ignore_session: uuid.UUID | None = None, nearest: int = 4) -> TimeCheck:
    """Can ``starts_at`` be booked now? The book page asks before it shows its form, so a time taken since the
    calendar was read says so at once instead of after the athlete filled the form in. One statement: the
    rules of the fortnight around the time give the answer, the reason (the same rules with nothing booked
    tell a taken time from one that was never free) and the nearest free times."""
    now = now or clock.now()
    lo = max(now, starts_at - timedelta(days=7))
    hi = max(lo, starts_at) + timedelta(days=14)
    rules = slot_rules(offering, lo, hi, ignore_session=ignore_session)
    moment = (starts_at, starts_at + timedelta(minutes=1))
    if any(s.starts_at == starts_at for s in slotlib.compute_slots(rules, *moment, now)):
        return TimeCheck(True)
    free_rules = dataclasses.replace(rules, busy=(), open_sessions=(), day_counts={})
    if any(s.starts_at == starts_at for s in slotlib.compute_slots(free_rules, *moment, now)):
        reason = TAKEN
    else:
        reason = PAST if starts_at < now else CLOSED
    slots = slotlib.compute_slots(rules, lo, hi, now)
    closest = sorted(slots, key=lambda s: abs(s.starts_at - starts_at))[:nearest]
    return TimeCheck(False, reason, tuple(sorted(closest, key=lambda s: s.starts_at)))


def week_window(week_start: date, tz: str) -> tuple[datetime, datetime]:
    """Monday 00:00 to the next Monday 00:00 in ``tz``, as UTC instants."""
    wall = ZoneInfo(tz)
    start = slotlib.wall_to_utc(week_start, 0, wall)
    end = slotlib.wall_to_utc(week_start + timedelta(days=7), 0, wall)
    return start, end
