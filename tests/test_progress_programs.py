"""Training programs, staff side: the exercise library (archived when used), the builder (weeks → days →
ordered workouts → prescribed exercises, validated against the database's ranges with clear messages), copying
a week, templates (a deep copy), the cap of exercises per program, assignment to one athlete or a group, and
the pages (no JavaScript needed; a fixed number of statements; another organization's ids are 404s)."""
from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from werkzeug.datastructures import MultiDict
from sqlalchemy import func, select

from coach import tenancy
from coach.extensions import db
from coach.orgs.models import ADMIN, ATHLETE, COACH, Membership
from coach.platform.models import OutboxEvent
from coach.progress import exercises, programs
from coach.progress.access import ProgressError
from coach.progress.models import (MAX_EXERCISES_PER_PROGRAM, Exercise, Program, ProgramAssignment, ProgramWorkout,
                                   TimelineEntry, WorkoutExercise)
from coach.spaces.models import Space, SpaceMember
from tests.conftest import Auth, csrf_from
from tests.factories import PASSWORD, add_member, make_org, make_user, media_row
from tests.querycount import statements_for


def make_world(label: str = "") -> SimpleNamespace:
    """An organization with an admin, a coach and three athletes (one in Tokyo), and a second organization with
    its own coach, athlete, exercise and program."""
    n = uuid.uuid4().hex[:8]
    w = SimpleNamespace()
    w.admin_user = make_user(f"admin-{n}@example.com", "Ada Admin")
    w.org = make_org(w.admin_user, slug=f"club-{n}")
    tenancy.activate(w.org.id)
    w.admin = db.session.scalar(select(Membership).where(Membership.tenant_id == w.org.id, Membership.role == ADMIN))
    w.coach_user = make_user(f"coach-{n}@example.com", "Cora Coach")
    w.coach = add_member(w.org, w.coach_user, COACH)
    w.athlete_user = make_user(f"athlete-{n}@example.com", "Ali Athlete")
    w.athlete = add_member(w.org, w.athlete_user, ATHLETE)
    w.athlete2 = add_member(w.org, make_user(f"athlete2-{n}@example.com", "Bea Athlete"), ATHLETE)
    w.tokyo = add_member(w.org, make_user(f"tokyo-{n}@example.com", "Tai Tokyo", tz="Asia/Tokyo"), ATHLETE)
    w.squat = exercises.save_exercise(w.coach, {"title": "Back squat", "description": "Bar on the back."})
    w.row = exercises.save_exercise(w.coach, {"title": "Row 500 m"})
    db.session.commit()
    w.other_org = make_org(make_user(f"other-{n}@example.com"), slug=f"other-{n}")
    tenancy.activate(w.other_org.id)
    w.other_coach = add_member(w.other_org, make_user(f"ocoach-{n}@example.com"), COACH)
    w.other_athlete = add_member(w.other_org, make_user(f"oathlete-{n}@example.com"), ATHLETE)
    w.other_exercise = exercises.save_exercise(w.other_coach, {"title": "Other squat"})
    w.other_program = programs.create_program(w.other_coach, {"title": "Other block", "weeks": "2"})
    w.other_workout = programs.add_workout(w.other_coach, w.other_program, {"week": "1", "day": "1", "title": "Legs"})
    db.session.commit()
    # Plain ids: the rows themselves cannot be reloaded while the first organization is in force.
    w.other_ids = SimpleNamespace(coach=w.other_coach.id, athlete=w.other_athlete.id, exercise=w.other_exercise.id,
                                  program=w.other_program.id, workout=w.other_workout.id)
    tenancy.activate(w.org.id)
    return w


def build_program(w, weeks: int = 2, title: str = "Base block") -> Program:
    """Week 1: Monday "Legs" (squat 3×8 60 kg, row 500 m) and Wednesday "Engine"; week 2 empty."""
    program = programs.create_program(w.coach, {"title": title, "weeks": str(weeks)})
    legs = programs.add_workout(w.coach, program, {"week": "1", "day": "1", "title": "Legs"})
    programs.add_line(w.coach, program, legs, {"exercise_id": str(w.squat.id), "sets": "3", "reps": "8",
                                               "load_kg": "60", "rest": "1:30", "tempo": "3-1-1"})
    programs.add_line(w.coach, program, legs, {"exercise_id": str(w.row.id), "distance_m": "500"})
    engine = programs.add_workout(w.coach, program, {"week": "1", "day": "3", "title": "Engine"})
    programs.add_line(w.coach, program, engine, {"exercise_id": str(w.row.id), "duration": "20:00"})
    db.session.commit()
    return program


