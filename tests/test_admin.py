"""Organization admin: the members page, roles, removing members, invitations."""
from __future__ import annotations

import pytest

from coach.orgs.service import membership_for
from tests.conftest import Auth, csrf_from
from tests.factories import add_member, make_org, make_user
from tests.mailbox import Mailbox

MEMBERS = "/o/harbour/admin/members"


# -- helpers ---------------------------------------------------------------------------------------

def logged_in(app, email: str):
    """A client of its own, logged in as ``email`` (a second browser)."""
    browser = app.test_client()
    assert Auth(browser).login(email).status_code == 303
    return browser


def form_token(browser) -> str:
    return csrf_from(browser.get("/orgs/new").get_data(as_text=True))


def post(browser, path: str, headers: dict | None = None, **data):
    return browser.post(path, data={"csrf_token": form_token(browser), **data}, headers=headers or {})


def text(response) -> str:
    return response.get_data(as_text=True)


def act_for(owner_db, slug: str) -> None:
    """Let the owner connection see one organization's rows (RLS is forced for the owner too)."""
    owner_db.execute("SELECT set_config('app.tenant_id', id::text, false) FROM organizations WHERE slug = %s",
                     (slug,))


def invitation_rows(owner_db, slug: str) -> list[tuple]:
    act_for(owner_db, slug)
    return owner_db.execute(
        "SELECT id, email, role, revoked_at IS NOT NULL FROM invitations ORDER BY created_at").fetchall()


def role_of(owner_db, slug: str, email: str) -> str | None:
    act_for(owner_db, slug)
    row = owner_db.execute(
        "SELECT m.role FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.email = %s", (email,)
    ).fetchone()
    return row[0] if row else None


def email_count(owner_db) -> int:
    return owner_db.execute("SELECT count(*) FROM emails").fetchone()[0]


def link_in(app, message) -> str:
    return Mailbox.link(message, app.config["APP_BASE_URL"])


@pytest.fixture()
def club(ctx):
    """Harbour Rowing: Ada (admin), Cora (coach), Abe (athlete), Sol (scheduler); membership ids by name."""
    ada = make_user("ada@example.com", "Ada Admin")
    org = make_org(ada, slug="harbour", name="Harbour Rowing")
    ids = {"ada": str(membership_for(org, ada).id)}
    for key, email, name, role in (("cora", "cora@example.com", "Cora Coach", "coach"),
                                   ("abe", "abe@example.com", "Abe Athlete", "athlete"),
                                   ("sol", "sol@example.com", "Sol Scheduler", "scheduler")):
        ids[key] = str(add_member(org, make_user(email, name), role).id)
    return ids


@pytest.fixture()
def admin(app, club):
    return logged_in(app, "ada@example.com")


@pytest.fixture()
def other_club(app, ctx, club, mailbox, owner_db):
    """Rival Rowing with its own admin, member and open invitation; their ids."""
    otto = make_user("otto@example.com", "Otto")
    org = make_org(otto, slug="rival", name="Rival Rowing")
    member_id = str(add_member(org, make_user("rita@example.com", "Rita"), "athlete").id)
    assert post(logged_in(app, "otto@example.com"), "/o/rival/admin/invitations",
                email="rick@example.com", role="coach").status_code == 303
    mailbox.wait_for("rick@example.com")
    return {"member": member_id, "invitation": str(invitation_rows(owner_db, "rival")[0][0])}


# -- the members page ------------------------------------------------------------------------------

def test_admin_sees_every_member_with_their_role(admin, club):
    response = admin.get(MEMBERS)
    page = text(response)

    assert response.status_code == 200
    assert "<html" in page
    assert "HX-Request" in response.headers["Vary"]
    for name in ("Ada Admin", "Cora Coach", "Abe Athlete", "Sol Scheduler"):
        assert name in page
    cora_row = page[page.index(f'id="member-{club["cora"]}"'):]
    cora_row = cora_row[:cora_row.index("</tr>")]
    assert "Cora Coach" in cora_row
    assert '<option value="coach" selected>Coach</option>' in cora_row
    assert 'href="/o/harbour/admin/members"' in page  # the admin's nav links here


