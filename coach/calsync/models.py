"""A coach's calendar connections, the calendars chosen from each, and the events written there for bookings
(constraints: migration 0019). The busy time read from them is :class:`coach.booking.models.ExternalBusy`:
booking owns what blocks a coach's time, this domain only fills it."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, DateTime, Integer, SmallInteger, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from coach.dbutil import TenantScoped, tenant_fk, tenant_relationship
from coach.extensions import db
from coach.orgs.models import Membership

CONNECTION_STATUSES = ("pending", "ok", "failing", "disabled")


class CalendarConnection(TenantScoped, db.Model):
    """One account on a calendar server, connected by a coach. ``secret_sealed`` is the app password sealed with
    :mod:`coach.platform.sealing` (never stored, shown or logged in the clear)."""

    __tablename__ = "calendar_connections"
    __table_args__ = (tenant_fk("coach_membership_id", "memberships", "fk_calendar_connections_coach"),)

    coach_membership_id: Mapped[uuid.UUID] = mapped_column()
    provider: Mapped[str] = mapped_column(String(16), default="caldav")
    label: Mapped[str] = mapped_column(String(120), default="")
    server_url: Mapped[str] = mapped_column(String(1000))
    username: Mapped[str] = mapped_column(String(200), default="")
    secret_sealed: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(12), default="pending")
    last_error: Mapped[str | None] = mapped_column(String(500))
    last_error_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failures: Mapped[int] = mapped_column(SmallInteger, default=0)
    last_synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_sync_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sync_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    unreadable_events: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    coach: Mapped[Membership] = tenant_relationship("CalendarConnection", "coach_membership_id", "Membership")


class CalendarSource(TenantScoped, db.Model):
    """One calendar of a connection: whether its busy time blocks slots, whether bookings are written into it,
    and where incremental sync left off (``sync_token``: the provider's own token; a CalDAV server without
    sync-collection keeps ``ctag:<getctag>`` there, so the ``ctag`` column is unused)."""

    __tablename__ = "calendar_sources"
    __table_args__ = (tenant_fk("connection_id", "calendar_connections", "fk_calendar_sources_connection"),)

    connection_id: Mapped[uuid.UUID] = mapped_column()
    url: Mapped[str] = mapped_column(String(1000))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    blocks_time: Mapped[bool] = mapped_column(Boolean, default=False)
    receives_bookings: Mapped[bool] = mapped_column(Boolean, default=False)
    sync_token: Mapped[str | None] = mapped_column(Text)
    ctag: Mapped[str | None] = mapped_column(String(500))
    last_synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


PUSH_STATES = ("pending", "present", "removed", "failed")


class CalendarPush(TenantScoped, db.Model):
    """The event Coach wrote into a calendar for a booking (by the booking's calendar UID, so a reschedule
    updates the same event)."""

    __tablename__ = "calendar_pushes"
    __table_args__ = (
        tenant_fk("source_id", "calendar_sources", "fk_calendar_pushes_source"),
        tenant_fk("booking_id", "bookings", "fk_calendar_pushes_booking"),
    )

    source_id: Mapped[uuid.UUID] = mapped_column()
    uid: Mapped[str] = mapped_column(String(200))
    booking_id: Mapped[uuid.UUID] = mapped_column()
    href: Mapped[str | None] = mapped_column(String(1000))
    etag: Mapped[str | None] = mapped_column(String(500))
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(12), default="pending")
    last_error: Mapped[str | None] = mapped_column(String(500))
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    pushed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    overwritten_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