@pytest.fixture()
def world(ctx):
    return make_world()


def count(model, tenant_id) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(model.tenant_id == tenant_id))


# --- the library -------------------------------------------------------------------------------------------

def test_the_library_refuses_a_duplicate_title_and_archives_a_used_exercise_instead_of_deleting_it(world):
    w = world
    with pytest.raises(ProgressError, match="already has an exercise called"):
        exercises.save_exercise(w.coach, {"title": "  back   SQUAT "})
    db.session.rollback()
    lunge = exercises.save_exercise(w.coach, {"title": "Lunge"})
    assert exercises.remove_exercise(w.coach, lunge) == "deleted"
    build_program(w)
    assert exercises.remove_exercise(w.coach, w.squat) == "archived"
    db.session.commit()
    assert [e.title for e in exercises.library(w.coach)] == ["Row 500 m"]
    # Its title is free again; restoring it then clashes with the new one, and says so.
    fresh = exercises.save_exercise(w.coach, {"title": "Back squat"})
    with pytest.raises(ProgressError, match="Another active exercise"):
        exercises.restore_exercise(w.coach, w.squat)
    assert fresh.id != w.squat.id
    with pytest.raises(ProgressError, match="Only the organization.s coaches"):
        exercises.save_exercise(w.athlete, {"title": "Mine"})


def test_a_demo_clip_must_be_media_the_coach_may_view(world):
    w = world
    private = media_row(w.org.id, w.athlete, audience="staff")
    shared = media_row(w.org.id, w.coach, audience="organization")
    db.session.flush()
    # Staff see every item of their organization; an item of another organization is unknown.
    tenancy.activate(w.other_org.id)
    foreign = media_row(w.other_org.id, w.other_coach)
    db.session.commit()
    foreign_id = foreign.id
    tenancy.activate(w.org.id)
    ex = exercises.save_exercise(w.coach, {"title": "Serve", "demo_media_id": str(shared.id)})
    assert ex.demo_media_id == shared.id
    assert exercises.save_exercise(w.coach, {"title": "Toss", "demo_media_id": str(private.id)}).demo_media_id
    with pytest.raises(ProgressError, match="demo clip"):
        exercises.save_exercise(w.coach, {"title": "Volley", "demo_media_id": str(foreign_id)})


# --- the builder ---------------------------------------------------------------------------------------

def test_the_builder_shows_weeks_days_and_ordered_workouts_with_their_prescriptions(world):
    w = world
    program = build_program(w)
    view = programs.builder(program)
    assert [len(wk.days) for wk in view.weeks] == [7, 7]
    monday = view.weeks[0].days[0]
    assert monday.name == "Monday" and [x.title for x in monday.workouts] == ["Legs"]
    lines = view.lines[monday.workouts[0].id]
    assert [(line.exercise.title, programs.prescription(line)) for line in lines] == [
        ("Back squat", "3 × 8 · 60 kg · rest 1:30 · tempo 3-1-1"), ("Row 500 m", "500 m")]
    assert view.line_count == 3
    # Moving a line up reorders it.
    programs.move_line(w.coach, lines[1], "up")
    db.session.commit()
    assert [line.exercise.title for line in programs.builder(program).lines[monday.workouts[0].id]] == [
        "Row 500 m", "Back squat"]


