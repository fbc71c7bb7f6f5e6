"""Time zones in Chromium: a new athlete in New York (a browser whose language says Germany) opens the invitation,
finds New York already in the zone box, signs up, and the week calendar shows the coach's Berlin hours in New
York time; the 12-hour toggle and the zone switcher change the week in place.

Screenshots of the sign-up, the invitation and the week at 1280 and 390 px go to ``$COACH_SCREENSHOTS``
(``/tmp`` when unset) as ``timezone-*.png``.
"""
from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from coach import tenancy
from coach.orgs.models import ADMIN
from coach.orgs.service import members_with_role
from tests.booking_support import BookingWorld, next_monday
from tests.e2e import both_widths, screenshots
from tests.e2e.test_journeys import wait_for_htmx, watch_csp
from tests.factories import PASSWORD
from tests.test_orgs import invite

pytestmark = pytest.mark.e2e

snap = screenshots("timezone")
NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")


def labels_match(page, zone: ZoneInfo, fmt) -> None:
    """Every slot's label is its UTC start on ``zone``'s clock, as ``fmt`` writes it."""
    slots = page.locator("a.slot")
    expect(slots.first).to_be_visible()
    for i in range(min(slots.count(), 10)):
        slot = slots.nth(i)
        start = datetime.fromisoformat(slot.get_attribute("data-start").replace("Z", "+00:00")).astimezone(zone)
        assert slot.inner_text().split("\n")[0].strip() == fmt(start)


def twelve_hour(at: datetime) -> str:
    return f"{at.hour % 12 or 12}:{at.minute:02d} {'am' if at.hour < 12 else 'pm'}"


@pytest.fixture()
def world(ctx):
    return BookingWorld()


def test_the_browsers_zone_is_preselected_and_the_week_shows_new_york_time(browser, live_server, app, mailbox,
                                                                          world):
    tenancy.activate(world.org.id)
    admin_email = members_with_role(world.org, ADMIN, limit=1)[0].user.email
    link = invite(app, mailbox, world.org.slug, "nora@example.com", admin_email=admin_email)
    context = browser.new_context(timezone_id="America/New_York", locale="de-DE")
    try:
        page = context.new_page()
        csp = watch_csp(page)

        # Sign-up first, as a visitor sees it: the browser's zone in the box, said so under it.
        page.goto(f"{live_server}/signup")
        expect(page.get_by_label("Time zone")).to_have_value("America/New_York")
        expect(page.get_by_text("Your browser's time zone.")).to_be_visible()
        both_widths(snap, page, "signup")

        # The invitation: the server suggested Berlin (the language says de-DE); the browser knows better.
        page.goto(f"{live_server}{link}")
        zone_box = page.get_by_label("Time zone")
        expect(zone_box).to_have_value("America/New_York")
        assert zone_box.get_attribute("list") == "timezone-zones"
        both_widths(snap, page, "invitation")
        page.get_by_label("Your name").fill("Nora Newyork")
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Create account and join").click()
        expect(page).to_have_url(f"{live_server}/o/{world.org.slug}/")
        expect(page.get_by_text("Times in America/New York")).to_be_visible()  # the home names the zone its times are in

        # The coach's Berlin hours, on New York's clock.
        page.goto(f"{live_server}/o/{world.org.slug}/offerings/{world.offering.id}?week={next_monday()}")
        expect(page.locator(".tz-note")).to_contain_text(re.compile(
            r"Times in America/New York \(E[SD]T(/E[SD]T)?\), your time zone · the coach is in Europe/Berlin"))
        labels_match(page, NEW_YORK, lambda at: at.strftime("%H:%M"))
        both_widths(snap, page, "week")

        # The 12-hour clock, in place, remembered.
        wait_for_htmx(page)
        page.evaluate("window.__marker = 'week'")
        page.get_by_role("button", name="12-hour clock (2:30 pm)").click()
        expect(page.get_by_role("button", name="24-hour clock (14:30)")).to_be_visible()
        assert page.evaluate("window.__marker") == "week"
        labels_match(page, NEW_YORK, twelve_hour)
        page.reload()
        labels_match(page, NEW_YORK, twelve_hour)

        # Another zone for a look: London, typed as a city.
        page.get_by_label("Show times in").fill("london")
        page.get_by_role("button", name="Show", exact=True).click()
        expect(page.locator(".tz-note")).to_contain_text("Times in Europe/London")
        expect(page).to_have_url(re.compile(r"tz=Europe/London"))  # the zone by its name, not as typed
        labels_match(page, LONDON, twelve_hour)
        both_widths(snap, page, "week-london")

        # The profile has the same picker and the clock chosen on the week.
        page.goto(f"{live_server}/profile")
        expect(page.get_by_label("Time zone")).to_have_value("America/New_York")
        expect(page.get_by_label("12-hour (2:30 pm)")).to_be_checked()
        both_widths(snap, page, "profile")
        assert csp == []
    finally:
        context.close()
