"""The outbox claim reads its batch in index order, however stale the table's statistics.

``outbox_claim`` takes the undelivered events that are due, ordered by ``(available_at, created_at)``. The
index it had covered ``available_at`` only: right after a burst of inserts, before autovacuum has analyzed
the table, the planner expected a handful of rows and sorted the whole backlog for every batch (26 ms with
30,000 pending, an external sort on disk; docs/PERFORMANCE.md, "outbox: what bounds it"). A partial index on
exactly the claim's order and predicate (it replaces the old one, which it covers) lets the claim read the
batch in index order and stop after it.

The index alone is not enough: without statistics PostgreSQL guesses that 0.5% of rows have ``dead_at IS
NULL`` (nearly all do), expects a few dozen rows and still prefers to fetch them all and sort. The claim
function is therefore run with ``enable_sort = off`` (its own setting, as ``search_path`` is): the
index-ordered scan is then the plan whatever the statistics say.

Revision ID: 0012_outbox_claim_index
Revises: 0011_posts_pinned_index
Created: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = "0012_outbox_claim_index"
down_revision = "0011_posts_pinned_index"
branch_labels = None
depends_on = None


CLAIM = """
    CREATE OR REPLACE FUNCTION outbox_claim(p_limit integer)
    RETURNS SETOF public.outbox_events LANGUAGE sql SECURITY DEFINER SET search_path = '' {settings} AS $$
        SELECT * FROM public.outbox_events
        WHERE dead_at IS NULL AND available_at <= now()
        ORDER BY available_at, created_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    $$
"""


def upgrade():
    op.create_index("ix_outbox_events_claim", "outbox_events", ["available_at", "created_at"],
                    postgresql_where=sa.text("dead_at IS NULL"))
    op.drop_index("ix_outbox_events_ready", table_name="outbox_events")
    op.execute(CLAIM.format(settings="SET enable_sort = off"))


def downgrade():
    op.execute(CLAIM.format(settings=""))
    op.create_index("ix_outbox_events_ready", "outbox_events", ["available_at"],
                    postgresql_where=sa.text("dead_at IS NULL"))
    op.drop_index("ix_outbox_events_claim", table_name="outbox_events")
