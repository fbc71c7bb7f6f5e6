"""Conversations, their members' read state, messages (constraints: migrations 0007 and 0009)."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from coach.dbutil import TenantScoped, tenant_relationship
from coach.extensions import db
from coach.orgs.models import Membership
from coach.spaces.models import Space

BODY_MAX = 4000
EDIT_WINDOW_MINUTES = 10


class Conversation(TenantScoped, db.Model):
    """A direct conversation between two members, or the channel of a space."""

    __tablename__ = "conversations"

    kind: Mapped[str] = mapped_column(String(8))
    space_id: Mapped[uuid.UUID | None] = mapped_column()
    member_low_id: Mapped[uuid.UUID | None] = mapped_column()
    member_high_id: Mapped[uuid.UUID | None] = mapped_column()
    # The seq of the newest message: messages are numbered 1, 2, 3... per conversation.
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_message_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    # A channel's space, loaded with it (its access and its name are on every page that shows the channel).
    space: Mapped[Space | None] = tenant_relationship("Conversation", "space_id", target="Space", innerjoin=False)

    def other_member_id(self, member_id: uuid.UUID) -> uuid.UUID | None:
        if self.kind != "direct":
            return None
        return self.member_high_id if member_id == self.member_low_id else self.member_low_id


class ConversationRead(TenantScoped, db.Model):
    """How far one member has read one conversation."""

    __tablename__ = "conversation_reads"

    conversation_id: Mapped[uuid.UUID] = mapped_column()
    membership_id: Mapped[uuid.UUID] = mapped_column()
    last_read_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Message(TenantScoped, db.Model):
    __tablename__ = "messages"

    conversation_id: Mapped[uuid.UUID] = mapped_column()
    seq: Mapped[int] = mapped_column(BigInteger)
    author_membership_id: Mapped[uuid.UUID | None] = mapped_column()  # None: the author left
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    edited_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The id the sender's page gave the message (migration 0009): a repeated send finds this one.
    client_id: Mapped[uuid.UUID | None] = mapped_column()

    author: Mapped[Membership | None] = tenant_relationship("Message", "author_membership_id", innerjoin=False)


class MessageAttachment(TenantScoped, db.Model):
    __tablename__ = "message_attachments"

    message_id: Mapped[uuid.UUID] = mapped_column()
    media_id: Mapped[uuid.UUID] = mapped_column()
    position: Mapped[int] = mapped_column(Integer)
