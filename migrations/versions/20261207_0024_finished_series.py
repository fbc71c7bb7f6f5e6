"""Recurring series that finished before their status was kept: settle them once.

``booking/series_jobs.occurrence_settled`` ends a series when its last occurrence stops holding a time: ``ended``
if any occurrence took place (ended or no-show), else ``cancelled``. Series whose occurrences had all settled
before that consumer existed kept ``active`` (their page read "0 still on" instead of "Ended · N took place"), and
no later event of theirs will come to settle them. This applies the consumer's rule
(``coach.booking.series._settle_status``) to every such series.

Migrations run as the schema owner, and ``booking_series`` and ``bookings`` force row-level security on the owner
too: with no organization set, an UPDATE sees no row and silently changes nothing. So the statement runs once per
organization, with ``app.tenant_id`` set to it for the transaction (as 0018's functions read each organization's
rows under its own policy), and the caller's setting is put back afterwards.

Idempotent: only ``active`` series with no live occurrence change, which is the same compare-and-swap the
consumer does, so running it again (or racing the consumer for the same series) changes nothing more.

Revision ID: 0024_finished_series
Revises: 0023_directory_facet_totals
Created: 2026-12-07
"""
from alembic import op

revision = "0024_finished_series"
down_revision = "0023_directory_facet_totals"
branch_labels = None
depends_on = None

# The statuses of coach.booking.models.LIVE_STATUSES (still holding a time) and coach.booking.series.TOOK_PLACE,
# written out: a migration keeps the rule of its day even if the code's constants change later.
LIVE = "('held', 'requested', 'confirmed', 'active')"
TOOK_PLACE = "('ended', 'no_show')"


def upgrade():
    op.execute(f"""
        DO $$
        DECLARE
            org uuid;
            kept text := current_setting('app.tenant_id', true);
        BEGIN
            FOR org IN SELECT o.id FROM organizations o ORDER BY o.id LOOP
                PERFORM set_config('app.tenant_id', org::text, true);
                UPDATE booking_series s
                   SET status = CASE WHEN EXISTS (
                           SELECT 1 FROM bookings b
                            WHERE b.tenant_id = s.tenant_id AND b.series_id = s.id AND b.status IN {TOOK_PLACE})
                       THEN 'ended' ELSE 'cancelled' END
                 WHERE s.tenant_id = org AND s.status = 'active'
                   AND NOT EXISTS (
                       SELECT 1 FROM bookings b
                        WHERE b.tenant_id = s.tenant_id AND b.series_id = s.id AND b.status IN {LIVE});
            END LOOP;
            PERFORM set_config('app.tenant_id', coalesce(kept, ''), true);
        END $$
    """)


def downgrade():
    # Nothing to undo: the statuses set are the ones the running code would set, which rows changed is not
    # recorded, and putting 'active' back would only make those series' pages wrong again. The schema is as 0023
    # left it.
    pass
