"""Account services: sign-up, authentication, sessions, sign-in links, password reset, profile.

Plain Python over the database session; no request or session access. The
caller commits.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from blinker import Namespace
from flask import current_app
from sqlalchemy import bindparam, func, select, true, update
from sqlalchemy.orm import aliased

from coach.accounts import security_log
from coach.accounts.models import PasswordResetToken, PendingSignup, SignInLink, User, UserSession
from coach.clock import now
from coach.errors import DomainError
from coach.extensions import db
from coach.platform import audit, tenant_context
from coach.platform.mail import queue_email
from coach.security import hash_password, needs_rehash, new_token, token_hash, verify_password

# Sent with the audit action (``login.succeeded`` / ``login.failed``), ``user`` (or None) and ``label`` (the
# email tried). A receiver that recorded the attempt in the user's organizations returns True; when none
# did, it is recorded as a platform event. The organizations layer receives it (accounts knows no
# organizations).
login_attempted = Namespace().signal("login-attempted")

# Sent with ``session_ids`` (the ids of the sessions just revoked, a list) inside the transaction that
# revokes them. A receiver that acts outside the database (chat closes those sessions' sockets) must
# wait for the commit: the caller may still roll back.
sessions_ended = Namespace().signal("sessions-ended")

# Sent with ``session`` (the new ``UserSession``) when a person signs in, inside the transaction that records
# it: what a sign-in changes besides the session (a pending account deletion is cancelled, an unusual sign-in
# is told to its person) connects here.
session_opened = Namespace().signal("session-opened")

SIGNUP_TTL = timedelta(hours=24)
# A session's ``last_seen_at`` is written at most this often: often enough to list sessions by when
# they were last used, rarely enough that a request normally costs one read.
SESSION_TOUCH_EVERY = timedelta(minutes=5)
# Changing the email, password or second factor, or deleting the account, needs a sign-in (or a confirmation
# of identity) within this window.
REAUTH_WINDOW = timedelta(minutes=10)
SECOND_FACTORS = ("totp", "recovery", "passkey")
USER_AGENT_MAX = 200
IP_MAX = 64


class AccountError(DomainError):
    """A request that cannot be carried out; the message is safe to show."""


def normalize_email(email: str) -> str:
    return email.strip().lower()


def find_user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(func.lower(User.email) == normalize_email(email)))


def create_user(email: str, password: str, display_name: str, tz: str = "UTC") -> User:
    """Create an account directly (CLI, seeding, invitation sign-up). Raises if the email is taken."""
    email = normalize_email(email)
    if find_user_by_email(email) is not None:
        raise AccountError("An account with this email already exists.")
    user = User(email=email, password_hash=hash_password(password), display_name=display_name.strip(), timezone=tz)
    db.session.add(user)
    db.session.flush()
    return user


# Where a confirmed sign-up may continue: only the booking of a coach's time started from the public directory
# (``/coaches/<org>/<handle>/book?offering=...&start=...``), a path of this site. Anything else is dropped, so a
# crafted form cannot turn the confirmation into a redirect elsewhere.
CONTINUE_TO_RE = re.compile(r"/coaches/[a-z0-9-]{1,40}/[a-z0-9-]{1,60}/book(\?[A-Za-z0-9._~%&=+:-]*)?")
CONTINUE_TO_MAX = 500


def continue_path(value: str | None) -> str | None:
    """``value`` when a confirmed sign-up may continue there (see ``CONTINUE_TO_RE``), else ``None``."""
    if not value or len(value) > CONTINUE_TO_MAX or not CONTINUE_TO_RE.fullmatch(value):
        return None
    return value


def request_signup(email: str, password: str, display_name: str, tz: str, continue_to: str | None = None) -> None:
    """Start a sign-up: email a confirmation link, or a notice if the address already has an account.

    Both branches hash the password and send one email, so the response reveals nothing.

    :param continue_to: where to go once the link is opened (a booking started from the directory); kept only
        when :func:`continue_path` accepts it.
    """
    email = normalize_email(email)
    password_hash = hash_password(password)
    if find_user_by_email(email) is not None:
        queue_email(email, "You already have a Coach account", "account_exists")
        return
    secret, digest = new_token()
    db.session.add(PendingSignup(email=email, display_name=display_name.strip(), timezone=tz,
                                 password_hash=password_hash, token_hash=digest,
                                 expires_at=now() + SIGNUP_TTL, continue_to=continue_path(continue_to)))
    # No text chosen by the visitor goes into this email: the address is not confirmed yet, so the
    # form must not become a way to send someone else a message (and links) from our domain.
    queue_email(email, "Confirm your Coach account", "confirm_signup", token=secret)


def signup_continues_to(secret: str) -> str | None:
    """Where the open sign-up behind ``secret`` continues once confirmed (checked again), or ``None``."""
    target = db.session.scalar(select(PendingSignup.continue_to).where(PendingSignup.token_hash == token_hash(secret),
                                                                       PendingSignup.expires_at >= now()))
    return continue_path(target)


def confirm_signup(secret: str) -> User:
    """Turn a confirmed sign-up into an account. The link works once."""
    pending = db.session.scalar(
        select(PendingSignup).where(PendingSignup.token_hash == token_hash(secret)).with_for_update()
    )
    if pending is None or pending.expires_at < now():
        raise AccountError("This confirmation link was already used or has expired. "
                           "If you confirmed your account, log in; otherwise sign up again.")
    email = pending.email
    db.session.execute(PendingSignup.__table__.delete().where(func.lower(PendingSignup.email) == email))
    if find_user_by_email(email) is not None:
        raise AccountError("This email address already has an account. Log in instead.")
    user = User(email=email, password_hash=pending.password_hash, display_name=pending.display_name,
                timezone=pending.timezone)
    db.session.add(user)
    db.session.flush()
    return user


def authenticate(email: str, password: str) -> User | None:
    """Return the user for a correct email and password, else ``None`` (same cost either way).

    Both outcomes are written to the audit trail of every organization the account
    belongs to (a failure for an unknown email becomes a platform event); the
    caller commits in both cases.
    """
    user = find_user_by_email(email) if len(email) <= 254 else None
    if not verify_password(user.password_hash if user else None, password):
        _audit_login("login.failed", user, email)
        if user is not None:
            security_log.record(user.id, "login.failed")
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    _audit_login("login.succeeded", user, email)
    security_log.record(user.id, "login.succeeded")
    return user


def _audit_login(action: str, user: User | None, email: str) -> None:
    label = normalize_email(email)[:254]
    receivers = login_attempted.send(action, user=user, label=label)
    if not any(recorded for _, recorded in receivers):
        # Nobody recorded it in an organization (an unknown email, or an account in none): a platform event.
        audit.record(action, actor=user, actor_label=label, tenant_id=None, target_type="user",
                     target_id=user.id if user else None)


# --- sessions ----------------------------------------------------------------------------------------

def session_lifetime() -> timedelta:
    """How long a session lasts unused (``SESSION_LIFETIME_HOURS``, as Flask's permanent session)."""
    lifetime = current_app.config["PERMANENT_SESSION_LIFETIME"]
    return lifetime if isinstance(lifetime, timedelta) else timedelta(seconds=lifetime)


def open_session(user: User, user_agent: str = "", ip: str = "", *, second_factor: str | None = None,
                 country: str = "") -> UserSession:
    """Record a new signed-in session of ``user`` and make it the one ``user.get_id()`` names.

    :param user_agent: the browser's ``User-Agent`` (cut to 200 characters), to tell sessions apart.
    :param ip: the client address it was opened from (cut to 64 characters).
    :param second_factor: what the sign-in proved besides the password (one of ``SECOND_FACTORS``), if anything.
    :param country: the two-letter country the proxy named for the client, or ''.
    """
    if second_factor is not None and second_factor not in SECOND_FACTORS:
        raise ValueError(f"unknown second factor {second_factor!r}")
    at = now()
    country = _printable(country).upper()
    record = UserSession(id=uuid.uuid4(), user_id=user.id, created_at=at, last_seen_at=at,
                         user_agent=_printable(user_agent)[:USER_AGENT_MAX], ip=_printable(ip)[:IP_MAX],
                         second_factor=second_factor, reauthenticated_at=at,
                         country=country if len(country) == 2 and country.isalpha() else "")
    db.session.add(record)
    db.session.flush()
    user.auth_session_id = record.id
    session_opened.send(user, session=record)
    return record


def current_session(user: User) -> UserSession | None:
    """The session ``user`` was loaded for (this request's), if any."""
    return db.session.get(UserSession, user.auth_session_id) if user.auth_session_id else None


def recently_authenticated(user: User) -> bool:
    """Whether ``user`` signed in or confirmed their identity on this session within ``REAUTH_WINDOW``."""
    record = current_session(user)
    return bool(record and record.reauthenticated_at and record.reauthenticated_at > now() - REAUTH_WINDOW)


def mark_reauthenticated(user: User) -> None:
    """Note that ``user`` just proved who they are again on this session (the caller commits)."""
    record = current_session(user)
    if record is not None:
        record.reauthenticated_at = now()


def _printable(value: str | None) -> str:
    # PostgreSQL refuses NUL in text, and a header can carry anything.
    return "".join(ch for ch in (value or "") if ch.isprintable())


def parse_session_id(session_id) -> uuid.UUID | None:
    """The session id a cookie names, or ``None`` for a cookie from before server-side sessions, or junk."""
    try:
        return session_id if isinstance(session_id, uuid.UUID) else uuid.UUID(str(session_id))
    except (TypeError, ValueError):
        return None


def live_session_params(sid: uuid.UUID) -> dict:
    """The parameters of :func:`session_row` for the session ``sid``."""
    return {"session_id": sid, "seen_after": now() - session_lifetime()}


def session_row():
    """A subquery of at most one row: the user of a live session (``User``'s columns) and when the session was
    last seen (``last_seen_at``); its parameters come from :func:`live_session_params`. A session is live while
    not revoked and used within the lifetime: every lookup of a session by its cookie uses this, so a revoked
    session fails on its next request.

    A statement that sets ``app.user_id`` from it (a ``LATERAL`` subquery on it) sees this one row only: the
    limit keeps PostgreSQL from merging it into the outer query.
    """
    return (select(User, UserSession.last_seen_at).join(UserSession, UserSession.user_id == User.id)
            .where(UserSession.id == bindparam("session_id"), UserSession.revoked_at.is_(None),
                   UserSession.last_seen_at > bindparam("seen_after"))
            .limit(1).subquery("who"))


@cache
def _session_user_statement():
    # Built once: the statement is the same for every request (only its parameters change), and SQLAlchemy
    # then reuses its compiled form without rebuilding the subqueries each time.
    who = session_row()
    acting = tenant_context.set_user_setting(who.c.id).lateral("acting")
    return select(aliased(User, who), who.c.last_seen_at, acting.c.user_id).select_from(who).join(acting, true())


def session_user(session_id: str) -> tuple[User, datetime] | None:
    """The user of a live session and when it was last seen, in one statement that also tells PostgreSQL
    who is acting (``app.user_id``, for the policies that show a user their own rows); ``None`` for a
    session that is unknown, revoked or unused for longer than the session lifetime (nothing is set then)."""
    sid = parse_session_id(session_id)
    if sid is None:
        return None
    row = db.session.execute(_session_user_statement(), live_session_params(sid)).first()
    if row is None:
        return None
    user, last_seen, user_setting = row
    tenant_context.applied_user(tenant_context.checked(user_setting, user.id))
    user.auth_session_id = sid
    return user, last_seen


def due_for_touch(last_seen: datetime) -> bool:
    return last_seen < now() - SESSION_TOUCH_EVERY


def touch_session(session_id: uuid.UUID) -> None:
    """Mark a live session as seen now (the caller commits)."""
    db.session.execute(
        update(UserSession)
        .where(UserSession.id == session_id, UserSession.revoked_at.is_(None),
               UserSession.last_seen_at < now() - SESSION_TOUCH_EVERY)
        .values(last_seen_at=now())
        .execution_options(synchronize_session=False)
    )


def live_sessions(user: User) -> list[UserSession]:
    """``user``'s sessions that still open pages, most recently used first (for a sessions page)."""
    return list(db.session.scalars(
        select(UserSession)
        .where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None),
               UserSession.last_seen_at > now() - session_lifetime())
        .order_by(UserSession.last_seen_at.desc(), UserSession.id)
    ))


