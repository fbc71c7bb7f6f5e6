"""Flask-Login wiring: how a session cookie becomes a user."""
from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from flask import flash, request, url_for

from coach.accounts.models import User
from coach.extensions import db
from coach.htmx import redirect_after_post, wants_fragment


def setup_login(login_manager) -> None:
    login_manager.login_view = "accounts.login"
    login_manager.login_message = "Log in to continue."
    login_manager.session_protection = "basic"

    @login_manager.user_loader
    def load_user(session_id: str):
        # The id carries the session version: a password change ends other sessions.
        user_id, _, version = session_id.partition(":")
        try:
            uid = uuid.UUID(user_id)
            ver = int(version)
        except ValueError:
            return None
        user = db.session.get(User, uid)
        if user is None or user.session_version != ver:
            return None
        return user

    @login_manager.unauthorized_handler
    def unauthorized():
        flash("Log in to continue.", "info")
        # An htmx fragment request gets HX-Redirect: a plain redirect would swap the login page into the form.
        return redirect_after_post(url_for("accounts.login", next=_return_path()))


def _return_path() -> str:
    """Where to go back after logging in: this page, or the page a form or fragment was sent from."""
    if request.method == "GET" and not wants_fragment():
        return request.full_path.rstrip("?")
    source = urlsplit(request.headers.get("HX-Current-URL") or request.referrer or "")
    if source.netloc != request.host or not source.path.startswith("/"):
        return "/"
    return source.path + (f"?{source.query}" if source.query else "")
