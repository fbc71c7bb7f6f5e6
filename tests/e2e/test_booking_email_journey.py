"""A booking's email in Chromium: a new athlete joins by invitation (in New York), books a time, and the email that
arrives carries an invitation that parses with ``icalendar`` at the booked time, in her zone; its cancel link,
opened in a browser with no session, cancels once and refuses the second time, and the coach's calendar gets the
cancellation.

Screenshots go to ``$COACH_SCREENSHOTS`` (``/tmp`` when unset) as ``booking-email-*.png``.
"""
from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar
from playwright.sync_api import expect

from coach import tenancy
from coach.orgs.models import ADMIN
from coach.orgs.service import members_with_role
from tests.booking_support import BookingWorld
from tests.e2e import both_widths, screenshots
from tests.e2e.test_journeys import wait_for_htmx, watch_csp
from tests.factories import PASSWORD
from tests.mailbox import Mailbox
from tests.test_orgs import invite

pytestmark = pytest.mark.e2e

snap = screenshots("booking-email")
MAIL_WAIT = 20


@pytest.fixture()
def world(ctx):
    return BookingWorld()


def invitation_of(message):
    parts = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1
    cal = Calendar.from_ical(parts[0].get_payload(decode=True))
    return parts[0], cal, cal.walk("VEVENT")[0]


def wait_for_subject(mailbox, address: str, start: str, timeout: float = MAIL_WAIT):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in mailbox.to(address):
            if " ".join(message["Subject"].split()).startswith(start):
                return message
        time.sleep(0.1)
    raise AssertionError(f"no email to {address} starting {start!r}: {[m['Subject'] for m in mailbox.to(address)]}")


def test_a_new_athlete_books_and_the_emails_cancel_link_works_once_without_a_session(browser, live_server, app,
                                                                                    mailbox, world):
    tenancy.activate(world.org.id)
    admin_email = members_with_role(world.org, ADMIN, limit=1)[0].user.email
    coach_email = world.coach.user.email
    link = invite(app, mailbox, world.org.slug, "nora@example.com", admin_email=admin_email)

    context = browser.new_context(timezone_id="America/New_York")
    try:
        page = context.new_page()
        csp = watch_csp(page)
        page.goto(f"{live_server}{link}")
        # The zone comes from her browser: she does not have to find it.
        expect(page.get_by_label("Time zone")).to_have_value("America/New_York")
        page.get_by_label("Your name").fill("Nora Newyork")
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Create account and join").click()
        expect(page).to_have_url(f"{live_server}/o/{world.org.slug}/")

        # The first free time of the week after the one the calendar opens on (the first week with free times,
        # so "‹ Previous week" may show before the swap: wait for the next week's heading instead).
        page.goto(f"{live_server}/o/{world.org.slug}/offerings/{world.offering.id}")
        wait_for_htmx(page)
        next_link = page.get_by_role("link", name="Next week ›")
        next_week = date.fromisoformat(re.search(r"week=(\d{4}-\d{2}-\d{2})", next_link.get_attribute("href"))[1])
        next_link.click()
        expect(page.locator("#week-title")).to_have_text(f"Week of {next_week.day} {next_week:%B %Y}")
        expect(page.get_by_role("link", name="‹ Previous week")).to_be_visible()
        slot = page.locator("a.slot").first
        booked_start = datetime.fromisoformat(slot.get_attribute("data-start").replace("Z", "+00:00"))
        assert booked_start.astimezone(ZoneInfo("America/New_York")).date() >= next_week
        slot.click()
        expect(page.get_by_role("heading", name="Book this time")).to_be_visible()
        page.get_by_role("button", name="Request booking").click()
        expect(page.locator("dl.facts .badge")).to_have_text("Requested")
        assert csp == []
    finally:
        context.close()

    # Her own email: in her zone, with an invitation at the booked time.
    email = wait_for_subject(mailbox, "nora@example.com", "You requested Technique session with Carla Coach")
    assert "(America/New_York)" in email["Subject"]
    part, cal, event = invitation_of(email)
    assert part.get_param("method") == "REQUEST" and str(cal["METHOD"]) == "REQUEST"
    assert event.decoded("DTSTART") == booked_start and str(event["STATUS"]) == "TENTATIVE"
    assert str(event["ATTENDEE"]) == "mailto:nora@example.com"
    uid, sequence = str(event["UID"]), event["SEQUENCE"]
    links = dict(re.findall(r"^([A-Z][A-Za-z ]+): (https?://\S+)$", Mailbox.text(email).replace("\r\n", "\n"),
                            re.M))
    cancel_url = links["Cancel"]
    assert cancel_url.startswith(f"{live_server}/b/") and cancel_url.endswith("/cancel")

    # Opened from the mail app: a browser with no session.
    anonymous = browser.new_context()
    try:
        page = anonymous.new_page()
        csp = watch_csp(page)
        page.goto(cancel_url)
        expect(page.get_by_role("heading", name="Cancel this session?")).to_be_visible()
        both_widths(snap, page, "cancel")
        wait_for_htmx(page)
        page.get_by_role("button", name="Cancel the session").click()
        expect(page.get_by_text("Cancelled. The coach is told.")).to_be_visible()
        both_widths(snap, page, "cancelled")

        page.goto(cancel_url)
        expect(page.get_by_text("This link was already used")).to_be_visible()
        both_widths(snap, page, "used")
        assert csp == []
    finally:
        anonymous.close()

    # The cancellation removes the appointment from both calendars: same UID, a higher SEQUENCE.
    for address, start in (("nora@example.com", "You cancelled Technique session"),
                           (coach_email, "Nora Newyork cancelled Technique session")):
        message = wait_for_subject(mailbox, address, start)
        part, cal, event = invitation_of(message)
        assert part.get_param("method") == "CANCEL" and str(cal["METHOD"]) == "CANCEL"
        assert str(event["UID"]) == uid and event["SEQUENCE"] > sequence
