"""Athlete development: skill frameworks (areas, skills, a proficiency scale), session records with the levels
observed and their versions, each athlete's current proficiency, goals with metrics and milestones, habits and
their check-ins, daily readiness check-ins, the exercise library and training programs with their assignments
and logged workouts, coach notes, one timeline per athlete, progress reports and the weekly coach digests.

Every table is a tenant table under forced RLS with composite keys. An athlete's own rows go with their
membership (CASCADE); the member who wrote something (a coach, an assigner) is an *author* column that is set to
NULL alone when that member leaves (``ON DELETE SET NULL (column)``), so an athlete's history outlives their
coach. A session record's booking is such a column too: a coach's sessions (and so their bookings) leave with
the coach, the records of them stay.

A signed-off session record is locked by a trigger: its content, status and version never change again (an
amendment is a new version), and the levels and media of a signed record can be neither added, changed nor
removed. Only the author columns and the booking may still be cleared (a member leaving, a coach's sessions
going with them), and the whole record may be deleted with its athlete or organization.

Revision ID: 0015_progress
Revises: 0014_payments
Created: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

from rls import APP_ROLE, tenant_columns, tenant_fk, tenant_table

revision = "0015_progress"
down_revision = "0014_payments"
branch_labels = None
depends_on = None

TABLES = ("athlete_profiles", "skill_frameworks", "skill_areas", "skills", "session_records",
          "record_skill_levels", "record_media", "athlete_skill_levels", "goals", "goal_values", "goal_milestones",
          "habits", "habit_checkins", "readiness_checkins", "exercises", "programs", "program_workouts",
          "workout_exercises", "program_assignments", "workout_logs", "workout_log_exercises", "workout_comments",
          "coach_notes", "timeline_entries", "progress_reports", "coach_digests")


def _ts(name, nullable=True, default=False):
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable,
                     server_default=sa.func.now() if default else None)


def _uuid(name, nullable=False):
    return sa.Column(name, UUID(as_uuid=True), nullable=nullable)


def _title(table, name="title", length=120):
    return [sa.Column(name, sa.String(length), nullable=False),
            sa.CheckConstraint(f"char_length(btrim({name})) BETWEEN 1 AND {length}", name=f"{name}_length")]


def _text(name, limit):
    return [sa.Column(name, sa.Text, nullable=False, server_default=""),
            sa.CheckConstraint(f"char_length({name}) <= {limit}", name=f"{name}_length")]


def _author_fk(table, column, target="memberships"):
    """The author (or another row that may go away): only ``column`` is cleared when the target is deleted."""
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT fk_{table}_{column} FOREIGN KEY (tenant_id, {column}) "
               f"REFERENCES {target} (tenant_id, id) ON DELETE SET NULL ({column})")


def upgrade():
    # --- per-athlete settings ------------------------------------------------------------------------
    op.create_table(
        "athlete_profiles",
        *tenant_columns("athlete_profiles"),
        _uuid("membership_id"),
        sa.Column("guardian_email", sa.String(254)),
        sa.Column("weekly_report", sa.Boolean, nullable=False, server_default=sa.true()),
        _ts("updated_at", nullable=False, default=True),
        sa.UniqueConstraint("tenant_id", "membership_id", name="uq_athlete_profiles_member"),
        tenant_fk(["membership_id"], "memberships", "fk_athlete_profiles_member"),
        sa.CheckConstraint("guardian_email IS NULL OR guardian_email LIKE '%_@_%'", name="guardian_email_shape"),
    )

    # --- skill frameworks ----------------------------------------------------------------------------
    op.create_table(
        "skill_frameworks",
        *tenant_columns("skill_frameworks"),
        *_title("skill_frameworks"),
        *_text("description", 2000),
        # The proficiency scale: its labels, level 1 first ("Introduced", ..., "Proficient").
        sa.Column("scale", JSONB, nullable=False),
        _ts("archived_at"),
        _ts("created_at", nullable=False, default=True),
        sa.CheckConstraint("jsonb_typeof(scale) = 'array' AND jsonb_array_length(scale) BETWEEN 2 AND 10",
                           name="scale_shape"),
    )
    op.create_index("uq_skill_frameworks_title", "skill_frameworks", ["tenant_id", sa.text("lower(title)")],
                    unique=True, postgresql_where=sa.text("archived_at IS NULL"))

    op.create_table(
        "skill_areas",
        *tenant_columns("skill_areas"),
        _uuid("framework_id"),
        *_title("skill_areas"),
        sa.Column("position", sa.SmallInteger, nullable=False, server_default="0"),
        tenant_fk(["framework_id"], "skill_frameworks", "fk_skill_areas_framework"),
    )
    op.create_index("ix_skill_areas_framework", "skill_areas", ["tenant_id", "framework_id", "position"])

    op.create_table(
        "skills",
        *tenant_columns("skills"),
        _uuid("framework_id"),
        _uuid("area_id"),
        *_title("skills", length=160),
        *_text("description", 2000),
        sa.Column("required_level", sa.SmallInteger),
        sa.Column("position", sa.SmallInteger, nullable=False, server_default="0"),
        tenant_fk(["framework_id"], "skill_frameworks", "fk_skills_framework"),
        tenant_fk(["area_id"], "skill_areas", "fk_skills_area"),
        sa.CheckConstraint("required_level IS NULL OR required_level BETWEEN 1 AND 10", name="required_level_range"),
    )
    op.create_index("ix_skills_area", "skills", ["tenant_id", "area_id", "position"])
    op.create_index("ix_skills_framework", "skills", ["tenant_id", "framework_id"])

    # --- session records -----------------------------------------------------------------------------
    op.create_table(
        "session_records",
        *tenant_columns("session_records"),
        # The booking (one athlete's place in a session); cleared, alone, if the booking goes (its coach's
        # sessions leave with the coach): the record stays in the athlete's history.
        _uuid("booking_id", nullable=True),
        _uuid("athlete_membership_id"),
        _uuid("coach_membership_id", nullable=True),
        _uuid("framework_id", nullable=True),
        sa.Column("version", sa.SmallInteger, nullable=False, server_default="1"),
        sa.Column("status", sa.String(8), nullable=False, server_default="draft"),
        *_text("notes_md", 20000),
        sa.Column("notes_html", sa.Text, nullable=False, server_default=""),
        *_text("homework_md", 5000),
        sa.Column("homework_html", sa.Text, nullable=False, server_default=""),
        *_text("amendment_reason", 500),
        _uuid("supersedes_id", nullable=True),
        # When the session took place (the booking's start), copied so histories sort without a join.
        _ts("session_at", nullable=False),
        _ts("signed_at"),
        _uuid("signed_by_membership_id", nullable=True),
        _ts("created_at", nullable=False, default=True),
        _ts("updated_at", nullable=False, default=True),
        sa.UniqueConstraint("tenant_id", "booking_id", "version", name="uq_session_records_version"),
        tenant_fk(["athlete_membership_id"], "memberships", "fk_session_records_athlete"),
        tenant_fk(["supersedes_id"], "session_records", "fk_session_records_supersedes", ondelete="NO ACTION"),
        sa.CheckConstraint("status IN ('draft', 'signed')", name="status_valid"),
        sa.CheckConstraint("version BETWEEN 1 AND 1000", name="version_range"),
        sa.CheckConstraint("(status = 'signed') = (signed_at IS NOT NULL)", name="signed_shape"),
    )
    # One draft at a time per booking (a new version is a draft until signed).
    op.create_index("uq_session_records_draft", "session_records", ["tenant_id", "booking_id"], unique=True,
                    postgresql_where=sa.text("status = 'draft'"))
    op.create_index("ix_session_records_athlete", "session_records",
                    ["tenant_id", "athlete_membership_id", sa.text("session_at DESC")])
    op.create_index("ix_session_records_coach", "session_records", ["tenant_id", "coach_membership_id", "status"])
    _author_fk("session_records", "booking_id", "bookings")
    _author_fk("session_records", "coach_membership_id")
    _author_fk("session_records", "signed_by_membership_id")
    _author_fk("session_records", "framework_id", "skill_frameworks")

    op.create_table(
        "record_skill_levels",
        *tenant_columns("record_skill_levels"),
        _uuid("record_id"),
        _uuid("skill_id"),
        sa.Column("level", sa.SmallInteger, nullable=False),
        sa.Column("note", sa.String(500), nullable=False, server_default=""),
        sa.UniqueConstraint("tenant_id", "record_id", "skill_id", name="uq_record_skill_levels_pair"),
        tenant_fk(["record_id"], "session_records", "fk_record_skill_levels_record"),
        tenant_fk(["skill_id"], "skills", "fk_record_skill_levels_skill"),
        sa.CheckConstraint("level BETWEEN 1 AND 10", name="level_range"),
    )
    op.create_index("ix_record_skill_levels_skill", "record_skill_levels", ["tenant_id", "skill_id"])

    op.create_table(
        "record_media",
        *tenant_columns("record_media"),
        _uuid("record_id"),
        _uuid("media_id"),
        # A moment in the video (a timestamped link into the review page), or the whole item.
        sa.Column("at_ms", sa.Integer),
        sa.Column("label", sa.String(200), nullable=False, server_default=""),
        tenant_fk(["record_id"], "session_records", "fk_record_media_record"),
        tenant_fk(["media_id"], "media_items", "fk_record_media_media"),
        sa.CheckConstraint("at_ms IS NULL OR at_ms BETWEEN 0 AND 86400000", name="at_ms_range"),
    )
    op.create_index("ix_record_media_record", "record_media", ["tenant_id", "record_id"])

    op.execute("""
        CREATE FUNCTION session_records_lock() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF OLD.status = 'signed' AND (
                NEW.status IS DISTINCT FROM OLD.status OR NEW.version IS DISTINCT FROM OLD.version
                OR (NEW.booking_id IS NOT NULL AND NEW.booking_id IS DISTINCT FROM OLD.booking_id)
                OR NEW.athlete_membership_id IS DISTINCT FROM OLD.athlete_membership_id
                OR NEW.notes_md IS DISTINCT FROM OLD.notes_md OR NEW.notes_html IS DISTINCT FROM OLD.notes_html
                OR NEW.homework_md IS DISTINCT FROM OLD.homework_md
                OR NEW.homework_html IS DISTINCT FROM OLD.homework_html
                OR NEW.amendment_reason IS DISTINCT FROM OLD.amendment_reason
                OR NEW.supersedes_id IS DISTINCT FROM OLD.supersedes_id
                OR NEW.session_at IS DISTINCT FROM OLD.session_at OR NEW.signed_at IS DISTINCT FROM OLD.signed_at
                OR (NEW.coach_membership_id IS NOT NULL
                    AND NEW.coach_membership_id IS DISTINCT FROM OLD.coach_membership_id)
                OR (NEW.signed_by_membership_id IS NOT NULL
                    AND NEW.signed_by_membership_id IS DISTINCT FROM OLD.signed_by_membership_id)
                OR (NEW.framework_id IS NOT NULL AND NEW.framework_id IS DISTINCT FROM OLD.framework_id)
            ) THEN
                RAISE EXCEPTION 'session record % is signed off and locked', OLD.id
                    USING ERRCODE = 'check_violation', CONSTRAINT = 'session_record_locked';
            END IF;
            RETURN NEW;
        END $$
    """)
    op.execute("CREATE TRIGGER session_records_lock BEFORE UPDATE ON session_records "
               "FOR EACH ROW EXECUTE FUNCTION session_records_lock()")
    op.execute("""
        CREATE FUNCTION session_record_children_lock() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            v_record uuid;
            v_tenant uuid;
        BEGIN
            IF TG_OP = 'INSERT' THEN v_record := NEW.record_id; v_tenant := NEW.tenant_id;
            ELSE v_record := OLD.record_id; v_tenant := OLD.tenant_id; END IF;
            -- A record being deleted (with its booking or organization) is gone already: its rows may go.
            IF EXISTS (SELECT 1 FROM session_records r WHERE r.tenant_id = v_tenant AND r.id = v_record
                       AND r.status = 'signed') THEN
                RAISE EXCEPTION 'session record % is signed off and locked', v_record
                    USING ERRCODE = 'check_violation', CONSTRAINT = 'session_record_locked';
            END IF;
            IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
            RETURN NEW;
        END $$
    """)
    for child in ("record_skill_levels", "record_media"):
        op.execute(f"CREATE TRIGGER {child}_lock BEFORE INSERT OR UPDATE OR DELETE ON {child} "
                   "FOR EACH ROW EXECUTE FUNCTION session_record_children_lock()")

    # The current proficiency: per athlete and skill, the level of the latest signed-off record (kept by the
    # service at sign-off; the history is record_skill_levels).
    op.create_table(
        "athlete_skill_levels",
        *tenant_columns("athlete_skill_levels"),
        _uuid("athlete_membership_id"),
        _uuid("skill_id"),
        sa.Column("level", sa.SmallInteger, nullable=False),
        _uuid("record_id"),
        _ts("observed_at", nullable=False),
        _ts("updated_at", nullable=False, default=True),
        sa.UniqueConstraint("tenant_id", "athlete_membership_id", "skill_id", name="uq_athlete_skill_levels_pair"),
        tenant_fk(["athlete_membership_id"], "memberships", "fk_athlete_skill_levels_athlete"),
        tenant_fk(["skill_id"], "skills", "fk_athlete_skill_levels_skill"),
        tenant_fk(["record_id"], "session_records", "fk_athlete_skill_levels_record"),
        sa.CheckConstraint("level BETWEEN 1 AND 10", name="level_range"),
    )

    # --- goals ---------------------------------------------------------------------------------------
    op.create_table(
        "goals",
        *tenant_columns("goals"),
        _uuid("athlete_membership_id"),
        _uuid("created_by_membership_id", nullable=True),
        *_title("goals", length=160),
        *_text("description", 5000),
        sa.Column("target_date", sa.Date),
        sa.Column("metric_unit", sa.String(20)),
        sa.Column("metric_start", sa.Numeric(14, 4)),
        sa.Column("metric_target", sa.Numeric(14, 4)),
        sa.Column("direction", sa.String(4)),
        sa.Column("status", sa.String(10), nullable=False, server_default="active"),
        _ts("completed_at"),
        _ts("created_at", nullable=False, default=True),
        tenant_fk(["athlete_membership_id"], "memberships", "fk_goals_athlete"),
        sa.CheckConstraint("status IN ('active', 'done', 'abandoned')", name="status_valid"),
        sa.CheckConstraint("(status = 'done') = (completed_at IS NOT NULL)", name="done_shape"),
        sa.CheckConstraint(
            "(metric_unit IS NULL AND metric_start IS NULL AND metric_target IS NULL AND direction IS NULL)"
            " OR (metric_unit IS NOT NULL AND metric_start IS NOT NULL AND metric_target IS NOT NULL"
            " AND direction IN ('up', 'down') AND metric_start <> metric_target"
            " AND (direction = 'up') = (metric_target > metric_start))",
            name="metric_shape"),
    )
    op.create_index("ix_goals_athlete", "goals", ["tenant_id", "athlete_membership_id", "status"])
    _author_fk("goals", "created_by_membership_id")

    op.create_table(
        "goal_values",
        *tenant_columns("goal_values"),
        _uuid("goal_id"),
        sa.Column("value", sa.Numeric(14, 4), nullable=False),
        sa.Column("logged_on", sa.Date, nullable=False),
        sa.Column("note", sa.String(500), nullable=False, server_default=""),
        _uuid("logged_by_membership_id", nullable=True),
        _ts("created_at", nullable=False, default=True),
        tenant_fk(["goal_id"], "goals", "fk_goal_values_goal"),
    )
    op.create_index("ix_goal_values_goal", "goal_values", ["tenant_id", "goal_id", "logged_on"])
    _author_fk("goal_values", "logged_by_membership_id")

    op.create_table(
        "goal_milestones",
        *tenant_columns("goal_milestones"),
        _uuid("goal_id"),
        *_title("goal_milestones", length=160),
        sa.Column("position", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("due_date", sa.Date),
        _ts("completed_at"),
        tenant_fk(["goal_id"], "goals", "fk_goal_milestones_goal"),
    )
    op.create_index("ix_goal_milestones_goal", "goal_milestones", ["tenant_id", "goal_id", "position"])

    # --- habits and check-ins -------------------------------------------------------------------------
    op.create_table(
        "habits",
        *tenant_columns("habits"),
        _uuid("athlete_membership_id"),
        _uuid("created_by_membership_id", nullable=True),
        *_title("habits", length=120),
        sa.Column("frequency", sa.String(6), nullable=False, server_default="daily"),
        sa.Column("times_per_week", sa.SmallInteger),
        # A reminder at this minute of the athlete's local day (their profile's time zone), or none.
        sa.Column("reminder_minute", sa.SmallInteger),
        sa.Column("last_reminded_on", sa.Date),
        _ts("archived_at"),
        _ts("created_at", nullable=False, default=True),
        tenant_fk(["athlete_membership_id"], "memberships", "fk_habits_athlete"),
        sa.CheckConstraint("(frequency = 'daily' AND times_per_week IS NULL)"
                           " OR (frequency = 'weekly' AND times_per_week BETWEEN 1 AND 7)", name="frequency_shape"),
        sa.CheckConstraint("reminder_minute IS NULL OR reminder_minute BETWEEN 0 AND 1439", name="reminder_range"),
    )
    op.create_index("ix_habits_athlete", "habits", ["tenant_id", "athlete_membership_id"],
                    postgresql_where=sa.text("archived_at IS NULL"))
    op.create_index("ix_habits_reminders", "habits", ["reminder_minute"],
                    postgresql_where=sa.text("reminder_minute IS NOT NULL AND archived_at IS NULL"))
    _author_fk("habits", "created_by_membership_id")

    op.create_table(
        "habit_checkins",
        *tenant_columns("habit_checkins"),
        _uuid("habit_id"),
        # The athlete's local date when they ticked it (in their zone at that moment: travel keeps days whole).
        sa.Column("on_date", sa.Date, nullable=False),
        _ts("created_at", nullable=False, default=True),
        sa.UniqueConstraint("tenant_id", "habit_id", "on_date", name="uq_habit_checkins_day"),
        tenant_fk(["habit_id"], "habits", "fk_habit_checkins_habit"),
    )

    op.create_table(
        "readiness_checkins",
        *tenant_columns("readiness_checkins"),
        _uuid("athlete_membership_id"),
        sa.Column("on_date", sa.Date, nullable=False),
        sa.Column("sleep_hours", sa.Numeric(3, 1), nullable=False),
        sa.Column("energy", sa.SmallInteger, nullable=False),
        sa.Column("mood", sa.SmallInteger, nullable=False),
        sa.Column("stress", sa.SmallInteger, nullable=False),
        sa.Column("soreness", sa.SmallInteger, nullable=False),
        *_text("note", 1000),
        # 1 (poor) .. 5 (ready): see coach.progress.readiness.score.
        sa.Column("score", sa.Numeric(4, 2), nullable=False),
        _ts("created_at", nullable=False, default=True),
        _ts("updated_at", nullable=False, default=True),
        sa.UniqueConstraint("tenant_id", "athlete_membership_id", "on_date", name="uq_readiness_checkins_day"),
        tenant_fk(["athlete_membership_id"], "memberships", "fk_readiness_checkins_athlete"),
        sa.CheckConstraint("sleep_hours BETWEEN 0 AND 24", name="sleep_range"),
        sa.CheckConstraint("energy BETWEEN 1 AND 5 AND mood BETWEEN 1 AND 5 AND stress BETWEEN 1 AND 5"
                           " AND soreness BETWEEN 1 AND 5", name="scales_range"),
        sa.CheckConstraint("score BETWEEN 1 AND 5", name="score_range"),
    )

    # --- exercise library and programs -----------------------------------------------------------------
    op.create_table(
        "exercises",
        *tenant_columns("exercises"),
        *_title("exercises", length=120),
        *_text("description", 2000),
        _uuid("demo_media_id", nullable=True),
        _uuid("created_by_membership_id", nullable=True),
        _ts("archived_at"),
        _ts("created_at", nullable=False, default=True),
    )
    op.create_index("uq_exercises_title", "exercises", ["tenant_id", sa.text("lower(title)")], unique=True,
                    postgresql_where=sa.text("archived_at IS NULL"))
    _author_fk("exercises", "demo_media_id", "media_items")
    _author_fk("exercises", "created_by_membership_id")

    op.create_table(
        "programs",
        *tenant_columns("programs"),
        *_title("programs", length=120),
        *_text("description", 5000),
        sa.Column("weeks", sa.SmallInteger, nullable=False, server_default="1"),
        sa.Column("is_template", sa.Boolean, nullable=False, server_default=sa.false()),
        _uuid("created_by_membership_id", nullable=True),
        _ts("archived_at"),
        _ts("created_at", nullable=False, default=True),
        sa.CheckConstraint("weeks BETWEEN 1 AND 52", name="weeks_range"),
    )
    _author_fk("programs", "created_by_membership_id")

    # Days are (week, day) pairs of a program; a day holds workouts in order.
    op.create_table(
        "program_workouts",
        *tenant_columns("program_workouts"),
        _uuid("program_id"),
        sa.Column("week", sa.SmallInteger, nullable=False),
        sa.Column("day", sa.SmallInteger, nullable=False),
        sa.Column("position", sa.SmallInteger, nullable=False, server_default="0"),
        *_title("program_workouts", length=120),
        *_text("notes", 2000),
        tenant_fk(["program_id"], "programs", "fk_program_workouts_program"),
        sa.CheckConstraint("week BETWEEN 1 AND 52", name="week_range"),
        sa.CheckConstraint("day BETWEEN 1 AND 7", name="day_range"),
    )
    op.create_index("ix_program_workouts_program", "program_workouts",
                    ["tenant_id", "program_id", "week", "day", "position"])

    op.create_table(
        "workout_exercises",
        *tenant_columns("workout_exercises"),
        _uuid("workout_id"),
        _uuid("exercise_id"),
        sa.Column("position", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("sets", sa.SmallInteger),
        sa.Column("reps", sa.SmallInteger),
        sa.Column("load_kg", sa.Numeric(7, 2)),
        sa.Column("duration_s", sa.Integer),
        sa.Column("distance_m", sa.Integer),
        sa.Column("rest_s", sa.Integer),
        sa.Column("tempo", sa.String(12), nullable=False, server_default=""),
        sa.Column("notes", sa.String(500), nullable=False, server_default=""),
        tenant_fk(["workout_id"], "program_workouts", "fk_workout_exercises_workout"),
        tenant_fk(["exercise_id"], "exercises", "fk_workout_exercises_exercise", ondelete="NO ACTION"),
        sa.CheckConstraint("sets IS NULL OR sets BETWEEN 1 AND 100", name="sets_range"),
        sa.CheckConstraint("reps IS NULL OR reps BETWEEN 1 AND 1000", name="reps_range"),
        sa.CheckConstraint("load_kg IS NULL OR load_kg BETWEEN 0 AND 10000", name="load_range"),
        sa.CheckConstraint("duration_s IS NULL OR duration_s BETWEEN 1 AND 86400", name="duration_range"),
        sa.CheckConstraint("distance_m IS NULL OR distance_m BETWEEN 1 AND 1000000", name="distance_range"),
        sa.CheckConstraint("rest_s IS NULL OR rest_s BETWEEN 0 AND 3600", name="rest_range"),
    )
    op.create_index("ix_workout_exercises_workout", "workout_exercises", ["tenant_id", "workout_id", "position"])

    op.create_table(
        "program_assignments",
        *tenant_columns("program_assignments"),
        _uuid("program_id"),
        _uuid("athlete_membership_id"),
        sa.Column("start_date", sa.Date, nullable=False),
        _uuid("assigned_by_membership_id", nullable=True),
        _ts("created_at", nullable=False, default=True),
        _ts("ended_at"),
        sa.UniqueConstraint("tenant_id", "program_id", "athlete_membership_id", "start_date",
                            name="uq_program_assignments_start"),
        tenant_fk(["program_id"], "programs", "fk_program_assignments_program", ondelete="NO ACTION"),
        tenant_fk(["athlete_membership_id"], "memberships", "fk_program_assignments_athlete"),
    )
    op.create_index("ix_program_assignments_athlete", "program_assignments",
                    ["tenant_id", "athlete_membership_id", "start_date"])
    _author_fk("program_assignments", "assigned_by_membership_id")

    op.create_table(
        "workout_logs",
        *tenant_columns("workout_logs"),
        _uuid("assignment_id"),
        _uuid("workout_id"),
        _uuid("athlete_membership_id"),
        sa.Column("scheduled_on", sa.Date, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("rpe", sa.SmallInteger),
        *_text("note", 2000),
        _uuid("media_id", nullable=True),
        _ts("logged_at", nullable=False, default=True),
        _ts("updated_at", nullable=False, default=True),
        sa.UniqueConstraint("tenant_id", "assignment_id", "workout_id", name="uq_workout_logs_once"),
        tenant_fk(["assignment_id"], "program_assignments", "fk_workout_logs_assignment"),
        # A logged workout keeps its workout: one with logs cannot be deleted from its program.
        tenant_fk(["workout_id"], "program_workouts", "fk_workout_logs_workout", ondelete="NO ACTION"),
        tenant_fk(["athlete_membership_id"], "memberships", "fk_workout_logs_athlete"),
        sa.CheckConstraint("status IN ('done', 'partial', 'skipped')", name="status_valid"),
        sa.CheckConstraint("rpe IS NULL OR rpe BETWEEN 1 AND 10", name="rpe_range"),
    )
    op.create_index("ix_workout_logs_athlete", "workout_logs", ["tenant_id", "athlete_membership_id", "scheduled_on"])
    _author_fk("workout_logs", "media_id", "media_items")

    op.create_table(
        "workout_log_exercises",
        *tenant_columns("workout_log_exercises"),
        _uuid("log_id"),
        _uuid("workout_exercise_id"),
        sa.Column("sets", sa.SmallInteger),
        sa.Column("reps", sa.SmallInteger),
        sa.Column("load_kg", sa.Numeric(7, 2)),
        sa.Column("duration_s", sa.Integer),
        sa.Column("distance_m", sa.Integer),
        sa.Column("note", sa.String(500), nullable=False, server_default=""),
        sa.UniqueConstraint("tenant_id", "log_id", "workout_exercise_id", name="uq_workout_log_exercises_pair"),
        tenant_fk(["log_id"], "workout_logs", "fk_workout_log_exercises_log"),
        tenant_fk(["workout_exercise_id"], "workout_exercises", "fk_workout_log_exercises_exercise"),
        sa.CheckConstraint("sets IS NULL OR sets BETWEEN 0 AND 100", name="sets_range"),
        sa.CheckConstraint("reps IS NULL OR reps BETWEEN 0 AND 1000", name="reps_range"),
        sa.CheckConstraint("load_kg IS NULL OR load_kg BETWEEN 0 AND 10000", name="load_range"),
        sa.CheckConstraint("duration_s IS NULL OR duration_s BETWEEN 0 AND 86400", name="duration_range"),
        sa.CheckConstraint("distance_m IS NULL OR distance_m BETWEEN 0 AND 1000000", name="distance_range"),
    )

    op.create_table(
        "workout_comments",
        *tenant_columns("workout_comments"),
        _uuid("log_id"),
        _uuid("author_membership_id", nullable=True),
        sa.Column("body", sa.Text, nullable=False),
        _ts("created_at", nullable=False, default=True),
        tenant_fk(["log_id"], "workout_logs", "fk_workout_comments_log"),
        sa.CheckConstraint("char_length(btrim(body)) BETWEEN 1 AND 2000", name="body_length"),
    )
    op.create_index("ix_workout_comments_log", "workout_comments", ["tenant_id", "log_id", "created_at"])
    _author_fk("workout_comments", "author_membership_id")

    # --- coach notes and the timeline -------------------------------------------------------------------
    op.create_table(
        "coach_notes",
        *tenant_columns("coach_notes"),
        _uuid("athlete_membership_id"),
        _uuid("author_membership_id", nullable=True),
        sa.Column("body_md", sa.Text, nullable=False),
        sa.Column("body_html", sa.Text, nullable=False),
        _ts("created_at", nullable=False, default=True),
        tenant_fk(["athlete_membership_id"], "memberships", "fk_coach_notes_athlete"),
        sa.CheckConstraint("char_length(btrim(body_md)) BETWEEN 1 AND 10000", name="body_length"),
    )
    _author_fk("coach_notes", "author_membership_id")

    # One row per thing that happened to an athlete (a session, a signed record, a check-in, a logged workout, a
    # video review, a goal reached, a note): written with the thing, read newest first a page at a time.
    op.create_table(
        "timeline_entries",
        *tenant_columns("timeline_entries"),
        _uuid("athlete_membership_id"),
        _ts("occurred_at", nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        _uuid("subject_id"),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("detail", sa.String(500), nullable=False, server_default=""),
        # Private coach notes: shown to the organization's coaches and admins only.
        sa.Column("coaches_only", sa.Boolean, nullable=False, server_default=sa.false()),
        _ts("created_at", nullable=False, default=True),
        sa.UniqueConstraint("tenant_id", "kind", "subject_id", name="uq_timeline_entries_subject"),
        tenant_fk(["athlete_membership_id"], "memberships", "fk_timeline_entries_athlete"),
        sa.CheckConstraint("kind IN ('session', 'record', 'readiness', 'workout', 'review', 'goal', 'milestone',"
                           " 'note', 'program', 'report')", name="kind_valid"),
    )
    op.create_index("ix_timeline_entries_page", "timeline_entries",
                    ["tenant_id", "athlete_membership_id", sa.text("occurred_at DESC"), sa.text("id DESC")])

    # --- reports and digests ---------------------------------------------------------------------------
    op.create_table(
        "progress_reports",
        *tenant_columns("progress_reports"),
        _uuid("athlete_membership_id"),
        _uuid("requested_by_membership_id", nullable=True),
        sa.Column("kind", sa.String(10), nullable=False, server_default="on_demand"),
        sa.Column("period_start", sa.Date, nullable=False),
        sa.Column("period_end", sa.Date, nullable=False),
        sa.Column("status", sa.String(8), nullable=False, server_default="queued"),
        sa.Column("progress", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("stage", sa.String(80), nullable=False, server_default=""),
        sa.Column("html_key", sa.String(512)),
        sa.Column("pdf_key", sa.String(512)),
        sa.Column("pdf_bytes", sa.BigInteger),
        sa.Column("error", sa.String(500)),
        _ts("created_at", nullable=False, default=True),
        _ts("finished_at"),
        _ts("emailed_at"),
        tenant_fk(["athlete_membership_id"], "memberships", "fk_progress_reports_athlete"),
        sa.CheckConstraint("kind IN ('on_demand', 'weekly')", name="kind_valid"),
        sa.CheckConstraint("status IN ('queued', 'running', 'ready', 'failed')", name="status_valid"),
        sa.CheckConstraint("progress BETWEEN 0 AND 100", name="progress_range"),
        sa.CheckConstraint("period_end >= period_start AND period_end - period_start <= 731", name="period_range"),
    )
    op.create_index("ix_progress_reports_athlete", "progress_reports",
                    ["tenant_id", "athlete_membership_id", sa.text("created_at DESC")])
    op.create_index("uq_progress_reports_weekly", "progress_reports",
                    ["tenant_id", "athlete_membership_id", "period_start"], unique=True,
                    postgresql_where=sa.text("kind = 'weekly'"))
    _author_fk("progress_reports", "requested_by_membership_id")

    # A coach's weekly digest, once per coach and week however often the job runs.
    op.create_table(
        "coach_digests",
        *tenant_columns("coach_digests"),
        _uuid("coach_membership_id"),
        sa.Column("week_start", sa.Date, nullable=False),
        _ts("created_at", nullable=False, default=True),
        sa.UniqueConstraint("tenant_id", "coach_membership_id", "week_start", name="uq_coach_digests_week"),
        tenant_fk(["coach_membership_id"], "memberships", "fk_coach_digests_coach"),
    )

    for table in TABLES:
        tenant_table(table)

    # Sweeps find the organizations with work without reading across tenants as the runtime role.
    op.execute("CREATE POLICY sweep_function_read ON habits FOR SELECT TO CURRENT_USER USING (true)")
    op.execute("""
        CREATE FUNCTION habits_reminder_tenants() RETURNS SETOF uuid
        LANGUAGE sql SECURITY DEFINER SET search_path = '' STABLE AS $$
            SELECT DISTINCT tenant_id FROM public.habits WHERE reminder_minute IS NOT NULL AND archived_at IS NULL
        $$
    """)
    op.execute(f"GRANT EXECUTE ON FUNCTION habits_reminder_tenants() TO {APP_ROLE}")
    # (The weekly reports and digests go through every organization: ``organizations`` is not a tenant table.)


def downgrade():
    op.execute("DROP FUNCTION IF EXISTS habits_reminder_tenants()")
    for table in reversed(TABLES):
        op.drop_table(table)
    op.execute("DROP FUNCTION IF EXISTS session_record_children_lock()")
    op.execute("DROP FUNCTION IF EXISTS session_records_lock()")
