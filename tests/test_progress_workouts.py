"""Training programs, athlete side: the schedule and "today" in the athlete's own time zone, logging (and
editing) a workout, the bounds of what may be logged, comments and their notifications, compliance (per athlete
and in one statement for many), the calendar feed carrying the workouts, and the pages."""
from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import event, func, select

from coach import clock, tenancy
from coach.booking import service as booking
from coach.extensions import db
from coach.notifications.models import Notification
from coach.orgs.models import Membership
from coach.platform.models import OutboxEvent
from coach.progress import programs
from coach.progress.access import ProgressError
from coach.progress.models import TimelineEntry, WorkoutLog, WorkoutLogExercise
from tests.conftest import Auth, csrf_from
from tests.factories import PASSWORD, media_row
from tests.querycount import statements_for
from tests.test_progress_programs import build_program, make_world

UTC = timezone.utc
# Wednesday 16 December 2026, 20:00 UTC: 21:00 in Berlin (still the 16th), 05:00 on the 17th in Tokyo.
NOW = datetime(2026, 12, 16, 20, 0, tzinfo=UTC)
MON7, WED9, MON14, WED16, THU17 = (date(2026, 12, 7), date(2026, 12, 9), date(2026, 12, 14), date(2026, 12, 16),
                                   date(2026, 12, 17))


@pytest.fixture()
def frozen(monkeypatch):
    monkeypatch.setattr(clock, "now", lambda: NOW)
    return NOW


@pytest.fixture()
def world(ctx, frozen):
    """A two-week program (Monday "Legs", Wednesday "Engine", Thursday "Easy run", both weeks) assigned from
    Monday 7 December to Ali (Berlin), Bea (Berlin) and Tai (Tokyo)."""
    w = make_world()
    w.program = build_program(w)
    programs.add_workout(w.coach, w.program, {"week": "1", "day": "4", "title": "Easy run"})
    programs.copy_week(w.coach, w.program, "1", "2")
    made = programs.assign(w.coach, w.program, [str(w.athlete.id), str(w.athlete2.id), str(w.tokyo.id)],
                           start=MON7)
    db.session.commit()
    w.assignment = {a.athlete_membership_id: a for a in made}
    return w


def scheduled(w, athlete, on: date, title: str):
    [item] = [s for s in programs.schedule(athlete, on, on) if s.workout.title == title]
    return item


def log(w, athlete, on, title, status="done", **values):
    item = scheduled(w, athlete, on, title)
    return programs.log_workout(athlete, item.assignment.id, item.workout.id, {"status": status, **values})


class Counter:
    def __init__(self):
        self.seen = []
        self.me = threading.get_ident()

    def __call__(self, conn, cursor, statement, parameters, context, executemany):
        if threading.get_ident() == self.me:
            self.seen.append(statement)

    def __enter__(self):
        event.listen(db.engine, "before_cursor_execute", self)
        return self

    def __exit__(self, *exc):
        event.remove(db.engine, "before_cursor_execute", self)


# --- schedule and today ----------------------------------------------------------------------------

def test_the_schedule_puts_week_1_day_1_on_the_monday_and_lists_each_days_workouts(world):
    w = world
    days = [(s.on, s.workout.title) for s in programs.schedule(w.athlete, MON7, date(2026, 12, 20))]
    assert days == [(MON7, "Legs"), (WED9, "Engine"), (date(2026, 12, 10), "Easy run"), (MON14, "Legs"),
                    (WED16, "Engine"), (THU17, "Easy run")]
    # Nothing after the program's two weeks.
    assert programs.schedule(w.athlete, date(2026, 12, 21), date(2027, 1, 31)) == []


def test_today_is_the_athletes_own_day_in_their_time_zone(world):
    w = world
    [berlin] = programs.today(w.athlete)
    assert (berlin.scheduled_on, berlin.workout.title) == (WED16, "Engine")
    assert [line.exercise.title for line in berlin.exercises] == ["Row 500 m"]
    assert berlin.log is None
    [tokyo] = programs.today(w.tokyo)
    assert (tokyo.scheduled_on, tokyo.workout.title) == (THU17, "Easy run")


def test_today_and_schedule_are_a_fixed_number_of_statements(world):
    w = world
    athlete = w.athlete
    _ = athlete.user.timezone
    with Counter() as counted:
        programs.today(athlete)
    assert len(counted.seen) == 4  # assignments with programs, workouts, logs, lines with exercises


