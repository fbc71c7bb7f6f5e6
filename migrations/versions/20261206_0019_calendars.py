"""Booking that lives in people's calendars.

- Calendar sync: a coach's connections to outside calendars (CalDAV today; the password sealed with the app's
  keys), the calendars chosen from each (which block time, which one receives the bookings), the busy time read
  from them (one row per occurrence, already expanded from RRULE/EXDATE), and the events written there for
  bookings (so an update or a removal finds its event and its ETag).
- Manage links: signed, expiring links in booking emails to view, cancel or reschedule one booking without
  logging in (only a hash of the secret is kept; a link that changed something is spent).
- Bookings keep one calendar UID across reschedules and a SEQUENCE that rises with every change, so an
  invitation replaces the one before it in the athlete's calendar.
- Recurring series (a booking per occurrence, linked to the series) and waitlists on full group sessions.
- A member's choice of a 12- or 24-hour clock.

Revision ID: 0019_calendars
Revises: 0018_insights
Created: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

from rls import APP_ROLE, tenant_columns, tenant_fk, tenant_table

revision = "0019_calendars"
down_revision = "0018_insights"
branch_labels = None
depends_on = None


def _ts(name, nullable=True, default=False):
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable,
                     server_default=sa.func.now() if default else None)


def _uuid(name, nullable=False):
    return sa.Column(name, UUID(as_uuid=True), nullable=nullable)


def upgrade():
    # --- calendar sync ------------------------------------------------------------------------------------
    op.create_table(
        "calendar_connections",
        *tenant_columns("calendar_connections"),
        _uuid("coach_membership_id"),
        sa.Column("provider", sa.String(16), nullable=False, server_default="caldav"),
        sa.Column("label", sa.String(120), nullable=False, server_default=""),
        sa.Column("server_url", sa.String(1000), nullable=False),
        sa.Column("username", sa.String(200), nullable=False, server_default=""),
        # The app password, sealed (coach.platform.sealing): never stored or logged in the clear.
        sa.Column("secret_sealed", sa.Text, nullable=False, server_default=""),
        sa.Column("status", sa.String(12), nullable=False, server_default="pending"),
        sa.Column("last_error", sa.String(500)),
        _ts("last_error_at"),
        sa.Column("failures", sa.SmallInteger, nullable=False, server_default="0"),
        _ts("last_synced_at"),
        _ts("next_sync_at"),
        # When a sync was last asked for (connect, calendars chosen, "Sync now"): the page polls until a sync
        # (or a failure) after it.
        _ts("sync_requested_at"),
        # Events of the chosen calendars that could not be read at the last full sync (and since).
        sa.Column("unreadable_events", sa.Integer, nullable=False, server_default="0"),
        _ts("created_at", nullable=False, default=True),
        _ts("updated_at", nullable=False, default=True),
        tenant_fk(["coach_membership_id"], "memberships", "fk_calendar_connections_coach"),
        sa.CheckConstraint("provider IN ('caldav')", name="provider_known"),
        sa.CheckConstraint("status IN ('pending', 'ok', 'failing', 'disabled')", name="status_valid"),
    )
    op.create_index("ix_calendar_connections_coach", "calendar_connections", ["tenant_id", "coach_membership_id"])
    op.create_index("ix_calendar_connections_due", "calendar_connections", ["next_sync_at"],
                    postgresql_where=sa.text("status <> 'disabled'"))
    tenant_table("calendar_connections")
    # The sync sweep (run by the worker for all organizations) asks which organizations have a connection due;
    # it then acts inside each under the normal policy. The function returns organization ids only.
    op.execute("CREATE POLICY sweep_function_read ON calendar_connections FOR SELECT TO CURRENT_USER USING (true)")
    op.execute("""
        CREATE FUNCTION calendar_connections_due_tenants(p_now timestamptz) RETURNS SETOF uuid
        LANGUAGE sql SECURITY DEFINER SET search_path = '' STABLE AS $$
            SELECT DISTINCT tenant_id FROM public.calendar_connections
            WHERE status <> 'disabled' AND next_sync_at <= p_now
        $$
    """)
    op.execute("REVOKE EXECUTE ON FUNCTION calendar_connections_due_tenants(timestamptz) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION calendar_connections_due_tenants(timestamptz) TO {APP_ROLE}")

    op.create_table(
        "calendar_sources",
        *tenant_columns("calendar_sources"),
        _uuid("connection_id"),
        sa.Column("url", sa.String(1000), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False, server_default=""),
        # Busy time in this calendar blocks the coach's slots.
        sa.Column("blocks_time", sa.Boolean, nullable=False, server_default=sa.false()),
        # Confirmed bookings are written into this calendar (at most one per connection).
        sa.Column("receives_bookings", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("sync_token", sa.Text),
        sa.Column("ctag", sa.String(500)),
        _ts("last_synced_at"),
        _ts("created_at", nullable=False, default=True),
        tenant_fk(["connection_id"], "calendar_connections", "fk_calendar_sources_connection"),
        sa.UniqueConstraint("tenant_id", "connection_id", "url", name="uq_calendar_sources_url"),
    )
    op.create_index("uq_calendar_sources_receiver", "calendar_sources", ["tenant_id", "connection_id"],
                    unique=True, postgresql_where=sa.text("receives_bookings"))
    tenant_table("calendar_sources")

    # One row per busy occurrence (a recurring event is expanded over the booking horizon). Only times are kept:
    # what the coach's appointment is (its summary, attendees) never enters Coach.
    op.create_table(
        "external_busy",
        *tenant_columns("external_busy"),
        _uuid("source_id"),
        _uuid("coach_membership_id"),
        sa.Column("href", sa.String(1000), nullable=False),
        sa.Column("etag", sa.String(500), nullable=False, server_default=""),
        sa.Column("uid", sa.String(500), nullable=False, server_default=""),
        _ts("starts_at", nullable=False),
        _ts("ends_at", nullable=False),
        tenant_fk(["source_id"], "calendar_sources", "fk_external_busy_source"),
        tenant_fk(["coach_membership_id"], "memberships", "fk_external_busy_coach"),
        sa.CheckConstraint("ends_at > starts_at", name="range_valid"),
    )
    op.create_index("ix_external_busy_coach_time", "external_busy",
                    ["tenant_id", "coach_membership_id", "starts_at", "ends_at"])
    op.create_index("ix_external_busy_source_href", "external_busy", ["tenant_id", "source_id", "href"])
    tenant_table("external_busy")

    # The events Coach wrote for bookings: where each is (href, etag) in which calendar, by the booking's UID.
    op.create_table(
        "calendar_pushes",
        *tenant_columns("calendar_pushes"),
        _uuid("source_id"),
        sa.Column("uid", sa.String(200), nullable=False),
        _uuid("booking_id"),
        sa.Column("href", sa.String(1000)),
        sa.Column("etag", sa.String(500)),
        sa.Column("sequence", sa.Integer, nullable=False, server_default="0"),
        sa.Column("state", sa.String(12), nullable=False, server_default="pending"),
        sa.Column("last_error", sa.String(500)),
        sa.Column("attempts", sa.SmallInteger, nullable=False, server_default="0"),
        _ts("pushed_at"),
        # When Coach last wrote its booking back over an edit made in the calendar app (or a deletion there).
        _ts("overwritten_at"),
        _ts("updated_at", nullable=False, default=True),
        tenant_fk(["source_id"], "calendar_sources", "fk_calendar_pushes_source"),
        tenant_fk(["booking_id"], "bookings", "fk_calendar_pushes_booking"),
        sa.UniqueConstraint("tenant_id", "source_id", "uid", name="uq_calendar_pushes_uid"),
        sa.CheckConstraint("state IN ('pending', 'present', 'removed', 'failed')", name="state_valid"),
    )
    op.create_index("ix_calendar_pushes_booking", "calendar_pushes", ["tenant_id", "booking_id"])
    tenant_table("calendar_pushes")
    # The push sweep (all organizations) asks which organizations have an event waiting to be written or removed:
    # a pending one whose job was lost, or a failed one whose back-off (1 minute doubling to an hour) has passed.
    op.execute("CREATE POLICY sweep_function_read ON calendar_pushes FOR SELECT TO CURRENT_USER USING (true)")
    op.execute("""
        CREATE FUNCTION calendar_pushes_due_tenants(p_now timestamptz) RETURNS SETOF uuid
        LANGUAGE sql SECURITY DEFINER SET search_path = '' STABLE AS $$
            SELECT DISTINCT tenant_id FROM public.calendar_pushes
            WHERE (state = 'pending' AND updated_at <= p_now - interval '2 minutes')
               OR (state = 'failed'
                   AND updated_at + least(interval '1 minute' * power(2, attempts), interval '1 hour') <= p_now)
        $$
    """)
    op.execute("REVOKE EXECUTE ON FUNCTION calendar_pushes_due_tenants(timestamptz) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION calendar_pushes_due_tenants(timestamptz) TO {APP_ROLE}")

    # --- bookings: calendar identity, series, waitlists -----------------------------------------------------
    # NULL: the booking's own id makes its UID; a rescheduled booking inherits the UID of the one it replaced.
    op.add_column("bookings", sa.Column("calendar_uid", sa.String(200)))
    op.add_column("bookings", sa.Column("calendar_sequence", sa.Integer, nullable=False, server_default="0"))

    op.create_table(
        "booking_series",
        *tenant_columns("booking_series"),
        _uuid("offering_id"),
        _uuid("coach_membership_id"),
        _uuid("athlete_membership_id"),
        _uuid("created_by_membership_id", nullable=True),
        sa.Column("interval_weeks", sa.SmallInteger, nullable=False, server_default="1"),
        sa.Column("occurrences", sa.SmallInteger, nullable=False),
        sa.Column("until_date", sa.Date),
        # The first occurrence's wall-clock start in the zone it was booked in (later ones keep that time of day).
        _ts("first_starts_at", nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("status", sa.String(12), nullable=False, server_default="active"),
        _ts("created_at", nullable=False, default=True),
        tenant_fk(["offering_id"], "offerings", "fk_booking_series_offering"),
        tenant_fk(["coach_membership_id"], "memberships", "fk_booking_series_coach"),
        tenant_fk(["athlete_membership_id"], "memberships", "fk_booking_series_athlete"),
        sa.CheckConstraint("interval_weeks BETWEEN 1 AND 12", name="interval_range"),
        sa.CheckConstraint("occurrences BETWEEN 1 AND 500", name="occurrences_range"),
        sa.CheckConstraint("status IN ('active', 'cancelled', 'ended')", name="status_valid"),
    )
    op.execute("ALTER TABLE booking_series ADD CONSTRAINT fk_booking_series_created_by FOREIGN KEY "
               "(tenant_id, created_by_membership_id) REFERENCES memberships (tenant_id, id) "
               "ON DELETE SET NULL (created_by_membership_id)")
    op.create_index("ix_booking_series_athlete", "booking_series", ["tenant_id", "athlete_membership_id"])
    tenant_table("booking_series")
    op.add_column("bookings", sa.Column("series_id", UUID(as_uuid=True)))
    op.add_column("bookings", sa.Column("series_index", sa.SmallInteger))
    op.execute("ALTER TABLE bookings ADD CONSTRAINT fk_bookings_series FOREIGN KEY (tenant_id, series_id) "
               "REFERENCES booking_series (tenant_id, id) ON DELETE SET NULL (series_id)")
    op.create_index("ix_bookings_series", "bookings", ["tenant_id", "series_id", "starts_at"],
                    postgresql_where=sa.text("series_id IS NOT NULL"))

    # Full group sessions take a waitlist: "auto" gives a freed seat to the first waiting, "offer" offers it for
    # waitlist_offer_minutes, "off" takes none.
    op.add_column("offerings", sa.Column("waitlist_mode", sa.String(8), nullable=False, server_default="auto"))
    op.add_column("offerings", sa.Column("waitlist_offer_minutes", sa.SmallInteger, nullable=False,
                                         server_default="120"))
    op.create_check_constraint("waitlist_mode_valid", "offerings", "waitlist_mode IN ('off', 'auto', 'offer')")
    op.create_check_constraint("waitlist_offer_range", "offerings", "waitlist_offer_minutes BETWEEN 5 AND 10080")

    op.create_table(
        "waitlist_entries",
        *tenant_columns("waitlist_entries"),
        _uuid("session_id"),
        _uuid("offering_id"),
        _uuid("athlete_membership_id"),
        _uuid("added_by_membership_id", nullable=True),
        sa.Column("status", sa.String(12), nullable=False, server_default="waiting"),
        _ts("offered_until"),
        _uuid("booking_id", nullable=True),
        _ts("created_at", nullable=False, default=True),
        _ts("updated_at", nullable=False, default=True),
        tenant_fk(["session_id"], "coaching_sessions", "fk_waitlist_entries_session"),
        tenant_fk(["offering_id"], "offerings", "fk_waitlist_entries_offering"),
        tenant_fk(["athlete_membership_id"], "memberships", "fk_waitlist_entries_athlete"),
        sa.CheckConstraint("status IN ('waiting', 'offered', 'booked', 'left', 'expired', 'closed')",
                           name="status_valid"),
    )
    op.execute("ALTER TABLE waitlist_entries ADD CONSTRAINT fk_waitlist_entries_added_by FOREIGN KEY "
               "(tenant_id, added_by_membership_id) REFERENCES memberships (tenant_id, id) "
               "ON DELETE SET NULL (added_by_membership_id)")
    op.execute("ALTER TABLE waitlist_entries ADD CONSTRAINT fk_waitlist_entries_booking FOREIGN KEY "
               "(tenant_id, booking_id) REFERENCES bookings (tenant_id, id) ON DELETE SET NULL (booking_id)")
    # One open place in the line per athlete and session.
    op.create_index("uq_waitlist_entries_open", "waitlist_entries", ["tenant_id", "session_id",
                                                                     "athlete_membership_id"],
                    unique=True, postgresql_where=sa.text("status IN ('waiting', 'offered')"))
    op.create_index("ix_waitlist_entries_line", "waitlist_entries", ["tenant_id", "session_id", "created_at"])
    tenant_table("waitlist_entries")
    # The waitlist sweep runs for every organization with an open line: a narrow definer function names them
    # (the runtime role reads no other organization's rows), like the other sweeps' *_due_tenants.
    op.execute("CREATE POLICY sweep_function_read ON waitlist_entries FOR SELECT TO CURRENT_USER USING (true)")
    op.execute("""
        CREATE FUNCTION waitlist_due_tenants() RETURNS SETOF uuid
        LANGUAGE sql SECURITY DEFINER SET search_path = '' STABLE AS $$
            SELECT DISTINCT tenant_id FROM public.waitlist_entries WHERE status IN ('waiting', 'offered')
        $$
    """)
    op.execute("REVOKE EXECUTE ON FUNCTION waitlist_due_tenants() FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION waitlist_due_tenants() TO {APP_ROLE}")

    # --- manage links ----------------------------------------------------------------------------------------
    op.create_table(
        "booking_links",
        *tenant_columns("booking_links"),
        _uuid("booking_id"),
        sa.Column("action", sa.String(12), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        _ts("expires_at", nullable=False),
        _ts("used_at"),
        _ts("created_at", nullable=False, default=True),
        tenant_fk(["booking_id"], "bookings", "fk_booking_links_booking"),
        sa.UniqueConstraint("token_hash", name="uq_booking_links_token_hash"),
        sa.CheckConstraint("action IN ('view', 'cancel', 'reschedule')", name="action_valid"),
    )
    op.create_index("ix_booking_links_booking", "booking_links", ["tenant_id", "booking_id"])
    tenant_table("booking_links")

    # --- people ----------------------------------------------------------------------------------------------
    op.add_column("users", sa.Column("hour_cycle", sa.SmallInteger, nullable=False, server_default="24"))
    op.create_check_constraint("hour_cycle_valid", "users", "hour_cycle IN (12, 24)")


def downgrade():
    op.execute("DROP FUNCTION IF EXISTS calendar_connections_due_tenants(timestamptz)")
    op.drop_constraint("hour_cycle_valid", "users")
    op.drop_column("users", "hour_cycle")
    op.drop_table("booking_links")
    op.execute("DROP FUNCTION IF EXISTS waitlist_due_tenants()")
    op.drop_table("waitlist_entries")
    op.drop_constraint("waitlist_offer_range", "offerings")
    op.drop_constraint("waitlist_mode_valid", "offerings")
    op.drop_column("offerings", "waitlist_offer_minutes")
    op.drop_column("offerings", "waitlist_mode")
    op.drop_index("ix_bookings_series", "bookings")
    op.drop_constraint("fk_bookings_series", "bookings")
    op.drop_column("bookings", "series_index")
    op.drop_column("bookings", "series_id")
    op.drop_table("booking_series")
    op.drop_column("bookings", "calendar_sequence")
    op.drop_column("bookings", "calendar_uid")
    op.execute("DROP FUNCTION IF EXISTS calendar_pushes_due_tenants(timestamptz)")
    op.drop_table("calendar_pushes")
    op.drop_table("external_busy")
    op.drop_table("calendar_sources")
    op.drop_table("calendar_connections")