@pytest.mark.parametrize("values, message", [
    ({"sets": "0"}, "Sets must be a whole number from 1 to 100"),
    ({"sets": "101"}, "Sets must be a whole number from 1 to 100"),
    ({"reps": "1001"}, "Reps must be a whole number from 1 to 1,000"),
    ({"reps": "many"}, "Reps must be a whole number"),
    ({"load_kg": "-1"}, "Load must be a number of kilograms from 0 to 10,000"),
    ({"load_kg": "10000.01"}, "Load must be"),
    ({"load_kg": "2.555"}, "at most two decimals"),
    ({"load_kg": "NaN"}, "Load must be"),
    ({"duration": "0"}, "Time: write seconds"),
    ({"duration": "24:00:01"}, "Time: write seconds"),
    ({"duration": "1:xx"}, "Time: write seconds"),
    ({"distance_m": "1000001"}, "Distance \\(m\\) must be"),
    ({"rest": "61:00"}, "Rest: write seconds"),
    ({"tempo": "3-1-1-3-1-1-9"}, "tempo has at most 12"),
    ({"notes": "x" * 501}, "at most 500"),
    ({"exercise_id": "nope"}, "Choose an exercise from the library"),
])
def test_out_of_range_prescriptions_get_a_clear_message_and_write_nothing(world, values, message):
    w = world
    program = build_program(w)
    legs = programs.builder(program).weeks[0].days[0].workouts[0]
    with pytest.raises(ProgressError, match=message) as error:
        programs.add_line(w.coach, program, legs, {"exercise_id": str(w.squat.id), **values})
    assert error.value.status == 422
    db.session.rollback()
    assert count(WorkoutExercise, w.org.id) == 3


def test_another_organizations_exercise_cannot_be_prescribed(world):
    w = world
    program = build_program(w)
    legs = programs.builder(program).weeks[0].days[0].workouts[0]
    with pytest.raises(ProgressError, match="Choose an exercise from the library"):
        programs.add_line(w.coach, program, legs, {"exercise_id": str(w.other_ids.exercise)})
    with pytest.raises(ProgressError) as error:
        programs.get_program(w.coach, w.other_ids.program)
    assert error.value.status == 404
    with pytest.raises(ProgressError) as error:
        programs.get_workout(w.coach, program, w.other_ids.workout)
    assert error.value.status == 404


def test_weeks_and_days_stay_in_range_and_a_program_cannot_shrink_under_its_workouts(world):
    w = world
    program = build_program(w)
    with pytest.raises(ProgressError, match="Week must be a whole number from 1 to 2"):
        programs.add_workout(w.coach, program, {"week": "3", "day": "1", "title": "Too far"})
    with pytest.raises(ProgressError, match="Day must be a whole number from 1 to 7"):
        programs.add_workout(w.coach, program, {"week": "1", "day": "8", "title": "Too far"})
    with pytest.raises(ProgressError, match="Weeks must be a whole number from 1 to 52"):
        programs.create_program(w.coach, {"title": "Forever", "weeks": "53"})
    programs.add_workout(w.coach, program, {"week": "2", "day": "7", "title": "Long run"})
    with pytest.raises(ProgressError, match="Week 2 has workouts"):
        programs.update_program(w.coach, program, {"title": "Short", "weeks": "1"})


def test_copy_week_copies_workouts_and_exercises_after_what_the_target_week_has(world):
    w = world
    program = build_program(w, weeks=3)
    programs.add_workout(w.coach, program, {"week": "2", "day": "1", "title": "Already there"})
    assert programs.copy_week(w.coach, program, "1", "2") == 2
    db.session.commit()
    view = programs.builder(program)
    monday2 = view.weeks[1].days[0].workouts
    assert [x.title for x in monday2] == ["Already there", "Legs"]
    assert [line.exercise.title for line in view.lines[monday2[1].id]] == ["Back squat", "Row 500 m"]
    assert [x.title for x in view.weeks[1].days[2].workouts] == ["Engine"]
    assert view.line_count == 6
    with pytest.raises(ProgressError, match="no workouts to copy"):
        programs.copy_week(w.coach, program, "3", "1")
    with pytest.raises(ProgressError, match="another week"):
        programs.copy_week(w.coach, program, "1", "1")