# --- logging ---------------------------------------------------------------------------------------

def test_logging_records_actuals_status_rpe_and_a_video_writes_the_timeline_and_emits_once(world, quiet):
    # quiet: the background relay stands still, so the event is still in the outbox to be counted (the outbox
    # stamps it with the real time, not the frozen clock's, and the relay would otherwise take it).
    w = world
    video = media_row(w.org.id, w.athlete)
    db.session.commit()
    item = scheduled(w, w.athlete, MON7, "Legs")
    lines = programs.today(w.athlete, MON7)[0].exercises
    entry = programs.log_workout(w.athlete, item.assignment.id, item.workout.id, {
        "status": "partial", "rpe": "8", "note": "Knee felt tight", "media_id": str(video.id),
        "lines": {str(lines[0].id): {"sets": "3", "reps": "6", "load_kg": "57.5"},
                  str(lines[1].id): {"distance_m": ""}}})
    db.session.commit()
    assert (entry.status, entry.rpe, entry.scheduled_on, entry.media_id) == ("partial", 8, MON7, video.id)
    actuals = db.session.scalars(select(WorkoutLogExercise).where(WorkoutLogExercise.log_id == entry.id)).all()
    assert [(a.sets, a.reps, str(a.load_kg)) for a in actuals] == [(3, 6, "57.50")]
    timeline = db.session.scalar(select(TimelineEntry).where(TimelineEntry.subject_id == entry.id))
    assert (timeline.kind, timeline.title, timeline.detail) == ("workout", "Workout partly done: Legs",
                                                               "RPE 8 · Knee felt tight")
    # Editing later changes the log (and its timeline entry), emits nothing more.
    again = programs.log_workout(w.athlete, item.assignment.id, item.workout.id, {"status": "done", "rpe": "7"})
    db.session.commit()
    assert again.id == entry.id and again.status == "done"
    assert db.session.scalar(select(TimelineEntry.title).where(TimelineEntry.subject_id == entry.id)) == \
        "Workout done: Legs"
    assert db.session.scalar(select(func.count()).select_from(WorkoutLogExercise).where(
        WorkoutLogExercise.log_id == entry.id)) == 0
    topics = db.session.scalars(select(OutboxEvent.topic).where(OutboxEvent.tenant_id == w.org.id,
                                                                OutboxEvent.topic == "progress.workout_logged")).all()
    assert len(topics) == 1


def test_a_workout_ahead_of_today_in_the_athletes_zone_cannot_be_logged(world):
    w = world
    with pytest.raises(ProgressError, match="scheduled for Thursday 17 December: log it on that day or after") as e:
        log(w, w.athlete, THU17, "Easy run")
    assert e.value.status == 422
    db.session.rollback()
    # In Tokyo it is already Thursday.
    assert log(w, w.tokyo, THU17, "Easy run").scheduled_on == THU17


@pytest.mark.parametrize("values, message", [
    ({"status": "finished"}, "done, partly done or skipped"),
    ({"rpe": "11"}, "Effort \\(RPE\\) must be a whole number from 1 to 10"),
    ({"rpe": "0"}, "Effort \\(RPE\\)"),
    ({"note": "x" * 2001}, "at most 2,000"),
    ({"media_id": "not-an-id"}, "Choose a video from your media"),
])
def test_bad_log_values_get_a_clear_message_and_write_nothing(world, values, message):
    w = world
    with pytest.raises(ProgressError, match=message):
        log(w, w.athlete, MON7, "Legs", **{"status": "done", **values})
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(WorkoutLog).where(WorkoutLog.tenant_id == w.org.id)) == 0


def test_actuals_out_of_range_name_the_exercise(world):
    w = world
    item = scheduled(w, w.athlete, MON7, "Legs")
    line = programs.today(w.athlete, MON7)[0].exercises[0]
    with pytest.raises(ProgressError, match="Back squat: reps must be a whole number from 0 to 1,000"):
        programs.log_workout(w.athlete, item.assignment.id, item.workout.id,
                             {"status": "done", "lines": {str(line.id): {"reps": "5000"}}})
    with pytest.raises(ProgressError, match="not part of this workout"):
        programs.log_workout(w.athlete, item.assignment.id, item.workout.id,
                             {"status": "done", "lines": {str(w.squat.id): {"reps": "5"}}})


