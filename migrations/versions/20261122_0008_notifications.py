"""Notifications: what each member is told, their preferences per kind, and email headers.

Revision ID: 0008_notifications
Revises: 0007_chat
Created: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

from rls import tenant_columns, tenant_fk, tenant_table

revision = "0008_notifications"
down_revision = "0007_chat"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "notifications",
        *tenant_columns("notifications"),
        sa.Column("membership_id", UUID(as_uuid=True), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        # What makes two notifications the same one (a comment's id, a booking and its new status...):
        # a redelivered or repeated event finds its row and adds nothing.
        sa.Column("dedupe_key", sa.String(160), nullable=False),
        # The thing it is about, when reading that thing elsewhere reads the notification too (a conversation).
        sa.Column("subject_id", UUID(as_uuid=True)),
        sa.Column("actor_membership_id", UUID(as_uuid=True)),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.String(400), nullable=False, server_default=""),
        sa.Column("url", sa.String(400), nullable=False),
        # Unread messages of one conversation gather in one notification ("3 new messages").
        sa.Column("count", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("read_at", sa.DateTime(timezone=True)),
        # NULL: no email. 'due' at email_due_at (a delayed or daily email), then 'sent' or 'skipped'
        # (read in the app first, or preferences changed meanwhile).
        sa.Column("email_state", sa.String(8)),
        sa.Column("email_due_at", sa.DateTime(timezone=True)),
        sa.Column("email_digest", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.CheckConstraint("email_state IS NULL OR email_state IN ('due', 'sent', 'skipped')", name="email_state_valid"),
        sa.CheckConstraint("(email_state = 'due') = (email_due_at IS NOT NULL)", name="due_has_time"),
        sa.CheckConstraint("count > 0", name="count_positive"),
        sa.UniqueConstraint("tenant_id", "membership_id", "dedupe_key", name="uq_notifications_dedupe"),
        tenant_fk(["membership_id"], "memberships", "fk_notifications_membership"),
        tenant_fk(["actor_membership_id"], "memberships", "fk_notifications_actor",
                  ondelete="SET NULL (actor_membership_id)"),
    )
    op.create_index("ix_notifications_member_recent", "notifications",
                    ["tenant_id", "membership_id", sa.text("created_at DESC"), sa.text("id DESC")])
    op.create_index("ix_notifications_unread", "notifications", ["tenant_id", "membership_id", "subject_id"],
                    postgresql_where=sa.text("read_at IS NULL"))
    op.create_index("ix_notifications_email_due", "notifications", ["email_due_at"],
                    postgresql_where=sa.text("email_state = 'due'"))
    tenant_table("notifications")

    op.create_table(
        "notification_preferences",
        *tenant_columns("notification_preferences"),
        sa.Column("membership_id", UUID(as_uuid=True), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("email_timing", sa.String(10), nullable=False, server_default="immediate"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("channel IN ('in_app', 'email', 'off')", name="channel_valid"),
        sa.CheckConstraint("email_timing IN ('immediate', 'daily')", name="email_timing_valid"),
        sa.UniqueConstraint("tenant_id", "membership_id", "kind", name="uq_notification_preferences_kind"),
        tenant_fk(["membership_id"], "memberships", "fk_notification_preferences_membership"),
    )
    tenant_table("notification_preferences")

    # Extra headers of an email (List-Unsubscribe and List-Unsubscribe-Post for notifications).
    op.add_column("emails", sa.Column("headers", JSONB))

    # The email sweep finds organizations with emails due through this narrow function (ids only),
    # then acts inside each organization under the normal policy.
    op.execute("CREATE POLICY sweep_function_read ON notifications FOR SELECT TO CURRENT_USER USING (true)")
    op.execute("""
        CREATE FUNCTION notifications_due_tenants(p_now timestamptz) RETURNS SETOF uuid
        LANGUAGE sql SECURITY DEFINER SET search_path = '' STABLE AS $$
            SELECT DISTINCT tenant_id FROM public.notifications
            WHERE email_state = 'due' AND email_due_at <= p_now
        $$
    """)


def downgrade():
    op.execute("DROP FUNCTION notifications_due_tenants(timestamptz)")
    op.drop_column("emails", "headers")
    op.drop_table("notification_preferences")
    op.drop_table("notifications")
