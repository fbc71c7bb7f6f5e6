from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from coach.accounts.models import User
from coach.dbutil import TenantScoped, tenant_fk
from coach.extensions import db

# The roles a member has in an organization; code names them by these constants, never by literals.
ADMIN, COACH, ATHLETE, SCHEDULER = "admin", "coach", "athlete", "scheduler"
ROLES = (ADMIN, COACH, ATHLETE, SCHEDULER)
# Who may run the organization's schedule for others (book on an athlete's behalf, edit any coach's hours).
STAFF = (ADMIN, SCHEDULER)
ROLE_LABELS = {ADMIN: "Admin", COACH: "Coach", ATHLETE: "Athlete", SCHEDULER: "Scheduler"}
_ROLE_CHECK = "role IN ('admin', 'coach', 'athlete', 'scheduler')"
# Who may create spaces in an organization (``Organization.space_creation``): admins only, coaches and admins
# (the default), or every member.
SPACE_CREATORS = {"admins": (ADMIN,), "leaders": (ADMIN, COACH), "members": ROLES}


class Organization(db.Model):
    """The tenant: a club, academy, team or independent coach."""

    __tablename__ = "organizations"
    __table_args__ = (
        CheckConstraint("slug ~ '^[a-z0-9]([a-z0-9-]{1,38})[a-z0-9]$'", name="slug_format"),
        CheckConstraint("char_length(name) BETWEEN 1 AND 120", name="name_length"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Room for media in bytes; None means the MEDIA_QUOTA_BYTES default (migration 0006).
    media_quota_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # Settings (migration 0016; the admin's Settings page).
    locale: Mapped[str] = mapped_column(String(16), default="en", server_default="en")
    # Who may create spaces: SPACE_CREATORS above.
    space_creation: Mapped[str] = mapped_column(String(16), default="leaders", server_default="leaders")
    # Whether the organization's coaches appear in the public directory (each coach may still opt out).
    listed_publicly: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    # Admins and coaches must have a second factor (TOTP or a passkey) to use the organization.
    require_two_factor: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    # Chat messages and audit events older than this many days are deleted by a nightly job (None: kept).
    chat_retention_days: Mapped[int | None] = mapped_column(Integer)
    audit_retention_days: Mapped[int | None] = mapped_column(Integer)
    # Session recordings are deleted this many days after they were made unless kept; None: never.
    recording_retention_days: Mapped[int | None] = mapped_column(Integer, default=90, server_default="90")
    # Branding: '#rrggbb' (contrast checked), the resized logo's storage key, and a version that names the
    # organization's stylesheet so a browser never keeps an old one.
    accent_color: Mapped[str | None] = mapped_column(String(7))
    logo_key: Mapped[str | None] = mapped_column(String(300))
    branding_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Closing: asked for by an admin, erased once due unless cancelled.
    closing_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closing_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The cancellation policy new offerings start with (the settings page; each offering keeps its own).
    default_cancellation_window_hours: Mapped[int] = mapped_column(SmallInteger, default=24, server_default="24")
    default_late_cancel_policy: Mapped[str] = mapped_column(String(8), default="forfeit", server_default="forfeit")
    default_late_cancel_fee_percent: Mapped[int] = mapped_column(SmallInteger, default=50, server_default="50")
    # An admin kept or changed the time zone (onboarding's "Looks right", or saving the settings page; 0022).
    timezone_confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Membership(TenantScoped, db.Model):
    """A user's role in one organization."""

    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id", name="uq_memberships_tenant_id_id"),
        UniqueConstraint("tenant_id", "user_id", name="uq_memberships_tenant_id_user_id"),
        CheckConstraint(_ROLE_CHECK, name="role_valid"),
        Index("ix_memberships_user_id", "user_id"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # The member hid their getting-started checklist on the home page (0022).
    onboarding_dismissed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)
    # The tenant key is the organization's id (TenantScoped declares no foreign key for it; the schema does).
    organization: Mapped[Organization] = relationship(
        primaryjoin="Membership.tenant_id == Organization.id", foreign_keys="Membership.tenant_id",
        viewonly=True, lazy="joined", innerjoin=True)


class Invitation(TenantScoped, db.Model):
    """An emailed invitation to join an organization with a role. Only a hash of the secret is stored."""

    __tablename__ = "invitations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id", name="uq_invitations_tenant_id_id"),
        CheckConstraint(_ROLE_CHECK, name="role_valid"),
        CheckConstraint("char_length(email) <= 254", name="email_length"),
        tenant_fk("invited_by_membership_id", "memberships", "fk_invitations_inviter_membership",
                  ondelete="SET NULL (invited_by_membership_id)"),
        # One open invitation per address per organization.
        Index(
            "uq_invitations_open_email",
            "tenant_id",
            func.lower(db.text("email")),
            unique=True,
            postgresql_where=db.text("accepted_at IS NULL AND revoked_at IS NULL"),
        ),
    )

    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by_membership_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    accepted_by_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
