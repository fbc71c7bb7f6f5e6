"""What every organization page pays before its own work (issue 23, section 2): one statement finds the
session's user, the organization and the membership and sets the tenant settings; nothing of it is kept
between requests, so a revoked session or a removed membership is refused on the very next request; a pooled
connection the server closed does not fail the request that draws it."""
from __future__ import annotations

import threading
import time

import psycopg
import pytest
from sqlalchemy import event, select, text

from coach.accounts import service as accounts
from coach.accounts.models import UserSession
from coach.devstack import socket_dir_of
from coach.extensions import db
from coach.notifications import service as notifications
from coach.orgs import service as orgs
from tests.conftest import Auth
from tests.factories import add_member, make_org, make_user

IDENTITY_TABLES = ("user_sessions", "organizations", "memberships")


@pytest.fixture()
def club(ctx):
    """Harbour Rowing: Ada (admin) and Abe (athlete), each signed in in a browser of their own."""
    ada = make_user("ada@example.com", "Ada Admin")
    org = make_org(ada, slug="harbour", name="Harbour Rowing")
    abe = make_user("abe@example.com", "Abe Athlete")
    add_member(org, abe, "athlete")
    return org


def browser(app, email: str):
    client = app.test_client()
    assert Auth(client).login(email).status_code == 303
    return client


def statements_of(app, client, path: str, **headers) -> tuple[int, list[str]]:
    """The status of one request and the statements it sent (this thread's)."""
    me, seen = threading.get_ident(), []

    def grab(conn, cursor, statement, parameters, context, executemany):
        if threading.get_ident() == me:
            seen.append(" ".join(statement.split()))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", grab)
    try:
        status = client.get(path, headers=headers).status_code
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    return status, seen


def test_an_organization_page_finds_who_and_where_in_one_statement(app, club, ctx):
    abe = browser(app, "abe@example.com")
    member = orgs.membership_for(club, accounts.find_user_by_email("abe@example.com"))
    for n in range(notifications.PAGE_SIZE + 5):
        notifications.notify(member, "comment", dedupe_key=f"floor:{n}", title=f"Note {n}", url="/o/harbour/")
    db.session.commit()
    first = abe.get("/o/harbour/notifications").get_data(as_text=True)
    cursor = first.split("before=")[1].split('"')[0]

    # The next notifications as a fragment (no navigation, so no badges): the floor and the page's one query.
    status, sent = statements_of(app, abe, f"/o/harbour/notifications?before={cursor}", **{"HX-Request": "true"})

    assert status == 200
    assert len(sent) == 2, sent
    identity, page = sent
    assert identity.count("set_config(") == 3, identity  # app.tenant_id cleared, app.user_id, app.tenant_id
    assert all(table in identity for table in IDENTITY_TABLES), identity
    assert "set_config" not in page and not any(f"FROM {table}" in page for table in IDENTITY_TABLES), page


def test_the_statement_sets_the_tenant_only_for_a_member(app, club, ctx):
    other_id = make_org(make_user("otto@example.com", "Otto"), slug="rival", name="Rival Rowing").id
    abe = accounts.find_user_by_email("abe@example.com")
    session_id, abe_id, club_id = str(accounts.open_session(abe).id), abe.id, club.id
    db.session.commit()
    db.session.remove()

    member = orgs.member_context(session_id, "harbour")
    settings = db.session.execute(text("SELECT current_setting('app.tenant_id', true), "
                                       "current_setting('app.user_id', true)")).one()
    assert member.membership.role == "athlete" and member.org.slug == "harbour"
    assert settings == (str(club_id), str(abe_id))
    db.session.rollback()

    stranger = orgs.member_context(session_id, "rival")
    settings = db.session.execute(text("SELECT current_setting('app.tenant_id', true), "
                                       "current_setting('app.user_id', true)")).one()
    assert stranger.user.id == abe_id and stranger.org is None and stranger.membership is None
    assert settings == ("", str(abe_id))  # signed in, acting for no organization: Rival's rows stay hidden
    assert other_id != club_id
    db.session.rollback()


