"""Chat: a message keeps the id its page gave it, so a send repeated after a reconnect (or a form
posted twice) finds the message instead of storing a second one.

Revision ID: 0009_chat_client_ids
Revises: 0008_notifications
Created: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0009_chat_client_ids"
down_revision = "0008_notifications"
branch_labels = None
depends_on = None


def upgrade():
    # NULL for messages stored before this revision and for senders that give no id.
    op.add_column("messages", sa.Column("client_id", UUID(as_uuid=True)))
    # Per author: another member cannot make someone's send a no-op by guessing (or reusing) their id.
    op.create_index("uq_messages_client_id", "messages",
                    ["tenant_id", "conversation_id", "author_membership_id", "client_id"], unique=True,
                    postgresql_where=sa.text("client_id IS NOT NULL"))


def downgrade():
    op.drop_index("uq_messages_client_id", table_name="messages")
    op.drop_column("messages", "client_id")