def revoke_session(user: User, session_id) -> bool:
    """End one of ``user``'s own sessions (logging out, or "sign out" on a sessions page); ``False``
    if it is not theirs or already ended. Its open sockets close once the caller commits."""
    sid = parse_session_id(session_id)
    if sid is None:
        return False
    return bool(_revoke(UserSession.user_id == user.id, UserSession.id == sid))


def revoke_other_sessions(user: User) -> list[uuid.UUID]:
    """End every session of ``user`` but the one this request runs in ("sign out everywhere else")."""
    return _revoke(UserSession.user_id == user.id, UserSession.id != user.auth_session_id)


def revoke_all_sessions(user: User) -> list[uuid.UUID]:
    """End every session of ``user`` (a password change or reset; the caller opens a new one)."""
    return _revoke(UserSession.user_id == user.id)


def _revoke(*where) -> list[uuid.UUID]:
    ended = list(db.session.scalars(
        update(UserSession).where(*where, UserSession.revoked_at.is_(None)).values(revoked_at=now())
        .returning(UserSession.id).execution_options(synchronize_session=False)
    ))
    if ended:
        sessions_ended.send(None, session_ids=ended)
    return ended


# --- sign-in links ------------------------------------------------------------------------------------

def request_sign_in_link(email: str) -> None:
    """Email a single-use sign-in link if the account exists; do nothing visible otherwise.

    The way in that no stranger can lock: failed password attempts from elsewhere only slow the
    account down, and this link does not go through the password at all.
    """
    user = find_user_by_email(email) if len(email) <= 254 else None
    if user is None:
        return
    secret, digest = new_token()
    ttl = current_app.config["SIGNIN_LINK_TTL_MINUTES"]
    db.session.add(SignInLink(user_id=user.id, token_hash=digest, expires_at=now() + timedelta(minutes=ttl)))
    queue_email(user.email, "Your Coach sign-in link", "sign_in_link", token=secret, user=user, ttl_minutes=ttl)


