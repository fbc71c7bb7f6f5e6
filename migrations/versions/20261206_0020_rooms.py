"""Live session rooms: who was in the call and for how long, the end of a room, recordings and consent.

- A room belongs to a coaching session (one per session: a group session's athletes share it). Its row
  appears the first time someone enters and says whether, and by whom, the room was ended for everyone.
- Attendance: one row per stay in the room (joined, last seen, left), so the booking knows who attended
  and for how long; a stay whose browser vanished is closed at its last heartbeat by a sweep.
- Consent: each participant's agreement to be recorded in that room (withdrawn stops the recording).
- Recordings: the browser uploads the call as it goes into a media item (an open-ended multipart upload);
  the row ties it to the session and tracks the parts received.
- Media items know where they came from (an upload, a recording, an import) and when they are due to be
  deleted (recordings follow the organization's retention unless kept).

Revision ID: 0020_rooms
Revises: 0019_calendars
Created: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

from rls import APP_ROLE, tenant_columns, tenant_fk, tenant_table

revision = "0020_rooms"
down_revision = "0019_calendars"
branch_labels = None
depends_on = None


def _ts(name, nullable=True, default=False):
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable,
                     server_default=sa.func.now() if default else None)


def _uuid(name, nullable=False):
    return sa.Column(name, UUID(as_uuid=True), nullable=nullable)


def upgrade():
    op.create_table(
        "session_rooms",
        *tenant_columns("session_rooms"),
        _uuid("session_id"),
        _ts("opened_at", nullable=False, default=True),  # the first entry
        _ts("ended_at"),
        _uuid("ended_by_membership_id", nullable=True),
        tenant_fk(["session_id"], "coaching_sessions", "fk_session_rooms_session"),
        tenant_fk(["ended_by_membership_id"], "memberships", "fk_session_rooms_ended_by",
                  ondelete="SET NULL (ended_by_membership_id)"),
        sa.UniqueConstraint("tenant_id", "session_id", name="uq_session_rooms_session"),
    )
    tenant_table("session_rooms")

    op.create_table(
        "room_attendance",
        *tenant_columns("room_attendance"),
        _uuid("session_id"),
        _uuid("membership_id"),
        # The page's peer id (one per open room page; a reconnect keeps it): the stay it opened.
        _uuid("peer_id"),
        _ts("joined_at", nullable=False, default=True),
        _ts("last_seen_at", nullable=False, default=True),
        _ts("left_at"),
        tenant_fk(["session_id"], "coaching_sessions", "fk_room_attendance_session"),
        tenant_fk(["membership_id"], "memberships", "fk_room_attendance_member"),
        sa.CheckConstraint("last_seen_at >= joined_at", name="seen_after_join"),
        sa.CheckConstraint("left_at IS NULL OR left_at >= joined_at", name="left_after_join"),
        sa.UniqueConstraint("tenant_id", "session_id", "peer_id", name="uq_room_attendance_peer"),
    )
    op.create_index("ix_room_attendance_session", "room_attendance", ["tenant_id", "session_id", "membership_id"])
    op.create_index("ix_room_attendance_open", "room_attendance", ["last_seen_at"],
                    postgresql_where=sa.text("left_at IS NULL"))
    tenant_table("room_attendance")
    # The sweep (run by the worker for all organizations) asks which organizations have stays whose
    # browser stopped reporting; it then closes them inside each organization under the normal policy.
    op.execute("CREATE POLICY sweep_function_read ON room_attendance FOR SELECT TO CURRENT_USER USING (true)")
    op.execute("""
        CREATE FUNCTION room_attendance_stale_tenants(p_before timestamptz) RETURNS SETOF uuid
        LANGUAGE sql SECURITY DEFINER SET search_path = '' STABLE AS $$
            SELECT DISTINCT tenant_id FROM public.room_attendance WHERE left_at IS NULL AND last_seen_at < p_before
        $$
    """)
    op.execute("REVOKE EXECUTE ON FUNCTION room_attendance_stale_tenants(timestamptz) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION room_attendance_stale_tenants(timestamptz) TO {APP_ROLE}")

    op.create_table(
        "room_consents",
        *tenant_columns("room_consents"),
        _uuid("session_id"),
        _uuid("membership_id"),
        _ts("given_at", nullable=False, default=True),
        _ts("withdrawn_at"),
        tenant_fk(["session_id"], "coaching_sessions", "fk_room_consents_session"),
        tenant_fk(["membership_id"], "memberships", "fk_room_consents_member"),
        sa.UniqueConstraint("tenant_id", "session_id", "membership_id", name="uq_room_consents_member"),
    )
    tenant_table("room_consents")

    op.create_table(
        "room_recordings",
        *tenant_columns("room_recordings"),
        _uuid("session_id"),
        _uuid("media_id"),
        _uuid("started_by_membership_id", nullable=True),
        sa.Column("status", sa.String(12), nullable=False, server_default="recording"),
        _ts("started_at", nullable=False, default=True),
        _ts("stopped_at"),
        # Parts arrive in order (1, 2, ...): the next one expected, and the bytes received so far.
        sa.Column("parts_received", sa.Integer, nullable=False, server_default="0"),
        sa.Column("bytes_received", sa.BigInteger, nullable=False, server_default="0"),
        _ts("last_part_at"),
        sa.Column("failure_reason", sa.String(300)),
        tenant_fk(["session_id"], "coaching_sessions", "fk_room_recordings_session"),
        tenant_fk(["media_id"], "media_items", "fk_room_recordings_media"),
        tenant_fk(["started_by_membership_id"], "memberships", "fk_room_recordings_started_by",
                  ondelete="SET NULL (started_by_membership_id)"),
        sa.CheckConstraint("status IN ('recording', 'finishing', 'finished', 'failed')", name="status_valid"),
        sa.CheckConstraint("parts_received >= 0 AND bytes_received >= 0", name="counts_not_negative"),
        sa.UniqueConstraint("tenant_id", "media_id", name="uq_room_recordings_media"),
    )
    op.create_index("ix_room_recordings_session", "room_recordings", ["tenant_id", "session_id", "started_at"])
    # At most one recording running per room.
    op.create_index("uq_room_recordings_running", "room_recordings", ["tenant_id", "session_id"], unique=True,
                    postgresql_where=sa.text("status = 'recording'"))
    op.create_index("ix_room_recordings_open", "room_recordings", ["last_part_at"],
                    postgresql_where=sa.text("status IN ('recording', 'finishing')"))
    tenant_table("room_recordings")
    op.execute("CREATE POLICY sweep_function_read ON room_recordings FOR SELECT TO CURRENT_USER USING (true)")
    op.execute("""
        CREATE FUNCTION room_recordings_stale_tenants(p_before timestamptz) RETURNS SETOF uuid
        LANGUAGE sql SECURITY DEFINER SET search_path = '' STABLE AS $$
            SELECT DISTINCT tenant_id FROM public.room_recordings
            WHERE status IN ('recording', 'finishing') AND coalesce(last_part_at, started_at) < p_before
        $$
    """)
    op.execute("REVOKE EXECUTE ON FUNCTION room_recordings_stale_tenants(timestamptz) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION room_recordings_stale_tenants(timestamptz) TO {APP_ROLE}")

    # --- media: where an item came from, and when it is due to go ----------------------------------------
    op.add_column("media_items", sa.Column("origin", sa.String(12), nullable=False, server_default="upload"))
    op.create_check_constraint("origin_valid", "media_items", "origin IN ('upload', 'recording', 'import')")
    op.add_column("media_items", _ts("expires_at"))
    op.create_index("ix_media_items_expiry", "media_items", ["expires_at"],
                    postgresql_where=sa.text("expires_at IS NOT NULL AND status <> 'deleting'"))
    op.execute("""
        CREATE FUNCTION media_expired_tenants(p_now timestamptz) RETURNS SETOF uuid
        LANGUAGE sql SECURITY DEFINER SET search_path = '' STABLE AS $$
            SELECT DISTINCT tenant_id FROM public.media_items
            WHERE expires_at IS NOT NULL AND expires_at <= p_now AND status <> 'deleting'
        $$
    """)
    op.execute("REVOKE EXECUTE ON FUNCTION media_expired_tenants(timestamptz) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION media_expired_tenants(timestamptz) TO {APP_ROLE}")

    # --- organizations: how long recordings are kept (NULL: until someone deletes them) ------------------
    op.add_column("organizations", sa.Column("recording_retention_days", sa.Integer, server_default="90"))
    op.create_check_constraint("recording_retention_range", "organizations",
                               "recording_retention_days IS NULL OR recording_retention_days BETWEEN 1 AND 3650")


def downgrade():
    op.drop_constraint("recording_retention_range", "organizations")
    op.drop_column("organizations", "recording_retention_days")
    op.execute("DROP FUNCTION IF EXISTS media_expired_tenants(timestamptz)")
    op.drop_index("ix_media_items_expiry", "media_items")
    op.drop_column("media_items", "expires_at")
    op.drop_constraint("origin_valid", "media_items")
    op.drop_column("media_items", "origin")
    op.execute("DROP FUNCTION IF EXISTS room_recordings_stale_tenants(timestamptz)")
    op.drop_table("room_recordings")
    op.drop_table("room_consents")
    op.execute("DROP FUNCTION IF EXISTS room_attendance_stale_tenants(timestamptz)")
    op.drop_table("room_attendance")
    op.drop_table("session_rooms")
