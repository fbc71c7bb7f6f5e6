"""Small things a coach notices on the pages of issues 19 and 22, looked at in Chromium at 390 and 1280 px, light
and dark: the calendars card's last row ("No calendar receives bookings") drawn like the rows above it, header cell
included; the profile editor's live preview showing the saved price and sessions delivered beside what is
typed, and saying where they come from. Screenshots go to ``$COACH_SCREENSHOTS`` (``/tmp`` when unset) as ``E-*.png``.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from coach import tenancy
from coach.calsync.models import CalendarConnection, CalendarSource
from coach.extensions import db
from coach.platform.sealing import seal
from tests.booking_support import BookingWorld
from tests.directory_support import DirectoryWorld
from tests.e2e import screenshots
from tests.e2e.test_journeys import log_in, watch_csp
from tests.factories import PASSWORD

pytestmark = pytest.mark.e2e

snap = screenshots("E")


def four_ways(page: Page, name: str) -> None:
    """Screenshots at 1280 and 390 px, light and dark; back to 1280 px and light."""
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for width, height in ((1280, 900), (390, 844)):
            page.set_viewport_size({"width": width, "height": height})
            page.wait_for_timeout(150)
            snap(page, f"{name}-{scheme}-{width}")
    page.emulate_media(color_scheme="light")
    page.set_viewport_size({"width": 1280, "height": 900})


@pytest.fixture()
def world(ctx):
    return BookingWorld()


def a_synced_calendar_account(world) -> None:
    """An account whose sync has listed two calendars (written directly: the look is under test, not the sync)."""
    tenancy.activate(world.org.id)
    connection = CalendarConnection(tenant_id=world.org.id, coach_membership_id=world.coach.id, label="Fastmail",
                                    server_url="http://127.0.0.1:9/dav/", username="carla",
                                    secret_sealed=seal("app-password"), status="ok")
    db.session.add(connection)
    db.session.flush()
    for name, receives in (("Personal", True), ("Club", False)):
        db.session.add(CalendarSource(tenant_id=world.org.id, connection_id=connection.id,
                                      url=f"http://127.0.0.1:9/dav/{name.lower()}/", display_name=name,
                                      blocks_time=True, receives_bookings=receives))
    db.session.commit()


def cell_looks(page: Page, row) -> list[tuple[str, str]]:
    """Each cell's bottom border width and background colour, header cell first."""
    return [tuple(look) for look in row.locator("th, td").evaluate_all(
        "cells => cells.map(c => [getComputedStyle(c).borderBottomWidth, getComputedStyle(c).backgroundColor])")]


def test_the_calendars_last_row_is_drawn_like_its_cells_header_included(page: Page, live_server, world):
    csp = watch_csp(page)
    a_synced_calendar_account(world)
    page.goto(f"{live_server}/login?next=/o/{world.org.slug}/calendars")
    log_in(page, world.coach.user.email, PASSWORD)
    table = page.locator("table.calendar-choices")
    expect(table).to_be_visible()
    last = table.locator("tbody tr").last
    expect(last.locator("th")).to_have_text("No calendar receives bookings")
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        looks = cell_looks(page, last)
        assert len(set(looks)) == 1, (scheme, looks)  # no rule under the header cell alone
        assert looks[0][0] == "0px", (scheme, looks)
        # Pointing at a row highlights the whole row, the calendar's name too.
        last.locator("td").last.hover()
        looks = cell_looks(page, last)
        assert len(set(looks)) == 1, (scheme, looks)
        page.mouse.move(0, 0)
    first = table.locator("tbody tr").first
    assert cell_looks(page, first)[0][0] == "1px"  # the rows above keep their rule
    four_ways(page, "calendars-card")
    assert csp == []


def test_the_editors_live_preview_shows_the_saved_price_and_sessions_beside_the_typed_headline(page: Page, live_server,
                                                                                              ctx):
    csp = watch_csp(page)
    DirectoryWorld()
    page.goto(f"{live_server}/login?next=/o/river/profile")
    log_in(page, "maria@example.com", PASSWORD)
    preview = page.locator("#profile-preview")
    expect(preview.locator(".profile-facts")).to_contain_text("€45.00 per session")
    page.get_by_label("Headline").fill("Aim coach for ranked climbers, typed just now")
    expect(preview).to_contain_text("Preview: not saved yet")
    expect(preview.locator(".profile-headline")).to_have_text("Aim coach for ranked climbers, typed just now")
    # The live preview still shows what comes from her offerings and bookings, and says where it comes from.
    expect(preview.locator(".profile-facts")).to_contain_text("€45.00 per session")
    expect(preview.locator(".profile-facts")).to_contain_text("Sessions delivered")
    expect(preview.locator(".profile-preview-note")).to_have_text(
        "Price, answer time and sessions delivered come from your offerings and bookings, not from this form.")
    four_ways(page, "profile-editor-preview")
    assert csp == []


def test_without_javascript_the_preview_keeps_the_facts_and_the_header_marks_my_profile(browser, live_server, ctx):
    DirectoryWorld()
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{live_server}/login?next=/o/river/profile")
        log_in(page, "maria@example.com", PASSWORD)
        page.get_by_label("Headline").fill("Typed without JavaScript")
        page.get_by_role("button", name="Preview", exact=True).click()
        preview = page.locator("#profile-preview")
        expect(preview).to_contain_text("Preview: not saved yet")
        expect(preview.locator(".profile-headline")).to_have_text("Typed without JavaScript")
        expect(preview.locator(".profile-facts")).to_contain_text("€45.00 per session")
        expect(preview.locator(".profile-preview-note")).to_be_visible()
        nav = page.get_by_role("navigation", name="Main")
        expect(nav.locator('[aria-current="page"]')).to_have_text("My profile")
        snap(page, "profile-editor-nojs-1280")
    finally:
        context.close()


def test_a_coachs_schedule_and_calendars_mark_more_and_schedule_in_the_header(page: Page, live_server, world):
    csp = watch_csp(page)
    page.goto(f"{live_server}/login?next=/o/{world.org.slug}/coaches/{world.coach.id}/schedule")
    log_in(page, world.coach.user.email, PASSWORD)
    # The weekly hours' last row (Sunday) has no line under its day alone, as on the calendars card.
    sunday = page.locator("table.week-editor tbody tr").last
    expect(sunday.locator("th")).to_have_text("Sunday")
    looks = cell_looks(page, sunday)
    assert len(set(looks)) == 1 and looks[0][0] == "0px", looks
    nav = page.get_by_role("navigation", name="Main")
    for here, link in (("schedule", "Calendars"), ("calendars", "Schedule")):  # there and back by the pages' buttons
        expect(nav.locator("summary.tab")).to_have_attribute("aria-current", "true")
        expect(nav.get_by_role("link", name="Sessions")).not_to_have_attribute("aria-current", "page")
        four_ways(page, f"nav-on-{here}")
        page.locator("main").get_by_role("link", name=link, exact=True).click()
    expect(page).to_have_url(re.compile(r"/schedule$"))
    nav.locator("summary.tab").click()
    expect(nav.get_by_role("link", name="Schedule")).to_have_attribute("aria-current", "page")
    assert csp == []
