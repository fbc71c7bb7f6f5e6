"""Recurring series as the coach and the scheduler use them: plan, see the conflicts, book; cancel or move from
one occurrence on; what the athlete and another organization see. Rows are read through the owner connection, so
"nothing was written" means nothing reached PostgreSQL."""
from __future__ import annotations

import html
import logging
import re
from datetime import date, datetime, timedelta, timezone
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest

from coach import tenancy
from coach.booking import series as series_service
from coach.booking import service, waitlist
from coach.booking.models import CoachingSession
from coach.extensions import db
from tests.booking_support import BookingWorld
from tests.conftest import Auth, csrf_from
from tests.factories import add_member, make_user
from tests.querycount import statements_for
from tests.test_booking_waitlist import GroupWorld

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
DIGEST_RE = re.compile(r'name="expected" value="([0-9a-f]+)"')


def logged_in(app, email: str):
    browser = app.test_client()
    assert Auth(browser).login(email).status_code == 303
    return browser


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def act_for(owner_db, org) -> None:
    owner_db.execute("SELECT set_config('app.tenant_id', %s, false)", (str(org.id),))


def series_bookings(owner_db, org) -> list[dict]:
    act_for(owner_db, org)
    cur = owner_db.execute("SELECT id, status, series_id, series_index, starts_at, rescheduled_from_id, "
                           "late_cancellation FROM bookings WHERE series_id IS NOT NULL "
                           "ORDER BY series_index, created_at")
    names = [c.name for c in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def series_rows(owner_db, org) -> list[dict]:
    act_for(owner_db, org)
    cur = owner_db.execute("SELECT id, status, occurrences, interval_weeks FROM booking_series")
    names = [c.name for c in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def berlin_day(days_ahead: int) -> date:
    return (datetime.now(UTC).astimezone(BERLIN) + timedelta(days=days_ahead)).date()


def weeks_before_spring_forward() -> date:
    """A day two weeks (one, when two would be too soon) before the next Sunday the clocks go forward in Europe
    (the last Sunday of March), so a weekly series from it crosses the change."""
    year = berlin_day(0).year + (1 if berlin_day(0) >= date(berlin_day(0).year, 3, 25) else 0)
    change = max(date(year, 3, d) for d in range(25, 32) if date(year, 3, d).weekday() == 6)
    first = change - timedelta(weeks=2)
    if first <= berlin_day(1):
        first += timedelta(weeks=1)
    return first


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=BERLIN).astimezone(UTC)


def plan_query(world, first: date, time: str = "10:00", count: int | str = 8, **extra) -> dict:
    return {"athlete": str(world.athlete.id), "first_date": first.isoformat(), "first_time": time, "every": "1",
            "ends": "count", "count": str(count), "until": "", "note": "", **extra}


def plan_url(world, **query) -> str:
    return f"/o/{world.org.slug}/offerings/{world.offering.id}/series?{urlencode(query)}"


def confirm(browser, world, query: dict, page: str):
    """Post the preview's confirm form as the page carries it (its digest, a fresh CSRF token)."""
    digest = DIGEST_RE.search(page).group(1)
    return browser.post(f"/o/{world.org.slug}/offerings/{world.offering.id}/series",
                        data={**query, "expected": digest, "csrf_token": csrf_from(page)})


def book_single(world, starts_at, athlete=None):
    tenancy.activate(world.org.id)
    athlete = athlete or world.athlete
    booking = service.request_booking(world.offering, athlete, starts_at, "", athlete)
    db.session.commit()
    return booking


@pytest.fixture()
def world(ctx):
    """Carla Coach (Berlin, 09–17 daily) with a free 60-minute offering bookable a year ahead."""
    return BookingWorld(horizon_days=365)


@pytest.fixture()
def coach(app, world):
    return logged_in(app, world.coach.user.email)


def booked_series(app, world, coach, count: int = 8, first_days: int = 3):
    first = berlin_day(first_days)
    query = plan_query(world, first, count=count)
    page = text(coach.get(plan_url(world, **query)))
    response = confirm(coach, world, query, page)
    assert response.status_code == 303, text(response)
    return response.headers["Location"], first


# --- planning and booking ----------------------------------------------------------------------------

def test_weekly_series_of_eight_lists_the_one_conflict_and_books_seven(app, world, coach, owner_db):
    first = berlin_day(3)
    in_the_way = book_single(world, at(first + timedelta(weeks=3), 10))
    query = plan_query(world, first)
    preview = coach.get(plan_url(world, **query))
    page = text(preview)
    assert preview.status_code == 200
    assert "7 of 8 will be booked" in page
    assert page.count("conflict: taken by another session") == 1
    assert (first + timedelta(weeks=3)).strftime("%-d %b %Y") in page
    assert series_rows(owner_db, world.org) == []  # a preview writes nothing

    response = confirm(coach, world, query, page)
    assert response.status_code == 303
    rows = series_bookings(owner_db, world.org)
    assert len(rows) == 7
    assert {r["status"] for r in rows} == {"confirmed"}  # the coach booked them: no requests to answer
    assert [r["series_index"] for r in rows] == list(range(1, 8))
    assert at(first + timedelta(weeks=3), 10) not in {r["starts_at"] for r in rows}
    assert series_rows(owner_db, world.org)[0]["occurrences"] == 7
    shown = text(coach.get(response.headers["Location"]))
    assert shown.count("Cancel this and later") == 7
    assert in_the_way.status == "requested"  # the booking in the way is untouched


def test_series_across_the_daylight_saving_change_keeps_ten_oclock_on_the_coachs_clock(ctx, world):
    tenancy.activate(world.org.id)
    first = weeks_before_spring_forward()
    plan = series_service.plan(world.offering, world.athlete, at(first, 10), 1, count=5, actor=world.coach,
                               now=at(first, 0) - timedelta(days=1))
    starts = [o.starts_at for o in plan.occurrences]
    assert [s.astimezone(BERLIN).strftime("%H:%M") for s in starts] == ["10:00"] * 5
    assert {s.astimezone(UTC).hour for s in starts} == {9, 8}  # winter UTC+1, summer UTC+2
    assert not plan.conflicts


def test_each_conflict_says_why(ctx, world):
    """Time off, the coach's own calendar, a closed day and the horizon each name themselves."""
    from coach.booking.models import ExternalBusy
    from coach.calsync.models import CalendarConnection, CalendarSource
    from coach.platform.sealing import seal

    tenancy.activate(world.org.id)
    first = berlin_day(3)
    service.add_time_off(world.coach, at(first + timedelta(weeks=1), 8), at(first + timedelta(weeks=1), 12),
                         "Holiday", world.coach)
    connection = CalendarConnection(tenant_id=world.org.id, coach_membership_id=world.coach.id, label="Personal",
                                    server_url="http://127.0.0.1:9/dav/", username="c", secret_sealed=seal("x"))
    db.session.add(connection)
    db.session.flush()
    source = CalendarSource(tenant_id=world.org.id, connection_id=connection.id, url="http://127.0.0.1:9/dav/c/",
                            blocks_time=True)
    db.session.add(source)
    db.session.flush()
    dentist = at(first + timedelta(weeks=2), 10, 30)
    db.session.add(ExternalBusy(tenant_id=world.org.id, source_id=source.id, coach_membership_id=world.coach.id,
                                href="/dentist.ics", uid="dentist", starts_at=dentist,
                                ends_at=dentist + timedelta(minutes=30)))
    service.set_override(world.coach, first + timedelta(weeks=3), [], world.coach)
    service.save_offering(world.coach, {"horizon_days": 30}, world.coach, world.offering)
    db.session.commit()
    plan = series_service.plan(world.offering, world.athlete, at(first, 10), 1, count=6, actor=world.coach)
    assert [o.conflict for o in plan.occurrences] == [
        None, "the coach's time off", "busy in the coach's calendar", "outside the coach's availability",
        None if first + timedelta(weeks=4) < berlin_day(30) else "beyond the booking horizon (30 days ahead)",
        "beyond the booking horizon (30 days ahead)"]
    assert len(plan.bookable) == 6 - len(plan.conflicts)


def test_a_group_session_the_athlete_is_already_in_is_a_conflict_and_others_join_open_ones(ctx, world):
    tenancy.activate(world.org.id)
    service.save_offering(world.coach, {"capacity": 4}, world.coach, world.offering)
    db.session.commit()
    first = berlin_day(3)
    book_single(world, at(first + timedelta(weeks=1), 10))  # Arno already in week 2's group
    plan = series_service.plan(world.offering, world.athlete, at(first, 10), 1, count=3, actor=world.coach)
    assert [o.conflict for o in plan.occurrences] == [None, "the athlete already has a place in this session", None]
    series = series_service.book(world.offering, world.athlete, at(first, 10), 1, 3, None, plan.digest, world.coach)
    db.session.commit()
    assert series.occurrences == 2
    # Another athlete's series joins the open group sessions, week 2's included.
    other = add_member(world.org, make_user("bea-series@example.com", "Bea Athlete"), "athlete")
    tenancy.activate(world.org.id)
    theirs = series_service.plan(world.offering, other, at(first, 10), 1, count=3, actor=world.coach)
    assert not theirs.conflicts


def test_five_hundred_occurrences_plan_in_as_many_statements_as_eight(app, world, coach):
    first = berlin_day(3)
    few = statements_for(app, coach, plan_url(world, **plan_query(world, first, count=8)))
    many = statements_for(app, coach, plan_url(world, **plan_query(world, first, count=500)))
    assert many == few
    page = text(coach.get(plan_url(world, **plan_query(world, first, count=500))))
    assert "of 500 will be booked" in page
    assert "conflict: beyond the booking horizon (365 days ahead)" in page


def test_a_booking_made_between_preview_and_confirm_writes_nothing_and_shows_the_new_conflict(app, world, coach,
                                                                                                owner_db):
    first = berlin_day(3)
    query = plan_query(world, first)
    page = text(coach.get(plan_url(world, **query)))
    assert "8 of 8 will be booked" in page
    book_single(world, at(first + timedelta(weeks=2), 10))
    response = confirm(coach, world, query, page)
    again = text(response)
    assert response.status_code == 409
    assert "nothing was booked" in again
    assert "7 of 8 will be booked" in again
    assert "conflict: taken by another session" in again
    assert series_bookings(owner_db, world.org) == []
    assert series_rows(owner_db, world.org) == []
    # Confirming what is shown now books the seven.
    assert confirm(coach, world, query, again).status_code == 303
    assert len(series_bookings(owner_db, world.org)) == 7


def test_first_time_taken_between_preview_and_confirm_says_so_once_and_writes_nothing(app, world, coach, owner_db):
    first = berlin_day(3)
    query = plan_query(world, first, count=3)
    page = text(coach.get(plan_url(world, **query)))
    book_single(world, at(first, 10))
    response = confirm(coach, world, query, page)
    assert response.status_code == 422
    assert text(response).count("The first session is not a free time (taken by another session)") == 1
    assert series_rows(owner_db, world.org) == []


def test_the_way_in_is_on_the_coachs_pages_for_those_who_may(app, world, coach):
    athlete = logged_in(app, world.athlete.user.email)
    coach_page = f"/o/{world.org.slug}/coaches/{world.coach.id}"
    assert "Book a recurring series" in text(coach.get(coach_page))
    assert "Book a recurring series" in text(coach.get(f"/o/{world.org.slug}/coaches/{world.coach.id}/schedule"))
    assert "Book a recurring series" not in text(athlete.get(coach_page))


def test_plan_form_starts_from_a_chosen_time_or_the_next_free_one(app, world, coach):
    chosen = at(berlin_day(5), 14)
    page = coach.get(f"/o/{world.org.slug}/offerings/{world.offering.id}/series?"
                     f"{urlencode({'start': chosen.strftime('%Y-%m-%dT%H:%M:%SZ')})}")
    assert page.status_code == 200
    assert f'value="{berlin_day(5).isoformat()}"' in text(page) and 'value="14:00"' in text(page)
    assert "will be booked" not in text(page)
    assert coach.get(f"/o/{world.org.slug}/offerings/{world.offering.id}/series?start=soon").status_code == 400
    fresh = coach.get(f"/o/{world.org.slug}/offerings/{world.offering.id}/series")
    assert fresh.status_code == 200
    assert re.search(r'<input[^>]*name="first_date"[^>]*value="\d{4}-\d\d-\d\d"', text(fresh))


def test_htmx_swaps_the_preview_in_place_and_follows_the_booked_series(app, world, coach, owner_db):
    query = plan_query(world, berlin_day(3), count=2)
    fragment = coach.get(plan_url(world, **query), headers={"HX-Request": "true", "HX-Target": "series-plan"})
    page = text(fragment)
    assert fragment.status_code == 200
    assert "<html" not in page and page.lstrip().startswith('<div id="series-plan"')
    assert "2 of 2 will be booked" in page
    response = coach.post(f"/o/{world.org.slug}/offerings/{world.offering.id}/series",
                          data={**query, "expected": DIGEST_RE.search(page).group(1), "csrf_token": csrf_from(page)},
                          headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert "/series/" in response.headers["HX-Redirect"]
    assert len(series_bookings(owner_db, world.org)) == 2


def test_scheduler_books_a_series_for_an_athlete(app, world, owner_db):
    scheduler = logged_in(app, world.scheduler.user.email)
    first = berlin_day(4)
    query = plan_query(world, first, count=3)
    page = text(scheduler.get(plan_url(world, **query)))
    assert confirm(scheduler, world, query, page).status_code == 303
    assert len(series_bookings(owner_db, world.org)) == 3


# --- bad input ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, message", [
    ({"count": "0"}, "A series has 1 to 500 sessions."),
    ({"count": "501"}, "A series has 1 to 500 sessions."),
    ({"every": "0"}, "Repeat every 1 to 12 weeks."),
    ({"every": "13"}, "Repeat every 1 to 12 weeks."),
    ({"ends": "until", "until": "2000-01-01"}, "The last date is before the first session."),
    ({"ends": "until", "until": ""}, "Enter the date of the last session."),
    ({"first_time": "03:00"}, "The first session is not a free time (outside the coach's availability)"),
    ({"first_time": "25:99"}, "Enter a time like 09:00."),
    ({"first_date": "yesterday"}, "Not a valid date value."),
    ({"first_date": "9999-12-31"}, "Choose a first date within the next two years."),
    ({"first_date": "0001-01-01"}, "Choose a first date within the next two years."),
    ({"ends": "sometimes"}, "Not a valid choice."),
    ({"count": "many"}, "Not a valid integer value."),
    ({"athlete": "not-an-id"}, "Choose an athlete of this organization."),
])
def test_bad_plans_are_refused_with_a_message(app, world, coach, owner_db, change, message):
    query = {**plan_query(world, berlin_day(3)), **change}
    response = coach.get(plan_url(world, **query))
    assert response.status_code == 422
    assert message in text(response)
    assert "will be booked" not in text(response)


