"""Organizations: creating one, the picker and switching, the home page, accepting invitations."""
from __future__ import annotations

import threading

import psycopg
import pytest

from coach.extensions import db
from coach.orgs.service import OrgError, create_organization
from tests.conftest import Auth, _plain, csrf_from
from tests.factories import PASSWORD, add_member, make_org, make_user
from tests.mailbox import Mailbox


# -- helpers ---------------------------------------------------------------------------------------

def logged_in(app, email: str):
    """A client of its own, logged in as ``email`` (a second browser)."""
    browser = app.test_client()
    assert Auth(browser).login(email).status_code == 303
    return browser


def form_token(browser, path: str = "/orgs/new") -> str:
    return csrf_from(browser.get(path).get_data(as_text=True))


def create_org(browser, name: str, slug: str, timezone: str = "Europe/Berlin", **headers):
    data = {"csrf_token": form_token(browser), "name": name, "slug": slug, "timezone": timezone}
    return browser.post("/orgs/new", data=data, headers=headers)


def org_count(owner_db) -> int:
    return owner_db.execute("SELECT count(*) FROM organizations").fetchone()[0]


def act_for(owner_db, slug: str) -> None:
    """Let the owner connection see one organization's rows (RLS is forced for the owner too)."""
    owner_db.execute("SELECT set_config('app.tenant_id', id::text, false) FROM organizations WHERE slug = %s",
                     (slug,))


def invite(app, mailbox, slug: str, email: str, role: str = "athlete", admin_email: str = "ada@example.com"):
    """Invite ``email`` through the admin page; return the path of the emailed link."""
    admin = logged_in(app, admin_email)
    response = admin.post(f"/o/{slug}/admin/invitations", data={
        "csrf_token": form_token(admin, f"/o/{slug}/admin/members"), "email": email, "role": role})
    assert response.status_code == 303, response.get_data(as_text=True)
    return Mailbox.link(mailbox.wait_for(email), app.config["APP_BASE_URL"])


@pytest.fixture()
def club(ctx):
    """Ada is the admin of Harbour Rowing (slug ``harbour``)."""
    ada = make_user("ada@example.com", "Ada Admin")
    return make_org(ada, slug="harbour", name="Harbour Rowing")


def text(response) -> str:
    return response.get_data(as_text=True)


# -- creating an organization -------------------------------------------------------------------------

def test_creator_becomes_admin_of_the_new_organization(app, client, auth, ctx, owner_db):
    make_user("mia@example.com", "Mia")
    auth.login("mia@example.com")

    response = create_org(client, "Mia's Tennis Academy", "mia-tennis")

    assert response.status_code == 303
    assert response.headers["Location"] == "/o/mia-tennis/"
    home = text(client.get("/o/mia-tennis/"))
    assert "Mia&#39;s Tennis Academy is ready" in home
    assert "You are admin here" in home
    assert client.get("/o/mia-tennis/admin/members").status_code == 200
    assert org_count(owner_db) == 1


def test_uppercase_web_address_is_taken_as_lowercase(app, client, auth, ctx):
    make_user("mia@example.com", "Mia")
    auth.login("mia@example.com")

    response = create_org(client, "Mia's Academy", "Mia-Tennis")

    assert response.headers["Location"] == "/o/mia-tennis/"
    assert client.get("/o/mia-tennis/").status_code == 200


@pytest.mark.parametrize(("slug", "message"), [
    ("mia tennis", "Use 3–40 lowercase letters"),
    ("ab", "Use 3–40 lowercase letters"),
    ("-mia", "Use 3–40 lowercase letters"),
    ("mia-", "Use 3–40 lowercase letters"),
    ("mia_tennis", "Use 3–40 lowercase letters"),
    ("ténnis", "Use 3–40 lowercase letters"),
    ("mia--tennis", "Use single hyphens only."),
    ("admin", "This address is reserved."),
    ("login", "This address is reserved."),
    ("ORGS", "This address is reserved."),
    ("x" * 41, "Use at most 40 characters."),
    ("", "Choose a web address."),
])
def test_invalid_web_address_is_refused_and_nothing_is_created(app, client, auth, ctx, owner_db, slug, message):
    make_user("mia@example.com", "Mia")
    auth.login("mia@example.com")

    response = create_org(client, "Mia's Academy", slug)

    assert response.status_code == 422
    assert message in text(response)
    assert org_count(owner_db) == 0


