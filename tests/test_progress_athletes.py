"""The athlete pages: the coach's athlete list and an athlete's "Today" (``progress.index``), one athlete's page
(``progress.athlete``: charts, timeline, private notes) for each role, a second organization, and the notes."""
from __future__ import annotations

import re
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace

import pytest
from sqlalchemy import func, insert, select

from coach import clock, tenancy
from coach.booking.models import Booking, CoachingSession
from coach.extensions import db
from coach.orgs.models import ADMIN, ATHLETE, COACH, SCHEDULER, Membership
from coach.progress import athletes, charts, goals, programs
from coach.progress.access import ProgressError
from coach.progress.models import (CoachNote, Goal, GoalValue, Habit, HabitCheckin, Program, ProgramAssignment,
                                   ProgramWorkout, ReadinessCheckin, TimelineEntry, WorkoutLog)
from tests.booking_support import make_offering
from tests.conftest import Auth, csrf_from
from tests.factories import add_member, make_org, make_user

UTC = timezone.utc
ENTRY_RE = re.compile(r'<li class="timeline-entry ')


def make_world() -> SimpleNamespace:
    """Club A: an admin, a coach (with an offering), a scheduler and two athletes (Ali in Berlin, Bea in Tokyo);
    club B: its own coach and athlete."""
    n = uuid.uuid4().hex[:8]
    w = SimpleNamespace(n=n)
    admin_user = make_user(f"admin-{n}@example.com", "Ada Admin")
    w.org = make_org(admin_user, slug=f"club-{n}")
    tenancy.activate(w.org.id)
    w.admin = db.session.scalar(select(Membership).where(Membership.tenant_id == w.org.id, Membership.role == ADMIN))
    w.coach = add_member(w.org, make_user(f"coach-{n}@example.com", "Cora Coach"), COACH)
    w.scheduler = add_member(w.org, make_user(f"sched-{n}@example.com", "Sam Scheduler"), SCHEDULER)
    w.athlete = add_member(w.org, make_user(f"ali-{n}@example.com", "Ali Athlete"), ATHLETE)
    w.athlete2 = add_member(w.org, make_user(f"bea-{n}@example.com", "Bea Athlete", tz="Asia/Tokyo"), ATHLETE)
    w.offering = make_offering(w.coach, title="Technique session")
    w.other_org = make_org(make_user(f"other-{n}@example.com"), slug=f"other-{n}")
    tenancy.activate(w.other_org.id)
    w.other_coach = add_member(w.other_org, make_user(f"ocoach-{n}@example.com", "Otto Coach"), COACH)
    w.other_athlete = add_member(w.other_org, make_user(f"oath-{n}@example.com", "Olga Athlete"), ATHLETE)
    w.other_athlete_id = w.other_athlete.id
    db.session.commit()
    tenancy.activate(w.org.id)
    return w


@pytest.fixture()
def world(ctx):
    return make_world()


def browser(app, member, org=None):
    """A logged-in client for ``member`` (of ``org`` when it is not the organization in force)."""
    if org is not None:
        tenancy.activate(org.id)
    client = app.test_client()
    assert Auth(client).login(member.user.email).status_code == 303
    tenancy.activate(member.tenant_id)
    return client


def url(w, path: str = "") -> str:
    return f"/o/{w.org.slug}/progress{path}"


def ended_booking(w, athlete, starts_at: datetime, status: str = "ended", minutes: int = 60) -> Booking:
    """A session and the athlete's booking of it, written directly (the booking domain's own tests cover how a
    booking gets there)."""
    tenancy.activate(w.org.id)
    ends_at = starts_at + timedelta(minutes=minutes)
    session = CoachingSession(tenant_id=w.org.id, coach_membership_id=w.coach.id, offering_id=w.offering.id,
                              starts_at=starts_at, ends_at=ends_at, busy_from=starts_at, busy_until=ends_at,
                              capacity=1, live_seats=0)
    db.session.add(session)
    db.session.flush()
    booking = Booking(tenant_id=w.org.id, session_id=session.id, offering_id=w.offering.id,
                      coach_membership_id=w.coach.id, athlete_membership_id=athlete.id, starts_at=starts_at,
                      ends_at=ends_at, status=status)
    db.session.add(booking)
    db.session.commit()
    return booking