def _live_token(model, secret: str, lock: bool, what: str):
    """The unused, unexpired emailed token of ``model`` for ``secret`` (locked with ``lock``), or AccountError."""
    query = select(model).where(model.token_hash == token_hash(secret))
    if lock:
        query = query.with_for_update()
    token = db.session.scalar(query)
    if token is None or token.used_at is not None or token.expires_at < now():
        raise AccountError(f"This {what} is invalid, expired or already used. Request a new one.")
    return token


def check_sign_in_link(secret: str, *, lock: bool = False) -> SignInLink:
    """The unused, unexpired link for ``secret``, or :class:`AccountError`."""
    return _live_token(SignInLink, secret, lock, "sign-in link")


def use_sign_in_link(secret: str) -> User:
    """Spend a sign-in link: the user it signs in. The link, and every other open link of the user,
    stop working (the row lock makes two clicks at once spend it once)."""
    link = check_sign_in_link(secret, lock=True)
    db.session.execute(
        update(SignInLink).where(SignInLink.user_id == link.user_id, SignInLink.used_at.is_(None))
        .values(used_at=now()).execution_options(synchronize_session=False)
    )
    user = db.session.get(User, link.user_id)
    _audit_login("login.link_used", user, user.email)
    security_log.record(user.id, "login.link_used")
    return user


