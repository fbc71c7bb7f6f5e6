"""The pure slot computation (``coach.booking.slots``): which times an athlete is offered.

No database and no app: every test builds :class:`SlotRules` by hand and reads the returned UTC
slots as a coach (their local wall-clock time) or as an athlete elsewhere would see them.

The expected instants around the 2026 clock changes are written out by hand, not computed with the
code under test:

* Europe/Berlin: CET (+1) → CEST (+2) on Sun 29 Mar at 02:00; back on Sun 25 Oct at 03:00.
* America/New_York: EST (−5) → EDT (−4) on Sun 8 Mar at 02:00; back on Sun 1 Nov at 02:00.
* Australia/Sydney: AEDT (+11) → AEST (+10) on Sun 5 Apr at 03:00; forward on Sun 4 Oct at 02:00.
* Asia/Kolkata: +05:30 all year.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coach.booking.slots import Interval, OpenSession, Slot, SlotRules, compute_slots, wall_to_utc

UTC = timezone.utc
NOW = datetime(2026, 1, 1, tzinfo=UTC)  # well before every day used below
NINE_TO_TWELVE = [Interval(9 * 60, 12 * 60)]
EVERY_DAY_NINE_TO_TWELVE = {weekday: NINE_TO_TWELVE for weekday in range(7)}


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def rules(tz: str = "Europe/Berlin", duration: int = 60, weekly=None, **values) -> SlotRules:
    values.setdefault("horizon_days", 400)
    return SlotRules(timezone=tz, duration=duration,
                     weekly=EVERY_DAY_NINE_TO_TWELVE if weekly is None else weekly, **values)


def slots_on(r: SlotRules, day: date, now: datetime = NOW) -> list[Slot]:
    """The slots whose start falls on ``day`` in the coach's zone (window generously wider)."""
    found = compute_slots(r, utc(day.year, day.month, day.day) - timedelta(days=1),
                          utc(day.year, day.month, day.day) + timedelta(days=2), now)
    zone = ZoneInfo(r.timezone)
    return [s for s in found if s.starts_at.astimezone(zone).date() == day]


def starts(slots: list[Slot]) -> list[datetime]:
    return [s.starts_at for s in slots]


def local_hhmm(slots: list[Slot], tz: str) -> list[str]:
    return [s.starts_at.astimezone(ZoneInfo(tz)).strftime("%H:%M") for s in slots]


def assert_exact_durations(slots: list[Slot], minutes: int) -> None:
    for s in slots:
        assert s.ends_at - s.starts_at == timedelta(minutes=minutes), s


# --- daylight saving time: the hours a coach states stay their local hours --------------------------

# (zone, the three days around one transition, the UTC start of the 09:00 slot on each of them)
TRANSITIONS = {
    "berlin-spring-forward": ("Europe/Berlin", date(2026, 3, 28),
                              [utc(2026, 3, 28, 8), utc(2026, 3, 29, 7), utc(2026, 3, 30, 7)]),
    "berlin-fall-back": ("Europe/Berlin", date(2026, 10, 24),
                         [utc(2026, 10, 24, 7), utc(2026, 10, 25, 8), utc(2026, 10, 26, 8)]),
    "new-york-spring-forward": ("America/New_York", date(2026, 3, 7),
                                [utc(2026, 3, 7, 14), utc(2026, 3, 8, 13), utc(2026, 3, 9, 13)]),
    "new-york-fall-back": ("America/New_York", date(2026, 10, 31),
                           [utc(2026, 10, 31, 13), utc(2026, 11, 1, 14), utc(2026, 11, 2, 14)]),
    "sydney-fall-back-april": ("Australia/Sydney", date(2026, 4, 4),
                               [utc(2026, 4, 3, 22), utc(2026, 4, 4, 23), utc(2026, 4, 5, 23)]),
    "sydney-spring-forward-october": ("Australia/Sydney", date(2026, 10, 3),
                                      [utc(2026, 10, 2, 23), utc(2026, 10, 3, 22), utc(2026, 10, 4, 22)]),
}


@pytest.mark.parametrize("case", TRANSITIONS.values(), ids=TRANSITIONS.keys())
def test_nine_to_twelve_rule_offers_nine_ten_eleven_local_on_the_day_before_of_and_after_a_clock_change(case):
    tz, first_day, nine_oclock_utc = case
    r = rules(tz)
    for n, expected_nine in enumerate(nine_oclock_utc):
        day = first_day + timedelta(days=n)
        found = slots_on(r, day)
        assert local_hhmm(found, tz) == ["09:00", "10:00", "11:00"], day
        assert starts(found) == [expected_nine + timedelta(hours=h) for h in range(3)], day
        assert_exact_durations(found, 60)
    # The clock change is visible in UTC: the same local hour is one real hour apart across it.
    assert abs(nine_oclock_utc[0] - nine_oclock_utc[2] + timedelta(days=2)) == timedelta(hours=1)


