"""Bookings written into the coach's own calendar, against a real CalDAV server (Radicale).

Events go the real way (outbox → relay → RQ worker), drained from the test's thread; what a test reads back is
what the coach's phone would show: the events on the server, parsed with ``icalendar``.
"""
from __future__ import annotations

import html
import socket
import subprocess
import sys
import time
from datetime import timedelta

import icalendar
import pytest
import requests
from sqlalchemy import select

from coach import clock, tenancy
from coach.booking import service
from coach.booking.models import Booking
from coach.calsync import push, push_jobs
from coach.calsync import service as calendars
from coach.calsync.models import CalendarConnection, CalendarPush, CalendarSource
from coach.extensions import db
from coach.platform.sealing import seal
from coach.orgs.models import ATHLETE
from tests.booking_support import BookingWorld
from tests.conftest import Auth
from tests.factories import add_member, make_user
from tests.outbox_support import closed_port


def connect(world: BookingWorld, acct, server_url: str | None = None, calendar_url: str | None = None,
            receives: bool = True) -> CalendarSource:
    """The coach's connection to ``acct`` with its calendar chosen to receive bookings (as slice A's page leaves
    them)."""
    tenancy.activate(world.org.id)
    connection = CalendarConnection(tenant_id=world.org.id, coach_membership_id=world.coach.id, label="Phone",
                                    server_url=server_url or acct.server_url, username=acct.username,
                                    secret_sealed=seal(acct.password), status="ok")
    db.session.add(connection)
    db.session.flush()
    source = CalendarSource(tenant_id=world.org.id, connection_id=connection.id,
                            url=calendar_url or acct.calendar_url, display_name="Personal",
                            receives_bookings=receives)
    db.session.add(source)
    db.session.commit()
    return source


def deliver(job_runner) -> None:
    with job_runner.paused():
        job_runner.drain(timeout=30)
    db.session.expire_all()


def events_on_server(acct) -> list[icalendar.Event]:
    found = []
    for resource in acct.events():
        found += [c for c in icalendar.Calendar.from_ical(resource.data).walk("VEVENT")]
    return found


def only_event(acct) -> icalendar.Event:
    events = events_on_server(acct)
    assert len(events) == 1, [str(e.get("summary")) for e in events]
    return events[0]


def book(world: BookingWorld, days_ahead: int = 2) -> Booking:
    slot = world.first_slot(days_ahead)
    tenancy.activate(world.org.id)
    booking = service.request_booking(world.offering, world.athlete, slot.starts_at, "Bring the new racket",
                                      world.athlete)
    db.session.commit()
    return booking


def reschedule(world: BookingWorld, booking: Booking, days_ahead: int = 3) -> Booking:
    tenancy.activate(world.org.id)
    booking = db.session.get(Booking, booking.id)
    new = service.reschedule_booking(booking, world.first_slot(days_ahead).starts_at, world.coach,
                                     by_manager=True)
    db.session.commit()
    return new


def act(world: BookingWorld, booking: Booking, action: str, actor=None) -> Booking:
    tenancy.activate(world.org.id)
    booking = db.session.get(Booking, booking.id)
    service.transition(booking, action, actor or world.coach)
    db.session.commit()
    return booking


def push_row(source: CalendarSource, uid: str) -> CalendarPush | None:
    return db.session.scalar(select(CalendarPush).where(CalendarPush.source_id == source.id,
                                                        CalendarPush.uid == uid))


@pytest.fixture()
def world(app, quiet, ctx):
    return BookingWorld(auto_confirm=True)


def test_a_confirmed_booking_appears_as_an_event_in_the_coachs_calendar(world, radicale, quiet, app):
    acct = radicale.account()
    source = connect(world, acct)
    booking = book(world)
    deliver(quiet)

    event = only_event(acct)
    assert str(event["uid"]) == booking.uid
    assert event.decoded("dtstart") == booking.starts_at
    assert event.decoded("dtend") == booking.ends_at
    assert str(event["summary"]) == "Technique session with Arno Athlete"
    assert str(event["location"]) == "Court 1"
    assert str(event["status"]) == "CONFIRMED"
    assert str(event["transp"]) == "OPAQUE"
    assert int(event["sequence"]) == booking.calendar_sequence
    link = f"{app.config['APP_BASE_URL']}/o/{world.org.slug}/bookings/{booking.id}"
    assert link in str(event["description"]) and "Bring the new racket" in str(event["description"])
    row = push_row(source, booking.uid)
    assert row.state == "present" and row.etag and row.href.startswith(acct.calendar_url)