def test_taken_web_address_is_refused(app, client, auth, ctx, owner_db, club):
    make_user("mia@example.com", "Mia")
    auth.login("mia@example.com")

    response = create_org(client, "Another Harbour", "harbour")

    assert response.status_code == 422
    assert "This address is taken. Choose another." in text(response)
    assert org_count(owner_db) == 1
    assert client.get("/o/harbour/").status_code == 404  # still not Mia's


def test_two_people_racing_for_one_address_get_a_message_not_an_error(app, ctx, stack):
    mia = make_user("mia@example.com", "Mia")
    with psycopg.connect(_plain(stack.owner_url)) as rival:
        # Rival's insert is not committed yet, so the "is it taken?" check cannot see it.
        rival.execute("INSERT INTO organizations (id, slug, name, timezone) "
                      "VALUES (gen_random_uuid(), 'race-club', 'First', 'UTC')")
        threading.Timer(0.3, rival.commit).start()

        with pytest.raises(OrgError, match="This address is taken. Choose another."):
            create_organization(mia, "Second", "race-club", "UTC")
    db.session.rollback()


@pytest.mark.parametrize(("name", "message"), [
    ("x" * 10_000, "Use at most 120 characters."),
    ("   ", "Enter a name."),
    ("Null\x00Club", "Use letters, digits, spaces and punctuation only."),
])
def test_invalid_name_is_refused_and_nothing_is_created(app, client, auth, ctx, owner_db, name, message):
    make_user("mia@example.com", "Mia")
    auth.login("mia@example.com")

    response = create_org(client, name, "mia-tennis")

    assert response.status_code == 422
    assert message in text(response)
    assert org_count(owner_db) == 0


def test_create_form_errors_come_back_as_a_fragment_for_htmx(app, client, auth, ctx):
    make_user("mia@example.com", "Mia")
    auth.login("mia@example.com")

    response = create_org(client, "Mia's Academy", "admin", **{"HX-Request": "true"})

    assert response.status_code == 422
    assert "<html" not in text(response)
    assert 'id="org-form"' in text(response)
    assert "This address is reserved." in text(response)
    assert "HX-Request" in response.headers["Vary"]


def test_creating_an_organization_requires_login(client):
    response = client.get("/orgs/new")

    assert response.status_code == 303
    assert response.headers["Location"] == "/login?next=/orgs/new"


# -- picker and switching ------------------------------------------------------------------------

def test_picker_lists_every_organization_with_my_role_in_it(app, client, auth, ctx, club):
    sam = make_user("sam@example.com", "Sam")
    add_member(club, sam, "coach")
    make_org(sam, slug="sam-swim", name="Sam Swim School")
    make_org(make_user(), slug="other-club", name="Other Club")
    auth.login("sam@example.com")

    page = text(client.get("/orgs"))

    assert page.index("Harbour Rowing") < page.index("Sam Swim School")  # sorted by name
    harbour = page[page.index("Harbour Rowing"):page.index("Sam Swim School")]
    swim = page[page.index("Sam Swim School"):]
    assert '<span class="badge">Coach</span>' in harbour
    assert '<span class="badge">Admin</span>' in swim
    assert 'href="/o/harbour/"' in page and 'href="/o/sam-swim/"' in page
    assert "Other Club" not in page


def test_picker_invites_someone_without_organizations_to_create_one(app, client, auth, ctx):
    make_user("new@example.com", "New")
    auth.login("new@example.com")

    page = text(client.get("/orgs"))

    assert "You do not belong to an organization yet." in page
    assert 'href="/orgs/new"' in page


def test_visiting_an_organization_makes_it_the_start_page(app, client, auth, ctx, club):
    sam = make_user("sam@example.com", "Sam")
    add_member(club, sam, "athlete")
    make_org(sam, slug="sam-swim", name="Sam Swim School")
    auth.login("sam@example.com")
    assert client.get("/").headers["Location"] == "/orgs"

    client.get("/o/sam-swim/")
    assert client.get("/").headers["Location"] == "/o/sam-swim/"

    client.get("/o/harbour/")
    assert client.get("/").headers["Location"] == "/o/harbour/"


def test_start_page_falls_back_to_the_picker_after_losing_membership(app, ctx, club):
    sam = make_user("sam@example.com", "Sam")
    membership_id = str(add_member(club, sam, "athlete").id)
    browser = logged_in(app, "sam@example.com")
    browser.get("/o/harbour/")

    admin = logged_in(app, "ada@example.com")
    admin.post(f"/o/harbour/admin/members/{membership_id}/remove",
               data={"csrf_token": form_token(admin)})

    assert browser.get("/").headers["Location"] == "/orgs"


