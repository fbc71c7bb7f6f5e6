"""Waitlist pages: a full session shows "Full · waitlist" in the week; joining, my place, leaving, taking an offered
seat, as pages without JavaScript and as htmx fragments; and every bad input a clear 4xx."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from coach import tenancy
from coach.booking.models import Booking, WaitlistEntry
from coach.extensions import db
from coach.orgs.models import ATHLETE
from tests.test_booking_views import HX, logged_in, text, token
from tests.factories import add_member, make_user
from tests.test_booking_waitlist import GroupWorld, seat_offered, seats, statuses
from tests.test_booking_waitlist import group  # noqa: F401  (fixture)

KEY_RE = re.compile(r'name="idempotency_key" value="([0-9a-f]+)"')
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


@pytest.fixture()
def waiter(app, group):
    return logged_in(app, group.waiting[0].user.email)


def page_of(group) -> str:
    return f"/o/{group.org.slug}/sessions/{group.session_id}/waitlist"


def form_post(browser, page_path: str, action: str, headers: dict | None = None, **data):
    """POST ``action`` with a valid CSRF token (read from the page at ``page_path``, or the feed page's)."""
    match = CSRF_RE.search(text(browser.get(page_path)))
    csrf = match.group(1) if match else token(browser, page_path.split("/")[2])
    return browser.post(action, data={"csrf_token": csrf, **data}, headers=headers or {})


def entry_of(group, athlete) -> WaitlistEntry:
    tenancy.activate(group.org.id)
    db.session.expire_all()
    return db.session.scalars(select(WaitlistEntry).where(WaitlistEntry.athlete_membership_id == athlete.id)).one()


def test_a_full_session_shows_in_the_week_as_full_with_a_waitlist(waiter, group):
    week = (group.starts_at - timedelta(days=group.starts_at.weekday())).date().isoformat()
    page = text(waiter.get(f"/o/{group.org.slug}/offerings/{group.offering.id}?week={week}"))
    assert "Full · waitlist" in page
    assert f'href="{page_of(group)}"' in page


def test_an_athlete_joins_sees_their_place_and_leaves(app, waiter, group):
    group.line_up(group.waiting[1])  # someone is already waiting
    page = text(waiter.get(page_of(group)))
    assert "All 2 seats are taken" in page and "Join the waitlist" in page
    response = form_post(waiter, page_of(group), page_of(group))
    assert response.status_code == 303
    page = text(waiter.get(response.headers["Location"]))
    assert "You are 2nd in line." in page
    # The sessions page lists the place too.
    sessions = text(waiter.get(f"/o/{group.org.slug}/bookings"))
    assert "Waitlists" in sessions and "You are 2nd in line" in sessions
    # Joining twice is a clear message, not a second place.
    again = form_post(waiter, page_of(group), page_of(group))
    assert again.status_code == 409 and "already on this waitlist" in text(again)
    entry = entry_of(group, group.waiting[0])
    left = form_post(waiter, page_of(group), f"/o/{group.org.slug}/waitlist/{entry.id}/leave", headers=HX)
    fragment = text(left)
    assert left.status_code == 200 and "<html" not in fragment and "Join the waitlist" in fragment
    assert entry_of(group, group.waiting[0]).status == "left"


def test_joining_by_htmx_answers_the_fragment(waiter, group):
    response = form_post(waiter, page_of(group), page_of(group), headers=HX)
    fragment = text(response)
    assert response.status_code == 200
    assert fragment.lstrip().startswith('<section class="card narrow waitlist" id="waitlist"')
    assert "You are 1st in line." in fragment


def test_a_scheduler_lines_up_an_athlete_and_sees_the_line(app, group):
    scheduler = logged_in(app, group.scheduler.user.email)
    page = text(scheduler.get(page_of(group)))
    assert "Nobody is waiting." in page
    response = form_post(scheduler, page_of(group), page_of(group), athlete=str(group.waiting[2].id))
    assert response.status_code == 303
    page = text(scheduler.get(page_of(group)))
    assert "Wen Waiting 3" in page and "In line" in page


def test_a_session_with_a_free_seat_sends_the_athlete_to_book_it(waiter, group):
    group.cancel(group.bookings[0])
    tenancy.activate(group.org.id)
    db.session.execute(select(Booking))  # (nothing waits: no line to fill)
    response = form_post(waiter, page_of(group), page_of(group))
    assert response.status_code == 303 and "/book?start=" in response.headers["Location"]
    assert "A seat is free in this session" in text(waiter.get(response.headers["Location"]))


def test_taking_an_offered_seat_books_it(app, ctx, job_runner, mailbox):
    world = seat_offered(job_runner)
    browser = logged_in(app, world.waiting[0].user.email)
    page = text(browser.get(page_of(world)))
    assert "A seat is yours until" in page and "Take the seat" in page
    entry = entry_of(world, world.waiting[0])
    response = form_post(browser, page_of(world), f"/o/{world.org.slug}/waitlist/{entry.id}/accept")
    assert response.status_code == 303 and "/bookings/" in response.headers["Location"]
    assert "The seat is yours" in text(browser.get(response.headers["Location"]))
    assert statuses(world) == ["booked"]


def test_taking_an_offer_that_ran_out_is_410(app, ctx, job_runner, mailbox):
    world = seat_offered(job_runner)
    entry = entry_of(world, world.waiting[0])
    entry.status, entry.offered_until = "expired", entry.offered_until
    db.session.commit()
    browser = logged_in(app, world.waiting[0].user.email)
    response = form_post(browser, page_of(world), f"/o/{world.org.slug}/waitlist/{entry.id}/accept")
    assert response.status_code == 410 and "This offer has run out" in text(response)


def test_an_offering_without_a_waitlist_says_so(app, ctx):
    world = GroupWorld(waitlist_mode="off")
    browser = logged_in(app, world.waiting[0].user.email)
    page = text(browser.get(page_of(world)))
    assert "This session takes no waitlist." in page and "Join the waitlist" not in page
    response = form_post(browser, page_of(world), page_of(world))
    assert response.status_code == 422 and "takes no waitlist" in text(response)


@pytest.mark.parametrize("path", ["/sessions/{other}/waitlist", "/sessions/not-a-uuid/waitlist",
                                  "/waitlist/{other_entry}/leave", "/waitlist/{other_entry}/accept",
                                  "/waitlist/nonsense/accept"])
def test_another_organizations_session_or_entry_is_404(app, waiter, group, path):
    other = GroupWorld()
    other_entry, = other.line_up(other.waiting[0])
    path = path.format(other=other.session_id, other_entry=other_entry.id)
    if path.endswith("/waitlist"):
        assert waiter.get(f"/o/{group.org.slug}{path}").status_code == 404
    response = form_post(waiter, page_of(group), f"/o/{group.org.slug}{path}")
    assert response.status_code == 404


def test_someone_elses_place_is_404_to_an_athlete(app, waiter, group):
    theirs, = group.line_up(group.waiting[1])
    response = form_post(waiter, page_of(group), f"/o/{group.org.slug}/waitlist/{theirs.id}/leave")
    assert response.status_code == 404
    assert entry_of(group, group.waiting[1]).status == "waiting"


def test_the_offering_form_sets_the_waitlist(app, group):
    coach = logged_in(app, group.coach.user.email)
    path = f"/o/{group.org.slug}/offerings/{group.offering.id}/edit"
    page = text(coach.get(path))
    assert "When a full group session frees a seat" in page
    fields = dict(re.findall(r'name="([a-z_]+)"[^>]*value="([^"]*)"', page))
    fields.update(csrf_token=CSRF_RE.search(page).group(1), title="Squad training", waitlist_mode="offer",
                  waitlist_offer_minutes="3", price="0", late_cancel_policy="forfeit")
    fields.pop("idempotency_key", None)
    refused = coach.post(path, data=fields)
    assert refused.status_code == 422 and "Between 5 minutes and 7 days" in text(refused)
    fields["waitlist_offer_minutes"] = "45"
    assert coach.post(path, data=fields).status_code == 303
    tenancy.activate(group.org.id)
    db.session.refresh(group.offering)
    assert (group.offering.waitlist_mode, group.offering.waitlist_offer_minutes) == ("offer", 45)


def test_a_paid_seat_is_offered_and_taken_through_the_checkout(app, ctx, fake_stripe, quiet, mailbox):
    world = GroupWorld(price_minor=2000, currency="EUR")  # "auto", but nobody is charged without acting
    world.line_up(world.waiting[0])
    world.cancel(world.bookings[0])
    quiet.drain()
    assert statuses(world) == ["offered"]
    browser = logged_in(app, world.waiting[0].user.email)
    assert "Take the seat and pay" in text(browser.get(page_of(world)))
    entry = entry_of(world, world.waiting[0])
    response = form_post(browser, page_of(world), f"/o/{world.org.slug}/waitlist/{entry.id}/accept")
    assert response.status_code == 303 and "cs_" in response.headers["Location"]  # the provider's checkout
    entry = entry_of(world, world.waiting[0])
    held = db.session.get(Booking, entry.booking_id)
    assert (entry.status, held.status) == ("booked", "held")  # the checkout's own hold keeps the seat
    assert seats(world) == (2, 2)


def test_booking_a_seat_kept_for_the_line_is_refused_with_the_way_to_join_it(app, group, job_runner, mailbox):
    """A walk-in who opens the freed time before the line's consumer ran is told the seat is the line's and is
    offered the waitlist; the seat stays free for the first in line, who gets it."""
    walk_in = add_member(group.org, make_user(name="Walt Walk-in"), ATHLETE)
    group.line_up(group.waiting[0])
    browser = logged_in(app, walk_in.user.email)
    start = group.starts_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    path = f"/o/{group.org.slug}/offerings/{group.offering.id}/book"
    with job_runner.paused():
        group.cancel(group.bookings[0])
        response = browser.post(path, data={"csrf_token": token(browser, group.org.slug), "start": start,
                                             "athlete": str(walk_in.id)})
        page = text(response)
        assert response.status_code == 409
        assert "1 athlete is waiting for a seat in this session" in page
        assert f'href="{page_of(group)}"' in page and "Join the waitlist" in page
        assert seats(group) == (1, 2)
        # The week shows the time as full with its waitlist, not as a free seat to book.
        week = (group.starts_at - timedelta(days=group.starts_at.weekday())).date().isoformat()
        calendar = text(browser.get(f"/o/{group.org.slug}/offerings/{group.offering.id}?week={week}"))
        assert "Full · waitlist" in calendar and f'href="{page_of(group)}"' in calendar
        assert "1 left" not in calendar
        # The waitlist page counts the kept seat as taken and lets the walk-in line up behind.
        waitlist_page = text(browser.get(page_of(group)))
        assert "A freed seat is kept for those already in line" in waitlist_page
        assert form_post(browser, page_of(group), page_of(group)).status_code == 303
        job_runner.drain()
    assert statuses(group) == ["booked", "waiting"]
    assert seats(group) == (2, 2)
