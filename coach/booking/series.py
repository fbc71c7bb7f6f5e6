"""Recurring series: a coach (or staff for them) books an athlete every N weeks at the same wall-clock time.

Planning is read-only and cheap: the occurrences are worked out on the coach's wall clock (10:00 stays 10:00
across daylight-saving changes), and everything they are checked against (hours, date overrides, time off,
held sessions, busy time synced from the coach's own calendar) is loaded once for the whole range, so a plan
of 500 occurrences costs the same few statements as one of 8. Each occurrence either is a free slot as
:func:`coach.booking.slots.compute_slots` offers it, or carries the reason it is not.

Booking a plan goes through :func:`coach.booking.lifecycle.request_booking` once per occurrence, all in the
caller's one transaction: the exclusion constraint and audit are those of single bookings. The
caller confirms with the digest of the occurrences it showed; if the plan reads differently now (a new
conflict, or a changed form) :class:`PlanChanged` is raised and nothing is written. Moving "this and later" is
the same, with :func:`coach.booking.lifecycle.reschedule_booking` per occurrence.

People are told once per action, not once per occurrence: each occurrence's status event is marked
``series_batch`` (notifications skip it; calendar pushes, waitlists and the rest take it as usual) and the action
emits its own topic (``booking.series_booked`` / ``_cancelled`` / ``_moved``, see :func:`_announce`) in the same
transaction, from which :mod:`coach.notifications.series` writes one notification and one email per person.

A series holds free offerings only: a paid session is paid one at a time (card, pack credit or by hand) on the
booking page, and payments lie above booking (booking cannot take a credit or open a checkout).

Services never commit; the caller commits once.
"""
from __future__ import annotations

import bisect
import dataclasses
import hashlib
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update

from coach import clock
from coach.booking import slots as slotlib
from coach.booking.access import manages_calendar
from coach.booking.availability import WEEKDAYS, coach_timezone, minutes_label, slot_rules
from coach.booking.errors import BookingError
from coach.booking.events import SERIES_TOPICS
from coach.booking.lifecycle import request_booking, reschedule_booking, transition
from coach.booking.models import (LIVE_STATUSES, Booking, BookingSeries, CoachingSession, ExternalBusy, Offering,
                                  WaitlistEntry)
from coach.extensions import db
from coach.ids import parse_uuid
from coach.orgs.models import ATHLETE, Membership
from coach.platform import audit
from coach.platform.outbox import emit

UTC = timezone.utc
MAX_OCCURRENCES = 500
MAX_INTERVAL_WEEKS = 12
MAX_SHIFT_WEEKS = 12  # how far a move may shift the rest of a series
TOOK_PLACE = ("ended", "no_show")


class PlanChanged(BookingError):
    """What would be booked differs from what was shown: nothing was written. HTTP 409."""

    status = 409


@dataclass(frozen=True)
class Occurrence:
    """One planned time of a series: ``index`` counts from 1 in the plan; ``conflict`` says why it is skipped."""

    index: int
    starts_at: datetime
    ends_at: datetime
    conflict: str | None = None
    booking: Booking | None = None  # the occurrence a move replaces


@dataclass
class Plan:
    """The occurrences of a series (or of a move) and the zone their wall-clock time is kept in."""

    timezone: str
    occurrences: list[Occurrence]

    @property
    def bookable(self) -> list[Occurrence]:
        return [o for o in self.occurrences if o.conflict is None]

    @property
    def conflicts(self) -> list[Occurrence]:
        return [o for o in self.occurrences if o.conflict is not None]

    @property
    def digest(self) -> str:
        """What the person confirms: every occurrence and whether it is booked, as a short hash."""
        text = "\n".join(f"{o.index} {o.starts_at.isoformat()} {o.conflict is None} "
                         f"{o.booking.id if o.booking else ''}" for o in self.occurrences)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


# --- working out the times ---------------------------------------------------------------------------


