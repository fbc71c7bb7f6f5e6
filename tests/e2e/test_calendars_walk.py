"""Issue 19 §1–3 walked as its users do, in Chromium at 390 and 1280 px, light and dark, and without JavaScript:
a coach on a 12-hour clock connects a real Radicale calendar (a wrong password first), chooses it, syncs and
presses Sync now twice; the schedule on that clock; an athlete's week with the zone switcher and the clock toggle
(the zones' list stays outside the week that htmx swaps); a booking email rendered and its invitation read with
``icalendar``; the no-login view, cancel, reschedule, used and expired pages; sign-up preselecting the zone.

Screenshots go to ``$COACH_SCREENSHOTS`` (``/tmp`` when unset) as ``D-walk-*.png``.
"""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from icalendar import Calendar
from playwright.sync_api import Page, expect
from sqlalchemy import select

from coach import clock, tenancy
from coach.booking import manage_links, service
from coach.booking.models import BookingLink
from coach.extensions import db
from coach.timezones import canonical
from tests.booking_support import BookingWorld, next_monday
from tests.e2e import screenshots
from tests.e2e.test_calsync_journey import connect_on_calendars_page
from tests.e2e.test_journeys import log_in, wait_for_htmx, watch_csp
from tests.factories import PASSWORD
from tests.mailbox import Mailbox

pytestmark = pytest.mark.e2e

snap = screenshots("D-walk")


@pytest.fixture()
def world(ctx):
    return BookingWorld()


def four_ways(page: Page, name: str) -> None:
    """Screenshots at 1280 and 390 px, light and dark; back to 1280 px and light."""
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for width, height in ((1280, 900), (390, 844)):
            page.set_viewport_size({"width": width, "height": height})
            page.wait_for_timeout(150)  # transitions of the scheme switch settle
            snap(page, f"{name}-{scheme}-{width}")
    page.emulate_media(color_scheme="light")
    page.set_viewport_size({"width": 1280, "height": 900})


