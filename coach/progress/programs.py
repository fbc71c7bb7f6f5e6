"""Training programs: the builder (weeks 1–52 → days Monday..Sunday → ordered workouts → prescribed exercises),
copying a week, templates (a new program from a template is a deep copy), assignment to athletes, the athlete's
schedule and "today", logging a workout, comments, and compliance.

Choices (say them on the pages and in the docs):

* **Day 1 is Monday.** An assignment starts on the Monday of the week of the chosen date: week 1, day 1 is
  that Monday (``ProgramAssignment.start_date`` is always stored as that Monday), day 3 of week 2 is the
  Wednesday of the following week.
* **Compliance**: a scheduled workout is *done* or *partial* as logged; it is *missed* when it was logged
  "skipped" or when its day has passed (in the athlete's time zone) without a log. Today's and future
  workouts without a log are *pending* and not counted. ``percent`` = (done + ½·partial) / (done + partial +
  missed), ``None`` while nothing is due.
* An athlete logs a workout of their own assignment on its day or later (never ahead of today in their zone);
  logging again edits the log. ``WORKOUT_LOGGED`` is emitted for the first log only.
* An ended assignment schedules nothing after the day it ended; archiving a program keeps its existing
  assignments running and only stops it being offered.
"""
from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from icalendar import Event
from sqlalchemy import Date, Integer, and_, cast, func, literal, or_, select
from sqlalchemy.orm import contains_eager

from coach import clock
from coach.accounts.models import User
from coach.booking import feeds
from coach.extensions import db
from coach.ids import parse_uuid
from coach.media import service as media
from coach.media.models import MediaItem
from coach.orgs.models import ATHLETE, Membership
from coach.platform.outbox import emit
from coach.progress import timeline
from coach.progress.access import ProgressError, is_staff, load_athlete, require_staff
from coach.progress.days import local_today, monday_of
from coach.progress.events import PROGRAM_ASSIGNED, WORKOUT_COMMENTED, WORKOUT_LOGGED
from coach.progress.models import (LOG_STATUSES, MAX_EXERCISES_PER_PROGRAM, Exercise, Program, ProgramAssignment,
                                   ProgramWorkout, WorkoutComment, WorkoutExercise, WorkoutLog, WorkoutLogExercise)
from coach.spaces.models import Space, SpaceMember

DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
TITLE_MAX, DESCRIPTION_MAX, NOTES_MAX, LINE_NOTES_MAX, TEMPO_MAX = 120, 5000, 2000, 500, 12
LOG_NOTE_MAX, COMMENT_MAX = 2000, 2000
MAX_WEEKS = 52
MAX_GROUP = 500
MAX_WORKOUTS_PER_DAY = 20
ASSIGN_WINDOW_DAYS = 366


# --- small helpers ------------------------------------------------------------------------------------


def scheduled_date(start: date, workout: ProgramWorkout) -> date:
    return start + timedelta(days=(workout.week - 1) * 7 + (workout.day - 1))


def _ident(raw, what: str) -> uuid.UUID:
    ident = raw if isinstance(raw, uuid.UUID) else parse_uuid(raw)
    if ident is None:
        raise ProgressError(f"No such {what}.", status=404)
    return ident


def _text(value, limit: int, what: str, required: bool = False) -> str:
    value = (value or "").strip()
    if required and not value:
        raise ProgressError(f"Give the {what} a title." if what != "comment" else "Write a comment first.")
    if len(value) > limit:
        raise ProgressError(f"The {what} has at most {limit:,} characters.")
    return value


def _title(value, what: str) -> str:
    return _text(" ".join((value or "").split()), TITLE_MAX, what, required=True)


def _int(raw, label: str, low: int, high: int) -> int | None:
    if raw is None or str(raw).strip() == "":
        return None
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ProgressError(f"{label} must be a whole number from {low:,} to {high:,}.") from None
    if not low <= value <= high:
        raise ProgressError(f"{label} must be a whole number from {low:,} to {high:,}.")
    return value


def _seconds(raw, label: str, low: int, high: int) -> int | None:
    """Seconds written as ``90``, ``1:30`` or ``1:00:00``."""
    if raw is None or str(raw).strip() == "":
        return None
    text_value = str(raw).strip()
    message = f"{label}: write seconds (90) or minutes:seconds (1:30), from {low:,} s to {high:,} s."
    parts = text_value.split(":")
    if len(parts) > 3 or not all(p.isdecimal() and len(p) <= 6 for p in parts):
        raise ProgressError(message)
    value = 0
    for part in parts:
        value = value * 60 + int(part)
    if not low <= value <= high:
        raise ProgressError(message)
    return value


def _kg(raw, label: str = "Load") -> Decimal | None:
    if raw is None or str(raw).strip() == "":
        return None
    message = f"{label} must be a number of kilograms from 0 to 10,000 (at most two decimals)."
    try:
        value = Decimal(str(raw).strip().replace(",", "."))
    except InvalidOperation:
        raise ProgressError(message) from None
    if not value.is_finite() or not Decimal(0) <= value <= Decimal(10000) or value != value.quantize(Decimal("0.01")):
        raise ProgressError(message)
    return value.quantize(Decimal("0.01"))


