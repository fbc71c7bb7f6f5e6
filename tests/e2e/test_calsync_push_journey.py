"""Bookings in the coach's own calendar, in Chromium: the coach connects their phone's calendar (a real Radicale)
and chooses it to receive bookings; the session already booked appears there, the card says so, and a session the
coach cancels in Coach leaves the phone's calendar.

Screenshots go to ``$COACH_SCREENSHOTS`` (``/tmp`` when unset) as ``calsync-push-*.png`` at 390 and 1280 px.
"""
from __future__ import annotations

import icalendar
import pytest
from playwright.sync_api import Page, expect

from coach import tenancy
from coach.booking import service
from coach.extensions import db
from tests.booking_support import BookingWorld
from tests.e2e import screenshots
from tests.e2e.test_calsync_journey import connect_on_calendars_page
from tests.e2e.test_journeys import log_in, wait_for_htmx, watch_csp
from tests.factories import PASSWORD

pytestmark = pytest.mark.e2e

snap = screenshots("calsync-push")


@pytest.fixture()
def world(ctx):
    return BookingWorld(auto_confirm=True)


def uids_on(acct) -> list[str]:
    return [str(e["uid"]) for r in acct.events() for e in icalendar.Calendar.from_ical(r.data).walk("VEVENT")]


def test_coach_chooses_a_calendar_and_the_booked_session_appears_there_then_leaves_on_cancel(page: Page, live_server,
                                                                                              world, radicale):
    slug, coach_email = world.org.slug, world.coach.user.email
    csp = watch_csp(page)
    acct = radicale.account("Phone")
    tenancy.activate(world.org.id)
    booking = service.request_booking(world.offering, world.athlete, world.first_slot().starts_at, "", world.athlete)
    db.session.commit()
    booking_id, uid = booking.id, booking.uid

    page.goto(f"{live_server}/login?next=/o/{slug}/schedule")
    log_in(page, coach_email, PASSWORD)
    connect_on_calendars_page(page, acct)
    expect(page.get_by_label("Phone receives bookings")).to_be_visible(timeout=20000)
    page.get_by_label("Phone receives bookings").check()
    page.get_by_role("button", name="Save calendars").click()
    expect(page.get_by_text("Syncing…")).to_have_count(0, timeout=20000)

    # The backfill runs after the save: the card says so once the event is written.
    for _ in range(40):
        page.reload()
        if page.get_by_text("1 booking written to your calendar.").count():
            break
        page.wait_for_timeout(500)
    expect(page.get_by_text("1 booking written to your calendar.")).to_be_visible()
    assert uids_on(acct) == [uid]
    page.set_viewport_size({"width": 1280, "height": 900})
    snap(page, "page-1280")
    page.set_viewport_size({"width": 390, "height": 844})
    snap(page, "page-390")

    # The coach cancels the session in Coach; it leaves the phone's calendar.
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server}/o/{slug}/bookings/{booking_id}")
    wait_for_htmx(page)
    page.once("dialog", lambda dialog: dialog.accept())  # "Cancel this session?"
    page.get_by_role("button", name="Cancel", exact=True).click()
    expect(page.get_by_text("Cancelled").first).to_be_visible()
    for _ in range(40):
        if not uids_on(acct):
            break
        page.wait_for_timeout(500)
    assert uids_on(acct) == []
    assert not csp, csp
