"""A recurring series in Chromium: the coach plans a weekly series of 8, sees the one conflict, books 7, then
moves occurrence 3 and later to Thursdays a week later and cancels the last two.

Screenshots of the preview and the series page at 1280 and 390 px go to ``$COACH_SCREENSHOTS`` (``/tmp``
when unset) as ``series-*.png``.
"""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from coach import tenancy
from coach.booking import service
from coach.extensions import db
from tests.booking_support import BookingWorld
from tests.e2e import both_widths, screenshots
from tests.e2e.test_journeys import log_in, wait_for_htmx, watch_csp
from tests.factories import PASSWORD
from tests.test_booking_series import at, berlin_day

pytestmark = pytest.mark.e2e

snap = screenshots("series")


@pytest.fixture()
def world(ctx):
    return BookingWorld(horizon_days=365)


def test_coach_books_a_weekly_series_of_eight_with_one_conflict(browser, page: Page, live_server, world):
    slug, coach_id, athlete_email = world.org.slug, world.coach.id, world.athlete.user.email
    first = berlin_day(3)
    # Someone already has the fourth week's time.
    tenancy.activate(world.org.id)
    service.request_booking(world.offering, world.athlete, at(first + timedelta(weeks=3), 10), "", world.athlete)
    db.session.commit()
    csp = watch_csp(page)

    page.goto(f"{live_server}/login?next=/o/{slug}/coaches/{coach_id}")
    log_in(page, world.coach.user.email, PASSWORD)
    expect(page.get_by_role("heading", name="Carla Coach")).to_be_visible()
    wait_for_htmx(page)
    page.get_by_role("link", name="Book a recurring series").click()
    expect(page.get_by_role("heading", name="Book a recurring series")).to_be_visible()

    page.get_by_label("Athlete", exact=True).select_option(label=f"Arno Athlete ({athlete_email})")
    page.get_by_label("First session", exact=True).fill(first.isoformat())
    page.get_by_label("At", exact=True).fill("10:00")
    page.get_by_label("Every … weeks", exact=True).fill("1")
    page.get_by_label("After a number of sessions", exact=True).check()
    page.get_by_label("Number of sessions", exact=True).fill("8")
    page.get_by_role("button", name="Show the sessions").click()

    expect(page.get_by_role("heading", name="7 of 8 will be booked")).to_be_visible()
    expect(page.get_by_text("conflict: taken by another session")).to_have_count(1)
    expect(page.locator("li.occurrence")).to_have_count(8)
    expect(page).to_have_url(re.compile(r"/series\?.*count=8"))  # the preview is a link
    both_widths(snap, page, "preview")

    page.get_by_role("button", name="Book 7 sessions").click()
    expect(page.get_by_text("Booked 7 sessions of a weekly series.")).to_be_visible()
    expect(page.get_by_role("heading", name="Technique session: weekly series")).to_be_visible()
    expect(page.locator("#occurrences li.occurrence")).to_have_count(7)
    expect(page.locator("#occurrences .badge-confirmed")).to_have_count(7)
    both_widths(snap, page, "detail")

    # An occurrence's page names its place in the series.
    page.locator("#occurrences a.when").nth(2).click()
    # A boosted page load: on a machine loaded far beyond its cores (CI's parallel suite) it can take over 5 s.
    expect(page).to_have_url(re.compile(r"/bookings/[0-9a-f-]+$"), timeout=20_000)
    expect(page.get_by_text("Occurrence 3 of 7 of a weekly series")).to_be_visible()
    both_widths(snap, page, "occurrence")

    # From here on, Thursdays at 11:00 and a week later: previewed, then all five moved.
    page.get_by_role("link", name="Move this and later").click()
    expect(page.get_by_role("heading", name="Move occurrence 3 and later")).to_be_visible()
    page.get_by_label("New day", exact=True).select_option(label="Thursday")
    page.get_by_label("New time", exact=True).fill("11:00")
    page.get_by_label("Which week", exact=True).select_option(label="1 week later")
    page.get_by_role("button", name="Show the new times").click()
    expect(page.get_by_role("heading", name="All 5 new times are free")).to_be_visible()
    both_widths(snap, page, "move")
    page.get_by_role("button", name="Move 5 sessions").click()
    expect(page.get_by_text("Moved 5 sessions.")).to_be_visible()
    thursday = first - timedelta(days=first.weekday()) + timedelta(weeks=3, days=3)  # was week 2's session
    expect(page.locator("#occurrences a.when").nth(2)).to_contain_text(f"Thu {thursday.day} ")
    expect(page.locator("#occurrences a.when").nth(2)).to_contain_text("11:00")
    expect(page.locator("#occurrences a.when").nth(1)).to_contain_text("10:00")

    # Cancel the last two.
    page.locator("#occurrences li.occurrence").nth(5).get_by_role("button", name="Cancel this and later").click()
    expect(page.get_by_text("Cancelled 2 sessions from occurrence 6 on.")).to_be_visible()
    expect(page.locator("#occurrences .badge-cancelled")).to_have_count(2)
    expect(page.locator("#occurrences .badge-confirmed")).to_have_count(5)
    page.emulate_media(color_scheme="dark")
    both_widths(snap, page, "detail-dark")
    page.goto(page.url.split("?")[0] + "/move?start=3")
    expect(page.get_by_label("Which week", exact=True)).to_have_value("0")
    both_widths(snap, page, "move-dark")
    assert csp == []
