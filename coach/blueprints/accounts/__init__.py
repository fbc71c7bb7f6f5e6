"""Sign-up, login and logout, password reset, profile."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("accounts", __name__)

# The route modules register their views on ``bp`` (imported last: they import ``bp`` from here).
from coach.blueprints.accounts import views  # noqa: E402, F401
