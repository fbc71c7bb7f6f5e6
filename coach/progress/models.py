"""Athlete development: frameworks and session records, proficiency, goals, habits, readiness, programs and their
logs, coach notes, the timeline, reports and digests (constraints and the sign-off lock: migration 0015).

Author columns (``*_by_membership_id``, ``coach_membership_id`` of a record, ``author_membership_id``) are
nullable: they are cleared, alone, when that member leaves the organization; the athlete's rows stay.
"""
from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, Date, DateTime, Integer, Numeric, SmallInteger, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from coach.dbutil import TenantScoped, tenant_fk, tenant_relationship
from coach.extensions import db
from coach.orgs.models import Membership

DRAFT, SIGNED = "draft", "signed"
GOAL_STATUSES = ("active", "done", "abandoned")
DAILY, WEEKLY = "daily", "weekly"
LOG_STATUSES = {"done": "Done", "partial": "Partly done", "skipped": "Skipped"}
TIMELINE_KINDS = ("session", "record", "readiness", "workout", "review", "goal", "milestone", "note", "program",
                  "report")
REPORT_STATUSES = ("queued", "running", "ready", "failed")
DEFAULT_SCALE = ["Introduced", "Practised", "Competent", "Proficient"]
MAX_EXERCISES_PER_PROGRAM = 1000


class AthleteProfile(TenantScoped, db.Model):
    """An athlete's development settings: a guardian's email for reports, and whether weekly reports are sent."""

    __tablename__ = "athlete_profiles"
    __table_args__ = (tenant_fk("membership_id", "memberships", "fk_athlete_profiles_member"),)

    membership_id: Mapped[uuid.UUID] = mapped_column()
    guardian_email: Mapped[str | None] = mapped_column(String(254))
    weekly_report: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SkillFramework(TenantScoped, db.Model):
    """A standard an organization measures athletes against: areas of skills, and a proficiency scale."""

    __tablename__ = "skill_frameworks"

    title: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    scale: Mapped[list] = mapped_column(JSONB)  # labels, level 1 first
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    @property
    def top_level(self) -> int:
        return len(self.scale)

    def level_label(self, level: int | None) -> str:
        if level is None or not 1 <= level <= len(self.scale):
            return "Not observed"
        return f"{level} · {self.scale[level - 1]}"


class SkillArea(TenantScoped, db.Model):
    __tablename__ = "skill_areas"
    __table_args__ = (tenant_fk("framework_id", "skill_frameworks", "fk_skill_areas_framework"),)

    framework_id: Mapped[uuid.UUID] = mapped_column()
    title: Mapped[str] = mapped_column(String(120))
    position: Mapped[int] = mapped_column(SmallInteger, default=0)


class Skill(TenantScoped, db.Model):
    __tablename__ = "skills"
    __table_args__ = (tenant_fk("framework_id", "skill_frameworks", "fk_skills_framework"),
                      tenant_fk("area_id", "skill_areas", "fk_skills_area"))

    framework_id: Mapped[uuid.UUID] = mapped_column()
    area_id: Mapped[uuid.UUID] = mapped_column()
    title: Mapped[str] = mapped_column(String(160))
    description: Mapped[str] = mapped_column(Text, default="")
    required_level: Mapped[int | None] = mapped_column(SmallInteger)
    position: Mapped[int] = mapped_column(SmallInteger, default=0)


class SessionRecord(TenantScoped, db.Model):
    """What a coach wrote about one booking (one athlete's session): levels observed, notes, media, homework.

    ``draft`` until signed off; then locked by the database. An amendment is a new version (``supersedes_id``
    the one it replaces); the current record of a booking is its highest signed version."""

    __tablename__ = "session_records"
    __table_args__ = (tenant_fk("athlete_membership_id", "memberships", "fk_session_records_athlete"),)

    # None once the booking is gone (its coach left the organization): the record stays with the athlete.
    booking_id: Mapped[uuid.UUID | None] = mapped_column()
    athlete_membership_id: Mapped[uuid.UUID] = mapped_column()
    coach_membership_id: Mapped[uuid.UUID | None] = mapped_column()
    framework_id: Mapped[uuid.UUID | None] = mapped_column()
    version: Mapped[int] = mapped_column(SmallInteger, default=1)
    status: Mapped[str] = mapped_column(String(8), default=DRAFT)
    notes_md: Mapped[str] = mapped_column(Text, default="")
    notes_html: Mapped[str] = mapped_column(Text, default="")
    homework_md: Mapped[str] = mapped_column(Text, default="")
    homework_html: Mapped[str] = mapped_column(Text, default="")
    amendment_reason: Mapped[str] = mapped_column(Text, default="")
    supersedes_id: Mapped[uuid.UUID | None] = mapped_column()
    session_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    signed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    signed_by_membership_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    athlete: Mapped[Membership] = tenant_relationship("SessionRecord", "athlete_membership_id")

    @property
    def signed(self) -> bool:
        return self.status == SIGNED


