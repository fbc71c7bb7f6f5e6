"""Sign-up, login and logout, password reset, profile; account security (two-factor, passkeys, sessions, the
security log, email and password changes)."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("accounts", __name__)

# The route modules register their views on ``bp`` (imported last: they import ``bp`` from here).
from coach.blueprints.accounts import passkeys, security, twofactor, views  # noqa: E402, F401