def wall_times(first_start: datetime, tz: str, interval_weeks: int, count: int | None = None,
               until: date | None = None) -> list[datetime]:
    """UTC starts every ``interval_weeks`` weeks at ``first_start``'s wall-clock time in ``tz``, ``count`` times
    or while the date is on or before ``until``.

    :raises BookingError: the numbers are outside what a series allows (the message says which).
    """
    if not 1 <= interval_weeks <= MAX_INTERVAL_WEEKS:
        raise BookingError(f"Repeat every 1 to {MAX_INTERVAL_WEEKS} weeks.")
    if (count is None) == (until is None):
        raise BookingError("End the series after a number of sessions or on a date.")
    if count is not None and not 1 <= count <= MAX_OCCURRENCES:
        raise BookingError(f"A series has 1 to {MAX_OCCURRENCES} sessions.")
    zone = ZoneInfo(tz)
    local = first_start.astimezone(zone)
    first_day, minute = local.date(), local.hour * 60 + local.minute
    if until is not None:
        if until < first_day:
            raise BookingError("The end date is before the first session.")
        count = (until - first_day).days // (7 * interval_weeks) + 1
        if count > MAX_OCCURRENCES:
            raise BookingError(f"That end date makes {count} sessions; a series has at most {MAX_OCCURRENCES}. "
                               "Choose an earlier date.")
    step = timedelta(weeks=interval_weeks)
    return [slotlib.wall_to_utc(first_day + step * k, minute, zone) for k in range(count)]


def _external_busy(offering: Offering, lo: datetime, hi: datetime) -> list[tuple[datetime, datetime]]:
    """Busy times synced from the coach's own calendars between ``lo`` and ``hi`` (one statement)."""
    return list(db.session.execute(select(ExternalBusy.starts_at, ExternalBusy.ends_at).where(
        ExternalBusy.tenant_id == offering.tenant_id, ExternalBusy.coach_membership_id == offering.coach_membership_id,
        ExternalBusy.starts_at < hi, ExternalBusy.ends_at > lo)).all())


def _overlaps(ranges, start: datetime, end: datetime) -> bool:
    return any(a < end and start < b for a, b in ranges)


def _conflict(rules: slotlib.SlotRules, external: list, start: datetime, now: datetime) -> str | None:
    """``None`` if ``start`` is a free slot under ``rules``, else why not, in the coach's words."""
    window = (start, start + timedelta(minutes=1))
    if any(s.starts_at == start for s in slotlib.compute_slots(rules, *window, now)):
        return None
    end = start + timedelta(minutes=rules.duration)
    if start < now:
        return "in the past"
    if start < now + timedelta(minutes=rules.min_notice):
        return f"too soon: needs {rules.min_notice // 60 or rules.min_notice} " \
               f"{'hours' if rules.min_notice >= 60 else 'minutes'}' notice"
    if start >= now + timedelta(days=rules.horizon_days):
        return f"beyond the booking horizon ({rules.horizon_days} days ahead)"
    open_hours = dataclasses.replace(rules, busy=(), time_off=(), open_sessions=(), day_counts={})
    if not any(s.starts_at == start for s in slotlib.compute_slots(open_hours, *window, now)):
        return "outside the coach's availability"
    before, after = timedelta(minutes=rules.buffer_before), timedelta(minutes=rules.buffer_after)
    if _overlaps(external, start - before, end + after):
        return "busy in the coach's calendar"
    if _overlaps(rules.time_off, start, end):
        return "the coach's time off"
    if rules.max_per_day is not None and \
            rules.day_counts.get(slotlib.local_date(start, rules.timezone), 0) >= rules.max_per_day:
        return f"the day already has {rules.max_per_day} of these sessions"
    return "taken by another session"


