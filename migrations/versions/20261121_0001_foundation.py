"""Foundation: organizations, users, memberships, invitations, password resets, sign-ups, emails.

Revision ID: 0001_foundation
Revises:
Created: 2026-11-21
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

from rls import APP_ROLE, USER_PREDICATE, grant_dml, tenant_table

revision = "0001_foundation"
down_revision = None
branch_labels = None
depends_on = None

ROLE_CHECK = "role IN ('admin', 'coach', 'athlete', 'scheduler')"


def _ts(name, nullable=True, default_now=False):
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable,
                     server_default=sa.func.now() if default_now else None)


def upgrade():
    op.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")

    op.create_table(
        "organizations",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("slug", sa.String(40), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        _ts("created_at", nullable=False, default_now=True),
        sa.UniqueConstraint("slug", name="uq_organizations_slug"),
        sa.CheckConstraint("slug ~ '^[a-z0-9]([a-z0-9-]{1,38})[a-z0-9]$'", name="ck_organizations_slug_format"),
        sa.CheckConstraint("char_length(name) BETWEEN 1 AND 120", name="ck_organizations_name_length"),
    )
    grant_dml("organizations")

    op.create_table(
        "users",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("session_version", sa.Integer, nullable=False, server_default="1"),
        _ts("created_at", nullable=False, default_now=True),
        sa.CheckConstraint("char_length(display_name) BETWEEN 1 AND 100", name="ck_users_display_name_length"),
        sa.CheckConstraint("char_length(email) <= 254", name="ck_users_email_length"),
    )
    op.create_index("uq_users_email_lower", "users", [sa.text("lower(email)")], unique=True)
    grant_dml("users")

    op.create_table(
        "memberships",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("organizations.id", ondelete="CASCADE",
                                                                 name="fk_memberships_tenant_id_organizations"),
                  nullable=False),
        sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE",
                                                               name="fk_memberships_user_id_users"),
                  nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        _ts("created_at", nullable=False, default_now=True),
        sa.UniqueConstraint("tenant_id", "id", name="uq_memberships_tenant_id_id"),
        sa.UniqueConstraint("tenant_id", "user_id", name="uq_memberships_tenant_id_user_id"),
        sa.CheckConstraint(ROLE_CHECK, name="ck_memberships_role_valid"),
    )
    op.create_index("ix_memberships_user_id", "memberships", ["user_id"])
    tenant_table("memberships")
    # A user sees their own memberships in every organization (the organization picker),
    # for reading only: writes stay confined to the active organization.
    op.execute(f"CREATE POLICY own_memberships_read ON memberships FOR SELECT USING ({USER_PREDICATE})")

    op.create_table(
        "invitations",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("organizations.id", ondelete="CASCADE",
                                                                 name="fk_invitations_tenant_id_organizations"),
                  nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("invited_by_membership_id", UUID(as_uuid=True)),
        _ts("created_at", nullable=False, default_now=True),
        _ts("sent_at", nullable=False, default_now=True),
        _ts("expires_at", nullable=False),
        _ts("accepted_at"),
        _ts("revoked_at"),
        sa.Column("accepted_by_user_id", UUID(as_uuid=True), sa.ForeignKey(
            "users.id", ondelete="SET NULL", name="fk_invitations_accepted_by_user_id_users")),
        sa.UniqueConstraint("tenant_id", "id", name="uq_invitations_tenant_id_id"),
        sa.UniqueConstraint("token_hash", name="uq_invitations_token_hash"),
        sa.CheckConstraint(ROLE_CHECK, name="ck_invitations_role_valid"),
        sa.CheckConstraint("char_length(email) <= 254", name="ck_invitations_email_length"),
    )
    # Composite key: an invitation can only name an inviter of its own organization.
    op.execute(
        "ALTER TABLE invitations ADD CONSTRAINT fk_invitations_inviter_membership "
        "FOREIGN KEY (tenant_id, invited_by_membership_id) REFERENCES memberships (tenant_id, id) "
        "ON DELETE SET NULL (invited_by_membership_id)"
    )
    op.create_index("uq_invitations_open_email", "invitations", ["tenant_id", sa.text("lower(email)")],
                    unique=True, postgresql_where=sa.text("accepted_at IS NULL AND revoked_at IS NULL"))
    tenant_table("invitations")

    op.create_table(
        "password_reset_tokens",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE",
                                                               name="fk_password_reset_tokens_user_id_users"),
                  nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        _ts("created_at", nullable=False, default_now=True),
        _ts("expires_at", nullable=False),
        _ts("used_at"),
        sa.UniqueConstraint("token_hash", name="uq_password_reset_tokens_token_hash"),
    )
    op.create_index("ix_password_reset_tokens_user_id", "password_reset_tokens", ["user_id"])
    grant_dml("password_reset_tokens")

    op.create_table(
        "pending_signups",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        _ts("created_at", nullable=False, default_now=True),
        _ts("expires_at", nullable=False),
        sa.UniqueConstraint("token_hash", name="uq_pending_signups_token_hash"),
    )
    op.create_index("ix_pending_signups_email_lower", "pending_signups", [sa.text("lower(email)")])
    grant_dml("pending_signups")

    op.create_table(
        "emails",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("to_address", sa.String(254), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("body_text", sa.Text, nullable=False),
        sa.Column("body_html", sa.Text, nullable=False),
        _ts("created_at", nullable=False, default_now=True),
        _ts("sent_at"),
        sa.Column("transport", sa.String(16), nullable=False),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_emails_created_at", "emails", ["created_at"])
    grant_dml("emails")


def downgrade():
    for table in ("emails", "pending_signups", "password_reset_tokens", "invitations", "memberships", "users",
                  "organizations"):
        op.drop_table(table)
