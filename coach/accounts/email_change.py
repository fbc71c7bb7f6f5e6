"""Changing the email address a person signs in with.

1. :func:`request_change` (after a recent sign-in): a single-use link, valid 24 hours, goes to the NEW address;
   the OLD address is told at once. An address that already has an account gets a notice instead of a link, and
   the page answers the same either way (as the sign-up does: nobody learns from us who has an account).
2. :func:`confirm_change` (the link's button): the address changes, every other session ends, and the old
   address gets an "email changed" notice with an undo link valid 7 days.
3. :func:`undo_change` (the undo link's button): the old address is back, every session ends, open emailed links
   stop working and a password reset link goes to the old address: whoever changed it may know the password.

Only SHA-256 hashes of the links' secrets are stored. The caller commits.
"""
from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import delete, select, update

from coach.accounts import security_log, service
from coach.accounts.models import EmailChange, PasswordResetToken, SignInLink, User
from coach.accounts.service import AccountError
from coach.clock import now
from coach.extensions import db
from coach.platform.mail import queue_email
from coach.security import new_token, token_hash

CONFIRM_TTL = timedelta(hours=24)
UNDO_TTL = timedelta(days=7)
GONE = "This link was already used or has expired."


class LinkGone(AccountError):
    """An email-change or undo link that is unknown, used or expired (410)."""

    status = 410


def pending(user: User) -> EmailChange | None:
    """``user``'s change waiting for its confirmation link, if any (for the security page)."""
    return db.session.scalar(select(EmailChange).where(
        EmailChange.user_id == user.id, EmailChange.confirmed_at.is_(None), EmailChange.expires_at > now()))


def request_change(user: User, new_email: str) -> None:
    """Start changing ``user``'s address to ``new_email``: a confirmation link to it (or, when it already has an
    account, a notice there instead) and a notice to the current address. A newer request replaces an older
    one still waiting."""
    new_email = service.normalize_email(new_email)
    if new_email == service.normalize_email(user.email):
        raise AccountError("That is already your email address.")
    _drop_pending(user)
    security_log.record(user.id, "email.change_requested", new_email=new_email)
    queue_email(user.email, "Your Coach email address is being changed", "email_change_requested", user=user,
                new_email=new_email)
    if service.find_user_by_email(new_email) is not None:
        # Refused, but told only to the owner of that address: the requester sees the same answer as for a free
        # address, so the form cannot be used to learn who has an account.
        queue_email(new_email, "Someone tried to use this address on Coach", "email_change_taken")
        return
    secret, digest = new_token()
    db.session.add(EmailChange(id=uuid.uuid4(), user_id=user.id, old_email=user.email, new_email=new_email,
                               token_hash=digest, expires_at=now() + CONFIRM_TTL))
    queue_email(new_email, "Confirm your new Coach email address", "email_change_confirm", user=user,
                token=secret, ttl_hours=int(CONFIRM_TTL.total_seconds() // 3600))


def cancel(user: User) -> bool:
    """Drop ``user``'s change still waiting for confirmation; whether there was one."""
    return _drop_pending(user) > 0


def _drop_pending(user: User) -> int:
    return db.session.execute(delete(EmailChange).where(
        EmailChange.user_id == user.id, EmailChange.confirmed_at.is_(None))).rowcount


def check_confirm_link(secret: str, *, lock: bool = False) -> EmailChange:
    """The change waiting for ``secret``'s confirmation, or :class:`LinkGone`."""
    query = select(EmailChange).where(EmailChange.token_hash == token_hash(secret))
    change = db.session.scalar(query.with_for_update() if lock else query)
    if change is None or change.confirmed_at is not None or change.expires_at <= now():
        raise LinkGone(f"{GONE} Ask for the change again from your security page.")
    return change


def confirm_change(secret: str, keep_session: uuid.UUID | None = None) -> User:
    """Confirm a change with the link sent to the new address: the account signs in with it from now on.

    :param keep_session: the session of the browser that confirmed, when it is the account's own (it stays
        signed in); every other session of the account ends.
    """
    change = check_confirm_link(secret, lock=True)
    user = db.session.get(User, change.user_id, with_for_update=True)
    taken = service.find_user_by_email(change.new_email)
    if taken is not None and taken.id != user.id:
        db.session.delete(change)
        raise LinkGone("This address has an account of its own now, so it cannot become yours.")
    secret_undo, digest_undo = new_token()
    old_email = user.email
    user.email = change.new_email
    change.confirmed_at = now()
    change.undo_token_hash = digest_undo
    change.undo_expires_at = change.confirmed_at + UNDO_TTL
    _end_sessions(user, keep_session)
    security_log.record(user.id, "email.changed", old_email=old_email, new_email=user.email)
    queue_email(old_email, "Your Coach email address was changed", "email_changed", user=user, old_email=old_email,
                new_email=user.email, token=secret_undo, ttl_days=UNDO_TTL.days)
    return user


def check_undo_link(secret: str, *, lock: bool = False) -> EmailChange:
    """The confirmed change ``secret`` undoes, or :class:`LinkGone`."""
    query = select(EmailChange).where(EmailChange.undo_token_hash == token_hash(secret))
    change = db.session.scalar(query.with_for_update() if lock else query)
    if (change is None or change.undone_at is not None or change.undo_expires_at is None
            or change.undo_expires_at <= now()):
        raise LinkGone(f"{GONE} If your account was taken over, reset your password or ask your organization's "
                       "admin for help.")
    return change


def undo_change(secret: str) -> User:
    """Put the old address back from the notice's undo link: every session ends (whoever changed it is signed
    out), the emailed links still open stop working, and a password reset link goes to the old address."""
    change = check_undo_link(secret, lock=True)
    user = db.session.get(User, change.user_id, with_for_update=True)
    taken = service.find_user_by_email(change.old_email)
    if taken is not None and taken.id != user.id:
        raise LinkGone("Your old address has an account of its own now. Ask your organization's admin for help.")
    user.email = change.old_email
    change.undone_at = now()
    _drop_pending(user)
    for model in (PasswordResetToken, SignInLink):
        db.session.execute(update(model).where(model.user_id == user.id, model.used_at.is_(None))
                           .values(used_at=now()).execution_options(synchronize_session=False))
    service.revoke_all_sessions(user)
    security_log.record(user.id, "email.change_undone", restored=user.email, undone=change.new_email)
    service.request_password_reset(user.email)
    return user


def _end_sessions(user: User, keep_session: uuid.UUID | None) -> None:
    # ``user`` is the signed-in person's own object (the identity map's) when they confirm in a browser where
    # they are signed in: that session goes on. Anyone else's browser keeps nothing of this account.
    if keep_session is not None and user.auth_session_id == keep_session:
        service.revoke_other_sessions(user)
    else:
        service.revoke_all_sessions(user)