def _check(offering: Offering, starts: list[datetime], now: datetime,
           ignore: list[tuple[datetime, datetime]] = (), tz: str | None = None) -> tuple[str, list[str | None]]:
    """The coach's zone and, per start, ``None`` or its conflict; everything loaded once for the whole range.

    :param ignore: busy ranges to treat as free (the sessions a move gives up), each removed once.
    """
    lo, hi = min(starts), max(starts) + timedelta(minutes=offering.duration_minutes)
    rules = slot_rules(offering, lo, hi, tz=tz)  # with the busy time synced from the coach's calendars
    external = _external_busy(offering, lo, hi)  # again on its own, only to name the conflict
    busy = list(rules.busy)
    for held in ignore:
        if held in busy:
            busy.remove(held)
    rules = dataclasses.replace(rules, busy=busy)
    # Each start is checked against the few merged busy ranges around it: compute_slots merges (sorts) all it is
    # given, and 500 starts against thousands of synced busy rows sorted them 500 times (bench calendar_sync).
    merged = slotlib.merge_ranges(busy)
    before, after = timedelta(minutes=rules.buffer_before), timedelta(minutes=rules.duration + rules.buffer_after)
    return rules.timezone, [_conflict(dataclasses.replace(rules, busy=_near(merged, start - before, start + after)),
                                      external, start, now) for start in starts]


def _near(merged: tuple[list[datetime], list[datetime]], lo: datetime,
          hi: datetime) -> list[tuple[datetime, datetime]]:
    """The merged ranges (sorted, disjoint: parallel starts and ends) that overlap ``[lo, hi)``."""
    starts, ends = merged
    first = bisect.bisect_right(ends, lo)
    return list(zip(starts[first:bisect.bisect_left(starts, hi, lo=first)], ends[first:]))


# --- a new series ------------------------------------------------------------------------------------


def _require_manager(offering: Offering, actor: Membership) -> None:
    if not manages_calendar(actor, offering.coach):
        raise BookingError("Only the coach or a scheduler of the organization can book a recurring series.")


def check_offering(offering: Offering) -> None:
    """Refuse offerings a series cannot hold (the message says why)."""
    if not offering.active:
        raise BookingError("This offering is no longer available.")
    if offering.price_minor:
        raise BookingError(f"{offering.title} costs {offering.price_label} a session: a recurring series is for free "
                           "offerings, so that each paid session is paid on its own booking page.")


def _athletes_places(offering: Offering, athlete: Membership, starts: list[datetime]) -> set[datetime]:
    """The starts among ``starts`` at which ``athlete`` already holds a place in ``offering`` (one statement)."""
    return set(db.session.scalars(select(Booking.starts_at).where(
        Booking.tenant_id == offering.tenant_id, Booking.offering_id == offering.id,
        Booking.athlete_membership_id == athlete.id, Booking.status.in_(LIVE_STATUSES),
        Booking.starts_at.in_(starts))))


def _lines_waiting(offering: Offering, athlete: Membership, starts: list[datetime]) -> set[datetime]:
    """The starts among ``starts`` whose session has others waiting in its line (one statement): a direct booking
    of it is refused (:func:`coach.booking.lifecycle.request_booking` keeps free seats for the line)."""
    return set(db.session.scalars(select(CoachingSession.starts_at).join(
        WaitlistEntry, (WaitlistEntry.tenant_id == CoachingSession.tenant_id)
        & (WaitlistEntry.session_id == CoachingSession.id)).where(
        CoachingSession.tenant_id == offering.tenant_id, CoachingSession.offering_id == offering.id,
        CoachingSession.starts_at.in_(starts), WaitlistEntry.status == "waiting",
        WaitlistEntry.athlete_membership_id != athlete.id)))


def plan(offering: Offering, athlete: Membership, first_start: datetime, interval_weeks: int,
         count: int | None = None, until: date | None = None, actor: Membership | None = None,
         now: datetime | None = None) -> Plan:
    """Every occurrence of the series and its conflict, if any; nothing is written.

    :param first_start: a UTC instant that must be a free slot (its wall-clock time in the coach's zone is kept).
    :raises BookingError: the series is not possible at all (the message says why).
    """
    now = now or clock.now()
    if actor is not None:
        _require_manager(offering, actor)
    check_offering(offering)
    if athlete.role != ATHLETE or athlete.tenant_id != offering.tenant_id:
        raise BookingError("Choose an athlete of this organization.")
    if first_start.tzinfo is None:
        raise BookingError("That time is not valid.")
    starts = wall_times(first_start, coach_timezone(offering.coach), interval_weeks, count, until)
    tz, conflicts = _check(offering, starts, now)
    if offering.capacity > 1:  # a group session the athlete already has a place in is no new place
        mine = _athletes_places(offering, athlete, starts)
        lines = _lines_waiting(offering, athlete, starts)  # its free seats are kept for the line
        conflicts = [why or ("the athlete already has a place in this session" if start in mine else None)
                     or ("others are on the waitlist for its free seat" if start in lines else None)
                     for start, why in zip(starts, conflicts)]
    if conflicts[0] is not None:
        raise BookingError(f"The first session is not a free time ({conflicts[0]}). "
                           "Choose a free time for the first session.")
    duration = timedelta(minutes=offering.duration_minutes)
    return Plan(tz, [Occurrence(i, start, start + duration, why)
                     for i, (start, why) in enumerate(zip(starts, conflicts), start=1)])


