"""Issue 22's "Done when", in Chromium, through the real pages, as one story.

A visitor with no account searches the public directory for "valorrant aim coach" (a typo), filters to English
and 4 stars and up, opens Maria's profile, takes her next free time, signs up on the booking page, confirms from
the email, joins River Academy as an athlete, pays and lands on her booking. Maria accepts it. The session ends
(the booking sweep, with the clock moved past its end as the minute sweep would see it); the athlete is asked for
a review (notification and email), gives 5 stars; Maria replies; once the jobs have run, the directory's card
shows the new rating and the public profile the review and its reply. The unlisted Hill Club's coach never shows.
The same search and profile work with JavaScript off.

Screenshots (1280x800 and 390x844) go to ``$COACH_SCREENSHOTS`` (``/tmp`` when unset) as ``done-when-*.png``.
"""
from __future__ import annotations

import re
import time
import uuid
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from coach import tenancy
from coach.booking import sweeps
from coach.booking.models import Booking
from coach.directory import reviews
from coach.extensions import db
from tests.directory_support import DirectoryWorld
from tests.e2e import screenshots
from tests.e2e.test_journeys import log_in, wait_for_htmx, watch_csp
from tests.factories import PASSWORD
from tests.mailbox import Mailbox

pytestmark = pytest.mark.e2e

snap = screenshots("done-when")
QUERY = "valorrant aim coach"
HIDDEN = ("Yara", "Hill Club", "yara-young")  # the unlisted club's coach, by any of her public marks


