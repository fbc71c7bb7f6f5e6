"""Chat: conversations (direct, and one channel per space), their members' read state, messages.

Revision ID: 0007_chat
Revises: 0006_media
Created: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

from rls import tenant_columns, tenant_fk, tenant_table

revision = "0007_chat"
down_revision = "0006_media"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "conversations",
        *tenant_columns("conversations"),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("space_id", UUID(as_uuid=True)),
        # A direct conversation's two members, the smaller id first, so a pair has one conversation.
        sa.Column("member_low_id", UUID(as_uuid=True)),
        sa.Column("member_high_id", UUID(as_uuid=True)),
        sa.Column("last_seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_message_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("kind IN ('direct', 'space')", name="kind_valid"),
        sa.CheckConstraint("(kind = 'space') = (space_id IS NOT NULL)", name="space_channel_has_space"),
        # A member who leaves the organization leaves their side empty (SET NULL below): the other
        # member keeps the conversation and its history, with a "former member".
        sa.CheckConstraint("kind = 'direct' OR (member_low_id IS NULL AND member_high_id IS NULL)",
                           name="only_direct_has_members"),
        sa.CheckConstraint("member_low_id IS NULL OR member_high_id IS NULL OR member_low_id < member_high_id",
                           name="members_in_order"),
        sa.CheckConstraint("last_seq >= 0", name="last_seq_not_negative"),
        tenant_fk(["space_id"], "spaces", "fk_conversations_space"),
        tenant_fk(["member_low_id"], "memberships", "fk_conversations_member_low",
                  ondelete="SET NULL (member_low_id)"),
        tenant_fk(["member_high_id"], "memberships", "fk_conversations_member_high",
                  ondelete="SET NULL (member_high_id)"),
    )
    op.create_index("uq_conversations_space", "conversations", ["tenant_id", "space_id"], unique=True,
                    postgresql_where=sa.text("space_id IS NOT NULL"))
    op.create_index("uq_conversations_pair", "conversations", ["tenant_id", "member_low_id", "member_high_id"],
                    unique=True, postgresql_where=sa.text("member_low_id IS NOT NULL"))
    op.create_index("ix_conversations_member_high", "conversations", ["tenant_id", "member_high_id"],
                    postgresql_where=sa.text("member_high_id IS NOT NULL"))
    tenant_table("conversations")

    op.create_table(
        "conversation_reads",
        *tenant_columns("conversation_reads"),
        sa.Column("conversation_id", UUID(as_uuid=True), nullable=False),
        sa.Column("membership_id", UUID(as_uuid=True), nullable=False),
        sa.Column("last_read_seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("read_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("tenant_id", "conversation_id", "membership_id", name="uq_conversation_reads_member"),
        sa.CheckConstraint("last_read_seq >= 0", name="last_read_seq_not_negative"),
        tenant_fk(["conversation_id"], "conversations", "fk_conversation_reads_conversation"),
        tenant_fk(["membership_id"], "memberships", "fk_conversation_reads_membership"),
    )
    op.create_index("ix_conversation_reads_member", "conversation_reads", ["tenant_id", "membership_id"])
    tenant_table("conversation_reads")

    op.create_table(
        "messages",
        *tenant_columns("messages"),
        sa.Column("conversation_id", UUID(as_uuid=True), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        # NULL once the author left the organization: their messages stay where they were.
        sa.Column("author_membership_id", UUID(as_uuid=True)),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("edited_at", sa.DateTime(timezone=True)),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("tenant_id", "conversation_id", "seq", name="uq_messages_seq"),
        sa.CheckConstraint("seq > 0", name="seq_positive"),
        sa.CheckConstraint("char_length(body) <= 4000", name="body_length"),
        tenant_fk(["conversation_id"], "conversations", "fk_messages_conversation"),
        tenant_fk(["author_membership_id"], "memberships", "fk_messages_author",
                  ondelete="SET NULL (author_membership_id)"),
    )
    tenant_table("messages")

    op.create_table(
        "message_attachments",
        *tenant_columns("message_attachments"),
        sa.Column("message_id", UUID(as_uuid=True), nullable=False),
        sa.Column("media_id", UUID(as_uuid=True), nullable=False),
        sa.Column("position", sa.SmallInteger, nullable=False),
        sa.UniqueConstraint("tenant_id", "message_id", "media_id", name="uq_message_attachments_once"),
        sa.CheckConstraint("position BETWEEN 0 AND 9", name="position_range"),
        tenant_fk(["message_id"], "messages", "fk_message_attachments_message"),
        tenant_fk(["media_id"], "media_items", "fk_message_attachments_media"),
    )
    op.create_index("ix_message_attachments_media", "message_attachments", ["tenant_id", "media_id"])
    tenant_table("message_attachments")


def downgrade():
    for table in ("message_attachments", "messages", "conversation_reads", "conversations"):
        op.drop_table(table)
