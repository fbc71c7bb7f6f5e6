"""Booking from the public directory with an account made or used on the way: signing up on the booking page
continues there once the email is confirmed, and joining the coach's organization as an athlete (audited, once)
leads to its booking form. Where a sign-up may continue is checked: nothing but a directory booking address.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from coach import tenancy
from coach.accounts import service as accounts
from coach.directory import joining
from coach.directory.models import Listing
from coach.extensions import db
from coach.orgs.models import ATHLETE, COACH
from coach.orgs.service import membership_for
from tests.conftest import csrf_from
from tests.factories import PASSWORD, make_user
from tests.mailbox import Mailbox
from tests.test_accounts import confirm, sign_up
from tests.test_directory_public_profile import MARIA, book_path, first_slot, log_in, utc, world  # noqa: F401

JOINED = "membership.joined_from_directory"


def see_river(owner_db) -> None:
    """FORCE RLS holds for the schema owner too: read River Academy's rows."""
    owner_db.execute("SELECT set_config('app.tenant_id', id::text, false) FROM organizations WHERE slug = 'river'")


def audited(owner_db, action: str = JOINED) -> list[tuple]:
    see_river(owner_db)
    return owner_db.execute("SELECT tenant_id, actor_label, details FROM audit_events WHERE action = %s",
                            (action,)).fetchall()


def count(owner_db, table: str) -> int:
    return owner_db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def memberships_of(owner_db, email: str) -> int:
    see_river(owner_db)
    return owner_db.execute("SELECT count(*) FROM memberships m JOIN users u ON u.id = m.user_id "
                            "WHERE u.email = %s", (email,)).fetchone()[0]


def join_form(client, path: str) -> dict:
    html = client.get(path).get_data(as_text=True)
    assert "Join River Academy as an athlete to book" in html
    fields = dict(re.findall(r'<input[^>]*name="([a-z_]+)"[^>]*value="([^"]*)"', html))
    fields.update({name: value for value, name in re.findall(r'<input[^>]*value="([^"]*)"[^>]*name="([a-z_]+)"', html)})
    return {k: fields[k] for k in ("csrf_token", "idempotency_key", "offering", "start")}


# --- where a sign-up may continue -------------------------------------------------------------------------

@pytest.mark.parametrize("target, kept", [
    ("/coaches/river/maria-santos/book?offering=3f1c&start=2026-12-09T09:00:00Z", True),
    ("/coaches/river/maria-santos/book?offering=3f1c&start=2026-12-09T09%3A00%3A00Z&tz=Europe%2FBerlin", True),
    ("https://evil.example/coaches/river/maria-santos/book", False),
    ("//evil.example/coaches/river/maria-santos/book", False),
    ("/coaches/river/maria-santos", False),
    ("/o/river/admin/members", False),
    ("/coaches/river/maria-santos/book/../../../o/river/admin", False),
    ("/coaches/river/maria-santos/book?x=1#https://evil.example", False),
    ("/coaches/river/maria-santos/book?next=https://evil.example", False),
    ("/coaches/river/maria-santos/book\r\nLocation: https://evil.example", False),
    ("/coaches/river/maria-santos/book?" + "a" * 600, False),
    ("", False),
])
def test_only_a_directory_booking_address_is_kept_to_continue_to(ctx, owner_db, target, kept):
    accounts.request_signup("lea@example.com", PASSWORD, "Lea Long", "UTC", continue_to=target)
    db.session.commit()
    stored = owner_db.execute("SELECT continue_to FROM pending_signups").fetchone()[0]
    assert stored == (target if kept else None)


def test_a_tampered_continue_to_is_ignored_when_the_sign_up_is_confirmed(app, client, mailbox, owner_db):
    sign_up(client, "lea@example.com", name="Lea Long")
    link = Mailbox.link(mailbox.wait_for("lea@example.com"), app.config["APP_BASE_URL"])
    # Written around the service (as a bad migration or a hand edit could): the confirmation still checks it.
    owner_db.execute("UPDATE pending_signups SET continue_to = 'https://evil.example/coaches/a/b/book'")
    response = confirm(client, link)
    assert response.status_code == 303 and response.headers["Location"] == "/orgs"


