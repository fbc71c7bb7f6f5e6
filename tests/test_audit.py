"""The audit trail: what is written (with its change, never without), the admin page, CSV export, append-only."""
from __future__ import annotations

import csv
import html
import io
import re
import uuid
from datetime import datetime, timezone

import psycopg
import pytest

from coach import tenancy
from coach.accounts.service import find_user_by_email
from coach.extensions import db
from coach.orgs import service as orgs
from coach.orgs.service import membership_for
from coach.platform import audit
from tests.conftest import Auth, _plain, csrf_from
from tests.factories import add_member, make_org, make_user
from tests.mailbox import Mailbox

AUDIT = "/o/harbour/admin/audit"
MEMBERS = "/o/harbour/admin/members"
HX = {"HX-Request": "true"}


# -- helpers ---------------------------------------------------------------------------------------

def browser_of(app, email: str, remote_addr: str = "127.0.0.1"):
    """A separate browser (its own cookies) signed in as ``email``."""
    browser = app.test_client()
    browser.environ_base["REMOTE_ADDR"] = remote_addr
    assert Auth(browser).login(email).status_code == 303
    return browser


def submit(browser, path: str, form_page: str = "/orgs/new", **fields):
    """POST ``fields`` with a CSRF token taken from ``form_page`` (as the browser would)."""
    token = csrf_from(browser.get(form_page).get_data(as_text=True))
    return browser.post(path, data={"csrf_token": token, **fields})


def body(response) -> str:
    return response.get_data(as_text=True)


def see_org(owner_db, slug: str) -> None:
    """FORCE RLS holds for the schema owner too: say which organization this connection reads."""
    owner_db.execute("SELECT set_config('app.tenant_id', id::text, false) FROM organizations WHERE slug = %s",
                     [slug])


def trail(owner_db, slug: str) -> list[tuple]:
    """The organization's audit events, oldest first: (action, actor_label, target_type, details)."""
    see_org(owner_db, slug)
    return owner_db.execute(
        "SELECT action, actor_label, target_type, details FROM audit_events ORDER BY created_at, id").fetchall()


def actions_of(owner_db, slug: str) -> list[str]:
    return [row[0] for row in trail(owner_db, slug)]


def shown_numbers(page_html: str) -> list[int]:
    """The ``n`` detail of every event row on an audit page, top to bottom."""
    return [int(n) for n in re.findall(r"<span>n: (\d+)</span>", page_html)]


def older_link(page_html: str) -> str | None:
    match = re.search(r'href="([^"]*after=[^"]*)"', page_html)
    return html.unescape(match.group(1)) if match else None


@pytest.fixture()
def superuser_db(stack, app):
    """The cluster superuser (not subject to RLS): the only way to see platform events of no organization."""
    socket_dir = _plain(stack.owner_url).split("host=", 1)[1]
    with psycopg.connect(f"postgresql://postgres@/coach?host={socket_dir}", autocommit=True) as conn:
        yield conn


@pytest.fixture()
def club(ctx):
    """Harbour Rowing (Europe/Berlin): Ada admin, Cora coach, Abe athlete; membership ids by name."""
    ada = make_user("ada@example.com", "Ada Admin")
    org = make_org(ada, slug="harbour", name="Harbour Rowing")
    ids = {"org": org.id, "ada": str(membership_for(org, ada).id)}
    ids["cora"] = str(add_member(org, make_user("cora@example.com", "Cora Coach"), "coach").id)
    ids["abe"] = str(add_member(org, make_user("abe@example.com", "Abe Athlete"), "athlete").id)
    return ids


@pytest.fixture()
def rival(ctx, club):
    """Rival Rowing, run by Otto, with a trail of its own."""
    otto = make_user("otto@example.com", "Otto Other")
    org = make_org(otto, slug="rival", name="Rival Rowing")
    tenancy.activate(org.id, otto.id)
    audit.record("secret.rival_thing", actor=otto, details={"plan": "rival-secret-plan"})
    db.session.commit()
    return org


@pytest.fixture()
def admin(app, club):
    return browser_of(app, "ada@example.com")


def record_events(org_id, count: int, action: str = "test.event", actor_label: str = "robot@example.com"):
    """``count`` events numbered 0..count-1 (details ``n``) in the organization's trail."""
    tenancy.activate(org_id)
    for n in range(count):
        audit.record(action, actor_label=actor_label, details={"n": n})
    db.session.commit()


