"""Habits of an athlete (daily, or N times a week), one-tap check-ins, streaks and the year heat map.

Days are the athlete's days: a check-in's ``on_date`` is the athlete's local date at the moment they ticked
(``user.timezone``), so a daylight-saving change never splits or merges a day, and travel keeps each day whole
(the day ticked in Tokyo stays that date when they are back in Berlin). Streaks are pure functions of those
dates and the athlete's today:

* daily: consecutive ticked days ending today, or ending yesterday while today is not ticked yet (the streak
  is still alive until the day is over);
* weekly (N times a week, weeks from Monday): consecutive weeks with at least N ticks, ending this week when it
  already has N, else ending last week.

Refused with a clear message: a tick for a day that has not come yet, a second tick of the same day (the unique
constraint ``uq_habit_checkins_day`` is the floor under that check), ticks older than a week.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from coach import clock
from coach.extensions import db
from coach.ids import parse_uuid
from coach.orgs.models import Membership
from coach.progress.access import ProgressError, is_staff, load_athlete
from coach.progress.days import local_today, monday_of, zone_of
from coach.progress.models import DAILY, WEEKLY, Habit, HabitCheckin

TITLE_MAX, MAX_HABITS, BACKFILL_DAYS = 120, 30, 7
HEATMAP_WEEKS = 53


@dataclass
class HabitToday:
    habit: Habit
    done_today: bool
    streak: int
    week_count: int
    target_label: str

    @property
    def streak_label(self) -> str:
        unit = "day" if self.habit.frequency == DAILY else "week"
        return f"{self.streak} {unit}{'' if self.streak == 1 else 's'}"


# --- pure functions ----------------------------------------------------------------------------------------

def local_date(instant: datetime, tz: str) -> date:
    """The date on the wall calendar in zone ``tz`` at ``instant`` (aware)."""
    return instant.astimezone(ZoneInfo(tz or "UTC")).date()


week_start = monday_of


def daily_streak(days: set[date] | list[date], today: date) -> int:
    """Consecutive ticked days ending today (or yesterday when today is not ticked yet)."""
    ticked = set(days)
    day = today if today in ticked else today - timedelta(days=1)
    count = 0
    while day in ticked:
        count += 1
        day -= timedelta(days=1)
    return count


def week_count(days, today: date) -> int:
    """Ticks in the week (from Monday) holding ``today``, none after today."""
    start = week_start(today)
    return sum(1 for d in set(days) if start <= d <= today)


def weekly_streak(days, today: date, times_per_week: int) -> int:
    """Consecutive weeks (from Monday) with at least ``times_per_week`` ticks, ending this week when it is
    already met, else ending last week."""
    per_week: dict[date, int] = {}
    for d in set(days):
        if d <= today:
            per_week[week_start(d)] = per_week.get(week_start(d), 0) + 1
    week = week_start(today)
    if per_week.get(week, 0) < times_per_week:
        week -= timedelta(days=7)
    count = 0
    while per_week.get(week, 0) >= times_per_week:
        count += 1
        week -= timedelta(days=7)
    return count


def streak(days, today: date, frequency: str = DAILY, times_per_week: int | None = None) -> int:
    """The streak of a habit from its ticked local dates and the athlete's today (see the module's docstring)."""
    if frequency == WEEKLY:
        return weekly_streak(days, today, times_per_week or 1)
    return daily_streak(days, today)


def target_label(habit: Habit) -> str:
    if habit.frequency == WEEKLY:
        n = habit.times_per_week or 1
        return "Every day" if n == 7 else f"{n} time{'' if n == 1 else 's'} a week"
    return "Every day"


def reminder_label(habit: Habit) -> str:
    if habit.reminder_minute is None:
        return ""
    return f"{habit.reminder_minute // 60:02d}:{habit.reminder_minute % 60:02d}"


# --- the heat map ------------------------------------------------------------------------------------------

@dataclass
class HeatCell:
    day: date
    count: int
    level: int  # 0 (none) .. 4 (every habit), css class "level-N"
    future: bool

    @property
    def label(self) -> str:
        return f"{self.day:%a %-d %b %Y}: {self.count} check-in{'' if self.count == 1 else 's'}"


@dataclass
class Heatmap:
    weeks: list[list[HeatCell]]  # 53 columns of 7 days (Monday first)
    months: list[tuple[int, str]]  # (column, "Jan") where a month starts
    total: int
    active_days: int
    longest_streak: int
    start: date
    end: date
    title: str

    @property
    def summary(self) -> str:
        return (f"{self.title}: {self.total} check-in{'' if self.total == 1 else 's'} on {self.active_days} "
                f"day{'' if self.active_days == 1 else 's'} between {self.start:%-d %b %Y} and {self.end:%-d %b %Y}; "
                f"longest run {self.longest_streak} day{'' if self.longest_streak == 1 else 's'}.")


def heatmap_grid(counts: dict[date, int], end: date, most: int = 1, title: str = "Check-ins") -> Heatmap:
    """53 weeks × 7 days ending with the week of ``end`` (later days of that week are ``future``). Pure."""
    last_monday = week_start(end)
    first = last_monday - timedelta(weeks=HEATMAP_WEEKS - 1)
    weeks, months = [], []
    most = max(most, 1)
    for w in range(HEATMAP_WEEKS):
        column = []
        for d in range(7):
            day = first + timedelta(weeks=w, days=d)
            n = counts.get(day, 0) if day <= end else 0
            level = 0 if n == 0 else max(1, min(4, -(-4 * n // most)))
            column.append(HeatCell(day, n, level, day > end))
            if day.day == 1:
                months.append((w, f"{day:%b}"))
        weeks.append(column)
    if first.day <= 7 and (not months or months[0][0] != 0):
        months.insert(0, (0, f"{first:%b}"))
    in_range = {d: n for d, n in counts.items() if first <= d <= end and n > 0}
    longest, run, prev = 0, 0, None
    for d in sorted(in_range):
        run = run + 1 if prev is not None and d - prev == timedelta(days=1) else 1
        longest, prev = max(longest, run), d
    return Heatmap(weeks=weeks, months=months, total=sum(in_range.values()), active_days=len(in_range),
                   longest_streak=longest, start=first, end=end, title=title)


# --- reading -----------------------------------------------------------------------------------------------

def habits_of(athlete: Membership) -> list[Habit]:
    return list(db.session.scalars(select(Habit).where(
        Habit.tenant_id == athlete.tenant_id, Habit.athlete_membership_id == athlete.id,
        Habit.archived_at.is_(None)).order_by(Habit.created_at, Habit.id)))


def get_habit(athlete: Membership, habit_id) -> Habit:
    """An active habit of ``athlete`` (already checked as visible to the viewer), or a 404."""
    habit_uuid = habit_id if isinstance(habit_id, uuid.UUID) else parse_uuid(habit_id)
    habit = habit_uuid and db.session.scalar(select(Habit).where(
        Habit.tenant_id == athlete.tenant_id, Habit.athlete_membership_id == athlete.id, Habit.id == habit_uuid,
        Habit.archived_at.is_(None)))
    if not habit:
        raise ProgressError("No such habit.", status=404)
    return habit


def load(viewer: Membership, habit_id) -> tuple[Habit, Membership]:
    """An active habit ``viewer`` may see and its athlete; 404 otherwise."""
    habit_uuid = habit_id if isinstance(habit_id, uuid.UUID) else parse_uuid(habit_id)
    habit = habit_uuid and db.session.scalar(select(Habit).where(
        Habit.tenant_id == viewer.tenant_id, Habit.id == habit_uuid, Habit.archived_at.is_(None)))
    if not habit:
        raise ProgressError("No such habit.", status=404)
    return habit, load_athlete(viewer, habit.athlete_membership_id)


def _dates(tenant_id, habit_ids) -> dict[uuid.UUID, set[date]]:
    out: dict[uuid.UUID, set[date]] = {h: set() for h in habit_ids}
    if habit_ids:
        for habit_id, day in db.session.execute(select(HabitCheckin.habit_id, HabitCheckin.on_date).where(
                HabitCheckin.tenant_id == tenant_id, HabitCheckin.habit_id.in_(list(habit_ids)))):
            out[habit_id].add(day)
    return out


def _today_of(habit: Habit, days: set[date], today: date) -> HabitToday:
    return HabitToday(habit=habit, done_today=today in days,
                      streak=streak(days, today, habit.frequency, habit.times_per_week),
                      week_count=week_count(days, today), target_label=target_label(habit))


def today(athlete: Membership) -> list[HabitToday]:
    """The athlete's habits with today's tick, streak and this week's count. Two statements."""
    habits = habits_of(athlete)
    day = local_today(athlete)
    dates = _dates(athlete.tenant_id, [h.id for h in habits])
    return [_today_of(h, dates[h.id], day) for h in habits]