def readiness_days(athlete, scores: dict[int, float]) -> None:
    """Readiness check-ins ``days_ago → score`` (the other answers do not matter to the pages)."""
    today = athletes.local_today(athlete)
    db.session.execute(insert(ReadinessCheckin), [
        {"id": uuid.uuid4(), "tenant_id": athlete.tenant_id, "athlete_membership_id": athlete.id,
         "on_date": today - timedelta(days=ago), "sleep_hours": Decimal("7.5"), "energy": 3, "mood": 3, "stress": 3,
         "soreness": 3, "score": Decimal(str(score)), "note": ""} for ago, score in scores.items()])
    db.session.commit()


def assign_program(w, athlete, logs: dict[int, str]) -> ProgramAssignment:
    """A 4-week program with a workout every day, started 20 days ago, logged ``days_ago → status``."""
    today = athletes.local_today(athlete)
    program = Program(id=uuid.uuid4(), tenant_id=w.org.id, title=f"Block {uuid.uuid4().hex[:6]}", weeks=4)
    db.session.add(program)
    db.session.flush()
    workouts = [ProgramWorkout(id=uuid.uuid4(), tenant_id=w.org.id, program_id=program.id, week=week, day=day,
                               title=f"W{week}D{day}") for week in range(1, 5) for day in range(1, 8)]
    db.session.add_all(workouts)
    start = today - timedelta(days=20)
    assignment = ProgramAssignment(id=uuid.uuid4(), tenant_id=w.org.id, program_id=program.id,
                                   athlete_membership_id=athlete.id, start_date=start, assigned_by_membership_id=w.coach.id)
    db.session.add(assignment)
    db.session.flush()
    for ago, status in logs.items():
        on = today - timedelta(days=ago)
        workout = workouts[(on - start).days]
        db.session.add(WorkoutLog(tenant_id=w.org.id, assignment_id=assignment.id, workout_id=workout.id,
                                  athlete_membership_id=athlete.id, scheduled_on=on, status=status))
    db.session.commit()
    return assignment


def at_risk_goal(w, athlete) -> Goal:
    """A goal two months old due in five days with hardly any progress: at risk."""
    today = athletes.local_today(athlete)
    goal = Goal(tenant_id=w.org.id, athlete_membership_id=athlete.id, title="Serve speed",
                target_date=today + timedelta(days=5), metric_unit="km/h", metric_start=Decimal(140),
                metric_target=Decimal(170), direction="up", created_at=clock.now() - timedelta(days=60))
    db.session.add(goal)
    db.session.flush()
    db.session.add_all([GoalValue(tenant_id=w.org.id, goal_id=goal.id, value=Decimal(141),
                                  logged_on=today - timedelta(days=d)) for d in (40, 20, 2)])
    db.session.commit()
    return goal


def timeline_entries(athlete, n: int, *, start: datetime | None = None, coaches_only_every: int = 0,
                     kind: str = "readiness") -> None:
    """``n`` timeline entries an hour apart (newest at ``start``), in one statement."""
    start = start or clock.now()
    db.session.execute(insert(TimelineEntry), [
        {"id": uuid.uuid4(), "tenant_id": athlete.tenant_id, "athlete_membership_id": athlete.id,
         "occurred_at": start - timedelta(hours=i), "kind": "note" if coaches_only_every and i % coaches_only_every
         == 0 else kind, "subject_id": uuid.uuid4(), "title": f"Entry {i}", "detail": "",
         "coaches_only": bool(coaches_only_every and i % coaches_only_every == 0)} for i in range(n)])
    db.session.commit()


# --- the coach's athlete list -------------------------------------------------------------------------------


