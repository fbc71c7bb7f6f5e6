"""Habits: streaks in the athlete's zone (pure: daylight-saving changes, travel, weekly habits), the year heat
map, one-tap ticks (htmx and plain POST), refusals (a day in the future, twice a day), the reminder sweep (once
a day, not for a day long gone), another organization sees nothing, and a fixed number of statements."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from coach import clock
from coach.extensions import db
from coach.notifications.models import Notification
from coach.notifications import progress_habits
from coach.progress import habits
from coach.progress.access import ProgressError
from coach.progress.models import Habit, HabitCheckin
from tests.conftest import Auth, csrf_from
from tests.progress_support import RiverWorld
from tests.factories import make_org, make_user
from tests.querycount import statements_for

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")


# --- pure streaks ----------------------------------------------------------------------------------------

def days(start: date, n: int) -> list[date]:
    return [start + timedelta(days=i) for i in range(n)]


def test_daily_streak_counts_back_from_today_or_yesterday():
    today = date(2027, 5, 10)
    assert habits.daily_streak(days(date(2027, 5, 6), 5), today) == 5  # 6..10
    assert habits.daily_streak(days(date(2027, 5, 6), 4), today) == 4  # 6..9: alive until today ends
    assert habits.daily_streak(days(date(2027, 5, 6), 3), today) == 0  # 6..8: yesterday missed
    assert habits.daily_streak([date(2027, 5, 10), date(2027, 5, 8)], today) == 1
    assert habits.daily_streak([], today) == 0


@pytest.mark.parametrize("instants", [
    # Berlin springs forward on Sun 28 Mar 2027 (02:00 → 03:00): a 23-hour day is still one day.
    [datetime(2027, 3, 26, 22, 30, tzinfo=UTC), datetime(2027, 3, 27, 22, 30, tzinfo=UTC),  # 23:30 local
     datetime(2027, 3, 28, 21, 30, tzinfo=UTC), datetime(2027, 3, 29, 21, 30, tzinfo=UTC)],  # 23:30 local (CEST)
    # ... and falls back on Sun 31 Oct 2027 (03:00 → 02:00): a 25-hour day is one day too.
    [datetime(2027, 10, 29, 22, 10, tzinfo=UTC), datetime(2027, 10, 30, 22, 10, tzinfo=UTC),  # 00:10 local next day
     datetime(2027, 10, 31, 23, 10, tzinfo=UTC), datetime(2027, 11, 1, 23, 10, tzinfo=UTC)],
])
def test_streak_is_whole_across_daylight_saving_changes(instants):
    local = [habits.local_date(i, "Europe/Berlin") for i in instants]
    assert len(set(local)) == 4 and max(local) - min(local) == timedelta(days=3)
    assert habits.daily_streak(local, max(local)) == 4


def test_daylight_saving_night_ticks_land_on_the_local_day():
    # 00:30 CEST on the morning after the spring change is still 22:30 UTC of the day before.
    assert habits.local_date(datetime(2027, 3, 28, 22, 30, tzinfo=UTC), "Europe/Berlin") == date(2027, 3, 29)
    # A naive UTC reading would say the 28th: the streak would count the 28th twice and miss the 29th.
    assert habits.local_date(datetime(2027, 3, 28, 22, 30, tzinfo=UTC), "UTC") == date(2027, 3, 28)


def test_travel_keeps_each_local_day_whole():
    # Ticked in Berlin on Mon 3 May at 08:00, flew to Tokyo, ticked there at 01:00 on Tue 4 May (still Monday
    # 18:00 in Berlin), then Wed in Tokyo, then back in Berlin on Thu.
    ticks = [(datetime(2027, 5, 3, 6, 0, tzinfo=UTC), "Europe/Berlin"),
             (datetime(2027, 5, 3, 16, 0, tzinfo=UTC), "Asia/Tokyo"),
             (datetime(2027, 5, 5, 1, 0, tzinfo=UTC), "Asia/Tokyo"),
             (datetime(2027, 5, 6, 18, 0, tzinfo=UTC), "Europe/Berlin")]
    local = [habits.local_date(at, tz) for at, tz in ticks]
    assert local == [date(2027, 5, 3), date(2027, 5, 4), date(2027, 5, 5), date(2027, 5, 6)]
    assert habits.daily_streak(local, date(2027, 5, 6)) == 4
    # Read in one zone only (Berlin), the first two ticks would be the same day and the streak broken.
    assert len({habits.local_date(at, "Europe/Berlin") for at, _ in ticks}) == 3


def test_weekly_streak_counts_weeks_meeting_the_target():
    monday = date(2027, 5, 3)
    ticks = [monday - timedelta(weeks=2), monday - timedelta(weeks=2, days=-2), monday - timedelta(weeks=2, days=-4),
             monday - timedelta(weeks=1), monday - timedelta(weeks=1, days=-1), monday - timedelta(weeks=1, days=-6)]
    # Three a week: the two weeks before this one met it; this week (Wednesday, none yet) does not break it.
    wednesday = monday + timedelta(days=2)
    assert habits.weekly_streak(ticks, wednesday, 3) == 2
    assert habits.streak(ticks, wednesday, "weekly", 3) == 2
    assert habits.weekly_streak(ticks + [monday, monday + timedelta(days=1), wednesday], wednesday, 3) == 3
    assert habits.weekly_streak(ticks, wednesday, 4) == 0
    assert habits.week_count(ticks + [monday], wednesday) == 1


def test_heatmap_grid_is_53_weeks_of_7_days_with_levels():
    end = date(2027, 5, 5)  # a Wednesday
    grid = habits.heatmap_grid({end: 2, end - timedelta(days=1): 1, end - timedelta(days=400): 3}, end, most=2)
    assert len(grid.weeks) == 53 and all(len(w) == 7 for w in grid.weeks)
    assert grid.weeks[0][0].day.weekday() == 0 and grid.weeks[-1][2].day == end
    assert [c.future for c in grid.weeks[-1]] == [False, False, False, True, True, True, True]
    assert grid.weeks[-1][2].level == 4 and grid.weeks[-1][1].level == 2
    assert grid.total == 3 and grid.active_days == 2 and grid.longest_streak == 2
    assert "3 check-ins on 2 days" in grid.summary


# --- the world -------------------------------------------------------------------------------------------

class World(RiverWorld):
    def __init__(self, app):
        super().__init__(app, ben_tz="America/New_York")

    def habit(self, athlete, title="Stretch", **values):
        self.act()
        made = habits.create_habit(athlete, athlete, {"title": title, **values})
        db.session.commit()
        return made

    def post(self, member, path, data=None, htmx=False, page=None):
        client = self.browser(member)
        token = csrf_from(client.get(page or self.url("/habits")).get_data(as_text=True))
        headers = {"HX-Request": "true"} if htmx else {}
        response = client.post(self.url(path), data={"csrf_token": token, **(data or {})}, headers=headers)
        self.act()
        return response


@pytest.fixture()
def world(app, ctx):
    return World(app)


def checkin_days(habit_id):
    db.session.expire_all()
    return sorted(db.session.scalars(select(HabitCheckin.on_date).where(HabitCheckin.habit_id == habit_id)))


def test_one_tap_tick_swaps_in_place_and_works_without_javascript(world):
    habit = world.habit(world.ana)
    today = habits.local_today(world.ana)
    page = world.browser(world.ana).get(world.url("/habits")).get_data(as_text=True)
    assert f'id="habit-{habit.id}"' in page and "Tick for today" in page and "streak <strong" in page
    answer = world.post(world.ana, f"/habits/{habit.id}/check", htmx=True)
    assert answer.status_code == 200
    fragment = answer.get_data(as_text=True)
    assert fragment.strip().startswith(f'<li class="habit-today done" id="habit-{habit.id}"')
    assert "1 day" in fragment and "<html" not in fragment
    assert checkin_days(habit.id) == [today]
    # Un-tick without JavaScript: a plain POST and a 303 back.
    answer = world.post(world.ana, f"/habits/{habit.id}/untick", {"next": world.url("/habits")})
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/o/river/progress/habits")
    assert checkin_days(habit.id) == []
    answer = world.post(world.ana, f"/habits/{habit.id}/check", {"next": "https://evil.example/"})
    assert answer.status_code == 303 and answer.headers["Location"].endswith(f"/athletes/{world.ana.id}/habits")


def test_twice_a_day_and_future_days_are_refused_with_a_message(world):
    habit = world.habit(world.ana)
    assert world.post(world.ana, f"/habits/{habit.id}/check").status_code == 303
    again = world.post(world.ana, f"/habits/{habit.id}/check")
    assert again.status_code == 409 and "already ticked today" in again.get_data(as_text=True)
    fragment = world.post(world.ana, f"/habits/{habit.id}/check", htmx=True)
    assert fragment.status_code == 409 and "already ticked today" in fragment.get_data(as_text=True)
    assert len(checkin_days(habit.id)) == 1
    tomorrow = habits.local_today(world.ana) + timedelta(days=1)
    future = world.post(world.ana, f"/habits/{habit.id}/check", {"on_date": tomorrow.isoformat()})
    assert future.status_code == 422 and "has not come yet" in future.get_data(as_text=True)
    bad = world.post(world.ana, f"/habits/{habit.id}/check", {"on_date": "2027-02-30"}, htmx=True)
    assert bad.status_code == 400 and "must be a date" in bad.get_data(as_text=True)
    yesterday = tomorrow - timedelta(days=2)
    assert world.post(world.ana, f"/habits/{habit.id}/check", {"on_date": yesterday.isoformat()}).status_code == 303
    assert len(checkin_days(habit.id)) == 2
    with pytest.raises(ProgressError, match="has not come yet"):
        habits.check_in(habit, world.ana, world.ana, tomorrow)
    with pytest.raises(ProgressError, match="past 7 days"):
        habits.check_in(habit, world.ana, world.ana, tomorrow - timedelta(days=30))
    db.session.rollback()


def test_today_follows_the_athletes_zone(world, monkeypatch):
    # 03:30 UTC on 10 May: already the 10th in Berlin, still the 9th in New York.
    monkeypatch.setattr(clock, "now", lambda: datetime(2027, 5, 10, 3, 30, tzinfo=UTC))
    ana_habit, ben_habit = world.habit(world.ana), world.habit(world.ben)
    habits.check_in(ana_habit, world.ana, world.ana)
    habits.check_in(ben_habit, world.ben, world.ben)
    db.session.commit()
    assert checkin_days(ana_habit.id) == [date(2027, 5, 10)]
    assert checkin_days(ben_habit.id) == [date(2027, 5, 9)]
    [item] = habits.today(world.ben)
    assert item.done_today and item.streak == 1


def test_staff_set_habits_but_only_the_athlete_ticks(world):
    page = world.browser(world.coach).get(world.url(f"/athletes/{world.ana.id}/habits/new"))
    assert page.status_code == 200
    answer = world.post(world.coach, f"/athletes/{world.ana.id}/habits/new",
                        {"title": "Mobility", "frequency": "weekly", "times_per_week": "3", "reminder": "07:30"},
                        page=world.url(f"/athletes/{world.ana.id}/habits/new"))
    assert answer.status_code == 303
    habit = db.session.scalar(select(Habit).where(Habit.title == "Mobility"))
    assert habit.times_per_week == 3 and habit.reminder_minute == 450 and habit.created_by_membership_id == world.coach.id
    bad = world.post(world.coach, f"/athletes/{world.ana.id}/habits/new",
                     {"title": "X", "frequency": "weekly", "times_per_week": "9"},
                     page=world.url(f"/athletes/{world.ana.id}/habits/new"))
    assert bad.status_code == 422 and "from 1 to 7" in bad.get_data(as_text=True)
    coach_page = world.browser(world.coach).get(world.url(f"/athletes/{world.ana.id}/habits")).get_data(as_text=True)
    assert "Mobility" in coach_page and "Tick for today" not in coach_page
    assert world.post(world.coach, f"/habits/{habit.id}/check",
                      page=world.url(f"/athletes/{world.ana.id}/habits/new")).status_code == 403
    # Another athlete of the same club does not see Ana's habits at all.
    assert world.browser(world.ben).get(world.url(f"/habits/{habit.id}")).status_code == 404
    assert world.browser(world.ben).get(world.url(f"/athletes/{world.ana.id}/habits")).status_code == 404


def test_another_organization_sees_and_changes_nothing(world):
    habit = world.habit(world.ana)
    zed = make_user("zed@example.com", "Zed Stranger")
    make_org(zed, slug="hill", name="Hill Club")
    world.act()
    client = world.app.test_client()
    assert Auth(client).login("zed@example.com").status_code == 303
    for path in (f"/habits/{habit.id}", f"/athletes/{world.ana.id}/habits", f"/athletes/{world.ana.id}/readiness"):
        assert client.get(f"/o/hill/progress{path}").status_code == 404
        assert client.get(f"/o/river/progress{path}").status_code == 404
    token = Auth(client).csrf("/profile")
    assert client.post(f"/o/hill/progress/habits/{habit.id}/check", data={"csrf_token": token}).status_code == 404
    world.act()
    assert checkin_days(habit.id) == []


def test_heatmap_and_streaks_on_the_page(world):
    habit = world.habit(world.ana)
    today = habits.local_today(world.ana)
    for n in range(1, 4):
        db.session.add(HabitCheckin(tenant_id=world.org.id, habit_id=habit.id, on_date=today - timedelta(days=n)))
    db.session.commit()
    page = world.browser(world.ana).get(world.url(f"/habits/{habit.id}")).get_data(as_text=True)
    assert "3 days" in page and "3 check-ins on 3 days" in page
    assert len(re.findall(r'name="on_date" value="', page)) == 8 and page.count('aria-pressed="true"') == 3
    assert len(re.findall(r'<rect class="heat level-[0-4]"', page)) == 52 * 7 + today.weekday() + 1
    assert " style=" not in page
    # Archived, the habit leaves today's list; its ticks stay in the heat map of all habits.
    habits.archive_habit(habit, world.ana, world.ana)
    db.session.commit()
    page = world.browser(world.ana).get(world.url("/habits")).get_data(as_text=True)
    assert f'id="habit-{habit.id}"' not in page and "3 check-ins on 3 days" in page


def test_habit_pages_are_a_fixed_number_of_statements(world):
    def grow():
        made = world.habit(world.ana, f"Habit {len(habits.habits_of(world.ana))}")
        for n in range(5):
            db.session.add(HabitCheckin(tenant_id=world.org.id, habit_id=made.id,
                                        on_date=habits.local_today(world.ana) - timedelta(days=n)))
        db.session.commit()

    counts = []
    for _ in range(2):
        grow()
        grow()
        browser = world.browser(world.ana)
        browser.get(world.url("/habits"))
        counts.append((statements_for(world.app, browser, world.url("/habits")),
                       statements_for(world.app, world.browser(world.coach),
                                      world.url(f"/athletes/{world.ana.id}/habits"))))
        world.act()
    assert counts[0] == counts[1]
    assert counts[0] == (7, 8)


# --- reminders ---------------------------------------------------------------------------------------------

def reminders(member):
    db.session.expire_all()
    world_rows = db.session.scalars(select(Notification).where(Notification.membership_id == member.id,
                                                               Notification.kind == "habit_reminder"))
    return list(world_rows)


def test_reminder_sweep_sends_once_a_day_and_not_for_a_day_long_gone(world, monkeypatch):
    at = {"now": datetime(2027, 5, 10, 4, 0, tzinfo=UTC)}  # 06:00 in Berlin
    monkeypatch.setattr(clock, "now", lambda: at["now"])
    stretch = world.habit(world.ana, "Stretch", reminder="07:30")
    ticked = world.habit(world.ana, "Read", reminder="07:00")
    late = world.habit(world.ana, "Journal", reminder="07:00")
    ben = world.habit(world.ben, "Stretch", reminder="07:30")  # New York time
    assert progress_habits.sweep_habit_reminders() == 0  # not yet 07:00 in Berlin
    world.act()
    habits.check_in(ticked, world.ana, world.ana)
    db.session.commit()
    at["now"] = datetime(2027, 5, 10, 5, 40, tzinfo=UTC)  # 07:40 Berlin
    assert progress_habits.sweep_habit_reminders() == 2  # Stretch and Journal; Read is ticked
    assert progress_habits.sweep_habit_reminders() == 0  # run twice: once only
    world.act()
    assert sorted(n.title for n in reminders(world.ana)) == ["Reminder: Journal", "Reminder: Stretch"]
    assert reminders(world.ben) == []
    at["now"] = datetime(2027, 5, 10, 11, 35, tzinfo=UTC)  # 07:35 in New York
    assert progress_habits.sweep_habit_reminders() == 1
    world.act()
    [notice] = reminders(world.ben)
    assert notice.url == "/o/river/progress/habits" and notice.subject_id == ben.id
    # The next day the workers were down until 12:00 Berlin: a 07:30 reminder is long gone, none is sent.
    at["now"] = datetime(2027, 5, 11, 10, 0, tzinfo=UTC)
    assert progress_habits.sweep_habit_reminders() == 0
    # The day after, on time again.
    at["now"] = datetime(2027, 5, 12, 5, 35, tzinfo=UTC)
    assert progress_habits.sweep_habit_reminders() == 3
    world.act()
    assert len(reminders(world.ana)) == 5
    assert stretch.id and late.id


HOSTILE = ["\x00", "9" * 31, "-1e999", "sNaN", "2027-02-30", "99:99", "x" * 20_000, "‮1", "", "-0:30"]


def test_hostile_input_is_refused_never_a_server_error(world):
    habit = world.habit(world.ana)
    forms = {
        f"/athletes/{world.ana.id}/habits/new": {"title": "T", "frequency": "weekly", "times_per_week": "3",
                                                 "reminder": "07:30"},
        f"/habits/{habit.id}/edit": {"title": "T", "frequency": "daily", "times_per_week": "", "reminder": ""},
        f"/habits/{habit.id}/check": {"next": world.url("/habits")},
        f"/habits/{habit.id}/untick": {"next": world.url("/habits")},
        "/readiness": {"sleep_hours": "8", "energy": "4", "mood": "4", "stress": "2", "soreness": "2", "note": "",
                       "next": world.url("/habits")},
    }
    client = world.browser(world.ana)
    token = csrf_from(client.get(world.url("/habits")).get_data(as_text=True))
    for path, plausible in forms.items():
        for name in plausible:
            for value in HOSTILE:
                response = client.post(world.url(path), data={"csrf_token": token, **plausible, name: value},
                                       headers={"HX-Request": "true"} if len(value) % 2 else {})
                assert response.status_code < 500, (path, name, value[:20], response.status_code)
    world.act()
