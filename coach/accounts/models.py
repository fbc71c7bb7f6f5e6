from __future__ import annotations

import uuid
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from coach.extensions import db


class User(UserMixin, db.Model):
    """A person. Global: one account may belong to several organizations."""

    __tablename__ = "users"
    __table_args__ = (
        Index("uq_users_email_lower", func.lower(text("email")), unique=True),
        CheckConstraint("char_length(display_name) BETWEEN 1 AND 100", name="display_name_length"),
        CheckConstraint("char_length(email) <= 254", name="email_length"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # How the person reads clock times: 24 ("14:30") or 12 ("2:30 pm").
    hour_cycle: Mapped[int] = mapped_column(SmallInteger, default=24)
    # Bumped on every password change or reset (kept as a count of them; sessions themselves end
    # through their ``user_sessions`` rows).
    session_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # The person checked their name and time zone (onboarding's "Looks right", or saving the profile; 0022).
    profile_confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Two-factor by TOTP (migration 0016): the secret sealed with the app's key (accounts.twofactor), set at
    # enrolment and live once confirmed (``totp_enabled_at``); the last time step accepted, so a code works once.
    totp_secret: Mapped[str | None] = mapped_column(String(300))
    totp_enabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    # Granted by ``flask platform-admin`` only: the operators' console (no tenant's content).
    platform_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    password_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Deleting the account: asked for, erased once due unless cancelled (by logging in); ``erased_at`` once done.
    deletion_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deletion_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deletion_erase_content: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # The server-side session this object was loaded for (set by the user loader and by
    # ``start_session``; not a column). Flask-Login keeps ``get_id()`` in the cookie, so the cookie
    # names the session record, and revoking the record ends the cookie wherever it was copied to.
    auth_session_id = None  # a uuid.UUID once set

    def get_id(self) -> str:
        if self.auth_session_id is None:
            raise RuntimeError("log a user in with accounts.service.open_session (start_session does)")
        return str(self.auth_session_id)


class UserSession(db.Model):
    """One signed-in browser: the cookie carries only this row's id, and the row decides.

    Global like ``users`` (no organization, no RLS). A session is live while ``revoked_at`` is NULL
    and it was seen within the session lifetime.
    """

    __tablename__ = "user_sessions"
    __table_args__ = (
        CheckConstraint("char_length(user_agent) <= 200", name="user_agent_length"),
        CheckConstraint("char_length(ip) <= 64", name="ip_length"),
    )

    # uuid4 draws its 122 random bits from os.urandom: unguessable, and the cookie that carries it
    # is signed besides.
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    user_agent: Mapped[str] = mapped_column(String(200), default="")
    ip: Mapped[str] = mapped_column(String(64), default="")
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What the sign-in proved beyond the password ('totp', 'recovery', 'passkey'), when its person last
    # re-entered a password or code (the recent sign-in that sensitive changes ask for), and the country
    # the proxy named (a two-letter code, or '').
    second_factor: Mapped[str | None] = mapped_column(String(16))
    reauthenticated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    country: Mapped[str] = mapped_column(String(2), default="", server_default="")


class RecoveryCode(db.Model):
    """One of a user's single-use two-factor recovery codes (a SHA-256 hash only; shown once at creation)."""

    __tablename__ = "recovery_codes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Passkey(db.Model):
    """A WebAuthn credential registered by a user (a passkey): signs them in without password or code."""

    __tablename__ = "passkeys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    credential_id: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    transports: Mapped[str] = mapped_column(String(200), default="", server_default="")  # comma-separated
    backed_up: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    name: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SecurityEvent(db.Model):
    """One line of a person's own security log (sign-ins, failures, second-factor and password changes,
    exports...): theirs to read on the security page, kept with the account."""

    __tablename__ = "security_events"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    ip: Mapped[str] = mapped_column(String(64), default="", server_default="")
    user_agent: Mapped[str] = mapped_column(String(200), default="", server_default="")
    detail: Mapped[dict] = mapped_column(JSONB, default=dict, server_default=text("'{}'::jsonb"))


class EmailChange(db.Model):
    """A change of email address: confirmed by a link sent to the new address; the old address is told,
    with an undo link that puts it back (for some days after)."""

    __tablename__ = "email_changes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    old_email: Mapped[str] = mapped_column(String(254))
    new_email: Mapped[str] = mapped_column(String(254))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    undo_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    undo_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    undone_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ExportColumns:
    """The columns of a data export (a person's, or an organization's): a job builds a ZIP into storage."""

    status: Mapped[str] = mapped_column(String(16), default="queued", server_default="queued")
    progress: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    object_key: Mapped[str | None] = mapped_column(String(300))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AccountExport(ExportColumns, db.Model):
    """A person's export of their own data, across every organization they belong to."""

    __tablename__ = "account_exports"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))


class EmailedToken:
    """The columns of a single-use, expiring link sent by email: only a hash of its secret is stored."""

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SignInLink(EmailedToken, db.Model):
    """An emailed single-use sign-in link (the way in while password attempts are refused or slowed).
    Only a hash of the secret is stored."""

    __tablename__ = "sign_in_links"



class PasswordResetToken(EmailedToken, db.Model):
    """A single-use, expiring password reset link. Only a hash of the secret is stored."""

    __tablename__ = "password_reset_tokens"



class PendingSignup(db.Model):
    """A sign-up waiting for its email address to be confirmed.

    No account exists until the link in the confirmation email is opened, so a
    sign-up answers the same whether or not the address is taken.
    """

    __tablename__ = "pending_signups"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(254))
    display_name: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(255))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Where to go once confirmed (a path of this site: a booking started from the public directory).
    continue_to: Mapped[str | None] = mapped_column(String(500))