def test_an_end_date_making_more_than_500_sessions_is_refused(app, world, coach):
    query = plan_query(world, berlin_day(3), ends="until", until=(berlin_day(3) + timedelta(weeks=600)).isoformat())
    response = coach.get(plan_url(world, **query))
    assert response.status_code == 422
    assert "a series has at most 500" in text(response)


def test_tampered_preview_writes_nothing(app, world, coach, owner_db):
    first = berlin_day(3)
    query = plan_query(world, first)
    page = text(coach.get(plan_url(world, **query)))
    tampered = page.replace(DIGEST_RE.search(page).group(1), "0" * 32)
    assert confirm(coach, world, query, tampered).status_code == 409
    # Fields changed after the preview (another time) read as another plan, also refused.
    assert confirm(coach, world, {**query, "first_time": "11:00"}, page).status_code == 409
    missing = coach.post(f"/o/{world.org.slug}/offerings/{world.offering.id}/series",
                         data={"csrf_token": csrf_from(page)})
    assert missing.status_code == 422
    assert series_rows(owner_db, world.org) == []


def test_bad_moves_are_refused_with_a_message(app, world, coach):
    location, _ = booked_series(app, world, coach, count=3)
    move = location + "/move"
    for query, message in (("start=2&weekday=9&time=10:00", "Not a valid choice."),
                           ("start=2&weekday=x&time=10:00", "Invalid Choice"),
                           ("start=7&weekday=1&time=10:00", "Occurrence 7 and later have nothing left to change."),
                           ("start=0&weekday=1&time=10:00", "Number must be between 1 and 500."),
                           ("start=2&weekday=1&time=99:00", "Enter a time like 09:00."),
                           ("start=2&weekday=1&time=24:00", "Enter a time like 09:00.")):
        response = coach.get(f"{move}?{query}")
        assert response.status_code == 422, query
        assert message in text(response), query