def shoot(page: Page, name: str) -> None:
    """``name`` at a laptop's and a phone's size, then back to the laptop; at neither does the page run off the
    side of the screen (a phone would scroll it sideways)."""
    for width, height in ((1280, 800), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        snap(page, f"{name}-{width}")
        wide = page.evaluate("() => document.documentElement.scrollWidth")
        assert wide <= width, f"{name} is {wide} px wide on a {width} px screen"
    page.set_viewport_size({"width": 1280, "height": 800})


def card(page: Page, name: str):
    return page.locator(".coach-card").filter(has=page.get_by_role("link", name=name, exact=True))


def never_hill(page: Page) -> None:
    text = page.content()
    for mark in HIDDEN:
        assert mark not in text, f"{mark!r} of the unlisted club is on {page.url}"


def email_with(mailbox: Mailbox, address: str, subject: str, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in mailbox.to(address):
            if subject in message["Subject"]:
                return message
        time.sleep(0.1)
    raise AssertionError(f"no email '{subject}' to {address}; got {[m['Subject'] for m in mailbox.to(address)]}")


@pytest.fixture()
def world(ctx):
    world = DirectoryWorld()
    # Maria already has one counted review (Ana's, 4 stars), so "4 stars and up" finds her.
    reviews.write_review(world.ended, world.ana, 4, "Clear routine, and I climbed a rank in two weeks.")
    db.session.commit()
    world.publish()
    return world


@pytest.fixture()
def provider_to_live(fake_stripe, live_server):
    """The fake provider's webhooks go to the live server, as Stripe's go to the deployed app."""
    fake_stripe.deliver_to(f"{live_server}/payments/webhook")
    return fake_stripe


def test_done_when(app, browser, live_server, mailbox, job_runner, world, provider_to_live):
    visitor = browser.new_context(timezone_id="Europe/Madrid", viewport={"width": 1280, "height": 800})
    coach_context = None
    try:
        page = visitor.new_page()
        csp = watch_csp(page)

        # 1. Search with a typo; the results follow the typing; filter to English and 4 stars and up.
        page.goto(f"{live_server}/coaches")
        wait_for_htmx(page)
        never_hill(page)
        with page.expect_response(lambda r: "q=valorrant" in r.url and r.request.headers.get("hx-request") == "true"):
            page.get_by_label("Search coaches").fill(QUERY)
        expect(page.locator("p.corrected")).to_contain_text("Showing results for valorant aim coach")
        expect(page).to_have_url(re.compile(r"/coaches\?.*q=valorrant"))
        expect(card(page, "Maria Santos")).to_be_visible()
        never_hill(page)
        page.get_by_role("checkbox", name=re.compile(r"^English")).check()
        expect(page).to_have_url(re.compile(r"lang=en"))
        page.get_by_role("checkbox", name=re.compile(r"^4 stars and up")).check()
        expect(page).to_have_url(re.compile(r"rating=4"))
        expect(page.get_by_role("link", name=re.compile(r"Language: English"))).to_be_visible()
        expect(page.locator("#result-count")).to_have_text(re.compile(r"^1 coach"))
        maria = card(page, "Maria Santos")
        expect(maria).to_contain_text("Verified")
        expect(maria).to_contain_text("4.0")
        expect(maria).to_contain_text("(1 review)")
        never_hill(page)
        search_url = page.url
        shoot(page, "search")

        # 2. The profile, its first free time, a sign-up on the booking page, the email, joining, paying.
        page.get_by_role("link", name="Maria Santos", exact=True).click()
        expect(page).to_have_url(f"{live_server}/coaches/river/maria-santos")
        expect(page.get_by_role("heading", level=1)).to_contain_text("Maria Santos")
        expect(page.get_by_text("Clear routine, and I climbed a rank in two weeks.")).to_be_visible()
        wait_for_htmx(page)
        shoot(page, "profile")
        slot = page.locator(".public-slots a.slot").first
        start = slot.get_attribute("data-start")
        slot.click()
        expect(page.get_by_role("heading", name="Book this time")).to_be_visible()
        wait_for_htmx(page)
        expect(page.get_by_label("Time zone")).to_have_value("Europe/Madrid")
        shoot(page, "book-signup")
        page.get_by_label("Your name").fill("Vera Visitor")
        page.get_by_label("Email").fill("vera@example.com")
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Sign up and continue").click()
        expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
        page.goto(Mailbox.link(mailbox.wait_for("vera@example.com", timeout=20)))
        page.get_by_role("button", name="Confirm and continue").click()
        expect(page.get_by_text("Your account is ready: carry on booking.")).to_be_visible()
        page.get_by_role("button", name="Join River Academy as an athlete to book").click()
        expect(page).to_have_url(re.compile(rf"/o/river/offerings/{world.aim.id}/book\?start="))
        expect(page.get_by_text("You joined River Academy as an athlete.")).to_be_visible()
        page.get_by_role("button", name="Pay €45.00 by card").click()
        expect(page.get_by_text("Fake payment provider — no real money")).to_be_visible()
        page.get_by_role("button", name="Pay €45.00", exact=True).click()
        expect(page.get_by_role("heading", name="Payment received")).to_be_visible(timeout=20_000)
        page.get_by_role("link", name="See the booking").click()
        expect(page).to_have_url(re.compile(r"/o/river/bookings/[0-9a-f-]{36}$"))
        booking_id = uuid.UUID(page.url.rsplit("/", 1)[1])
        expect(page.get_by_role("heading", name="Aim review")).to_be_visible()
        facts = page.locator("dl.facts")
        expect(facts).to_contain_text("Maria Santos")
        expect(facts).to_contain_text("Vera Visitor")
        expect(facts).to_contain_text("Paid €45.00 by card")
        expect(facts.locator(".badge")).to_have_text(re.compile("Requested|Confirmed"))
        shoot(page, "booking")
        tenancy.activate(world.org.id)
        booked = db.session.get(Booking, booking_id)
        assert booked.starts_at.strftime("%Y-%m-%dT%H:%M:%SZ") == start

        # Maria accepts the request on the booking's page.
        coach_context = browser.new_context(timezone_id="Europe/Berlin", viewport={"width": 1280, "height": 800})
        coach_page = coach_context.new_page()
        coach_csp = watch_csp(coach_page)
        coach_page.goto(f"{live_server}/login?next=/o/river/bookings/{booking_id}")
        log_in(coach_page, "maria@example.com", PASSWORD)
        expect(coach_page).to_have_url(f"{live_server}/o/river/bookings/{booking_id}")
        coach_page.get_by_role("button", name="Accept").click()
        expect(coach_page.locator(f"#booking-{booking_id} .badge")).to_have_text("Confirmed")
        # The page's own Status line follows the action without a reload.
        expect(coach_page.locator("#booking-status .badge")).to_have_text("Confirmed")

        # 3. The session ends: the sweep, run at a moment past its end (grace included), starts and ends it.
        db.session.expire_all()
        tenancy.activate(world.org.id)
        booked = db.session.get(Booking, booking_id)
        grace = timedelta(minutes=app.config["BOOKING_END_GRACE_MINUTES"])
        swept = sweeps.run_due(world.org.id, now=booked.ends_at + grace + timedelta(minutes=1))
        db.session.commit()
        assert (swept.started, swept.ended) == (1, 1)
        job_runner.drain()

        # The athlete is asked: an email with the form's address, and a notification leading to it.
        form_path = f"/o/river/bookings/{booking_id}/review"
        asked = email_with(mailbox, "vera@example.com", "How was your session with Maria Santos?")
        assert form_path in Mailbox.text(asked)
        page.goto(f"{live_server}/o/river/notifications")
        page.get_by_role("link", name="How was your session with Maria Santos? Leave a review").click()
        expect(page).to_have_url(f"{live_server}{form_path}")
        expect(page.get_by_role("heading", name="How was your session?")).to_be_visible()
        page.locator("label[for=stars-5]").click()
        expect(page.get_by_role("radio", name="5 stars")).to_be_checked()
        page.get_by_label("Your review", exact=True).fill("Maria found the flaw in my flicks in ten minutes.")
        expect(page.locator("#body-count")).to_contain_text("characters left")
        shoot(page, "review-form")
        page.get_by_role("button", name="Publish review").click()
        expect(page).to_have_url(f"{live_server}/o/river/bookings/{booking_id}")
        expect(page.get_by_text("Thank you: your review is published.")).to_be_visible()

        # Maria replies on her profile page.
        coach_page.goto(f"{live_server}/o/river/coaches/{world.maria.id}/profile")
        wait_for_htmx(coach_page)
        vera_review = coach_page.locator("article.review").filter(has_text="the flaw in my flicks")
        vera_review.get_by_text("Reply publicly").click()
        vera_review.get_by_label("Your public reply").fill("Thanks Vera! Keep the flick drills going.")
        vera_review.get_by_role("button", name="Publish reply").click()
        expect(coach_page.locator("article.review").filter(has_text="the flaw in my flicks")) \
            .to_contain_text("Reply from Maria Santos")
        job_runner.drain()

        # The directory follows: the same search shows the new count and average; the profile the review and reply.
        page.goto(search_url)
        maria = card(page, "Maria Santos")
        expect(maria).to_contain_text("4.5")
        expect(maria).to_contain_text("(2 reviews)")
        never_hill(page)
        page.get_by_role("link", name="Maria Santos", exact=True).click()
        expect(page).to_have_url(f"{live_server}/coaches/river/maria-santos")
        mine = page.locator("article.review").filter(has_text="the flaw in my flicks")
        expect(mine).to_contain_text("Vera V.")
        expect(mine).to_contain_text("Reply from Maria Santos")
        expect(mine).to_contain_text("Keep the flick drills going.")
        expect(page.locator("figure.rating-chart svg title")).to_contain_text("5 stars: 1")
        never_hill(page)
        shoot(page, "profile-reviewed")
        assert csp == [] and coach_csp == []
    finally:
        if coach_context is not None:
            coach_context.close()
        visitor.close()

    # Without JavaScript: the same search by the form's buttons, then the profile with its review and free times.
    plain = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 800})
    try:
        page = plain.new_page()
        page.goto(f"{live_server}/coaches")
        never_hill(page)
        page.get_by_label("Search coaches").fill(QUERY)
        page.get_by_role("button", name="Search", exact=True).click()
        expect(page).to_have_url(re.compile(r"q=valorrant"))
        expect(page.locator("p.corrected")).to_contain_text("Showing results for valorant aim coach")
        page.get_by_role("checkbox", name=re.compile(r"^English")).check()
        page.get_by_role("checkbox", name=re.compile(r"^4 stars and up")).check()
        page.get_by_role("button", name="Apply filters").click()
        expect(page).to_have_url(re.compile(r"lang=en.*rating=4|rating=4.*lang=en"))
        expect(card(page, "Maria Santos")).to_contain_text("(2 reviews)")
        never_hill(page)
        page.get_by_role("link", name="Maria Santos", exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Maria Santos")
        expect(page.locator("article.review").filter(has_text="the flaw in my flicks")) \
            .to_contain_text("Reply from Maria Santos")
        expect(page.locator(".public-slots a.slot").first).to_be_visible()
        page.locator(".public-slots a.slot").first.click()
        expect(page.get_by_role("heading", name="Book this time")).to_be_visible()
        expect(page.get_by_role("button", name="Sign up and continue")).to_be_visible()
    finally:
        plain.close()
