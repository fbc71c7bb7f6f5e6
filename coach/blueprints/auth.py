"""Signing in, shared by the blueprints that end in a signed-in person (log in, a sign-in link,
confirm a sign-up, reset or change a password, sign up from an invitation)."""
from __future__ import annotations

from flask import request, session
from flask_login import login_user

from coach.accounts import service
from coach.extensions import db


def start_session(user) -> None:
    """Log ``user`` in on a fresh session (no state carried over from before login).

    The session is recorded server-side and committed here, before the cookie names it: the
    cookie is worth nothing once that record is revoked (log out, a password change).
    """
    session.clear()
    service.open_session(user, request.user_agent.string, request.remote_addr or "")
    db.session.commit()
    login_user(user)
    session.permanent = True