def test_berlin_spring_forward_keeps_nine_oclock_local():
    found = slots_on(rules("Europe/Berlin"), date(2026, 3, 29))
    assert starts(found) == [utc(2026, 3, 29, 7), utc(2026, 3, 29, 8), utc(2026, 3, 29, 9)]
    assert found[0].starts_at.astimezone(ZoneInfo("Europe/Berlin")).isoformat() == "2026-03-29T09:00:00+02:00"


def test_berlin_fall_back_keeps_nine_oclock_local():
    found = slots_on(rules("Europe/Berlin"), date(2026, 10, 25))
    assert starts(found) == [utc(2026, 10, 25, 8), utc(2026, 10, 25, 9), utc(2026, 10, 25, 10)]
    assert found[0].starts_at.astimezone(ZoneInfo("Europe/Berlin")).isoformat() == "2026-10-25T09:00:00+01:00"


def test_new_york_spring_forward_keeps_nine_oclock_local():
    found = slots_on(rules("America/New_York"), date(2026, 3, 8))
    assert found[0].starts_at == utc(2026, 3, 8, 13)
    assert local_hhmm(found, "America/New_York") == ["09:00", "10:00", "11:00"]


def test_sydney_april_fall_back_keeps_nine_oclock_local():
    found = slots_on(rules("Australia/Sydney"), date(2026, 4, 5))
    assert found[0].starts_at == utc(2026, 4, 4, 23)
    assert local_hhmm(found, "Australia/Sydney") == ["09:00", "10:00", "11:00"]


# Spring forward: an interval 01:00–04:00 that night holds only two real hours.
SKIPPED_HOUR_NIGHTS = {
    # zone, night, the UTC instants of 01:00 (before the gap) and of 04:00 (after it)
    "berlin": ("Europe/Berlin", date(2026, 3, 29), utc(2026, 3, 29, 0), utc(2026, 3, 29, 2)),
    "new-york": ("America/New_York", date(2026, 3, 8), utc(2026, 3, 8, 6), utc(2026, 3, 8, 8)),
    "sydney": ("Australia/Sydney", date(2026, 10, 4), utc(2026, 10, 3, 15), utc(2026, 10, 3, 17)),
}


@pytest.mark.parametrize("case", SKIPPED_HOUR_NIGHTS.values(), ids=SKIPPED_HOUR_NIGHTS.keys())
def test_interval_across_the_skipped_hour_offers_only_two_hours_of_full_length_sessions(case):
    tz, night, one_oclock, four_oclock = case
    r = rules(tz, overrides={night: [Interval(60, 240)]})
    hourly = slots_on(r, night)
    assert starts(hourly) == [one_oclock, one_oclock + timedelta(hours=1)]
    assert hourly[-1].ends_at == four_oclock
    assert_exact_durations(hourly, 60)
    # The 01:00 session ends at 03:00 on the wall clock, and lasts one real hour.
    assert local_hhmm(hourly, tz) == ["01:00", "03:00"]
    assert hourly[0].ends_at.astimezone(ZoneInfo(tz)).strftime("%H:%M") == "03:00"

    half_hourly = slots_on(rules(tz, duration=30, overrides={night: [Interval(60, 240)]}), night)
    assert len(half_hourly) == 4
    assert_exact_durations(half_hourly, 30)

    ninety = slots_on(rules(tz, duration=90, overrides={night: [Interval(60, 240)]}), night)
    assert starts(ninety) == [one_oclock]  # a second one would end after 04:00
    assert_exact_durations(ninety, 90)


# Fall back: an interval 00:00–04:00 that night holds five real hours.
REPEATED_HOUR_NIGHTS = {
    # zone, night, the UTC instants of 00:00 and of 04:00
    "berlin": ("Europe/Berlin", date(2026, 10, 25), utc(2026, 10, 24, 22), utc(2026, 10, 25, 3)),
    "new-york": ("America/New_York", date(2026, 11, 1), utc(2026, 11, 1, 4), utc(2026, 11, 1, 9)),
    "sydney": ("Australia/Sydney", date(2026, 4, 5), utc(2026, 4, 4, 13), utc(2026, 4, 4, 18)),
}


@pytest.mark.parametrize("case", REPEATED_HOUR_NIGHTS.values(), ids=REPEATED_HOUR_NIGHTS.keys())
def test_interval_across_the_repeated_hour_offers_five_hours_of_full_length_sessions(case):
    tz, night, midnight, four_oclock = case
    found = slots_on(rules(tz, overrides={night: [Interval(0, 240)]}), night)
    assert starts(found) == [midnight + timedelta(hours=h) for h in range(5)]
    assert found[-1].ends_at == four_oclock
    assert_exact_durations(found, 60)


def test_berlin_repeated_hour_is_offered_twice_once_in_summer_time_once_in_winter_time():
    found = slots_on(rules("Europe/Berlin", overrides={date(2026, 10, 25): [Interval(0, 240)]}), date(2026, 10, 25))
    berlin = ZoneInfo("Europe/Berlin")
    assert [s.starts_at.astimezone(berlin).isoformat()[11:] for s in found] == [
        "00:00:00+02:00", "01:00:00+02:00", "02:00:00+02:00", "02:00:00+01:00", "03:00:00+01:00"]