def book(offering: Offering, athlete: Membership, first_start: datetime, interval_weeks: int, count: int | None,
         until: date | None, expected: str, actor: Membership, note: str = "",
         now: datetime | None = None) -> BookingSeries:
    """Book every free occurrence of the plan the person saw (``expected`` is its :attr:`Plan.digest`).

    The bookings are confirmed (the coach, or staff for them, books them). All or nothing: a plan that reads
    differently now, or a time taken meanwhile, raises :class:`PlanChanged` and the caller rolls back.
    """
    now = now or clock.now()
    current = plan(offering, athlete, first_start, interval_weeks, count, until, actor, now)
    if current.digest != expected:
        raise PlanChanged("Something changed since the preview: nothing was booked. Check the times below "
                          "and confirm again.")
    booked = current.bookable
    series = BookingSeries(
        tenant_id=offering.tenant_id, offering_id=offering.id, coach_membership_id=offering.coach_membership_id,
        athlete_membership_id=athlete.id, created_by_membership_id=actor.id, interval_weeks=interval_weeks,
        occurrences=len(booked), until_date=until, first_starts_at=booked[0].starts_at, timezone=current.timezone)
    db.session.add(series)
    db.session.flush()
    bookings: list[Booking] = []
    for index, occurrence in enumerate(booked, start=1):
        booking = _book_one(lambda o=occurrence: request_booking(offering, athlete, o.starts_at, note, actor,
                                                                 now=now, confirm=True, series_batch=True))
        booking.series_id, booking.series_index = series.id, index
        bookings.append(booking)
    db.session.flush()
    _announce(series, "booked", actor, 1, bookings, skipped=current.conflicts)
    audit.record("series.created", actor=actor.user, target_type="booking_series", target_id=series.id,
                 details={"offering": offering.title, "athlete": athlete.user.email, "every_weeks": interval_weeks,
                          "booked": len(booked), "skipped": len(current.conflicts),
                          "first": booked[0].starts_at.isoformat()})
    return series


def _book_one(place):
    """Run one booking of a series; a time taken meanwhile means the whole series reads differently now."""
    try:
        return place()
    except BookingError as exc:
        raise PlanChanged(f"{exc} Nothing was changed: check the times below and confirm again.") from exc


# --- an existing series ------------------------------------------------------------------------------


def get_series(org_id: uuid.UUID, series_id) -> BookingSeries | None:
    sid = parse_uuid(series_id)
    if sid is None:
        return None
    return db.session.scalar(select(BookingSeries).where(BookingSeries.tenant_id == org_id, BookingSeries.id == sid))


def may_view(actor: Membership, series: BookingSeries) -> bool:
    return actor.id in (series.athlete_membership_id, series.coach_membership_id) or manages_calendar(actor,
                                                                                                      series.coach)


def occurrences(series: BookingSeries) -> list[Booking]:
    """Each occurrence's current booking, in order (a moved occurrence is the booking it was moved to)."""
    rows = db.session.scalars(select(Booking).where(
        Booking.tenant_id == series.tenant_id, Booking.series_id == series.id)
        .order_by(Booking.series_index, Booking.created_at))
    latest: dict[int, Booking] = {}
    for booking in rows:
        latest[booking.series_index] = booking
    return [latest[i] for i in sorted(latest)]


def _later_live(series: BookingSeries, from_index: int) -> list[Booking]:
    later = [b for b in occurrences(series) if b.series_index >= from_index and b.status in LIVE_STATUSES]
    if not later:
        raise BookingError(f"Occurrence {from_index} and later have nothing left to change.")
    return later