def test_the_coach_sees_every_athlete_with_flag_compliance_and_last_session(app, world):
    w = world
    # Ali: a steady 4 for two weeks, 2 today → flagged; Bea steady → not.
    readiness_days(w.athlete, {0: 2.0, **{ago: 4.0 for ago in range(1, 15)}})
    readiness_days(w.athlete2, {ago: 4.0 for ago in range(0, 15)})
    ended_booking(w, w.athlete, datetime(2026, 3, 2, 10, tzinfo=UTC))
    ended_booking(w, w.athlete, datetime(2026, 3, 9, 10, tzinfo=UTC))
    ended_booking(w, w.athlete2, datetime(2026, 3, 10, 10, tzinfo=UTC), status="cancelled")
    monday = athletes.week_start(athletes.local_today(w.coach))
    today = athletes.local_today(w.athlete)
    logs = {(today - d).days: "done" for d in (monday, monday + timedelta(days=1)) if d < today}
    assign_program(w, w.athlete, logs)
    at_risk_goal(w, w.athlete)

    rows = athletes.athlete_list(w.coach)
    assert [row.name for row in rows] == ["Ali Athlete", "Bea Athlete"]
    ali, bea = rows
    assert ali.flag is not None and ali.flag.score == 2.0 and bea.flag is None
    assert ali.last_session_at == datetime(2026, 3, 9, 10, tzinfo=UTC)
    assert bea.last_session_at is None  # a cancelled session is not a session had
    assert ali.compliance is not None and ali.compliance.done == len(logs)
    assert bea.compliance is None
    assert (ali.goals_at_risk, bea.goals_at_risk) == (1, 0)
    assert ali.goals_at_risk == goals.at_risk_count(goals.summary(w.athlete))  # the athlete page's own count

    page = browser(app, w.coach).get(url(w))
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Ali Athlete" in html and "Bea Athlete" in html and "Olga Athlete" not in html
    assert "Low: 2.0" in html
    assert "9 Mar 2026" in html
    assert '<span class="badge badge-warn">1</span>' in html


