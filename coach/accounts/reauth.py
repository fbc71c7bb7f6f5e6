"""Confirming identity again on a signed-in session (before changing the email, password or second factor,
or deleting the account): the password, or a two-factor code for an account that has one."""
from __future__ import annotations

from coach.accounts import security_log, twofactor
from coach.accounts.models import User
from coach.accounts.service import mark_reauthenticated
from coach.security import verify_password

WRONG = "That is not correct. Try again."


def confirm_identity(user: User, password: str = "", code: str = "") -> bool:
    """Accept ``user``'s password (or, when they have two-factor, a current code) as proof that they are at the
    keyboard: the session counts as freshly authenticated for ``REAUTH_WINDOW``. Either outcome is written to
    their security log (the caller commits either way); ``False`` for a wrong answer."""
    if password and verify_password(user.password_hash, password):
        how = "password"
    elif code and _code_accepted(user, code):
        how = "code"
    else:
        security_log.record(user.id, "reauth.failed")
        return False
    mark_reauthenticated(user)
    security_log.record(user.id, "reauth.succeeded", method=how)
    return True


def has_code(user: User) -> bool:
    """Whether ``user`` can confirm with a two-factor code instead of the password."""
    return twofactor.is_enabled(user)


def _code_accepted(user: User, code: str) -> bool:
    return twofactor.is_enabled(user) and twofactor.check_code(user, code)