class RecordSkillLevel(TenantScoped, db.Model):
    __tablename__ = "record_skill_levels"
    __table_args__ = (tenant_fk("record_id", "session_records", "fk_record_skill_levels_record"),
                      tenant_fk("skill_id", "skills", "fk_record_skill_levels_skill"))

    record_id: Mapped[uuid.UUID] = mapped_column()
    skill_id: Mapped[uuid.UUID] = mapped_column()
    level: Mapped[int] = mapped_column(SmallInteger)
    note: Mapped[str] = mapped_column(String(500), default="")


class RecordMedia(TenantScoped, db.Model):
    """An attachment of a record, or a link to a moment (``at_ms``) of a video in the review page."""

    __tablename__ = "record_media"
    __table_args__ = (tenant_fk("record_id", "session_records", "fk_record_media_record"),
                      tenant_fk("media_id", "media_items", "fk_record_media_media"))

    record_id: Mapped[uuid.UUID] = mapped_column()
    media_id: Mapped[uuid.UUID] = mapped_column()
    at_ms: Mapped[int | None] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(200), default="")


class AthleteSkillLevel(TenantScoped, db.Model):
    """An athlete's current level on one skill: that of the latest signed-off record that observed it."""

    __tablename__ = "athlete_skill_levels"
    __table_args__ = (tenant_fk("athlete_membership_id", "memberships", "fk_athlete_skill_levels_athlete"),
                      tenant_fk("skill_id", "skills", "fk_athlete_skill_levels_skill"),
                      tenant_fk("record_id", "session_records", "fk_athlete_skill_levels_record"))

    athlete_membership_id: Mapped[uuid.UUID] = mapped_column()
    skill_id: Mapped[uuid.UUID] = mapped_column()
    level: Mapped[int] = mapped_column(SmallInteger)
    record_id: Mapped[uuid.UUID] = mapped_column()
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Goal(TenantScoped, db.Model):
    __tablename__ = "goals"
    __table_args__ = (tenant_fk("athlete_membership_id", "memberships", "fk_goals_athlete"),)

    athlete_membership_id: Mapped[uuid.UUID] = mapped_column()
    created_by_membership_id: Mapped[uuid.UUID | None] = mapped_column()
    title: Mapped[str] = mapped_column(String(160))
    description: Mapped[str] = mapped_column(Text, default="")
    target_date: Mapped[date | None] = mapped_column(Date)
    metric_unit: Mapped[str | None] = mapped_column(String(20))
    metric_start: Mapped[Decimal | None] = mapped_column(Numeric(14, 4))
    metric_target: Mapped[Decimal | None] = mapped_column(Numeric(14, 4))
    direction: Mapped[str | None] = mapped_column(String(4))  # "up" or "down"
    status: Mapped[str] = mapped_column(String(10), default="active")
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    @property
    def measurable(self) -> bool:
        return self.metric_unit is not None