def test_a_skipped_wall_time_resolves_forward_and_a_repeated_one_to_its_first_occurrence():
    berlin = ZoneInfo("Europe/Berlin")
    # 02:30 does not exist on 29 March: it is read as 01:30 UTC, that is 03:30 summer time.
    assert wall_to_utc(date(2026, 3, 29), 150, berlin) == utc(2026, 3, 29, 1, 30)
    # 02:30 happens twice on 25 October: the first one, still in summer time.
    assert wall_to_utc(date(2026, 10, 25), 150, berlin) == utc(2026, 10, 25, 0, 30)
    # 1440 is the next midnight.
    assert wall_to_utc(date(2026, 3, 28), 1440, berlin) == utc(2026, 3, 28, 23)


def test_an_interval_ending_at_midnight_offers_its_last_hour():
    found = slots_on(rules(weekly={5: [Interval(22 * 60, 1440)]}), date(2026, 3, 28))  # Saturday
    assert starts(found) == [utc(2026, 3, 28, 21), utc(2026, 3, 28, 22)]
    assert found[-1].ends_at == utc(2026, 3, 28, 23)  # Sunday 00:00, still winter time


# --- a zone with a half-hour offset, and a coach and athlete in different zones ---------------------

def test_kolkata_nine_oclock_is_half_past_three_utc_all_year():
    for day in (date(2026, 1, 14), date(2026, 3, 29), date(2026, 7, 1), date(2026, 10, 25)):
        found = slots_on(rules("Asia/Kolkata"), day)
        assert starts(found) == [datetime.combine(day, time(3, 30), UTC) + timedelta(hours=h) for h in range(3)]
        assert_exact_durations(found, 60)


def test_max_per_day_counts_the_coachs_local_date_not_the_utc_date():
    # Kolkata 00:00–02:00 on 10 January is 18:30–20:30 UTC on 9 January.
    r = dict(tz="Asia/Kolkata", weekly={5: [Interval(0, 120)]}, max_per_day=1)  # 10 Jan 2026 is a Saturday
    window = (utc(2026, 1, 9), utc(2026, 1, 10, 12))
    assert starts(compute_slots(rules(**r, day_counts={date(2026, 1, 10): 1}), *window, NOW)) == []
    assert starts(compute_slots(rules(**r, day_counts={date(2026, 1, 9): 1}), *window, NOW)) == [
        utc(2026, 1, 9, 18, 30), utc(2026, 1, 9, 19, 30)]


# A Berlin coach's 09:00 as an athlete in New York sees it: usually 03:00, but 04:00 in the weeks
# when the US has already moved to summer time (8–28 March) or not yet left it (25–31 October).
BERLIN_NINE_IN_NEW_YORK = {
    "both-winter-early-march": (date(2026, 3, 2), utc(2026, 3, 2, 8), "03:00", "-05:00"),
    "us-summer-eu-winter-march": (date(2026, 3, 9), utc(2026, 3, 9, 8), "04:00", "-04:00"),
    "us-summer-eu-winter-late-march": (date(2026, 3, 28), utc(2026, 3, 28, 8), "04:00", "-04:00"),
    "both-summer-april": (date(2026, 3, 30), utc(2026, 3, 30, 7), "03:00", "-04:00"),
    "both-summer-october": (date(2026, 10, 24), utc(2026, 10, 24, 7), "03:00", "-04:00"),
    "eu-winter-us-summer-late-october": (date(2026, 10, 26), utc(2026, 10, 26, 8), "04:00", "-04:00"),
    "both-winter-november": (date(2026, 11, 2), utc(2026, 11, 2, 8), "03:00", "-05:00"),
}


@pytest.mark.parametrize("case", BERLIN_NINE_IN_NEW_YORK.values(), ids=BERLIN_NINE_IN_NEW_YORK.keys())
def test_berlin_coachs_nine_oclock_is_the_right_instant_and_new_york_time(case):
    day, expected_utc, new_york_time, new_york_offset = case
    first = slots_on(rules("Europe/Berlin"), day)[0]
    assert first.starts_at == expected_utc
    seen = first.starts_at.astimezone(ZoneInfo("America/New_York"))
    assert (seen.date(), seen.strftime("%H:%M"), seen.isoformat()[-6:]) == (day, new_york_time, new_york_offset)


def test_new_york_coachs_nine_oclock_seen_from_berlin_is_three_pm_or_two_pm_in_the_odd_weeks():
    berlin = ZoneInfo("Europe/Berlin")
    usual = slots_on(rules("America/New_York"), date(2026, 4, 15))[0].starts_at.astimezone(berlin)
    odd = slots_on(rules("America/New_York"), date(2026, 3, 16))[0].starts_at.astimezone(berlin)
    assert usual.strftime("%H:%M") == "15:00"
    assert odd.strftime("%H:%M") == "14:00"