@pytest.mark.parametrize("email", ["cora@example.com", "abe@example.com", "sol@example.com"])
def test_members_who_are_not_admins_are_forbidden_everywhere_in_admin(app, club, owner_db, email):
    browser = logged_in(app, email)
    target = club["abe"] if email != "abe@example.com" else club["cora"]

    assert browser.get(MEMBERS).status_code == 403
    assert post(browser, f"{MEMBERS}/{target}/role", role="admin").status_code == 403
    assert post(browser, f"{MEMBERS}/{target}/remove").status_code == 403
    assert post(browser, "/o/harbour/admin/invitations", email="x@example.com", role="admin").status_code == 403
    assert role_of(owner_db, "harbour", email) != "admin"
    assert role_of(owner_db, "harbour", "abe@example.com") == "athlete"
    assert invitation_rows(owner_db, "harbour") == []
    assert "Not allowed" in text(browser.get(MEMBERS))


def test_non_members_get_not_found_on_admin_pages(app, club, ctx):
    make_user("eve@example.com", "Eve")
    browser = logged_in(app, "eve@example.com")

    assert browser.get(MEMBERS).status_code == 404
    assert post(browser, f"{MEMBERS}/{club['abe']}/remove").status_code == 404
    assert browser.get("/o/nowhere/admin/members").status_code == 404


def test_anonymous_visitor_is_sent_to_log_in(client, club):
    response = client.get(MEMBERS)

    assert response.status_code == 303
    assert response.headers["Location"] == f"/login?next={MEMBERS}"


# -- roles ----------------------------------------------------------------------------------------

def test_admin_changes_a_members_role(app, admin, club):
    response = post(admin, f"{MEMBERS}/{club['abe']}/role", role="coach")

    assert response.status_code == 303
    assert response.headers["Location"] == MEMBERS
    assert "Abe Athlete is now coach." in text(admin.get(MEMBERS))
    assert "You are coach here" in text(logged_in(app, "abe@example.com").get("/o/harbour/"))


def test_promoted_member_can_open_the_admin_pages(app, admin, club):
    post(admin, f"{MEMBERS}/{club['cora']}/role", role="admin")

    assert logged_in(app, "cora@example.com").get(MEMBERS).status_code == 200


def test_last_admin_cannot_be_demoted(admin, club, owner_db):
    response = post(admin, f"{MEMBERS}/{club['ada']}/role", role="athlete")

    assert response.status_code == 422
    assert "An organization needs at least one admin. Make someone else admin first." in text(response)
    assert role_of(owner_db, "harbour", "ada@example.com") == "admin"
    assert admin.get(MEMBERS).status_code == 200


def test_last_admin_cannot_be_removed(admin, club, owner_db):
    response = post(admin, f"{MEMBERS}/{club['ada']}/remove")

    assert response.status_code == 422
    assert "The last admin cannot be removed. Make someone else admin first." in text(response)
    assert role_of(owner_db, "harbour", "ada@example.com") == "admin"


def test_admin_can_step_down_once_there_is_another_admin(app, admin, club, owner_db):
    post(admin, f"{MEMBERS}/{club['cora']}/role", role="admin")

    response = post(admin, f"{MEMBERS}/{club['ada']}/role", role="coach")

    assert response.status_code == 303
    assert response.headers["Location"] == "/o/harbour/"  # not a page they may no longer see
    assert "You are now coach in Harbour Rowing." in text(admin.get("/o/harbour/"))
    assert admin.get(MEMBERS).status_code == 403
    assert role_of(owner_db, "harbour", "cora@example.com") == "admin"


def test_unknown_role_is_refused_and_nothing_changes(admin, club, owner_db):
    response = post(admin, f"{MEMBERS}/{club['abe']}/role", role="owner")

    assert response.status_code == 422
    assert "Choose one of the listed roles." in text(response)
    assert role_of(owner_db, "harbour", "abe@example.com") == "athlete"


def test_role_change_error_comes_back_as_a_fragment_for_htmx(admin, club):
    response = post(admin, f"{MEMBERS}/{club['ada']}/role", role="coach", headers={"HX-Request": "true"})

    assert response.status_code == 422
    assert "<html" not in text(response)
    assert 'id="members"' in text(response)
    assert "An organization needs at least one admin." in text(response)


