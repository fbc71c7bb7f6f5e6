"""Helpers that migrations use so every table gets its grants and, if tenant-scoped, its policy, and its
tenant columns and composite keys. Migrations import it as ``from rls import ...`` (alembic.ini puts
this folder on the path); the app never imports it."""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

APP_ROLE = "coach_app"

# The setting in a scalar subquery: PostgreSQL reads and parses it once per statement (an InitPlan), not once
# per row (migration 0013).
TENANT_PREDICATE = "tenant_id = (SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid)"
USER_PREDICATE = "user_id = (SELECT NULLIF(current_setting('app.user_id', true), '')::uuid)"


def grant_dml(table: str) -> None:
    """The runtime role may read and write rows, nothing else."""
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE}")


def tenant_table(table: str) -> None:
    """Grant DML and isolate ``table`` by organization: RLS enabled, forced, one policy."""
    grant_dml(table)
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} USING ({TENANT_PREDICATE}) WITH CHECK ({TENANT_PREDICATE})"
    )


def allow_platform_inserts(table: str) -> None:
    """Let rows that belong to no organization (``tenant_id IS NULL``) be written, never read back.

    For platform-level records such as a failed login for an unknown email or a
    password-reset email: the runtime role may add them, and only the narrow
    SECURITY DEFINER functions of the migrations read them.
    """
    op.execute(f"CREATE POLICY platform_insert ON {table} FOR INSERT WITH CHECK (tenant_id IS NULL)")


def tenant_columns(table: str) -> list:
    """``id``, ``tenant_id`` (the organization, deleted with it) and the unique ``(tenant_id, id)`` that
    other tenant tables reference."""
    return [
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("organizations.id", ondelete="CASCADE"),
                  nullable=False),
        sa.UniqueConstraint("tenant_id", "id", name=f"uq_{table}_tenant_id_id"),
    ]


def tenant_fk(columns: list[str], target: str, name: str, ondelete: str = "CASCADE"):
    """A foreign key over ``(tenant_id, *columns)``: rows of two organizations can never point at each other."""
    return sa.ForeignKeyConstraint(["tenant_id", *columns], [f"{target}.tenant_id", f"{target}.id"], name=name,
                                   ondelete=ondelete)