# --- overrides, time off, busy time and buffers -------------------------------------------------------

WEDNESDAY = date(2026, 1, 14)


def test_an_override_replaces_the_weekly_hours_of_that_date_only():
    r = rules(overrides={WEDNESDAY: [Interval(14 * 60, 16 * 60)]})
    assert local_hhmm(slots_on(r, WEDNESDAY), "Europe/Berlin") == ["14:00", "15:00"]
    assert local_hhmm(slots_on(r, WEDNESDAY + timedelta(days=1)), "Europe/Berlin") == ["09:00", "10:00", "11:00"]
    assert local_hhmm(slots_on(r, WEDNESDAY - timedelta(days=7)), "Europe/Berlin") == ["09:00", "10:00", "11:00"]


def test_an_empty_override_closes_the_day():
    r = rules(overrides={WEDNESDAY: []})
    assert slots_on(r, WEDNESDAY) == []
    assert len(slots_on(r, WEDNESDAY + timedelta(days=1))) == 3


def test_an_override_opens_a_day_without_weekly_hours():
    r = rules(weekly={0: NINE_TO_TWELVE}, overrides={WEDNESDAY: [Interval(18 * 60, 19 * 60)]})
    assert local_hhmm(slots_on(r, WEDNESDAY), "Europe/Berlin") == ["18:00"]
    assert slots_on(r, WEDNESDAY + timedelta(days=1)) == []


def test_time_off_removes_exactly_the_slots_it_overlaps():
    # Berlin is UTC+1 in January: 10:30–10:45 local is 09:30–09:45 UTC.
    r = rules(time_off=[(utc(2026, 1, 14, 9, 30), utc(2026, 1, 14, 9, 45))])
    assert local_hhmm(slots_on(r, WEDNESDAY), "Europe/Berlin") == ["09:00", "11:00"]
    # Time off ending as a slot starts, or starting as one ends, leaves it.
    r = rules(time_off=[(utc(2026, 1, 14, 0), utc(2026, 1, 14, 9)), (utc(2026, 1, 14, 10), utc(2026, 1, 14, 12))])
    assert local_hhmm(slots_on(r, WEDNESDAY), "Europe/Berlin") == ["10:00"]


def test_time_off_over_several_days_closes_them():
    r = rules(time_off=[(utc(2026, 1, 13, 12), utc(2026, 1, 16))])
    assert slots_on(r, WEDNESDAY) == [] and slots_on(r, WEDNESDAY + timedelta(days=1)) == []
    assert len(slots_on(r, WEDNESDAY - timedelta(days=1))) == 3
    assert len(slots_on(r, WEDNESDAY + timedelta(days=2))) == 3


def test_busy_time_without_buffers_removes_only_overlapping_slots():
    # A held session 10:00–11:00 local (09:00–10:00 UTC): 09:00 and 11:00 stay, they only touch it.
    r = rules(busy=[(utc(2026, 1, 14, 9), utc(2026, 1, 14, 10))])
    assert local_hhmm(slots_on(r, WEDNESDAY), "Europe/Berlin") == ["09:00", "11:00"]


def test_buffers_widen_the_new_slot_and_exactly_adjacent_busy_time_is_allowed():
    # 15 minutes before and after: the 10:00 local slot (09:00 UTC) needs 08:45–10:15 UTC free.
    buffered = dict(buffer_before=15, buffer_after=15)
    ends_as_buffer_begins = rules(busy=[(utc(2026, 1, 14, 8, 30), utc(2026, 1, 14, 8, 45))], **buffered)
    assert "10:00" in local_hhmm(slots_on(ends_as_buffer_begins, WEDNESDAY), "Europe/Berlin")
    reaches_into_buffer = rules(busy=[(utc(2026, 1, 14, 8, 30), utc(2026, 1, 14, 8, 50))], **buffered)
    assert "10:00" not in local_hhmm(slots_on(reaches_into_buffer, WEDNESDAY), "Europe/Berlin")
    # After the slot: busy from 10:15 UTC is adjacent to 10:00's buffer, busy from 10:10 UTC is not.
    begins_as_buffer_ends = rules(busy=[(utc(2026, 1, 14, 10, 15), utc(2026, 1, 14, 10, 30))], **buffered)
    assert "10:00" in local_hhmm(slots_on(begins_as_buffer_ends, WEDNESDAY), "Europe/Berlin")
    reaches_back_into_buffer = rules(busy=[(utc(2026, 1, 14, 10, 10), utc(2026, 1, 14, 10, 30))], **buffered)
    assert "10:00" not in local_hhmm(slots_on(reaches_back_into_buffer, WEDNESDAY), "Europe/Berlin")