# -- removing members -----------------------------------------------------------------------------

def test_removed_member_loses_access(app, admin, club, owner_db):
    abe = logged_in(app, "abe@example.com")
    assert abe.get("/o/harbour/").status_code == 200

    response = post(admin, f"{MEMBERS}/{club['abe']}/remove")

    assert response.status_code == 303
    assert "Abe Athlete was removed from Harbour Rowing." in text(admin.get(MEMBERS))
    assert "Abe Athlete" not in text(admin.get(MEMBERS))
    assert abe.get("/o/harbour/").status_code == 404
    assert "Harbour Rowing" not in text(abe.get("/orgs"))
    assert role_of(owner_db, "harbour", "abe@example.com") is None
    # The account stays: Abe can still log in.
    assert Auth(app.test_client()).login("abe@example.com").status_code == 303


def test_admin_who_removes_themselves_lands_on_the_picker(app, admin, club):
    post(admin, f"{MEMBERS}/{club['cora']}/role", role="admin")

    response = post(admin, f"{MEMBERS}/{club['ada']}/remove")

    assert response.status_code == 303
    assert response.headers["Location"] == "/orgs"
    picker = text(admin.get("/orgs"))
    assert "You left Harbour Rowing." in picker
    assert 'href="/o/harbour/"' not in picker
    assert admin.get("/o/harbour/").status_code == 404


# -- other organizations' ids and malformed ids -----------------------------------------------------

def test_another_organizations_member_cannot_be_changed_or_removed(admin, club, other_club, owner_db):
    foreign = other_club["member"]

    assert post(admin, f"{MEMBERS}/{foreign}/role", role="admin").status_code == 404
    assert post(admin, f"{MEMBERS}/{foreign}/remove").status_code == 404
    assert role_of(owner_db, "rival", "rita@example.com") == "athlete"


def test_another_organizations_invitation_cannot_be_resent_or_revoked(admin, club, other_club, owner_db):
    foreign = other_club["invitation"]
    emails_before = email_count(owner_db)

    assert post(admin, f"/o/harbour/admin/invitations/{foreign}/resend").status_code == 404
    assert post(admin, f"/o/harbour/admin/invitations/{foreign}/revoke").status_code == 404
    assert invitation_rows(owner_db, "rival")[0][3] is False  # still open
    assert email_count(owner_db) == emails_before  # no new link sent


# A fixed unknown id, not uuid4(): every xdist worker collects the same test names.
@pytest.mark.parametrize("bad_id", ["not-a-uuid", "123", "%00", "x" * 500, "5f0c2e7a-93d4-4b1e-8a26-c41d7e9b3f08"])
def test_malformed_or_unknown_ids_are_not_found(admin, club, bad_id):
    for path in (f"{MEMBERS}/{bad_id}/role", f"{MEMBERS}/{bad_id}/remove",
                 f"/o/harbour/admin/invitations/{bad_id}/resend", f"/o/harbour/admin/invitations/{bad_id}/revoke"):
        response = post(admin, path, role="coach")
        assert response.status_code == 404, path


# -- invitations -----------------------------------------------------------------------------------

def test_admin_invites_by_email_and_the_invitation_is_listed(app, admin, club, mailbox):
    response = post(admin, "/o/harbour/admin/invitations", email="  Nina@Example.com ", role="coach")

    assert response.status_code == 303
    message = mailbox.wait_for("nina@example.com")
    assert link_in(app, message).startswith("/invitations/harbour/")
    page = text(admin.get(MEMBERS))
    assert "Invitation sent to nina@example.com." in page
    assert "<strong>nina@example.com</strong> · Coach" in page


def test_inviting_with_an_unknown_role_writes_nothing(admin, club, owner_db):
    response = post(admin, "/o/harbour/admin/invitations", email="nina@example.com", role="owner")

    assert response.status_code == 422
    assert "Not a valid choice" in text(response)
    assert invitation_rows(owner_db, "harbour") == []
    assert email_count(owner_db) == 0


