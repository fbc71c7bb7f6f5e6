"""Signing in, shared by the blueprints that end in a signed-in person (log in, a sign-in link,
confirm a sign-up, reset or change a password, sign up from an invitation)."""
from __future__ import annotations

from functools import wraps
from urllib.parse import urlsplit

from flask import current_app, flash, request, session, url_for
from flask_login import current_user, login_user

from coach.accounts import service
from coach.extensions import db
from coach.htmx import redirect_after_post
from coach.orgs import service as orgs


def client_country() -> str:
    """The client's country as the proxy names it (the header ``COUNTRY_HEADER`` names, e.g. ``CF-IPCountry``),
    or '' when no header is configured or sent."""
    header = current_app.config.get("COUNTRY_HEADER")
    return (request.headers.get(header, "") if header else "")[:2]


def start_session(user, second_factor: str | None = None) -> None:
    """Log ``user`` in on a fresh session (no state carried over from before login).

    The session is recorded server-side and committed here, before the cookie names it: the
    cookie is worth nothing once that record is revoked (log out, a password change).
    """
    session.clear()
    record = service.open_session(user, request.user_agent.string, request.remote_addr or "",
                                  second_factor=second_factor, country=client_country())
    db.session.commit()
    login_user(user)
    session.permanent = True
    if getattr(record, "deletion_cancelled", False):  # set by the privacy domain's sign-in receiver
        flash("Welcome back. Signing in cancelled the deletion of your account: it stays.", "success")


def landing_url(user) -> str:
    """Where signing in lands without a ``next``: the home of a member of one organization, else the picker."""
    org = orgs.only_organization(user)
    return url_for("orgs.home", slug=org.slug) if org is not None else url_for("orgs.picker")


def fresh_auth_required(view):
    """Only for a person who signed in or confirmed their identity in the last ``REAUTH_WINDOW`` (changing the
    email, password or second factor, deleting the account): anyone else confirms first and comes back."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if not current_user.is_authenticated:
            return current_app.login_manager.unauthorized()
        if not service.recently_authenticated(current_user):
            flash("Confirm it is you to continue.", "info")
            # Back to this page, or (after a form) to the page the form was on.
            back = request.full_path.rstrip("?") if request.method == "GET" else urlsplit(request.referrer or "/").path
            return redirect_after_post(url_for("accounts.reauthenticate", next=back))
        return view(*args, **kwargs)

    return wrapper