def insert_event_at(owner_db, slug: str, when: datetime, action: str, n: int, actor: str = "clock@example.com"):
    """An event with a chosen time (the owner may INSERT; only UPDATE and DELETE are refused)."""
    see_org(owner_db, slug)
    owner_db.execute(
        "INSERT INTO audit_events (id, tenant_id, actor_label, action, details, created_at) "
        "SELECT %s, id, %s, %s, jsonb_build_object('n', %s::int), %s FROM organizations WHERE slug = %s",
        [uuid.uuid4(), actor, action, n, when, slug])


def open_invitation_id(owner_db, slug: str, email: str) -> str:
    see_org(owner_db, slug)
    return str(owner_db.execute("SELECT id FROM invitations WHERE email = %s AND revoked_at IS NULL "
                                "AND accepted_at IS NULL", [email]).fetchone()[0])


# -- what is written, and only with its change ------------------------------------------------------

def test_creating_an_organization_is_recorded_with_its_creator(app, ctx, owner_db):
    make_user("mia@example.com", "Mia")
    mia = browser_of(app, "mia@example.com")

    response = submit(mia, "/orgs/new", name="Mia's Academy", slug="mias-academy", timezone="Europe/Berlin")

    assert response.status_code == 303
    action, actor, target_type, details = trail(owner_db, "mias-academy")[-1]
    assert (action, actor, target_type) == ("organization.created", "mia@example.com", "organization")
    assert details == {"slug": "mias-academy", "name": "Mia's Academy"}


def test_organization_that_is_not_created_leaves_no_audit_event(app, ctx, club, owner_db, superuser_db):
    make_user("mia@example.com", "Mia")
    mia = browser_of(app, "mia@example.com")
    before = superuser_db.execute("SELECT count(*) FROM audit_events WHERE action = 'organization.created'").fetchone()

    response = submit(mia, "/orgs/new", name="Copycat", slug="harbour", timezone="UTC")

    assert response.status_code == 422
    after = superuser_db.execute("SELECT count(*) FROM audit_events WHERE action = 'organization.created'").fetchone()
    assert after == before


def test_audit_event_is_rolled_back_with_the_change_it_describes(ctx, club, owner_db):
    ada = make_user("zed@example.com", "Zed")
    org = orgs.create_organization(ada, "Ghost Club", "ghost-club", "UTC")
    assert org.id is not None

    db.session.rollback()

    assert owner_db.execute("SELECT count(*) FROM organizations WHERE slug = 'ghost-club'").fetchone()[0] == 0
    owner_db.execute("SELECT set_config('app.tenant_id', %s, false)", [str(org.id)])
    assert owner_db.execute("SELECT count(*) FROM audit_events").fetchone()[0] == 0


def test_role_change_is_recorded_with_before_and_after(admin, club, owner_db):
    assert submit(admin, f"{MEMBERS}/{club['abe']}/role", MEMBERS, role="coach").status_code == 303

    action, actor, target_type, details = trail(owner_db, "harbour")[-1]
    assert (action, actor, target_type) == ("member.role_changed", "ada@example.com", "membership")
    assert details == {"member": "abe@example.com", "from": "athlete", "to": "coach"}


def test_refused_role_change_writes_no_audit_event(admin, club, owner_db):
    before = actions_of(owner_db, "harbour")

    assert submit(admin, f"{MEMBERS}/{club['ada']}/role", MEMBERS, role="athlete").status_code == 422

    assert actions_of(owner_db, "harbour") == before


def test_removing_a_member_is_recorded(admin, club, owner_db):
    assert submit(admin, f"{MEMBERS}/{club['cora']}/remove", MEMBERS).status_code == 303

    action, actor, _, details = trail(owner_db, "harbour")[-1]
    assert (action, actor) == ("member.removed", "ada@example.com")
    assert details == {"member": "cora@example.com", "role": "coach"}


def test_refused_removal_of_the_last_admin_writes_no_audit_event(admin, club, owner_db):
    before = actions_of(owner_db, "harbour")

    assert submit(admin, f"{MEMBERS}/{club['ada']}/remove", MEMBERS).status_code == 422

    assert actions_of(owner_db, "harbour") == before


