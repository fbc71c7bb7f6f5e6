"""A session's room, the stays in it, consent to record, and recordings (constraints: migration 0020).

A room belongs to a :class:`coach.booking.models.CoachingSession`: the coach and every athlete booked on the
session share it (a group session's up to six participants)."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from coach.dbutil import TenantScoped, tenant_fk
from coach.extensions import db

RECORDING_STATUSES = ("recording", "finishing", "finished", "failed")


class SessionRoom(TenantScoped, db.Model):
    """A session's room, made when someone first enters; ``ended_at`` once the coach ended it for everyone."""

    __tablename__ = "session_rooms"
    __table_args__ = (tenant_fk("session_id", "coaching_sessions", "fk_session_rooms_session"),
                      tenant_fk("ended_by_membership_id", "memberships", "fk_session_rooms_ended_by",
                                ondelete="SET NULL (ended_by_membership_id)"))

    session_id: Mapped[uuid.UUID] = mapped_column()
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_by_membership_id: Mapped[uuid.UUID | None] = mapped_column()


class RoomAttendance(TenantScoped, db.Model):
    """One stay of one member in a room: from joining to leaving (or the last heartbeat, for a browser that
    vanished). A member's attendance is the sum of their stays."""

    __tablename__ = "room_attendance"
    __table_args__ = (tenant_fk("session_id", "coaching_sessions", "fk_room_attendance_session"),
                      tenant_fk("membership_id", "memberships", "fk_room_attendance_member"))

    session_id: Mapped[uuid.UUID] = mapped_column()
    membership_id: Mapped[uuid.UUID] = mapped_column()
    peer_id: Mapped[uuid.UUID] = mapped_column()
    joined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    left_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RoomConsent(TenantScoped, db.Model):
    """A participant's agreement to be recorded in one room (``withdrawn_at``: taken back)."""

    __tablename__ = "room_consents"
    __table_args__ = (tenant_fk("session_id", "coaching_sessions", "fk_room_consents_session"),
                      tenant_fk("membership_id", "memberships", "fk_room_consents_member"))

    session_id: Mapped[uuid.UUID] = mapped_column()
    membership_id: Mapped[uuid.UUID] = mapped_column()
    given_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RoomRecording(TenantScoped, db.Model):
    """A recording of a room, uploaded part by part (in order) into ``media_id`` while the call goes on."""

    __tablename__ = "room_recordings"
    __table_args__ = (tenant_fk("session_id", "coaching_sessions", "fk_room_recordings_session"),
                      tenant_fk("media_id", "media_items", "fk_room_recordings_media"),
                      tenant_fk("started_by_membership_id", "memberships", "fk_room_recordings_started_by",
                                ondelete="SET NULL (started_by_membership_id)"))

    session_id: Mapped[uuid.UUID] = mapped_column()
    media_id: Mapped[uuid.UUID] = mapped_column()
    started_by_membership_id: Mapped[uuid.UUID | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(12), default="recording")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    parts_received: Mapped[int] = mapped_column(Integer, default=0)
    bytes_received: Mapped[int] = mapped_column(BigInteger, default=0)
    last_part_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failure_reason: Mapped[str | None] = mapped_column(String(300))
