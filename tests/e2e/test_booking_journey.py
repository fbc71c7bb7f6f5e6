"""Booking in Chromium: an athlete books a time, the coach accepts it in place, the athlete cancels.

Screenshots of the calendar, the booking page and the coach's sessions go to
``$COACH_SCREENSHOTS`` (``/tmp`` when unset) as ``booking-*.png``.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.booking_support import BookingWorld
from tests.e2e.test_journeys import log_in, wait_for_htmx, watch_csp
from tests.factories import PASSWORD
from tests.e2e import screenshots

pytestmark = pytest.mark.e2e


snap = screenshots("booking")


def open_org(page: Page, live_server: str, slug: str, email: str) -> None:
    """Log in through the form and land on the organization's home."""
    page.goto(f"{live_server}/login?next=/o/{slug}/")
    log_in(page, email, PASSWORD)
    expect(page).to_have_url(f"{live_server}/o/{slug}/")


@pytest.fixture()
def world(ctx):
    return BookingWorld()


def test_athlete_books_coach_accepts_in_place_athlete_cancels(browser, page, live_server, world):
    slug = world.org.slug
    athlete_email, coach_email = world.athlete.user.email, world.coach.user.email
    athlete_csp = watch_csp(page)

    # The athlete finds the coach and the offering.
    open_org(page, live_server, slug, athlete_email)
    page.get_by_role("navigation", name="Main").locator("summary", has_text="More").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Book a session").click()
    expect(page.get_by_role("heading", name="Book a session")).to_be_visible()
    page.get_by_role("link", name="Carla Coach").click()
    expect(page.get_by_role("heading", name="Carla Coach")).to_be_visible()
    page.get_by_role("link", name="See times").click()
    expect(page.get_by_role("heading", name="Technique session", level=1)).to_be_visible()
    expect(page.get_by_text(re.compile(r"Times in Europe/Berlin \(CES?T(/CES?T)?\), your time zone\."))).to_be_visible()
    if not page.get_by_text("the first with free times").count():  # late on a Sunday it opens on next week
        expect(page.get_by_role("link", name="‹ Previous week")).to_have_count(0)

    # Next week swaps the calendar in place and puts the week in the address.
    wait_for_htmx(page)
    page.evaluate("window.__marker = 'calendar'")
    this_week = page.get_by_role("heading", name=re.compile("^Week of")).inner_text()
    page.get_by_role("link", name="Next week ›").click()
    expect(page).to_have_url(re.compile(rf"/o/{slug}/offerings/{world.offering.id}\?week=\d{{4}}-\d\d-\d\d$"))
    expect(page.get_by_role("heading", name=re.compile("^Week of"))).not_to_have_text(this_week)
    expect(page.get_by_role("link", name="‹ Previous week")).to_be_visible()
    assert page.evaluate("window.__marker") == "calendar"  # same document: only #calendar was swapped
    expect(page.locator("#calendar")).to_have_count(1)
    # A week further: next week's first time can be within the 24-hour cancellation window (on a
    # Sunday), and this journey cancels in time.
    next_week = page.get_by_role("heading", name=re.compile("^Week of")).inner_text()
    page.get_by_role("link", name="Next week ›").click()
    expect(page.get_by_role("heading", name=re.compile("^Week of"))).not_to_have_text(next_week)
    slot = page.locator("a.slot").first
    expect(slot).to_be_visible()
    time_label = slot.inner_text()
    snap(page, "calendar")

    # A slot leads to the booking page; a note and the button book it.
    slot.click()
    expect(page.get_by_role("heading", name="Book this time")).to_be_visible()
    expect(page.locator("p.when")).to_contain_text(f"{time_label}–")
    page.get_by_label("Note for the coach").fill("Could we work on my serve?")
    snap(page, "book")
    page.get_by_role("button", name="Request booking").click()
    expect(page.get_by_text("Requested: you will see here when the coach answers.")).to_be_visible()
    expect(page.locator("dl.facts .badge")).to_have_text("Requested")
    expect(page.locator("dl.facts dd.note")).to_have_text("Could we work on my serve?")
    booking_id = re.search(r"/bookings/([0-9a-f-]{36})$", page.url).group(1)

    # The coach, in a browser of their own, accepts the request in place.
    coach_context = browser.new_context()
    try:
        coach = coach_context.new_page()
        coach_csp = watch_csp(coach)
        open_org(coach, live_server, slug, coach_email)
        coach.get_by_role("navigation", name="Main").get_by_role("link", name="Sessions").click()
        expect(coach.get_by_role("heading", name="My sessions")).to_be_visible()
        request = coach.locator("#pending").locator(f"#booking-{booking_id}")
        expect(request).to_contain_text("Arno Athlete")
        expect(request).to_contain_text("Could we work on my serve?")
        snap(coach, "sessions")
        wait_for_htmx(coach)
        coach.evaluate("window.__marker = 'sessions'")
        request.get_by_role("button", name="Accept").click()
        expect(coach.locator(f"#booking-{booking_id}")).to_contain_text("Confirmed")
        expect(coach.locator("#pending")).to_contain_text("No open requests.")
        expect(coach.locator(f"#booking-{booking_id}").get_by_role("button", name="Accept")).to_have_count(0)
        assert coach.evaluate("window.__marker") == "sessions"
        snap(coach, "sessions-confirmed")
        assert coach_csp == []
    finally:
        coach_context.close()

    # The athlete sees it confirmed, then cancels after answering the browser's question.
    page.reload()
    expect(page.locator("dl.facts .badge")).to_have_text("Confirmed")
    questions: list[str] = []

    def answer(dialog):
        questions.append(dialog.message)
        dialog.accept()

    page.on("dialog", answer)
    page.locator(f"#booking-{booking_id}").get_by_role("button", name="Cancel").click()
    expect(page.locator(f"#booking-{booking_id} .badge")).to_have_text("Cancelled")
    assert questions and questions[0].startswith("Cancel this session")
    assert athlete_csp == []


@pytest.fixture()
def no_js_page(browser):
    context = browser.new_context(java_script_enabled=False)
    yield context.new_page()
    context.close()


def test_athlete_books_through_plain_links_and_forms_without_javascript(no_js_page, live_server, world):
    page = no_js_page
    slug = world.org.slug

    open_org(page, live_server, slug, world.athlete.user.email)
    page.get_by_role("navigation", name="Main").locator("summary", has_text="More").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Book a session").click()
    page.get_by_role("link", name="Carla Coach").click()
    page.get_by_role("link", name="See times").click()
    page.get_by_role("link", name="Next week ›").click()
    expect(page).to_have_url(re.compile(r"\?week=\d{4}-\d\d-\d\d$"))
    expect(page.get_by_role("link", name="‹ Previous week")).to_be_visible()
    page.locator("a.slot").nth(2).click()
    expect(page.get_by_role("heading", name="Book this time")).to_be_visible()
    page.get_by_label("Note for the coach").fill("No scripts here")

    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Request booking").click()

    assert posted.value.status == 303
    expect(page).to_have_url(re.compile(rf"/o/{slug}/bookings/[0-9a-f-]{{36}}$"))
    expect(page.locator("dl.facts .badge")).to_have_text("Requested")
    expect(page.locator("dl.facts dd.note")).to_have_text("No scripts here")
