"""Spaces, their members, posts, comments, reactions, mentions and flags (constraints: migration 0005)."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from coach.dbutil import TenantScoped, tenant_relationship
from coach.extensions import db
from coach.orgs.models import Membership

VISIBILITIES = {"open": "Open", "private": "Private", "announcement": "Announcements"}
# A member's role in one space (not in the organization: see coach.orgs.models).
HOST, MEMBER = "host", "member"
SPACE_ROLES = (HOST, MEMBER)
REACTIONS = {"like": "👍", "celebrate": "🎉", "support": "💪", "insightful": "💡", "funny": "😄"}


class Space(TenantScoped, db.Model):
    __tablename__ = "spaces"

    name: Mapped[str] = mapped_column(String(80))
    description: Mapped[str] = mapped_column(String(500), default="")
    visibility: Mapped[str] = mapped_column(String(16))
    created_by_membership_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_post_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def visibility_label(self) -> str:
        return VISIBILITIES[self.visibility]


class SpaceMember(TenantScoped, db.Model):
    __tablename__ = "space_members"

    space_id: Mapped[uuid.UUID] = mapped_column()
    membership_id: Mapped[uuid.UUID] = mapped_column()
    role: Mapped[str] = mapped_column(String(8))
    joined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    suspended_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    member: Mapped[Membership] = tenant_relationship("SpaceMember", "membership_id")


class Post(TenantScoped, db.Model):
    __tablename__ = "posts"

    space_id: Mapped[uuid.UUID] = mapped_column()
    author_membership_id: Mapped[uuid.UUID] = mapped_column()
    body_source: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    edited_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    pinned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    hidden_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    comment_count: Mapped[int] = mapped_column(Integer, default=0)
    flag_count: Mapped[int] = mapped_column(Integer, default=0)

    author: Mapped[Membership] = tenant_relationship("Post", "author_membership_id")

    @property
    def visible(self) -> bool:
        return self.deleted_at is None and self.hidden_at is None and self.removed_at is None

    @property
    def author_name(self) -> str:
        """As a feed's rows have it (:data:`coach.spaces.service.FEED_COLUMNS`), so one template shows both."""
        return self.author.user.display_name


class PostRevision(TenantScoped, db.Model):
    """An earlier text of an edited post (hosts can read them)."""

    __tablename__ = "post_revisions"

    post_id: Mapped[uuid.UUID] = mapped_column()
    body_source: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    edited_by_membership_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Comment(TenantScoped, db.Model):
    __tablename__ = "comments"

    post_id: Mapped[uuid.UUID] = mapped_column()
    parent_id: Mapped[uuid.UUID | None] = mapped_column()
    author_membership_id: Mapped[uuid.UUID] = mapped_column()
    body_source: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    hidden_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    flag_count: Mapped[int] = mapped_column(Integer, default=0)

    author: Mapped[Membership] = tenant_relationship("Comment", "author_membership_id")

    @property
    def visible(self) -> bool:
        return self.deleted_at is None and self.hidden_at is None and self.removed_at is None


class Reaction(TenantScoped, db.Model):
    __tablename__ = "reactions"

    post_id: Mapped[uuid.UUID] = mapped_column()
    membership_id: Mapped[uuid.UUID] = mapped_column()
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PostMention(TenantScoped, db.Model):
    __tablename__ = "post_mentions"

    post_id: Mapped[uuid.UUID] = mapped_column()
    membership_id: Mapped[uuid.UUID] = mapped_column()


class Flag(TenantScoped, db.Model):
    __tablename__ = "flags"

    post_id: Mapped[uuid.UUID | None] = mapped_column()
    comment_id: Mapped[uuid.UUID | None] = mapped_column()
    membership_id: Mapped[uuid.UUID] = mapped_column()
    reason: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PostAttachment(TenantScoped, db.Model):
    """A media item shown with a post, in the author's order (migration 0006)."""

    __tablename__ = "post_attachments"

    post_id: Mapped[uuid.UUID] = mapped_column()
    media_id: Mapped[uuid.UUID] = mapped_column()
    position: Mapped[int] = mapped_column(Integer)
