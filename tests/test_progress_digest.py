"""The Monday sweep: each athlete's weekly report (the week before, once however often the sweep runs, not for
those who opted out, not before 07:00 in their zone) and each coach's digest of their athletes (once even when
two sweeps run at the same time; only the sweep that wrote the digest's row sends it)."""
from __future__ import annotations

import threading
import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select

from coach import clock, tenancy
from coach.booking.models import Booking, CoachingSession
from coach.extensions import db
from coach.orgs.models import ATHLETE, COACH
from coach.platform.models import Email
from coach.progress import reports
from coach.progress.models import (AthleteProfile, CoachDigest, Goal, ProgramAssignment, Program, ProgramWorkout,
                                   ProgressReport, ReadinessCheckin, WorkoutLog)
from tests.booking_support import BookingWorld, next_monday
from tests.factories import add_member, make_org, make_user

BERLIN = ZoneInfo("Europe/Berlin")


MONDAY = next_monday()  # the coming Monday (read once: the tests move the clock to it)


def monday_at(hour: int, minute: int = 30) -> datetime:
    """The coming Monday at ``hour:minute`` in Berlin, as the clock's UTC."""
    return datetime.combine(MONDAY, time(hour, minute), BERLIN).astimezone(ZoneInfo("UTC"))


def freeze(monkeypatch, at: datetime) -> None:
    monkeypatch.setattr(clock, "now", lambda: at)


def sweep_everywhere() -> int:
    return reports.weekly_sweep()


def weekly_rows(org_id) -> list[ProgressReport]:
    tenancy.activate(org_id)
    db.session.expire_all()
    return list(db.session.scalars(select(ProgressReport).where(ProgressReport.tenant_id == org_id,
                                                                ProgressReport.kind == "weekly")))


def digest_emails(address: str) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(Email).where(
        Email.to_address == address, Email.subject.like("Your athletes last week%")))


def last_week_data(world: BookingWorld, monday: date) -> None:
    """A session last Wednesday, readiness well below the two weeks before, a goal due soon, and a program with
    two workouts last week (one done, one missed)."""
    t, athlete = world.org.id, world.athlete
    tenancy.activate(t)
    week_start = monday - timedelta(days=7)
    starts_at = datetime.combine(week_start + timedelta(days=2), time(10), BERLIN)
    session = CoachingSession(tenant_id=t, coach_membership_id=world.coach.id, offering_id=world.offering.id,
                              starts_at=starts_at, ends_at=starts_at + timedelta(hours=1), busy_from=starts_at,
                              busy_until=starts_at + timedelta(hours=1), capacity=1, live_seats=0)
    db.session.add(session)
    db.session.flush()
    db.session.add(Booking(tenant_id=t, session_id=session.id, offering_id=world.offering.id,
                           coach_membership_id=world.coach.id, athlete_membership_id=athlete.id,
                           starts_at=starts_at, ends_at=starts_at + timedelta(hours=1), status="ended"))
    db.session.execute(insert(ReadinessCheckin), [
        {"id": uuid.uuid4(), "tenant_id": t, "athlete_membership_id": athlete.id,
         "on_date": week_start - timedelta(days=n), "sleep_hours": Decimal(8), "energy": 4, "mood": 4,
         "stress": 2, "soreness": 2, "score": Decimal("4.5"), "note": ""} for n in range(1, 15)] + [
        {"id": uuid.uuid4(), "tenant_id": t, "athlete_membership_id": athlete.id,
         "on_date": week_start + timedelta(days=n), "sleep_hours": Decimal(5), "energy": 2, "mood": 2,
         "stress": 4, "soreness": 4, "score": Decimal("2.0"), "note": ""} for n in (0, 2, 4)])
    db.session.add(Goal(tenant_id=t, athlete_membership_id=athlete.id, title="Serve at 80 %",
                        target_date=monday - timedelta(days=2)))  # passed, with no milestone: at risk
    program = Program(id=uuid.uuid4(), tenant_id=t, title="Base block", weeks=1)
    db.session.add(program)
    db.session.flush()
    first = ProgramWorkout(id=uuid.uuid4(), tenant_id=t, program_id=program.id, week=1, day=1, title="Legs")
    second = ProgramWorkout(id=uuid.uuid4(), tenant_id=t, program_id=program.id, week=1, day=3, title="Core")
    db.session.add_all([first, second])
    db.session.flush()
    assignment = ProgramAssignment(id=uuid.uuid4(), tenant_id=t, program_id=program.id,
                                   athlete_membership_id=athlete.id, start_date=week_start)
    db.session.add(assignment)
    db.session.flush()
    db.session.add(WorkoutLog(tenant_id=t, assignment_id=assignment.id, workout_id=first.id,
                              athlete_membership_id=athlete.id, scheduled_on=week_start, status="done"))
    db.session.commit()