def test_a_revoked_session_is_refused_on_the_next_request(app, club, ctx):
    abe = browser(app, "abe@example.com")
    assert abe.get("/o/harbour/").status_code == 200
    assert abe.get("/orgs").status_code == 200

    user = accounts.find_user_by_email("abe@example.com")
    accounts.revoke_all_sessions(user)  # as a password change elsewhere does
    db.session.commit()

    page = abe.get("/o/harbour/")
    assert page.status_code in (302, 303) and "/login" in page.headers["Location"]
    picker = abe.get("/orgs")
    assert picker.status_code in (302, 303) and "/login" in picker.headers["Location"]


def test_a_removed_member_is_refused_on_the_next_request(app, club, ctx):
    abe = browser(app, "abe@example.com")
    assert abe.get("/o/harbour/").status_code == 200
    assert abe.get("/o/harbour/notifications").status_code == 200

    orgs.remove_member(club, orgs.membership_for(club, accounts.find_user_by_email("abe@example.com")))
    db.session.commit()

    assert abe.get("/o/harbour/").status_code == 404
    assert abe.get("/o/harbour/notifications").status_code == 404
    assert abe.get("/orgs").status_code == 200  # still signed in: only the organization is gone


def test_an_expired_session_opens_no_organization_page(app, club, owner_db):
    abe = browser(app, "abe@example.com")
    assert abe.get("/o/harbour/").status_code == 200
    owner_db.execute("UPDATE user_sessions SET last_seen_at = now() - interval '400 days'")

    page = abe.get("/o/harbour/")
    assert page.status_code in (302, 303) and "/login" in page.headers["Location"]


def superuser(stack):
    return psycopg.connect(f"postgresql://postgres@/postgres?host={socket_dir_of(stack._postgres)}", autocommit=True)


def test_a_pooled_connection_the_server_closed_does_not_fail_the_next_request(app, club, stack):
    abe = browser(app, "abe@example.com")
    assert abe.get("/o/harbour/").status_code == 200
    with superuser(stack) as admin:  # as a restart or a failover does to every idle connection
        ended = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                              "WHERE usename = 'coach_app' AND state = 'idle'").fetchone()[0]
    assert ended >= 1
    time.sleep(0.2)

    assert abe.get("/o/harbour/").status_code == 200
    assert abe.get("/orgs").status_code == 200


def test_a_first_statement_that_finds_its_connection_dead_runs_again_on_a_fresh_one(app, club, stack):
    abe = browser(app, "abe@example.com")
    assert abe.get("/o/harbour/").status_code == 200
    with app.app_context():
        engine = db.engine
    killed = []

    def cut_after_checkout(dbapi_connection, record, proxy):
        # The connection passed the pool's look at its socket; the server drops it before the first statement.
        if not killed:
            with superuser(stack) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [dbapi_connection.info.backend_pid])
            time.sleep(0.2)
            killed.append(dbapi_connection.info.backend_pid)

    event.listen(engine.pool, "checkout", cut_after_checkout)
    try:
        page = abe.get("/o/harbour/")
    finally:
        event.remove(engine.pool, "checkout", cut_after_checkout)

    assert killed, "the test should have cut a connection"
    assert page.status_code == 200
    assert "Harbour Rowing" in page.get_data(as_text=True)


def test_sessions_are_found_by_their_cookie_only_while_live(app, club, ctx):
    abe = accounts.find_user_by_email("abe@example.com")
    record = accounts.open_session(abe)
    db.session.commit()
    assert accounts.session_user(str(record.id))[0].id == abe.id
    db.session.execute(select(UserSession).where(UserSession.id == record.id)).scalar_one().revoked_at = \
        db.session.scalar(text("SELECT now()"))
    db.session.commit()
    assert accounts.session_user(str(record.id)) is None
    assert orgs.member_context(str(record.id), "harbour") is None
    assert accounts.session_user("not-a-session") is None
