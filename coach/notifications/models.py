"""Notifications and preferences (constraints: migration 0008), and the kinds members can set."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Boolean, DateTime, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from coach.dbutil import TenantScoped, tenant_fk
from coach.extensions import db

CHANNELS = {"in_app": "In the app", "email": "In the app and by email", "off": "Off"}
TIMINGS = {"immediate": "Right away", "daily": "In a daily digest"}


@dataclass(frozen=True)
class Kind:
    name: str
    group: str
    label: str
    channel: str  # the default
    timing: str = "immediate"


# The order of the preferences page. Defaults: what needs an answer or a presence is emailed; what is
# only good to know stays in the app.
KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("message", "Chat", "Direct messages that arrive while I am offline", "email"),
    Kind("channel_message", "Chat", "Messages in my spaces' channels while I am offline", "in_app"),
    Kind("mention", "Community", "Someone mentions me in a post or comment", "email"),
    Kind("comment", "Community", "Comments on my posts", "in_app"),
    Kind("booking_requested", "Sessions", "A session is requested or booked with me", "email"),
    Kind("booking_confirmed", "Sessions", "A session I asked for is confirmed", "email"),
    Kind("booking_declined", "Sessions", "A request of mine is declined or expires", "email"),
    Kind("booking_cancelled", "Sessions", "A session is cancelled", "email"),
    Kind("booking_reminder", "Sessions", "Reminders a day and an hour before a session", "email"),
    Kind("waitlist_booked", "Sessions", "A seat opens on a waitlist I am on and I am booked into it", "email"),
    Kind("waitlist_offered", "Sessions", "A seat opens on a waitlist I am on and is mine to take for a while",
         "email"),
    Kind("room_open", "Sessions", "My coach is in the room of a session of mine and I am not there yet", "in_app"),
    Kind("review_request", "Sessions", "A session of mine ended: asked for a review", "email"),
    Kind("review_received", "Sessions", "An athlete reviews a session of mine (coaches)", "email"),
    Kind("media_ready", "Media", "My upload is ready to watch", "in_app"),
    Kind("review_comment", "Media", "Comments on my videos and review threads I am in", "email"),
    Kind("payment_refunded", "Payments", "Money or a session credit is given back to me", "in_app"),
    Kind("payment_disputed", "Payments", "A payment is disputed (admins)", "email"),
    Kind("payment_problem", "Payments", "A payment of mine fails, or my plan's access changes", "email"),
    Kind("session_record", "Progress", "My coach signs off a record of my session", "email"),
    Kind("program_assigned", "Progress", "A training program is assigned to me", "email"),
    Kind("workout_logged", "Progress", "An athlete logs a workout of a program I assigned (coaches)", "in_app"),
    Kind("workout_comment", "Progress", "Comments on my logged workouts, or on workouts I coach", "email"),
    Kind("habit_reminder", "Progress", "Reminders for my habits, at the time I chose", "in_app"),
    # (The report's own email goes to the athlete and their guardian whatever this says.)
    Kind("progress_report", "Progress", "A progress report about me, or one I asked for, is ready", "in_app"),
)}


class Notification(TenantScoped, db.Model):
    __tablename__ = "notifications"
    __table_args__ = (
        tenant_fk("membership_id", "memberships", "fk_notifications_membership"),
        tenant_fk("actor_membership_id", "memberships", "fk_notifications_actor",
                  ondelete="SET NULL (actor_membership_id)"),
    )

    membership_id: Mapped[uuid.UUID] = mapped_column()
    kind: Mapped[str] = mapped_column(String(32))
    dedupe_key: Mapped[str] = mapped_column(String(160))
    subject_id: Mapped[uuid.UUID | None] = mapped_column()
    actor_membership_id: Mapped[uuid.UUID | None] = mapped_column()
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(String(400), default="")
    url: Mapped[str] = mapped_column(String(400))
    count: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    email_state: Mapped[str | None] = mapped_column(String(8))
    email_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    email_digest: Mapped[bool] = mapped_column(Boolean, default=False)

    @property
    def unread(self) -> bool:
        return self.read_at is None


class NotificationPreference(TenantScoped, db.Model):
    __tablename__ = "notification_preferences"
    __table_args__ = (tenant_fk("membership_id", "memberships", "fk_notification_preferences_membership"),)

    membership_id: Mapped[uuid.UUID] = mapped_column()
    kind: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(8))
    email_timing: Mapped[str] = mapped_column(String(10), default="immediate")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