class GoalValue(TenantScoped, db.Model):
    __tablename__ = "goal_values"
    __table_args__ = (tenant_fk("goal_id", "goals", "fk_goal_values_goal"),)

    goal_id: Mapped[uuid.UUID] = mapped_column()
    value: Mapped[Decimal] = mapped_column(Numeric(14, 4))
    logged_on: Mapped[date] = mapped_column(Date)
    note: Mapped[str] = mapped_column(String(500), default="")
    logged_by_membership_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class GoalMilestone(TenantScoped, db.Model):
    __tablename__ = "goal_milestones"
    __table_args__ = (tenant_fk("goal_id", "goals", "fk_goal_milestones_goal"),)

    goal_id: Mapped[uuid.UUID] = mapped_column()
    title: Mapped[str] = mapped_column(String(160))
    position: Mapped[int] = mapped_column(SmallInteger, default=0)
    due_date: Mapped[date | None] = mapped_column(Date)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Habit(TenantScoped, db.Model):
    __tablename__ = "habits"
    __table_args__ = (tenant_fk("athlete_membership_id", "memberships", "fk_habits_athlete"),)

    athlete_membership_id: Mapped[uuid.UUID] = mapped_column()
    created_by_membership_id: Mapped[uuid.UUID | None] = mapped_column()
    title: Mapped[str] = mapped_column(String(120))
    frequency: Mapped[str] = mapped_column(String(6), default=DAILY)
    times_per_week: Mapped[int | None] = mapped_column(SmallInteger)
    reminder_minute: Mapped[int | None] = mapped_column(SmallInteger)
    last_reminded_on: Mapped[date | None] = mapped_column(Date)
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class HabitCheckin(TenantScoped, db.Model):
    __tablename__ = "habit_checkins"
    __table_args__ = (tenant_fk("habit_id", "habits", "fk_habit_checkins_habit"),)

    habit_id: Mapped[uuid.UUID] = mapped_column()
    on_date: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ReadinessCheckin(TenantScoped, db.Model):
    __tablename__ = "readiness_checkins"
    __table_args__ = (tenant_fk("athlete_membership_id", "memberships", "fk_readiness_checkins_athlete"),)

    athlete_membership_id: Mapped[uuid.UUID] = mapped_column()
    on_date: Mapped[date] = mapped_column(Date)
    sleep_hours: Mapped[Decimal] = mapped_column(Numeric(3, 1))
    energy: Mapped[int] = mapped_column(SmallInteger)
    mood: Mapped[int] = mapped_column(SmallInteger)
    stress: Mapped[int] = mapped_column(SmallInteger)
    soreness: Mapped[int] = mapped_column(SmallInteger)
    note: Mapped[str] = mapped_column(Text, default="")
    score: Mapped[Decimal] = mapped_column(Numeric(4, 2))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Exercise(TenantScoped, db.Model):
    """An entry of the organization's exercise library, with an optional demo clip from media."""

    __tablename__ = "exercises"

    title: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    demo_media_id: Mapped[uuid.UUID | None] = mapped_column()
    created_by_membership_id: Mapped[uuid.UUID | None] = mapped_column()
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Program(TenantScoped, db.Model):
    """A training program: ``weeks`` weeks of days (1 = Monday .. 7) holding workouts. A template is offered
    when starting a new program."""

    __tablename__ = "programs"

    title: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    weeks: Mapped[int] = mapped_column(SmallInteger, default=1)
    is_template: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by_membership_id: Mapped[uuid.UUID | None] = mapped_column()
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ProgramWorkout(TenantScoped, db.Model):
    __tablename__ = "program_workouts"
    __table_args__ = (tenant_fk("program_id", "programs", "fk_program_workouts_program"),)

    program_id: Mapped[uuid.UUID] = mapped_column()
    week: Mapped[int] = mapped_column(SmallInteger)
    day: Mapped[int] = mapped_column(SmallInteger)
    position: Mapped[int] = mapped_column(SmallInteger, default=0)
    title: Mapped[str] = mapped_column(String(120))
    notes: Mapped[str] = mapped_column(Text, default="")


class WorkoutExercise(TenantScoped, db.Model):
    """One exercise of a workout with what is prescribed (any of sets, reps, load, time, distance, rest, tempo)."""

    __tablename__ = "workout_exercises"
    __table_args__ = (tenant_fk("workout_id", "program_workouts", "fk_workout_exercises_workout"),
                      tenant_fk("exercise_id", "exercises", "fk_workout_exercises_exercise", ondelete="NO ACTION"))

    workout_id: Mapped[uuid.UUID] = mapped_column()
    exercise_id: Mapped[uuid.UUID] = mapped_column()
    position: Mapped[int] = mapped_column(SmallInteger, default=0)
    sets: Mapped[int | None] = mapped_column(SmallInteger)
    reps: Mapped[int | None] = mapped_column(SmallInteger)
    load_kg: Mapped[Decimal | None] = mapped_column(Numeric(7, 2))
    duration_s: Mapped[int | None] = mapped_column(Integer)
    distance_m: Mapped[int | None] = mapped_column(Integer)
    rest_s: Mapped[int | None] = mapped_column(Integer)
    tempo: Mapped[str] = mapped_column(String(12), default="")
    notes: Mapped[str] = mapped_column(String(500), default="")

    exercise: Mapped[Exercise] = tenant_relationship("WorkoutExercise", "exercise_id", "Exercise")


class ProgramAssignment(TenantScoped, db.Model):
    """A program given to one athlete from ``start_date`` (week 1, day 1 is that date)."""

    __tablename__ = "program_assignments"
    __table_args__ = (tenant_fk("program_id", "programs", "fk_program_assignments_program", ondelete="NO ACTION"),
                      tenant_fk("athlete_membership_id", "memberships", "fk_program_assignments_athlete"))

    program_id: Mapped[uuid.UUID] = mapped_column()
    athlete_membership_id: Mapped[uuid.UUID] = mapped_column()
    start_date: Mapped[date] = mapped_column(Date)
    assigned_by_membership_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    program: Mapped[Program] = tenant_relationship("ProgramAssignment", "program_id", "Program")