def test_paid_offering_is_refused_with_the_reason(app, world, coach):
    tenancy.activate(world.org.id)
    service.save_offering(world.coach, {"price_minor": 4500}, world.coach, world.offering)
    db.session.commit()
    response = coach.get(plan_url(world, **plan_query(world, berlin_day(3))))
    assert response.status_code == 422
    assert "a recurring series is for free offerings" in text(response)


# --- cancelling and moving from one occurrence on ----------------------------------------------------

def test_cancel_from_occurrence_five_on(app, world, coach, owner_db):
    location, _ = booked_series(app, world, coach)
    page = text(coach.get(location))
    series_id = location.rsplit("/", 1)[1]
    response = coach.post(f"/o/{world.org.slug}/series/{series_id}/cancel",
                          data={"start": "5", "csrf_token": csrf_from(page)})
    assert response.status_code == 303
    rows = series_bookings(owner_db, world.org)
    assert [r["status"] for r in rows] == ["confirmed"] * 4 + ["cancelled"] * 4
    assert series_rows(owner_db, world.org)[0]["status"] == "active"
    shown = text(coach.get(location))
    assert "Cancelled 4 sessions from occurrence 5 on." in shown
    assert shown.count("Cancel this and later") == 4
    # Cancelling the rest leaves nothing live: the series is cancelled.
    coach.post(f"/o/{world.org.slug}/series/{series_id}/cancel", data={"start": "1", "csrf_token": csrf_from(shown)})
    assert series_rows(owner_db, world.org)[0]["status"] == "cancelled"