def test_invitation_lifecycle_is_recorded(app, admin, club, owner_db, mailbox):
    assert submit(admin, "/o/harbour/admin/invitations", MEMBERS, email="Newbie@Example.com",
                  role="coach").status_code == 303
    invitation_id = open_invitation_id(owner_db, "harbour", "newbie@example.com")
    assert submit(admin, f"/o/harbour/admin/invitations/{invitation_id}/resend", MEMBERS).status_code == 303
    assert submit(admin, f"/o/harbour/admin/invitations/{invitation_id}/revoke", MEMBERS).status_code == 303

    events = [(a, actor, t, d) for a, actor, t, d in trail(owner_db, "harbour") if a.startswith("invitation.")]
    assert [e[0] for e in events] == ["invitation.created", "invitation.resent", "invitation.revoked"]
    assert all(e[1] == "ada@example.com" and e[2] == "invitation" for e in events)
    assert events[0][3] == {"email": "newbie@example.com", "role": "coach"}


def test_refused_invitation_writes_no_audit_event_and_sends_nothing(admin, club, owner_db):
    before = actions_of(owner_db, "harbour")

    response = submit(admin, "/o/harbour/admin/invitations", MEMBERS, email="cora@example.com", role="coach")

    assert response.status_code == 422
    assert actions_of(owner_db, "harbour") == before
    assert owner_db.execute("SELECT count(*) FROM emails").fetchone()[0] == 0


def test_resending_or_revoking_a_closed_invitation_writes_no_audit_event(admin, club, owner_db):
    submit(admin, "/o/harbour/admin/invitations", MEMBERS, email="newbie@example.com", role="athlete")
    invitation_id = open_invitation_id(owner_db, "harbour", "newbie@example.com")
    submit(admin, f"/o/harbour/admin/invitations/{invitation_id}/revoke", MEMBERS)
    before = actions_of(owner_db, "harbour")

    submit(admin, f"/o/harbour/admin/invitations/{invitation_id}/resend", MEMBERS)

    assert "This invitation is no longer open." in body(admin.get(MEMBERS))
    assert actions_of(owner_db, "harbour") == before


def invitation_path(app, mailbox, email: str) -> str:
    """The path of the invitation link emailed to ``email``."""
    return Mailbox.link(mailbox.wait_for(email), app.config["APP_BASE_URL"])


def test_accepting_an_invitation_is_recorded_as_the_new_member(app, admin, club, owner_db, mailbox, ctx):
    make_user("jo@example.com", "Jo Joiner")
    submit(admin, "/o/harbour/admin/invitations", MEMBERS, email="jo@example.com", role="coach")
    path = invitation_path(app, mailbox, "jo@example.com")
    jo = browser_of(app, "jo@example.com")

    assert submit(jo, f"{path}/accept", path).status_code == 303

    action, actor, _, details = trail(owner_db, "harbour")[-1]
    assert (action, actor, details) == ("invitation.accepted", "jo@example.com",
                                        {"email": "jo@example.com", "role": "coach"})


def test_accepting_a_revoked_invitation_writes_no_audit_event(app, admin, club, owner_db, mailbox, ctx):
    make_user("kit@example.com", "Kit Late")
    submit(admin, "/o/harbour/admin/invitations", MEMBERS, email="kit@example.com", role="coach")
    path = invitation_path(app, mailbox, "kit@example.com")
    kit = browser_of(app, "kit@example.com")
    token = csrf_from(body(kit.get("/orgs/new")))
    submit(admin, f"/o/harbour/admin/invitations/{open_invitation_id(owner_db, 'harbour', 'kit@example.com')}"
                  "/revoke", MEMBERS)
    before = actions_of(owner_db, "harbour")

    assert kit.post(f"{path}/accept", data={"csrf_token": token}).status_code == 410

    assert actions_of(owner_db, "harbour") == before


def test_login_is_recorded_in_every_organization_of_the_account(app, ctx, club, rival, owner_db):
    add_member(rival, find_user_by_email("abe@example.com"), "athlete")

    browser_of(app, "abe@example.com", remote_addr="198.51.100.7")

    for slug in ("harbour", "rival"):
        see_org(owner_db, slug)
        rows = owner_db.execute("SELECT actor_label, host(ip) FROM audit_events "
                                "WHERE action = 'login.succeeded'").fetchall()
        assert rows == [("abe@example.com", "198.51.100.7")]


def test_failed_login_is_recorded_for_the_organizations_of_the_account(app, club, owner_db):
    response = Auth(app.test_client()).login("Abe@Example.com", "not-the-password")

    assert response.status_code == 422
    see_org(owner_db, "harbour")
    rows = owner_db.execute("SELECT actor_label, actor_user_id IS NOT NULL FROM audit_events "
                            "WHERE action = 'login.failed'").fetchall()
    assert rows == [("abe@example.com", True)]


