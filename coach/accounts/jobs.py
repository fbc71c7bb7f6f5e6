"""Account sweeps: sign-ups never confirmed and reset tokens long past use."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete

from coach.accounts.models import PasswordResetToken, PendingSignup
from coach.clock import now
from coach.extensions import db
from coach.platform.periodic import periodic


@periodic(every=3600)
def sweep_expired_tokens() -> int:
    """Delete expired pending sign-ups and reset tokens a week past their expiry; returns how many."""
    at = now()
    removed = db.session.execute(delete(PendingSignup).where(PendingSignup.expires_at < at)).rowcount
    removed += db.session.execute(
        delete(PasswordResetToken).where(PasswordResetToken.expires_at < at - timedelta(days=7))).rowcount
    db.session.commit()
    return removed
