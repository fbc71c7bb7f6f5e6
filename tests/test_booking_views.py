"""Booking pages as people use them: finding a time, booking, answering requests, schedules, offerings, feeds.

Every page is requested as a full page (no JavaScript) and, where htmx swaps part of it, as a
fragment (``HX-Request``): a fragment has no ``<html``. Rows are checked through the owner
connection, so "nothing was written" means nothing reached PostgreSQL.
"""
from __future__ import annotations

import html
import json
import re
import uuid
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from coach import tenancy
from coach.accounts.service import update_profile
from coach.booking import service
from coach.extensions import db
from coach.orgs.models import ATHLETE, COACH
from tests.booking_support import BookingWorld, make_offering
from tests.conftest import Auth, csrf_from
from tests.querycount import statements_for
from tests.factories import add_member, make_user

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
HX = {"HX-Request": "true"}
SLOT_RE = re.compile(r'<a class="slot" href="([^"]+)"\s+data-start="([^"]+)">(\d\d:\d\d)')


# --- helpers ---------------------------------------------------------------------------------------

def logged_in(app, email: str):
    """A client of its own, logged in as ``email`` (a second browser)."""
    browser = app.test_client()
    assert Auth(browser).login(email).status_code == 303
    return browser


def text(response) -> str:
    return response.get_data(as_text=True)


def token(browser, slug: str) -> str:
    return csrf_from(text(browser.get(f"/o/{slug}/calendar-feed")))


def post(browser, slug: str, path: str, headers: dict | None = None, **data):
    """POST a form to ``/o/<slug><path>`` with a valid CSRF token."""
    return browser.post(f"/o/{slug}{path}", data={"csrf_token": token(browser, slug), **data},
                        headers=headers or {})


def iso(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def berlin(days_ahead: int, hour: int, minute: int = 0) -> datetime:
    """A Berlin wall-clock time ``days_ahead`` days from today, as a UTC instant."""
    day = (datetime.now(UTC).astimezone(BERLIN) + timedelta(days=days_ahead)).date()
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=BERLIN).astimezone(UTC)


def slots_on(page: str) -> list[tuple[str, str, str]]:
    """The slot links of a calendar: (href, UTC start, local label)."""
    return [(html.unescape(href), start, label) for href, start, label in SLOT_RE.findall(page)]


def link(page: str, label: str) -> str | None:
    """The href of the first link whose text starts with ``label``."""
    match = re.search(r'<a [^>]*href="([^"]+)"[^>]*>\s*' + re.escape(label), page)
    return html.unescape(match.group(1)) if match else None


def link_containing(page: str, label: str) -> str | None:
    """The href of the first link with ``label`` anywhere inside it (after an avatar, say)."""
    match = re.search(r'<a [^>]*href="([^"]+)"[^>]*>(?:(?!</a>).)*?' + re.escape(label), page, re.S)
    return html.unescape(match.group(1)) if match else None


def act_for(owner_db, org) -> None:
    """Let the owner connection see one organization's rows (RLS is forced for the owner too)."""
    owner_db.execute("SELECT set_config('app.tenant_id', %s, false)", (str(org.id),))