class WorkoutLog(TenantScoped, db.Model):
    __tablename__ = "workout_logs"
    __table_args__ = (tenant_fk("assignment_id", "program_assignments", "fk_workout_logs_assignment"),
                      tenant_fk("workout_id", "program_workouts", "fk_workout_logs_workout", ondelete="NO ACTION"),
                      tenant_fk("athlete_membership_id", "memberships", "fk_workout_logs_athlete"))

    assignment_id: Mapped[uuid.UUID] = mapped_column()
    workout_id: Mapped[uuid.UUID] = mapped_column()
    athlete_membership_id: Mapped[uuid.UUID] = mapped_column()
    scheduled_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(8))
    rpe: Mapped[int | None] = mapped_column(SmallInteger)
    note: Mapped[str] = mapped_column(Text, default="")
    media_id: Mapped[uuid.UUID | None] = mapped_column()
    logged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WorkoutLogExercise(TenantScoped, db.Model):
    __tablename__ = "workout_log_exercises"
    __table_args__ = (tenant_fk("log_id", "workout_logs", "fk_workout_log_exercises_log"),
                      tenant_fk("workout_exercise_id", "workout_exercises", "fk_workout_log_exercises_exercise"))

    log_id: Mapped[uuid.UUID] = mapped_column()
    workout_exercise_id: Mapped[uuid.UUID] = mapped_column()
    sets: Mapped[int | None] = mapped_column(SmallInteger)
    reps: Mapped[int | None] = mapped_column(SmallInteger)
    load_kg: Mapped[Decimal | None] = mapped_column(Numeric(7, 2))
    duration_s: Mapped[int | None] = mapped_column(Integer)
    distance_m: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(String(500), default="")


class WorkoutComment(TenantScoped, db.Model):
    __tablename__ = "workout_comments"
    __table_args__ = (tenant_fk("log_id", "workout_logs", "fk_workout_comments_log"),)

    log_id: Mapped[uuid.UUID] = mapped_column()
    author_membership_id: Mapped[uuid.UUID | None] = mapped_column()
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CoachNote(TenantScoped, db.Model):
    """A private note about an athlete: the organization's coaches and admins see it, the athlete never does."""

    __tablename__ = "coach_notes"
    __table_args__ = (tenant_fk("athlete_membership_id", "memberships", "fk_coach_notes_athlete"),)

    athlete_membership_id: Mapped[uuid.UUID] = mapped_column()
    author_membership_id: Mapped[uuid.UUID | None] = mapped_column()
    body_md: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TimelineEntry(TenantScoped, db.Model):
    """One thing that happened to an athlete, written with it (see :mod:`coach.progress.timeline`)."""

    __tablename__ = "timeline_entries"
    __table_args__ = (tenant_fk("athlete_membership_id", "memberships", "fk_timeline_entries_athlete"),)

    athlete_membership_id: Mapped[uuid.UUID] = mapped_column()
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[uuid.UUID] = mapped_column()
    title: Mapped[str] = mapped_column(String(200))
    detail: Mapped[str] = mapped_column(String(500), default="")
    coaches_only: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ProgressReport(TenantScoped, db.Model):
    __tablename__ = "progress_reports"
    __table_args__ = (tenant_fk("athlete_membership_id", "memberships", "fk_progress_reports_athlete"),)

    athlete_membership_id: Mapped[uuid.UUID] = mapped_column()
    requested_by_membership_id: Mapped[uuid.UUID | None] = mapped_column()
    kind: Mapped[str] = mapped_column(String(10), default="on_demand")
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(8), default="queued")
    progress: Mapped[int] = mapped_column(SmallInteger, default=0)
    stage: Mapped[str] = mapped_column(String(80), default="")
    html_key: Mapped[str | None] = mapped_column(String(512))
    pdf_key: Mapped[str | None] = mapped_column(String(512))
    pdf_bytes: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    emailed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    athlete: Mapped[Membership] = tenant_relationship("ProgressReport", "athlete_membership_id")


class CoachDigest(TenantScoped, db.Model):
    __tablename__ = "coach_digests"
    __table_args__ = (tenant_fk("coach_membership_id", "memberships", "fk_coach_digests_coach"),)

    coach_membership_id: Mapped[uuid.UUID] = mapped_column()
    week_start: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