def today_of(athlete: Membership, habit: Habit) -> HabitToday:
    return _today_of(habit, _dates(athlete.tenant_id, [habit.id])[habit.id], local_today(athlete))


def recent_days(athlete: Membership, habit: Habit, days: int = BACKFILL_DAYS + 1) -> list[tuple[date, bool]]:
    """Today and the days before it that can still be ticked, newest first, with whether each is ticked."""
    end = local_today(athlete)
    start = end - timedelta(days=days - 1)
    ticked = set(db.session.scalars(select(HabitCheckin.on_date).where(
        HabitCheckin.tenant_id == athlete.tenant_id, HabitCheckin.habit_id == habit.id,
        HabitCheckin.on_date >= start, HabitCheckin.on_date <= end)))
    return [(end - timedelta(days=n), end - timedelta(days=n) in ticked) for n in range(days)]


def heatmap(athlete: Membership, habit: Habit | None = None, year_end: date | None = None, *,
            among: list[Habit] | None = None) -> Heatmap:
    """The year of check-ins ending with ``year_end`` (the athlete's today): of one habit, or of all the
    athlete's habits (archived ones' ticks too: they were done). A day's level is its ticks against the number of
    active habits (``among`` when the caller has them already). Two statements at most."""
    end = year_end or local_today(athlete)
    start = week_start(end) - timedelta(weeks=HEATMAP_WEEKS - 1)
    query = select(HabitCheckin.on_date).where(HabitCheckin.tenant_id == athlete.tenant_id,
                                               HabitCheckin.on_date >= start, HabitCheckin.on_date <= end)
    if habit is not None:
        query, most = query.where(HabitCheckin.habit_id == habit.id), 1
    else:
        most = len(among if among is not None else habits_of(athlete))
        query = query.join(Habit, (Habit.tenant_id == HabitCheckin.tenant_id) & (Habit.id == HabitCheckin.habit_id))\
            .where(Habit.athlete_membership_id == athlete.id)
    counts: dict[date, int] = {}
    for day in db.session.scalars(query):
        counts[day] = counts.get(day, 0) + 1
    title = f"“{habit.title}”" if habit is not None else "All habits"
    return heatmap_grid(counts, end, most=most or 1, title=title)


