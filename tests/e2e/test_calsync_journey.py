"""Calendar sync in Chromium: a coach with a dentist appointment on their phone's calendar (a real Radicale)
connects it on the calendars page, watches the card settle, picks the calendar, and the week calendar athletes
book from loses the slot of the appointment.

Screenshots go to ``$COACH_SCREENSHOTS`` (``/tmp`` when unset) as ``calsync-*.png`` at 390 and 1280 px.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

from tests.booking_support import BookingWorld, next_monday
from tests.e2e import screenshots
from tests.e2e.test_journeys import log_in, wait_for_htmx, watch_csp
from tests.factories import PASSWORD

pytestmark = pytest.mark.e2e

snap = screenshots("calsync")
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture()
def world(ctx):
    return BookingWorld()


def connect_on_calendars_page(page: Page, acct) -> None:
    """From the schedule, open the calendars page and connect ``acct`` (a Radicale account) through its form."""
    page.get_by_role("link", name="Calendars").click()
    expect(page.get_by_role("heading", name="My calendars")).to_be_visible()
    wait_for_htmx(page)
    page.get_by_label("Server address").fill(acct.server_url)
    page.get_by_label("User name").fill(acct.username)
    page.get_by_label("App password").fill(acct.password)
    page.get_by_role("button", name="Connect").click()


def berlin(day, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=BERLIN).astimezone(timezone.utc)


def test_coach_connects_radicale_picks_a_calendar_and_the_slot_of_the_appointment_goes(page: Page, live_server,
                                                                                       world, radicale):
    slug, coach_email = world.org.slug, world.coach.user.email
    offering_id = world.offering.id
    csp = watch_csp(page)
    acct = radicale.account("Personal")
    week = next_monday() + timedelta(days=7)
    dentist_day = week + timedelta(days=2)
    start, end = berlin(dentist_day, 10), berlin(dentist_day, 11)
    acct.put("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//phone//EN\r\nBEGIN:VEVENT\r\n"
             f"UID:{uuid.uuid4()}\r\nDTSTAMP:20261201T000000Z\r\nSUMMARY:Dentist\r\n"
             f"DTSTART:{start:%Y%m%dT%H%M%SZ}\r\nDTEND:{end:%Y%m%dT%H%M%SZ}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    week_url = f"{live_server}/o/{slug}/offerings/{offering_id}?week={week.isoformat()}"
    # The coach sees the week as a preview (no booking links): the day's column and its times on the coach's clock.
    day_column = page.locator(".day", has=page.get_by_role("heading", name=f"{dentist_day:%a} {dentist_day.day} "
                                                                          f"{dentist_day:%b}"))

    page.goto(f"{live_server}/login?next=/o/{slug}/schedule")
    log_in(page, coach_email, PASSWORD)
    expect(page).to_have_url(f"{live_server}/o/{slug}/schedule")
    page.goto(week_url)
    expect(day_column.locator(".slot", has_text="10:00")).to_have_count(1)  # free before the sync

    # From the schedule to the calendars page; connect the account.
    page.goto(f"{live_server}/o/{slug}/schedule")
    connect_on_calendars_page(page, acct)
    # The card polls until the job has listed the calendars.
    expect(page.get_by_label("Personal blocks my time")).to_be_visible(timeout=20000)
    expect(page.get_by_text("Last synced")).to_be_visible()
    page.get_by_label("Personal blocks my time").check()
    page.get_by_role("button", name="Save calendars").click()
    expect(page.get_by_text("Syncing…")).to_be_visible()
    expect(page.get_by_text("Syncing…")).to_have_count(0, timeout=20000)
    expect(page.get_by_label("Personal blocks my time")).to_be_checked()
    assert acct.password not in page.content()
    page.set_viewport_size({"width": 1280, "height": 900})
    snap(page, "page-1280")
    page.set_viewport_size({"width": 390, "height": 844})
    snap(page, "page-390")

    # The week calendar no longer offers the appointment's hour; the hours around it stay.
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(week_url)
    expect(day_column.locator(".slot", has_text="10:00")).to_have_count(0)
    expect(day_column.locator(".slot", has_text="09:00")).to_have_count(1)
    expect(day_column.locator(".slot", has_text="11:00")).to_have_count(1)
    snap(page, "week")
    assert not csp, csp