def test_back_to_back_hourly_slots_disappear_when_buffers_reach_a_neighbouring_session():
    # Held 10:00–11:00 local, and the held session's own 10-minute buffers already in its busy range.
    held = (utc(2026, 1, 14, 8, 50), utc(2026, 1, 14, 10, 10))
    assert local_hhmm(slots_on(rules(busy=[held]), WEDNESDAY), "Europe/Berlin") == []
    assert local_hhmm(slots_on(rules(busy=[(utc(2026, 1, 14, 9), utc(2026, 1, 14, 10))], buffer_after=5),
                               WEDNESDAY), "Europe/Berlin") == ["11:00"]
    assert local_hhmm(slots_on(rules(busy=[(utc(2026, 1, 14, 9), utc(2026, 1, 14, 10))], buffer_before=5),
                               WEDNESDAY), "Europe/Berlin") == ["09:00"]


# --- notice, horizon, daily limit --------------------------------------------------------------------

def test_min_notice_hides_slots_starting_too_soon_and_keeps_one_starting_exactly_at_the_notice():
    r = rules(min_notice=60)
    # 08:00 local (07:00 UTC): 09:00 is exactly an hour away.
    assert local_hhmm(slots_on(r, WEDNESDAY, now=utc(2026, 1, 14, 7)), "Europe/Berlin") == ["09:00", "10:00", "11:00"]
    # 08:30 local: 09:00 is only 30 minutes away.
    assert local_hhmm(slots_on(r, WEDNESDAY, now=utc(2026, 1, 14, 7, 30)), "Europe/Berlin") == ["10:00", "11:00"]
    # A day's notice hides everything of today.
    assert slots_on(rules(min_notice=24 * 60), WEDNESDAY, now=utc(2026, 1, 14, 7)) == []


def test_slots_already_started_are_not_offered_without_notice():
    assert local_hhmm(slots_on(rules(), WEDNESDAY, now=utc(2026, 1, 14, 8, 1)), "Europe/Berlin") == ["10:00", "11:00"]


def test_horizon_days_ends_the_bookable_period():
    now = utc(2026, 1, 1)  # Thursday
    found = compute_slots(rules(horizon_days=7), utc(2026, 1, 1), utc(2026, 2, 1), now)
    assert found[-1].starts_at == utc(2026, 1, 7, 10)  # 11:00 Berlin on 7 January
    assert all(s.starts_at < now + timedelta(days=7) for s in found)
    assert len(found) == 7 * 3
    assert compute_slots(rules(horizon_days=0), utc(2026, 1, 1), utc(2026, 2, 1), now) == []


def test_max_per_day_closes_a_date_that_reached_it_and_leaves_the_others():
    r = rules(max_per_day=2, day_counts={WEDNESDAY: 2, WEDNESDAY + timedelta(days=1): 1})
    assert slots_on(r, WEDNESDAY) == []
    assert len(slots_on(r, WEDNESDAY + timedelta(days=1))) == 3
    assert len(slots_on(r, WEDNESDAY + timedelta(days=2))) == 3


# --- open group sessions -----------------------------------------------------------------------------

GROUP_START, GROUP_END = utc(2026, 1, 14, 9), utc(2026, 1, 14, 10)  # 10:00–11:00 Berlin


def test_an_open_group_session_is_offered_with_its_free_seats_although_it_is_busy():
    r = rules(busy=[(GROUP_START, GROUP_END)], open_sessions=[OpenSession(GROUP_START, GROUP_END, 3)])
    found = slots_on(r, WEDNESDAY)
    assert local_hhmm(found, "Europe/Berlin") == ["09:00", "10:00", "11:00"]
    assert [s.seats_left for s in found] == [None, 3, None]


def test_an_open_group_session_is_offered_on_a_day_that_reached_max_per_day():
    # Joining it adds a participant, not a session.
    r = rules(busy=[(GROUP_START, GROUP_END)], open_sessions=[OpenSession(GROUP_START, GROUP_END, 2)],
              max_per_day=1, day_counts={WEDNESDAY: 1})
    assert [(s.starts_at, s.seats_left) for s in slots_on(r, WEDNESDAY)] == [(GROUP_START, 2)]


def test_a_full_group_session_is_not_offered():
    r = rules(busy=[(GROUP_START, GROUP_END)], open_sessions=[OpenSession(GROUP_START, GROUP_END, 0)])
    assert local_hhmm(slots_on(r, WEDNESDAY), "Europe/Berlin") == ["09:00", "11:00"]


def test_an_open_group_session_respects_notice_and_time_off():
    session = OpenSession(GROUP_START, GROUP_END, 3)
    too_soon = rules(busy=[(GROUP_START, GROUP_END)], open_sessions=[session], min_notice=120)
    # 09:00 UTC is only an hour after 08:00 UTC: the session is not offered, 11:00 local still is.
    assert starts(slots_on(too_soon, WEDNESDAY, now=utc(2026, 1, 14, 8))) == [utc(2026, 1, 14, 10)]
    in_time_off = rules(busy=[(GROUP_START, GROUP_END)], open_sessions=[session],
                        time_off=[(utc(2026, 1, 14, 0), utc(2026, 1, 15, 0))])
    assert slots_on(in_time_off, WEDNESDAY) == []


# --- step and window ---------------------------------------------------------------------------------