def format_seconds(value: int | None) -> str:
    if value is None:
        return ""
    hours, rest = divmod(value, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def format_kg(value: Decimal | None) -> str:
    """``60``, ``57.5`` (no exponent, no trailing zeros); empty for None."""
    return "" if value is None else f"{value.normalize():f}"


def prescription(line) -> str:
    """``3 × 8 · 60 kg · 1:30 · 400 m · rest 1:00 · tempo 3-1-1`` (what is set of a line)."""
    parts = []
    if line.sets and line.reps:
        parts.append(f"{line.sets} × {line.reps}")
    elif line.sets:
        parts.append(f"{line.sets} sets")
    elif line.reps:
        parts.append(f"{line.reps} reps")
    if line.load_kg is not None:
        parts.append(f"{format_kg(line.load_kg)} kg")
    if line.duration_s:
        parts.append(format_seconds(line.duration_s))
    if line.distance_m:
        parts.append(f"{line.distance_m:,} m")
    if getattr(line, "rest_s", None) is not None:
        parts.append(f"rest {format_seconds(line.rest_s)}")
    if getattr(line, "tempo", ""):
        parts.append(f"tempo {line.tempo}")
    return " · ".join(parts)


# --- programs -----------------------------------------------------------------------------------------

def programs_of(viewer: Membership, *, templates: bool | None = None, archived: bool = False) -> list[Program]:
    require_staff(viewer)
    query = select(Program).where(Program.tenant_id == viewer.tenant_id)
    query = query.where(Program.archived_at.is_not(None) if archived else Program.archived_at.is_(None))
    if templates is not None:
        query = query.where(Program.is_template.is_(templates))
    return list(db.session.scalars(query.order_by(func.lower(Program.title), Program.id).limit(500)))


def get_program(viewer: Membership, program_id) -> Program:
    """A program of the viewer's organization (staff only), or a 404."""
    require_staff(viewer)
    ident = _ident(program_id, "program")
    program = db.session.scalar(select(Program).where(Program.tenant_id == viewer.tenant_id, Program.id == ident))
    if program is None:
        raise ProgressError("No such program.", status=404)
    return program


def _weeks(raw) -> int:
    weeks = _int(raw, "Weeks", 1, MAX_WEEKS)
    return 1 if weeks is None else weeks


def create_program(viewer: Membership, values: dict) -> Program:
    """A new empty program, or (``template_id``) a deep copy of a template of the organization."""
    require_staff(viewer)
    template_id = values.get("template_id")
    if template_id:
        template = get_program(viewer, template_id)
        if not template.is_template:
            raise ProgressError("Start from one of the organization's templates.")
        return deep_copy(viewer, template, values.get("title") or template.title, is_template=False)
    program = Program(id=uuid.uuid4(), tenant_id=viewer.tenant_id, title=_title(values.get("title"), "program"),
                      description=_text(values.get("description"), DESCRIPTION_MAX, "description"),
                      weeks=_weeks(values.get("weeks")), is_template=bool(values.get("is_template")),
                      created_by_membership_id=viewer.id)
    db.session.add(program)
    db.session.flush()
    return program


def update_program(viewer: Membership, program: Program, values: dict) -> Program:
    require_staff(viewer)
    weeks = _weeks(values.get("weeks"))
    last = db.session.scalar(select(func.max(ProgramWorkout.week)).where(
        ProgramWorkout.tenant_id == program.tenant_id, ProgramWorkout.program_id == program.id)) or 0
    if weeks < last:
        raise ProgressError(f"Week {last} has workouts: remove them before making the program {weeks} weeks long.")
    program.title = _title(values.get("title"), "program")
    program.description = _text(values.get("description"), DESCRIPTION_MAX, "description")
    program.weeks = weeks
    db.session.flush()
    return program


def set_archived(viewer: Membership, program: Program, archived: bool) -> Program:
    require_staff(viewer)
    program.archived_at = clock.now() if archived else None
    db.session.flush()
    return program


def _line_count(program: Program) -> int:
    return db.session.scalar(select(func.count()).select_from(WorkoutExercise).join(
        ProgramWorkout, and_(ProgramWorkout.tenant_id == WorkoutExercise.tenant_id,
                             ProgramWorkout.id == WorkoutExercise.workout_id))
        .where(WorkoutExercise.tenant_id == program.tenant_id, ProgramWorkout.program_id == program.id)) or 0


def _check_cap(existing: int, adding: int) -> None:
    if existing + adding > MAX_EXERCISES_PER_PROGRAM:
        raise ProgressError(f"A program holds at most {MAX_EXERCISES_PER_PROGRAM:,} exercises "
                            f"(this one has {existing:,}; that would add {adding:,}).")


def _workouts(program: Program, week: int | None = None) -> list[ProgramWorkout]:
    query = select(ProgramWorkout).where(ProgramWorkout.tenant_id == program.tenant_id,
                                         ProgramWorkout.program_id == program.id)
    if week is not None:
        query = query.where(ProgramWorkout.week == week)
    return list(db.session.scalars(query.order_by(ProgramWorkout.week, ProgramWorkout.day, ProgramWorkout.position,
                                                  ProgramWorkout.id)))


def _lines(tenant_id: uuid.UUID, workout_ids) -> dict[uuid.UUID, list[WorkoutExercise]]:
    """The lines of these workouts with their exercise, in order (one statement)."""
    found: dict[uuid.UUID, list[WorkoutExercise]] = defaultdict(list)
    if not workout_ids:
        return found
    rows = db.session.scalars(
        select(WorkoutExercise).join(Exercise, and_(Exercise.tenant_id == WorkoutExercise.tenant_id,
                                                    Exercise.id == WorkoutExercise.exercise_id))
        .options(contains_eager(WorkoutExercise.exercise))
        .where(WorkoutExercise.tenant_id == tenant_id, WorkoutExercise.workout_id.in_(list(workout_ids)))
        .order_by(WorkoutExercise.position, WorkoutExercise.id))
    for line in rows:
        found[line.workout_id].append(line)
    return found


def _copy_workouts(source: list[ProgramWorkout], lines: dict, target: Program, week_shift: int | None = None,
                   position_base: dict | None = None) -> int:
    """Copy ``source`` workouts and their lines into ``target`` (bulk); returns the lines copied."""
    workout_rows, line_rows = [], []
    for workout in source:
        new_id = uuid.uuid4()
        week = workout.week if week_shift is None else week_shift
        position = workout.position + (position_base or {}).get(workout.day, 0)
        workout_rows.append({"id": new_id, "tenant_id": target.tenant_id, "program_id": target.id, "week": week,
                             "day": workout.day, "position": position, "title": workout.title,
                             "notes": workout.notes})
        for line in lines.get(workout.id, []):
            line_rows.append({"id": uuid.uuid4(), "tenant_id": target.tenant_id, "workout_id": new_id,
                              "exercise_id": line.exercise_id, "position": line.position, "sets": line.sets,
                              "reps": line.reps, "load_kg": line.load_kg, "duration_s": line.duration_s,
                              "distance_m": line.distance_m, "rest_s": line.rest_s, "tempo": line.tempo,
                              "notes": line.notes})
    if workout_rows:
        db.session.execute(ProgramWorkout.__table__.insert(), workout_rows)
    if line_rows:
        db.session.execute(WorkoutExercise.__table__.insert(), line_rows)
    return len(line_rows)


def deep_copy(viewer: Membership, source: Program, title: str, *, is_template: bool) -> Program:
    """A new program with every workout and exercise of ``source`` (save as a template; start from one)."""
    require_staff(viewer)
    program = Program(id=uuid.uuid4(), tenant_id=viewer.tenant_id, title=_title(title, "program"),
                      description=source.description, weeks=source.weeks, is_template=is_template,
                      created_by_membership_id=viewer.id)
    db.session.add(program)
    db.session.flush()
    workouts = _workouts(source)
    lines = _lines(source.tenant_id, [w.id for w in workouts])
    _check_cap(0, sum(len(v) for v in lines.values()))
    _copy_workouts(workouts, lines, program)
    return program


def copy_week(viewer: Membership, program: Program, from_week, to_week) -> int:
    """Copy week ``from_week``'s workouts (and exercises) to ``to_week`` of the same program, after what that
    week already has on each day. Returns the workouts copied."""
    require_staff(viewer)
    source_week = _int(from_week, "The week to copy", 1, program.weeks)
    target_week = _int(to_week, "The week to copy to", 1, program.weeks)
    if source_week is None or target_week is None:
        raise ProgressError(f"Choose two weeks from 1 to {program.weeks}.")
    if source_week == target_week:
        raise ProgressError("Choose another week to copy to.")
    workouts = _workouts(program, source_week)
    if not workouts:
        raise ProgressError(f"Week {source_week} has no workouts to copy.")
    lines = _lines(program.tenant_id, [w.id for w in workouts])
    _check_cap(_line_count(program), sum(len(v) for v in lines.values()))
    base = dict(db.session.execute(select(ProgramWorkout.day, func.max(ProgramWorkout.position) + 1).where(
        ProgramWorkout.tenant_id == program.tenant_id, ProgramWorkout.program_id == program.id,
        ProgramWorkout.week == target_week).group_by(ProgramWorkout.day)).all())
    _copy_workouts(workouts, lines, program, week_shift=target_week, position_base=base)
    return len(workouts)


# --- the builder's view --------------------------------------------------------------------------------

@dataclass
class DayView:
    day: int
    name: str
    workouts: list[ProgramWorkout] = field(default_factory=list)


@dataclass
class WeekView:
    week: int
    days: list[DayView]

    @property
    def workout_count(self) -> int:
        return sum(len(d.workouts) for d in self.days)


@dataclass
class ProgramView:
    program: Program
    weeks: list[WeekView]
    lines: dict[uuid.UUID, list[WorkoutExercise]]
    line_count: int
    logged: set[uuid.UUID]


def builder(program: Program) -> ProgramView:
    """Everything the builder shows (three statements: workouts, lines with exercises, logged workouts)."""
    workouts = _workouts(program)
    lines = _lines(program.tenant_id, [w.id for w in workouts])
    logged = set(db.session.scalars(select(WorkoutLog.workout_id).distinct().join(
        ProgramWorkout, and_(ProgramWorkout.tenant_id == WorkoutLog.tenant_id,
                             ProgramWorkout.id == WorkoutLog.workout_id))
        .where(WorkoutLog.tenant_id == program.tenant_id, ProgramWorkout.program_id == program.id)))
    weeks = [WeekView(n, [DayView(d, DAY_NAMES[d - 1]) for d in range(1, 8)]) for n in range(1, program.weeks + 1)]
    for workout in workouts:
        if workout.week <= program.weeks:
            weeks[workout.week - 1].days[workout.day - 1].workouts.append(workout)
    return ProgramView(program, weeks, lines, sum(len(v) for v in lines.values()), logged)


# --- workouts and their exercises ----------------------------------------------------------------------

def get_workout(viewer: Membership, program: Program, workout_id) -> ProgramWorkout:
    ident = _ident(workout_id, "workout")
    workout = db.session.scalar(select(ProgramWorkout).where(
        ProgramWorkout.tenant_id == viewer.tenant_id, ProgramWorkout.program_id == program.id,
        ProgramWorkout.id == ident))
    if workout is None:
        raise ProgressError("No such workout.", status=404)
    return workout


def _week_day(program: Program, values: dict) -> tuple[int, int]:
    week = _int(values.get("week"), "Week", 1, program.weeks)
    day = _int(values.get("day"), "Day", 1, 7)
    if week is None or day is None:
        raise ProgressError(f"Choose a week (1 to {program.weeks}) and a day.")
    return week, day


def add_workout(viewer: Membership, program: Program, values: dict) -> ProgramWorkout:
    require_staff(viewer)
    week, day = _week_day(program, values)
    count, last = db.session.execute(select(func.count(), func.max(ProgramWorkout.position)).where(
        ProgramWorkout.tenant_id == program.tenant_id, ProgramWorkout.program_id == program.id,
        ProgramWorkout.week == week, ProgramWorkout.day == day)).one()
    if count >= MAX_WORKOUTS_PER_DAY:
        raise ProgressError(f"A day holds at most {MAX_WORKOUTS_PER_DAY} workouts.")
    workout = ProgramWorkout(id=uuid.uuid4(), tenant_id=program.tenant_id, program_id=program.id, week=week, day=day,
                             position=(last + 1) if last is not None else 0,
                             title=_title(values.get("title"), "workout"),
                             notes=_text(values.get("notes"), NOTES_MAX, "workout's notes"))
    db.session.add(workout)
    db.session.flush()
    return workout


def update_workout(viewer: Membership, workout: ProgramWorkout, values: dict) -> ProgramWorkout:
    require_staff(viewer)
    workout.title = _title(values.get("title"), "workout")
    workout.notes = _text(values.get("notes"), NOTES_MAX, "workout's notes")
    db.session.flush()
    return workout


def _has_logs(workout_id: uuid.UUID, tenant_id: uuid.UUID) -> bool:
    return db.session.scalar(select(func.count()).select_from(WorkoutLog).where(
        WorkoutLog.tenant_id == tenant_id, WorkoutLog.workout_id == workout_id)) > 0


def delete_workout(viewer: Membership, workout: ProgramWorkout) -> None:
    """Remove a workout and its exercises; one an athlete logged stays (its logs point at it)."""
    require_staff(viewer)
    if _has_logs(workout.id, workout.tenant_id):
        raise ProgressError(f"“{workout.title}” has been logged by an athlete: it stays in the program "
                            "(change its exercises or title instead).", status=409)
    db.session.delete(workout)
    db.session.flush()


def move_workout(viewer: Membership, workout: ProgramWorkout, direction: str) -> None:
    """Swap the workout with its neighbour of the same day (``up`` or ``down``)."""
    require_staff(viewer)
    siblings = list(db.session.scalars(select(ProgramWorkout).where(
        ProgramWorkout.tenant_id == workout.tenant_id, ProgramWorkout.program_id == workout.program_id,
        ProgramWorkout.week == workout.week, ProgramWorkout.day == workout.day)
        .order_by(ProgramWorkout.position, ProgramWorkout.id)))
    _swap(siblings, workout, direction)


def _swap(items: list, item, direction: str) -> None:
    if direction not in ("up", "down"):
        raise ProgressError("Move up or down.", status=400)
    index = items.index(item)
    other = index - 1 if direction == "up" else index + 1
    if 0 <= other < len(items):
        items[index], items[other] = items[other], items[index]
    for position, each in enumerate(items):
        each.position = position
    db.session.flush()


def get_line(viewer: Membership, workout: ProgramWorkout, line_id) -> WorkoutExercise:
    ident = _ident(line_id, "exercise line")
    line = db.session.scalar(select(WorkoutExercise).where(
        WorkoutExercise.tenant_id == viewer.tenant_id, WorkoutExercise.workout_id == workout.id,
        WorkoutExercise.id == ident))
    if line is None:
        raise ProgressError("No such exercise in this workout.", status=404)
    return line


def line_values(values: dict) -> dict:
    """The prescription of a line from form values, checked against the database's ranges."""
    return {
        "sets": _int(values.get("sets"), "Sets", 1, 100),
        "reps": _int(values.get("reps"), "Reps", 1, 1000),
        "load_kg": _kg(values.get("load_kg")),
        "duration_s": _seconds(values.get("duration"), "Time", 1, 86400),
        "distance_m": _int(values.get("distance_m"), "Distance (m)", 1, 1_000_000),
        "rest_s": _seconds(values.get("rest"), "Rest", 0, 3600),
        "tempo": _text(values.get("tempo"), TEMPO_MAX, "tempo"),
        "notes": _text(values.get("notes"), LINE_NOTES_MAX, "exercise's notes"),
    }


def _exercise_for_line(viewer: Membership, raw) -> Exercise:
    ident = parse_uuid(raw) if raw else None
    exercise = None if ident is None else db.session.scalar(select(Exercise).where(
        Exercise.tenant_id == viewer.tenant_id, Exercise.id == ident))
    if exercise is None:
        raise ProgressError("Choose an exercise from the library.")
    if exercise.archived_at is not None:
        raise ProgressError(f"“{exercise.title}” is archived: restore it in the library first.")
    return exercise


def add_line(viewer: Membership, program: Program, workout: ProgramWorkout, values: dict) -> WorkoutExercise:
    """Add an exercise to a workout, last; refused beyond :data:`MAX_EXERCISES_PER_PROGRAM` per program."""
    require_staff(viewer)
    exercise = _exercise_for_line(viewer, values.get("exercise_id"))
    prescribed = line_values(values)
    _check_cap(_line_count(program), 1)
    last = db.session.scalar(select(func.max(WorkoutExercise.position)).where(
        WorkoutExercise.tenant_id == workout.tenant_id, WorkoutExercise.workout_id == workout.id))
    line = WorkoutExercise(id=uuid.uuid4(), tenant_id=workout.tenant_id, workout_id=workout.id,
                           exercise_id=exercise.id, position=(last + 1) if last is not None else 0, **prescribed)
    db.session.add(line)
    db.session.flush()
    return line


def update_line(viewer: Membership, line: WorkoutExercise, values: dict) -> WorkoutExercise:
    require_staff(viewer)
    prescribed = line_values(values)
    if values.get("exercise_id") and values.get("exercise_id") != str(line.exercise_id):
        line.exercise_id = _exercise_for_line(viewer, values.get("exercise_id")).id
    for name, value in prescribed.items():
        setattr(line, name, value)
    db.session.flush()
    return line


def delete_line(viewer: Membership, line: WorkoutExercise) -> None:
    require_staff(viewer)
    logged = db.session.scalar(select(func.count()).select_from(WorkoutLogExercise).where(
        WorkoutLogExercise.tenant_id == line.tenant_id, WorkoutLogExercise.workout_exercise_id == line.id))
    if logged:
        raise ProgressError("Athletes have logged this exercise: it stays (change its prescription instead).",
                            status=409)
    db.session.delete(line)
    db.session.flush()


def move_line(viewer: Membership, line: WorkoutExercise, direction: str) -> None:
    require_staff(viewer)
    siblings = list(db.session.scalars(select(WorkoutExercise).where(
        WorkoutExercise.tenant_id == line.tenant_id, WorkoutExercise.workout_id == line.workout_id)
        .order_by(WorkoutExercise.position, WorkoutExercise.id)))
    _swap(siblings, line, direction)


# --- assignment ----------------------------------------------------------------------------------------

def _athletes_by_ids(viewer: Membership, raw_ids) -> list[Membership]:
    ids = []
    for raw in raw_ids or []:
        ident = parse_uuid(raw)
        if ident is None:
            raise ProgressError("One of the chosen athletes is not a member of the organization.", status=404)
        if ident not in ids:
            ids.append(ident)
    if not ids:
        return []
    found = list(db.session.scalars(select(Membership).where(
        Membership.tenant_id == viewer.tenant_id, Membership.id.in_(ids), Membership.role == ATHLETE)))
    if len(found) != len(ids):
        raise ProgressError("One of the chosen athletes is not an athlete of the organization.", status=404)
    return found


def _space_athletes(viewer: Membership, raw_ids) -> list[Membership]:
    ids = []
    for raw in raw_ids or []:
        ident = parse_uuid(raw)
        if ident is None:
            raise ProgressError("No such space.", status=404)
        ids.append(ident)
    if not ids:
        return []
    spaces = set(db.session.scalars(select(Space.id).where(Space.tenant_id == viewer.tenant_id, Space.id.in_(ids))))
    if len(spaces) != len(set(ids)):
        raise ProgressError("No such space.", status=404)
    return list(db.session.scalars(select(Membership).join(SpaceMember, and_(
        SpaceMember.tenant_id == Membership.tenant_id, SpaceMember.membership_id == Membership.id))
        .where(Membership.tenant_id == viewer.tenant_id, SpaceMember.space_id.in_(ids),
               Membership.role == ATHLETE).distinct()))


def parse_date(raw, label: str = "Date") -> date:
    if isinstance(raw, date):
        return raw
    try:
        return date.fromisoformat(str(raw or "").strip())
    except ValueError:
        raise ProgressError(f"{label}: choose a date (YYYY-MM-DD).") from None


def assign(viewer: Membership, program: Program, athlete_ids=(), space_ids=(), start=None) -> list[ProgramAssignment]:
    """Give ``program`` to the chosen athletes and the athletes of the chosen spaces, starting the Monday of
    the week of ``start``. Athletes who already have it from that Monday are left as they are. Writes a
    ``program`` timeline entry and emits ``PROGRAM_ASSIGNED`` per new assignment."""
    require_staff(viewer)
    if program.archived_at is not None:
        raise ProgressError("This program is archived: restore it before assigning it.")
    if program.is_template:
        raise ProgressError("A template is not assigned: start a program from it, then assign that.")
    start_day = parse_date(start, "Start")
    today = local_today(viewer)
    if abs((start_day - today).days) > ASSIGN_WINDOW_DAYS:
        raise ProgressError("Choose a start within a year of today.")
    monday = monday_of(start_day)
    athletes = {a.id: a for a in _athletes_by_ids(viewer, athlete_ids)}
    for athlete in _space_athletes(viewer, space_ids):
        athletes.setdefault(athlete.id, athlete)
    if not athletes:
        raise ProgressError("Choose at least one athlete (or a space with athletes).")
    if len(athletes) > MAX_GROUP:
        raise ProgressError(f"Assign to at most {MAX_GROUP} athletes at a time.")
    existing = set(db.session.scalars(select(ProgramAssignment.athlete_membership_id).where(
        ProgramAssignment.tenant_id == viewer.tenant_id, ProgramAssignment.program_id == program.id,
        ProgramAssignment.start_date == monday, ProgramAssignment.athlete_membership_id.in_(list(athletes)))))
    now = clock.now()
    made = []
    for athlete_id in athletes:
        if athlete_id in existing:
            continue
        assignment = ProgramAssignment(id=uuid.uuid4(), tenant_id=viewer.tenant_id, program_id=program.id,
                                       athlete_membership_id=athlete_id, start_date=monday,
                                       assigned_by_membership_id=viewer.id, created_at=now)
        db.session.add(assignment)
        made.append(assignment)
    db.session.flush()
    for assignment in made:
        timeline.record(viewer.tenant_id, assignment.athlete_membership_id, "program", assignment.id, now,
                        f"Program: {program.title}",
                        f"{program.weeks} week{'s' if program.weeks != 1 else ''} from {monday:%a %d %b %Y}")
        emit(PROGRAM_ASSIGNED, {"assignment_id": str(assignment.id),
                                "athlete_membership_id": str(assignment.athlete_membership_id)},
             tenant_id=viewer.tenant_id)
    return made


def assignments_of_program(program: Program) -> list[tuple[ProgramAssignment, Membership]]:
    rows = db.session.execute(select(ProgramAssignment, Membership).join(Membership, and_(
        Membership.tenant_id == ProgramAssignment.tenant_id, Membership.id == ProgramAssignment.athlete_membership_id))
        .join(User, User.id == Membership.user_id)
        .where(ProgramAssignment.tenant_id == program.tenant_id, ProgramAssignment.program_id == program.id)
        .order_by(ProgramAssignment.start_date.desc(), func.lower(User.display_name)).limit(500)).all()
    return [(a, m) for a, m in rows]


def get_assignment(viewer: Membership, assignment_id) -> ProgramAssignment:
    """An assignment the viewer may see (staff: any of the organization; an athlete: their own), or a 404."""
    ident = _ident(assignment_id, "assignment")
    query = select(ProgramAssignment).where(ProgramAssignment.tenant_id == viewer.tenant_id,
                                            ProgramAssignment.id == ident)
    if not is_staff(viewer):
        query = query.where(ProgramAssignment.athlete_membership_id == viewer.id)
    assignment = db.session.scalar(query)
    if assignment is None:
        raise ProgressError("No such assignment.", status=404)
    return assignment


def end_assignment(viewer: Membership, assignment: ProgramAssignment) -> ProgramAssignment:
    """Stop an assignment: nothing is scheduled after today; what was logged stays."""
    require_staff(viewer)
    if assignment.ended_at is None:
        assignment.ended_at = clock.now()
        db.session.flush()
    return assignment


# --- the athlete's schedule ----------------------------------------------------------------------------

@dataclass
class Scheduled:
    on: date
    workout: ProgramWorkout
    assignment: ProgramAssignment
    log: WorkoutLog | None

    def __iter__(self):  # (date, workout, assignment, log)
        return iter((self.on, self.workout, self.assignment, self.log))


@dataclass
class TodayWorkout:
    assignment: ProgramAssignment
    workout: ProgramWorkout
    exercises: list[WorkoutExercise]
    log: WorkoutLog | None
    scheduled_on: date


def _end_day(assignment: ProgramAssignment, athlete: Membership) -> date | None:
    if assignment.ended_at is None:
        return None
    try:
        zone = ZoneInfo(athlete.user.timezone or "UTC")
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    return assignment.ended_at.astimezone(zone).date()


def schedule(athlete: Membership, start: date, end: date) -> list[Scheduled]:
    """The athlete's workouts scheduled from ``start`` to ``end`` (inclusive), by date then program order, each
    with its log if any (three statements: assignments with programs, workouts, logs)."""
    if end < start:
        return []
    assignments = list(db.session.scalars(
        select(ProgramAssignment).join(Program, and_(Program.tenant_id == ProgramAssignment.tenant_id,
                                                     Program.id == ProgramAssignment.program_id))
        .options(contains_eager(ProgramAssignment.program))
        .where(ProgramAssignment.tenant_id == athlete.tenant_id,
               ProgramAssignment.athlete_membership_id == athlete.id,
               ProgramAssignment.start_date <= end,
               ProgramAssignment.start_date + Program.weeks * 7 > start)
        .order_by(ProgramAssignment.start_date, ProgramAssignment.id)))
    if not assignments:
        return []
    by_program: dict[uuid.UUID, list[ProgramWorkout]] = defaultdict(list)
    for workout in db.session.scalars(select(ProgramWorkout).where(
            ProgramWorkout.tenant_id == athlete.tenant_id,
            ProgramWorkout.program_id.in_({a.program_id for a in assignments}))
            .order_by(ProgramWorkout.week, ProgramWorkout.day, ProgramWorkout.position, ProgramWorkout.id)):
        by_program[workout.program_id].append(workout)
    logs = {(log.assignment_id, log.workout_id): log for log in db.session.scalars(select(WorkoutLog).where(
        WorkoutLog.tenant_id == athlete.tenant_id, WorkoutLog.athlete_membership_id == athlete.id,
        WorkoutLog.assignment_id.in_([a.id for a in assignments])))}
    found = []
    for assignment in assignments:
        ended = _end_day(assignment, athlete)
        for workout in by_program[assignment.program_id]:
            if workout.week > assignment.program.weeks:
                continue
            on = scheduled_date(assignment.start_date, workout)
            log = logs.get((assignment.id, workout.id))
            if not start <= on <= end or (ended is not None and on > ended and log is None):
                continue
            found.append(Scheduled(on, workout, assignment, log))
    found.sort(key=lambda s: (s.on, s.assignment.start_date, str(s.assignment.id), s.workout.position))
    return found


def today(athlete: Membership, on: date | None = None) -> list[TodayWorkout]:
    """The athlete's workouts of ``on`` (default: today in their zone) with their exercises and log."""
    on = on or local_today(athlete)
    scheduled = schedule(athlete, on, on)
    lines = _lines(athlete.tenant_id, [s.workout.id for s in scheduled])
    return [TodayWorkout(s.assignment, s.workout, lines.get(s.workout.id, []), s.log, s.on) for s in scheduled]


def month(athlete: Membership, first: date) -> list[list[tuple[date, list[Scheduled]]]]:
    """A month grid (weeks Monday..Sunday) of the athlete's scheduled workouts around ``first``'s month."""
    first = first.replace(day=1)
    next_month = (first + timedelta(days=32)).replace(day=1)
    grid_start = monday_of(first)
    grid_end = monday_of(next_month - timedelta(days=1)) + timedelta(days=6)
    by_day: dict[date, list[Scheduled]] = defaultdict(list)
    for item in schedule(athlete, grid_start, grid_end):
        by_day[item.on].append(item)
    weeks, day = [], grid_start
    while day <= grid_end:
        weeks.append([(day + timedelta(days=i), by_day.get(day + timedelta(days=i), [])) for i in range(7)])
        day += timedelta(days=7)
    return weeks


# --- logging --------------------------------------------------------------------------------------------

@dataclass
class LogForm:
    """What the log page shows: the scheduled workout, its lines and the log (with its lines) if any."""
    assignment: ProgramAssignment
    workout: ProgramWorkout
    program: Program
    scheduled_on: date
    lines: list[WorkoutExercise]
    log: WorkoutLog | None
    actuals: dict[uuid.UUID, WorkoutLogExercise]


def _scheduled_for(athlete: Membership, assignment_id, workout_id) -> tuple[ProgramAssignment, ProgramWorkout, date]:
    assignment = get_assignment(athlete, assignment_id)
    if assignment.athlete_membership_id != athlete.id:
        raise ProgressError("No such assignment.", status=404)
    workout_ident = _ident(workout_id, "workout")
    workout = db.session.scalar(select(ProgramWorkout).where(
        ProgramWorkout.tenant_id == athlete.tenant_id, ProgramWorkout.id == workout_ident,
        ProgramWorkout.program_id == assignment.program_id))
    if workout is None or workout.week > assignment.program.weeks:
        raise ProgressError("This workout is not scheduled for you.", status=404)
    return assignment, workout, scheduled_date(assignment.start_date, workout)


def log_form(viewer: Membership, assignment_id, workout_id) -> LogForm:
    """The log page of a scheduled workout (the athlete's own; staff read it too)."""
    assignment = get_assignment(viewer, assignment_id)
    athlete = load_athlete(viewer, assignment.athlete_membership_id)
    assignment, workout, on = _scheduled_for(athlete, assignment.id, workout_id)
    lines = _lines(viewer.tenant_id, [workout.id]).get(workout.id, [])
    log = db.session.scalar(select(WorkoutLog).where(
        WorkoutLog.tenant_id == viewer.tenant_id, WorkoutLog.assignment_id == assignment.id,
        WorkoutLog.workout_id == workout.id))
    actuals = {}
    if log is not None:
        actuals = {a.workout_exercise_id: a for a in db.session.scalars(select(WorkoutLogExercise).where(
            WorkoutLogExercise.tenant_id == viewer.tenant_id, WorkoutLogExercise.log_id == log.id))}
    return LogForm(assignment, workout, assignment.program, on, lines, log, actuals)


def _log_media(athlete: Membership, raw) -> uuid.UUID | None:
    if raw in (None, ""):
        return None
    ident = parse_uuid(raw)
    item = None if ident is None else db.session.scalar(select(MediaItem).where(
        MediaItem.tenant_id == athlete.tenant_id, MediaItem.id == ident))
    if item is None or not media.can_view(item, athlete):
        raise ProgressError("Choose a video from your media.")
    return item.id


def log_workout(athlete: Membership, assignment_id, workout_id, values: dict) -> WorkoutLog:
    """Log (or edit the log of) a workout scheduled for ``athlete``: its status, RPE, note, an optional video
    and per exercise what was done (``values["lines"]``: line id → sets/reps/load_kg/duration/distance_m/note).
    Refused for a workout not scheduled for them (404) or scheduled after today in their zone (422)."""
    if athlete.role != ATHLETE:
        raise ProgressError("Only the athlete logs their workouts.", status=403)
    assignment, workout, on = _scheduled_for(athlete, assignment_id, workout_id)
    ended = _end_day(assignment, athlete)
    today_local = local_today(athlete)
    if on > today_local:
        raise ProgressError(f"“{workout.title}” is scheduled for {on:%A %d %B}: log it on that day or after.")
    status = values.get("status")
    if status not in LOG_STATUSES:
        raise ProgressError("Say whether the workout was done, partly done or skipped.")
    rpe = _int(values.get("rpe"), "Effort (RPE)", 1, 10)
    note = _text(values.get("note"), LOG_NOTE_MAX, "note")
    media_id = _log_media(athlete, values.get("media_id"))
    lines = {line.id: line for line in _lines(athlete.tenant_id, [workout.id]).get(workout.id, [])}
    actuals = {}
    for raw_id, done in (values.get("lines") or {}).items():
        ident = parse_uuid(raw_id)
        if ident not in lines:
            raise ProgressError("One of the logged exercises is not part of this workout.")
        title = lines[ident].exercise.title
        actual = {"sets": _int(done.get("sets"), f"{title}: sets", 0, 100),
                  "reps": _int(done.get("reps"), f"{title}: reps", 0, 1000),
                  "load_kg": _kg(done.get("load_kg"), f"{title}: load"),
                  "duration_s": _seconds(done.get("duration"), f"{title}: time", 0, 86400),
                  "distance_m": _int(done.get("distance_m"), f"{title}: distance (m)", 0, 1_000_000),
                  "note": _text(done.get("note"), LINE_NOTES_MAX, f"note on {title}")}
        if any(v not in (None, "") for v in actual.values()):
            actuals[ident] = actual
    log = db.session.scalar(select(WorkoutLog).where(
        WorkoutLog.tenant_id == athlete.tenant_id, WorkoutLog.assignment_id == assignment.id,
        WorkoutLog.workout_id == workout.id).with_for_update())
    if log is None and ended is not None and on > ended:
        raise ProgressError("This program was ended before that day: the workout is no longer scheduled.",
                            status=404)
    now = clock.now()
    first = log is None
    if first:
        log = WorkoutLog(id=uuid.uuid4(), tenant_id=athlete.tenant_id, assignment_id=assignment.id,
                         workout_id=workout.id, athlete_membership_id=athlete.id, scheduled_on=on, logged_at=now)
        db.session.add(log)
    log.status, log.rpe, log.note, log.media_id, log.updated_at = status, rpe, note, media_id, now
    db.session.flush()
    db.session.execute(WorkoutLogExercise.__table__.delete().where(
        WorkoutLogExercise.tenant_id == athlete.tenant_id, WorkoutLogExercise.log_id == log.id))
    if actuals:
        db.session.execute(WorkoutLogExercise.__table__.insert(), [
            {"id": uuid.uuid4(), "tenant_id": athlete.tenant_id, "log_id": log.id, "workout_exercise_id": ident,
             **actual} for ident, actual in actuals.items()])
    detail = " · ".join(p for p in (f"RPE {rpe}" if rpe else "", note) if p)
    timeline.record(athlete.tenant_id, athlete.id, "workout", log.id, log.logged_at,
                    f"Workout {LOG_STATUSES[status].lower()}: {workout.title}", detail)
    if first:
        emit(WORKOUT_LOGGED, {"log_id": str(log.id), "athlete_membership_id": str(athlete.id), "status": status},
             tenant_id=athlete.tenant_id)
    return log


def get_log(viewer: Membership, log_id) -> WorkoutLog:
    """A log the viewer may see (staff: any of the organization; an athlete: their own), or a 404."""
    ident = _ident(log_id, "log")
    query = select(WorkoutLog).where(WorkoutLog.tenant_id == viewer.tenant_id, WorkoutLog.id == ident)
    if not is_staff(viewer):
        query = query.where(WorkoutLog.athlete_membership_id == viewer.id)
    log = db.session.scalar(query)
    if log is None:
        raise ProgressError("No such workout log.", status=404)
    return log


# --- comments --------------------------------------------------------------------------------------------

def comments(log: WorkoutLog) -> list[tuple[WorkoutComment, Membership | None]]:
    """The comments of a log, oldest first, with their authors (None: a former member) — one statement."""
    rows = db.session.execute(select(WorkoutComment, Membership).outerjoin(Membership, and_(
        Membership.tenant_id == WorkoutComment.tenant_id, Membership.id == WorkoutComment.author_membership_id))
        .where(WorkoutComment.tenant_id == log.tenant_id, WorkoutComment.log_id == log.id)
        .order_by(WorkoutComment.created_at, WorkoutComment.id).limit(500)).all()
    return [(c, m) for c, m in rows]


def add_comment(author: Membership, log: WorkoutLog, body) -> WorkoutComment:
    """A comment on a logged workout by staff or the athlete themself; emits ``WORKOUT_COMMENTED``."""
    if not is_staff(author) and author.id != log.athlete_membership_id:
        raise ProgressError("No such workout log.", status=404)
    body = (body or "").strip()
    if not body:
        raise ProgressError("Write a comment first.")
    if len(body) > COMMENT_MAX:
        raise ProgressError(f"A comment has at most {COMMENT_MAX:,} characters.")
    comment = WorkoutComment(id=uuid.uuid4(), tenant_id=log.tenant_id, log_id=log.id,
                             author_membership_id=author.id, body=body, created_at=clock.now())
    db.session.add(comment)
    db.session.flush()
    emit(WORKOUT_COMMENTED, {"comment_id": str(comment.id), "log_id": str(log.id)}, tenant_id=log.tenant_id)
    return comment


# --- compliance ------------------------------------------------------------------------------------------

@dataclass
class WeekCompliance:
    week_start: date
    scheduled: int = 0
    done: int = 0
    partial: int = 0
    missed: int = 0
    skipped: int = 0  # of ``missed``: logged as skipped (the rest passed without a log)

    @property
    def pending(self) -> int:
        return self.scheduled - self.done - self.partial - self.missed

    @property
    def percent(self) -> int | None:
        due = self.done + self.partial + self.missed
        if not due:
            return None
        return round(100 * (self.done + self.partial / 2) / due)


def _compliance_query(tenant_id: uuid.UUID, athlete_ids, start: date, end: date, now: datetime):
    """Per (athlete, Monday): scheduled, done, partial, skipped, missed — one statement."""
    on = (ProgramAssignment.start_date + (ProgramWorkout.week - 1) * 7 + (ProgramWorkout.day - 1)).label("on")
    local_today_sql = cast(func.timezone(User.timezone, literal(now)), Date)
    ended_day = cast(func.timezone(User.timezone, ProgramAssignment.ended_at), Date)
    week = (on - cast(func.extract("isodow", on), Integer) + 1)
    inner = (
        select(ProgramAssignment.athlete_membership_id.label("athlete_id"), on, week.label("week"),
               WorkoutLog.status.label("status"), local_today_sql.label("today"))
        .join(Program, and_(Program.tenant_id == ProgramAssignment.tenant_id,
                            Program.id == ProgramAssignment.program_id))
        .join(ProgramWorkout, and_(ProgramWorkout.tenant_id == ProgramAssignment.tenant_id,
                                   ProgramWorkout.program_id == ProgramAssignment.program_id,
                                   ProgramWorkout.week <= Program.weeks))
        .join(Membership, and_(Membership.tenant_id == ProgramAssignment.tenant_id,
                               Membership.id == ProgramAssignment.athlete_membership_id))
        .join(User, User.id == Membership.user_id)
        .outerjoin(WorkoutLog, and_(WorkoutLog.tenant_id == ProgramAssignment.tenant_id,
                                    WorkoutLog.assignment_id == ProgramAssignment.id,
                                    WorkoutLog.workout_id == ProgramWorkout.id))
        .where(ProgramAssignment.tenant_id == tenant_id,
               ProgramAssignment.athlete_membership_id.in_(list(athlete_ids)),
               ProgramAssignment.start_date <= end,
               ProgramAssignment.start_date + Program.weeks * 7 > start,
               or_(ProgramAssignment.ended_at.is_(None), WorkoutLog.id.is_not(None), on <= ended_day))
        .subquery())
    in_range = and_(inner.c.on >= start, inner.c.on <= end)
    unlogged_past = and_(inner.c.status.is_(None), inner.c.on < inner.c.today)
    return (select(inner.c.athlete_id, inner.c.week, func.count(),
                   func.count().filter(inner.c.status == "done"),
                   func.count().filter(inner.c.status == "partial"),
                   func.count().filter(inner.c.status == "skipped"),
                   func.count().filter(unlogged_past))
            .where(in_range).group_by(inner.c.athlete_id, inner.c.week))


def _fill(row) -> WeekCompliance:
    _, week, scheduled, done, partial, skipped, unlogged = row
    return WeekCompliance(week, scheduled, done, partial, skipped + unlogged, skipped)


def compliance(athlete: Membership, weeks: int = 8, end: date | None = None) -> list[WeekCompliance]:
    """The athlete's last ``weeks`` weeks (Monday first, oldest first) up to the week of ``end`` (default
    today in their zone): one statement."""
    weeks = max(1, min(int(weeks), 104))
    last_monday = monday_of(end or local_today(athlete))
    first_monday = last_monday - timedelta(days=7 * (weeks - 1))
    found = {row[1]: _fill(row) for row in db.session.execute(_compliance_query(
        athlete.tenant_id, [athlete.id], first_monday, last_monday + timedelta(days=6), clock.now()))}
    return [found.get(first_monday + timedelta(days=7 * i)) or WeekCompliance(first_monday + timedelta(days=7 * i))
            for i in range(weeks)]


def compliance_for(tenant_id: uuid.UUID, athlete_ids, week_start: date) -> dict[uuid.UUID, WeekCompliance]:
    """Each athlete's compliance of the week starting ``week_start`` (a Monday): one statement. Athletes with
    nothing scheduled that week are absent."""
    ids = list(athlete_ids)
    if not ids:
        return {}
    monday = monday_of(week_start)
    return {row[0]: _fill(row) for row in db.session.execute(_compliance_query(
        tenant_id, ids, monday, monday + timedelta(days=6), clock.now()))}


def compliance_grid(tenant_id: uuid.UUID, athlete_ids, first_monday: date, weeks: int
                    ) -> dict[uuid.UUID, list[WeekCompliance]]:
    """The coach page: per athlete, ``weeks`` weeks from ``first_monday`` (one statement)."""
    ids = list(athlete_ids)
    grid = {i: [WeekCompliance(first_monday + timedelta(days=7 * n)) for n in range(weeks)] for i in ids}
    if not ids:
        return grid
    for row in db.session.execute(_compliance_query(tenant_id, ids, first_monday,
                                                    first_monday + timedelta(days=7 * weeks - 1), clock.now())):
        index = (row[1] - first_monday).days // 7
        if 0 <= index < weeks:
            grid[row[0]][index] = _fill(row)
    return grid


# --- the calendar feed --------------------------------------------------------------------------------

def feed_events(member: Membership, start: datetime, end: datetime):
    """The athlete's scheduled workouts as all-day VEVENTs for their calendar feed (UID stable per assignment
    and workout). Registered with :func:`coach.booking.feeds.register_source`."""
    if member.role != ATHLETE:
        return []
    events = []
    for item in schedule(member, start.date(), end.date()):
        event = Event()
        event.add("uid", f"workout-{item.assignment.id}-{item.workout.id}@coach")
        # A log changes the description: a later stamp and a higher sequence make calendar apps take it.
        changed = item.log.updated_at if item.log else item.assignment.created_at
        event.add("dtstamp", changed)
        event.add("last-modified", changed)
        event.add("sequence", 1 if item.log else 0)
        event.add("dtstart", item.on)
        event.add("dtend", item.on + timedelta(days=1))
        event.add("summary", f"Workout: {item.workout.title} ({item.assignment.program.title})")
        event.add("transp", "TRANSPARENT")
        status = LOG_STATUSES[item.log.status] if item.log else "To do"
        description = [f"Week {item.workout.week}, {DAY_NAMES[item.workout.day - 1]} · {status}"]
        if item.workout.notes:
            description.append(item.workout.notes)
        event.add("description", "\n".join(description))
        events.append(event)
    return events


feeds.register_source(feed_events)

__all__ = ["DAY_NAMES", "LogForm", "ProgramView", "Scheduled", "TodayWorkout", "WeekCompliance", "add_comment",
           "add_line", "add_workout", "assign", "builder", "comments", "compliance", "compliance_for",
           "compliance_grid", "copy_week", "create_program", "deep_copy", "delete_line", "delete_workout",
           "end_assignment", "feed_events", "format_kg", "get_assignment", "get_line", "get_log", "get_program",
           "get_workout",
           "local_today", "log_form", "log_workout", "month", "monday_of", "move_line", "move_workout",
           "prescription", "programs_of", "schedule", "set_archived", "today", "update_line", "update_program",
           "update_workout"]
