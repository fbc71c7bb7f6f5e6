"""Let the idempotency sweep see the keys it deletes.

A DELETE whose WHERE clause reads the rows is filtered by the SELECT policies as
well. 0002 gave the sweep function (owned by the schema owner) a DELETE-only
policy, so under the tenant policy it saw, and removed, no key at all.

Revision ID: 0003_idempotency_sweep
Revises: 0002_platform
Created: 2026-11-21
"""
from alembic import op

revision = "0003_idempotency_sweep"
down_revision = "0002_platform"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("CREATE POLICY sweep_function_read ON idempotency_keys FOR SELECT TO CURRENT_USER USING (true)")


def downgrade():
    op.execute("DROP POLICY sweep_function_read ON idempotency_keys")