def test_only_a_workout_scheduled_for_this_athlete_can_be_logged(world):
    w = world
    mine = scheduled(w, w.athlete, MON7, "Legs")
    bea = w.assignment[w.athlete2.id]
    # Bea's assignment is not Ali's; another organization's workout is not in this program; staff do not log.
    for assignment_id, workout_id in ((bea.id, mine.workout.id), (mine.assignment.id, w.other_ids.workout),
                                      (mine.assignment.id, "nope")):
        with pytest.raises(ProgressError) as error:
            programs.log_workout(w.athlete, assignment_id, workout_id, {"status": "done"})
        assert error.value.status == 404
    with pytest.raises(ProgressError) as error:
        programs.log_workout(w.coach, mine.assignment.id, mine.workout.id, {"status": "done"})
    assert error.value.status == 403


def test_a_video_must_be_one_the_athlete_may_view(world):
    w = world
    someone_elses = media_row(w.org.id, w.athlete2, audience="staff")
    db.session.commit()
    with pytest.raises(ProgressError, match="Choose a video from your media"):
        log(w, w.athlete, MON7, "Legs", media_id=str(someone_elses.id))


def test_an_ended_assignment_schedules_nothing_after_it_ended(world):
    w = world
    log(w, w.athlete, MON7, "Legs")
    programs.end_assignment(w.coach, w.assignment[w.athlete.id])
    db.session.commit()
    titles = [(s.on, s.workout.title) for s in programs.schedule(w.athlete, MON7, date(2026, 12, 31))]
    assert titles[0] == (MON7, "Legs") and titles[-1] == (WED16, "Engine") and len(titles) == 5


# --- compliance ------------------------------------------------------------------------------------

def test_compliance_counts_done_partial_and_missed_per_week(world):
    w = world
    log(w, w.athlete, MON7, "Legs", "done")
    log(w, w.athlete, WED9, "Engine", "partial")
    log(w, w.athlete, MON14, "Legs", "skipped")
    db.session.commit()
    first, second = programs.compliance(w.athlete, weeks=2)
    # Week 1: Thursday's run passed without a log.
    assert (first.week_start, first.scheduled, first.done, first.partial, first.missed) == (MON7, 3, 1, 1, 1)
    assert first.percent == 50
    # Week 2: Monday skipped (missed); today's Engine and Thursday's run are pending, not missed.
    assert (second.week_start, second.scheduled, second.done, second.missed, second.skipped, second.pending) == (
        MON14, 3, 0, 1, 1, 2)
    assert second.percent == 0
    # Tokyo is already on Thursday: Wednesday's workout is missed there, as is Monday's.
    tokyo = programs.compliance(w.tokyo, weeks=1)[0]
    assert (tokyo.week_start, tokyo.missed, tokyo.pending) == (MON14, 2, 1)


def test_compliance_for_many_athletes_is_one_statement(world):
    w = world
    log(w, w.athlete, MON7, "Legs", "done")
    db.session.commit()
    ids = [w.athlete.id, w.athlete2.id, w.tokyo.id, w.coach.id]
    with Counter() as counted:
        found = programs.compliance_for(w.org.id, ids, MON7)
    assert len(counted.seen) == 1
    assert (found[w.athlete.id].done, found[w.athlete.id].missed) == (1, 2)
    assert (found[w.athlete2.id].done, found[w.athlete2.id].missed, found[w.athlete2.id].percent) == (0, 3, 0)
    assert w.coach.id not in found
    # Another organization's tenant id finds nothing of this one.
    assert programs.compliance_for(w.other_org.id, ids, MON7) == {}


# --- comments and notifications --------------------------------------------------------------------------