def test_a_template_is_a_deep_copy_and_a_program_started_from_it_is_independent(world):
    w = world
    program = build_program(w)
    template = programs.deep_copy(w.coach, program, "Base template", is_template=True)
    db.session.commit()
    started = programs.create_program(w.coach, {"title": "Ali's block", "template_id": str(template.id)})
    db.session.commit()
    assert (started.is_template, started.weeks) == (False, 2)
    view = programs.builder(started)
    assert view.line_count == 3
    legs = view.weeks[0].days[0].workouts[0]
    programs.update_line(w.coach, view.lines[legs.id][0], {"sets": "5", "reps": "5", "load_kg": "80"})
    db.session.commit()
    # The template and the original keep their prescription.
    for source in (template, program):
        first = programs.builder(source)
        assert programs.prescription(first.lines[first.weeks[0].days[0].workouts[0].id][0]).startswith("3 × 8")
    with pytest.raises(ProgressError, match="templates"):
        programs.create_program(w.coach, {"title": "x", "template_id": str(program.id)})
    with pytest.raises(ProgressError, match="not assigned"):
        programs.assign(w.coach, template, [str(w.athlete.id)], start=date.today())


def _fill_to_cap(w, program: Program) -> ProgramWorkout:
    workout = programs.add_workout(w.coach, program, {"week": "1", "day": "2", "title": "Volume"})
    have = programs.builder(program).line_count
    db.session.execute(WorkoutExercise.__table__.insert(), [
        {"id": uuid.uuid4(), "tenant_id": w.org.id, "workout_id": workout.id, "exercise_id": w.squat.id,
         "position": i, "tempo": "", "notes": ""} for i in range(MAX_EXERCISES_PER_PROGRAM - have)])
    db.session.commit()
    return workout


def test_a_program_holds_at_most_1000_exercises_whichever_way_they_come(world):
    w = world
    program = build_program(w, weeks=4)
    workout = _fill_to_cap(w, program)
    with pytest.raises(ProgressError, match="at most 1,000 exercises") as error:
        programs.add_line(w.coach, program, workout, {"exercise_id": str(w.row.id)})
    assert error.value.status == 422
    db.session.rollback()
    with pytest.raises(ProgressError, match="at most 1,000 exercises"):
        programs.copy_week(w.coach, program, "1", "2")
    db.session.rollback()
    assert count(WorkoutExercise, w.org.id) == MAX_EXERCISES_PER_PROGRAM


def test_the_cap_is_a_clear_422_on_the_page(world, coach_browser):
    w = world
    program = build_program(w, weeks=4)
    workout = _fill_to_cap(w, program)
    base = f"/o/{w.org.slug}/progress/programs/{program.id}"
    response = post(coach_browser, f"{base}/workouts/{workout.id}/lines", {"exercise_id": str(w.row.id)},
                    status=422, csrf_path=base)
    assert "A program holds at most 1,000 exercises (this one has 1,000; that would add 1)." in \
        response.get_data(as_text=True)
    response = post(coach_browser, f"{base}/copy-week", {"from_week": "1", "to_week": "2"}, status=422,
                    csrf_path=base)
    assert "A program holds at most 1,000 exercises" in response.get_data(as_text=True)
    assert count(WorkoutExercise, w.org.id) == MAX_EXERCISES_PER_PROGRAM


# --- assignment ----------------------------------------------------------------------------------------

def test_assigning_to_one_athlete_starts_on_the_monday_writes_the_timeline_and_emits(world, job_runner):
    w = world
    program = build_program(w)
    with job_runner.paused():  # the background relay would take the event out of the outbox before it is read
        [assignment] = programs.assign(w.coach, program, [str(w.athlete.id)], start=date(2026, 12, 9))  # Wednesday
        db.session.commit()
        events = db.session.scalars(select(OutboxEvent.payload).where(
            OutboxEvent.tenant_id == w.org.id, OutboxEvent.topic == "progress.program_assigned")).all()
    assert assignment.start_date == date(2026, 12, 7)
    entry = db.session.scalar(select(TimelineEntry).where(TimelineEntry.tenant_id == w.org.id,
                                                          TimelineEntry.subject_id == assignment.id))
    assert (entry.kind, entry.title, entry.athlete_membership_id) == ("program", "Program: Base block", w.athlete.id)
    assert "from Mon 07 Dec 2026" in entry.detail
    assert [e["assignment_id"] for e in events] == [str(assignment.id)]
    # The same start again adds nobody.
    assert programs.assign(w.coach, program, [str(w.athlete.id)], start=date(2026, 12, 7)) == []


