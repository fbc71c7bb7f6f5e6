"""The operators' console: every organization's size and activity, and the outbox per organization, as
aggregates only (SECURITY DEFINER functions; no row of a tenant leaves them).

Revision ID: 0018_insights
Revises: 0017_erasure
Created: 2026-12-06
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op

APP_ROLE = "coach_app"

revision = "0018_insights"
down_revision = "0017_erasure"
branch_labels = None
depends_on = None

FUNCTIONS = ("platform_organizations(timestamptz)", "platform_outbox_by_org()")


def upgrade():
    # Counts per organization, read under each organization's own policy in turn: the function sets
    # app.tenant_id to one organization at a time (and back to the caller's at the end), so no policy opens
    # memberships, posts or messages to the owner across organizations, and what comes out is numbers and
    # times only. One row per organization, in name order.
    op.execute("""
        CREATE FUNCTION platform_organizations(p_since timestamptz)
        RETURNS TABLE (id uuid, slug text, name text, created_at timestamptz, members bigint,
                       storage_bytes bigint, quota_bytes bigint, sessions bigint, last_activity timestamptz)
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
        #variable_conflict use_column
        DECLARE
            org record;
            kept text := current_setting('app.tenant_id', true);
        BEGIN
            FOR org IN SELECT o.id, o.slug, o.name, o.created_at, o.media_quota_bytes
                       FROM public.organizations o ORDER BY o.name, o.id LOOP
                PERFORM set_config('app.tenant_id', org.id::text, true);
                id := org.id; slug := org.slug; name := org.name; created_at := org.created_at;
                quota_bytes := org.media_quota_bytes;
                SELECT count(*) INTO members FROM public.memberships m WHERE m.tenant_id = org.id;
                SELECT coalesce(sum(mi.counted_bytes), 0)::bigint INTO storage_bytes
                    FROM public.media_items mi WHERE mi.tenant_id = org.id;
                SELECT count(DISTINCT b.session_id) INTO sessions FROM public.bookings b
                    WHERE b.tenant_id = org.id AND b.status = 'ended' AND b.starts_at >= p_since
                      AND b.starts_at < now();
                SELECT greatest(
                    (SELECT max(m.created_at) FROM public.memberships m WHERE m.tenant_id = org.id),
                    (SELECT max(p.created_at) FROM public.posts p WHERE p.tenant_id = org.id),
                    (SELECT max(c.created_at) FROM public.comments c WHERE c.tenant_id = org.id),
                    (SELECT max(x.created_at) FROM public.messages x WHERE x.tenant_id = org.id),
                    (SELECT max(b.created_at) FROM public.bookings b WHERE b.tenant_id = org.id),
                    (SELECT max(mi.created_at) FROM public.media_items mi WHERE mi.tenant_id = org.id))
                    INTO last_activity;
                RETURN NEXT;
            END LOOP;
            PERFORM set_config('app.tenant_id', coalesce(kept, ''), true);
        END $$
    """)
    # The outbox per organization (the owner reads it through the relay's policy): how much waits, how much is
    # dead, how old the oldest waiting event is. Platform events (no organization) come as a NULL tenant.
    op.execute("""
        CREATE FUNCTION platform_outbox_by_org()
        RETURNS TABLE (tenant_id uuid, pending bigint, dead bigint, oldest_age_seconds double precision)
        LANGUAGE sql SECURITY DEFINER SET search_path = '' STABLE AS $$
            SELECT e.tenant_id, count(*) FILTER (WHERE e.dead_at IS NULL), count(*) FILTER (WHERE e.dead_at IS NOT NULL),
                   coalesce(extract(epoch FROM now() - min(e.created_at) FILTER (WHERE e.dead_at IS NULL)), 0)
            FROM public.outbox_events e GROUP BY e.tenant_id
        $$
    """)
    for fn in FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {fn} TO {APP_ROLE}")


def downgrade():
    for fn in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {fn}")