# --- signing up on the booking page --------------------------------------------------------------------------

def test_signing_up_on_the_booking_page_continues_to_the_booking_once_confirmed(app, client, mailbox, owner_db, world):
    start = first_slot(world)
    path = book_path(world, start)
    token = csrf_from(client.get(path).get_data(as_text=True))
    response = client.post(path, data={"csrf_token": token, "display_name": "Lea Long", "email": "Lea@Example.com",
                                       "password": PASSWORD, "timezone": "Europe/Lisbon"})
    assert response.status_code == 303
    assert urlsplit(response.headers["Location"]).path == "/signup/sent"
    assert owner_db.execute("SELECT continue_to FROM pending_signups").fetchone()[0] == path

    message = mailbox.wait_for("lea@example.com")
    assert message["Subject"] == "Confirm your Coach account"
    response = confirm(client, Mailbox.link(message, app.config["APP_BASE_URL"]))
    assert response.status_code == 303 and response.headers["Location"] == path
    html = client.get(path).get_data(as_text=True)
    assert "Your account is ready: carry on booking." in html
    assert "Join River Academy as an athlete to book" in html
    assert "Europe/Lisbon" in html  # the new account's zone names the time now


def test_an_invalid_sign_up_shows_the_form_again_and_writes_nothing(client, owner_db, world):
    path = book_path(world, first_slot(world))
    token = csrf_from(client.get(path).get_data(as_text=True))
    response = client.post(path, data={"csrf_token": token, "display_name": "<b>\x07</b>", "email": "not an email",
                                       "password": "short", "timezone": "Atlantis"},
                           headers={"HX-Request": "true"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "<html" not in html  # the form's block alone, for htmx
    for message in ("Use letters, digits, spaces and punctuation only.", "Enter a valid email address.",
                    "Use between 10 and 128 characters."):
        assert message in html, message
    assert count(owner_db, "pending_signups") == 0


def test_a_sign_up_without_its_token_is_refused(client, owner_db, world):
    response = client.post(book_path(world, first_slot(world)),
                           data={"display_name": "Lea", "email": "lea@example.com", "password": PASSWORD})
    assert response.status_code == 400
    assert count(owner_db, "pending_signups") == 0


# --- joining the organization -------------------------------------------------------------------------------

def test_joining_makes_an_audited_athlete_and_goes_to_the_booking_form(client, owner_db, world):
    make_user("nia@example.com", "Nia New")
    log_in(client, "nia@example.com")
    start = first_slot(world)
    form = join_form(client, book_path(world, start))
    response = client.post(f"{MARIA}/join", data=form)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/o/river/offerings/{world.aim.id}/book?start={utc(start)}"
    booking_form = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "You joined River Academy as an athlete." in booking_form and "Book this time" in booking_form
    assert "Pay €45.00 by card" in booking_form  # a paid offering goes through the existing checkout

    tenancy.activate(world.org.id)
    nia = membership_for(world.org, accounts.find_user_by_email("nia@example.com"))
    assert nia.role == ATHLETE
    [(tenant_id, actor, details)] = audited(owner_db)
    assert (tenant_id, actor) == (world.org.id, "nia@example.com")
    assert details["coach"] == "maria-santos" and details["role"] == ATHLETE


def test_joining_twice_or_with_a_replayed_click_makes_one_membership(client, owner_db, world):
    make_user("nia@example.com", "Nia New")
    log_in(client, "nia@example.com")
    path = book_path(world, first_slot(world))
    form = join_form(client, path)
    first, replay = client.post(f"{MARIA}/join", data=form), client.post(f"{MARIA}/join", data=form)
    assert first.status_code == replay.status_code == 303
    assert replay.headers.get("Idempotent-Replayed") == "true"
    again = client.post(f"{MARIA}/join", data=join_form_or_redirect(client, path))
    assert again.status_code in (303, 302)
    assert memberships_of(owner_db, "nia@example.com") == 1
    assert len(audited(owner_db)) == 1


def join_form_or_redirect(client, path: str) -> dict:
    """A member's booking address redirects to the booking form: post the last form's fields with a new key."""
    response = client.get(path)
    assert response.status_code == 302  # already an athlete: straight on
    token = csrf_from(client.get(response.headers["Location"]).get_data(as_text=True))
    query = dict(part.split("=", 1) for part in urlsplit(path).query.split("&"))
    return {"csrf_token": token, "idempotency_key": "second-click-0001", **query}


def test_a_member_of_another_role_joining_stays_what_they_are(ctx, owner_db, world):
    tenancy.activate(world.org.id)
    listing = db.session.get(Listing, world.maria_profile.id)
    kim = joining.join_as_athlete(world.org, world.kim.user, listing=listing)
    assert (kim.id, kim.role) == (world.kim.id, COACH)
    assert audited(owner_db) == []


def test_joining_needs_the_listing_to_still_stand(ctx, owner_db, world):
    nia = make_user("nia@example.com", "Nia New")
    tenancy.activate(world.org.id)
    listing = db.session.get(Listing, world.maria_profile.id)
    world.org.listed_publicly = False  # unlisted a moment ago; the projection has not caught up
    with pytest.raises(joining.JoinRefused):
        joining.join_as_athlete(world.org, nia, listing=listing)
    db.session.rollback()
    assert membership_for(world.org, nia) is None and audited(owner_db) == []


def test_joining_through_an_unlisted_or_opted_out_address_is_404(client, owner_db, world):
    make_user("nia@example.com", "Nia New")
    log_in(client, "nia@example.com")
    form = join_form(client, book_path(world, first_slot(world)))
    tenancy.activate(world.org.id)
    world.maria_profile.listed = False
    db.session.commit()
    assert client.post(f"{MARIA}/join", data={**form, "idempotency_key": "after-opt-out-01"}).status_code == 404
    assert client.post("/coaches/hill/yara-young/join", data={**form, "idempotency_key": "hill-club-0001"}
                       ).status_code == 404
    assert audited(owner_db) == []
    assert memberships_of(owner_db, "nia@example.com") == 0


def test_joining_needs_a_login_and_a_token(client, owner_db, world):
    start = utc(first_slot(world))
    token = csrf_from(client.get(book_path(world, first_slot(world))).get_data(as_text=True))
    response = client.post(f"{MARIA}/join", data={"csrf_token": token, "offering": str(world.aim.id), "start": start})
    assert response.status_code in (302, 303) and "/login" in response.headers["Location"]
    make_user("nia@example.com", "Nia New")
    log_in(client, "nia@example.com")
    response = client.post(f"{MARIA}/join", data={"offering": str(world.aim.id), "start": start})
    assert response.status_code == 400
    assert audited(owner_db) == []


def test_logging_in_from_the_booking_page_comes_back_to_it_with_its_time(client, world):  # noqa: F811
    """An existing account's "Log in" on the booking page returns there, the chosen time kept, to join and book."""
    make_user("nia@example.com", "Nia New")
    start = first_slot(world)
    html = client.get(book_path(world, start)).get_data(as_text=True)
    login = re.search(r'href="(/login\?next=[^"]+)"', html).group(1).replace("&amp;", "&")
    token = csrf_from(client.get(login).get_data(as_text=True))
    response = client.post(login, data={"csrf_token": token, "email": "nia@example.com", "password": PASSWORD})
    assert response.status_code == 303 and response.headers["Location"] == book_path(world, start)
    fields = join_form(client, response.headers["Location"])
    assert fields["start"] == utc(start) and fields["offering"] == str(world.aim.id)