def test_failed_login_for_an_unknown_email_is_a_platform_event_no_organization_sees(app, club, owner_db,
                                                                                   superuser_db):
    Auth(app.test_client()).login("nobody@example.com", "whatever-password")

    rows = superuser_db.execute("SELECT tenant_id, actor_user_id, actor_label FROM audit_events "
                                "WHERE action = 'login.failed'").fetchall()
    assert rows == [(None, None, "nobody@example.com")]
    assert "nobody@example.com" not in actions_of(owner_db, "harbour")
    see_org(owner_db, "harbour")
    assert owner_db.execute("SELECT count(*) FROM audit_events WHERE action = 'login.failed'").fetchone()[0] == 0


# -- the audit page ----------------------------------------------------------------------------------

def test_admin_sees_the_trail_newest_first_in_the_organizations_time_zone(admin, club, owner_db):
    insert_event_at(owner_db, "harbour", datetime(2026, 1, 15, 11, 0, tzinfo=timezone.utc), "test.older", 1)
    insert_event_at(owner_db, "harbour", datetime(2026, 7, 15, 11, 0, tzinfo=timezone.utc), "test.newer", 2)

    response = admin.get(AUDIT)
    page = body(response)

    assert response.status_code == 200 and "<html" in page
    assert page.index("test.newer") < page.index("test.older")
    assert "2026-07-15 13:00:00" in page  # summer time in Berlin
    assert "2026-01-15 12:00:00" in page
    assert "Times in Europe/Berlin." in page
    assert "organization.created" in page


def test_filter_form_answers_htmx_with_the_rows_only(admin, club):
    response = admin.get(f"{AUDIT}?action=organization.created", headers=HX)
    fragment = body(response)

    assert response.status_code == 200
    assert "<html" not in fragment
    assert fragment.lstrip().startswith('<section class="card" id="audit-rows">')
    assert "organization.created" in fragment
    assert "HX-Request" in response.headers["Vary"]


def test_filter_by_actor_matches_part_of_the_email_in_any_case(admin, club, ctx):
    record_events(club["org"], 2, actor_label="cora@example.com")
    record_events(club["org"], 3, actor_label="someone.else@example.org")

    page = body(admin.get(f"{AUDIT}?actor=CORA%40"))

    assert sorted(shown_numbers(page)) == [0, 1]
    assert "someone.else" not in page


def test_actor_filter_treats_wildcards_as_plain_text(admin, club, ctx):
    record_events(club["org"], 2, actor_label="a_b@example.com")
    record_events(club["org"], 3, actor_label="axb@example.com")

    assert sorted(shown_numbers(body(admin.get(f"{AUDIT}?actor=a_b")))) == [0, 1]
    assert shown_numbers(body(admin.get(f"{AUDIT}?actor=%25"))) == []


def test_filter_by_action(admin, club, ctx):
    record_events(club["org"], 3, action="test.kept")
    record_events(club["org"], 2, action="test.other")

    page = body(admin.get(f"{AUDIT}?action=test.kept"))

    assert sorted(shown_numbers(page)) == [0, 1, 2]
    assert "test.other</code>" not in page


def test_date_filters_are_whole_days_in_the_organizations_time_zone(admin, club, owner_db):
    # 23:30 UTC on 9 March is already 10 March in Berlin.
    insert_event_at(owner_db, "harbour", datetime(2026, 3, 9, 22, 30, tzinfo=timezone.utc), "test.day", 9)
    insert_event_at(owner_db, "harbour", datetime(2026, 3, 9, 23, 30, tzinfo=timezone.utc), "test.day", 10)
    insert_event_at(owner_db, "harbour", datetime(2026, 3, 10, 22, 59, tzinfo=timezone.utc), "test.day", 11)
    insert_event_at(owner_db, "harbour", datetime(2026, 3, 10, 23, 0, tzinfo=timezone.utc), "test.day", 12)

    only_tenth = body(admin.get(f"{AUDIT}?action=test.day&since=2026-03-10&until=2026-03-10"))
    from_tenth = body(admin.get(f"{AUDIT}?action=test.day&since=2026-03-10"))
    until_ninth = body(admin.get(f"{AUDIT}?action=test.day&until=2026-03-09"))

    assert sorted(shown_numbers(only_tenth)) == [10, 11]
    assert sorted(shown_numbers(from_tenth)) == [10, 11, 12]
    assert shown_numbers(until_ninth) == [9]