def test_visitor_start_page_offers_sign_up_and_log_in(client):
    page = text(client.get("/"))

    assert 'href="/signup"' in page and 'href="/login"' in page


# -- organization home --------------------------------------------------------------------------

# The home's blocks per role: tests/test_home_blocks.py (issue 21 replaced the member counts and the coach list).

def test_member_sees_the_organization_home_with_their_role_and_name(app, client, auth, ctx, club):
    add_member(club, make_user("abe@example.com", "Abe Athlete"), "athlete")
    auth.login("abe@example.com")

    page = text(client.get("/o/harbour/"))

    assert ", Abe</h1>" in page and "You are athlete here at Harbour Rowing" in page
    assert 'href="/o/harbour/admin/members"' not in page  # no admin link for athletes


def test_non_member_gets_not_found_rather_than_forbidden(app, client, auth, ctx, club):
    make_user("eve@example.com", "Eve")
    auth.login("eve@example.com")

    member_of_nothing = client.get("/o/harbour/")
    unknown = client.get("/o/no-such-club/")

    assert member_of_nothing.status_code == 404
    assert unknown.status_code == 404
    assert "Harbour Rowing" not in text(member_of_nothing)
    assert text(member_of_nothing).replace("no-such-club", "harbour") == text(unknown).replace(
        "no-such-club", "harbour")  # the two answers cannot be told apart


def test_overlong_organization_address_is_not_found(app, client, auth, ctx, club):
    auth.login("ada@example.com")

    assert client.get("/o/" + "h" * 5000 + "/").status_code == 404


def test_anonymous_visitor_is_sent_to_log_in_and_back(app, client, ctx, club):
    response = client.get("/o/harbour/")

    assert response.status_code == 303
    assert response.headers["Location"] == "/login?next=/o/harbour/"
    login = client.post("/login?next=/o/harbour/", data={
        "csrf_token": form_token(client, "/login"), "email": "ada@example.com", "password": PASSWORD})
    assert login.headers["Location"] == "/o/harbour/"


# -- invitations ------------------------------------------------------------------------------

def test_invited_person_signs_up_from_the_email_and_lands_in_the_organization(app, client, ctx, club, mailbox):
    link = invite(app, mailbox, "harbour", "Nina@Example.com", "coach")
    email = mailbox.wait_for("nina@example.com")
    assert "Ada Admin invited you to Harbour Rowing" in email["Subject"]
    assert link.startswith("/invitations/harbour/")

    page = text(client.get(link))
    assert "Join Harbour Rowing" in page
    assert "as <strong>coach</strong>" in page
    response = client.post(link + "/signup", data={
        "csrf_token": csrf_from(page), "display_name": "Nina", "password": PASSWORD, "timezone": "Europe/Oslo"})

    assert response.status_code == 303
    assert response.headers["Location"] == "/o/harbour/"
    home = text(client.get("/o/harbour/"))
    assert "Welcome to Harbour Rowing!" in home
    assert "You are coach here" in home
    # The account is real: Nina can log in with the password she chose.
    assert Auth(app.test_client()).login("nina@example.com").status_code == 303


def test_invitation_sign_up_with_a_short_password_creates_nothing(app, client, ctx, club, owner_db, mailbox):
    link = invite(app, mailbox, "harbour", "nina@example.com")
    page = text(client.get(link))

    response = client.post(link + "/signup", data={
        "csrf_token": csrf_from(page), "display_name": "Nina", "password": "short", "timezone": "UTC"},
        headers={"HX-Request": "true"})

    assert response.status_code == 422
    assert "Use between 10 and 128 characters." in text(response)
    assert "<html" not in text(response)
    assert owner_db.execute("SELECT count(*) FROM users WHERE email = 'nina@example.com'").fetchone()[0] == 0
    assert client.get(link).status_code == 200  # the link still works


def test_invitation_sign_up_for_an_address_with_an_account_asks_to_log_in(app, client, ctx, club, mailbox):
    make_user("nina@example.com", "Nina")
    link = invite(app, mailbox, "harbour", "nina@example.com")
    page = text(client.get(link))

    response = client.post(link + "/signup", data={
        "csrf_token": csrf_from(page), "display_name": "Nina Again", "password": PASSWORD, "timezone": "UTC"})

    assert response.status_code == 422
    assert "An account with this email already exists. Log in to accept the invitation." in text(response)
    assert Auth(client).login("nina@example.com").status_code == 303
    assert client.get("/o/harbour/").status_code == 404  # not joined by the failed attempt


