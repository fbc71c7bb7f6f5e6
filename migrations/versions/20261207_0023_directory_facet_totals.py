"""The public directory's facet totals: per facet value, how many listings have it, and how many listings there are.

The directory's landing page (no text, no filter; also a text of stop words only) shows every facet's counts over
the whole projection. Counting them means unnesting and grouping every listing's arrays (~1 s of PostgreSQL CPU
at 100,000 listings). ``directory_facet_totals`` keeps those counts instead, written by triggers on
``directory_listings`` in the same statement as the listing rows (statement-level, over the transition tables),
so they are exact in every transaction's snapshot, whoever writes the projection (its jobs, ``flask directory
rebuild``, an organization's deletion cascading, the benchmark's seed).

- "Free this week" changes with the clock, so it is not kept as such: the listings' next free slots are kept per
  UTC day (facet ``slot_day``, value ``YYYY-MM-DD``); the search adds the whole days inside its week and counts
  only the two part days at its ends live (short ranges of the next-slot index).
- Writers take turns: a BEFORE statement trigger takes one transaction-level advisory lock before the statement
  touches any listing, so two transactions never lock the same total rows in different orders (a deadlock). Taken
  before the rows, not after: a writer whose statement had locked its listings and then waited for the lock could
  deadlock with the holder waiting for one of those rows (seen: a direct UPDATE against the projection's job). A
  transaction that has written listings therefore already holds it. Projection writes are short and per
  organization; they already take turns per organization.
- Public like the projection: anyone may read it (RLS forced, a read-only policy); the app's role may only read.
  The trigger function runs as its owner (SECURITY DEFINER), so no organization can write a total directly.
- ``TRUNCATE directory_listings`` empties it too.

Revision ID: 0023_directory_facet_totals
Revises: 0022_onboarding
Created: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

from rls import APP_ROLE

revision = "0023_directory_facet_totals"
down_revision = "0022_onboarding"
branch_labels = None
depends_on = None

# One listing's facet values, as coach.directory.search.facets_statement counts them (rating: 4 stars and up,
# its MIN_RATING; price: the band; "total": every listing). tests/test_directory_facet_totals.py compares them.
_VALUES = """
    SELECT 'discipline', v::text FROM unnest(r.disciplines) v
    UNION ALL SELECT 'skill', v::text FROM unnest(r.skills) v
    UNION ALL SELECT 'lang', v::text FROM unnest(r.languages) v
    UNION ALL SELECT 'price', r.price_band::text WHERE r.price_band IS NOT NULL
    UNION ALL SELECT 'rating', '4' WHERE r.rating_count > 0 AND r.rating_avg >= 4
    UNION ALL SELECT 'verified', '1' WHERE r.verified
    UNION ALL SELECT 'mode', 'online' WHERE r.online
    UNION ALL SELECT 'mode', 'in_person' WHERE r.in_person
    UNION ALL SELECT 'total', ''
    UNION ALL SELECT 'slot_day', to_char(r.next_slot_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')
        WHERE r.next_slot_at IS NOT NULL
"""


def _changes(source: str, sign: int) -> str:
    return f"SELECT x.facet, x.value, {sign} AS d FROM {source} r CROSS JOIN LATERAL ({_VALUES}) x(facet, value)"


def _apply(changes: str, table: str = "directory_facet_totals") -> str:
    # Sorted: the rows are locked in one order (the advisory lock is what guarantees it across statements).
    return (f"INSERT INTO {table} AS t (facet, value, listings) "
            f"SELECT c.facet, c.value, sum(c.d) FROM ({changes}) c GROUP BY c.facet, c.value "
            f"HAVING sum(c.d) <> 0 ORDER BY c.facet, c.value "
            f"ON CONFLICT (facet, value) DO UPDATE SET listings = t.listings + excluded.listings;")


def upgrade():
    # The function runs with an empty search_path (as every definer function: tests/test_rls.py): names qualified.
    totals = op.get_bind().execute(sa.text("SELECT quote_ident(current_schema())")).scalar() + ".directory_facet_totals"
    op.create_table(
        "directory_facet_totals",
        sa.Column("facet", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("listings", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("facet", "value", name="pk_directory_facet_totals"),
    )
    op.execute("""
        CREATE FUNCTION directory_facet_totals_turn() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
        BEGIN
            PERFORM pg_advisory_xact_lock(hashtext('directory:facet totals'));
            RETURN NULL;
        END $$
    """)
    op.execute("CREATE TRIGGER directory_facet_totals_turn BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE "
               "ON directory_listings FOR EACH STATEMENT EXECUTE FUNCTION directory_facet_totals_turn()")
    op.execute(f"""
        CREATE FUNCTION directory_facet_totals_kept() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
        BEGIN
            PERFORM pg_advisory_xact_lock(hashtext('directory:facet totals'));
            IF TG_OP = 'INSERT' THEN
                {_apply(_changes("new_rows", 1), totals)}
            ELSIF TG_OP = 'UPDATE' THEN
                {_apply(_changes("new_rows", 1) + " UNION ALL " + _changes("old_rows", -1), totals)}
            ELSIF TG_OP = 'DELETE' THEN
                {_apply(_changes("old_rows", -1), totals)}
            ELSE
                DELETE FROM {totals};
            END IF;
            RETURN NULL;
        END $$
    """)
    for event, tables in (("INSERT", "NEW TABLE AS new_rows"), ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
                          ("DELETE", "OLD TABLE AS old_rows")):
        op.execute(f"CREATE TRIGGER directory_facet_totals_{event.lower()} AFTER {event} ON directory_listings "
                   f"REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION directory_facet_totals_kept()")
    op.execute("CREATE TRIGGER directory_facet_totals_truncate AFTER TRUNCATE ON directory_listings "
               "FOR EACH STATEMENT EXECUTE FUNCTION directory_facet_totals_kept()")
    # The listings there already (none on a fresh database; a deployed directory's otherwise).
    op.execute(_apply(_changes("directory_listings", 1)))
    op.execute("REVOKE ALL ON FUNCTION directory_facet_totals_kept() FROM PUBLIC")
    op.execute("REVOKE ALL ON FUNCTION directory_facet_totals_turn() FROM PUBLIC")
    op.execute(f"GRANT SELECT ON directory_facet_totals TO {APP_ROLE}")
    op.execute("ALTER TABLE directory_facet_totals ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE directory_facet_totals FORCE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY public_read ON directory_facet_totals FOR SELECT USING (true)")
    # Written only by the triggers' function, which runs as this table's owner.
    op.execute("CREATE POLICY kept_by_triggers ON directory_facet_totals FOR ALL TO CURRENT_USER "
               "USING (true) WITH CHECK (true)")


def downgrade():
    for event in ("insert", "update", "delete", "truncate", "turn"):
        op.execute(f"DROP TRIGGER directory_facet_totals_{event} ON directory_listings")
    op.execute("DROP FUNCTION directory_facet_totals_kept()")
    op.execute("DROP FUNCTION directory_facet_totals_turn()")
    op.drop_table("directory_facet_totals")