def test_step_sets_the_distance_between_slot_starts():
    assert local_hhmm(slots_on(rules(step=30), WEDNESDAY), "Europe/Berlin") == [
        "09:00", "09:30", "10:00", "10:30", "11:00"]
    assert local_hhmm(slots_on(rules(step=90), WEDNESDAY), "Europe/Berlin") == ["09:00", "10:30"]
    assert_exact_durations(slots_on(rules(step=15), WEDNESDAY), 60)


def test_a_window_in_the_past_is_empty():
    assert compute_slots(rules(), utc(2026, 1, 5), utc(2026, 1, 12), now=utc(2026, 2, 1)) == []
    assert compute_slots(rules(), utc(2026, 1, 12), utc(2026, 1, 12), now=NOW) == []


def test_only_slots_starting_inside_the_window_are_returned():
    # 10:00 local to 11:00 local (exclusive): just the 10:00 slot.
    found = compute_slots(rules(), utc(2026, 1, 14, 9), utc(2026, 1, 14, 10), NOW)
    assert starts(found) == [utc(2026, 1, 14, 9)]
    # A window beginning 10:30 local does not return the 10:00 slot that is still running.
    found = compute_slots(rules(), utc(2026, 1, 14, 9, 30), utc(2026, 1, 14, 12), NOW)
    assert starts(found) == [utc(2026, 1, 14, 10)]


def test_a_window_starting_late_in_the_evening_utc_includes_the_next_morning_in_sydney():
    # Sydney 09:00 on 14 January (AEDT, +11) is 22:00 UTC on 13 January.
    found = compute_slots(rules("Australia/Sydney"), utc(2026, 1, 13, 21), utc(2026, 1, 14, 2), NOW)
    assert starts(found) == [utc(2026, 1, 13, 22), utc(2026, 1, 13, 23), utc(2026, 1, 14, 0)]


def test_a_window_starting_after_midnight_utc_includes_the_previous_evening_in_new_york():
    # New York 20:00–23:00 on 14 January (EST, −5) is 01:00–04:00 UTC on 15 January.
    r = rules("America/New_York", weekly={2: [Interval(20 * 60, 23 * 60)]})  # Wednesday
    found = compute_slots(r, utc(2026, 1, 15, 0, 30), utc(2026, 1, 15, 12), NOW)
    assert starts(found) == [utc(2026, 1, 15, 1), utc(2026, 1, 15, 2), utc(2026, 1, 15, 3)]
    assert local_hhmm(found, "America/New_York") == ["20:00", "21:00", "22:00"]


# --- properties --------------------------------------------------------------------------------------

ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "UTC",
         "Australia/Lord_Howe",  # half-hour daylight saving shift
         "America/Santiago",  # clocks change at midnight
         "Pacific/Chatham",  # +12:45 / +13:45
         "America/Los_Angeles", "Pacific/Pago_Pago", "Pacific/Kiritimati"]  # far from UTC: −8/−7, −11, +14
CLOCK_CHANGES_2026 = [date(2026, 3, 8), date(2026, 3, 29), date(2026, 4, 5), date(2026, 9, 6), date(2026, 10, 4),
                      date(2026, 10, 25), date(2026, 11, 1), date(2026, 4, 4), date(2026, 9, 27)]


def independent_wall_to_utc(day: date, minute: int, tz: str) -> datetime:
    """The UTC instant of a wall-clock time, found by trying the zone's offsets around it.

    Only UTC → local conversions are used (they are unambiguous). A repeated time takes its first
    occurrence; a skipped one is read with the offset in force before the gap, i.e. moved forward.
    """
    zone = ZoneInfo(tz)
    wall = datetime.combine(day, time()) + timedelta(minutes=minute)
    offsets = {(wall - timedelta(hours=h)).replace(tzinfo=UTC).astimezone(zone).utcoffset()
               for h in range(-30, 31, 3)}
    candidates = [wall - offset for offset in offsets]
    valid = [c for c in candidates if c.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None) == wall]
    if valid:
        return min(valid).replace(tzinfo=UTC)
    before_gap = min(offsets)  # in a gap the offset grows; the earlier one is the smaller
    return (wall - before_gap).replace(tzinfo=UTC)


def intervals_of(r: SlotRules, day: date):
    return r.overrides[day] if day in r.overrides else r.weekly.get(day.weekday(), ())


def overlaps(a_start, a_end, b_start, b_end) -> bool:
    """Do two half-open ranges share an instant? (An empty range shares none.)"""
    return a_start < b_end and b_start < a_end and a_start < a_end and b_start < b_end


