"""Booking's rough edges (issue 21): the week calendar opens on the first week with free time, and the book
page of a time that can no longer be booked says so before the athlete fills the form in.

Pages are requested without JavaScript here; tests/e2e/test_booking_week_journey.py clicks the same in Chromium.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from coach import tenancy
from coach.booking import service
from coach.extensions import db
from tests.booking_support import BookingWorld
from tests.querycount import statements_for
from tests.test_booking_views import (another_athlete, athlete, berlin, book, bookings, csrf_from, iso, link,  # noqa: F401
                                      logged_in, slots_on, text, token, world)

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")


def this_monday() -> datetime:
    """Monday 00:00 of this week in Berlin (the athlete's zone, and the coach's, in these worlds)."""
    today = datetime.now(UTC).astimezone(BERLIN).date()
    monday = today - timedelta(days=today.weekday())
    return datetime(monday.year, monday.month, monday.day, tzinfo=BERLIN)


def block(world, start: datetime, end: datetime) -> None:
    """Time off for the coach: no slots in ``[start, end)``."""
    tenancy.activate(world.org.id)
    service.add_time_off(world.coach, start, end, "Away", world.coach)
    db.session.commit()


# --- the week calendar opens on the first week with free time ----------------------------------------

def test_calendar_without_a_week_opens_on_the_first_week_with_free_times_and_says_why(app, world, athlete):
    monday = this_monday()
    block(world, monday - timedelta(days=1), monday + timedelta(days=14))  # this week and next: away
    base = f"/o/{world.org.slug}/offerings/{world.offering.id}"

    response = athlete.get(base)

    page = text(response)
    first_free = (monday + timedelta(days=14)).date()
    assert "‹ Previous week" in page
    assert response.status_code == 200
    assert (f"No free times this week — showing the week of {first_free.strftime('%-d %b')}, "
            "the first with free times.") in page
    assert f"Week of {first_free.strftime('%-d %B %Y')}" in page
    offered = slots_on(page)
    assert offered and all(start >= first_free.isoformat() for _, start, _ in offered)
    # The empty weeks are one click back, each saying so.
    back = link(page, "‹ Previous week")
    assert back == f"{base}?week={first_free - timedelta(days=7)}"
    assert "No free times this week. Try the next week." in text(athlete.get(back))


def test_an_explicit_week_stays_that_week_even_without_free_times(world, athlete):
    monday = this_monday()
    block(world, monday - timedelta(days=1), monday + timedelta(days=14))
    base = f"/o/{world.org.slug}/offerings/{world.offering.id}"

    page = text(athlete.get(f"{base}?week={monday.date()}"))

    assert f"Week of {monday.date().strftime('%-d %B %Y')}" in page
    assert "No free times this week. Try the next week." in page
    assert "the first with free times" not in page and not slots_on(page)
    # The same for htmx's previous/next links, which always name their week.
    fragment = text(athlete.get(f"{base}?week={monday.date()}", headers={"HX-Request": "true"}))
    assert "the first with free times" not in fragment


def test_no_free_time_within_the_horizon_keeps_this_week(ctx, app):
    world = BookingWorld(horizon_days=10)
    monday = this_monday()
    block(world, monday - timedelta(days=1), monday + timedelta(days=30))
    athlete = logged_in(app, world.athlete.user.email)

    page = text(athlete.get(f"/o/{world.org.slug}/offerings/{world.offering.id}"))

    assert f"Week of {monday.date().strftime('%-d %B %Y')}" in page
    assert "No free times this week. Try the next week." in page
    assert "the first with free times" not in page


def test_finding_the_first_free_week_costs_two_statements_not_a_render_per_week(app, world, athlete):
    monday = this_monday()
    base = f"/o/{world.org.slug}/offerings/{world.offering.id}"
    block(world, monday - timedelta(days=1), monday + timedelta(days=7))
    one_week_away = statements_for(app, athlete, base)
    block(world, monday + timedelta(days=7), monday + timedelta(days=42))

    six_weeks_away = statements_for(app, athlete, base)

    assert "the first with free times" in text(athlete.get(base))
    assert six_weeks_away == one_week_away  # one statement searches the whole horizon
    assert six_weeks_away <= statements_for(app, athlete, f"{base}?week={monday.date()}") + 2


# --- the book page of a time that can no longer be booked ----------------------------------------------

def test_book_page_of_a_time_taken_meanwhile_says_so_with_the_nearest_free_times_and_no_form(app, world):
    slot = world.first_slot()
    bea = another_athlete(world)
    book(world, slot.starts_at)  # Arno took it while Bea was looking at the calendar
    browser = logged_in(app, bea.user.email)
    path = f"/o/{world.org.slug}/offerings/{world.offering.id}/book?start={iso(slot.starts_at)}"

    response = browser.get(path)

    page = text(response)
    assert response.status_code == 200  # the page answers; the POST of this time is the 409
    assert "<html" in page
    local = slot.starts_at.astimezone(BERLIN)
    assert f"This time was just taken: {local.strftime('%a %-d %b')}, {local.strftime('%H:%M %Z')}" in page
    assert "<h1>Choose another time</h1>" in page
    assert "Request booking" not in page and 'name="note"' not in page  # nothing to fill in
    alternatives = re.findall(r'<li><a class="button" href="([^"]+)">', page)
    assert len(alternatives) == 4
    assert all(f"start={iso(slot.starts_at)}" not in href.replace("%3A", ":") for href in alternatives)
    assert "The nearest free times" in page
    # An alternative is a live book page.
    other = browser.get(alternatives[0].replace("&amp;", "&"))
    assert other.status_code == 200 and "Request booking" in text(other)
    # The form's POST still refuses the taken time cleanly.
    refused = browser.post(path.split("?")[0], data={"csrf_token": token(browser, world.org.slug),
                                                     "start": iso(slot.starts_at), "athlete": str(bea.id)})
    assert refused.status_code == 409 and "This time was just taken. Choose another." in text(refused)
    assert "The nearest free times" in text(refused)


def test_book_page_of_a_past_or_closed_time_says_which_before_the_form(world, athlete, owner_db):
    base = f"/o/{world.org.slug}/offerings/{world.offering.id}/book?start="

    past = athlete.get(base + iso(berlin(-1, 10)))
    closed = athlete.get(base + iso(berlin(2, 3)))  # 03:00 in Berlin: outside 09–17

    assert past.status_code == 200 and "This time has passed:" in text(past)
    assert closed.status_code == 200
    assert "This time is not open for booking:" in text(closed) and "outside Carla Coach" in text(closed)
    assert "Request booking" not in text(past) + text(closed)
    assert bookings(owner_db, world.org) == []


def test_book_page_of_a_free_time_keeps_its_form(world, athlete):
    slot = world.first_slot()

    response = athlete.get(f"/o/{world.org.slug}/offerings/{world.offering.id}/book?start={iso(slot.starts_at)}")

    assert response.status_code == 200
    assert "Request booking" in text(response) and "just taken" not in text(response)
