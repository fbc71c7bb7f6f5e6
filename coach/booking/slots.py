"""Which times a coach can be booked for: a pure function, no Flask, no database.

Everything is an instant in UTC except the availability itself, which a coach
states in wall-clock minutes of their own time zone ("Mondays 09:00–12:00").
Each availability interval is turned into a UTC range on its own date, so a
session is always exactly its duration long, also on the nights the clocks
change: an interval of 00:00–04:00 on the night clocks go forward is three real
hours long, and offers three hours of sessions.

Wall-clock times that do not exist (the skipped hour) resolve forward, the way
``zoneinfo`` reads them with ``fold=0``; times that happen twice (the repeated
hour) resolve to their first occurrence.

Busy time is compared *with buffers on both sides*: a new session's range
widened by its buffers must not overlap any held session's range widened by
that session's buffers. This is exactly the rule the database's exclusion
constraint enforces, so every slot offered here can be booked.
"""
from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

UTC = timezone.utc
MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True)
class Interval:
    """Wall-clock minutes of one day, ``start`` inclusive, ``end`` exclusive (``end`` may be 1440)."""

    start: int
    end: int


@dataclass(frozen=True)
class OpenSession:
    """A held group session of this offering that still has seats: it is offered although it is busy."""

    starts_at: datetime
    ends_at: datetime
    seats_left: int


@dataclass(frozen=True)
class Slot:
    starts_at: datetime
    ends_at: datetime
    seats_left: int | None = None  # set for a group session that already has participants


@dataclass
class SlotRules:
    """What the offering and the coach's calendar say; all durations in minutes.

    :param weekly: weekday (Monday = 0) → intervals.
    :param overrides: a date in the coach's zone → that day's intervals instead of the
        weekly ones; an empty list closes the day.
    :param time_off: UTC ranges in which no session may lie.
    :param busy: UTC ranges of held sessions, already widened by their own buffers.
    :param day_counts: the coach's date → sessions of this offering already held that day.
    """

    timezone: str
    duration: int
    weekly: Mapping[int, Sequence[Interval]]
    overrides: Mapping[date, Sequence[Interval]] = field(default_factory=dict)
    time_off: Sequence[tuple[datetime, datetime]] = ()
    busy: Sequence[tuple[datetime, datetime]] = ()
    buffer_before: int = 0
    buffer_after: int = 0
    min_notice: int = 0
    horizon_days: int = 60
    max_per_day: int | None = None
    day_counts: Mapping[date, int] = field(default_factory=dict)
    open_sessions: Sequence[OpenSession] = ()
    step: int | None = None  # minutes between slot starts; defaults to the duration


def wall_to_utc(day: date, minute: int, zone: ZoneInfo) -> datetime:
    """The UTC instant of ``minute`` past midnight on ``day`` in ``zone`` (1440 = next midnight)."""
    if minute >= MINUTES_PER_DAY:
        day, minute = day + timedelta(days=1), minute - MINUTES_PER_DAY
    local = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=zone)
    return local.astimezone(UTC)


def merge_ranges(ranges: Iterable[tuple[datetime, datetime]]) -> tuple[list[datetime], list[datetime]]:
    """Sorted, merged ranges as two parallel lists (starts, ends) for bisection."""
    starts: list[datetime] = []
    ends: list[datetime] = []
    for start, end in sorted(r for r in ranges if r[0] < r[1]):
        if ends and start <= ends[-1]:
            if end > ends[-1]:
                ends[-1] = end
        else:
            starts.append(start)
            ends.append(end)
    return starts, ends


def _overlaps(starts: list[datetime], ends: list[datetime], start: datetime, end: datetime) -> bool:
    """Does [start, end) overlap any merged range?"""
    i = bisect.bisect_left(ends, start)
    # ends[i] is the first end >= start; a range ending exactly at start does not overlap
    while i < len(starts) and ends[i] <= start:
        i += 1
    return i < len(starts) and starts[i] < end


def compute_slots(rules: SlotRules, window_start: datetime, window_end: datetime, now: datetime) -> list[Slot]:
    """Bookable slots whose start lies in ``[window_start, window_end)``, in UTC, sorted.

    A slot lies inside one availability interval, starts no earlier than ``now`` plus the
    minimum notice and no later than ``now`` plus the horizon, does not overlap time off,
    and (with both buffers) overlaps no busy range; days that reached ``max_per_day``
    offer nothing more.
    """
    zone = ZoneInfo(rules.timezone)
    duration = timedelta(minutes=rules.duration)
    step = timedelta(minutes=rules.step or rules.duration)
    before, after = timedelta(minutes=rules.buffer_before), timedelta(minutes=rules.buffer_after)
    earliest = max(window_start, now + timedelta(minutes=rules.min_notice))
    latest = min(window_end, now + timedelta(days=rules.horizon_days))  # exclusive bound on starts
    if earliest >= latest:
        return []

    busy_starts, busy_ends = merge_ranges(rules.busy)
    off_starts, off_ends = merge_ranges(rules.time_off)

    slots: dict[datetime, Slot] = {}
    # Dates in the coach's zone whose intervals can reach the window (a day's interval lies within it).
    day = earliest.astimezone(zone).date() - timedelta(days=1)
    last_day = latest.astimezone(zone).date()
    while day <= last_day:
        if rules.max_per_day is None or rules.day_counts.get(day, 0) < rules.max_per_day:
            intervals = rules.overrides[day] if day in rules.overrides else rules.weekly.get(day.weekday(), ())
            for interval in intervals:
                start = wall_to_utc(day, interval.start, zone)
                end = wall_to_utc(day, interval.end, zone)
                slot_start = start
                while slot_start + duration <= end:
                    slot_end = slot_start + duration
                    if (earliest <= slot_start < latest
                            and not _overlaps(off_starts, off_ends, slot_start, slot_end)
                            and not _overlaps(busy_starts, busy_ends, slot_start - before, slot_end + after)):
                        slots[slot_start] = Slot(slot_start, slot_end)
                    slot_start += step
        day += timedelta(days=1)

    for session in rules.open_sessions:
        if (session.seats_left > 0 and earliest <= session.starts_at < latest
                and not _overlaps(off_starts, off_ends, session.starts_at, session.ends_at)):
            slots[session.starts_at] = Slot(session.starts_at, session.ends_at, session.seats_left)
    return [slots[key] for key in sorted(slots)]


def local_date(instant: datetime, tz: str) -> date:
    """The date of ``instant`` in ``tz``."""
    return instant.astimezone(ZoneInfo(tz)).date()