def test_move_from_occurrence_three_on_to_another_weekday_and_time(app, world, coach, owner_db):
    location, first = booked_series(app, world, coach)
    series_id = location.rsplit("/", 1)[1]
    new_weekday = (first.weekday() + 1) % 7
    move = f"/o/{world.org.slug}/series/{series_id}/move"
    form = text(coach.get(f"{move}?start=3"))
    assert "Move occurrence 3 and later" in form
    preview = coach.get(f"{move}?start=3&weekday={new_weekday}&time=14:00")
    page = text(preview)
    assert preview.status_code == 200
    assert "All 6 new times are free" in page
    response = coach.post(move, data={"start": "3", "weekday": str(new_weekday), "time": "14:00",
                                      "expected": DIGEST_RE.search(page).group(1), "csrf_token": csrf_from(page)})
    assert response.status_code == 303, text(response)
    current = {}
    for r in series_bookings(owner_db, world.org):
        current[r["series_index"]] = r
    assert len(current) == 8
    for index, row in current.items():
        local = row["starts_at"].astimezone(BERLIN)
        assert row["status"] == "confirmed"
        if index < 3:
            assert (local.hour, local.weekday()) == (10, first.weekday())
        else:
            assert (local.hour, local.weekday()) == (14, new_weekday)
            assert row["rescheduled_from_id"] is not None