def test_the_weekly_report_is_made_once_for_each_athlete_whose_monday_morning_has_come(app, job_runner, ctx,
                                                                                      monkeypatch, mailbox):
    world = BookingWorld()
    opted_out = add_member(world.org, make_user("optout@example.com", "Otto Out"), ATHLETE)
    far_west = add_member(world.org, make_user("west@example.com", "Wes West", tz="America/Los_Angeles"), ATHLETE)
    tenancy.activate(world.org.id)
    db.session.add(AthleteProfile(tenant_id=world.org.id, membership_id=opted_out.id, weekly_report=False))
    db.session.commit()
    monday = MONDAY

    # Monday 06:30 in Berlin: too early for everyone.
    freeze(monkeypatch, monday_at(6))
    with job_runner.paused():
        sweep_everywhere()
    assert weekly_rows(world.org.id) == []

    # 07:30: the Berlin athlete's report of last week, once however often the sweep runs.
    freeze(monkeypatch, monday_at(7))
    with job_runner.paused():
        sweep_everywhere()
        sweep_everywhere()
    rows = weekly_rows(world.org.id)
    assert [(r.athlete_membership_id, r.period_start, r.period_end) for r in rows] == [
        (world.athlete.id, monday - timedelta(days=7), monday - timedelta(days=1))]
    assert opted_out.id not in {r.athlete_membership_id for r in rows}
    assert far_west.id not in {r.athlete_membership_id for r in rows}  # 22:30 on Sunday in Los Angeles

    # The worker builds and emails it, once. (Held still while drained: a bare drain returns at once when the
    # background runner has the report's job in flight, before the report is ready.)
    with job_runner.paused():
        job_runner.drain(timeout=60)
    assert [r.status for r in weekly_rows(world.org.id)] == ["ready"]
    message = mailbox.wait_for(world.athlete.user.email, timeout=10)
    assert message["Subject"].startswith("Weekly progress report: Arno Athlete")
    with job_runner.paused():
        sweep_everywhere()
        job_runner.drain(timeout=60)
    assert len(weekly_rows(world.org.id)) == 1
    assert len(mailbox.to(world.athlete.user.email)) == 1
    assert mailbox.to("optout@example.com") == []