def bookings(owner_db, org) -> list[dict]:
    act_for(owner_db, org)
    cur = owner_db.execute(
        "SELECT id, status, athlete_membership_id, booked_by_membership_id, late_cancellation, "
        "rescheduled_from_id, starts_at, note FROM bookings ORDER BY created_at")
    names = [c.name for c in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def status_of(owner_db, org, booking_id) -> str:
    return {str(b["id"]): b["status"] for b in bookings(owner_db, org)}[str(booking_id)]


def offerings(owner_db, org) -> list[dict]:
    act_for(owner_db, org)
    cur = owner_db.execute("SELECT id, title, price_minor, duration_minutes, active FROM offerings ORDER BY created_at")
    names = [c.name for c in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def book(world, starts_at=None, athlete=None, offering=None, now=None, note="") -> object:
    """A booking made through the service, as the athlete would."""
    tenancy.activate(world.org.id)
    athlete = athlete or world.athlete
    booking = service.request_booking(offering or world.offering, athlete,
                                      starts_at or world.first_slot().starts_at, note, athlete, now=now)
    db.session.commit()
    return booking


def another_athlete(world, name: str = "Bea Athlete"):
    return add_member(world.org, make_user(f"bea-{uuid.uuid4().hex[:8]}@example.com", name), ATHLETE)


def another_coach(world, name: str = "Otto Othercoach"):
    return add_member(world.org, make_user(f"otto-{uuid.uuid4().hex[:8]}@example.com", name), COACH)


@pytest.fixture()
def world(ctx):
    """Carla Coach (Berlin, 09–17 daily) with a 60-minute request-only offering, Arno Athlete, Sam Scheduler."""
    return BookingWorld()


@pytest.fixture()
def athlete(app, world):
    return logged_in(app, world.athlete.user.email)


@pytest.fixture()
def coach(app, world):
    return logged_in(app, world.coach.user.email)


@pytest.fixture()
def scheduler(app, world):
    return logged_in(app, world.scheduler.user.email)


# --- finding a coach and a time, without JavaScript -----------------------------------------------

def test_athlete_finds_a_coach_then_an_offering_then_its_week_of_slots(athlete, world):
    slug = world.org.slug

    coaches = athlete.get(f"/o/{slug}/book")
    assert coaches.status_code == 200
    assert "<html" in text(coaches)
    assert "Carla Coach" in text(coaches) and "1 offering" in text(coaches)

    coach_page = athlete.get(link_containing(text(coaches), "<strong>Carla Coach"))
    assert coach_page.status_code == 200
    assert "Technique session" in text(coach_page)
    assert "Manage schedule" not in text(coach_page)

    calendar = athlete.get(link(text(coach_page), "See times"))
    page = text(calendar)
    assert calendar.status_code == 200
    assert "<html" in page and "<h1>Technique session</h1>" in page
    assert re.search(r"Times in <strong>Europe/Berlin</strong> \(CES?T(/CES?T)?\), your time zone", page)
    offered = slots_on(page) + slots_on(text(athlete.get(link(page, "Next week"))))
    assert len(offered) >= 7 * 8
    for href, start, label in offered:
        assert href.startswith(f"/o/{slug}/offerings/{world.offering.id}/book?start=")
        local = datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(BERLIN)
        assert label == local.strftime("%H:%M")
        assert "09:00" <= label <= "16:00"


def test_calendar_shows_slots_in_the_viewers_time_zone_and_names_it(ctx, app):
    world = BookingWorld(horizon_days=730)
    tenancy.activate(world.org.id)
    update_profile(world.athlete.user, "Arno Athlete", "America/New_York")
    db.session.commit()
    athlete = logged_in(app, world.athlete.user.email)
    # A week in January: Berlin (UTC+1) and New York (UTC-5) are both on winter time.
    january = date(datetime.now(UTC).year + 1, 1, 12)
    monday = january - timedelta(days=january.weekday())

    page = text(athlete.get(f"/o/{world.org.slug}/offerings/{world.offering.id}?week={monday}"))

    assert "Times in <strong>America/New York</strong> (EST), your time zone" in page
    assert "the coach is in Europe/Berlin" in page
    first = next((start, label) for _, start, label in slots_on(page) if start.startswith(monday.isoformat()))
    assert first == (f"{monday}T08:00:00Z", "03:00")  # 09:00 in Berlin


def test_next_week_link_leads_on_and_previous_link_comes_back_but_not_before_this_week(athlete, world):
    base = f"/o/{world.org.slug}/offerings/{world.offering.id}"

    # This week named: late on a Sunday it has no free time left, and the calendar alone would open on the next.
    this_week = text(athlete.get(f"{base}?week={datetime.now(BERLIN).date()}"))
    assert "Previous week" not in this_week
    next_href = link(this_week, "Next week")
    assert next_href.startswith(f"{base}?week=")
    next_monday = date.fromisoformat(next_href.split("week=")[1])
    assert next_monday.weekday() == 0 and next_monday > datetime.now(UTC).date() - timedelta(days=1)

    following = athlete.get(next_href)
    page = text(following)
    assert following.status_code == 200
    assert f"Week of {next_monday.strftime('%-d %B %Y').lstrip('0')}" in page
    assert link(page, "‹ Previous week") == f"{base}?week={next_monday - timedelta(days=7)}"
    assert link(page, "Next week") == f"{base}?week={next_monday + timedelta(days=7)}"
    assert all(start >= next_monday.isoformat() for _, start, _ in slots_on(page))
    assert len(slots_on(page)) >= 7 * 8 - 2  # 8 one-hour slots a day (a zone's edge may shift one)


def test_week_requested_by_htmx_is_only_the_calendar_fragment(athlete, world):
    base = f"/o/{world.org.slug}/offerings/{world.offering.id}"
    next_href = link(text(athlete.get(base)), "Next week")

    response = athlete.get(next_href, headers={**HX, "HX-Target": "calendar"})
    fragment = text(response)

    assert response.status_code == 200
    assert "HX-Request" in response.headers["Vary"]
    assert "<html" not in fragment and "<h1>" not in fragment
    assert fragment.lstrip().startswith('<section class="card calendar" id="calendar"')
    assert slots_on(fragment)
    assert "HX-Request" in athlete.get(base).headers["Vary"]


@pytest.mark.parametrize("week, message", [
    ("nonsense", "Use a week like"),
    ("2026-13-45", "Use a week like"),
    ("1999-01-04", "That week is too far away."),
])
def test_unreadable_or_far_week_is_a_clear_400_page(athlete, world, week, message):
    response = athlete.get(f"/o/{world.org.slug}/offerings/{world.offering.id}?week={week}")

    assert response.status_code == 400
    assert "<html" in text(response)
    assert message in text(response)


# --- booking -------------------------------------------------------------------------------------

def test_athlete_books_a_slot_with_a_note_and_sees_it_requested(athlete, world, owner_db):
    slug = world.org.slug
    href, start, label = slots_on(text(athlete.get(f"/o/{slug}/offerings/{world.offering.id}?week="
                                                   f"{(date.today() + timedelta(days=7)).isoformat()}")))[0]

    confirm = athlete.get(href)
    page = text(confirm)
    assert confirm.status_code == 200
    assert "Book this time" in page and "Request booking" in page
    assert f"{label}–" in page and "(Europe/Berlin)" in page
    assert 'name="athlete"' in page and "<select" not in page  # an athlete books for themself

    response = athlete.post(f"/o/{slug}/offerings/{world.offering.id}/book", data={
        "csrf_token": csrf_from(page), "start": start, "athlete": str(world.athlete.id),
        "note": "Working on my backhand"})

    assert response.status_code == 303
    [row] = bookings(owner_db, world.org)
    assert response.headers["Location"] == f"/o/{slug}/bookings/{row['id']}"
    assert row["status"] == "requested" and row["note"] == "Working on my backhand"
    assert iso(row["starts_at"]) == start
    detail = text(athlete.get(response.headers["Location"]))
    assert "Requested" in detail and "Working on my backhand" in detail
    assert "Requested: you will see here when the coach answers." in detail


def test_auto_confirm_offering_is_confirmed_at_once(ctx, app, owner_db):
    world = BookingWorld(auto_confirm=True)
    athlete = logged_in(app, world.athlete.user.email)
    calendar = text(athlete.get(f"/o/{world.org.slug}/offerings/{world.offering.id}"))
    assert "confirmed at once" in calendar
    start = iso(world.first_slot().starts_at)
    page = text(athlete.get(f"/o/{world.org.slug}/offerings/{world.offering.id}/book?start={start}"))
    assert ">Book</button>" in page

    response = athlete.post(f"/o/{world.org.slug}/offerings/{world.offering.id}/book", data={
        "csrf_token": csrf_from(page), "start": start, "athlete": str(world.athlete.id)})

    assert response.status_code == 303
    detail = text(athlete.get(response.headers["Location"]))
    assert "Confirmed" in detail and "Booked: the coach confirmed it." in detail
    assert [b["status"] for b in bookings(owner_db, world.org)] == ["confirmed"]


def test_slot_taken_meanwhile_is_a_409_page_with_fresh_times(app, world, owner_db):
    slot = world.first_slot()
    bea = another_athlete(world)
    book(world, slot.starts_at)  # Arno was quicker
    browser = logged_in(app, bea.user.email)
    path = f"/o/{world.org.slug}/offerings/{world.offering.id}/book"

    response = browser.post(path, data={"csrf_token": token(browser, world.org.slug), "start": iso(slot.starts_at),
                                        "athlete": str(bea.id), "note": "me too"})

    page = text(response)
    assert response.status_code == 409
    assert "<html" in page
    assert "This time was just taken. Choose another." in page
    offered = slots_on(page)
    assert offered and iso(slot.starts_at) not in [start for _, start, _ in offered]
    assert len(bookings(owner_db, world.org)) == 1

    fragment = browser.post(path, headers={**HX, "HX-Target": "book"}, data={
        "csrf_token": token(browser, world.org.slug), "start": iso(slot.starts_at), "athlete": str(bea.id)})
    assert fragment.status_code == 409
    assert "<html" not in text(fragment)
    assert text(fragment).lstrip().startswith('<div id="book">')
    assert "just taken" in text(fragment) and slots_on(text(fragment))


TAMPERED_STARTS = [  # (what the start was changed to, status, message)
    (lambda slot: iso(slot + timedelta(minutes=7)), 422, "That time is not available for this offering."),
    (lambda slot: iso(berlin(-1, 10)), 422, "That time is in the past."),
    (lambda slot: iso(berlin(2, 3)), 422, "That time is not available for this offering."),
    (lambda slot: iso(berlin(2, 18)), 422, "That time is not available for this offering."),
    (lambda slot: iso(slot + timedelta(days=400)), 422, "That time is not available for this offering."),
    (lambda slot: "next tuesday-ish", 400, "That time is not valid. Choose a time from the calendar."),
    (lambda slot: "2026-12-01T10:00:00", 400, "That time is not valid."),  # no zone: ambiguous
    (lambda slot: "", 400, "That time is not valid."),
    (lambda slot: "9999-12-30T10:00:00Z", 400, "That time is not valid."),  # its week runs off the calendar
    (lambda slot: "0001-01-01T10:00:00+01:00", 400, "That time is not valid."),
]


def test_tampered_start_time_is_refused_with_a_message_and_nothing_is_booked(athlete, world, owner_db):
    slot = world.first_slot().starts_at

    for change, status, message in TAMPERED_STARTS:
        value = change(slot)
        response = post(athlete, world.org.slug, f"/offerings/{world.offering.id}/book", start=value,
                        athlete=str(world.athlete.id))

        assert response.status_code == status, value
        assert message in text(response), value
    assert bookings(owner_db, world.org) == []


@pytest.mark.parametrize("start", ["yesterday", "9999-12-30T10:00:00Z", "0001-01-01T00:00:00Z"])
def test_tampered_start_time_in_the_link_is_refused_before_the_form(athlete, world, start):
    response = athlete.get(f"/o/{world.org.slug}/offerings/{world.offering.id}/book?start={start}")

    assert response.status_code == 400
    assert "Choose a time from the calendar." in text(response)


def test_overlong_note_is_refused_with_its_limit(athlete, world, owner_db):
    response = post(athlete, world.org.slug, f"/offerings/{world.offering.id}/book",
                    start=iso(world.first_slot().starts_at), athlete=str(world.athlete.id), note="x" * 5000)

    assert response.status_code == 422
    assert "A note can have at most 2,000 characters." in text(response)
    assert bookings(owner_db, world.org) == []

    fragment = post(athlete, world.org.slug, f"/offerings/{world.offering.id}/book", headers=HX,
                    start=iso(world.first_slot().starts_at), athlete=str(world.athlete.id), note="x" * 5000)
    assert fragment.status_code == 422
    assert "<html" not in text(fragment) and "at most 2,000 characters" in text(fragment)


def rival_ids() -> dict:
    """Another organization with its own coach, athlete and offering; what the tests need of it."""
    rival = BookingWorld()
    return dict(slug=rival.org.slug, offering=rival.offering.id, coach=rival.coach.id,
                coach_email=rival.coach.user.email, athlete_email=rival.athlete.user.email)


def test_offering_of_another_organization_or_made_up_id_is_not_found(ctx, app, world):
    rival = rival_ids()
    tenancy.activate(world.org.id)
    athlete = logged_in(app, world.athlete.user.email)
    slug, start = world.org.slug, iso(world.first_slot().starts_at)

    for offering_id in (rival["offering"], uuid.uuid4(), "not-a-uuid", "1;DROP TABLE offerings"):
        assert athlete.get(f"/o/{slug}/offerings/{offering_id}").status_code == 404
        assert athlete.get(f"/o/{slug}/offerings/{offering_id}/book?start={start}").status_code == 404
        assert post(athlete, slug, f"/offerings/{offering_id}/book", start=start,
                    athlete=str(world.athlete.id)).status_code == 404
    assert athlete.get(f"/o/{slug}/coaches/{rival['coach']}").status_code == 404
    assert athlete.get(f"/o/{rival['slug']}/offerings/{rival['offering']}").status_code == 404


def test_booking_is_hidden_from_people_who_are_not_part_of_it(ctx, app, world):
    booking = book(world)
    rival = rival_ids()
    tenancy.activate(world.org.id)
    outsiders = [another_athlete(world).user.email, another_coach(world).user.email,
                 rival["coach_email"], rival["athlete_email"]]

    for email in outsiders:
        browser = logged_in(app, email)
        for slug in (world.org.slug, rival["slug"]):
            assert browser.get(f"/o/{slug}/bookings/{booking.id}").status_code == 404, (email, slug)
            assert browser.get(f"/o/{slug}/bookings/{booking.id}.ics").status_code == 404, (email, slug)
        assert "Technique session" not in text(browser.get(f"/o/{world.org.slug}/bookings"))
    for email in (world.athlete.user.email, world.coach.user.email, world.scheduler.user.email):
        assert logged_in(app, email).get(f"/o/{world.org.slug}/bookings/{booking.id}").status_code == 200


def test_anonymous_visitor_is_sent_to_log_in_to_book(client, world):
    response = client.get(f"/o/{world.org.slug}/book")

    assert response.status_code == 303
    assert response.headers["Location"].startswith("/login?next=")


def test_coach_cannot_book_sessions(coach, world, owner_db):
    start = iso(world.first_slot().starts_at)

    assert coach.get(f"/o/{world.org.slug}/offerings/{world.offering.id}/book?start={start}").status_code == 403
    assert post(coach, world.org.slug, f"/offerings/{world.offering.id}/book", start=start,
                athlete=str(world.athlete.id)).status_code == 403
    assert bookings(owner_db, world.org) == []


# --- booking for someone else --------------------------------------------------------------------

def test_scheduler_books_on_behalf_of_an_athlete(scheduler, world, owner_db):
    start = iso(world.first_slot().starts_at)
    page = text(scheduler.get(f"/o/{world.org.slug}/offerings/{world.offering.id}/book?start={start}"))
    assert '<select id="athlete" name="athlete">' in page
    assert f'<option value="{world.athlete.id}">Arno Athlete ({world.athlete.user.email})</option>' in page

    response = scheduler.post(f"/o/{world.org.slug}/offerings/{world.offering.id}/book", data={
        "csrf_token": csrf_from(page), "start": start, "athlete": str(world.athlete.id), "note": "Booked by phone"})

    assert response.status_code == 303
    [row] = bookings(owner_db, world.org)
    assert row["athlete_membership_id"] == world.athlete.id
    assert row["booked_by_membership_id"] == world.scheduler.id
    assert "Arno Athlete" in text(scheduler.get(response.headers["Location"]))


def test_scheduler_cannot_book_a_coach_as_the_athlete(scheduler, world, owner_db):
    response = post(scheduler, world.org.slug, f"/offerings/{world.offering.id}/book",
                    start=iso(world.first_slot().starts_at), athlete=str(world.coach.id))

    assert response.status_code == 422
    assert "Choose an athlete of this organization." in text(response)
    assert bookings(owner_db, world.org) == []


def test_athlete_cannot_book_for_another_athlete_by_changing_the_athlete_id(athlete, world, owner_db):
    bea = another_athlete(world)

    response = post(athlete, world.org.slug, f"/offerings/{world.offering.id}/book",
                    start=iso(world.first_slot().starts_at), athlete=str(bea.id), note="surprise")

    assert response.status_code == 422
    assert "Choose an athlete of this organization." in text(response)
    assert bookings(owner_db, world.org) == []


# --- the coach answers ---------------------------------------------------------------------------

def test_coach_sees_requests_to_answer_with_accept_and_decline(coach, world):
    booking = book(world, note="First time here")

    page = text(coach.get(f"/o/{world.org.slug}/bookings"))

    pending = page[page.index('id="pending"'):page.index('id="today"')]
    assert "Requests to answer" in pending
    assert f'id="booking-{booking.id}"' in pending
    assert "Arno Athlete" in pending and "First time here" in pending
    assert ">Accept</button>" in pending and ">Decline</button>" in pending


def row_of(page: str, booking_id) -> str:
    """One booking's ``<li>`` in a page."""
    start = page.index(f'id="booking-{booking_id}"')
    return page[page.rindex("<li", 0, start):page.index("</li>", start)]


def test_session_rows_show_what_changed_since_the_last_visit(coach, world, owner_db):
    """Each row is rendered once per version and reused: a confirmed request, a renamed athlete and another time
    zone must each read as a new row, never as the markup kept from the visit before."""
    booking = book(world)
    path = f"/o/{world.org.slug}/bookings"
    before = row_of(text(coach.get(path)), booking.id)
    assert "status-requested" in before and ">Accept</button>" in before and "with Arno Athlete" in before

    tenancy.activate(world.org.id)
    service.transition(service.get_booking(world.org, booking.id), "confirm", world.coach)
    update_profile(world.athlete.user, "Arno Renamed", "Europe/Berlin")
    db.session.commit()
    after = row_of(text(coach.get(path)), booking.id)
    assert "status-confirmed" in after and ">Accept</button>" not in after and ">Cancel</button>" in after
    assert "with Arno Renamed" in after

    local = booking.starts_at.astimezone(BERLIN).strftime("%H:%M")
    assert f", {local}–" in after
    update_profile(world.coach.user, "Carla Coach", "America/New_York")
    db.session.commit()
    elsewhere = row_of(text(coach.get(path)), booking.id)
    new_york = booking.starts_at.astimezone(ZoneInfo("America/New_York")).strftime("%H:%M")
    assert f", {new_york}–" in elsewhere, elsewhere[:400]


def test_each_form_of_the_sessions_page_works_without_javascript_and_has_its_own_key(coach, world, owner_db):
    """The rows' forms post as plain forms (action, CSRF token, a fresh idempotency key, the page to come back
    to), and no two forms, on one page or on two visits, share a key (a repeated key would replay the first)."""
    first, second = book(world), book(world, starts_at=world.first_slot(days_ahead=3).starts_at)
    path = f"/o/{world.org.slug}/bookings"
    keys = []
    for _ in range(2):
        page = text(coach.get(path))
        keys += re.findall(r'name="idempotency_key" value="([0-9a-f]+)"', page)
    assert len(keys) == 12 and len(set(keys)) == 12  # Accept, Decline and Cancel of two requests, twice
    form = re.search(r'<form method="post" action="([^"]+)"[^>]*>(.*?)</form>', row_of(page, second.id), re.S)
    assert form.group(1) == f"/o/{world.org.slug}/bookings/{second.id}/confirm"
    fields = dict(re.findall(r'<input [^>]*name="([^"]+)"[^>]*value="([^"]*)"', form.group(2)))
    fields.update(re.findall(r'<input [^>]*type="hidden" name="([^"]+)" value="([^"]*)"', form.group(2)))
    assert set(fields) == {"csrf_token", "idempotency_key", "next"} and fields["next"] == path
    response = coach.post(html.unescape(form.group(1)), data=fields)
    assert response.status_code == 303 and response.headers["Location"] == path
    assert status_of(owner_db, world.org, second.id) == "confirmed"
    assert status_of(owner_db, world.org, first.id) == "requested"


def test_sessions_lists_refresh_as_a_fragment_when_a_booking_changes(coach, world):
    booking = book(world)

    response = coach.get(f"/o/{world.org.slug}/bookings", headers={**HX, "HX-Target": "session-lists",
                                                                    "HX-Trigger-Name": "booking-changed"})

    fragment = text(response)
    assert response.status_code == 200
    assert "<html" not in fragment and "My sessions" not in fragment
    assert fragment.lstrip().startswith('<div id="session-lists"')
    assert 'hx-trigger="booking-changed from:body"' in fragment
    assert f'id="booking-{booking.id}"' in fragment
    assert "HX-Request" in response.headers["Vary"]


def test_scheduler_answers_requests_for_any_coach(scheduler, world, owner_db):
    booking = book(world)
    mine = text(scheduler.get(f"/o/{world.org.slug}/bookings"))
    assert 'id="pending"' not in mine and f'<option value="{world.coach.id}">Carla Coach</option>' in mine

    page = text(scheduler.get(f"/o/{world.org.slug}/bookings?coach={world.coach.id}"))

    assert "Sessions of Carla Coach" in page
    pending = page[page.index('id="pending"'):page.index('id="today"')]
    assert "Arno Athlete with Carla Coach" in pending and ">Accept</button>" in pending
    assert post(scheduler, world.org.slug, f"/bookings/{booking.id}/confirm").status_code == 303
    assert status_of(owner_db, world.org, booking.id) == "confirmed"
    assert scheduler.get(f"/o/{world.org.slug}/bookings?coach={world.athlete.id}").status_code == 404
    assert scheduler.get(f"/o/{world.org.slug}/bookings?coach=nonsense").status_code == 404


def test_coach_accepts_in_place_with_htmx_and_the_row_says_confirmed(coach, world, owner_db):
    booking = book(world)

    response = post(coach, world.org.slug, f"/bookings/{booking.id}/confirm",
                    headers={**HX, "HX-Target": f"booking-{booking.id}"})

    row = text(response)
    assert response.status_code == 200
    assert "<html" not in row
    assert row.lstrip().startswith(f'<li class="booking status-confirmed" id="booking-{booking.id}"')
    assert "Confirmed" in row and ">Accept</button>" not in row
    assert "booking-changed" in json.loads(response.headers["HX-Trigger"])
    assert status_of(owner_db, world.org, booking.id) == "confirmed"


def test_coach_declines_without_javascript_and_returns_to_the_page_they_came_from(coach, world, owner_db):
    booking = book(world)

    response = post(coach, world.org.slug, f"/bookings/{booking.id}/decline", next=f"/o/{world.org.slug}/bookings")

    assert response.status_code == 303
    assert response.headers["Location"] == f"/o/{world.org.slug}/bookings"
    assert status_of(owner_db, world.org, booking.id) == "declined"
    page = text(coach.get(response.headers["Location"]))
    assert "Declined." in page and "No open requests." in page


def test_action_never_redirects_off_site(coach, world):
    booking = book(world)

    response = post(coach, world.org.slug, f"/bookings/{booking.id}/confirm", next="https://evil.example/")

    assert response.status_code == 303
    assert response.headers["Location"] == f"/o/{world.org.slug}/bookings/{booking.id}"


def test_athlete_cannot_accept_their_own_request(athlete, world, owner_db):
    booking = book(world)

    response = post(athlete, world.org.slug, f"/bookings/{booking.id}/confirm")
    assert response.status_code == 409
    assert "cannot be confirmed" in text(response)

    fragment = post(athlete, world.org.slug, f"/bookings/{booking.id}/confirm",
                    headers={**HX, "HX-Target": f"booking-{booking.id}"})
    assert fragment.status_code == 409
    assert "<html" not in text(fragment) and "cannot be confirmed" in text(fragment)
    assert status_of(owner_db, world.org, booking.id) == "requested"


def test_athlete_cancels_and_sees_it_cancelled(athlete, world, owner_db):
    booking = book(world)
    detail = text(athlete.get(f"/o/{world.org.slug}/bookings/{booking.id}"))
    assert ">Cancel</button>" in detail and "late cancellation" not in detail

    response = post(athlete, world.org.slug, f"/bookings/{booking.id}/cancel")

    assert response.status_code == 303
    page = text(athlete.get(response.headers["Location"]))
    assert "Cancelled" in page and "(late" not in page
    assert ">Cancel</button>" not in page
    assert status_of(owner_db, world.org, booking.id) == "cancelled"


def test_cancelling_a_confirmed_session_inside_the_window_is_marked_late(ctx, app, owner_db):
    world = BookingWorld(auto_confirm=True, cancellation_window_hours=96)
    booking = book(world)
    athlete = logged_in(app, world.athlete.user.email)
    sessions = text(athlete.get(f"/o/{world.org.slug}/bookings"))
    assert "will count as a late cancellation" in sessions  # the confirmation question warns first

    response = post(athlete, world.org.slug, f"/bookings/{booking.id}/cancel",
                    headers={**HX, "HX-Target": f"booking-{booking.id}"})

    assert response.status_code == 200
    assert "Cancelled (late)" in text(response)
    assert bookings(owner_db, world.org)[0]["late_cancellation"] is True
    assert "(late cancellation)" in text(athlete.get(f"/o/{world.org.slug}/bookings/{booking.id}"))


def test_no_show_button_appears_only_once_the_session_has_started(quiet, app, world, owner_db):
    drop_in = make_offering(world.coach, title="Drop-in", auto_confirm=True)
    yesterday = berlin(-1, 10)
    past = book(world, yesterday, offering=drop_in, now=yesterday - timedelta(days=1))  # booked the day before
    future = book(world, world.first_slot().starts_at, offering=drop_in)
    coach = logged_in(app, world.coach.user.email)

    page = text(coach.get(f"/o/{world.org.slug}/bookings"))

    past_row = page[page.index(f'id="booking-{past.id}"'):]
    past_row = past_row[:past_row.index("</li>")]
    future_row = page[page.index(f'id="booking-{future.id}"'):]
    future_row = future_row[:future_row.index("</li>")]
    assert "Mark no-show" in past_row
    assert "Mark no-show" not in future_row and ">Cancel</button>" in future_row

    response = post(coach, world.org.slug, f"/bookings/{past.id}/no_show", next=f"/o/{world.org.slug}/bookings")
    assert response.status_code == 303
    assert status_of(owner_db, world.org, past.id) == "no_show"
    assert "Marked as a no-show." in text(coach.get(response.headers["Location"]))
    assert post(coach, world.org.slug, f"/bookings/{future.id}/no_show").status_code == 409
    assert status_of(owner_db, world.org, future.id) == "confirmed"


# --- rescheduling ----------------------------------------------------------------------------------

def test_athlete_reschedules_through_the_calendar_and_the_old_booking_is_cancelled(athlete, world, owner_db):
    old = book(world)
    slug = world.org.slug
    detail = text(athlete.get(f"/o/{slug}/bookings/{old.id}"))

    calendar_href = link(detail, "Reschedule")
    assert calendar_href == f"/o/{slug}/offerings/{world.offering.id}?reschedule={old.id}"
    calendar = text(athlete.get(calendar_href))
    assert "Rescheduling your Technique session" in calendar
    next_week = link(calendar, "Next week")
    assert f"reschedule={old.id}" in next_week
    offered = slots_on(calendar) + slots_on(text(athlete.get(next_week)))
    href, start = [(href, start) for href, start, _ in offered if start != iso(old.starts_at)][-1]
    assert f"reschedule={old.id}" in href

    confirm = text(athlete.get(href))
    assert "Move to this time" in confirm and "Move my booking" in confirm
    response = athlete.post(f"/o/{slug}/offerings/{world.offering.id}/book", data={
        "csrf_token": csrf_from(confirm), "start": start, "reschedule": str(old.id),
        "athlete": str(world.athlete.id)})

    assert response.status_code == 303
    rows = {str(b["id"]): b for b in bookings(owner_db, world.org)}
    assert rows[str(old.id)]["status"] == "cancelled"
    [new] = [b for key, b in rows.items() if key != str(old.id)]
    assert new["rescheduled_from_id"] == old.id and iso(new["starts_at"]) == start
    assert response.headers["Location"] == f"/o/{slug}/bookings/{new['id']}"
    moved = text(athlete.get(response.headers["Location"]))
    assert "Moved from" in moved and f'href="/o/{slug}/bookings/{old.id}"' in moved
    assert "Cancelled" in text(athlete.get(f"/o/{slug}/bookings/{old.id}"))


def test_booking_cannot_be_moved_into_another_offering(athlete, world, owner_db):
    old = book(world)
    other = make_offering(world.coach, title="Drop-in", duration_minutes=30)
    start = iso(berlin(3, 11))

    assert athlete.get(f"/o/{world.org.slug}/offerings/{other.id}?reschedule={old.id}").status_code == 404
    assert athlete.get(f"/o/{world.org.slug}/offerings/{other.id}/book?start={start}&reschedule={old.id}"
                       ).status_code == 404
    assert post(athlete, world.org.slug, f"/offerings/{other.id}/book", start=start, reschedule=str(old.id),
                athlete=str(world.athlete.id)).status_code == 404
    assert [b["status"] for b in bookings(owner_db, world.org)] == ["requested"]


def test_cancelled_booking_can_no_longer_be_rescheduled(athlete, world, owner_db):
    old = book(world)
    post(athlete, world.org.slug, f"/bookings/{old.id}/cancel")

    response = athlete.get(f"/o/{world.org.slug}/offerings/{world.offering.id}?reschedule={old.id}")

    assert response.status_code == 409
    assert "can no longer be rescheduled" in text(response)


# --- the schedule editor -------------------------------------------------------------------------

def schedule_path(world, coach=None) -> str:
    return f"/coaches/{(coach or world.coach).id}/schedule"


def test_coach_opens_their_own_schedule(coach, world):
    page = text(coach.get(f"/o/{world.org.slug}/schedule"))

    assert "My schedule" in page and "Hours are read in Europe/Berlin" in page
    assert page.count("<span>09:00–17:00</span>") == 7
    assert "Technique session" in page


def test_coach_adds_weekly_hours_in_place(coach, world):
    response = post(coach, world.org.slug, f"{schedule_path(world)}/rules", headers={**HX, "HX-Target": "hours"},
                    weekday="0", start="18:00", end="20:00")

    fragment = text(response)
    assert response.status_code == 200
    assert "<html" not in fragment
    assert fragment.lstrip().startswith('<section class="card" id="hours">')
    monday = fragment[fragment.index("Monday"):fragment.index("Tuesday")]
    assert "09:00–17:00" in monday and "18:00–20:00" in monday
    assert "HX-Request" in response.headers["Vary"]


def test_weekly_hours_added_without_javascript_redirect_to_the_schedule(coach, world):
    response = post(coach, world.org.slug, f"{schedule_path(world)}/rules", weekday="6", start="18:00", end="00:00")

    assert response.status_code == 303
    assert response.headers["Location"] == f"/o/{world.org.slug}{schedule_path(world)}"
    page = text(coach.get(response.headers["Location"]))
    assert "Hours added." in page and "18:00–24:00" in page


@pytest.mark.parametrize("start, end, message", [
    ("17:00", "09:00", "The end must be after the start."),
    ("10:00", "11:00", "10:00–11:00 overlaps 09:00–17:00."),
    ("08:00", "09:30", "08:00–09:30 overlaps 09:00–17:00."),
    ("nine", "17:00", "Enter a time like 09:00."),
    ("25:00", "26:00", "Enter a time like 09:00."),
])
def test_inverted_overlapping_or_unreadable_hours_are_refused_in_the_fragment(coach, world, start, end, message):
    response = post(coach, world.org.slug, f"{schedule_path(world)}/rules", headers={**HX, "HX-Target": "hours"},
                    weekday="0", start=start, end=end)

    assert response.status_code == 422
    assert "<html" not in text(response)
    assert message in text(response)
    assert text(response).count("<span>09:00–17:00</span>") == 7  # nothing changed


def test_coach_removes_weekly_hours(coach, world, owner_db):
    act_for(owner_db, world.org)
    rule_id = owner_db.execute("SELECT id FROM availability_rules WHERE weekday = 2").fetchone()[0]

    response = post(coach, world.org.slug, f"{schedule_path(world)}/rules/{rule_id}/delete",
                    headers={**HX, "HX-Target": "hours"})

    assert response.status_code == 200
    wednesday = text(response)[text(response).index("Wednesday"):text(response).index("Thursday")]
    assert "unavailable" in wednesday
    assert post(coach, world.org.slug, f"{schedule_path(world)}/rules/{rule_id}/delete").status_code == 404
    assert post(coach, world.org.slug, f"{schedule_path(world)}/rules/nope/delete").status_code == 404


def test_coach_gives_a_date_other_hours_then_closes_it_then_returns_it_to_weekly_hours(coach, world, athlete):
    day = (datetime.now(BERLIN) + timedelta(days=9)).date()
    path = f"{schedule_path(world)}/overrides"
    headers = {**HX, "HX-Target": "overrides"}

    split = post(coach, world.org.slug, path, headers=headers, on_date=day.isoformat(),
                 hours="09:00-12:00, 14:00-16:00")
    assert split.status_code == 200
    assert "<html" not in text(split) and text(split).lstrip().startswith('<section class="card" id="overrides">')
    assert f"{day.strftime('%a %-d %b %Y')}</strong>:" in text(split)
    assert "09:00–12:00, 14:00–16:00" in text(split)
    monday = day - timedelta(days=day.weekday())
    calendar = text(athlete.get(f"/o/{world.org.slug}/offerings/{world.offering.id}?week={monday}"))
    that_day = [label for _, start, label in slots_on(calendar)
                if datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(BERLIN).date() == day]
    assert that_day == ["09:00", "10:00", "11:00", "14:00", "15:00"]

    closed = post(coach, world.org.slug, path, headers=headers, on_date=day.isoformat(), closed="y")
    assert closed.status_code == 200
    assert re.search(rf"{day.strftime('%a %-d %b %Y')}</strong>:\s*closed", text(closed))

    back = post(coach, world.org.slug, f"{path}/{day.isoformat()}/delete", headers=headers)
    assert back.status_code == 200 and "No dates differ from the weekly hours." in text(back)
    assert post(coach, world.org.slug, f"{path}/not-a-date/delete").status_code == 404


@pytest.mark.parametrize("values, message", [
    ({"hours": "9 till 5"}, "“9 till 5” is not a range like 09:00-12:00."),
    ({"hours": "09:00-12:00, 11:00-13:00"}, "11:00–13:00 overlaps 09:00–12:00."),
    ({"hours": "12:00-09:00"}, "The end must be after the start."),
    ({"hours": ""}, "Enter the hours for that date, or tick “Closed all day”."),
    ({"hours": "09:00-12:00", "on_date": ""}, "Choose a date."),
])
def test_unreadable_date_hours_are_refused_with_a_message(coach, world, owner_db, values, message):
    data = {"on_date": (datetime.now(BERLIN) + timedelta(days=9)).date().isoformat(), **values}

    response = post(coach, world.org.slug, f"{schedule_path(world)}/overrides",
                    headers={**HX, "HX-Target": "overrides"}, **data)

    assert response.status_code == 422
    assert "<html" not in text(response)
    assert message in text(response)
    act_for(owner_db, world.org)
    assert owner_db.execute("SELECT count(*) FROM availability_overrides").fetchone()[0] == 0


def test_coach_adds_and_removes_time_off(coach, world, owner_db):
    day = (datetime.now(BERLIN) + timedelta(days=5)).date()
    path = f"{schedule_path(world)}/time-off"
    headers = {**HX, "HX-Target": "time_off"}

    added = post(coach, world.org.slug, path, headers=headers, starts=f"{day}T10:00", ends=f"{day}T12:00",
                 reason="Dentist")

    assert added.status_code == 200
    assert "<html" not in text(added)
    zone = datetime(day.year, day.month, day.day, 12, tzinfo=BERLIN).strftime("%Z")  # the line names its zone
    assert f"{day.strftime('%a %-d %b')} 10:00 – {day.strftime('%a %-d %b')} 12:00 {zone} · Dentist" in text(added)
    act_for(owner_db, world.org)
    time_off_id = owner_db.execute("SELECT id FROM time_off").fetchone()[0]

    removed = post(coach, world.org.slug, f"{path}/{time_off_id}/delete", headers=headers)
    assert removed.status_code == 200 and "No time off planned." in text(removed)
    assert post(coach, world.org.slug, f"{path}/{time_off_id}/delete").status_code == 404


def test_time_off_ending_before_it_starts_is_refused(coach, world, owner_db):
    day = (datetime.now(BERLIN) + timedelta(days=5)).date()

    response = post(coach, world.org.slug, f"{schedule_path(world)}/time-off", headers={**HX, "HX-Target": "time_off"},
                    starts=f"{day}T12:00", ends=f"{day}T10:00")

    assert response.status_code == 422
    assert "Time off must end after it starts." in text(response)
    malformed = post(coach, world.org.slug, f"{schedule_path(world)}/time-off", starts="soon", ends="")
    assert malformed.status_code == 422
    assert "Choose an end." in text(malformed)
    ancient = post(coach, world.org.slug, f"{schedule_path(world)}/time-off", starts="0001-01-01T00:00",
                   ends="0001-01-01T10:00")
    assert ancient.status_code == 422
    assert "Choose a date between the years 2000 and 2999." in text(ancient)
    act_for(owner_db, world.org)
    assert owner_db.execute("SELECT count(*) FROM time_off").fetchone()[0] == 0


def test_invalid_time_zone_is_refused_and_a_valid_one_is_saved(coach, world):
    refused = post(coach, world.org.slug, f"{schedule_path(world)}/timezone", headers={**HX, "HX-Target": "hours"},
                   timezone="Mars/Olympus_Mons")
    assert refused.status_code == 422
    assert "<html" not in text(refused) and "Try a city, like Europe/Paris." in text(refused)

    saved = post(coach, world.org.slug, f"{schedule_path(world)}/timezone", timezone="America/New_York")
    assert saved.status_code == 303
    page = text(coach.get(saved.headers["Location"]))
    assert "Time zone saved." in page and "Hours are read in America/New York" in page


def test_athlete_may_not_open_or_change_a_coachs_schedule(athlete, world):
    assert athlete.get(f"/o/{world.org.slug}{schedule_path(world)}").status_code == 403
    assert post(athlete, world.org.slug, f"{schedule_path(world)}/rules", weekday="0", start="18:00",
                end="19:00").status_code == 403
    assert athlete.get(f"/o/{world.org.slug}/schedule").status_code == 403
    assert athlete.get(f"/o/{world.org.slug}/coaches/{uuid.uuid4()}/schedule").status_code == 404


def test_another_coach_may_not_manage_this_coachs_schedule(app, world):
    otto = logged_in(app, another_coach(world).user.email)

    assert otto.get(f"/o/{world.org.slug}{schedule_path(world)}").status_code == 403
    assert post(otto, world.org.slug, f"{schedule_path(world)}/rules", weekday="0", start="18:00",
                end="19:00").status_code == 403
    assert post(otto, world.org.slug, f"/offerings/{world.offering.id}/archive").status_code == 403
    assert otto.get(f"/o/{world.org.slug}/offerings/{world.offering.id}/edit").status_code == 403


def test_scheduler_manages_any_coachs_schedule(scheduler, world):
    page = text(scheduler.get(f"/o/{world.org.slug}{schedule_path(world)}"))
    assert "Schedule of Carla Coach" in page

    response = post(scheduler, world.org.slug, f"{schedule_path(world)}/rules", weekday="0", start="18:00",
                    end="19:00")

    assert response.status_code == 303
    assert "18:00–19:00" in text(scheduler.get(response.headers["Location"]))
    assert "Manage schedule" in text(scheduler.get(f"/o/{world.org.slug}/coaches/{world.coach.id}"))


# --- offerings -----------------------------------------------------------------------------------

OFFERING_FORM = dict(title="Video analysis", description="We watch your race together.", duration_minutes="45",
                     price="45.50", location="Boathouse", meeting_url="https://meet.example/carla",
                     capacity="1", buffer_before_minutes="0", buffer_after_minutes="15", min_notice_minutes="120",
                     max_per_day="", horizon_days="60", cancellation_window_hours="24")


def test_coach_creates_an_offering_through_the_form(coach, world, owner_db):
    form = text(coach.get(f"/o/{world.org.slug}/coaches/{world.coach.id}/offerings/new"))
    assert "New offering" in form and 'name="price"' in form

    response = post(coach, world.org.slug, f"/coaches/{world.coach.id}/offerings/new", **OFFERING_FORM)

    assert response.status_code == 303
    assert response.headers["Location"] == f"/o/{world.org.slug}{schedule_path(world)}"
    created = [o for o in offerings(owner_db, world.org) if o["title"] == "Video analysis"]
    assert created == [dict(created[0], price_minor=4550, duration_minutes=45, active=True)]
    page = text(coach.get(response.headers["Location"]))
    assert "Video analysis saved." in page and "45 min" in page


def test_coach_edits_an_offering(coach, world, owner_db):
    path = f"/offerings/{world.offering.id}/edit"
    form = text(coach.get(f"/o/{world.org.slug}{path}"))
    assert 'value="Technique session"' in form and 'value="0.00"' in form

    response = post(coach, world.org.slug, path, **dict(OFFERING_FORM, title="Technique (long)",
                                                        duration_minutes="90", price="80"))

    assert response.status_code == 303
    [row] = offerings(owner_db, world.org)
    assert (row["title"], row["duration_minutes"], row["price_minor"]) == ("Technique (long)", 90, 8000)


def test_archived_offering_cannot_be_booked_until_restored(coach, athlete, world, owner_db):
    calendar = f"/o/{world.org.slug}/offerings/{world.offering.id}"

    archived = post(coach, world.org.slug, f"/offerings/{world.offering.id}/archive",
                    headers={**HX, "HX-Target": "offerings"})
    assert archived.status_code == 200
    assert "<html" not in text(archived) and ">archived</span>" in text(archived)
    assert athlete.get(calendar).status_code == 404
    assert post(athlete, world.org.slug, f"/offerings/{world.offering.id}/book",
                start=iso(berlin(2, 10)), athlete=str(world.athlete.id)).status_code == 404
    assert "has no offerings to book yet" in text(athlete.get(f"/o/{world.org.slug}/coaches/{world.coach.id}"))
    assert "0 offerings" in text(athlete.get(f"/o/{world.org.slug}/book"))

    restored = post(coach, world.org.slug, f"/offerings/{world.offering.id}/restore")
    assert restored.status_code == 303
    assert "Offering restored." in text(coach.get(restored.headers["Location"]))
    assert athlete.get(calendar).status_code == 200
    assert offerings(owner_db, world.org)[0]["active"] is True


INVALID_OFFERING_VALUES = [  # (field, value, message)
    ("duration_minutes", "0", "A session lasts between 5 and 720 minutes."),
    ("duration_minutes", "99999999999999999999", "A session lasts between 5 and 720 minutes."),
    ("capacity", "0", "Between 1 and 500 seats."),
    ("price", "-5", "An amount cannot be negative."),
    ("price", "45.505", "EUR amounts have at most 2 decimals."),
    ("price", "lots", "is not an amount; write it like 49.90."),
    ("price", "2000000", "That is more than €1,000,000.00."),
    ("price", "NaN", "Enter a price like 45.00."),
    ("price", "sNaN", "Enter a price like 45.00."),
    ("price", "Infinity", "Enter a price like 45.00."),
    ("meeting_url", "not a link", "Enter a full link starting with https://"),
    ("title", "", "Give the offering a title."),
]


def test_invalid_offering_values_are_refused_with_messages(coach, world, owner_db):
    for field, value, message in INVALID_OFFERING_VALUES:
        response = post(coach, world.org.slug, f"/coaches/{world.coach.id}/offerings/new",
                        **dict(OFFERING_FORM, **{field: value}))

        assert response.status_code == 422, (field, value)
        assert message in text(response), (field, value)
        assert "<html" in text(response)
    fragment = post(coach, world.org.slug, f"/coaches/{world.coach.id}/offerings/new", headers=HX,
                    **dict(OFFERING_FORM, capacity="0"))
    assert fragment.status_code == 422
    assert "<html" not in text(fragment) and "Between 1 and 500 seats." in text(fragment)
    assert text(fragment).lstrip().startswith('<section class="card" id="offering-form">')
    assert len(offerings(owner_db, world.org)) == 1  # only the world's own


# --- calendar files ------------------------------------------------------------------------------

def test_booking_downloads_as_a_calendar_file(athlete, world):
    booking = book(world)

    response = athlete.get(f"/o/{world.org.slug}/bookings/{booking.id}.ics")

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/calendar")
    assert f"UID:booking-{booking.id}@coach" in text(response)
    assert "BEGIN:VEVENT" in text(response) and "STATUS:TENTATIVE" in text(response)


def test_calendar_feed_address_is_shown_once_works_without_login_and_can_be_replaced(app, athlete, world):
    booking = book(world)
    slug = world.org.slug
    assert "You have no subscription address yet." in text(athlete.get(f"/o/{slug}/calendar-feed"))

    created = post(athlete, slug, "/calendar-feed")
    assert created.status_code == 200
    address = re.search(r'id="feed-url" type="text" readonly value="([^"]+)"', text(created)).group(1)
    base = app.config["APP_BASE_URL"]
    assert address.startswith(f"{base}/o/{slug}/calendar/") and address.endswith(".ics")
    again = text(athlete.get(f"/o/{slug}/calendar-feed"))
    assert address not in again and "It is not shown again" in again

    calendar_app = app.test_client()  # no session: the secret is the credential
    feed = calendar_app.get(address.removeprefix(base))
    assert feed.status_code == 200
    assert feed.headers["Content-Type"].startswith("text/calendar")
    assert f"UID:booking-{booking.id}@coach" in text(feed)

    replaced = post(athlete, slug, "/calendar-feed", headers={**HX, "HX-Target": "feed"})
    assert replaced.status_code == 200 and "<html" not in text(replaced)
    new_address = re.search(r'readonly value="([^"]+)"', text(replaced)).group(1)
    assert new_address != address
    assert calendar_app.get(address.removeprefix(base)).status_code == 404
    assert calendar_app.get(new_address.removeprefix(base)).status_code == 200


@pytest.mark.parametrize("path", ["/o/{slug}/calendar/wrong-token.ics", "/o/{slug}/calendar/.ics",
                                  "/o/{slug}/calendar/" + "x" * 300 + ".ics", "/o/no-such-club/calendar/abc.ics"])
def test_wrong_feed_address_is_not_found(client, world, path):
    assert client.get(path.format(slug=world.org.slug)).status_code == 404


# --- CSRF ----------------------------------------------------------------------------------------

def test_post_without_csrf_token_is_refused(athlete, coach, world, owner_db):
    booking = book(world)

    refused = athlete.post(f"/o/{world.org.slug}/offerings/{world.offering.id}/book",
                           data={"start": iso(berlin(3, 10)), "athlete": str(world.athlete.id)})
    assert refused.status_code == 400
    assert "security token" in text(refused)
    assert coach.post(f"/o/{world.org.slug}/bookings/{booking.id}/confirm").status_code == 400
    assert coach.post(f"/o/{world.org.slug}{schedule_path(world)}/rules",
                      data={"weekday": "0", "start": "18:00", "end": "19:00"}).status_code == 400
    assert [b["status"] for b in bookings(owner_db, world.org)] == ["requested"]


# --- a fixed number of queries -------------------------------------------------------------------

def test_sessions_page_costs_the_same_queries_for_two_or_ten_bookings(quiet, app, world):
    athletes = [world.athlete, another_athlete(world)]
    slots = []
    for days in range(2, 7):
        tenancy.activate(world.org.id)
        start = berlin(days, 0)
        slots += [s.starts_at for s in service.available_slots(world.offering, start, start + timedelta(days=1))][:2]
    made = [book(world, slots[i], athlete=athletes[i % 2]) for i in range(2)]
    coach = logged_in(app, world.coach.user.email)
    path = f"/o/{world.org.slug}/bookings"
    statements_for(app, coach, path)  # warm up: first-request work is not the page's

    with_two = statements_for(app, coach, path)
    made += [book(world, slots[i], athlete=athletes[i % 2]) for i in range(2, 10)]
    tenancy.activate(world.org.id)
    for booking in made[::3]:
        service.transition(booking, "confirm", world.coach)
    db.session.commit()
    with_ten = statements_for(app, coach, path)

    page = text(coach.get(path))
    assert page.count('class="booking status-') == 10
    assert with_two == with_ten, (with_two, with_ten)
