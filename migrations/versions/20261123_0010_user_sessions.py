"""Server-side sessions and emailed sign-in links.

A session cookie names a ``user_sessions`` row; logging out (or a password change) revokes the
row, so a copy of the cookie opens nothing afterwards. ``sign_in_links`` are single-use emailed
links (only their hash stored), the way in that nobody else can lock.

Both are global, like ``users``: no organization, no RLS; the application decides who sees them.
Cookies issued before this revision name no row: everyone logs in again once.

Revision ID: 0010_user_sessions
Revises: 0009_chat_client_ids
Created: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

from rls import grant_dml

revision = "0010_user_sessions"
down_revision = "0009_chat_client_ids"
branch_labels = None
depends_on = None


def _ts(name, nullable=True):
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade():
    op.create_table(
        "user_sessions",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE",
                                                               name="fk_user_sessions_user_id_users"),
                  nullable=False),
        _ts("created_at", nullable=False),
        _ts("last_seen_at", nullable=False),
        sa.Column("user_agent", sa.String(200), nullable=False, server_default=""),
        sa.Column("ip", sa.String(64), nullable=False, server_default=""),
        _ts("revoked_at"),
        sa.CheckConstraint("char_length(user_agent) <= 200", name="ck_user_sessions_user_agent_length"),
        sa.CheckConstraint("char_length(ip) <= 64", name="ck_user_sessions_ip_length"),
    )
    op.create_index("ix_user_sessions_user_id", "user_sessions", ["user_id"])
    grant_dml("user_sessions")

    op.create_table(
        "sign_in_links",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE",
                                                               name="fk_sign_in_links_user_id_users"),
                  nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        _ts("expires_at", nullable=False),
        _ts("used_at"),
        sa.UniqueConstraint("token_hash", name="uq_sign_in_links_token_hash"),
    )
    op.create_index("ix_sign_in_links_user_id", "sign_in_links", ["user_id"])
    grant_dml("sign_in_links")


def downgrade():
    op.drop_table("sign_in_links")
    op.drop_table("user_sessions")
