"""The week calendar opens where there is free time, and a time taken meanwhile says so before the form
(issue 21), in Chromium: the coach is away this week and next, so the athlete's calendar opens on the week
after, saying why; another athlete takes the first time while she looks; her click on it shows "This time was
just taken" with the nearest free times, and one of those books.

Screenshots: ``$COACH_SCREENSHOTS/H7-week-*.png`` and ``H7-taken-*.png`` at 1280 and 390 px.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from coach import tenancy
from coach.booking import service
from coach.extensions import db
from coach.orgs.models import ATHLETE
from tests.booking_support import BookingWorld
from tests.e2e import both_widths, screenshots
from tests.e2e.test_booking_journey import open_org
from tests.e2e.test_journeys import watch_csp
from tests.factories import add_member, make_user

pytestmark = pytest.mark.e2e

BERLIN = ZoneInfo("Europe/Berlin")
snap = screenshots("H7")


@pytest.fixture()
def world(ctx):
    world = BookingWorld()
    today = datetime.now(timezone.utc).astimezone(BERLIN).date()
    monday = datetime.combine(today - timedelta(days=today.weekday()), datetime.min.time(), tzinfo=BERLIN)
    tenancy.activate(world.org.id)
    service.add_time_off(world.coach, monday, monday + timedelta(days=14), "Tournament", world.coach)
    db.session.commit()
    world.first_free_monday = (monday + timedelta(days=14)).date()
    return world


def test_calendar_opens_on_the_first_free_week_and_a_time_taken_meanwhile_says_so(page, live_server, world):
    slug = world.org.slug
    csp = watch_csp(page)
    open_org(page, live_server, slug, world.athlete.user.email)

    # The calendar skips the two weeks the coach is away, and says so.
    page.goto(f"{live_server}/o/{slug}/offerings/{world.offering.id}")
    first = world.first_free_monday
    expect(page.get_by_role("status").filter(has_text="No free times this week")).to_have_text(
        f"No free times this week — showing the week of {first.strftime('%-d %b')}, the first with free times.")
    expect(page.get_by_role("heading", name=f"Week of {first.strftime('%-d %B %Y')}")).to_be_visible()
    slot = page.locator("a.slot").first
    expect(slot).to_be_visible()
    both_widths(snap, page, "week")
    page.set_viewport_size({"width": 1280, "height": 900})

    # Bea takes the first time while the athlete looks at the calendar.
    start = datetime.fromisoformat(slot.get_attribute("data-start").replace("Z", "+00:00"))
    bea = add_member(world.org, make_user("bea@example.com", "Bea Athlete"), ATHLETE)
    tenancy.activate(world.org.id)
    service.request_booking(world.offering, bea, start, "", bea)
    db.session.commit()

    # Her click on it says so at once, with the nearest free times instead of a form.
    slot.click()
    expect(page.get_by_role("heading", name="Choose another time", level=1)).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("This time was just taken:")
    expect(page.get_by_role("button", name="Request booking")).to_have_count(0)
    expect(page.get_by_label("Note for the coach")).to_have_count(0)
    nearest = page.locator(".time-gone .alternatives a")
    expect(nearest).to_have_count(4)
    both_widths(snap, page, "taken")
    page.set_viewport_size({"width": 1280, "height": 900})

    # One of the nearest times is free: its page has the form, and it books.
    label = nearest.first.inner_text()
    nearest.first.click()
    expect(page.get_by_role("heading", name="Book this time")).to_be_visible()
    expect(page.locator("p.when")).to_contain_text(re.sub(r" \S+$", "", label.split(", ")[1]))
    page.get_by_role("button", name="Request booking").click()
    expect(page.get_by_text("Requested: you will see here when the coach answers.")).to_be_visible()
    assert csp == []