def test_comments_go_to_the_other_side(world, job_runner, monkeypatch):
    w = world
    entry = log(w, w.athlete, MON7, "Legs", "done", rpe="6")
    db.session.commit()
    with job_runner.paused():  # nothing of the background round in flight
        job_runner.drain()
    tenancy.activate(w.org.id)
    kinds = {(n.membership_id, n.kind) for n in db.session.scalars(
        select(Notification).where(Notification.tenant_id == w.org.id))}
    assert (w.athlete.id, "program_assigned") in kinds and (w.coach.id, "workout_logged") in kinds
    programs.add_comment(w.coach, entry, "Great depth!")
    db.session.commit()
    with job_runner.paused():  # nothing of the background round in flight
        job_runner.drain()
    tenancy.activate(w.org.id)
    told = db.session.scalar(select(Notification).where(Notification.tenant_id == w.org.id,
                                                        Notification.kind == "workout_comment"))
    assert (told.membership_id, told.title) == (w.athlete.id, "Cora Coach commented on Legs")
    monkeypatch.setattr(clock, "now", lambda: NOW + timedelta(minutes=5))
    programs.add_comment(w.athlete, entry, "Thanks!")
    db.session.commit()
    with job_runner.paused():  # nothing of the background round in flight
        job_runner.drain()
    tenancy.activate(w.org.id)
    told = {n.membership_id for n in db.session.scalars(select(Notification).where(
        Notification.tenant_id == w.org.id, Notification.kind == "workout_comment"))}
    assert told == {w.athlete.id, w.coach.id}
    assert [c.body for c, _ in programs.comments(entry)] == ["Great depth!", "Thanks!"]
    with pytest.raises(ProgressError) as error:
        programs.add_comment(w.athlete2, entry, "Hi")
    assert error.value.status == 404
    with pytest.raises(ProgressError, match="Write a comment"):
        programs.add_comment(w.coach, entry, "   ")


# --- the calendar feed -----------------------------------------------------------------------------------

def test_the_athletes_calendar_feed_lists_the_workouts_as_all_day_events_with_stable_uids(world, client):
    w = world
    secret = booking.regenerate_feed(w.athlete)
    db.session.commit()
    body = client.get(f"/o/{w.org.slug}/calendar/{secret}.ics").get_data(as_text=True).replace("\r\n ", "")
    assert body.count("BEGIN:VEVENT") == 6
    assert "SUMMARY:Workout: Legs (Base block)" in body
    assert "DTSTART;VALUE=DATE:20261207" in body
    legs = scheduled(w, w.athlete, MON7, "Legs")
    assert f"UID:workout-{legs.assignment.id}-{legs.workout.id}@coach" in body
    assert body == client.get(f"/o/{w.org.slug}/calendar/{secret}.ics").get_data(as_text=True).replace("\r\n ", "")
    # A logged workout says so, with a higher sequence so calendar apps replace their copy.
    log(w, w.athlete, MON7, "Legs", "done")
    db.session.commit()
    again = client.get(f"/o/{w.org.slug}/calendar/{secret}.ics").get_data(as_text=True).replace("\r\n ", "")
    legs_event = again[again.index(f"UID:workout-{legs.assignment.id}-{legs.workout.id}@coach"):]
    legs_event = legs_event[:legs_event.index("END:VEVENT")]
    assert "SEQUENCE:1" in legs_event and "Week 1\\, Monday · Done" in legs_event
    coach_secret = booking.regenerate_feed(w.coach)
    db.session.commit()
    assert "BEGIN:VEVENT" not in client.get(f"/o/{w.org.slug}/calendar/{coach_secret}.ics").get_data(as_text=True)


# --- pages ---------------------------------------------------------------------------------------------

def login(app, user):
    browser = app.test_client()
    Auth(browser).login(user.email, PASSWORD)
    return browser


def page(browser, path: str, status: int = 200) -> str:
    response = browser.get(path)
    assert response.status_code == status, (path, response.status_code)
    return response.get_data(as_text=True)


