"""The no-login links of booking emails in Chromium: a cancel link opened with no session asks first, cancels
once, and says "already used" the second time; a reschedule link moves the session by keyboard.

Screenshots go to ``$COACH_SCREENSHOTS`` (``/tmp`` when unset) as ``manage-*-1280.png`` / ``manage-*-390.png``.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from coach import tenancy
from coach.booking import manage_links, service
from coach.extensions import db
from tests.booking_support import BookingWorld
from tests.e2e import both_widths, screenshots
from tests.e2e.test_journeys import wait_for_htmx, watch_csp

pytestmark = pytest.mark.e2e

snap = screenshots("manage")


@pytest.fixture()
def world(ctx):
    return BookingWorld()


def booked_with_links(world, days_ahead: int = 3):
    """A requested booking of Arno's and its three links, as the email carries them."""
    tenancy.activate(world.org.id)
    booking = service.request_booking(world.offering, world.athlete, world.first_slot(days_ahead).starts_at, "",
                                      world.athlete)
    tokens = {action: manage_links.issue(booking, action) for action in ("view", "cancel", "reschedule")}
    db.session.commit()
    return booking, tokens


def test_a_cancel_link_opened_without_a_session_cancels_once(page: Page, live_server, world):
    csp = watch_csp(page)
    booking, tokens = booked_with_links(world)

    page.goto(f"{live_server}/b/{tokens['view']}")
    expect(page.get_by_role("heading", name="Technique session")).to_be_visible()
    expect(page.get_by_text("(Europe/Berlin time)")).to_be_visible()
    both_widths(snap, page, "view")

    page.goto(f"{live_server}/b/{tokens['cancel']}/cancel")
    expect(page.get_by_role("heading", name="Cancel this session?")).to_be_visible()
    expect(page.locator("dl.facts .badge")).to_have_text("Requested")
    both_widths(snap, page, "cancel")
    wait_for_htmx(page)
    page.get_by_role("button", name="Cancel the session").click()
    expect(page.get_by_text("Cancelled. The coach is told.")).to_be_visible()
    expect(page.locator("dl.facts .badge")).to_have_text("Cancelled")
    expect(page).to_have_url(re.compile(r"/b/[^/]+$"))
    both_widths(snap, page, "cancelled")

    page.goto(f"{live_server}/b/{tokens['cancel']}/cancel")
    expect(page.get_by_text("This link was already used")).to_be_visible()
    both_widths(snap, page, "used")
    assert csp == []


def test_a_reschedule_link_moves_the_session_from_the_keyboard(page: Page, live_server, world):
    csp = watch_csp(page)
    booking, tokens = booked_with_links(world)

    page.goto(f"{live_server}/b/{tokens['reschedule']}/reschedule")
    expect(page.get_by_role("heading", name="Move this session")).to_be_visible()
    both_widths(snap, page, "reschedule")
    wait_for_htmx(page)
    # Next week in place (htmx), then a time chosen and confirmed with the keyboard only.
    week = page.get_by_role("heading", name=re.compile("^Week of")).inner_text()
    page.get_by_role("link", name="Next week ›").click()
    expect(page.get_by_role("heading", name=re.compile("^Week of"))).not_to_have_text(week)
    slot = page.locator("a.slot").first
    label = slot.inner_text()
    slot.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=re.compile(f"^Move it to .*{label}"))).to_be_visible()
    both_widths(snap, page, "reschedule-confirm")
    page.get_by_role("button", name="Move my session").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_text("Moved")).to_be_visible()
    expect(page.locator("dl.facts")).to_contain_text(label)

    page.goto(f"{live_server}/b/{tokens['reschedule']}/reschedule")
    expect(page.get_by_text("This link was already used")).to_be_visible()
    # The view link of the old booking says where it went.
    page.goto(f"{live_server}/b/{tokens['view']}")
    expect(page.get_by_text("This booking was moved to")).to_be_visible()
    assert csp == []