def _settle_status(series: BookingSeries) -> None:
    """Once none of its occurrences holds a time any more, the series is ``ended`` if any of them took place
    (ended, or the athlete did not show), else ``cancelled``. A compare-and-swap on ``active``: idempotent."""
    held = dict(db.session.execute(select(Booking.status, func.count()).where(
        Booking.tenant_id == series.tenant_id, Booking.series_id == series.id,
        Booking.status.in_((*LIVE_STATUSES, *TOOK_PLACE))).group_by(Booking.status)).all())
    if any(held.get(s) for s in LIVE_STATUSES):
        return
    db.session.execute(update(BookingSeries).where(
        BookingSeries.tenant_id == series.tenant_id, BookingSeries.id == series.id, BookingSeries.status == "active")
        .values(status="ended" if held else "cancelled"))
    db.session.refresh(series)


def occurrence_settled(tenant_id: uuid.UUID, booking_id: uuid.UUID) -> str | None:
    """An occurrence stopped holding its time (it ended, was cancelled, declined or expired): the series ends
    when it was the last. The series' status afterwards, or ``None`` for a booking of no series."""
    series = db.session.scalar(select(BookingSeries).join(Booking, (Booking.tenant_id == BookingSeries.tenant_id)
                                                         & (Booking.series_id == BookingSeries.id))
                               .where(Booking.tenant_id == tenant_id, Booking.id == booking_id))
    if series is None:
        return None
    if series.status == "active":
        _settle_status(series)
    return series.status


def cancel_from(series: BookingSeries, from_index: int, actor: Membership, now: datetime | None = None) -> int:
    """Cancel occurrence ``from_index`` and every later one that is still live, in the caller's one transaction;
    each cancellation is the lifecycle's own (late-cancellation rules, notifications, audit). How many."""
    now = now or clock.now()
    _require_manager_of(series, actor)
    later = [b for b in _later_live(series, from_index) if b.starts_at > now]
    if not later:
        raise BookingError("Those sessions have already taken place.")
    for booking in later:
        transition(booking, "cancel", actor, now=now, series_batch=True)
    _announce(series, "cancelled", actor, from_index, later)
    _settle_status(series)
    audit.record("series.cancelled", actor=actor.user, target_type="booking_series", target_id=series.id,
                 details={"from": from_index, "cancelled": len(later), "status": series.status})
    return len(later)


def _require_manager_of(series: BookingSeries, actor: Membership) -> None:
    if not manages_calendar(actor, series.coach):
        raise BookingError("Only the coach or a scheduler of the organization can change a recurring series.")


def plan_move(series: BookingSeries, from_index: int, weekday: int, minute: int, actor: Membership | None = None,
              now: datetime | None = None, weeks: int = 0) -> Plan:
    """Occurrence ``from_index`` and the later live ones moved to ``weekday`` (Monday = 0) at ``minute`` on the
    coach's clock, each in its own week or ``weeks`` weeks later (earlier when negative); their conflicts,
    treating the times they give up as free.

    :raises BookingError: the numbers are out of range, or the first new time would come before an earlier
        occurrence that stays (the series would change its order).
    """
    now = now or clock.now()
    if actor is not None:
        _require_manager_of(series, actor)
    if weekday not in range(7):
        raise BookingError("Choose a day of the week.")
    if not 0 <= minute < 1440:
        raise BookingError("Enter a time like 09:00.")
    if not -MAX_SHIFT_WEEKS <= weeks <= MAX_SHIFT_WEEKS:
        raise BookingError(f"Move by at most {MAX_SHIFT_WEEKS} weeks either way.")
    rows = occurrences(series)
    later = [b for b in rows if b.series_index >= from_index and b.is_live and b.starts_at > now]
    if not later:
        _later_live(series, from_index)  # says which: nothing left at all, or only sessions that took place
        raise BookingError("Those sessions have already taken place.")
    offering = later[0].offering
    zone = ZoneInfo(series.timezone)
    starts = []
    for booking in later:
        day = booking.starts_at.astimezone(zone).date()
        starts.append(slotlib.wall_to_utc(day + timedelta(days=weekday - day.weekday(), weeks=weeks), minute, zone))
    kept = [b for b in rows if b.series_index < later[0].series_index and b.status != "cancelled"]
    if kept and starts[0] <= kept[-1].starts_at:
        raise BookingError(f"The new first time comes before occurrence {kept[-1].series_index}, which stays: "
                           "choose a later day or week.")
    given_up = [(busy_from, busy_until) for busy_from, busy_until in db.session.execute(
        select(CoachingSession.busy_from, CoachingSession.busy_until).where(
            CoachingSession.tenant_id == series.tenant_id,
            CoachingSession.id.in_([b.session_id for b in later])))]
    _, conflicts = _check(offering, starts, now, ignore=given_up if offering.capacity == 1 else (),
                          tz=series.timezone)
    if offering.capacity > 1:
        lines = _lines_waiting(offering, series.athlete, starts)
        conflicts = [why or ("others are on the waitlist for its free seat" if start in lines else None)
                     for start, why in zip(starts, conflicts)]
    duration = timedelta(minutes=offering.duration_minutes)
    return Plan(series.timezone, [Occurrence(b.series_index, start, start + duration, why, b)
                                  for b, start, why in zip(later, starts, conflicts)])