def test_move_onto_a_taken_time_shows_the_conflict_and_moves_nothing(app, world, coach, owner_db):
    location, first = booked_series(app, world, coach, count=4)
    series_id = location.rsplit("/", 1)[1]
    book_single(world, at(first + timedelta(weeks=2), 15))
    move = f"/o/{world.org.slug}/series/{series_id}/move"
    page = text(coach.get(f"{move}?start=2&weekday={first.weekday()}&time=15:00"))
    assert "1 of 3 new times are not free" in page
    assert "conflict: taken by another session" in page
    assert 'name="expected"' not in page  # no confirm button
    response = coach.post(move, data={"start": "2", "weekday": str(first.weekday()), "time": "15:00",
                                      "expected": "x" * 32, "csrf_token": csrf_from(text(coach.get(location)))})
    assert response.status_code == 409
    assert all(r["rescheduled_from_id"] is None for r in series_bookings(owner_db, world.org))


# --- who may --------------------------------------------------------------------------------------------

def test_athlete_sees_the_series_but_cannot_create_or_change_it(app, world, coach, owner_db):
    location, _ = booked_series(app, world, coach, count=3)
    athlete = logged_in(app, world.athlete.user.email)
    assert athlete.get(plan_url(world, **plan_query(world, berlin_day(3)))).status_code == 403
    page = athlete.get(location)
    assert page.status_code == 200
    assert "Cancel this and later" not in text(page)
    series_id = location.rsplit("/", 1)[1]
    token = csrf_from(text(athlete.get(f"/o/{world.org.slug}/calendar-feed")))
    refused = athlete.post(f"/o/{world.org.slug}/series/{series_id}/cancel", data={"start": "1", "csrf_token": token})
    assert refused.status_code == 403
    assert {r["status"] for r in series_bookings(owner_db, world.org)} == {"confirmed"}
    # The athlete's own occurrence page says which it is, and a single one can still be cancelled.
    booking_id = series_bookings(owner_db, world.org)[1]["id"]
    detail = text(athlete.get(f"/o/{world.org.slug}/bookings/{booking_id}"))
    assert "Occurrence 2 of 3 of a weekly series" in detail


def test_another_coach_cannot_book_a_series_on_this_coachs_offering(app, world):
    other = add_member(world.org, make_user("otto-series@example.com", "Otto Othercoach"), "coach")
    browser = logged_in(app, other.user.email)
    assert browser.get(plan_url(world, **plan_query(world, berlin_day(3)))).status_code == 403


