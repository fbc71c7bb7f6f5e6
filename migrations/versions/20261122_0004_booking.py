"""Booking: coach calendars, offerings, availability, time off, sessions, bookings, calendar feeds.

No double booking is the database's job: ``coaching_sessions`` carries an
exclusion constraint (btree_gist) on the coach's busy range, buffers included,
for every session that still holds time (``live_seats > 0``), and a CHECK keeps
``live_seats`` within the capacity, so a group session never takes one seat more.

Revision ID: 0004_booking
Revises: 0003_idempotency_sweep
Created: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

from rls import tenant_table

revision = "0004_booking"
down_revision = "0003_idempotency_sweep"
branch_labels = None
depends_on = None

LIVE = "('requested', 'confirmed', 'active')"


def _id_columns():
    return [
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("organizations.id", ondelete="CASCADE"),
                  nullable=False),
    ]


def _membership_fk(table: str, column: str, name: str):
    return sa.ForeignKeyConstraint(["tenant_id", column], ["memberships.tenant_id", "memberships.id"],
                                   name=name, ondelete="CASCADE")


def _minutes_checks(prefix: str):
    return [
        sa.CheckConstraint("start_minute BETWEEN 0 AND 1439", name=f"{prefix}_start_in_day"),
        sa.CheckConstraint("end_minute BETWEEN 1 AND 1440", name=f"{prefix}_end_in_day"),
        sa.CheckConstraint("start_minute < end_minute", name=f"{prefix}_start_before_end"),
    ]


def upgrade():
    # Trusted since PostgreSQL 13: the database owner may create it.
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")

    op.create_table(
        "coach_calendars",
        *_id_columns(),
        sa.Column("coach_membership_id", UUID(as_uuid=True), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("tenant_id", "id", name="uq_coach_calendars_tenant_id_id"),
        sa.UniqueConstraint("tenant_id", "coach_membership_id", name="uq_coach_calendars_coach"),
        _membership_fk("coach_calendars", "coach_membership_id", "fk_coach_calendars_coach"),
    )
    tenant_table("coach_calendars")

    op.create_table(
        "offerings",
        *_id_columns(),
        sa.Column("coach_membership_id", UUID(as_uuid=True), nullable=False),
        sa.Column("title", sa.String(120), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("duration_minutes", sa.SmallInteger, nullable=False),
        sa.Column("price_minor", sa.Integer, nullable=False, server_default="0"),
        sa.Column("currency", sa.String(3), nullable=False, server_default="EUR"),
        sa.Column("location", sa.String(200), nullable=False, server_default=""),
        sa.Column("meeting_url", sa.String(500), nullable=False, server_default=""),
        sa.Column("capacity", sa.SmallInteger, nullable=False, server_default="1"),
        sa.Column("auto_confirm", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("buffer_before_minutes", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("buffer_after_minutes", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("min_notice_minutes", sa.Integer, nullable=False, server_default="120"),
        sa.Column("max_per_day", sa.SmallInteger),
        sa.Column("horizon_days", sa.SmallInteger, nullable=False, server_default="60"),
        sa.Column("cancellation_window_hours", sa.SmallInteger, nullable=False, server_default="24"),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("tenant_id", "id", name="uq_offerings_tenant_id_id"),
        _membership_fk("offerings", "coach_membership_id", "fk_offerings_coach"),
        sa.CheckConstraint("char_length(btrim(title)) BETWEEN 1 AND 120", name="title_length"),
        sa.CheckConstraint("char_length(description) <= 2000", name="description_length"),
        sa.CheckConstraint("duration_minutes BETWEEN 5 AND 720", name="duration_range"),
        sa.CheckConstraint("price_minor BETWEEN 0 AND 100000000", name="price_range"),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_format"),
        sa.CheckConstraint("capacity BETWEEN 1 AND 500", name="capacity_range"),
        sa.CheckConstraint("buffer_before_minutes BETWEEN 0 AND 240 AND buffer_after_minutes BETWEEN 0 AND 240",
                           name="buffers_range"),
        sa.CheckConstraint("min_notice_minutes BETWEEN 0 AND 43200", name="notice_range"),
        sa.CheckConstraint("max_per_day IS NULL OR max_per_day BETWEEN 1 AND 100", name="max_per_day_range"),
        sa.CheckConstraint("horizon_days BETWEEN 1 AND 730", name="horizon_range"),
        sa.CheckConstraint("cancellation_window_hours BETWEEN 0 AND 720", name="cancellation_window_range"),
    )
    op.create_index("ix_offerings_coach", "offerings", ["tenant_id", "coach_membership_id"])
    tenant_table("offerings")

    op.create_table(
        "availability_rules",
        *_id_columns(),
        sa.Column("coach_membership_id", UUID(as_uuid=True), nullable=False),
        sa.Column("weekday", sa.SmallInteger, nullable=False),
        sa.Column("start_minute", sa.SmallInteger, nullable=False),
        sa.Column("end_minute", sa.SmallInteger, nullable=False),
        sa.UniqueConstraint("tenant_id", "id", name="uq_availability_rules_tenant_id_id"),
        _membership_fk("availability_rules", "coach_membership_id", "fk_availability_rules_coach"),
        sa.CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday_range"),
        *_minutes_checks("rule"),
    )
    op.execute("""
        ALTER TABLE availability_rules ADD CONSTRAINT availability_rules_no_overlap
        EXCLUDE USING gist (tenant_id WITH =, coach_membership_id WITH =, weekday WITH =,
                            int4range(start_minute, end_minute) WITH &&)
    """)
    tenant_table("availability_rules")

    op.create_table(
        "availability_overrides",
        *_id_columns(),
        sa.Column("coach_membership_id", UUID(as_uuid=True), nullable=False),
        sa.Column("on_date", sa.Date, nullable=False),
        sa.Column("start_minute", sa.SmallInteger),
        sa.Column("end_minute", sa.SmallInteger),
        sa.UniqueConstraint("tenant_id", "id", name="uq_availability_overrides_tenant_id_id"),
        _membership_fk("availability_overrides", "coach_membership_id", "fk_availability_overrides_coach"),
        sa.CheckConstraint("(start_minute IS NULL) = (end_minute IS NULL)", name="closed_or_interval"),
        sa.CheckConstraint("start_minute IS NULL OR (start_minute BETWEEN 0 AND 1439 AND end_minute "
                           "BETWEEN 1 AND 1440 AND start_minute < end_minute)", name="interval_valid"),
    )
    # A closed day covers the whole day, so it excludes any interval on that date, and vice versa.
    op.execute("""
        ALTER TABLE availability_overrides ADD CONSTRAINT availability_overrides_no_overlap
        EXCLUDE USING gist (tenant_id WITH =, coach_membership_id WITH =, on_date WITH =,
                            int4range(coalesce(start_minute, 0), coalesce(end_minute, 1440)) WITH &&)
    """)
    tenant_table("availability_overrides")

    op.create_table(
        "time_off",
        *_id_columns(),
        sa.Column("coach_membership_id", UUID(as_uuid=True), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False, server_default=""),
        sa.UniqueConstraint("tenant_id", "id", name="uq_time_off_tenant_id_id"),
        _membership_fk("time_off", "coach_membership_id", "fk_time_off_coach"),
        sa.CheckConstraint("starts_at < ends_at", name="starts_before_ends"),
    )
    op.create_index("ix_time_off_coach", "time_off", ["tenant_id", "coach_membership_id", "ends_at"])
    tenant_table("time_off")

    op.create_table(
        "coaching_sessions",
        *_id_columns(),
        sa.Column("coach_membership_id", UUID(as_uuid=True), nullable=False),
        sa.Column("offering_id", UUID(as_uuid=True), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("busy_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("busy_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("capacity", sa.SmallInteger, nullable=False),
        sa.Column("live_seats", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("tenant_id", "id", name="uq_coaching_sessions_tenant_id_id"),
        _membership_fk("coaching_sessions", "coach_membership_id", "fk_coaching_sessions_coach"),
        sa.ForeignKeyConstraint(["tenant_id", "offering_id"], ["offerings.tenant_id", "offerings.id"],
                                name="fk_coaching_sessions_offering", ondelete="CASCADE"),
        sa.CheckConstraint("starts_at < ends_at", name="starts_before_ends"),
        sa.CheckConstraint("busy_from <= starts_at AND busy_until >= ends_at", name="busy_covers_session"),
        sa.CheckConstraint("live_seats BETWEEN 0 AND capacity", name="seats_within_capacity"),
    )
    op.execute("""
        ALTER TABLE coaching_sessions ADD CONSTRAINT coaching_sessions_no_double_booking
        EXCLUDE USING gist (tenant_id WITH =, coach_membership_id WITH =,
                            tstzrange(busy_from, busy_until, '[)') WITH &&)
        WHERE (live_seats > 0)
    """)
    op.create_index("ix_coaching_sessions_open", "coaching_sessions",
                    ["tenant_id", "offering_id", "starts_at"], postgresql_where=sa.text("live_seats > 0"))
    tenant_table("coaching_sessions")

    op.create_table(
        "bookings",
        *_id_columns(),
        sa.Column("session_id", UUID(as_uuid=True), nullable=False),
        sa.Column("offering_id", UUID(as_uuid=True), nullable=False),
        sa.Column("coach_membership_id", UUID(as_uuid=True), nullable=False),
        sa.Column("athlete_membership_id", UUID(as_uuid=True), nullable=False),
        sa.Column("booked_by_membership_id", UUID(as_uuid=True)),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("late_cancellation", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("cancelled_by_membership_id", UUID(as_uuid=True)),
        sa.Column("rescheduled_from_id", UUID(as_uuid=True)),
        sa.Column("confirmed_at", sa.DateTime(timezone=True)),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("reminder_24h_sent_at", sa.DateTime(timezone=True)),
        sa.Column("reminder_1h_sent_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("tenant_id", "id", name="uq_bookings_tenant_id_id"),
        sa.ForeignKeyConstraint(["tenant_id", "session_id"], ["coaching_sessions.tenant_id", "coaching_sessions.id"],
                                name="fk_bookings_session", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id", "offering_id"], ["offerings.tenant_id", "offerings.id"],
                                name="fk_bookings_offering", ondelete="CASCADE"),
        _membership_fk("bookings", "coach_membership_id", "fk_bookings_coach"),
        _membership_fk("bookings", "athlete_membership_id", "fk_bookings_athlete"),
        sa.ForeignKeyConstraint(["tenant_id", "booked_by_membership_id"], ["memberships.tenant_id", "memberships.id"],
                                name="fk_bookings_booked_by", ondelete="SET NULL (booked_by_membership_id)"),
        sa.ForeignKeyConstraint(["tenant_id", "cancelled_by_membership_id"],
                                ["memberships.tenant_id", "memberships.id"], name="fk_bookings_cancelled_by",
                                ondelete="SET NULL (cancelled_by_membership_id)"),
        sa.ForeignKeyConstraint(["tenant_id", "rescheduled_from_id"], ["bookings.tenant_id", "bookings.id"],
                                name="fk_bookings_rescheduled_from", ondelete="SET NULL (rescheduled_from_id)"),
        sa.CheckConstraint("status IN ('requested', 'confirmed', 'active', 'declined', 'expired', 'cancelled', "
                           "'ended', 'no_show')", name="status_valid"),
        sa.CheckConstraint("starts_at < ends_at", name="starts_before_ends"),
        sa.CheckConstraint("char_length(note) <= 2000", name="note_length"),
        sa.CheckConstraint("coach_membership_id <> athlete_membership_id", name="not_own_coach"),
    )
    # One live place per athlete per session.
    op.create_index("uq_bookings_live_athlete", "bookings", ["tenant_id", "session_id", "athlete_membership_id"],
                    unique=True, postgresql_where=sa.text(f"status IN {LIVE}"))
    op.create_index("ix_bookings_coach_starts", "bookings", ["tenant_id", "coach_membership_id", "starts_at"])
    op.create_index("ix_bookings_athlete_starts", "bookings", ["tenant_id", "athlete_membership_id", "starts_at"])
    # The sweep's look-ups: what is due, across organizations.
    op.create_index("ix_bookings_due", "bookings", ["starts_at"], postgresql_where=sa.text(f"status IN {LIVE}"))
    op.create_index("ix_bookings_requested_expiry", "bookings", ["expires_at"],
                    postgresql_where=sa.text("status = 'requested'"))
    tenant_table("bookings")

    op.create_table(
        "calendar_feeds",
        *_id_columns(),
        sa.Column("membership_id", UUID(as_uuid=True), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("tenant_id", "id", name="uq_calendar_feeds_tenant_id_id"),
        sa.UniqueConstraint("tenant_id", "membership_id", name="uq_calendar_feeds_membership"),
        sa.UniqueConstraint("token_hash", name="uq_calendar_feeds_token_hash"),
        _membership_fk("calendar_feeds", "membership_id", "fk_calendar_feeds_membership"),
    )
    tenant_table("calendar_feeds")

    # The sweep runs for no organization: it asks this function which organizations have bookings due
    # for a transition or reminder, then acts inside each organization under its normal policy.
    op.execute("CREATE POLICY sweep_function_read ON bookings FOR SELECT TO CURRENT_USER USING (true)")
    op.execute("""
        CREATE FUNCTION bookings_due_tenants(p_now timestamptz, p_grace interval) RETURNS SETOF uuid
        LANGUAGE sql SECURITY DEFINER SET search_path = '' STABLE AS $$
            SELECT DISTINCT tenant_id FROM public.bookings
            WHERE (status = 'requested' AND expires_at <= p_now)
               OR (status = 'confirmed' AND starts_at <= p_now)
               OR (status = 'active' AND ends_at + p_grace <= p_now)
               OR (status = 'confirmed' AND reminder_24h_sent_at IS NULL
                   AND confirmed_at <= starts_at - interval '24 hours'
                   AND p_now >= starts_at - interval '24 hours' AND p_now < starts_at - interval '1 hour')
               OR (status = 'confirmed' AND reminder_1h_sent_at IS NULL
                   AND confirmed_at <= starts_at - interval '1 hour'
                   AND p_now >= starts_at - interval '1 hour' AND p_now < starts_at)
        $$
    """)


def downgrade():
    op.execute("DROP FUNCTION bookings_due_tenants(timestamptz, interval)")
    for table in ("calendar_feeds", "bookings", "coaching_sessions", "time_off", "availability_overrides",
                  "availability_rules", "offerings", "coach_calendars"):
        op.drop_table(table)
