"""Hardening findings (issue 15): cross-site POSTs refused on plain HTTP, a database that is away answers
503 (logged, with Retry-After) instead of 500."""
from __future__ import annotations

import logging
import threading

from coach import create_app
from tests.conftest import csrf_from
from tests.factories import make_user

EVIL = "https://evil.example"


def _profile_form(client) -> dict:
    token = csrf_from(client.get("/profile").get_data(as_text=True))
    return {"csrf_token": token, "display_name": "Changed By Someone", "timezone": "Europe/Berlin"}


def _name(app, user_id) -> str:
    from coach.accounts.models import User
    from coach.extensions import db

    with app.app_context():
        return db.session.get(User, user_id).display_name


def test_a_post_from_another_site_is_refused_even_with_a_valid_token_on_plain_http(app, client, auth, ctx):
    user = make_user("ada@example.com", "Ada")
    auth.login("ada@example.com")
    refused = client.post("/profile", data=_profile_form(client), headers={"Origin": EVIL})
    assert refused.status_code == 403
    assert "from another site" in refused.get_data(as_text=True)
    fetch_meta = client.post("/profile", data=_profile_form(client), headers={"Sec-Fetch-Site": "cross-site"})
    assert fetch_meta.status_code == 403
    null_origin = client.post("/profile", data=_profile_form(client), headers={"Origin": "null"})
    assert null_origin.status_code == 403
    assert _name(app, user.id) == "Ada"


def test_a_post_from_our_own_pages_goes_through(app, client, auth, ctx):
    user = make_user("ada@example.com", "Ada")
    auth.login("ada@example.com")
    same = client.post("/profile", data=_profile_form(client),
                       headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"})
    assert same.status_code in (200, 303)
    assert _name(app, user.id) == "Changed By Someone"
    # No Origin and no fetch metadata (a non-browser client): the CSRF token alone decides.
    plain = client.post("/profile", data={**_profile_form(client), "display_name": "Plain"})
    assert plain.status_code in (200, 303)
    assert _name(app, user.id) == "Plain"


def test_a_database_that_is_away_answers_503_with_retry_after_and_the_request_is_logged(app, caplog):
    away = create_app({**{k: app.config[k] for k in ("COACH_ENV", "SECRET_KEY", "REDIS_URL", "MEDIA_LOCAL_ROOT")},
                       # Nothing listens on port 1: every connection attempt is refused at once.
                       "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://coach_app@127.0.0.1:1/coach",
                       "WTF_CSRF_ENABLED": False})
    client = away.test_client()
    with caplog.at_level(logging.INFO, logger="coach.request"):
        # An invitation link looks its organization up first: the first query of the request fails.
        response = client.get("/invitations/harbour/some-token")
    assert response.status_code == 503
    # Ours says 5 s; Flask-Limiter raises any Retry-After to the reset of the request's current window.
    assert int(response.headers["Retry-After"]) >= 5
    assert "database is not answering" in response.get_data(as_text=True)
    statuses = [getattr(r, "fields", {}).get("status") for r in caplog.records if r.name == "coach.request"]
    assert statuses == [503]


def test_a_sign_in_runs_no_query_once_its_view_has_answered(app, client, auth, ctx):
    """What runs after the view (the request's log line, the headers) reads no row: a query there happens
    outside every error handler, so a database going away at that moment (CI caught a PostgreSQL restart
    between a sign-in's commit and its log line) was a 500 instead of a 503."""
    from flask import after_this_request
    from flask_login import user_logged_in
    from sqlalchemy import event

    from coach.extensions import db

    make_user("ada@example.com", "Ada")
    answered = []
    late_statements = []

    def _answered(sender, user):
        @after_this_request
        def _mark(response):
            answered.append(response.status_code)
            return response

    request_thread = threading.get_ident()  # the test client serves the request in this thread

    def _statement(conn, cursor, statement, *args):
        # Only the request's own statements: the background relay (job_runner) claims the outbox on the same
        # engine from its own thread, whenever it wakes.
        if answered and threading.get_ident() == request_thread:
            late_statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", _statement)
    try:
        with user_logged_in.connected_to(_answered, app):
            response = auth.login("ada@example.com")
    finally:
        event.remove(engine, "before_cursor_execute", _statement)
    assert response.status_code == 303
    assert answered == [303]
    assert late_statements == []


def test_a_database_lost_after_the_view_answered_is_a_503_and_logged_not_a_500(app, caplog):
    """Whatever still queries after the view (a hook, a lazy attribute) and finds the database away ends in the
    same 503 with Retry-After as a view would, logged once, instead of Flask's bare 500."""
    from flask import after_this_request
    from sqlalchemy import text

    from coach.extensions import db

    away = create_app({**{k: app.config[k] for k in ("COACH_ENV", "SECRET_KEY", "REDIS_URL", "MEDIA_LOCAL_ROOT")},
                       "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://coach_app@127.0.0.1:1/coach",
                       "WTF_CSRF_ENABLED": False,
                       # As in production: an exception outside the view is answered, not raised to the test.
                       "PROPAGATE_EXCEPTIONS": False})

    @away.get("/late-query")
    def late_query():
        queried = []

        @after_this_request
        def _query(response):
            # A lazy load of what the view left behind: once (the error answer runs the hooks again, by then
            # with nothing left to load).
            if not queried:
                queried.append(True)
                db.session.execute(text("SELECT 1"))
            return response
        return "answered"

    with caplog.at_level(logging.INFO):
        response = away.test_client().get("/late-query")
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 5
    assert "database is not answering" in response.get_data(as_text=True)
    statuses = [getattr(r, "fields", {}).get("status") for r in caplog.records if r.name == "coach.request"]
    assert statuses == [503]
    assert any("database unavailable" in r.getMessage() for r in caplog.records)


def test_a_page_about_another_organization_does_not_name_it(app, client, auth, ctx):
    """A member of one organization who opens a link of another (a calendar feed with a wrong secret) learns
    nothing about it: not its name, and the same 404 as for an organization that does not exist."""
    from tests.factories import make_org

    make_org(name="Secretive Sailing Club", slug="secretive")
    make_org(make_user("ada@example.com", "Ada"), name="Open Rowing", slug="open-rowing")
    auth.login("ada@example.com")
    theirs = client.get("/o/secretive/calendar/not-the-secret.ics")
    nobody = client.get("/o/no-such-club/calendar/not-the-secret.ics")
    assert theirs.status_code == nobody.status_code == 404
    assert "Secretive" not in theirs.get_data(as_text=True)
    assert theirs.get_data(as_text=True) == nobody.get_data(as_text=True)


def test_a_nul_in_any_form_field_is_a_message_on_the_field_not_a_database_error(app, client, auth, ctx):
    """PostgreSQL refuses NUL in text; every form (here the audit filter, whose fields have no validator of
    their own) refuses it with a message instead of a 500."""
    from tests.factories import make_org

    make_org(make_user("ada@example.com", "Ada"), slug="harbour")
    auth.login("ada@example.com")
    refused = client.get("/o/harbour/admin/audit?actor=Ada%00")
    assert refused.status_code == 422
    assert "cannot contain a NUL character" in refused.get_data(as_text=True)
    assert client.get("/o/harbour/admin/audit?actor=Ada").status_code == 200
