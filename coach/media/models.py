"""Media items, their timestamped review comments (constraints: migration 0006)."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from coach.dbutil import TenantScoped, tenant_fk, tenant_relationship
from coach.extensions import db
from coach.orgs.models import Membership

AUDIENCES = {"staff": "Me and the coaches", "organization": "Everyone in the organization"}
STATUSES = ("uploading", "processing", "ready", "failed", "deleting")


class MediaItem(TenantScoped, db.Model):
    """One uploaded file and its renditions; ``counted_bytes`` is its share of the quota."""

    __tablename__ = "media_items"
    # The owner's membership may go; the item stays (an admin can still manage it).
    __table_args__ = (tenant_fk("owner_membership_id", "memberships", "fk_media_items_owner",
                                ondelete="SET NULL (owner_membership_id)"),)

    owner_membership_id: Mapped[uuid.UUID | None] = mapped_column()
    audience: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(12))
    failure_reason: Mapped[str | None] = mapped_column(String(300))
    declared_bytes: Mapped[int] = mapped_column(BigInteger)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    derived_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    counted_bytes: Mapped[int] = mapped_column(BigInteger)
    upload_id: Mapped[str | None] = mapped_column(String(300))
    part_bytes: Mapped[int] = mapped_column(Integer)
    part_count: Mapped[int] = mapped_column(Integer)
    original_key: Mapped[str] = mapped_column(String(300))
    # rendition name ("thumb", "large", "playback", "poster") → object key
    derived_keys: Mapped[dict] = mapped_column(JSONB, default=dict)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    processing_attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    upload_expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    uploaded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ready_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # "upload" (a browser's file), "recording" (a session room's call, uploaded as it went), "import".
    origin: Mapped[str] = mapped_column(String(12), default="upload", server_default="upload")
    # When the retention sweep deletes it (recordings, unless kept); None: kept until someone deletes it.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    owner: Mapped[Membership | None] = tenant_relationship("MediaItem", "owner_membership_id", innerjoin=False)

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    @property
    def duration_label(self) -> str:
        return clock(self.duration_ms or 0)


class MediaComment(TenantScoped, db.Model):
    """A review comment pinned to a moment of a video (replies share their parent's moment)."""

    __tablename__ = "media_comments"
    __table_args__ = (
        tenant_fk("media_id", "media_items", "fk_media_comments_media"),
        tenant_fk("parent_id", "media_comments", "fk_media_comments_parent"),
        tenant_fk("author_membership_id", "memberships", "fk_media_comments_author"),
    )

    media_id: Mapped[uuid.UUID] = mapped_column()
    parent_id: Mapped[uuid.UUID | None] = mapped_column()
    author_membership_id: Mapped[uuid.UUID] = mapped_column()
    at_ms: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    author: Mapped[Membership] = tenant_relationship("MediaComment", "author_membership_id")

    @property
    def at_label(self) -> str:
        return clock(self.at_ms)


def clock(ms: int) -> str:
    """1:23 or 1:02:03 for a moment in a video."""
    seconds = ms // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
