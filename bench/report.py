"""``report``: how long a progress report of the benchmark athlete takes to build (target: under 2 s each).

The benchmark athlete has two years of history: a readiness check-in every day, 300 sessions with a signed
session record each (levels on a 12-skill framework), 5 goals with values and milestones, 2 programs with their
workouts logged. (The seed of ``bench athlete_page`` when it exists, else this module's own of the same shape,
written with bulk inserts.)

Each run asks for a two-year report and calls the job's entry point (``coach.progress.reports.build``) in this
process against a throwaway PostgreSQL: gather the data, draw the charts, render the HTML and the PDF, store
both (the local storage backend), queue the emails. The PDF stage alone is timed too. ``BENCH_RUNS`` runs
(default 7) after one warm-up. Last line: ``p50_s=... max_s=... pdf_p50_s=... target_met=...``.
"""
from __future__ import annotations

import cProfile
import io
import os
import pstats
import random
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from bench import harness

TARGET_SECONDS = 2.0
ZONE = ZoneInfo("Europe/Berlin")


def seed_athlete(app, org) -> uuid.UUID:
    """Two years of one athlete's development (see the module's docstring); returns the athlete's id."""
    try:  # the athlete page benchmark's seed, when it is there (the same data for both benchmarks)
        from bench import athlete_page

        return athlete_page.seed_athlete(app, org)
    except (ImportError, AttributeError):
        pass
    from sqlalchemy import insert, select, update

    from coach import tenancy
    from coach.booking import service as booking
    from coach.booking.models import Booking, CoachingSession
    from coach.extensions import db
    from coach.orgs.models import Membership
    from coach.progress.models import (
        Goal, GoalMilestone, GoalValue, ProgramAssignment, Program, ProgramWorkout, ReadinessCheckin,
        RecordSkillLevel, SessionRecord, Skill, SkillArea, SkillFramework, WorkoutLog)

    rng = random.Random(17)
    with app.app_context():
        tenancy.activate(org.id)
        members = {m.user.email: m for m in db.session.scalars(select(Membership)
                                                               .where(Membership.tenant_id == org.id))}
        coach = members[f"coach01@{org.slug}.example"]
        athlete = members[f"athlete01@{org.slug}.example"]
        offering = booking.save_offering(coach, dict(
            title="Technique session", description="", duration_minutes=60, price_minor=0, currency="EUR",
            location="Court 1", meeting_url="", capacity=1, auto_confirm=False, buffer_before_minutes=0,
            buffer_after_minutes=0, min_notice_minutes=0, max_per_day=None, horizon_days=60,
            cancellation_window_hours=24), coach)
        db.session.flush()
        t = org.id
        today = datetime.now(ZONE).date()
        first = today - timedelta(days=729)
        # Readiness: every day.
        db.session.execute(insert(ReadinessCheckin), [
            {"id": uuid.uuid4(), "tenant_id": t, "athlete_membership_id": athlete.id, "on_date": first + timedelta(n),
             "sleep_hours": Decimal("7.5"), "energy": rng.randint(2, 5), "mood": rng.randint(2, 5),
             "stress": rng.randint(1, 4), "soreness": rng.randint(1, 4),
             "score": Decimal(str(round(rng.uniform(2.2, 4.8), 2))), "note": ""} for n in range(730)])
        # A framework of 12 skills.
        framework = SkillFramework(id=uuid.uuid4(), tenant_id=t, title="Tennis",
                                   scale=["Introduced", "Practised", "Competent", "Proficient"])
        db.session.add(framework)
        db.session.flush()
        skills = []
        for a in range(3):
            area = SkillArea(id=uuid.uuid4(), tenant_id=t, framework_id=framework.id, title=f"Area {a + 1}", position=a)
            db.session.add(area)
            db.session.flush()
            for s in range(4):
                skill = Skill(id=uuid.uuid4(), tenant_id=t, framework_id=framework.id, area_id=area.id,
                              title=f"Skill {a + 1}.{s + 1}", required_level=3, position=s)
                db.session.add(skill)
                skills.append(skill)
        db.session.flush()
        # 300 sessions, each with a record observing three skills, signed.
        sessions, bookings, records, levels = [], [], [], []
        for n in range(300):
            starts = datetime.combine(first + timedelta(days=n * 729 // 300), datetime.min.time(), ZONE) \
                + timedelta(hours=10)
            ends = starts + timedelta(hours=1)
            sid, bid, rid = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
            sessions.append({"id": sid, "tenant_id": t, "coach_membership_id": coach.id, "offering_id": offering.id,
                             "starts_at": starts, "ends_at": ends, "busy_from": starts, "busy_until": ends,
                             "capacity": 1, "live_seats": 0})
            bookings.append({"id": bid, "tenant_id": t, "session_id": sid, "offering_id": offering.id,
                             "coach_membership_id": coach.id, "athlete_membership_id": athlete.id,
                             "starts_at": starts, "ends_at": ends, "status": "ended"})
            records.append({"id": rid, "tenant_id": t, "booking_id": bid, "athlete_membership_id": athlete.id,
                            "coach_membership_id": coach.id, "framework_id": framework.id, "notes_md": "Good work.",
                            "notes_html": "<p>Good work.</p>", "session_at": starts})
            for skill in rng.sample(skills, 3):
                levels.append({"id": uuid.uuid4(), "tenant_id": t, "record_id": rid, "skill_id": skill.id,
                               "level": min(4, 1 + n * 4 // 300 + rng.randint(0, 1))})
        db.session.execute(insert(CoachingSession), sessions)
        db.session.execute(insert(Booking), bookings)
        db.session.execute(insert(SessionRecord), records)
        db.session.execute(insert(RecordSkillLevel), levels)
        db.session.execute(update(SessionRecord).where(SessionRecord.tenant_id == t,
                                                       SessionRecord.athlete_membership_id == athlete.id)
                           .values(status="signed", signed_at=SessionRecord.session_at,
                                   signed_by_membership_id=coach.id))
        # 5 goals with a value a fortnight and two milestones each.
        for g in range(5):
            goal = Goal(id=uuid.uuid4(), tenant_id=t, athlete_membership_id=athlete.id, title=f"Goal {g + 1}",
                        target_date=today + timedelta(days=30 * (g + 1)), metric_unit="%",
                        metric_start=Decimal(40), metric_target=Decimal(80), direction="up")
            db.session.add(goal)
            db.session.flush()
            db.session.execute(insert(GoalValue), [
                {"id": uuid.uuid4(), "tenant_id": t, "goal_id": goal.id, "value": Decimal(40 + n),
                 "logged_on": first + timedelta(days=14 * n)} for n in range(52)])
            db.session.execute(insert(GoalMilestone), [
                {"id": uuid.uuid4(), "tenant_id": t, "goal_id": goal.id, "title": f"Step {m + 1}"} for m in range(2)])
        # 2 programs of 12 weeks, 4 workouts a week, most of them logged.
        for p in range(2):
            program = Program(id=uuid.uuid4(), tenant_id=t, title=f"Block {p + 1}", weeks=12)
            db.session.add(program)
            db.session.flush()
            workouts = [{"id": uuid.uuid4(), "tenant_id": t, "program_id": program.id, "week": w + 1, "day": d,
                         "title": f"W{w + 1} D{d}"} for w in range(12) for d in (1, 2, 4, 6)]
            db.session.execute(insert(ProgramWorkout), workouts)
            start = today - timedelta(days=today.weekday()) - timedelta(weeks=11 + 30 * p)
            assignment = ProgramAssignment(id=uuid.uuid4(), tenant_id=t, program_id=program.id,
                                           athlete_membership_id=athlete.id, start_date=start)
            db.session.add(assignment)
            db.session.flush()
            logs = []
            for w in workouts:
                on = start + timedelta(days=(w["week"] - 1) * 7 + w["day"] - 1)
                if on < today and rng.random() < 0.8:
                    logs.append({"id": uuid.uuid4(), "tenant_id": t, "assignment_id": assignment.id,
                                 "workout_id": w["id"], "athlete_membership_id": athlete.id, "scheduled_on": on,
                                 "status": rng.choice(["done", "done", "done", "partial", "skipped"])})
            if logs:
                db.session.execute(insert(WorkoutLog), logs)
        db.session.commit()
        return athlete.id


def run(argv: list[str] | None = None) -> str:
    runs = harness.env_int("BENCH_RUNS", 7)
    harness.header("report")
    with harness.running_stack():
        os.environ.setdefault("MEDIA_BACKEND", "local")
        os.environ["MEDIA_LOCAL_ROOT"] = tempfile.mkdtemp(prefix="coach-bench-media-")
        app = harness.make_app()
        harness.say("seeding an organization and the benchmark athlete (two years of history)")
        org = harness.seed_org(app, members=10, coaches=2)
        athlete_id = seed_athlete(app, org)
        totals, pdf_times, sizes = [], [], []
        with app.app_context():
            from coach import tenancy
            from coach.extensions import db
            from coach.orgs.models import Membership
            from coach.progress import pdf, reports

            for n in range(runs + 1):
                tenancy.activate(org.id)
                athlete = db.session.get(Membership, athlete_id)
                today = reports.athlete_today(athlete)
                report = reports.request(athlete, athlete, today - timedelta(days=reports.MAX_PERIOD_DAYS - 1), today)
                db.session.commit()
                report_id = str(report.id)
                started = time.perf_counter()
                outcome = reports.build(str(org.id), report_id)
                elapsed = time.perf_counter() - started
                if outcome != "ready":
                    raise SystemExit(f"report {report_id} ended {outcome}")
                tenancy.activate(org.id)
                report = reports.report_by_id(org.id, report_id)
                data = reports.gather(report)
                drawn = reports.draw(data)
                started = time.perf_counter()
                document = pdf.render(data, drawn)
                pdf_elapsed = time.perf_counter() - started
                db.session.rollback()
                if n == 0:
                    harness.say(f"warm-up: {elapsed:.3f} s ({data.session_count} sessions, {len(data.changes)} "
                                f"skill changes, {len(data.readiness)} readiness points, {len(data.weeks)} weeks)")
                    continue
                totals.append(elapsed)
                pdf_times.append(pdf_elapsed)
                sizes.append(len(document))
            # Where one build's time goes (after the measured runs).
            tenancy.activate(org.id)
            athlete = db.session.get(Membership, athlete_id)
            today = reports.athlete_today(athlete)
            report = reports.request(athlete, athlete, today - timedelta(days=reports.MAX_PERIOD_DAYS - 1), today)
            db.session.commit()
            profile = cProfile.Profile()
            profile.enable()
            reports.build(str(org.id), str(report.id))
            profile.disable()
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(25)
            print(out.getvalue())
    totals.sort()
    pdf_times.sort()
    harness.print_table(["runs", "p50 s", "max s", "PDF p50 s", "PDF max s", "PDF KB"],
                        [[len(totals), harness.percentile(totals, 50), totals[-1], harness.percentile(pdf_times, 50),
                          pdf_times[-1], round(sum(sizes) / len(sizes) / 1024)]])
    return harness.key_values(p50_s=harness.percentile(totals, 50), max_s=totals[-1],
                              pdf_p50_s=harness.percentile(pdf_times, 50),
                              target_met=int(totals[-1] < TARGET_SECONDS))


if __name__ == "__main__":
    print(run())
