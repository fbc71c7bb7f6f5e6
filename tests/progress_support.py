"""Rows of the athlete development domain written directly (for the RLS and crawl fixtures, and for tests and
benchmarks that need data rather than the services' paths). The services have their own tests."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from coach import tenancy
from coach.extensions import db
from coach.progress.days import local_today
from coach.progress.models import (
    AthleteProfile, AthleteSkillLevel, CoachDigest, CoachNote, Exercise, Goal, GoalMilestone, GoalValue, Habit,
    HabitCheckin, ProgramAssignment, Program, ProgramWorkout, ProgressReport, ReadinessCheckin, RecordMedia,
    RecordSkillLevel, SessionRecord, Skill, SkillArea, SkillFramework, TimelineEntry, WorkoutComment, WorkoutExercise,
    WorkoutLog, WorkoutLogExercise)
from tests.conftest import Auth
from tests.factories import add_member, make_org, make_user


def seed_progress_rows(org, coach, athlete, booking, media_item, label: str = "") -> dict:
    """One row in every development table of ``org``: a framework with a skill, a signed record of ``booking``
    (a level, a media link), the athlete's proficiency, a goal with a value and a milestone, a habit ticked, a
    readiness check-in, a program with a workout and an exercise assigned and logged (with a comment), a coach
    note, a timeline entry, a report and a digest. Returns the main rows by kind."""
    t = org.id
    now = datetime.now(timezone.utc)
    today = local_today(athlete, now)  # the athlete's day (a check-in's date is theirs, not UTC's)
    name = f"{label} Serve".strip()
    db.session.add(AthleteProfile(tenant_id=t, membership_id=athlete.id, guardian_email=None))
    framework = SkillFramework(tenant_id=t, title=f"{label} Tennis".strip(), scale=["Introduced", "Practised",
                                                                                      "Competent", "Proficient"])
    db.session.add(framework)
    db.session.flush()
    area = SkillArea(tenant_id=t, framework_id=framework.id, title=name)
    db.session.add(area)
    db.session.flush()
    skill = Skill(tenant_id=t, framework_id=framework.id, area_id=area.id, title=f"{label} Kick serve".strip(),
                  required_level=3)
    db.session.add(skill)
    db.session.flush()
    record = SessionRecord(tenant_id=t, booking_id=booking.id, athlete_membership_id=athlete.id,
                           coach_membership_id=coach.id, framework_id=framework.id, notes_md=f"{label} notes",
                           notes_html=f"<p>{label} notes</p>", session_at=booking.starts_at)
    db.session.add(record)
    db.session.flush()
    db.session.add(RecordSkillLevel(tenant_id=t, record_id=record.id, skill_id=skill.id, level=2))
    link = RecordMedia(tenant_id=t, record_id=record.id, media_id=media_item.id, at_ms=1000, label="Toss")
    db.session.add(link)
    db.session.flush()
    record.status, record.signed_at, record.signed_by_membership_id = "signed", now, coach.id
    db.session.flush()
    db.session.add(AthleteSkillLevel(tenant_id=t, athlete_membership_id=athlete.id, skill_id=skill.id, level=2,
                                     record_id=record.id, observed_at=booking.starts_at))
    goal = Goal(tenant_id=t, athlete_membership_id=athlete.id, created_by_membership_id=coach.id,
                title=f"{label} First serve in".strip(), target_date=today + timedelta(days=60), metric_unit="%",
                metric_start=Decimal(40), metric_target=Decimal(70), direction="up")
    db.session.add(goal)
    db.session.flush()
    value = GoalValue(tenant_id=t, goal_id=goal.id, value=Decimal(45), logged_on=today)
    db.session.add(value)
    milestone = GoalMilestone(tenant_id=t, goal_id=goal.id, title=f"{label} 50%".strip())
    db.session.add(milestone)
    habit = Habit(tenant_id=t, athlete_membership_id=athlete.id, title=f"{label} Stretch".strip(), reminder_minute=480)
    db.session.add(habit)
    db.session.flush()
    db.session.add(HabitCheckin(tenant_id=t, habit_id=habit.id, on_date=today))
    readiness = ReadinessCheckin(tenant_id=t, athlete_membership_id=athlete.id, on_date=today,
                                 sleep_hours=Decimal("7.5"), energy=4, mood=4, stress=2, soreness=2,
                                 score=Decimal("4.00"), note=f"{label} fine".strip())
    db.session.add(readiness)
    exercise = Exercise(tenant_id=t, title=f"{label} Squat".strip(), demo_media_id=media_item.id,
                        created_by_membership_id=coach.id)
    program = Program(tenant_id=t, title=f"{label} Base block".strip(), weeks=1, created_by_membership_id=coach.id)
    db.session.add_all([exercise, program])
    db.session.flush()
    workout = ProgramWorkout(tenant_id=t, program_id=program.id, week=1, day=1, title=f"{label} Legs".strip())
    db.session.add(workout)
    db.session.flush()
    line = WorkoutExercise(tenant_id=t, workout_id=workout.id, exercise_id=exercise.id, sets=3, reps=8,
                           load_kg=Decimal(60))
    assignment = ProgramAssignment(tenant_id=t, program_id=program.id, athlete_membership_id=athlete.id,
                                   start_date=today - timedelta(days=today.weekday()),
                                   assigned_by_membership_id=coach.id)
    db.session.add_all([line, assignment])
    db.session.flush()
    log = WorkoutLog(tenant_id=t, assignment_id=assignment.id, workout_id=workout.id, athlete_membership_id=athlete.id,
                     scheduled_on=assignment.start_date, status="done", rpe=7, note=f"{label} felt good".strip())
    db.session.add(log)
    db.session.flush()
    db.session.add(WorkoutLogExercise(tenant_id=t, log_id=log.id, workout_exercise_id=line.id, sets=3, reps=8,
                                      load_kg=Decimal(60)))
    db.session.add(WorkoutComment(tenant_id=t, log_id=log.id, author_membership_id=coach.id,
                                  body=f"{label} nice work".strip()))
    note = CoachNote(tenant_id=t, athlete_membership_id=athlete.id, author_membership_id=coach.id,
                     body_md=f"{label} private".strip(), body_html=f"<p>{label} private</p>")
    db.session.add(note)
    db.session.flush()
    db.session.add(TimelineEntry(tenant_id=t, athlete_membership_id=athlete.id, occurred_at=now, kind="note",
                                 subject_id=note.id, title=f"{label} Coach note".strip(), coaches_only=True))
    report = ProgressReport(tenant_id=t, athlete_membership_id=athlete.id, requested_by_membership_id=coach.id,
                            period_start=today - timedelta(days=28), period_end=today, status="ready", progress=100,
                            finished_at=now)
    db.session.add(report)
    db.session.add(CoachDigest(tenant_id=t, coach_membership_id=coach.id,
                               week_start=today - timedelta(days=today.weekday())))
    db.session.flush()
    return {"framework": framework, "area": area, "skill": skill, "record": record, "goal": goal, "habit": habit,
            "readiness": readiness, "exercise": exercise, "program": program, "workout": workout,
            "assignment": assignment, "log": log, "note": note, "report": report, "milestone": milestone,
            "line": line, "value": value, "link": link}


class RiverWorld:
    """River Club for the goals, habits and readiness tests: Ada Admin, Maria Santos (coach), Ana Alves (athlete,
    Europe/Berlin) and Ben Brown (athlete, in ``ben_tz``), with a logged-in browser per member on demand."""

    def __init__(self, app, ben_tz: str | None = None):
        self.app = app
        admin = make_user("ada@example.com", "Ada Admin")
        self.org = make_org(admin, slug="river", name="River Club")
        self.coach = add_member(self.org, make_user("maria@example.com", "Maria Santos"), "coach")
        ana_tz, ben = ({}, {}) if ben_tz is None else ({"tz": "Europe/Berlin"}, {"tz": ben_tz})
        self.ana = add_member(self.org, make_user("ana@example.com", "Ana Alves", **ana_tz))
        self.ben = add_member(self.org, make_user("ben@example.com", "Ben Brown", **ben))
        self.act()
        self._browsers = {}

    def act(self):
        tenancy.activate(self.org.id)

    def browser(self, member):
        if member.user.email not in self._browsers:
            client = self.app.test_client()
            assert Auth(client).login(member.user.email).status_code == 303
            self._browsers[member.user.email] = client
        self.act()
        return self._browsers[member.user.email]

    def url(self, path):
        return f"/o/river/progress{path}"
