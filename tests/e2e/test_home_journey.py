"""In Chromium, on the demo: each role signs in and lands on their home, whose blocks fill in (screenshots at
390 and 1280 px, light and dark: ``$COACH_SCREENSHOTS``, ``/tmp`` when unset, ``home-<role>-<width>-<scheme>.png``);
and the coach's home, left open, shows a new booking request in its Requests block without a reload."""
from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from coach import clock, tenancy
from coach.accounts.service import find_user_by_email
from coach.booking import service as booking
from coach.chat.hub import hub_for
from coach.extensions import db
from coach.orgs.service import membership_for, org_by_slug
from tests.e2e import screenshots
from tests.e2e.test_journeys import log_in

pytestmark = pytest.mark.e2e

snap = screenshots("home")
SLUG = "northside"
PASSWORD = "coach-demo-2026"
ROLES = {"athlete": "sam@northside.example", "coach": "maria.coach@northside.example",
         "admin": "admin@northside.example", "scheduler": "scheduler@northside.example"}
# A block that has something to show on the demo, per role: the home is only shot once it has filled in.
FILLED = {"athlete": ("#home-sessions .bookings", "#home-messages .home-list"),
          "coach": ("#home-requests .bookings", "#home-attention .home-list"),
          "admin": ("#home-schedule h3", "#home-requests .bookings"),
          "scheduler": ("#home-requests .bookings",)}


@pytest.fixture()
def demo(app, job_runner):
    result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    job_runner.drain(timeout=60)


def sign_in(page: Page, live_server: str, email: str) -> None:
    page.goto(f"{live_server}/login")
    log_in(page, email, PASSWORD)
    # A member of one organization lands on its home.
    expect(page).to_have_url(f"{live_server}/o/{SLUG}/")


def filled(page: Page, role: str) -> None:
    # Blocks below the fold load as they come into view.
    blocks = page.locator(".home-block")
    for n in range(blocks.count()):
        blocks.nth(n).scroll_into_view_if_needed()
        # Each block has answered: its placeholder link ("Open …") is gone.
        expect(blocks.nth(n).locator(".home-placeholder")).to_have_count(0)
    page.evaluate("window.scrollTo(0, 0)")
    for selector in FILLED[role]:
        expect(page.locator(selector).first).to_be_visible()


def test_each_role_lands_on_a_home_that_fills_in(browser, live_server, demo):
    """Every role in one test, each in a browser of its own: the demo is seeded once for the four (a seed, with
    its video's processing, cost as much as a role's landings)."""
    for role in ROLES:
        try:
            lands_on_a_home_that_fills_in(browser, live_server, role)
        except AssertionError as failed:
            raise AssertionError(f"the {role}'s home: {failed}") from failed


def lands_on_a_home_that_fills_in(browser, live_server: str, role: str) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        sign_in(page, live_server, ROLES[role])
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            for width, height in ((1280, 800), (390, 844)):
                page.set_viewport_size({"width": width, "height": height})
                page.reload()
                filled(page, role)
                assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), \
                    f"{role} home wider than {width} px"
                snap(page, f"{role}-{width}-{scheme}")
    finally:
        context.close()


def test_the_coachs_home_shows_a_new_request_without_a_reload(app, page, live_server, demo, job_runner):
    sent: list[str] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(str(payload))))
    sign_in(page, live_server, ROLES["coach"])
    requests = page.locator("#home-requests")
    expect(requests.locator(".bookings")).to_be_visible()
    before = requests.locator("li.booking").count()
    # The push that refreshes the block comes over the page's socket: wait until it is open (the page has said
    # what it shows).
    for _ in range(100):
        if any('"view"' in frame for frame in sent):
            break
        page.wait_for_timeout(100)
    assert any('"view"' in frame for frame in sent), "the page's socket did not open"

    with app.test_request_context():
        org = org_by_slug(SLUG)
        tenancy.activate(org.id)
        maria = membership_for(org, find_user_by_email(ROLES["coach"]))
        # The server answers the handshake before its handler registers the socket with the hub, and the badge's
        # push (with its "notified" signal) reaches only registered sockets: wait for the server's side too.
        for _ in range(200):
            if hub_for(app).connections_of(maria.id):
                break
            page.wait_for_timeout(100)
        assert hub_for(app).connections_of(maria.id), "the server never registered the page's socket"
        tom = membership_for(org, find_user_by_email("tom@northside.example"))
        offering = booking.offerings_of(maria)[0]
        slots = booking.available_slots(offering, clock.now(), clock.now() + timedelta(days=14))
        booking.request_booking(offering, tom, slots[-1].starts_at, "Backhand, please.", tom)
        db.session.commit()
    job_runner.drain(timeout=30)  # the notification, and the socket's push of the bell with its signal

    expect(requests.locator("li.booking")).to_have_count(min(before + 1, 3), timeout=15000)
    expect(requests).to_contain_text("Tom Okafor")