def _intervals_on(grain: int):
    """Non-overlapping intervals of one day, on a ``grain``-minute grid."""
    def pair(bounds: list[int]) -> list[Interval]:
        bounds = sorted(bounds)
        return [Interval(bounds[i] * grain, bounds[i + 1] * grain) for i in range(0, len(bounds) - 1, 2)]
    scattered = st.lists(st.integers(0, 1440 // grain), unique=True, max_size=6)
    working_day = st.tuples(st.integers(0, 720 // grain), st.integers(60 // grain, 720 // grain)).map(
        lambda p: [p[0], p[0] + p[1]])
    return st.one_of(scattered, working_day, st.lists(st.integers(0, 1440 // grain), unique=True,
                                                      min_size=2, max_size=6)).map(pair)


DAY_INTERVALS = {grain: _intervals_on(grain) for grain in (5, 15)}
ANCHORS = st.one_of(st.sampled_from(CLOCK_CHANGES_2026),
                    st.dates(min_value=date(2026, 1, 3), max_value=date(2026, 12, 28)))
DURATIONS = st.one_of(st.sampled_from([15, 30, 45, 60, 90, 120]), st.integers(1, 36).map(lambda n: n * 5))
STEPS = st.one_of(st.none(), st.sampled_from([5, 10, 15, 20, 30, 60]))
TWO_DAYS_EITHER_WAY = st.integers(-2 * 1440, 2 * 1440)
# A range as (start, length) in 5-minute units: the start counts from a day before the window.
RANGES = {units: st.lists(st.tuples(st.integers(0, 9 * 288), st.integers(0, units)), max_size=size)
          for units, size in ((0, 4), (48, 10), (120, 3))}


@st.composite
def scenarios(draw, limits: bool = True):
    tz = draw(st.sampled_from(ZONES))
    day_intervals = DAY_INTERVALS[draw(st.sampled_from([5, 15]))]
    weekly = {weekday: draw(day_intervals) for weekday in range(7)}
    now = datetime.combine(draw(ANCHORS), time(), UTC) + timedelta(minutes=draw(TWO_DAYS_EITHER_WAY))
    window_start = now + timedelta(minutes=draw(st.integers(-1440, 2 * 1440)))
    window_end = window_start + timedelta(minutes=draw(st.one_of(st.integers(0, 5 * 1440),
                                                                  st.integers(1440, 5 * 1440))))
    duration = draw(DURATIONS)
    zone = ZoneInfo(tz)
    first_day = window_start.astimezone(zone).date() - timedelta(days=1)
    days = [first_day + timedelta(days=n) for n in range((window_end.astimezone(zone).date() - first_day).days + 2)]
    some_days = st.lists(st.sampled_from(days), unique=True, max_size=len(days))
    overrides = {day: draw(day_intervals) for day in draw(some_days)}

    def ranges(units: int) -> list[tuple[datetime, datetime]]:
        origin = window_start - timedelta(days=1)
        return [(origin + timedelta(minutes=5 * start), origin + timedelta(minutes=5 * (start + length)))
                for start, length in draw(RANGES[units])]

    values = dict(timezone=tz, duration=duration, weekly=weekly, overrides=overrides, step=draw(STEPS))
    if limits:
        values.update(
            time_off=ranges(120), busy=ranges(48),
            buffer_before=draw(st.integers(0, 12)) * 5, buffer_after=draw(st.integers(0, 12)) * 5,
            min_notice=draw(st.one_of(st.sampled_from([0, 0, 30, 120, 1440]), st.integers(0, 3 * 1440))),
            horizon_days=draw(st.sampled_from([60, 60, 8, 3, 2, 1, 0])),
            max_per_day=draw(st.sampled_from([None, None, None, 3, 2, 1, 0])),
            day_counts={day: draw(st.integers(0, 3)) for day in draw(some_days)},
            open_sessions=[OpenSession(start, start + timedelta(minutes=duration), draw(st.integers(0, 3)))
                           for start, _ in ranges(0)])
    else:
        values.update(horizon_days=400)
    return SlotRules(**values), window_start, window_end, now


PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(scenarios())
def test_every_offered_slot_obeys_every_rule(scenario):
    r, window_start, window_end, now = scenario
    zone = ZoneInfo(r.timezone)
    found = compute_slots(r, window_start, window_end, now)
    duration = timedelta(minutes=r.duration)
    before, after = timedelta(minutes=r.buffer_before), timedelta(minutes=r.buffer_after)
    open_by_start = {s.starts_at: s for s in r.open_sessions}

    # (f) sorted, unique starts, exact duration, all in UTC
    assert starts(found) == sorted(set(starts(found)))
    for slot in found:
        assert slot.ends_at - slot.starts_at == duration
        assert slot.starts_at.utcoffset() == timedelta(0)
        # (c) notice, horizon, window
        assert slot.starts_at >= now + timedelta(minutes=r.min_notice)
        assert slot.starts_at < now + timedelta(days=r.horizon_days)
        assert window_start <= slot.starts_at < window_end
        # (d) never in time off
        assert not any(overlaps(slot.starts_at, slot.ends_at, a, b) for a, b in r.time_off)
        if slot.seats_left is not None:
            # an open group session: offered as it is held, with free seats
            held = open_by_start[slot.starts_at]
            assert slot.seats_left == held.seats_left > 0 and slot.ends_at == held.ends_at
            continue
        # (a) buffers included, no busy range is touched
        assert not any(overlaps(slot.starts_at - before, slot.ends_at + after, a, b) for a, b in r.busy)
        # (b) inside one availability interval of its coach-local date
        day = slot.starts_at.astimezone(zone).date()
        assert any(independent_wall_to_utc(day, i.start, r.timezone) <= slot.starts_at
                   and slot.ends_at <= independent_wall_to_utc(day, i.end, r.timezone)
                   for i in intervals_of(r, day)), (day, slot)
        # (e) the date has not reached the daily limit
        assert r.max_per_day is None or r.day_counts.get(day, 0) < r.max_per_day


def brute_force_slots(r: SlotRules, window_start: datetime, window_end: datetime, now: datetime) -> list[Slot]:
    """Every candidate start of every interval of every nearby date, checked one rule at a time."""
    zone = ZoneInfo(r.timezone)
    duration, step = timedelta(minutes=r.duration), timedelta(minutes=r.step or r.duration)
    before, after = timedelta(minutes=r.buffer_before), timedelta(minutes=r.buffer_after)
    earliest, latest = now + timedelta(minutes=r.min_notice), now + timedelta(days=r.horizon_days)
    found: dict[datetime, Slot] = {}
    day = window_start.astimezone(zone).date() - timedelta(days=2)
    while day <= window_end.astimezone(zone).date() + timedelta(days=1):
        full = r.max_per_day is not None and r.day_counts.get(day, 0) >= r.max_per_day
        for interval in () if full else intervals_of(r, day):
            start = independent_wall_to_utc(day, interval.start, r.timezone)
            end = independent_wall_to_utc(day, interval.end, r.timezone)
            n = 0
            while start + n * step + duration <= end:
                s = start + n * step
                n += 1
                if not (window_start <= s < window_end and earliest <= s < latest):
                    continue
                if any(overlaps(s, s + duration, a, b) for a, b in r.time_off):
                    continue
                if any(overlaps(s - before, s + duration + after, a, b) for a, b in r.busy):
                    continue
                found[s] = Slot(s, s + duration)
        day += timedelta(days=1)
    for held in r.open_sessions:
        if (held.seats_left > 0 and window_start <= held.starts_at < window_end
                and earliest <= held.starts_at < latest
                and not any(overlaps(held.starts_at, held.ends_at, a, b) for a, b in r.time_off)):
            found[held.starts_at] = Slot(held.starts_at, held.ends_at, held.seats_left)
    return [found[s] for s in sorted(found)]


@PROPERTY_SETTINGS
@given(scenarios())
def test_offered_slots_are_exactly_those_a_brute_force_check_of_every_rule_finds(scenario):
    assert compute_slots(*scenario) == brute_force_slots(*scenario)


@PROPERTY_SETTINGS
@given(scenarios(limits=False))
def test_without_busy_time_or_limits_every_interval_is_filled_with_sessions(scenario):
    r, window_start, window_end, now = scenario
    # A window of whole coach-local days, all in the future.
    zone = ZoneInfo(r.timezone)
    first = window_start.astimezone(zone).date()
    last = max(window_end.astimezone(zone).date(), first + timedelta(days=1))
    start = independent_wall_to_utc(first, 0, r.timezone)
    end = independent_wall_to_utc(last, 0, r.timezone)
    found = compute_slots(r, start, end, now=start - timedelta(days=1))
    expected = set()
    step = r.step or r.duration
    for n in range((last - first).days):
        day = first + timedelta(days=n)
        for interval in intervals_of(r, day):
            real_start = independent_wall_to_utc(day, interval.start, r.timezone)
            real_minutes = (independent_wall_to_utc(day, interval.end, r.timezone) - real_start) // timedelta(minutes=1)
            if real_minutes >= r.duration:
                expected.update(real_start + timedelta(minutes=k * step)
                                for k in range((real_minutes - r.duration) // step + 1))
    assert starts(found) == sorted(expected)
    assert_exact_durations(found, r.duration)


@settings(max_examples=200, deadline=None)
@given(tz=st.sampled_from(ZONES), day=st.dates(min_value=date(2026, 1, 1), max_value=date(2026, 12, 31)),
       weeks=st.integers(1, 5), duration=st.sampled_from([15, 30, 60, 120]))
def test_a_plain_nine_to_five_week_offers_eight_hours_of_sessions_a_day(tz, day, weeks, duration):
    """No clock in these zones changes between 09:00 and 17:00, so every day holds exactly 8 hours."""
    r = rules(tz, duration=duration, weekly={weekday: [Interval(9 * 60, 17 * 60)] for weekday in range(7)})
    start = independent_wall_to_utc(day, 0, tz)
    found = compute_slots(r, start, start + timedelta(weeks=weeks), now=start - timedelta(days=1))
    assert len(found) == 7 * weeks * 8 * 60 // duration
    assert set(local_hhmm(found, tz)) == {
        f"{m // 60:02d}:{m % 60:02d}" for m in range(9 * 60, 17 * 60 - duration + 1, duration)}
