"""``slots``: how long the pure slot computation takes for a busy coach's month.

``coach.booking.slots.compute_slots`` is timed in this process, alone: no server, no database (the
four queries that load its input are not part of this figure). Scenario: one coach in
Europe/Berlin, a 30-day window starting Monday 16 March 2026 (it crosses the change to summer
time), 10 weekly intervals (Mon–Fri 08:00–12:00 and 13:00–18:00), 5 date overrides (two closed
days, three with other hours), 2 ranges of time off, 200 held sessions as busy ranges (197 seeded
random ones of 30–90 minutes and 3 open group sessions, all widened by 10-minute buffers), and a 60-minute
offering with 15 minutes before and 10 after, a 15-minute step, 2 hours' notice and at most
6 a day.

``BENCH_RUNS`` timed calls (default 200) after ``BENCH_WARMUP_RUNS`` (default 20) untimed ones.
Target: median < 5 ms. Last line: ``median_ms=... p95_ms=... slots=...``.
"""
from __future__ import annotations

import os
import platform
import random
import sys
import time
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from bench import harness
from coach.booking.slots import Interval, OpenSession, SlotRules, compute_slots

UTC = timezone.utc
TARGET_MEDIAN_MS = 5.0
WINDOW_START = datetime(2026, 3, 15, 23, tzinfo=UTC)  # Monday 16 March 00:00 in Berlin
WINDOW_DAYS = 30
NOW = WINDOW_START - timedelta(hours=12)


def scenario() -> tuple[SlotRules, datetime, datetime, datetime]:
    rng = random.Random(20260316)
    window_end = WINDOW_START + timedelta(days=WINDOW_DAYS)
    weekly = {weekday: [Interval(8 * 60, 12 * 60), Interval(13 * 60, 18 * 60)] for weekday in range(5)}
    overrides = {
        date(2026, 3, 20): [],  # closed
        date(2026, 3, 28): [Interval(10 * 60, 14 * 60)],  # a Saturday opened
        date(2026, 3, 29): [Interval(1 * 60, 5 * 60)],  # the night the clocks go forward
        date(2026, 4, 3): [],  # closed
        date(2026, 4, 8): [Interval(7 * 60, 11 * 60), Interval(15 * 60, 21 * 60)],
    }
    buffer = timedelta(minutes=10)
    busy = []
    for _ in range(200 - 3):  # the 3 group sessions below make 200
        start = WINDOW_START + timedelta(minutes=15 * rng.randrange(WINDOW_DAYS * 96))
        busy.append((start - buffer, start + timedelta(minutes=rng.choice((30, 45, 60, 90))) + buffer))
    time_off = [(datetime(2026, 3, 24, 11, tzinfo=UTC), datetime(2026, 3, 24, 15, tzinfo=UTC)),
                (datetime(2026, 4, 9, 6, tzinfo=UTC), datetime(2026, 4, 11, 6, tzinfo=UTC))]
    open_sessions = []
    for day in (17, 19, 31):
        start = datetime(2026, 3, day, 16, tzinfo=UTC)
        busy.append((start - buffer, start + timedelta(hours=1) + buffer))
        open_sessions.append(OpenSession(start, start + timedelta(hours=1), 4))
    # Some of the held sessions are of this offering: they count towards the daily limit.
    day_counts = Counter(start.astimezone(ZoneInfo("Europe/Berlin")).date() for start, _ in busy[:40])
    rules = SlotRules(timezone="Europe/Berlin", duration=60, weekly=weekly, overrides=overrides,
                      time_off=time_off, busy=busy, buffer_before=15, buffer_after=10, min_notice=120,
                      horizon_days=60, max_per_day=6, day_counts=day_counts, open_sessions=open_sessions, step=15)
    return rules, WINDOW_START, window_end, NOW


def run() -> str:
    runs = harness.env_int("BENCH_RUNS", 200)
    warmup = harness.env_int("BENCH_WARMUP_RUNS", 20)
    today = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"# bench slots  ({today}; {os.cpu_count()} cores; Python {platform.python_version()}; "
          f"{runs} timed calls after {warmup} warm-up calls)")
    sys.stdout.flush()
    rules, window_start, window_end, now = scenario()
    harness.say(f"compute_slots: {WINDOW_DAYS}-day window, {sum(len(v) for v in rules.weekly.values())} weekly "
                f"intervals, {len(rules.overrides)} overrides, {len(rules.busy)} busy ranges")
    for _ in range(warmup):
        slots = compute_slots(rules, window_start, window_end, now)
    timings_ms = []
    for _ in range(runs):
        started = time.perf_counter_ns()
        slots = compute_slots(rules, window_start, window_end, now)
        timings_ms.append((time.perf_counter_ns() - started) / 1e6)
    timings_ms.sort()
    median, p95 = harness.percentile(timings_ms, 50), harness.percentile(timings_ms, 95)
    print()
    harness.print_table(["function", "runs", "median ms", "p95 ms", "min ms", "max ms", "slots returned"],
                        [["compute_slots (30 days, 200 busy)", runs, median, p95, timings_ms[0], timings_ms[-1],
                          len(slots)]])
    met = "met" if median < TARGET_MEDIAN_MS else "MISSED"
    print(f"\nmedian {median:.3f} ms (target < {TARGET_MEDIAN_MS:g} ms: {met})")
    return harness.key_values(median_ms=median, p95_ms=p95, slots=len(slots))