def test_another_organization_sees_nothing_of_a_series(app, world, coach, owner_db):
    location, _ = booked_series(app, world, coach, count=2)
    series_id = location.rsplit("/", 1)[1]
    slug, offering_id, athlete_id = world.org.slug, world.offering.id, world.athlete.id
    elsewhere = BookingWorld(horizon_days=365)
    other_slug, other_offering = elsewhere.org.slug, elsewhere.offering.id
    intruder = logged_in(app, elsewhere.coach.user.email)
    # Its own slug with this organization's ids, and this organization's slug: both not found (or not a member).
    assert intruder.get(f"/o/{other_slug}/series/{series_id}").status_code == 404
    assert intruder.get(f"/o/{other_slug}/offerings/{offering_id}/series").status_code == 404
    assert intruder.get(f"/o/{slug}/series/{series_id}").status_code in (403, 404)
    # This organization's athlete on the other organization's offering: refused with a message.
    query = plan_query(elsewhere, berlin_day(3), athlete=str(athlete_id))
    response = intruder.get(f"/o/{other_slug}/offerings/{other_offering}/series?{urlencode(query)}")
    assert response.status_code == 422
    assert "Choose an athlete of this organization." in text(response)
    assert series_rows(owner_db, elsewhere.org) == []
    assert len(series_rows(owner_db, world.org)) == 1


# --- moving across weeks, the end of a series, the viewer's clock --------------------------------------

def move_to(coach, move: str, start: int, weekday: int, time: str, weeks: int):
    """Preview a move, then confirm it as the page carries it."""
    query = f"start={start}&weekday={weekday}&time={time}&weeks={weeks}"
    page = text(coach.get(f"{move}?{query}"))
    assert 'name="expected"' in page, page
    return page, coach.post(move, data={"start": str(start), "weekday": str(weekday), "time": time,
                                        "weeks": str(weeks), "expected": DIGEST_RE.search(page).group(1),
                                        "csrf_token": csrf_from(page)})


def current_times(owner_db, world) -> dict[int, dict]:
    current = {}
    for r in series_bookings(owner_db, world.org):
        current[r["series_index"]] = r
    return current


def test_move_from_occurrence_three_a_week_later_onto_another_weekday(app, world, coach, owner_db):
    """ "Every Tuesday 10:00 from the 3rd on" becomes "every Thursday 15:00, a week later": each moved occurrence
    lands on the time the next one gives up or beyond, and all of them move together."""
    location, first = booked_series(app, world, coach, count=5)
    series_id = location.rsplit("/", 1)[1]
    move = f"/o/{world.org.slug}/series/{series_id}/move"
    assert "1 week later" in text(coach.get(f"{move}?start=3"))
    same_day = first.weekday()
    page, response = move_to(coach, move, 3, same_day, "10:00", 1)  # onto the next one's own time
    assert "All 3 new times are free" in page
    assert response.status_code == 303, text(response)
    current = current_times(owner_db, world)
    assert [current[i]["starts_at"] for i in (3, 4, 5)] == [at(first + timedelta(weeks=w), 10) for w in (3, 4, 5)]
    assert all(current[i]["status"] == "confirmed" for i in current)
    # And on to Thursday 15:00 of the following week, from occurrence 4.
    thursday = 3
    page, response = move_to(coach, move, 4, thursday, "15:00", 1)
    assert response.status_code == 303, text(response)
    current = current_times(owner_db, world)
    for index, weeks_on in ((4, 5), (5, 6)):
        local = current[index]["starts_at"].astimezone(BERLIN)
        assert (local.weekday(), local.hour) == (thursday, 15)
        monday = first - timedelta(days=first.weekday())
        assert (local.date() - monday).days // 7 == weeks_on
    assert current[3]["starts_at"] == at(first + timedelta(weeks=3), 10)
    assert text(coach.get(location)).count("Move this and later") == 5


def test_a_move_before_an_occurrence_that_stays_is_refused(app, world, coach, owner_db):
    location, first = booked_series(app, world, coach, count=4, first_days=10)
    series_id = location.rsplit("/", 1)[1]
    move = f"/o/{world.org.slug}/series/{series_id}/move"
    response = coach.get(f"{move}?start=3&weekday={first.weekday()}&time=09:00&weeks=-1")
    assert response.status_code == 422
    assert "The new first time comes before occurrence 2, which stays" in text(response)
    response = coach.get(f"{move}?start=3&weekday=1&time=09:00&weeks=40")
    assert response.status_code == 422 and "Not a valid choice" in text(response)
    assert all(r["rescheduled_from_id"] is None for r in series_bookings(owner_db, world.org))