def test_the_coach_digest_goes_once_even_when_sweeps_run_twice_and_at_once(app, job_runner, ctx, monkeypatch,
                                                                          mailbox):
    world = BookingWorld()
    monday = MONDAY
    last_week_data(world, monday)
    late_coach = add_member(world.org, make_user("east-coach@example.com", "Eve East", tz="America/New_York"), COACH)
    other = BookingWorld()  # another organization: its coach hears nothing of ours
    freeze(monkeypatch, monday_at(7))

    with job_runner.paused():
        errors = []

        def sweep():
            try:
                with app.app_context():
                    sweep_everywhere()
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=sweep) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        sweep_everywhere()
        assert errors == []
        # The athlete's weekly report too: once.
        assert [r.athlete_membership_id for r in weekly_rows(world.org.id)] == [world.athlete.id]

        tenancy.activate(world.org.id)
        db.session.expire_all()
        digests = db.session.scalars(select(CoachDigest).where(CoachDigest.tenant_id == world.org.id)).all()
        admin_id = next(m.id for m in _staff(world.org.id) if m.role == "admin")
        assert sorted(str(d.coach_membership_id) for d in digests) == sorted([str(world.coach.id), str(admin_id)])
        assert {d.week_start for d in digests} == {monday - timedelta(days=7)}
        coach_email = world.coach.user.email
        assert digest_emails(coach_email) == 1
        assert digest_emails(late_coach.user.email) == 0  # 01:30 in New York: not yet
        assert digest_emails(world.scheduler.user.email) == 0  # schedulers get none

    with job_runner.paused():
        job_runner.drain(timeout=60)
    message = mailbox.wait_for(coach_email, timeout=10)
    assert len([m for m in mailbox.to(coach_email) if "Your athletes last week" in m["Subject"]]) == 1
    plain = message.get_body(("plain",)).get_content()
    line = next(row for row in plain.splitlines() if "Arno Athlete" in row)
    assert "1 session;" in line and "compliance 50 %" in line and "(LOW)" in line and "1 goal at risk" in line
    assert "readiness ▃·▃·▃··" in line  # the week as a text sparkline, a dot for a day without a check-in
    html = message.get_body(("html",)).get_content()
    assert "<svg" not in html and "<img" not in html and "Arno Athlete" in html
    tenancy.activate(other.org.id)
    other_mail = [m for m in mailbox.to(other.coach.user.email) if "Your athletes last week" in m["Subject"]]
    assert len(other_mail) == 1 and "Arno Athlete" in other_mail[0].get_body(("plain",)).get_content()
    # ... their own athlete (who has the same name) with no session: ours is not in their digest.
    assert "0 sessions;" in other_mail[0].get_body(("plain",)).get_content()


def _staff(org_id):
    from coach.orgs.models import Membership

    tenancy.activate(org_id)
    return db.session.scalars(select(Membership).where(Membership.tenant_id == org_id)).all()


def test_the_sparkline_and_compliance_bar():
    assert reports.sparkline([1, 3, 5, None]) == "▁▅█·"
    line = reports.DigestLine(uuid.uuid4(), "A", 0, 70, 3, False, [], "", 0, 0)
    assert line.compliance_bar == [True] * 7 + [False] * 3


def test_a_new_organization_is_swept_too(app, job_runner, ctx, monkeypatch):
    org = make_org(make_user("solo@example.com", "Solo Admin", tz="Europe/Berlin"))
    athlete = add_member(org, make_user("solo-athlete@example.com", "Sol Athlete"), ATHLETE)
    freeze(monkeypatch, monday_at(9))
    with job_runner.paused():
        sweep_everywhere()
        rows = weekly_rows(org.id)
    assert [r.athlete_membership_id for r in rows] == [athlete.id]


def test_the_digest_reads_a_fixed_number_of_statements_whatever_the_number_of_athletes(app, job_runner, ctx):
    from sqlalchemy import event

    world = BookingWorld()
    monday = MONDAY
    last_week_data(world, monday)

    def statements() -> int:
        seen = []

        me = threading.get_ident()

        def count(*args):
            if threading.get_ident() == me:
                seen.append(args[2])

        tenancy.activate(world.org.id)
        db.session.expire_all()
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            lines = reports.digest_lines(world.org.id, monday - timedelta(days=7))
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        assert lines
        return len(seen)

    few = statements()
    for n in range(3):
        add_member(world.org, make_user(f"more{n}@example.com", f"More {n}"), ATHLETE)
    tenancy.activate(world.org.id)
    db.session.add(Goal(tenant_id=world.org.id, athlete_membership_id=world.athlete.id, title="Another"))
    db.session.commit()
    assert statements() == few