def test_a_request_is_a_tentative_event_until_the_coach_confirms_it(app, quiet, ctx, radicale):
    world = BookingWorld(auto_confirm=False)
    acct = radicale.account()
    connect(world, acct)
    booking = book(world)
    deliver(quiet)
    event = only_event(acct)
    assert str(event["status"]) == "TENTATIVE"
    assert str(event["summary"]) == "Requested: Technique session with Arno Athlete"
    first_sequence = int(event["sequence"])

    act(world, booking, "confirm")
    deliver(quiet)
    event = only_event(acct)
    assert str(event["status"]) == "CONFIRMED" and str(event["summary"]).startswith("Technique session")
    assert int(event["sequence"]) > first_sequence


def test_a_held_booking_writes_nothing(world, radicale, quiet):
    acct = radicale.account()
    source = connect(world, acct)
    tenancy.activate(world.org.id)
    booking = service.request_booking(world.offering, world.athlete, world.first_slot().starts_at, "", world.athlete,
                                      hold_minutes=15)
    db.session.commit()
    deliver(quiet)
    assert events_on_server(acct) == [] and push_row(source, booking.uid) is None


def test_a_reschedule_updates_the_same_event_with_a_higher_sequence(world, radicale, quiet):
    acct = radicale.account()
    source = connect(world, acct)
    booking = book(world)
    deliver(quiet)
    before = only_event(acct)

    moved = reschedule(world, booking)
    deliver(quiet)
    after = only_event(acct)
    assert str(after["uid"]) == str(before["uid"]) == booking.uid == moved.uid
    assert int(after["sequence"]) > int(before["sequence"])
    assert after.decoded("dtstart") == moved.starts_at != booking.starts_at
    row = push_row(source, booking.uid)
    assert row.booking_id == moved.id and row.sequence == moved.calendar_sequence and row.state == "present"


def test_cancelling_removes_the_event(world, radicale, quiet):
    acct = radicale.account()
    source = connect(world, acct)
    booking = book(world)
    deliver(quiet)
    assert len(events_on_server(acct)) == 1

    act(world, booking, "cancel", world.athlete)
    deliver(quiet)
    assert events_on_server(acct) == []
    row = push_row(source, booking.uid)
    assert row.state == "removed" and row.href is None


def test_reconciling_again_changes_nothing(world, radicale, quiet):
    acct = radicale.account()
    source = connect(world, acct)
    booking = book(world)
    deliver(quiet)
    href = push_row(source, booking.uid).href
    etag = acct.client().request(href, "HEAD").headers["ETag"]

    tenancy.activate(world.org.id)
    assert push.reconcile(source.id, booking.uid) == "unchanged"
    db.session.commit()
    assert acct.client().request(href, "HEAD").headers["ETag"] == etag
    act(world, booking, "cancel", world.athlete)
    deliver(quiet)
    tenancy.activate(world.org.id)
    assert push.reconcile(source.id, booking.uid) == "unchanged"
    db.session.commit()
    assert events_on_server(acct) == []


def test_events_delivered_out_of_order_still_end_with_the_one_right_event(world, radicale, quiet, owner_db):
    acct = radicale.account()
    source = connect(world, acct)
    booking = book(world)
    deliver(quiet)

    moved = reschedule(world, booking)
    payloads = {row[0]: row[1] for row in owner_db.execute(
        "SELECT topic, payload FROM outbox_events WHERE topic IN ('booking.cancelled', 'booking.confirmed')")}
    owner_db.execute("DELETE FROM outbox_events")
    assert payloads["booking.cancelled"]["booking_id"] == str(booking.id)

    # The new booking's confirmation is handled first, the old booking's cancellation last.
    for topic in ("booking.confirmed", "booking.cancelled"):
        tenancy.activate(world.org.id)
        push_jobs.booking_changed(payloads[topic])
        db.session.commit()
        deliver(quiet)
    event = only_event(acct)
    assert event.decoded("dtstart") == moved.starts_at and str(event["uid"]) == booking.uid
    assert push_row(source, booking.uid).state == "present"


def _edit_on_the_phone(acct, href: str, summary: str, shift: timedelta) -> None:
    data = icalendar.Calendar.from_ical(acct.client().request(href, "GET").raw)
    event = next(iter(data.walk("VEVENT")))
    start, end = event.decoded("dtstart") + shift, event.decoded("dtend") + shift
    for name, value in (("summary", summary), ("dtstart", start), ("dtend", end)):
        del event[name]
        event.add(name, value)
    answer = acct.client().put(href, data.to_ical().decode(), {"Content-Type": "text/calendar"})
    assert answer.status in (200, 201, 204)