def move_from(series: BookingSeries, from_index: int, weekday: int, minute: int, expected: str, actor: Membership,
              now: datetime | None = None, weeks: int = 0) -> Plan:
    """Move occurrence ``from_index`` and later as :func:`plan_move` shows, all or nothing: any conflict (or a
    plan that reads differently from ``expected``) refuses the whole move."""
    now = now or clock.now()
    moved = plan_move(series, from_index, weekday, minute, actor, now, weeks)
    if moved.digest != expected:
        raise PlanChanged("Something changed since the preview: nothing was moved. Check the times below "
                          "and confirm again.")
    if moved.conflicts:
        raise BookingError("Some of the new times are not free: nothing was moved. Choose another day or time.")
    # Moving later, the last goes first: an occurrence may move onto the time the next one gives up (a shift by
    # a week), which must be free by then; moving earlier, the first goes first for the same reason.
    later = moved.occurrences[0].starts_at > moved.occurrences[0].booking.starts_at
    replaced: list[Booking] = []
    for occurrence in reversed(moved.occurrences) if later else moved.occurrences:
        booking = occurrence.booking
        new = _book_one(lambda o=occurrence: reschedule_booking(o.booking, o.starts_at, actor, now=now,
                                                                by_manager=True, series_batch=True))
        new.series_id, new.series_index = series.id, booking.series_index
        replaced.append(new)
    if later:
        replaced.reverse()
    db.session.flush()
    _announce(series, "moved", actor, from_index, replaced, previous=[o.booking for o in moved.occurrences])
    audit.record("series.moved", actor=actor.user, target_type="booking_series", target_id=series.id,
                 details={"from": from_index, "moved": len(moved.occurrences),
                          "to": f"{WEEKDAYS[weekday]} {minutes_label(minute)}", "weeks": weeks})
    return moved


def _announce(series: BookingSeries, action: str, actor: Membership, from_index: int, bookings: list[Booking],
              previous: list[Booking] = (), skipped: list[Occurrence] = ()) -> None:
    """The action's own event (``SERIES_CHANGE`` in :mod:`coach.booking.events`), in the caller's transaction:
    what people are told, once each, instead of once per occurrence."""
    emit(SERIES_TOPICS[action], {
        "series_id": str(series.id), "action": action, "actor_membership_id": str(actor.id),
        "from_index": from_index, "booking_ids": [str(b.id) for b in bookings],
        "calendar_sequences": [b.calendar_sequence for b in bookings],
        "previous_ids": [str(b.id) for b in previous],
        "skipped": [[o.starts_at.isoformat(), o.conflict] for o in skipped],
    })


def series_label(series: BookingSeries) -> str:
    """"weekly" or "every 2 weeks"."""
    return "weekly" if series.interval_weeks == 1 else f"every {series.interval_weeks} weeks"
