"""A new admin creates an organization and lands on its home with the getting-started checklist at 0 of 5; inviting a
coach makes it 1 of 5, "Looks right" on the time zone 2 of 5 (swapped in place), and "Hide this checklist" hides
it for good. Screenshots at 1280 and 390 px, light and dark: /tmp/shots21/H2-*.png."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from coach import tenancy
from coach.orgs.models import ATHLETE, COACH
from tests.e2e.test_journeys import log_in, wait_for_htmx
from tests.factories import PASSWORD, add_member, make_org, make_user
from tests.test_onboarding import write_profile

pytestmark = pytest.mark.e2e
SHOTS = Path(os.environ.get("COACH_SCREENSHOTS", "/tmp/shots21"))


def shoot(page: Page, name: str) -> None:
    """The page at a laptop's width and a phone's, light and dark; then back to the laptop in light."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for width, height in ((1280, 800), (390, 844)):
            page.set_viewport_size({"width": width, "height": height})
            page.screenshot(path=str(SHOTS / f"H2-{name}-{width}-{scheme}.png"), full_page=True, caret="initial")
    page.emulate_media(color_scheme="light")
    page.set_viewport_size({"width": 1280, "height": 800})


def test_new_admin_follows_the_checklist_then_hides_it(ctx, page: Page, live_server: str):
    make_user("nora@example.com", "Nora Admin", tz="Europe/Dublin")
    page.goto(f"{live_server}/login?next=/orgs/new")
    log_in(page, "nora@example.com", PASSWORD)
    expect(page).to_have_url(f"{live_server}/orgs/new")
    page.get_by_label("Organization name", exact=True).fill("Liffey Rowing")
    page.get_by_label("Web address", exact=True).fill("liffey")
    page.get_by_role("button", name="Create organization").click()
    expect(page).to_have_url(f"{live_server}/o/liffey/")
    wait_for_htmx(page)

    checklist = page.locator("#onboarding")
    expect(checklist).to_contain_text("Set up Liffey Rowing")
    expect(checklist).to_contain_text("0 of 5 done")
    expect(checklist.locator("progress")).to_have_attribute("value", "0")
    shoot(page, "admin-start")

    checklist.get_by_role("link", name="Invite coaches").click()
    expect(page).to_have_url(f"{live_server}/o/liffey/admin/members")
    page.get_by_label("Email", exact=True).fill("coach.one@example.com")
    page.get_by_label("Role", exact=True).select_option("coach")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.locator("#invitations")).to_contain_text("coach.one@example.com")

    page.goto(f"{live_server}/o/liffey/")
    expect(checklist).to_contain_text("1 of 5 done")
    checklist.get_by_role("button", name="Looks right").click()
    expect(checklist).to_contain_text("2 of 5 done")  # swapped in place, no reload
    expect(checklist.locator(".onboarding-step.is-done")).to_have_count(2)
    shoot(page, "admin-two-done")

    checklist.get_by_role("button", name="Hide this checklist").click()
    expect(page.get_by_role("status")).to_contain_text("Checklist hidden")
    page.reload()
    expect(page.locator("section#onboarding")).to_have_count(0)
    page.goto(f"{live_server}/o/liffey/onboarding")  # the page of its own keeps it
    expect(page.get_by_text("You hid this checklist from your home page.")).to_be_visible()
    expect(page.locator("#onboarding")).to_contain_text("2 of 5 done")


def test_athlete_and_coach_walkthroughs_on_their_home(ctx, page: Page, live_server: str):
    """Theo (athlete) confirms his name and zone in place; Cleo (coach) sees her profile ticked, hours next."""
    org = make_org(make_user("ada@example.com", "Ada Admin"), slug="harbour", name="Harbour Club")
    add_member(org, make_user("theo@example.com", "Theo Athlete", tz="America/Chicago"), ATHLETE)
    cleo = add_member(org, make_user("cleo@example.com", "Cleo Coach"), COACH)
    write_profile(cleo)
    tenancy.activate(org.id)

    page.goto(f"{live_server}/login?next=/o/harbour/")
    log_in(page, "theo@example.com", PASSWORD)
    expect(page).to_have_url(f"{live_server}/o/harbour/")
    wait_for_htmx(page)
    checklist = page.locator("#onboarding")
    expect(checklist).to_contain_text("0 of 3 done")
    expect(checklist).to_contain_text("America/Chicago")
    shoot(page, "athlete-start")
    checklist.get_by_role("button", name="Looks right").click()
    expect(checklist).to_contain_text("1 of 3 done")
    expect(checklist.get_by_role("link", name="Coaches of Harbour Club")).to_be_visible()

    page.context.clear_cookies()
    page.goto(f"{live_server}/login?next=/o/harbour/")
    log_in(page, "cleo@example.com", PASSWORD)
    expect(page).to_have_url(f"{live_server}/o/harbour/")
    expect(checklist).to_contain_text("Get ready to coach")
    expect(checklist).to_contain_text("1 of 3 done")
    expect(checklist.get_by_role("link", name="Set your hours")).to_be_visible()
    shoot(page, "coach-start")