def test_paging_walks_the_whole_trail_without_duplicates_or_gaps(admin, club, ctx):
    record_events(club["org"], 120)

    seen, pages, url = [], [], f"{AUDIT}?action=test.event"
    while url:
        page = body(admin.get(url))
        pages.append(shown_numbers(page))
        seen += pages[-1]
        url = older_link(page)

    assert [len(p) for p in pages] == [50, 50, 20]
    assert seen == list(range(119, -1, -1))


def test_paging_keeps_order_when_events_share_a_timestamp(admin, club, owner_db):
    same_moment = datetime(2026, 5, 1, 8, 0, tzinfo=timezone.utc)
    for n in range(75):
        insert_event_at(owner_db, "harbour", same_moment, "test.burst", n)

    first = body(admin.get(f"{AUDIT}?action=test.burst"))
    second = body(admin.get(older_link(first)))

    assert len(shown_numbers(first)) == 50 and len(shown_numbers(second)) == 25
    assert sorted(shown_numbers(first) + shown_numbers(second)) == list(range(75))
    assert older_link(second) is None


def test_next_page_link_keeps_the_filters(admin, club, ctx):
    record_events(club["org"], 60, actor_label="cora@example.com")
    record_events(club["org"], 5, actor_label="abe@example.com")

    link = older_link(body(admin.get(f"{AUDIT}?actor=cora&action=test.event")))

    assert "actor=cora" in link and "action=test.event" in link
    assert sorted(shown_numbers(body(admin.get(link)))) == list(range(10))


@pytest.mark.parametrize("cursor", ["garbage!!", "bm90LWpzb24", "WzEsMl0", "WyJ5ZXN0ZXJkYXkiLCJ4Il0"])
def test_tampered_page_cursor_is_a_400_page(admin, club, cursor):
    response = admin.get(f"{AUDIT}?after={cursor}")

    assert response.status_code == 400
    assert "That page link is not valid." in body(response)


@pytest.mark.parametrize("query", ["since=2026-02-30", "until=yesterday", "since=99999-01-01"])
def test_impossible_date_is_a_422_page_that_says_so(admin, club, query):
    response = admin.get(f"{AUDIT}?{query}")

    assert response.status_code == 422
    assert "<html" in body(response)
    assert "Not a valid date value." in body(response)


def test_impossible_date_from_the_htmx_filter_shows_the_message_in_the_rows(admin, club):
    response = admin.get(f"{AUDIT}?since=2026-13-01", headers=HX)
    fragment = body(response)

    assert response.status_code == 422
    assert "<html" not in fragment and 'id="audit-rows"' in fragment
    assert "Not a valid date value." in fragment


def test_export_link_follows_the_htmx_filter(admin, club):
    fragment = body(admin.get(f"{AUDIT}?action=member.removed&actor=ada", headers=HX))

    link = html.unescape(re.search(r'href="([^"]*audit\.csv[^"]*)"', fragment).group(1))
    assert "action=member.removed" in link and "actor=ada" in link


@pytest.mark.parametrize("email", ["cora@example.com", "abe@example.com"])
def test_members_who_are_not_admins_cannot_read_or_export_the_trail(app, club, email):
    browser = browser_of(app, email)

    assert browser.get(AUDIT).status_code == 403
    assert browser.get(f"{AUDIT}.csv").status_code == 403
    assert browser.get(AUDIT, headers=HX).status_code == 403


def test_visitor_is_sent_to_log_in(client, club):
    response = client.get(AUDIT)

    assert response.status_code == 303
    assert response.headers["Location"].startswith("/login?next=")


def test_another_organizations_events_are_never_shown(admin, club, rival):
    page = body(admin.get(AUDIT))
    filtered = body(admin.get(f"{AUDIT}?action=secret.rival_thing"))
    exported = body(admin.get(f"{AUDIT}.csv"))

    for text in (page, filtered, exported):
        assert "rival-secret-plan" not in text and "otto@example.com" not in text
    assert "secret.rival_thing" not in page  # not even in the action suggestions
    assert "No events match." in filtered


def test_rival_admin_sees_only_their_own_trail(app, club, rival):
    otto = browser_of(app, "otto@example.com")

    page = body(otto.get("/o/rival/admin/audit"))

    assert "rival-secret-plan" in page
    assert "ada@example.com" not in page
    assert otto.get(AUDIT).status_code == 404