def test_the_athlete_sees_today_logs_it_from_the_form_and_edits_it(world, app):
    w = world
    base = f"/o/{w.org.slug}/progress"
    browser = login(app, w.athlete_user)
    html = page(browser, f"{base}/workouts")
    assert "Today, Wednesday 16 December 2026 (Europe/Berlin)" in html
    assert "Engine" in html and "Log it" in html and "Thu 17 Dec" in html
    item = scheduled(w, w.athlete, WED16, "Engine")
    line = programs.today(w.athlete)[0].exercises[0]
    form_path = f"{base}/workouts/{item.assignment.id}/{item.workout.id}"
    token = csrf_from(page(browser, form_path))
    response = browser.post(form_path, data={"csrf_token": token, "status": "partial", "rpe": "9", "note": "Windy",
                                             f"line-{line.id}-duration": "18:30"})
    assert response.status_code == 303
    entry = db.session.scalar(select(WorkoutLog).where(WorkoutLog.assignment_id == item.assignment.id,
                                                       WorkoutLog.workout_id == item.workout.id))
    assert response.headers["Location"].endswith(f"/workouts/logs/{entry.id}")
    html = page(browser, f"{base}/workouts/logs/{entry.id}")
    assert "Partly done" in html and "RPE 9" in html and "18:30" in html and "Windy" in html
    # Editing: the form shows what was logged.
    html = page(browser, form_path)
    assert 'value="18:30"' in html and "Save changes" in html
    # A bad RPE re-shows the form with the message, keeping what was typed.
    response = browser.post(form_path, data={"csrf_token": token, "status": "done", "rpe": "12", "note": "Later"})
    assert response.status_code == 422
    assert "Effort (RPE) must be a whole number from 1 to 10." in response.get_data(as_text=True)
    assert "Later" in response.get_data(as_text=True)
    # Tomorrow's workout cannot be logged yet.
    tomorrow = scheduled(w, w.athlete, THU17, "Easy run")
    tomorrow_path = f"{base}/workouts/{tomorrow.assignment.id}/{tomorrow.workout.id}"
    assert "you can log it on that day or after" in page(browser, tomorrow_path)
    response = browser.post(tomorrow_path, data={"csrf_token": token, "status": "done"})
    assert response.status_code == 422
    # Another athlete's assignment, another organization's workout: 404.
    bea = w.assignment[w.athlete2.id]
    assert browser.get(f"{base}/workouts/{bea.id}/{item.workout.id}").status_code == 404
    assert browser.get(f"{base}/workouts/{item.assignment.id}/{w.other_ids.workout}").status_code == 404
    assert browser.get(f"{base}/workouts?athlete_id={w.athlete2.id}").status_code == 200  # an athlete sees their own


def test_the_comment_thread_of_a_log(world, app):
    w = world
    entry = log(w, w.athlete, MON7, "Legs", "done")
    db.session.commit()
    base = f"/o/{w.org.slug}/progress/workouts/logs/{entry.id}"
    coach = login(app, w.coach_user)
    token = csrf_from(page(coach, base))
    response = coach.post(f"{base}/comments", data={"csrf_token": token, "body": "Strong session"})
    assert response.status_code == 303
    response = coach.post(f"{base}/comments", data={"csrf_token": token, "body": "  "})
    assert response.status_code == 422 and "Write a comment first." in response.get_data(as_text=True)
    athlete = login(app, w.athlete_user)
    assert "Strong session" in page(athlete, base)
    # Bea cannot open Ali's log.
    bea_user = db.session.get(Membership, w.athlete2.id).user
    assert login(app, bea_user).get(base).status_code == 404


def test_the_month_calendar_shows_each_day_with_its_status(world, app):
    w = world
    log(w, w.athlete, MON7, "Legs", "done")
    db.session.commit()
    browser = login(app, w.athlete_user)
    html = page(browser, f"/o/{w.org.slug}/progress/workouts/calendar?month=2026-12")
    assert "December 2026" in html
    assert 'class="workout-chip status-done"' in html
    assert html.count('class="workout-chip status-missed"') == 3  # Wed 9, Thu 10, Mon 14
    assert html.count('class="workout-chip status-planned"') == 2  # today and tomorrow
    assert browser.get(f"/o/{w.org.slug}/progress/workouts/calendar?month=nonsense").status_code == 404


def test_the_coach_compliance_page_shows_each_athlete_per_week(world, app):
    w = world
    log(w, w.athlete, MON7, "Legs", "done")
    log(w, w.athlete, WED9, "Engine", "partial")
    db.session.commit()
    browser = login(app, w.coach_user)
    html = page(browser, f"/o/{w.org.slug}/progress/compliance")
    row = html[html.index(f'id="compliance-{w.athlete.id}"'):]
    row = row[:row.index("</tr>")]
    assert "Week of 07 Dec" in html
    assert "50%" in row and "1 done · 1 partly · 1 missed" in row