# --- passwords ----------------------------------------------------------------------------------------

def request_password_reset(email: str) -> None:
    """Email a single-use reset link if the account exists; do nothing visible otherwise."""
    user = find_user_by_email(email)
    if user is None:
        return
    secret, digest = new_token()
    ttl = timedelta(minutes=current_app.config["PASSWORD_RESET_TTL_MINUTES"])
    db.session.add(PasswordResetToken(user_id=user.id, token_hash=digest, expires_at=now() + ttl))
    queue_email(user.email, "Reset your Coach password", "password_reset", token=secret, user=user,
                ttl_minutes=current_app.config["PASSWORD_RESET_TTL_MINUTES"])


@dataclass
class ResetCheck:
    token: PasswordResetToken
    user: User


def check_reset_token(secret: str, *, lock: bool = False) -> ResetCheck:
    """Find the unused, unexpired reset token for ``secret`` or raise :class:`AccountError`."""
    token = _live_token(PasswordResetToken, secret, lock, "password reset link")
    return ResetCheck(token=token, user=db.session.get(User, token.user_id))


def reset_password(secret: str, new_password: str) -> User:
    """Set a new password with a reset link; the link and every other open link stop working."""
    check = check_reset_token(secret, lock=True)
    user = check.user
    _set_password(user, new_password, "password.reset")
    db.session.execute(
        update(PasswordResetToken)
        .where(PasswordResetToken.user_id == user.id, PasswordResetToken.used_at.is_(None))
        .values(used_at=now())
    )
    return user


def change_password(user: User, current_password: str, new_password: str) -> None:
    if not verify_password(user.password_hash, current_password):
        raise AccountError("The current password is not correct.")
    _set_password(user, new_password, "password.changed")


def _set_password(user: User, new_password: str, action: str) -> None:
    user.password_hash = hash_password(new_password)
    user.password_changed_at = now()
    security_log.record(user.id, action)
    user.session_version = (user.session_version or 1) + 1
    # Every session ends, this one too: whoever knew the old password may hold one. The caller opens
    # a fresh session for the person who just proved they know the new one.
    revoke_all_sessions(user)


def update_profile(user: User, display_name: str, tz: str) -> None:
    user.display_name = display_name.strip()
    user.timezone = tz
    user.profile_confirmed_at = now()  # onboarding's profile step: they saw both and saved


def set_hour_cycle(user: User, hour_cycle: int) -> None:
    """The person's clock on every page: 12 hours ("2:30 pm") or 24 ("14:30")."""
    if hour_cycle not in (12, 24):
        raise AccountError("Choose a 12-hour or a 24-hour clock.")
    user.hour_cycle = hour_cycle
