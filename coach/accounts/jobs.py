"""Account sweeps: sign-ups never confirmed, reset and sign-in links long past use, ended sessions, email changes
past their links."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, or_

from coach.accounts.models import EmailChange, PasswordResetToken, PendingSignup, SignInLink, UserSession
from coach.accounts.service import session_lifetime
from coach.clock import now
from coach.extensions import db
from coach.platform.periodic import periodic

# Ended sessions stay this long (a sessions page can say "signed out yesterday"), then go.
KEEP_ENDED = timedelta(days=7)


@periodic(every=3600)
def sweep_expired_tokens() -> int:
    """Delete expired pending sign-ups, reset and sign-in links a week past their expiry, and sessions
    a week after they ended (revoked, or unused for the session lifetime); returns how many."""
    at = now()
    removed = db.session.execute(delete(PendingSignup).where(PendingSignup.expires_at < at)).rowcount
    removed += db.session.execute(
        delete(PasswordResetToken).where(PasswordResetToken.expires_at < at - KEEP_ENDED)).rowcount
    removed += db.session.execute(delete(SignInLink).where(SignInLink.expires_at < at - KEEP_ENDED)).rowcount
    # An email change goes once no link of it can work: never confirmed and expired, or past its undo window (the
    # security log keeps what happened).
    removed += db.session.execute(delete(EmailChange).where(or_(
        (EmailChange.confirmed_at.is_(None)) & (EmailChange.expires_at < at - KEEP_ENDED),
        EmailChange.undo_expires_at < at - KEEP_ENDED,
    ))).rowcount
    removed += db.session.execute(delete(UserSession).where(or_(
        UserSession.revoked_at < at - KEEP_ENDED,
        UserSession.last_seen_at < at - session_lifetime() - KEEP_ENDED,
    ))).rowcount
    db.session.commit()
    return removed