def test_a_series_ends_when_its_last_occurrence_has_ended(app, world, coach, owner_db, job_runner):
    location, first = booked_series(app, world, coach, count=2)
    series_id = location.rsplit("/", 1)[1]
    tenancy.activate(world.org.id)
    series = series_service.get_series(world.org.id, series_id)
    first_booking, second = series_service.occurrences(series)
    after = at(first, 12)  # the first has taken place, the second is a week ahead
    with job_runner.paused():
        job_runner.drain()
        tenancy.activate(world.org.id)
        for action in ("start", "end"):
            service.transition(first_booking, action, None, now=after)
        db.session.commit()
        job_runner.drain()
        assert series_rows(owner_db, world.org)[0]["status"] == "active"  # one still to come
        tenancy.activate(world.org.id)
        service.transition(second, "cancel", world.coach, now=after)
        db.session.commit()
        job_runner.drain()
    assert series_rows(owner_db, world.org)[0]["status"] == "ended"
    page = text(coach.get(location))
    assert "Ended" in page and "1 took place" in page and "Move this and later" not in page
    # A redelivered event changes nothing.
    tenancy.activate(world.org.id)
    assert series_service.occurrence_settled(world.org.id, second.id) == "ended"


def series_booked(world, first: date, hour: int, count: int):
    """A weekly series booked through the service by the world's coach (no page in between): its id."""
    tenancy.activate(world.org.id)
    planned = series_service.plan(world.offering, world.athlete, at(first, hour), 1, count=count, actor=world.coach)
    series = series_service.book(world.offering, world.athlete, at(first, hour), 1, count, None, planned.digest,
                                 world.coach)
    db.session.commit()
    return series.id


def settle_occurrences(world, series_id, actions: list[str]) -> None:
    """Each occurrence in turn ends ("end", after it took place) or is cancelled by the coach ("cancel")."""
    tenancy.activate(world.org.id)
    series = series_service.get_series(world.org.id, series_id)
    for booking, action in zip(series_service.occurrences(series), actions):
        if action == "end":
            for step in ("start", "end"):
                service.transition(booking, step, None, now=booking.ends_at + timedelta(hours=1))
        else:
            service.transition(booking, "cancel", world.coach)
    db.session.commit()


def migrate_again_from_0023(app) -> None:
    """The real Alembic round trip: down to 0023 (0024's downgrade changes nothing) and up to the head. Alembic's
    env applies alembic.ini's logging each run; the root logger is put back so later tests log as before."""
    from flask_migrate import downgrade, upgrade

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        with app.app_context():
            downgrade(revision="0023_directory_facet_totals")
            upgrade()
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_migration_0024_settles_series_that_finished_before_their_status_was_kept(app, world, coach, owner_db,
                                                                                   job_runner):
    """Series whose occurrences all settled before ``series_jobs`` existed still read ``active``: the migration
    applies the consumer's rule to them, in every organization (row-level security is forced on the owner that
    runs it), and leaves a series with a session still to come alone."""
    other = BookingWorld(horizon_days=365)
    first = berlin_day(3)
    with job_runner.paused():
        job_runner.drain()
        took_place = series_booked(world, first, 10, 2)
        called_off = series_booked(world, first, 12, 2)
        going_on = series_booked(world, first, 14, 2)
        elsewhere = series_booked(other, first, 10, 1)
        settle_occurrences(world, took_place, ["cancel", "end"])
        settle_occurrences(world, called_off, ["cancel", "cancel"])
        settle_occurrences(world, going_on, ["end"])
        settle_occurrences(other, elsewhere, ["end"])
        job_runner.drain()
        # As the series that finished before the consumer existed were left: every one still 'active'.
        for org in (world.org, other.org):
            act_for(owner_db, org)
            owner_db.execute("UPDATE booking_series SET status = 'active'")
        location = f"/o/{world.org.slug}/series/{took_place}"
        assert "0 still on" in text(coach.get(location))

        migrate_again_from_0023(app)
        expected = {took_place: "ended", called_off: "cancelled", going_on: "active"}
        assert {r["id"]: r["status"] for r in series_rows(owner_db, world.org)} == expected
        assert [r["status"] for r in series_rows(owner_db, other.org)] == ["ended"]
        page = text(coach.get(location))
        assert "Ended" in page and "1 took place" in page and "still on" not in page
        assert "Move this and later" not in page and "Cancel this and later" not in page
        assert "still on" not in text(coach.get(f"/o/{world.org.slug}/series/{called_off}"))
        still_going = text(coach.get(f"/o/{world.org.slug}/series/{going_on}"))
        assert "1 still on" in still_going and still_going.count("Cancel this and later") == 1

        migrate_again_from_0023(app)  # idempotent: a second run changes nothing
        assert {r["id"]: r["status"] for r in series_rows(owner_db, world.org)} == expected
        job_runner.drain()