# --- changing ----------------------------------------------------------------------------------------------

def _require_change(actor: Membership, athlete: Membership) -> None:
    if actor.tenant_id != athlete.tenant_id or not (actor.id == athlete.id or is_staff(actor)):
        raise ProgressError("Only the athlete and the organization's coaches can change these habits.", status=403)


def parse_reminder(text) -> int | None:
    """"HH:MM" (24-hour) → minute of the day; empty → no reminder."""
    raw = (text or "").strip()
    if not raw:
        return None
    try:
        hours, minutes = raw.split(":")[:2] if ":" in raw else (raw, "0")
        h, m = int(hours), int(minutes[:2])
    except ValueError:
        raise ProgressError("Give the reminder time as HH:MM, like 07:30.") from None
    if not (0 <= h <= 23 and 0 <= m <= 59):
        raise ProgressError("Give the reminder time as HH:MM, like 07:30.")
    return h * 60 + m


def _shape(values: dict) -> tuple[str, str, int | None, int | None]:
    title = " ".join((values.get("title") or "").split())
    if not title:
        raise ProgressError("Give the habit a title.")
    if len(title) > TITLE_MAX:
        raise ProgressError(f"Use at most {TITLE_MAX} characters for the title.")
    frequency = values.get("frequency") or DAILY
    if frequency not in (DAILY, WEEKLY):
        raise ProgressError("Choose every day or a number of times a week.")
    times = None
    if frequency == WEEKLY:
        try:
            times = int(str(values.get("times_per_week") or "").strip())
        except ValueError:
            raise ProgressError("Say how many times a week, from 1 to 7.") from None
        if not 1 <= times <= 7:
            raise ProgressError("Say how many times a week, from 1 to 7.")
    return title, frequency, times, parse_reminder(values.get("reminder"))