def test_the_list_searches_by_name_and_email_and_answers_htmx_with_the_rows_only(app, world):
    w = world
    assert [row.name for row in athletes.athlete_list(w.coach, "bea")] == ["Bea Athlete"]
    assert [row.name for row in athletes.athlete_list(w.coach, f"ali-{w.n}@")] == ["Ali Athlete"]
    assert athletes.athlete_list(w.coach, "100%_\\") == []  # LIKE's wildcards are plain characters
    assert athletes.athlete_list(w.coach, "x" * 5000) == []  # cut, not an error
    assert [row.name for row in athletes.athlete_list(w.coach, "b\x00ea")] == ["Bea Athlete"]
    client = browser(app, w.admin)
    fragment = client.get(url(w, "?q=bea"), headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in fragment and 'id="athlete-rows"' in fragment
    assert "Bea Athlete" in fragment and "Ali Athlete" not in fragment
    assert "No athlete matches" in client.get(url(w, "?q=nobody")).get_data(as_text=True)
    for hostile in ("%00", "%ED%A0%80", "%FF%FE", "%E2%80%AE" * 50):
        assert client.get(url(w, f"?q={hostile}")).status_code == 200


def test_an_athlete_gets_today_and_a_scheduler_is_refused(app, world):
    w = world
    page = browser(app, w.athlete).get(url(w))
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "<h1>Today</h1>" in html and "Bea Athlete" not in html
    assert f'href="/o/{w.org.slug}/progress/athletes/{w.athlete.id}"' in html
    assert browser(app, w.scheduler).get(url(w)).status_code == 403
    with pytest.raises(ProgressError) as refused:
        athletes.athlete_list(w.athlete)
    assert refused.value.status == 403


def test_the_list_is_a_fixed_number_of_statements(app, world):
    from tests.querycount import statements_for  # noqa: PLC0415 - the counter is for this test only

    w = world
    at_risk_goal(w, w.athlete)
    client = browser(app, w.coach)
    client.get(url(w))
    small = statements_for(app, client, url(w))
    for i in range(6):
        athlete = add_member(w.org, make_user(f"more{i}-{w.n}@example.com", f"More {i}"), ATHLETE)
        readiness_days(athlete, {0: 3.0, 1: 4.0})
        ended_booking(w, athlete, datetime(2026, 4, 1 + i, 10, tzinfo=UTC))
        at_risk_goal(w, athlete)
        assign_program(w, athlete, {1: "done"})
    tenancy.activate(w.org.id)
    assert statements_for(app, client, url(w)) == small == 9  # floor 2, athletes, flags, compliance, goals 3, last sessions


# --- one athlete's page: who sees it --------------------------------------------------------------------------


def test_staff_open_any_athlete_of_their_organization(app, world):
    w = world
    for member in (w.coach, w.admin):
        page = browser(app, member).get(url(w, f"/athletes/{w.athlete.id}"))
        html = page.get_data(as_text=True)
        assert page.status_code == 200
        assert "Ali Athlete" in html and 'id="notes"' in html and "Private notes" in html


def test_an_athlete_opens_only_their_own_page_without_notes(app, world):
    w = world
    client = browser(app, w.athlete)
    own = client.get(url(w, f"/athletes/{w.athlete.id}"))
    html = own.get_data(as_text=True)
    assert own.status_code == 200 and "My progress" in html
    assert 'id="notes"' not in html and "Private notes" not in html
    assert client.get(url(w, f"/athletes/{w.athlete2.id}")).status_code == 404
    assert client.get(url(w, f"/athletes/{w.athlete2.id}/timeline")).status_code == 404


@pytest.mark.parametrize("who", ["scheduler", "other_coach"])
def test_a_scheduler_and_another_organization_see_nothing(app, world, who):
    w = world
    member = getattr(w, who)
    athlete_id, other_slug = w.athlete.id, w.other_org.slug
    client = browser(app, member, w.other_org if who == "other_coach" else None)
    if who == "scheduler":
        assert client.get(url(w, f"/athletes/{w.athlete.id}")).status_code == 403
        assert client.get(url(w, f"/athletes/{w.athlete.id}/timeline")).status_code == 403
    else:
        # Their own organization's URL with our athlete's id, and our URL: neither shows anything.
        theirs = f"/o/{other_slug}/progress/athletes/{athlete_id}"
        assert client.get(theirs).status_code == 404
        assert client.get(theirs + "/timeline").status_code == 404
        assert client.get(url(w, f"/athletes/{athlete_id}")).status_code == 404


def test_ids_that_are_not_an_athlete_are_404(app, world):
    w = world
    client = browser(app, w.coach)
    for bad in ("not-a-uuid", str(uuid.uuid4()), str(w.coach.id), str(w.other_athlete_id)):
        assert client.get(url(w, f"/athletes/{bad}")).status_code == 404


def test_the_page_draws_readiness_with_its_band_and_compliance_with_tables(app, world):
    w = world
    readiness_days(w.athlete, {0: 1.8, **{ago: 4.0 + (ago % 2) * 0.2 for ago in range(1, 20)}})
    today = athletes.local_today(w.athlete)
    assign_program(w, w.athlete, {ago: "done" if ago % 3 else "partial" for ago in range(1, 15)})
    html = browser(app, w.coach).get(url(w, f"/athletes/{w.athlete.id}")).get_data(as_text=True)
    assert 'style="' not in html and "style='" not in html  # the CSP allows no inline style
    assert html.count('role="img"') == 2
    assert '<rect class="chart-band"' in html
    assert "chart-dot chart-dot-low" in html  # today's drop sits below the usual range
    assert "Readiness is low today" in html
    assert "chart-seg chart-seg-done" in html and "chart-seg chart-seg-partial" in html
    assert "chart-seg chart-seg-missed" in html  # the days nobody logged
    assert html.count('<details class="chart-data">') == 2
    assert f'<time datetime="{today.isoformat()}">' in html
    # The chart is the same geometry the PDF draws.
    chart, flag = athletes.readiness_chart(w.athlete, today)
    assert flag is not None and flag.score == 1.8
    assert len(chart.points) == 20 and chart.band is not None


def test_a_page_without_data_says_so_instead_of_drawing_empty_charts(app, world):
    w = world
    html = browser(app, w.coach).get(url(w, f"/athletes/{w.athlete.id}")).get_data(as_text=True)
    assert "No readiness check-ins in the last 28 days." in html
    assert "No workouts were scheduled in the last 8 weeks." in html
    assert "Nothing has happened yet." in html
    assert 'role="img"' not in html


def test_readiness_band_needs_a_baseline_of_seven_days():
    today = date(2026, 5, 20)
    few = [(today - timedelta(days=d), 4.0) for d in range(1, 7)]
    assert athletes.readiness_band(few, today) is None
    steady = [(today - timedelta(days=d), 4.0) for d in range(1, 15)]
    low, high = athletes.readiness_band(steady, today)
    assert (low, high) == (3.25, 4.75)  # mean ± the smallest drop that flags
    assert athletes.readiness_band(steady + [(today - timedelta(days=15), 1.0)], today) == (3.25, 4.75)  # outside


# --- notes ------------------------------------------------------------------------------------------------------


def _post_note(client, w, athlete, body: str, **headers):
    page = client.get(url(w, f"/athletes/{athlete.id}")).get_data(as_text=True)
    return client.post(url(w, f"/athletes/{athlete.id}/notes"), data={"csrf_token": csrf_from(page), "body": body},
                       headers=headers)


def test_a_coach_writes_a_private_note_that_the_athlete_never_sees(app, world):
    w = world
    coach = browser(app, w.coach)
    answer = _post_note(coach, w, w.athlete, "Knee **sore** again <script>alert(1)</script>")
    assert answer.status_code == 303 and answer.headers["Location"].endswith("#notes")
    tenancy.activate(w.org.id)
    note = db.session.scalar(select(CoachNote).where(CoachNote.tenant_id == w.org.id))
    assert note.body_html.startswith("<p>Knee <strong>sore</strong> again") and "<script" not in note.body_html
    entry = db.session.scalar(select(TimelineEntry).where(TimelineEntry.subject_id == note.id))
    assert entry.kind == "note" and entry.coaches_only and entry.title == "Note by Cora Coach"
    html = coach.get(url(w, f"/athletes/{w.athlete.id}")).get_data(as_text=True)
    assert "Knee <strong>sore</strong> again" in html and "Coaches only" in html
    admin_html = browser(app, w.admin).get(url(w, f"/athletes/{w.athlete.id}")).get_data(as_text=True)
    assert "Knee <strong>sore</strong> again" in admin_html
    athlete = browser(app, w.athlete)
    for path in (f"/athletes/{w.athlete.id}", f"/athletes/{w.athlete.id}/timeline"):
        seen = athlete.get(url(w, path)).get_data(as_text=True)
        assert "Knee" not in seen and "Note by" not in seen and "Coaches only" not in seen


def test_a_note_by_htmx_comes_back_as_the_notes_block(app, world):
    w = world
    answer = _post_note(browser(app, w.coach), w, w.athlete, "Tired today", **{"HX-Request": "true"})
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "<html" not in html
    assert html.lstrip().startswith('<section class="card" id="notes"') and "Tired today" in html
    assert "timeline-changed" in answer.headers["HX-Trigger"]  # the timeline reloads its newest entries


def test_bad_notes_are_refused_with_a_message_and_nothing_written(app, world):
    w = world
    coach = browser(app, w.coach)
    empty = _post_note(coach, w, w.athlete, "   ")
    assert empty.status_code == 422 and "Write the note first." in empty.get_data(as_text=True)
    long = _post_note(coach, w, w.athlete, "x" * (athletes.NOTE_MAX + 1), **{"HX-Request": "true"})
    assert long.status_code == 422 and "at most 10,000 characters" in long.get_data(as_text=True)
    nul = _post_note(coach, w, w.athlete, "a\x00b")
    assert nul.status_code == 422
    # An athlete cannot post one (not even about themselves); another organization's coach finds no athlete.
    athlete = browser(app, w.athlete)
    token = Auth(athlete).csrf("/profile")
    assert athlete.post(url(w, f"/athletes/{w.athlete.id}/notes"), data={"csrf_token": token, "body": "hi"}
                        ).status_code == 403
    athlete_id, other_slug = w.athlete.id, w.other_org.slug
    other = browser(app, w.other_coach, w.other_org)
    token = Auth(other).csrf("/profile")
    assert other.post(f"/o/{other_slug}/progress/athletes/{athlete_id}/notes",
                      data={"csrf_token": token, "body": "hi"}).status_code == 404
    tenancy.activate(w.org.id)
    assert db.session.scalar(select(func.count()).select_from(CoachNote)) == 0
    assert db.session.scalar(select(func.count()).select_from(TimelineEntry)) == 0


def test_notes_by_a_member_who_left_read_former_member(app, world):
    w = world
    note = athletes.add_note(w.coach, w.athlete, "Check the grip")
    db.session.commit()
    db.session.delete(db.session.get(Membership, w.coach.id))
    db.session.commit()
    tenancy.activate(w.org.id)
    (view,) = athletes.recent_notes(w.admin, w.athlete)
    assert view.note.id == note.id and view.author_name == athletes.FORMER_MEMBER
    assert athletes.recent_notes(w.athlete, w.athlete) == []
    for bad in ("", "  \n ", "a\x00b", "x" * (athletes.NOTE_MAX + 1)):
        with pytest.raises(ProgressError):
            athletes.add_note(w.admin, w.athlete, bad)
        db.session.rollback()
        tenancy.activate(w.org.id)


# --- the athlete's Today --------------------------------------------------------------------------------------


def test_today_gathers_the_athletes_day(app, world):
    w = world
    tenancy.activate(w.org.id)
    goal = Goal(tenant_id=w.org.id, athlete_membership_id=w.athlete.id, title="Serve 60% in",
                target_date=athletes.local_today(w.athlete) + timedelta(days=30))
    habit = Habit(tenant_id=w.org.id, athlete_membership_id=w.athlete.id, title="Stretch")
    db.session.add_all([goal, habit])
    db.session.flush()
    db.session.add(HabitCheckin(tenant_id=w.org.id, habit_id=habit.id, on_date=athletes.local_today(w.athlete)))
    readiness_days(w.athlete, {0: 4.0})
    assign_program(w, w.athlete, {})
    data = athletes.today_for(w.athlete)
    assert [view.goal.title for view in data.goals] == ["Serve 60% in"]
    assert [item.habit.title for item in data.habits] == ["Stretch"] and data.habits[0].done_today
    assert data.checkin is not None and float(data.checkin.score) == 4.0
    assert [item.workout.title for item in data.workouts] == ["W3D7"]
    assert data.today == athletes.local_today(w.athlete)
    html = browser(app, w.athlete).get(url(w)).get_data(as_text=True)
    assert "Serve 60% in" in html and "Stretch" in html
    assert "W3D7" in html and "Log it" in html  # today's workout, ready to log
    assert "Done today" in html  # the readiness check-in of today
    assert 'style="' not in html


def test_weeks_chart_reads_program_compliance(app, world):
    w = world
    assign_program(w, w.athlete, {1: "done", 2: "partial", 3: "skipped"})
    weeks = programs.compliance(w.athlete, weeks=8)
    chart = charts.stacked_weeks(weeks)
    assert len(chart.columns) == 8 and not chart.empty
    assert sum(column.scheduled for column in chart.columns) == sum(
        week.done + week.partial + week.missed for week in weeks)


def test_the_area_has_its_own_navigation_for_staff_and_for_athletes(app, world):
    """Staff reach every list of the area from the athlete list (frameworks and programs are not in the app's
    navigation); an athlete reaches each of their own pages; each page marks where one is."""
    w = world
    coach = browser(app, w.coach)
    slug = w.org.slug
    staff_links = {"Athletes": "", "Compliance": "/compliance", "Programs": "/programs", "Exercises": "/exercises",
                   "Skill frameworks": "/frameworks"}
    for label, path in staff_links.items():
        html = coach.get(url(w, path)).get_data(as_text=True)
        nav = html.split('<nav class="subnav"', 1)[1].split("</nav>", 1)[0]
        for other, href in staff_links.items():
            assert f'href="/o/{slug}/progress{href}"' in nav, (label, other)
        assert f'href="/o/{slug}/progress{path}" aria-current="page">{label}</a>' in nav, label
    html = browser(app, w.athlete).get(url(w, "/habits")).get_data(as_text=True)
    nav = html.split('<nav class="subnav"', 1)[1].split("</nav>", 1)[0]
    assert 'aria-current="page">Habits</a>' in nav and "Compliance" not in nav
    for href in ("", f"/athletes/{w.athlete.id}", "/workouts", "/goals", "/readiness",
                 f"/athletes/{w.athlete.id}/reports"):
        assert f'href="/o/{slug}/progress{href}"' in nav, href