def test_an_event_moved_on_the_phone_is_written_back_at_coachs_next_change(world, radicale, quiet, app):
    """The rule: Coach's booking decides the time. The coach's edit stays until Coach changes the booking; then
    Coach re-reads the event and overwrites it, and records that it did."""
    acct = radicale.account()
    source = connect(world, acct)
    booking = book(world)
    deliver(quiet)
    href = push_row(source, booking.uid).href
    _edit_on_the_phone(acct, href, "Moved on my phone", timedelta(hours=3))

    moved = reschedule(world, booking)
    deliver(quiet)
    event = only_event(acct)
    assert str(event["summary"]) == "Technique session with Arno Athlete"
    assert event.decoded("dtstart") == moved.starts_at
    row = push_row(source, booking.uid)
    assert row.state == "present" and row.overwritten_at is not None and row.last_error is None
    tenancy.activate(world.org.id)
    state = push.states([source.connection_id])[source.connection_id]
    assert state.overwritten == 1 and state.failed == 0 and state.message is None
    assert "was changed in your calendar app; Coach wrote the booking's time back" in calendars_page(app, world)


def test_an_event_deleted_on_the_phone_comes_back_at_coachs_next_change(app, quiet, ctx, radicale):
    world = BookingWorld(auto_confirm=False)
    acct = radicale.account()
    source = connect(world, acct)
    booking = book(world)
    deliver(quiet)
    acct.client().delete(push_row(source, booking.uid).href)
    assert events_on_server(acct) == []

    act(world, booking, "confirm")
    deliver(quiet)
    event = only_event(acct)
    assert str(event["status"]) == "CONFIRMED" and str(event["uid"]) == booking.uid


def _radicale_on(radicale, port: int) -> subprocess.Popen:
    """A second Radicale process serving the session server's accounts on ``port`` (the coach's server "back")."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "radicale", "--server-hosts", f"127.0.0.1:{port}",
         "--storage-filesystem-folder", str(radicale.folder / "collections"),
         "--auth-type", "htpasswd", "--auth-htpasswd-filename", str(radicale.users),
         "--auth-htpasswd-encryption", "plain", "--auth-delay", "0", "--rights-type", "owner_only",
         "--logging-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=1)
            return proc
        except requests.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the second Radicale did not start")


def calendars_page(app, world) -> str:
    """The coach's calendars page, as the coach sees it."""
    browser = app.test_client()
    assert Auth(browser).login(world.coach.user.email).status_code == 303
    answer = browser.get(f"/o/{world.org.slug}/coaches/{world.coach.id}/calendars")
    assert answer.status_code == 200
    return html.unescape(answer.get_data(as_text=True))


def test_a_server_that_is_down_never_blocks_the_booking_and_gets_the_event_once_it_is_back(world, radicale, quiet,
                                                                                          app):
    acct = radicale.account()
    port = closed_port()
    base = f"http://127.0.0.1:{port}/"
    source = connect(world, acct, server_url=base, calendar_url=acct.calendar_url.replace(radicale.url, base))
    booking = book(world)
    assert booking.status == "confirmed"
    deliver(quiet)

    row = push_row(source, booking.uid)
    assert row.state == "failed" and "could not be reached" in row.last_error and row.attempts == 1
    tenancy.activate(world.org.id)
    state = push.states([source.connection_id])[source.connection_id]
    assert state.message.startswith("1 booking could not be written to the calendar: 127.0.0.1 could not be")
    assert state.message in calendars_page(app, world)
    # Not due again before its back-off; due after it, for the sweep (which runs for no organization).
    assert push.due() == []
    later = clock.now() + timedelta(minutes=3)
    assert world.org.id in push.due_tenants(later)

    proc = _radicale_on(radicale, port)
    try:
        tenancy.activate(world.org.id)
        assert push.run_many(push.due(later), later) == {"written": 1}
        db.session.commit()
    finally:
        proc.terminate()
        proc.wait(10)
    event = only_event(acct)
    assert str(event["uid"]) == booking.uid
    row = push_row(source, booking.uid)
    assert row.state == "present" and row.last_error is None and row.attempts == 0
    page = calendars_page(app, world)
    assert "could not be written" not in page and "1 booking written to your calendar." in page


def test_a_calendar_gone_from_the_server_is_a_clear_failure_not_an_error(world, radicale, quiet):
    acct = radicale.account()
    source = connect(world, acct, calendar_url=acct.calendar_url.rstrip("/") + "-deleted/")
    booking = book(world)
    deliver(quiet)
    row = push_row(source, booking.uid)
    assert row.state == "failed" and "the calendar may have been deleted or be read-only" in row.last_error
    assert db.session.get(Booking, booking.id).status == "confirmed"


