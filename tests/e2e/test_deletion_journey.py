"""Deleting an account in Chromium, as issue 18's "Done when" says: a member asks for deletion (their words removed
too), the 14 days pass (the clock moved), the sweep erases them, they are signed out for good and their post shows
"Deleted member"; an admin closes the organization by typing its address, sees the banner on every page and cancels
it. Screenshots (1280 and 390 px) go to ``$COACH_SCREENSHOTS`` (``/tmp`` when unset) as ``deletion-*.png``."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from coach import clock, tenancy
from coach.extensions import db
from coach.orgs.models import ATHLETE, COACH
from coach.privacy import deletion
from coach.spaces import service as spaces
from tests.e2e import both_widths, screenshots
from tests.e2e.test_journeys import log_in, watch_csp
from tests.factories import PASSWORD, add_member, make_org, make_user

pytestmark = pytest.mark.e2e

snap = screenshots("deletion")


def shoot(page: Page, name: str) -> None:
    both_widths(snap, page, name)


@pytest.fixture()
def club(ctx):
    admin = make_user("ines@example.com", "Ines Admin")
    org = make_org(admin, slug="lakeside", name="Lakeside Tennis")
    coach = add_member(org, make_user("cleo@example.com", "Cleo Coach"), COACH)
    athlete = add_member(org, make_user("dana@example.com", "Dana Athlete"), ATHLETE)
    tenancy.activate(org.id)
    space = spaces.create_space(org, coach, "Court talk", "", "open")
    spaces.join(space, athlete)
    post = spaces.create_post(space, athlete, "My backhand finally works")
    db.session.commit()
    return {"slug": org.slug, "post": str(post.id)}


def test_a_member_deletes_their_account_and_their_post_shows_deleted_member(browser, page, live_server, club,
                                                                            quiet, monkeypatch):
    csp = watch_csp(page)
    page.goto(f"{live_server}/login?next=/account/privacy")
    log_in(page, "dana@example.com", PASSWORD)
    expect(page.get_by_role("heading", name="Delete my account")).to_be_visible()
    shoot(page, "account")
    page.get_by_label("Also remove the text of my posts").check()
    page.get_by_role("button", name="Delete my account").click()
    expect(page.locator(".flash-success")).to_contain_text("Your account will be deleted on")
    expect(page.get_by_role("button", name="Keep my account")).to_be_visible()
    shoot(page, "pending")

    # Fourteen days later the sweep runs.
    later = clock.now() + timedelta(days=15)
    monkeypatch.setattr(clock, "now", lambda: later)
    assert deletion.erase_due_accounts() == 1

    page.goto(f"{live_server}/account/privacy")
    expect(page).to_have_url(re.compile(r"/login\?next="))  # signed out for good
    log_in(page, "dana@example.com", PASSWORD)
    expect(page.get_by_text("Email or password is not correct.")).to_be_visible()

    coach = browser.new_page()
    coach_csp = watch_csp(coach)
    coach.goto(f"{live_server}/login?next=/o/{club['slug']}/posts/{club['post']}")
    log_in(coach, "cleo@example.com", PASSWORD)
    post = coach.locator(".post").first
    expect(post).to_contain_text("Deleted member")
    expect(post).to_contain_text("(removed by its author)")
    expect(post).not_to_contain_text("backhand")
    shoot(coach, "post")
    assert csp == [] and coach_csp == []


def test_an_admin_closes_the_organization_sees_the_banner_and_cancels(page, live_server, club):
    csp = watch_csp(page)
    page.goto(f"{live_server}/login?next=/o/{club['slug']}/privacy")
    log_in(page, "ines@example.com", PASSWORD)
    expect(page.get_by_role("heading", name="Close Lakeside Tennis")).to_be_visible()
    page.get_by_label("Type the organization's address").fill("lakesid")
    page.get_by_role("button", name="Close the organization").click()
    expect(page.locator(".flash-error").first).to_contain_text("Type the organization's address, lakeside")
    page.get_by_label("Type the organization's address").fill("lakeside")
    page.get_by_role("button", name="Close the organization").click()
    expect(page.locator("#closing-banner")).to_contain_text("Lakeside Tennis closes on")
    shoot(page, "closing")
    page.goto(f"{live_server}/o/{club['slug']}/spaces")
    expect(page.locator("#closing-banner")).to_be_visible()
    page.locator("#closing-banner").get_by_role("button", name="Cancel closing").click()
    expect(page.locator(".flash-success")).to_contain_text("stays open")
    expect(page.locator("#closing-banner")).to_have_count(0)
    assert csp == []
