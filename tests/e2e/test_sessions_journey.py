"""Sessions and devices in Chromium: a member signed in on two devices sees both on the sessions page, signs
the other one out, and that device's open chat socket closes; its next page asks it to log in.

Two browser contexts of one member (a laptop and a phone, told apart by their user agents). Screenshots go to
``$COACH_SCREENSHOTS`` (``/tmp`` when unset) as ``sessions-*.png``.
"""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from tests.e2e import screenshots
from tests.e2e.test_booking_journey import open_org
from tests.e2e.test_chat_journey import LIVE, SLUG, Club, pump
from tests.e2e.test_journeys import watch_csp
from tests.factories import PASSWORD

pytestmark = pytest.mark.e2e

LAPTOP = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/131.0.0.0 Safari/537.36")
PHONE = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/131.0.0.0 Mobile Safari/537.36")

snap = screenshots("sessions")


@pytest.fixture()
def club(ctx):
    return Club()


def test_a_member_signs_out_their_other_device_and_its_chat_socket_closes(browser, live_server, club):
    laptop_context = browser.new_context(user_agent=LAPTOP, viewport={"width": 1280, "height": 800})
    phone_context = browser.new_context(user_agent=PHONE, viewport={"width": 390, "height": 844})
    try:
        laptop, phone = laptop_context.new_page(), phone_context.new_page()
        csp = watch_csp(laptop) + watch_csp(phone)
        closed: list[str] = []
        opened: list[str] = []

        def on_socket(ws):
            opened.append(ws.url)
            ws.on("close", lambda _ws: closed.append(ws.url))

        phone.on("websocket", on_socket)
        open_org(laptop, live_server, SLUG, "sam@example.com")
        open_org(phone, live_server, SLUG, "sam@example.com")
        phone.goto(live_server + club.path())
        pump(phone, lambda: len(opened) >= 1, "the phone's chat socket to open")
        assert closed == []

        # The laptop finds the security page from the header, then the sessions page.
        laptop.locator("details.menu-account > summary").click()
        laptop.get_by_role("link", name="Security", exact=True).click()
        expect(laptop.get_by_role("heading", name="Security", exact=True)).to_be_visible()
        expect(laptop.get_by_text("2 active sessions")).to_be_visible()
        snap(laptop, "security-1280")
        laptop.get_by_role("link", name="See and sign out sessions").click()
        rows = laptop.locator("#session-list li")
        expect(rows).to_have_count(2)
        this_device = rows.filter(has_text="This device")
        expect(this_device).to_contain_text("Chrome on macOS")
        other = rows.filter(has_text="Chrome on Android")
        expect(other).to_contain_text("Password")
        snap(laptop, "list-1280")

        other.get_by_role("button", name="Sign out").click()
        expect(rows).to_have_count(1, timeout=LIVE)
        expect(laptop.get_by_text("You are signed in on this device only.")).to_be_visible()
        # The phone's open chat socket is closed by the server, at once.
        pump(phone, lambda: len(closed) >= 1, "the phone's chat socket to close")

        # The phone's next page asks it to log in.
        phone.goto(f"{live_server}/o/{SLUG}/")
        expect(phone).to_have_url(re.compile(r"/login\?next="))
        expect(phone.get_by_role("heading", name="Log in")).to_be_visible()
        # The laptop goes on; its security log says what happened.
        laptop.goto(f"{live_server}/account/security/log")
        expect(laptop.get_by_text("Signed out a session")).to_be_visible()
        snap(laptop, "log-1280")
        phone_context.close()
        small = browser.new_context(user_agent=PHONE, viewport={"width": 390, "height": 844}).new_page()
        open_org(small, live_server, SLUG, "sam@example.com")
        small.goto(f"{live_server}/account/sessions")
        snap(small, "list-390")
        small.goto(f"{live_server}/account/security")
        snap(small, "security-390")
        small.context.close()
        assert csp == []
    finally:
        laptop_context.close()
        phone_context.close()


def test_a_member_confirms_it_is_them_and_moves_to_a_new_email_address(browser, live_server, club, mailbox, app):
    from sqlalchemy import update

    from coach.accounts.models import UserSession
    from coach.clock import now
    from coach.extensions import db
    from tests.e2e.test_journeys import MAIL_WAIT
    from tests.mailbox import Mailbox

    context = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        csp = watch_csp(page)
        open_org(page, live_server, SLUG, "sam@example.com")
        # Signed in a while ago: the change asks for the password first.
        db.session.execute(update(UserSession).values(reauthenticated_at=now() - timedelta(minutes=30)))
        db.session.commit()
        page.goto(f"{live_server}/account/security")
        page.get_by_label("New email address").fill("sam.lee@example.org")
        page.get_by_role("button", name="Change email").click()
        expect(page.get_by_role("heading", name="Confirm it is you")).to_be_visible()
        snap(page, "confirm-390")
        page.get_by_label("Password", exact=True).fill("not-my-password")
        page.get_by_role("button", name="Confirm").click()
        expect(page.get_by_text("That is not correct. Try again.")).to_be_visible()
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Confirm").click()
        expect(page).to_have_url(f"{live_server}/account/security")
        page.get_by_label("New email address").fill("sam.lee@example.org")
        page.get_by_role("button", name="Change email").click()
        expect(page.get_by_text("We sent a link to sam.lee@example.org")).to_be_visible()
        snap(page, "email-pending-390")

        link = Mailbox.link(mailbox.wait_for("sam.lee@example.org", timeout=MAIL_WAIT))
        page.goto(link)
        snap(page, "email-confirm-390")
        page.get_by_role("button", name="Confirm sam.lee@example.org").click()
        expect(page.get_by_text("Your email address is now sam.lee@example.org.")).to_be_visible()
        expect(page.get_by_text("You sign in with sam.lee@example.org.")).to_be_visible()
        # The link worked once.
        page.goto(link)
        expect(page.get_by_text("This link was already used or has expired.")).to_be_visible()
        snap(page, "email-gone-390")
        assert csp == []
    finally:
        context.close()
