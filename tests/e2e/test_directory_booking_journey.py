"""Booking a coach found in the public directory, in Chromium, with no account to begin with: a visitor opens
Maria's public profile, clicks her first free time, signs up on the booking page, opens the confirmation email's
link, comes back to that time, joins River Academy as an athlete, pays through the fake provider's checkout and
sees the booking's page. No console reports a CSP violation on the way.

Screenshots go to ``$COACH_SCREENSHOTS`` (``/tmp`` when unset) as ``public-profile-*.png`` (1280 and 390 px).
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.directory_support import DirectoryWorld
from tests.e2e import both_widths, screenshots
from tests.e2e.test_journeys import wait_for_htmx, watch_csp
from tests.factories import PASSWORD
from tests.mailbox import Mailbox

pytestmark = pytest.mark.e2e

snap = screenshots("public-profile")


@pytest.fixture()
def world(ctx):
    world = DirectoryWorld()
    world.publish()
    return world


@pytest.fixture()
def provider_to_live(fake_stripe, live_server):
    """The fake provider's webhooks go to the live server, as Stripe's go to the deployed app."""
    fake_stripe.deliver_to(f"{live_server}/payments/webhook")
    return fake_stripe


def test_a_visitor_books_a_listed_coach_signing_up_on_the_way(browser, live_server, app, mailbox, world,
                                                              provider_to_live):
    context = browser.new_context(timezone_id="Europe/Madrid", viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        csp = watch_csp(page)
        page.goto(f"{live_server}/coaches/river/maria-santos")
        expect(page.get_by_role("heading", name="Maria Santos Verified")).to_be_visible()
        expect(page.get_by_text("Valorant aim coach for ranked climbers")).to_be_visible()
        both_widths(snap, page, "profile")

        slot = page.locator(".public-slots a.slot").first
        start = slot.get_attribute("data-start")
        slot.click()
        expect(page.get_by_role("heading", name="Book this time")).to_be_visible()
        expect(page.get_by_text("Aim review with")).to_be_visible()
        wait_for_htmx(page)
        # The zone comes from the browser (timezone.js), as on the plain sign-up page.
        expect(page.get_by_label("Time zone")).to_have_value("Europe/Madrid")
        both_widths(snap, page, "book-signup")
        page.get_by_label("Your name").fill("Vera Visitor")
        page.get_by_label("Email").fill("vera@example.com")
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Sign up and continue").click()
        expect(page.get_by_role("heading", name="Check your email")).to_be_visible()

        # The confirmation link, as the mail app would open it (in the same browser).
        link = Mailbox.link(mailbox.wait_for("vera@example.com", timeout=20), "")
        page.goto(link)
        page.get_by_role("button", name="Confirm and continue").click()
        expect(page).to_have_url(re.compile(r"/coaches/river/maria-santos/book\?"))
        expect(page.get_by_text("Your account is ready: carry on booking.")).to_be_visible()
        both_widths(snap, page, "book-join")
        page.get_by_role("button", name="Join River Academy as an athlete to book").click()

        # The organization's own booking form, at the time chosen on the profile.
        expect(page).to_have_url(re.compile(rf"/o/river/offerings/{world.aim.id}/book\?start="))
        assert start.replace(":", "%3A") in page.url or start in page.url
        expect(page.get_by_text("You joined River Academy as an athlete.")).to_be_visible()
        both_widths(snap, page, "booking-form")
        page.get_by_role("button", name="Pay €45.00 by card").click()
        expect(page.get_by_text("Fake payment provider — no real money")).to_be_visible()
        page.get_by_role("button", name="Pay €45.00").click()
        expect(page.get_by_role("heading", name="Payment received")).to_be_visible(timeout=20_000)
        page.get_by_role("link", name="See the booking").click()
        expect(page.locator("dl.facts .badge")).to_have_text(re.compile("Requested|Confirmed"))
        expect(page.get_by_role("heading", name="Aim review")).to_be_visible()
        both_widths(snap, page, "booked")
        assert csp == []
    finally:
        context.close()