def test_a_group_is_the_chosen_athletes_and_a_spaces_athletes_once_each(world):
    w = world
    program = build_program(w)
    space = Space(tenant_id=w.org.id, name="Squad", visibility="private", created_by_membership_id=w.coach.id)
    db.session.add(space)
    db.session.flush()
    for member, role in ((w.athlete, "member"), (w.tokyo, "member"), (w.coach, "host")):
        db.session.add(SpaceMember(tenant_id=w.org.id, space_id=space.id, membership_id=member.id, role=role))
    db.session.commit()
    made = programs.assign(w.coach, program, [str(w.athlete.id), str(w.athlete2.id)], [str(space.id)],
                           start=date.today())
    db.session.commit()
    assert {a.athlete_membership_id for a in made} == {w.athlete.id, w.athlete2.id, w.tokyo.id}
    assert count(ProgramAssignment, w.org.id) == 3


@pytest.mark.parametrize("who, message, status", [
    ("other_athlete", "not an athlete of the organization", 404),
    ("coach", "not an athlete of the organization", 404),
    ("garbage", "not a member", 404),
    ("nobody", "at least one athlete", 422),
])
def test_assignment_refuses_people_who_are_not_athletes_here(world, who, message, status):
    w = world
    program = build_program(w)
    ids = {"other_athlete": [str(w.other_ids.athlete)], "coach": [str(w.coach.id)], "garbage": ["x"],
           "nobody": []}[who]
    with pytest.raises(ProgressError, match=message) as error:
        programs.assign(w.coach, program, ids, start=date.today())
    assert error.value.status == status
    db.session.rollback()
    assert count(ProgramAssignment, w.org.id) == 0


def test_a_bad_or_far_start_date_is_refused(world):
    w = world
    program = build_program(w)
    with pytest.raises(ProgressError, match="choose a date"):
        programs.assign(w.coach, program, [str(w.athlete.id)], start="tomorrow")
    with pytest.raises(ProgressError, match="within a year"):
        programs.assign(w.coach, program, [str(w.athlete.id)], start=date.today() + timedelta(days=400))


# --- pages ---------------------------------------------------------------------------------------------

def page(browser, path: str, status: int = 200) -> str:
    response = browser.get(path)
    assert response.status_code == status, (path, response.status_code)
    return response.get_data(as_text=True)


def post(browser, path: str, data: dict, status: int = 303, headers: dict | None = None, csrf_path: str = ""):
    token = csrf_from(page(browser, csrf_path or path.rsplit("/", 1)[0]))
    response = browser.post(path, data={"csrf_token": token, **data}, headers=headers or {})
    assert response.status_code == status, (path, response.status_code, response.get_data(as_text=True)[:3000])
    return response


@pytest.fixture()
def coach_browser(app, world):
    browser = app.test_client()
    Auth(browser).login(world.coach_user.email, PASSWORD)
    return browser


def test_a_coach_builds_a_program_without_javascript(world, coach_browser):
    w = world
    base = f"/o/{w.org.slug}/progress"
    b = coach_browser
    assert "Exercise library" in page(b, f"{base}/programs")
    created = post(b, f"{base}/programs", {"title": "Spring block", "weeks": "3"}, csrf_path=f"{base}/programs")
    builder_path = created.headers["Location"]
    program = db.session.scalar(select(Program).where(Program.tenant_id == w.org.id, Program.title == "Spring block"))
    assert builder_path.endswith(f"/programs/{program.id}")
    html = page(b, builder_path)
    assert "Week 3" in html and "day 1 of each week is a Monday" in html
    post(b, f"{base}/programs/{program.id}/workouts", {"week": "1", "day": "2", "title": "Power"},
         csrf_path=builder_path)
    workout = db.session.scalar(select(ProgramWorkout).where(ProgramWorkout.program_id == program.id))
    assert (workout.week, workout.day) == (1, 2)
    post(b, f"{base}/programs/{program.id}/workouts/{workout.id}/lines",
         {"exercise_id": str(w.squat.id), "sets": "5", "reps": "3", "load_kg": "100", "rest": "3:00"},
         csrf_path=builder_path)
    html = page(b, builder_path)
    assert "5 × 3 · 100 kg · rest 3:00" in html
    # A bad value re-shows the builder with the message (422), nothing written.
    response = post(b, f"{base}/programs/{program.id}/workouts/{workout.id}/lines",
                    {"exercise_id": str(w.squat.id), "sets": "500"}, status=422, csrf_path=builder_path)
    assert "Sets must be a whole number from 1 to 100." in response.get_data(as_text=True)
    # With htmx the workout comes back alone, swapped in place.
    response = post(b, f"{base}/programs/{program.id}/workouts/{workout.id}/lines",
                    {"exercise_id": str(w.row.id), "distance_m": "2000"}, status=200,
                    headers={"HX-Request": "true"}, csrf_path=builder_path)
    fragment = response.get_data(as_text=True)
    assert fragment.lstrip().startswith(f'<article class="card workout" id="workout-{workout.id}"')
    assert "2,000 m" in fragment and "<html" not in fragment
    # Copy the week, save a template, assign.
    post(b, f"{base}/programs/{program.id}/copy-week", {"from_week": "1", "to_week": "3"}, csrf_path=builder_path)
    assert "1 workout copied to week 3." in page(b, builder_path)
    template_made = post(b, f"{base}/programs/{program.id}/template", {"title": "Spring template"},
                         csrf_path=builder_path)
    assert "Template" in page(b, template_made.headers["Location"])
    assign_path = f"{base}/programs/{program.id}/assign"
    assert "Monday" in page(b, assign_path)
    post(b, assign_path, {"start": "2026-12-09", "athlete_ids": [str(w.athlete.id), str(w.athlete2.id)]})
    html = page(b, builder_path)
    assert "Ali Athlete" in html and "Bea Athlete" in html and "Mon 07 Dec 2026" in html


