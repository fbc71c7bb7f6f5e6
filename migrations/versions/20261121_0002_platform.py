"""Platform: transactional outbox, processed events, idempotency keys, append-only audit log.

Revision ID: 0002_platform
Revises: 0001_foundation
Created: 2026-11-21
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import INET, JSONB, UUID

from rls import APP_ROLE, allow_platform_inserts, tenant_table

revision = "0002_platform"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade():
    # --- outbox -------------------------------------------------------------------------------
    op.create_table(
        "outbox_events",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        # NULL: a platform event that belongs to no organization (e.g. a password-reset email).
        sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("organizations.id", ondelete="CASCADE",
                                                                 name="fk_outbox_events_tenant_id_organizations")),
        sa.Column("topic", sa.String(100), nullable=False),
        sa.Column("payload", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("request_id", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
        sa.Column("dead_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("tenant_id", "id", name="uq_outbox_events_tenant_id_id"),
    )
    op.create_index("ix_outbox_events_ready", "outbox_events", ["available_at"],
                    postgresql_where=sa.text("dead_at IS NULL"))
    op.create_index("ix_outbox_events_dead", "outbox_events", ["tenant_id", "dead_at"],
                    postgresql_where=sa.text("dead_at IS NOT NULL"))
    tenant_table("outbox_events")
    allow_platform_inserts("outbox_events")
    # Wake the relays once per inserting statement.
    op.execute("""
        CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS $$
        BEGIN PERFORM pg_notify('outbox_events', ''); RETURN NULL; END $$
    """)
    op.execute("CREATE TRIGGER outbox_events_notify AFTER INSERT ON outbox_events "
               "FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()")
    # The relay works across organizations, so it cannot go through the tenant policy. Instead of a
    # role that bypasses RLS, three narrow SECURITY DEFINER functions (owned by the schema owner, for
    # whom a policy opens this one table) are all the runtime role may call.
    op.execute("CREATE POLICY relay_functions ON outbox_events TO CURRENT_USER USING (true) WITH CHECK (true)")
    op.execute("""
        CREATE FUNCTION outbox_claim(p_limit integer)
        RETURNS SETOF public.outbox_events LANGUAGE sql SECURITY DEFINER SET search_path = '' AS $$
            SELECT * FROM public.outbox_events
            WHERE dead_at IS NULL AND available_at <= now()
            ORDER BY available_at, created_at
            LIMIT p_limit
            FOR UPDATE SKIP LOCKED
        $$
    """)
    op.execute("""
        CREATE FUNCTION outbox_ack(p_ids uuid[]) RETURNS integer
        LANGUAGE sql SECURITY DEFINER SET search_path = '' AS $$
            WITH gone AS (DELETE FROM public.outbox_events WHERE id = ANY(p_ids) RETURNING 1)
            SELECT count(*)::integer FROM gone
        $$
    """)
    op.execute("""
        CREATE FUNCTION outbox_fail(p_id uuid, p_error text, p_max_attempts integer) RETURNS void
        LANGUAGE sql SECURITY DEFINER SET search_path = '' AS $$
            UPDATE public.outbox_events
            SET attempts = attempts + 1,
                last_error = left(p_error, 2000),
                available_at = now() + least(interval '1 second' * power(2, attempts), interval '10 minutes'),
                dead_at = CASE WHEN attempts + 1 >= p_max_attempts THEN now() END
            WHERE id = p_id
        $$
    """)
    op.execute("""
        CREATE FUNCTION outbox_stats(OUT pending bigint, OUT dead bigint, OUT oldest_age_seconds double precision)
        LANGUAGE sql SECURITY DEFINER SET search_path = '' STABLE AS $$
            SELECT count(*) FILTER (WHERE dead_at IS NULL),
                   count(*) FILTER (WHERE dead_at IS NOT NULL),
                   coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE dead_at IS NULL)), 0)
            FROM public.outbox_events
        $$
    """)
    for fn in ("outbox_claim(integer)", "outbox_ack(uuid[])", "outbox_fail(uuid, text, integer)", "outbox_stats()"):
        op.execute(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {fn} TO {APP_ROLE}")

    # --- processed events (idempotent consumers) -----------------------------------------------
    op.create_table(
        "processed_events",
        sa.Column("event_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("organizations.id", ondelete="CASCADE",
                                                                 name="fk_processed_events_tenant_id_organizations")),
        sa.Column("topic", sa.String(100), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("tenant_id", "event_id", name="uq_processed_events_tenant_id_id"),
    )
    op.create_index("ix_processed_events_processed_at", "processed_events", ["processed_at"])
    tenant_table("processed_events")
    allow_platform_inserts("processed_events")
    op.execute("CREATE POLICY sweep_function ON processed_events FOR ALL TO CURRENT_USER USING (true)")
    op.execute("""
        CREATE FUNCTION processed_events_sweep(p_older_than interval) RETURNS integer
        LANGUAGE sql SECURITY DEFINER SET search_path = '' AS $$
            WITH gone AS (DELETE FROM public.processed_events WHERE processed_at < now() - p_older_than RETURNING 1)
            SELECT count(*)::integer FROM gone
        $$
    """)
    op.execute("REVOKE ALL ON FUNCTION processed_events_sweep(interval) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION processed_events_sweep(interval) TO {APP_ROLE}")

    # --- idempotency keys ----------------------------------------------------------------------
    op.create_table(
        "idempotency_keys",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("organizations.id", ondelete="CASCADE",
                                                                 name="fk_idempotency_keys_tenant_id_organizations")),
        sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE",
                                                               name="fk_idempotency_keys_user_id_users"),
                  nullable=False),
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("response_headers", JSONB),
        sa.Column("response_body", sa.LargeBinary),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("tenant_id", "id", name="uq_idempotency_keys_tenant_id_id"),
    )
    op.execute("CREATE UNIQUE INDEX uq_idempotency_keys_scope ON idempotency_keys "
               "(user_id, coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid), key)")
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO {APP_ROLE}")
    op.execute("ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY")
    # A key belongs to one user, in one organization (or none, for account-level actions).
    op.execute("""
        CREATE POLICY tenant_isolation ON idempotency_keys
        USING (user_id = NULLIF(current_setting('app.user_id', true), '')::uuid
               AND tenant_id IS NOT DISTINCT FROM NULLIF(current_setting('app.tenant_id', true), '')::uuid)
        WITH CHECK (user_id = NULLIF(current_setting('app.user_id', true), '')::uuid
               AND tenant_id IS NOT DISTINCT FROM NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    """)
    op.execute("""
        CREATE FUNCTION idempotency_keys_sweep(p_older_than interval) RETURNS integer
        LANGUAGE sql SECURITY DEFINER SET search_path = '' AS $$
            WITH gone AS (DELETE FROM public.idempotency_keys WHERE created_at < now() - p_older_than RETURNING 1)
            SELECT count(*)::integer FROM gone
        $$
    """)
    op.execute("CREATE POLICY sweep_function ON idempotency_keys FOR DELETE TO CURRENT_USER USING (true)")
    op.execute("REVOKE ALL ON FUNCTION idempotency_keys_sweep(interval) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION idempotency_keys_sweep(interval) TO {APP_ROLE}")

    # --- audit log (append-only) ----------------------------------------------------------------
    op.create_table(
        "audit_events",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        # No foreign key: the audit trail outlives the rows it talks about.
        sa.Column("tenant_id", UUID(as_uuid=True)),
        sa.Column("actor_user_id", UUID(as_uuid=True)),
        sa.Column("actor_label", sa.String(254)),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target_type", sa.String(64)),
        sa.Column("target_id", sa.String(64)),
        sa.Column("details", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("ip", INET),
        sa.Column("request_id", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("tenant_id", "id", name="uq_audit_events_tenant_id_id"),
    )
    op.create_index("ix_audit_events_page", "audit_events", ["tenant_id", sa.text("created_at DESC"), sa.text("id DESC")])
    op.create_index("ix_audit_events_actor", "audit_events", ["tenant_id", "actor_user_id", sa.text("created_at DESC")])
    op.create_index("ix_audit_events_action", "audit_events", ["tenant_id", "action", sa.text("created_at DESC")])
    op.execute(f"GRANT SELECT, INSERT ON audit_events TO {APP_ROLE}")
    op.execute("ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE audit_events FORCE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY tenant_isolation ON audit_events "
               "USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid) "
               "WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)")
    allow_platform_inserts("audit_events")
    op.execute("""
        CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS $$
        BEGIN
            RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END $$
    """)
    op.execute("CREATE TRIGGER audit_events_no_update_delete BEFORE UPDATE OR DELETE ON audit_events "
               "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()")


def downgrade():
    op.drop_table("audit_events")
    op.execute("DROP FUNCTION IF EXISTS audit_events_append_only()")
    op.execute("DROP FUNCTION IF EXISTS idempotency_keys_sweep(interval)")
    op.execute("DROP FUNCTION IF EXISTS processed_events_sweep(interval)")
    op.drop_table("idempotency_keys")
    op.drop_table("processed_events")
    for fn in ("outbox_claim(integer)", "outbox_ack(uuid[])", "outbox_fail(uuid, text, integer)", "outbox_stats()"):
        op.execute(f"DROP FUNCTION IF EXISTS {fn}")
    op.drop_table("outbox_events")
    op.execute("DROP FUNCTION IF EXISTS outbox_notify()")