def test_another_organizations_bookings_never_reach_this_coachs_calendar(world, radicale, quiet):
    acct = radicale.account()
    source = connect(world, acct)
    connection_id = source.connection_id
    other = BookingWorld(auto_confirm=True)
    book(other)
    deliver(quiet)
    assert events_on_server(acct) == []

    mine = book(world)
    deliver(quiet)
    assert [str(e["uid"]) for e in events_on_server(acct)] == [mine.uid]
    tenancy.activate(other.org.id)
    assert db.session.scalars(select(CalendarPush)).all() == []
    assert push.states([connection_id])[connection_id].written == 0
    tenancy.activate(world.org.id)
    assert [p.booking_id for p in db.session.scalars(select(CalendarPush))] == [mine.id]


def test_choosing_a_calendar_writes_the_upcoming_bookings_and_unchoosing_removes_them(world, radicale, quiet):
    acct = radicale.account()
    source = connect(world, acct, receives=False)
    first, second = book(world, 2), book(world, 3)
    past_cancelled = book(world, 4)
    act(world, past_cancelled, "cancel", world.athlete)
    deliver(quiet)
    assert events_on_server(acct) == []

    tenancy.activate(world.org.id)
    connection = db.session.get(CalendarConnection, source.connection_id)
    calendars.choose_calendars(connection, set(), source.id, world.coach)
    db.session.commit()
    deliver(quiet)
    assert sorted(str(e["uid"]) for e in events_on_server(acct)) == sorted([first.uid, second.uid])

    tenancy.activate(world.org.id)
    connection = db.session.get(CalendarConnection, source.connection_id)
    calendars.choose_calendars(connection, set(), None, world.coach)
    db.session.commit()
    deliver(quiet)
    assert events_on_server(acct) == []
    tenancy.activate(world.org.id)
    assert db.session.scalars(select(CalendarPush).where(CalendarPush.source_id == source.id)).all() == []


def test_a_group_session_is_one_event_naming_its_athletes(app, quiet, ctx, radicale):
    world = BookingWorld(auto_confirm=True, capacity=3, title="Group clinic")
    bea = add_member(world.org, make_user(f"bea-{id(world)}@example.com", "Bea Berg"), ATHLETE)
    acct = radicale.account()
    connect(world, acct)
    start = world.first_slot().starts_at
    tenancy.activate(world.org.id)
    arno_place = service.request_booking(world.offering, world.athlete, start, "", world.athlete)
    bea_place = service.request_booking(world.offering, bea, start, "", bea)
    db.session.commit()
    deliver(quiet)
    event = only_event(acct)
    assert str(event["summary"]) == "Group clinic with Arno Athlete and Bea Berg"
    assert str(event["uid"]) == f"session-{arno_place.session_id}@coach" and event.decoded("dtstart") == start
    sequence = int(event["sequence"])

    act(world, arno_place, "cancel", world.athlete)
    deliver(quiet)
    event = only_event(acct)
    assert str(event["summary"]) == "Group clinic with Bea Berg" and int(event["sequence"]) > sequence

    act(world, bea_place, "cancel", bea)
    deliver(quiet)
    assert events_on_server(acct) == []


def test_a_server_that_never_answers_fails_the_push_within_the_timeout(world, radicale, quiet, monkeypatch, app):
    acct = radicale.account()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # the kernel accepts; nobody ever reads or answers
    base = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    monkeypatch.setitem(app.config, "CALSYNC_TIMEOUT_SECONDS", 1.0)
    try:
        source = connect(world, acct, server_url=base, calendar_url=acct.calendar_url.replace(radicale.url, base))
        booking = book(world)
        assert booking.status == "confirmed"  # the booking never waits on the calendar
        started = time.monotonic()
        deliver(quiet)
        assert time.monotonic() - started < 15
    finally:
        listener.close()
    row = push_row(source, booking.uid)
    assert row.state == "failed" and row.last_error == "127.0.0.1 did not answer within 1 s."


def test_a_wrong_app_password_fails_with_its_message_and_the_sweep_asks_that_server_once(world, radicale, quiet):
    acct = radicale.account()
    real_password, acct.password = acct.password, "not-the-app-password"
    source = connect(world, acct)
    first, second = book(world, 2), book(world, 3)
    deliver(quiet)
    for booking in (first, second):
        row = push_row(source, booking.uid)
        assert row.state == "failed" and row.last_error.startswith("The server refused the username or app password")
    tenancy.activate(world.org.id)
    later = clock.now() + timedelta(minutes=3)
    assert len(push.due(later)) == 2
    assert push.run_many(push.due(later), later) == {"failed": 1}  # the second is not tried in the same run
    db.session.commit()
    acct.password = real_password
    assert events_on_server(acct) == []