def test_series_pages_follow_the_members_twelve_hour_clock(app, world, coach, owner_db):
    location, first = booked_series(app, world, coach, count=2)
    tenancy.activate(world.org.id)
    world.coach.user.hour_cycle = 12
    db.session.commit()
    detail = text(coach.get(location))
    assert "10:00 am" in detail and "10:00 C" not in detail
    plan = text(coach.get(plan_url(world, **plan_query(world, berlin_day(20), time="14:00", count=2))))
    assert "2:00 pm–3:00 pm" in plan
    series_id = location.rsplit("/", 1)[1]
    move = text(coach.get(f"/o/{world.org.slug}/series/{series_id}/move?start=1&weekday={first.weekday()}"
                          "&time=16:00&weeks=0"))
    assert "4:00 pm" in move and "10:00 am" in move


def test_confirming_five_hundred_occurrences_books_the_free_ones_and_skips_the_rest(app, world, coach, owner_db):
    """Bad input from the issue: a series of 500. Those within the horizon are booked in one go; the rest are
    listed as skipped, and nothing else is written."""
    first = berlin_day(3)
    query = plan_query(world, first, count=500)
    page = text(coach.get(plan_url(world, **query)))
    bookable = int(re.search(r"(\d+) of 500 will be booked", page).group(1))
    assert 50 <= bookable <= 53  # a year's horizon of weekly sessions
    response = confirm(coach, world, query, page)
    assert response.status_code == 303, text(response)
    rows = series_bookings(owner_db, world.org)
    assert len(rows) == bookable and all(r["status"] == "confirmed" for r in rows)
    assert [r["series_index"] for r in rows] == list(range(1, bookable + 1))
    assert series_rows(owner_db, world.org)[0]["occurrences"] == bookable


def test_a_group_session_whose_free_seat_is_kept_for_its_waitlist_is_a_conflict(ctx, job_runner):
    """A direct booking of a seat the line keeps is refused, so a series plan lists it as a conflict instead of
    failing at confirmation; the athlete waiting in that line is not blocked by themselves."""
    group = GroupWorld()
    later = group.starts_at + timedelta(weeks=1)
    with job_runner.paused():
        group.cancel(group.bookings[1])  # nobody waits here: the first week has a free seat for anyone
        tenancy.activate(group.org.id)
        taken = [service.request_booking(group.offering, a, later, "", a) for a in (group.seated[0], group.waiting[2])]
        db.session.commit()
        waitlist.join(db.session.get(CoachingSession, taken[0].session_id), group.waiting[0], group.waiting[0])
        db.session.commit()
        group.cancel(taken[0])  # a seat frees in week two while one athlete waits
        tenancy.activate(group.org.id)
        planned = series_service.plan(group.offering, group.waiting[1], group.starts_at, 1, count=2)
        assert [o.conflict for o in planned.occurrences] == [None, "others are on the waitlist for its free seat"]
        theirs = series_service.plan(group.offering, group.waiting[0], group.starts_at, 1, count=2)
        assert not theirs.conflicts
        db.session.rollback()


def test_moving_a_week_later_across_the_daylight_saving_change_keeps_the_coachs_clock(ctx, world):
    tenancy.activate(world.org.id)
    first = weeks_before_spring_forward()
    planned = series_service.plan(world.offering, world.athlete, at(first, 10), 1, count=3, actor=world.coach)
    series = series_service.book(world.offering, world.athlete, at(first, 10), 1, 3, None, planned.digest,
                                 world.coach)
    db.session.commit()
    preview = series_service.plan_move(series, 1, first.weekday(), 11 * 60, world.coach, weeks=1)
    series_service.move_from(series, 1, first.weekday(), 11 * 60, preview.digest, world.coach, weeks=1)
    db.session.commit()
    moved = series_service.occurrences(series)
    assert [b.starts_at for b in moved] == [at(first + timedelta(weeks=w), 11) for w in (1, 2, 3)]
    assert {b.starts_at.astimezone(BERLIN).hour for b in moved} == {11}
    assert all(b.status == "confirmed" and b.rescheduled_from_id for b in moved)