def create_habit(athlete: Membership, actor: Membership, values: dict) -> Habit:
    """A new habit (``values``: title, frequency "daily"/"weekly", times_per_week, reminder "HH:MM")."""
    _require_change(actor, athlete)
    title, frequency, times, reminder = _shape(values)
    if len(habits_of(athlete)) >= MAX_HABITS:
        raise ProgressError(f"An athlete keeps at most {MAX_HABITS} habits: archive one first.")
    habit = Habit(id=uuid.uuid4(), tenant_id=athlete.tenant_id, athlete_membership_id=athlete.id,
                  created_by_membership_id=actor.id, title=title, frequency=frequency, times_per_week=times,
                  reminder_minute=reminder, created_at=clock.now())
    if reminder is not None and reminder <= _minute_now(athlete):
        habit.last_reminded_on = local_today(athlete)  # no reminder for a time already past today
    db.session.add(habit)
    db.session.flush()
    return habit


def _minute_now(member: Membership) -> int:
    local = clock.now().astimezone(zone_of(member))
    return local.hour * 60 + local.minute


def update_habit(habit: Habit, athlete: Membership, actor: Membership, values: dict) -> Habit:
    _require_change(actor, athlete)
    habit.title, habit.frequency, habit.times_per_week, reminder = _shape(values)
    if reminder != habit.reminder_minute:
        habit.reminder_minute = reminder
        habit.last_reminded_on = local_today(athlete) if reminder is not None and reminder <= _minute_now(
            athlete) else None
    db.session.flush()
    return habit


def archive_habit(habit: Habit, athlete: Membership, actor: Membership) -> None:
    """The habit leaves the lists and reminders; its check-ins stay."""
    _require_change(actor, athlete)
    habit.archived_at = clock.now()
    db.session.flush()


def _require_athlete(actor: Membership, athlete: Membership) -> None:
    if actor.id != athlete.id or actor.tenant_id != athlete.tenant_id:
        raise ProgressError("Only the athlete ticks their own habits.", status=403)


def _day(athlete: Membership, on_date) -> date:
    today_ = local_today(athlete)
    if on_date is None or on_date == "":
        return today_
    if isinstance(on_date, str):
        try:
            on_date = date.fromisoformat(on_date.strip())
        except ValueError:
            raise ProgressError("The day must be a date like 2027-03-31.", status=400) from None
    if on_date > today_:
        raise ProgressError("That day has not come yet: you can tick today or the past week.")
    if on_date < today_ - timedelta(days=BACKFILL_DAYS):
        raise ProgressError(f"You can tick a habit for the past {BACKFILL_DAYS} days only.")
    return on_date


def check_in(habit: Habit, athlete: Membership, actor: Membership, on_date=None) -> HabitCheckin:
    """Tick ``habit`` for today in the athlete's zone (or a day of the past week). Twice the same day is
    refused (409) with a message; the unique constraint keeps it so under concurrent taps."""
    _require_athlete(actor, athlete)
    day = _day(athlete, on_date)
    row_id = db.session.scalar(pg_insert(HabitCheckin).values(
        id=uuid.uuid4(), tenant_id=habit.tenant_id, habit_id=habit.id, on_date=day, created_at=clock.now(),
    ).on_conflict_do_nothing(constraint="uq_habit_checkins_day").returning(HabitCheckin.id))
    if row_id is None:
        when = "today" if day == local_today(athlete) else f"on {day:%-d %b}"
        raise ProgressError(f"“{habit.title}” is already ticked {when}.", status=409)
    return db.session.get(HabitCheckin, row_id)


def untick(habit: Habit, athlete: Membership, actor: Membership, on_date=None) -> bool:
    """Take back the tick of today (or a day of the past week); whether there was one."""
    _require_athlete(actor, athlete)
    day = _day(athlete, on_date)
    removed = db.session.execute(delete(HabitCheckin).where(
        HabitCheckin.tenant_id == habit.tenant_id, HabitCheckin.habit_id == habit.id, HabitCheckin.on_date == day))
    return bool(removed.rowcount)
