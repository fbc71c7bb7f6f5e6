"""Flask-Login wiring: how a session cookie becomes a user."""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import after_this_request, current_app, flash, g, has_request_context, request, session, url_for

from coach.accounts import service
from coach.extensions import db
from coach.htmx import redirect_after_post, wants_fragment
from coach.platform.tenant_context import first_statement

log = logging.getLogger(__name__)


def setup_login(login_manager) -> None:
    login_manager.login_view = "accounts.login"
    login_manager.login_message = "Log in to continue."
    login_manager.session_protection = "basic"

    @login_manager.user_loader
    def load_user(session_id: str):
        # The cookie names a server-side session: one query finds it live and its user (every request
        # that needs the user pays it, so nothing else happens here unless the session is due a touch),
        # unless the request's first statement already did (an organization's page: see found_session).
        early = g.pop("_session_found", None)
        if early is not None and early[0] == session_id:
            found = early[1]
        else:
            found = first_statement(lambda: service.session_user(session_id))
        if found is None:
            return None
        user, last_seen = found
        if service.due_for_touch(last_seen) and has_request_context():
            _touch_after_response(user.auth_session_id)
            # The cookie's expiry moves with the record's (SESSION_REFRESH_EACH_REQUEST is off: signing the
            # cookie again on every response cost more than the rest of a small page's floor).
            session.modified = True
        return user

    @login_manager.unauthorized_handler
    def unauthorized():
        flash("Log in to continue.", "info")
        # An htmx fragment request gets HX-Redirect: a plain redirect would swap the login page into the form.
        return redirect_after_post(url_for("accounts.login", next=_return_path()))


def cookie_session_id() -> str | None:
    """The server-side session the signed cookie names (where Flask-Login keeps it), not yet checked."""
    return session.get("_user_id")


def found_session(session_id: str, found) -> None:
    """Hand Flask-Login what a statement of this request found for the cookie's session (``(user, last
    seen)``, or ``None`` for a session that is no longer live): loading the user then sends no query of its
    own, and goes through Flask-Login as always (its session protection, the ``user_loaded`` signals)."""
    g._session_found = (session_id, found)


def _touch_after_response(session_id) -> None:
    """Record that the session was used, once the response is sent.

    Not in the request's transaction (a GET never commits it), and not on a second connection while
    the request holds its own (a burst of such requests could take every pooled connection and wait
    for one more): after the response is closed, when the request's connection is back in the pool.
    """
    app = current_app._get_current_object()

    def touch() -> None:
        with app.app_context():
            try:
                service.touch_session(session_id)
                db.session.commit()
            except Exception:  # "last seen" is a convenience: never an error page, at most a log line
                log.warning("could not record that session %s was seen", session_id, exc_info=True)

    @after_this_request
    def _on_close(response):
        response.call_on_close(touch)
        return response


def _return_path() -> str:
    """Where to go back after logging in: this page, or the page a form or fragment was sent from."""
    if request.method == "GET" and not wants_fragment():
        return request.full_path.rstrip("?")
    source = urlsplit(request.headers.get("HX-Current-URL") or request.referrer or "")
    if source.netloc != request.host or not source.path.startswith("/"):
        return "/"
    return source.path + (f"?{source.query}" if source.query else "")
