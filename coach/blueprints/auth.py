"""Signing in, shared by the blueprints that end in a signed-in person (log in, confirm a sign-up,
reset a password, sign up from an invitation)."""
from __future__ import annotations

from flask import session
from flask_login import login_user


def start_session(user) -> None:
    """Log ``user`` in on a fresh session (no state carried over from before login)."""
    session.clear()
    login_user(user)
    session.permanent = True
