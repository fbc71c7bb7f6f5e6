"""Row-level security reads the tenant settings once per statement, not once per row; an index for the
organization home's role counts and coaches.

Every policy compared each row with ``NULLIF(current_setting('app.tenant_id', true), '')::uuid``: PostgreSQL
calls ``current_setting`` and parses the UUID again for every row it looks at (counting the 5,000 members of
an organization cost ~6 ms, most of it that). Written as a scalar subquery, ``(SELECT NULLIF(...)::uuid)``, the
value is an InitPlan: computed once, when the statement first needs it, and compared as a constant. What the
policies allow is unchanged (NULL when nothing is set: nothing visible).

The policies are rewritten from the catalog (every policy of the runtime role that reads a setting), so the
ones written by hand (``idempotency_keys``, ``audit_events``) change too. ``rls.py`` writes new tables'
policies the same way.

Revision ID: 0013_rls_settings_once
Revises: 0012_outbox_claim_index
Created: 2026-12-06
"""
import re

from alembic import op
from sqlalchemy import text

revision = "0013_rls_settings_once"
down_revision = "0012_outbox_claim_index"
branch_labels = None
depends_on = None

# How PostgreSQL deparses the per-row form (not already inside a scalar subquery: tables made after rls.py
# changed have the other form from the start), and the once-per-statement form.
PER_ROW = re.compile(r"(?<!SELECT )\(NULLIF\(current_setting\('(app\.(?:tenant|user)_id)'::text, true\), ''::text\)\)::uuid")
ONCE = re.compile(r"\( SELECT \(NULLIF\(current_setting\('(app\.(?:tenant|user)_id)'::text, true\), ''::text\)\)::uuid"
                  r" AS \"nullif\"\)")


def _once(expr: str) -> str:
    return PER_ROW.sub(r"(SELECT NULLIF(current_setting('\1', true), '')::uuid)", expr)


def _per_row(expr: str) -> str:
    return ONCE.sub(r"NULLIF(current_setting('\1', true), '')::uuid", expr)


def _rewrite(change) -> None:
    bind = op.get_bind()
    policies = bind.execute(text(
        "SELECT tablename, policyname, qual, with_check FROM pg_policies WHERE schemaname = 'public' "
        "AND (qual LIKE '%current_setting(''app.%' OR with_check LIKE '%current_setting(''app.%')"
    )).fetchall()
    for table, name, qual, with_check in policies:
        clauses = []
        if qual is not None and change(qual) != qual:
            clauses.append(f"USING ({change(qual)})")
        if with_check is not None and change(with_check) != with_check:
            clauses.append(f"WITH CHECK ({change(with_check)})")
        if clauses:
            op.execute(f'ALTER POLICY "{name}" ON "{table}" ' + " ".join(clauses))


def upgrade():
    _rewrite(_once)
    # The home page: role counts read from the index alone (the policies need tenant_id and user_id), and the
    # coaches found without reading every member.
    op.execute("CREATE INDEX ix_memberships_tenant_id_role ON memberships (tenant_id, role) INCLUDE (user_id)")


def downgrade():
    op.execute("DROP INDEX ix_memberships_tenant_id_role")
    _rewrite(_per_row)