def test_a_workout_with_logs_cannot_be_removed_and_the_page_says_why(world, coach_browser, monkeypatch):
    from coach import clock
    monkeypatch.setattr(clock, "now", lambda: datetime(2026, 12, 8, 12, 0, tzinfo=timezone.utc))
    w = world
    program = build_program(w)
    programs.assign(w.coach, program, [str(w.athlete.id)], start=date(2026, 12, 7))
    db.session.commit()
    legs = programs.builder(program).weeks[0].days[0].workouts[0]
    [item] = programs.today(w.athlete, date(2026, 12, 7))
    programs.log_workout(w.athlete, item.assignment.id, legs.id, {"status": "done"})
    db.session.commit()
    base = f"/o/{w.org.slug}/progress/programs/{program.id}"
    assert "Logged by athletes: it stays." in page(coach_browser, base)
    response = post(coach_browser, f"{base}/workouts/{legs.id}/delete", {}, status=409, csrf_path=base)
    assert "has been logged by an athlete" in response.get_data(as_text=True)
    assert db.session.get(ProgramWorkout, legs.id) is not None


def test_another_organizations_ids_are_404_on_every_page(world, coach_browser):
    w = world
    base = f"/o/{w.org.slug}/progress"
    program = build_program(w)
    o = w.other_ids
    for path in (f"/programs/{o.program}", f"/programs/{o.program}/assign", f"/exercises/{o.exercise}",
                 f"/programs/{program.id}/x", f"/workouts?athlete_id={o.athlete}",
                 f"/workouts/calendar?athlete_id={o.athlete}", "/exercises/nope"):
        assert coach_browser.get(base + path).status_code == 404, path
    token = csrf_from(page(coach_browser, f"{base}/programs/{program.id}"))
    for path, data in ((f"/programs/{o.program}/workouts", {"week": "1", "day": "1", "title": "x"}),
                       (f"/programs/{program.id}/workouts/{o.workout}/lines", {"exercise_id": str(w.squat.id)}),
                       (f"/programs/{o.program}/archive", {})):
        assert coach_browser.post(base + path, data={"csrf_token": token, **data}).status_code == 404, path
    tenancy.activate(w.other_org.id)
    assert db.session.scalar(select(func.count()).select_from(ProgramWorkout).where(
        ProgramWorkout.program_id == o.program)) == 1
    tenancy.activate(w.org.id)


def test_athletes_and_schedulers_cannot_open_the_builder(world, app):
    w = world
    browser = app.test_client()
    Auth(browser).login(w.athlete_user.email, PASSWORD)
    program = build_program(w)
    for path in ("/programs", f"/programs/{program.id}", "/exercises", "/compliance"):
        assert browser.get(f"/o/{w.org.slug}/progress{path}").status_code == 403, path


