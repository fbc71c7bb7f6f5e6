"""Flask-Login wiring: how a session cookie becomes a user."""
from __future__ import annotations

import uuid

from flask import flash, redirect, request, url_for

from coach.accounts.models import User
from coach.extensions import db


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
        target = request.full_path if request.method == "GET" else request.referrer or "/"
        return redirect(url_for("accounts.login", next=target.rstrip("?")), 303)
