from __future__ import annotations

import uuid
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, Integer, String, func, text
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
    # Bumped on every password change or reset (kept as a count of them; sessions themselves end
    # through their ``user_sessions`` rows).
    session_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

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