def test_inviting_an_existing_member_says_so(admin, club, owner_db):
    response = post(admin, "/o/harbour/admin/invitations", email="Cora@example.com", role="admin")

    assert response.status_code == 422
    assert "This person is already a member." in text(response)
    assert invitation_rows(owner_db, "harbour") == []
    assert role_of(owner_db, "harbour", "cora@example.com") == "coach"


def test_invalid_invitation_email_comes_back_as_a_fragment_for_htmx(admin, club):
    response = post(admin, "/o/harbour/admin/invitations", email="not-an-email", role="coach",
                    headers={"HX-Request": "true"})
    page = text(response)

    assert response.status_code == 422
    assert "<html" not in page
    assert 'id="invite"' in page
    assert "Enter a valid email address." in page
    assert "HX-Request" in response.headers["Vary"]


def test_invalid_invitation_email_without_javascript_gets_the_whole_page(admin, club):
    response = post(admin, "/o/harbour/admin/invitations", email="not-an-email", role="coach")

    assert response.status_code == 422
    assert "<html" in text(response)
    assert "Enter a valid email address." in text(response)


def test_resending_sends_a_new_link_and_the_old_one_stops_working(app, admin, club, owner_db, mailbox, client):
    post(admin, "/o/harbour/admin/invitations", email="nina@example.com", role="coach")
    old_link = link_in(app, mailbox.wait_for("nina@example.com"))
    invitation_id = invitation_rows(owner_db, "harbour")[0][0]
    mailbox.clear()

    response = post(admin, f"/o/harbour/admin/invitations/{invitation_id}/resend")

    assert response.status_code == 303
    assert "Invitation sent again to nina@example.com." in text(admin.get(MEMBERS))
    new_link = link_in(app, mailbox.wait_for("nina@example.com"))
    assert new_link != old_link
    assert client.get(old_link).status_code == 410
    assert client.get(new_link).status_code == 200


def test_inviting_the_same_address_again_replaces_the_old_link(app, admin, club, mailbox, client):
    post(admin, "/o/harbour/admin/invitations", email="nina@example.com", role="athlete")
    old_link = link_in(app, mailbox.wait_for("nina@example.com"))
    mailbox.clear()

    post(admin, "/o/harbour/admin/invitations", email="nina@example.com", role="coach")
    new_link = link_in(app, mailbox.wait_for("nina@example.com"))

    assert client.get(old_link).status_code == 410
    assert "as <strong>coach</strong>" in text(client.get(new_link))
    assert text(admin.get(MEMBERS)).count("<strong>nina@example.com</strong>") == 1


def test_revoked_invitation_leaves_the_list_and_its_link_stops_working(app, admin, club, owner_db, mailbox,
                                                                       client):
    post(admin, "/o/harbour/admin/invitations", email="nina@example.com", role="coach")
    link = link_in(app, mailbox.wait_for("nina@example.com"))
    invitation_id = invitation_rows(owner_db, "harbour")[0][0]

    response = post(admin, f"/o/harbour/admin/invitations/{invitation_id}/revoke")

    assert response.status_code == 303
    page = text(admin.get(MEMBERS))
    assert "Invitation to nina@example.com revoked." in page
    assert "No pending invitations." in page
    assert client.get(link).status_code == 410


def test_an_accepted_invitation_cannot_be_resent(app, admin, club, owner_db, mailbox, ctx):
    make_user("nina@example.com", "Nina")
    post(admin, "/o/harbour/admin/invitations", email="nina@example.com", role="coach")
    link = link_in(app, mailbox.wait_for("nina@example.com"))
    invitation_id = invitation_rows(owner_db, "harbour")[0][0]
    nina = logged_in(app, "nina@example.com")
    assert post(nina, link + "/accept").status_code == 303
    emails_before = email_count(owner_db)

    response = post(admin, f"/o/harbour/admin/invitations/{invitation_id}/resend")

    assert response.status_code == 303
    page = text(admin.get(MEMBERS))
    assert "This invitation is no longer open." in page
    assert "No pending invitations." in page
    assert email_count(owner_db) == emails_before