def test_the_exercise_library_page_adds_and_archives(world, coach_browser):
    w = world
    base = f"/o/{w.org.slug}/progress/exercises"
    post(coach_browser, base, {"title": "Plank", "description": "Hold."}, csrf_path=base)
    response = post(coach_browser, base, {"title": "plank"}, status=409, csrf_path=base)
    assert "already has an exercise called" in response.get_data(as_text=True)
    build_program(w)
    post(coach_browser, f"{base}/{w.squat.id}/archive", {}, csrf_path=base)
    assert "is archived: programs using it keep it." in page(coach_browser, base)
    db.session.expire_all()
    assert db.session.get(Exercise, w.squat.id).archived_at is not None


def test_the_builder_is_a_fixed_number_of_statements(world, coach_browser, app):
    w = world
    small = build_program(w, title="Small")
    big = build_program(w, weeks=4, title="Big")
    for week in ("2", "3", "4"):
        programs.copy_week(w.coach, big, "1", week)
    programs.assign(w.coach, big, [str(w.athlete.id), str(w.athlete2.id)], start=date.today())
    db.session.commit()
    base = f"/o/{w.org.slug}/progress/programs"
    page(coach_browser, f"{base}/{small.id}")
    counts = {p.title: statements_for(app, coach_browser, f"{base}/{p.id}") for p in (small, big)}
    # The floor, the program, its workouts, their exercises, the logged ones, the library, the assignments.
    assert counts["Small"] == counts["Big"] == 8, counts


HOSTILE = ["", " ", "\x00", "9" * 31, "-1", "1e999", "NaN", "sNaN", "Infinity", "²", "1::30", "٣", "x" * 6000,
           "\u202egnp.exe", "🏋️" * 50, "2026-02-30", "0001-01-01", str(uuid.uuid4()), "up", "sideways"]


def test_hostile_values_in_every_builder_form_are_refused_never_errors(world, coach_browser):
    """Every form of the builder, each field replaced by hostile values (plain and htmx, a field sent twice):
    a 4xx or a redirect, never a 5xx."""
    w = world
    program = build_program(w)
    view = programs.builder(program)
    legs = view.weeks[0].days[0].workouts[0]
    line = view.lines[legs.id][0]
    base = f"/o/{w.org.slug}/progress"
    p = f"{base}/programs/{program.id}"
    forms = {
        f"{base}/programs": {"title": "T", "weeks": "2", "description": "", "template_id": ""},
        p: {"title": "T", "weeks": "2", "description": ""},
        f"{p}/copy-week": {"from_week": "1", "to_week": "2"},
        f"{p}/template": {"title": "Copy"},
        f"{p}/workouts": {"week": "1", "day": "1", "title": "W", "notes": ""},
        f"{p}/workouts/{legs.id}": {"title": "W", "notes": ""},
        f"{p}/workouts/{legs.id}/move": {"direction": "up"},
        f"{p}/workouts/{legs.id}/lines": {"exercise_id": str(w.squat.id), "sets": "1", "reps": "1", "load_kg": "1",
                                          "duration": "1", "distance_m": "1", "rest": "1", "tempo": "", "notes": ""},
        f"{p}/workouts/{legs.id}/lines/{line.id}": {"sets": "1", "reps": "1", "load_kg": "1", "tempo": ""},
        f"{p}/workouts/{legs.id}/lines/{line.id}/move": {"direction": "up"},
        f"{p}/assign": {"start": "2026-12-07", "athlete_ids": str(w.athlete.id), "space_ids": ""},
        f"{base}/exercises": {"title": "E", "description": "", "demo_media_id": ""},
        f"{base}/exercises/{w.row.id}": {"title": "Row 500 m", "description": "", "demo_media_id": ""},
    }
    token = csrf_from(page(coach_browser, p))
    for path, fields in forms.items():
        for name in fields:
            for n, value in enumerate(HOSTILE):
                data = MultiDict([("csrf_token", token), *((k, v) for k, v in fields.items() if k != name),
                                  (name, value), (name, "again")])
                for headers in ({}, {"HX-Request": "true"}) if n % 3 == 0 else ({},):
                    response = coach_browser.post(path, data=data, headers=headers)
                    assert response.status_code < 500, (path, name, value, response.status_code)