def test_existing_user_logs_in_from_the_invitation_and_accepts(app, client, ctx, club, mailbox):
    make_user("nina@example.com", "Nina")
    link = invite(app, mailbox, "harbour", "nina@example.com", "scheduler")

    anonymous_page = text(client.get(link))
    assert f'href="/login?next={link}"' in anonymous_page
    login = client.post(f"/login?next={link}", data={
        "csrf_token": form_token(client, "/login"), "email": "nina@example.com", "password": PASSWORD})
    assert login.headers["Location"] == link
    page = text(client.get(link))
    response = client.post(link + "/accept", data={"csrf_token": csrf_from(page)})

    assert response.status_code == 303
    assert response.headers["Location"] == "/o/harbour/"
    assert "You are scheduler here" in text(client.get("/o/harbour/"))
    assert "Scheduler" in text(client.get("/orgs"))


def test_accepting_an_invitation_twice_says_it_was_already_accepted(app, client, auth, ctx, club, mailbox):
    make_user("nina@example.com", "Nina")
    link = invite(app, mailbox, "harbour", "nina@example.com")
    auth.login("nina@example.com")
    token = form_token(client)
    assert client.post(link + "/accept", data={"csrf_token": token}).status_code == 303

    again = client.post(link + "/accept", data={"csrf_token": token})
    page = client.get(link)

    assert again.status_code == 410
    assert "This invitation has already been accepted." in text(again)
    assert page.status_code == 410


def test_revoked_invitation_link_is_gone(app, client, ctx, club, owner_db, mailbox):
    link = invite(app, mailbox, "harbour", "nina@example.com")
    act_for(owner_db, "harbour")
    invitation_id = owner_db.execute("SELECT id FROM invitations").fetchone()[0]
    admin = logged_in(app, "ada@example.com")
    admin.post(f"/o/harbour/admin/invitations/{invitation_id}/revoke", data={"csrf_token": form_token(admin)})

    response = client.get(link)

    assert response.status_code == 410
    assert "This invitation link is not valid. Ask for a new invitation." in text(response)


def test_expired_invitation_link_is_gone(app, client, auth, ctx, club, owner_db, mailbox):
    make_user("nina@example.com", "Nina")
    link = invite(app, mailbox, "harbour", "nina@example.com")
    act_for(owner_db, "harbour")
    owner_db.execute("UPDATE invitations SET expires_at = now() - interval '1 minute'")
    auth.login("nina@example.com")

    page = client.get(link)
    accept = client.post(link + "/accept", data={"csrf_token": form_token(client)})

    assert page.status_code == 410
    assert "This invitation has expired. Ask for a new invitation." in text(page)
    assert accept.status_code == 410
    assert client.get("/o/harbour/").status_code == 404


def test_tampered_invitation_token_is_gone(app, client, ctx, club, mailbox):
    link = invite(app, mailbox, "harbour", "nina@example.com")

    response = client.get(link[:-3] + "abc")

    assert response.status_code == 410
    assert "This invitation link is not valid." in text(response)


def test_invitation_link_with_another_organizations_slug_never_joins_it(app, client, auth, ctx, club, mailbox):
    make_org(make_user("otto@example.com"), slug="other-club", name="Other Club")
    make_user("nina@example.com", "Nina")
    link = invite(app, mailbox, "harbour", "nina@example.com")
    forged = link.replace("/invitations/harbour/", "/invitations/other-club/")
    unknown = link.replace("/invitations/harbour/", "/invitations/nowhere/")
    auth.login("nina@example.com")

    page = client.get(forged)
    accept = client.post(forged + "/accept", data={"csrf_token": form_token(client)})

    assert page.status_code in (404, 410)
    assert "Other Club" not in text(page)
    assert accept.status_code in (404, 410)
    assert client.get("/o/other-club/").status_code == 404
    assert client.get(unknown).status_code == 404
    assert client.get(link).status_code == 200  # the real invitation is untouched


def test_invitation_sign_up_with_a_control_character_in_the_name_is_refused(app, client, ctx, club, mailbox):
    link = invite(app, mailbox, "harbour", "nina@example.com")
    page = text(client.get(link))

    response = client.post(link + "/signup", data={
        "csrf_token": csrf_from(page), "display_name": "Ni\x00na", "password": PASSWORD, "timezone": "UTC"})

    assert response.status_code == 422
    assert "Use letters, digits, spaces and punctuation only." in text(response)