def test_the_workouts_and_compliance_pages_are_a_fixed_number_of_statements(world, app):
    w = world
    browser = login(app, w.athlete_user)
    page(browser, f"/o/{w.org.slug}/progress/workouts")
    few = statements_for(app, browser, f"/o/{w.org.slug}/progress/workouts")
    calendar_few = statements_for(app, browser, f"/o/{w.org.slug}/progress/workouts/calendar")
    coach = login(app, w.coach_user)
    page(coach, f"/o/{w.org.slug}/progress/compliance")
    compliance_few = statements_for(app, coach, f"/o/{w.org.slug}/progress/compliance")
    # Double everything: a second program for everyone, logs, and more athletes.
    second = build_program(w, title="Second block")
    programs.copy_week(w.coach, second, "1", "2")
    programs.assign(w.coach, second, [str(w.athlete.id), str(w.athlete2.id), str(w.tokyo.id)], start=MON7)
    for item in programs.schedule(w.athlete, MON7, WED9):
        programs.log_workout(w.athlete, item.assignment.id, item.workout.id, {"status": "done"})
    db.session.commit()
    many = (statements_for(app, browser, f"/o/{w.org.slug}/progress/workouts"),
            statements_for(app, browser, f"/o/{w.org.slug}/progress/workouts/calendar"),
            statements_for(app, coach, f"/o/{w.org.slug}/progress/compliance"))
    # Workouts: the floor, today (assignments, workouts, logs, exercises), the next days (three); calendar: the
    # floor and the schedule; compliance: the floor, the athletes and one statement for the grid.
    assert (few, calendar_few, compliance_few) == many == (9, 5, 4)


def test_odd_dates_in_the_address_are_404s_not_errors(world, app):
    w = world
    athlete = login(app, w.athlete_user)
    for path in ("/workouts?on=9999-12-31", "/workouts?on=0001-01-01", "/workouts?on=yesterday",
                 "/workouts/calendar?month=9999-12", "/workouts/calendar?month=2026-13"):
        assert athlete.get(f"/o/{w.org.slug}/progress{path}").status_code == 404, path
    coach = login(app, w.coach_user)
    for path in ("/compliance?week=0001-01-01", "/compliance?week=9999-12-31"):
        assert coach.get(f"/o/{w.org.slug}/progress{path}").status_code == 404, path
    # Staff without an athlete go to the compliance page, which links every athlete's calendar.
    assert coach.get(f"/o/{w.org.slug}/progress/workouts").headers["Location"].endswith("/progress/compliance")


def test_hostile_values_in_the_log_and_comment_forms_are_refused_never_errors(world, app):
    from werkzeug.datastructures import MultiDict

    from tests.test_progress_programs import HOSTILE
    w = world
    browser = login(app, w.athlete_user)
    item = scheduled(w, w.athlete, MON7, "Legs")
    line = programs.today(w.athlete, MON7)[0].exercises[0]
    entry = log(w, w.athlete, WED9, "Engine")
    db.session.commit()
    base = f"/o/{w.org.slug}/progress/workouts"
    form_path = f"{base}/{item.assignment.id}/{item.workout.id}"
    token = csrf_from(page(browser, form_path))
    forms = {form_path: {"status": "done", "rpe": "5", "note": "", "media_id": "", f"line-{line.id}-sets": "1",
                         f"line-{line.id}-load_kg": "1", f"line-{line.id}-duration": "1", "line-x-sets": "1"},
             f"{base}/logs/{entry.id}/comments": {"body": "Hi"}}
    for path, fields in forms.items():
        for name in fields:
            for value in HOSTILE:
                data = MultiDict([("csrf_token", token), *((k, v) for k, v in fields.items() if k != name),
                                  (name, value), (name, "again")])
                response = browser.post(path, data=data)
                assert response.status_code < 500, (path, name, value, response.status_code)


def test_the_coach_reads_an_athletes_workouts_and_log_with_its_video(world, app):
    w = world
    video = media_row(w.org.id, w.athlete, title="Row technique")
    db.session.commit()
    entry = log(w, w.athlete, MON7, "Legs", "done", media_id=str(video.id), note="Felt strong")
    db.session.commit()
    coach = login(app, w.coach_user)
    base = f"/o/{w.org.slug}/progress/workouts"
    html = page(coach, f"{base}?athlete_id={w.athlete.id}")
    assert "Workouts of Ali Athlete" in html and "Engine" in html
    html = page(coach, f"{base}/logs/{entry.id}")
    assert "Row technique" in html and "Felt strong" in html and "Edit the log" not in html
    item = scheduled(w, w.athlete, MON7, "Legs")
    assert "Only Ali Athlete logs this workout." in page(coach, f"{base}/{item.assignment.id}/{item.workout.id}")
    assert "Ali Athlete" in page(coach, f"{base}/calendar?athlete_id={w.athlete.id}&month=2026-12")
    # Bea (an athlete) cannot open Ali's pages by id.
    bea = login(app, db.session.get(Membership, w.athlete2.id).user)
    assert bea.get(f"{base}/{item.assignment.id}/{item.workout.id}").status_code == 404