def no_wider_than_the_screen(page: Page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.set_viewport_size({"width": 1280, "height": 900})


def twelve_hour_clock(world, member) -> None:
    tenancy.activate(world.org.id)
    member.user.hour_cycle = 12
    db.session.commit()


def test_a_coach_connects_a_calendar_reads_a_wrong_password_and_syncs(page: Page, live_server, world, radicale):
    csp = watch_csp(page)
    twelve_hour_clock(world, world.coach)
    slug = world.org.slug
    acct = radicale.account("Personal")
    page.goto(f"{live_server}/login?next=/o/{slug}/schedule")
    log_in(page, world.coach.user.email, PASSWORD)
    expect(page.get_by_role("heading", name="My schedule")).to_be_visible()
    expect(page.locator("#hours .interval span").first).to_have_text("9:00 am–5:00 pm")
    no_wider_than_the_screen(page)
    four_ways(page, "schedule-12h")

    # A wrong app password: the card says so plainly, with when, on the coach's clock.
    connect_on_calendars_page(page, type("Wrong", (), {"server_url": acct.server_url, "username": acct.username,
                                                       "password": "not-the-app-password"}))
    expect(page.get_by_text("The server refused the username or app password.")).to_be_visible(timeout=20000)
    expect(page.get_by_text(re.compile(r"Failed just now \(\w{3} \d+ \w{3}, \d+:\d\d [ap]m CES?T\)"))).to_be_visible()
    expect(page.get_by_label("New app password")).to_be_visible()
    four_ways(page, "calendars-wrong-password")

    # The right one, typed into the card: it syncs, the calendar is chosen, Sync now works once then asks to wait.
    wait_for_htmx(page)
    page.get_by_label("New app password").fill(acct.password)
    page.get_by_role("button", name="Save and sync").click()
    expect(page.get_by_label("Personal blocks my time")).to_be_visible(timeout=20000)
    page.get_by_label("Personal blocks my time").check()
    page.get_by_label("Personal receives bookings").check()
    page.get_by_role("button", name="Save calendars").click()
    expect(page.get_by_text("Syncing…")).to_have_count(0, timeout=20000)
    expect(page.get_by_text("Last synced")).to_be_visible()
    wait_for_htmx(page)

    def sync_now() -> int:
        with page.expect_response(lambda r: r.url.endswith("/sync") and r.request.method == "POST") as answer:
            page.get_by_role("button", name="Sync now").click()
        return answer.value.status

    assert sync_now() == 200
    expect(page.get_by_text("Syncing…")).to_have_count(0, timeout=20000)
    assert sync_now() == 422  # htmx swaps the card with the wait (without JavaScript: 429)
    expect(page.get_by_text(re.compile(r"Sync now works again in \d+ s"))).to_be_visible()
    assert acct.password not in page.content()
    no_wider_than_the_screen(page)
    four_ways(page, "calendars-synced")
    assert csp == []


def test_the_calendars_page_works_without_javascript(browser, live_server, world, radicale):
    acct = radicale.account("Personal")
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{live_server}/login?next=/o/{world.org.slug}/calendars")
        log_in(page, world.coach.user.email, PASSWORD)
        page.get_by_label("Server address").fill(acct.server_url)
        page.get_by_label("User name").fill(acct.username)
        page.get_by_label("App password").fill(acct.password)
        page.get_by_role("button", name="Connect").click()
        expect(page.get_by_text("Connecting… the calendars appear in a moment.")).to_be_visible()
        for _ in range(40):  # no polling without JavaScript: the coach reloads
            if page.get_by_label("Personal blocks my time").count():
                break
            page.wait_for_timeout(500)
            page.reload()
        page.get_by_label("Personal blocks my time").check()
        page.get_by_role("button", name="Save calendars").click()
        expect(page.get_by_text("Calendars saved; syncing now.")).to_be_visible()
        expect(page.get_by_label("Personal blocks my time")).to_be_checked()
        page.get_by_role("button", name="Sync now").click()
        expect(page.get_by_text("Syncing…").first).to_be_visible()
        page.get_by_role("button", name="Sync now").click()
        expect(page.get_by_text(re.compile(r"Sync now works again in \d+ s"))).to_be_visible()
        snap(page, "calendars-nojs-1280")
    finally:
        context.close()


def test_an_athlete_switches_the_weeks_zone_and_clock_in_place(page: Page, live_server, world):
    csp = watch_csp(page)
    slug = world.org.slug
    week = next_monday() + timedelta(days=7)
    page.goto(f"{live_server}/login?next=/o/{slug}/offerings/{world.offering.id}?week={week.isoformat()}")
    log_in(page, world.athlete.user.email, PASSWORD)
    expect(page.get_by_text("your time zone.")).to_be_visible()
    wait_for_htmx(page)
    expect(page.locator("datalist#week-tz-zones")).to_have_count(1)

    page.get_by_label("Show times in").fill("tokyo")
    page.get_by_role("button", name="Show").click()
    expect(page.locator(".tz-note strong")).to_have_text("Asia/Tokyo")
    expect(page.get_by_text("your time zone is Europe/Berlin")).to_be_visible()
    # The shown zone is in the address (a link to share, the back button), by its name, not as typed.
    expect(page).to_have_url(re.compile(r"[?&]tz=Asia/Tokyo(&|$)"))
    page.get_by_role("button", name="12-hour clock (2:30 pm)").click()
    expect(page.get_by_role("button", name="24-hour clock (14:30)")).to_be_visible()
    expect(page.locator("a.slot").first).to_have_text(re.compile(r"^\d{1,2}:\d\d [ap]m"))
    expect(page.locator(".tz-note strong")).to_have_text("Asia/Tokyo")  # the toggle kept the zone shown
    # One list of zones on the page, outside the swapped week; the box still offers it.
    expect(page.locator("datalist#week-tz-zones")).to_have_count(1)
    expect(page.locator("#calendar datalist")).to_have_count(0)
    assert page.get_by_label("Show times in").get_attribute("list") == "week-tz-zones"
    no_wider_than_the_screen(page)
    four_ways(page, "week-tokyo-12h")
    assert csp == []


def test_the_week_switcher_and_clock_work_without_javascript(browser, live_server, world):
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{live_server}/login?next=/o/{world.org.slug}/offerings/{world.offering.id}")
        log_in(page, world.athlete.user.email, PASSWORD)
        page.get_by_label("Show times in").fill("new york")
        page.get_by_role("button", name="Show").click()
        expect(page.locator(".tz-note strong")).to_have_text("America/New York")
        assert "tz=America/New_York" in page.url
        page.get_by_role("button", name="12-hour clock (2:30 pm)").click()
        expect(page.get_by_role("button", name="24-hour clock (14:30)")).to_be_visible()
        expect(page.locator("a.slot").first).to_have_text(re.compile(r"^\d{1,2}:\d\d [ap]m"))
        snap(page, "week-nojs-1280")
    finally:
        context.close()


def booked(world, days_ahead: int = 3):
    tenancy.activate(world.org.id)
    booking = service.request_booking(world.offering, world.athlete, world.first_slot(days_ahead).starts_at, "",
                                      world.athlete)
    db.session.commit()
    return booking


def test_the_booking_email_reads_well_and_its_invitation_parses(page: Page, live_server, world, mailbox):
    booking = booked(world)
    email = mailbox.wait_for(world.athlete.user.email, timeout=20)
    assert email["Subject"].startswith("You requested Technique session with Carla Coach")
    (part,) = [p for p in email.walk() if p.get_content_type() == "text/calendar"]
    cal = Calendar.from_ical(part.get_payload(decode=True))
    event = cal.walk("VEVENT")[0]
    assert part.get_param("method") == "REQUEST" and str(cal["METHOD"]) == "REQUEST"
    assert str(event["UID"]) == booking.uid and event.decoded("DTSTART") == booking.starts_at
    (html_part,) = [p for p in email.walk() if p.get_content_type() == "text/html"]
    body = html_part.get_payload(decode=True).decode()
    for label in (">Google Calendar</a>", ">Outlook</a>", ">Cancel</a>", ">Reschedule</a>", ">View the booking</a>"):
        assert label in body, label
    assert "Europe/Berlin" in Mailbox.text(email)
    page.set_content(body)
    four_ways(page, "email-requested")


def test_the_no_login_pages_view_cancel_reschedule_used_and_expired(browser, live_server, world):
    booking = booked(world)
    tenancy.activate(world.org.id)
    tokens = {action: manage_links.issue(booking, action) for action in ("view", "cancel", "reschedule")}
    stale = manage_links.issue(booking, "cancel", now=clock.now() + timedelta(seconds=5))
    db.session.flush()
    last = db.session.scalars(select(BookingLink).where(BookingLink.tenant_id == world.org.id)
                              .order_by(BookingLink.created_at.desc())).first()
    last.expires_at = clock.now() - timedelta(minutes=1)  # the stale link: its time is up
    db.session.commit()

    context = browser.new_context()
    try:
        page = context.new_page()
        csp = watch_csp(page)
        page.goto(f"{live_server}/b/{tokens['view']}")
        expect(page.get_by_role("heading", name="Technique session")).to_be_visible()
        four_ways(page, "link-view")
        page.goto(f"{live_server}/b/{tokens['reschedule']}/reschedule")
        expect(page.locator("a.slot").first).to_be_visible()
        no_wider_than_the_screen(page)
        four_ways(page, "link-reschedule")
        page.goto(f"{live_server}/b/{stale}/cancel")
        expect(page.get_by_text(re.compile("expired", re.I)).first).to_be_visible()
        four_ways(page, "link-expired")
        assert csp == []
    finally:
        context.close()

    # Without JavaScript: the cancel link asks, cancels once, and refuses the second time.
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{live_server}/b/{tokens['cancel']}/cancel")
        expect(page.get_by_role("heading", name="Cancel this session?")).to_be_visible()
        page.get_by_role("button", name="Cancel the session").click()
        expect(page.get_by_text("Cancelled. The coach is told.")).to_be_visible()
        page.goto(f"{live_server}/b/{tokens['cancel']}/cancel")
        expect(page.get_by_text("This link was already used")).to_be_visible()
        four_ways(page, "link-used-nojs")
    finally:
        context.close()


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "Etc/UTC"])
def test_sign_up_preselects_the_browsers_zone(browser, live_server, zone):
    context = browser.new_context(timezone_id=zone, locale="en-GB")
    try:
        page = context.new_page()
        page.goto(f"{live_server}/signup")
        reported = page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")
        box = page.get_by_label("Time zone")
        # What the browser says, under its current name (Chromium says Asia/Calcutta for Kolkata; UTC may be Etc/UTC).
        expected = "UTC" if reported in ("UTC", "Etc/UTC", "Etc/GMT") else canonical(reported)
        assert expected == zone.removeprefix("Etc/")
        expect(box).to_have_value(expected)
        expect(page.get_by_text("Your browser's time zone.")).to_be_visible()
        if zone == "Asia/Kolkata":
            four_ways(page, "signup-kolkata")
    finally:
        context.close()

    # Without JavaScript: the language's region (en-GB) suggests London, and the hint says so.
    context = browser.new_context(java_script_enabled=False, locale="en-GB")
    try:
        page = context.new_page()
        page.goto(f"{live_server}/signup")
        expect(page.get_by_label("Time zone")).to_have_value("Europe/London")
        expect(page.get_by_text("Suggested from your browser's language.")).to_be_visible()
    finally:
        context.close()