# -- CSV export ---------------------------------------------------------------------------------------

def test_csv_export_downloads_the_filtered_trail(admin, club, ctx):
    record_events(club["org"], 130, action="test.bulk")
    record_events(club["org"], 3, action="test.noise")

    response = admin.get(f"{AUDIT}.csv?action=test.bulk")
    rows = list(csv.reader(io.StringIO(body(response))))

    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert re.fullmatch(r'attachment; filename="audit-harbour-\d{8}\.csv"', response.headers["Content-Disposition"])
    assert rows[0] == ["time", "actor", "action", "target_type", "target_id", "details", "ip", "request_id"]
    assert len(rows) == 131
    assert {r[2] for r in rows[1:]} == {"test.bulk"}
    assert sorted(int(re.search(r'"n": (\d+)', r[5]).group(1)) for r in rows[1:]) == list(range(130))


def test_csv_export_with_date_and_actor_filters(admin, club, owner_db):
    insert_event_at(owner_db, "harbour", datetime(2026, 3, 9, 23, 30, tzinfo=timezone.utc), "test.day", 1)
    insert_event_at(owner_db, "harbour", datetime(2026, 3, 9, 22, 30, tzinfo=timezone.utc), "test.day", 2)
    insert_event_at(owner_db, "harbour", datetime(2026, 3, 10, 9, 0, tzinfo=timezone.utc), "test.day", 3,
                    actor="other@example.com")

    rows = list(csv.reader(io.StringIO(body(admin.get(
        f"{AUDIT}.csv?since=2026-03-10&until=2026-03-10&actor=clock")))))

    assert [(r[1], r[5]) for r in rows[1:]] == [("clock@example.com", '{"n": 1}')]


def test_csv_cells_cannot_run_as_spreadsheet_formulas(admin, club, ctx):
    tenancy.activate(club["org"])
    for label in ("=HYPERLINK(\"http://evil.example\")", "+1+1@example.com", "-2@example.com", "@SUM(A1)"):
        audit.record("test.formula", actor_label=label, details={"note": "=1+1"})
    db.session.commit()

    rows = list(csv.reader(io.StringIO(body(admin.get(f"{AUDIT}.csv?action=test.formula")))))[1:]

    assert len(rows) == 4
    for row in rows:
        for cell in row:
            assert cell[:1] not in ("=", "+", "-", "@"), row
    assert "'=HYPERLINK(\"http://evil.example\")" in [r[1] for r in rows]


def test_csv_export_with_an_impossible_date_is_refused(admin, club):
    response = admin.get(f"{AUDIT}.csv?since=2026-02-30")

    assert response.status_code == 400
    assert "Check the filters" in body(response)


# -- append-only -------------------------------------------------------------------------------------

@pytest.mark.parametrize("statement", [
    "UPDATE audit_events SET action = 'nothing.happened'",
    "DELETE FROM audit_events",
])
def test_trail_cannot_be_rewritten_even_by_the_schema_owner(club, owner_db, statement):
    see_org(owner_db, "harbour")
    before = owner_db.execute("SELECT action FROM audit_events").fetchall()
    assert before

    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        owner_db.execute(statement)

    assert owner_db.execute("SELECT action FROM audit_events").fetchall() == before


@pytest.mark.parametrize("statement", [
    "UPDATE audit_events SET action = 'nothing.happened'",
    "DELETE FROM audit_events",
])
def test_runtime_role_may_not_rewrite_the_trail(club, app_db, owner_db, statement):
    app_db.execute("SELECT set_config('app.tenant_id', %s, false)", [str(club["org"])])

    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_db.execute(statement)
    app_db.rollback()

    assert actions_of(owner_db, "harbour") == ["organization.created"]


def test_events_of_one_request_carry_its_request_id_and_address(app, ctx, club, owner_db):
    browser = browser_of(app, "ada@example.com", remote_addr="192.0.2.44")
    token = csrf_from(body(browser.get(MEMBERS)))

    response = browser.post(f"{MEMBERS}/{club['abe']}/role", data={"csrf_token": token, "role": "coach"},
                            headers={"X-Request-ID": "change-abe-123"})

    assert response.status_code == 303
    see_org(owner_db, "harbour")
    assert owner_db.execute("SELECT request_id, host(ip) FROM audit_events WHERE action = 'member.role_changed'"
                            ).fetchall() == [("change-abe-123", "192.0.2.44")]
