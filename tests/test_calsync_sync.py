"""Calendar sync end to end against the real Radicale: an event the coach adds on their phone removes the slots it
overlaps (and refuses a booking for them), deleting it brings them back, a failing server is recorded and retried
later without touching another connection, disconnecting gives the time back, and another organization sees none
of it."""
from __future__ import annotations

import socket
import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text, update

from coach import clock, tenancy
from coach.booking import service as booking
from coach.booking.errors import BookingError
from coach.booking.models import ExternalBusy
from coach.calsync import jobs, service, sync
from coach.calsync.models import CalendarConnection, CalendarSource
from coach.extensions import db
from tests.booking_support import BookingWorld

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")


def berlin(days_ahead: int, hour: int, minute: int = 0) -> datetime:
    day = (clock.now().astimezone(BERLIN) + timedelta(days=days_ahead)).date()
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=BERLIN).astimezone(UTC)


def ical(start: datetime, end: datetime, extra: str = "", uid: str | None = None) -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//phone//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid or uuid.uuid4()}\r\nDTSTAMP:20261201T000000Z\r\n"
            f"DTSTART:{start.strftime('%Y%m%dT%H%M%SZ')}\r\nDTEND:{end.strftime('%Y%m%dT%H%M%SZ')}\r\n"
            f"{extra}END:VEVENT\r\nEND:VCALENDAR\r\n")


def connect(world, server_url: str, username: str = "coach", password: str = "app-password"):
    tenancy.activate(world.org.id)
    connection = service.connect(world.coach, server_url, username, password, "Phone", world.coach)
    db.session.commit()
    return connection


def run_sync(world, connection, discover: bool = False) -> str:
    tenancy.activate(world.org.id)
    return sync.run(world.org.id, connection.id, discover)


def block_all(world, connection):
    tenancy.activate(world.org.id)
    sources = service.sources_of(connection)
    service.choose_calendars(connection, {s.id for s in sources}, None, world.coach)
    db.session.commit()


def connected(world, acct):
    """A connection to ``acct`` whose calendars block time, synced once."""
    connection = connect(world, acct.server_url, acct.username, acct.password)
    assert run_sync(world, connection) == "synced"
    block_all(world, connection)
    assert run_sync(world, connection) == "synced"
    return connection


def slots_between(world, lo: datetime, hi: datetime):
    tenancy.activate(world.org.id)
    return [slot.starts_at for slot in booking.available_slots(world.offering, lo, hi)]


def reload(connection) -> CalendarConnection:
    db.session.rollback()
    return db.session.scalar(select(CalendarConnection).where(CalendarConnection.id == connection.id)
                             .execution_options(populate_existing=True))


def test_connecting_saves_a_pending_connection_with_the_password_sealed(ctx, radicale, quiet):
    world = BookingWorld()
    acct = radicale.account("Personal")
    connection = connect(world, acct.server_url, acct.username, acct.password)
    assert connection.status == "pending" and connection.secret_sealed and acct.password not in connection.secret_sealed
    tenancy.activate(world.org.id)
    dumped = " ".join(db.session.scalars(text(
        "SELECT c::text FROM calendar_connections c UNION ALL SELECT a::text FROM audit_events a")))
    assert acct.password not in dumped
    assert "calendar.connected" in dumped
    assert run_sync(world, connection) == "synced"
    connection = reload(connection)
    assert connection.status == "ok" and connection.last_synced_at is not None
    assert [(s.display_name, s.blocks_time) for s in service.sources_of(connection)] == [("Personal", False)]


def test_an_event_on_the_phone_removes_the_slots_it_overlaps_and_deleting_it_brings_them_back(ctx, radicale, quiet):
    world = BookingWorld()
    acct = radicale.account()
    connection = connected(world, acct)
    lo, hi = berlin(3, 0), berlin(4, 0)
    before = slots_between(world, lo, hi)
    dentist_from, dentist_to = berlin(3, 10), berlin(3, 11, 30)
    assert dentist_from in before
    event = acct.put(ical(dentist_from, dentist_to))
    assert run_sync(world, connection) == "synced"

    after = slots_between(world, lo, hi)
    hour = timedelta(hours=1)
    assert all(not (start < dentist_to and start + hour > dentist_from) for start in after)
    assert berlin(3, 9) in after and berlin(3, 12) in after
    # A booking for that time is refused too (request_booking checks the slots again).
    tenancy.activate(world.org.id)
    with pytest.raises(BookingError):
        booking.request_booking(world.offering, world.athlete, dentist_from, "", world.athlete)
    db.session.rollback()

    source = db.session.scalar(select(CalendarSource).where(CalendarSource.connection_id == connection.id))
    token = source.sync_token
    event.delete()
    assert run_sync(world, connection) == "synced"  # incremental: the token of the last sync
    assert slots_between(world, lo, hi) == before
    source = db.session.scalar(select(CalendarSource).where(CalendarSource.id == source.id)
                               .execution_options(populate_existing=True))
    assert source.sync_token and source.sync_token != token


def test_transparent_events_do_not_block(ctx, radicale, quiet):
    world = BookingWorld()
    acct = radicale.account()
    connection = connected(world, acct)
    lo, hi = berlin(3, 0), berlin(4, 0)
    before = slots_between(world, lo, hi)
    acct.put(ical(berlin(3, 10), berlin(3, 12), "TRANSP:TRANSPARENT\r\n"))
    run_sync(world, connection)
    assert slots_between(world, lo, hi) == before


def test_a_calendar_not_chosen_does_not_block_and_unchoosing_gives_the_time_back(ctx, radicale, quiet):
    world = BookingWorld()
    acct = radicale.account()
    connection = connected(world, acct)
    acct.put(ical(berlin(3, 10), berlin(3, 11)))
    run_sync(world, connection)
    assert berlin(3, 10) not in slots_between(world, berlin(3, 0), berlin(4, 0))
    tenancy.activate(world.org.id)
    service.choose_calendars(reload(connection), set(), None, world.coach)
    db.session.commit()
    assert berlin(3, 10) in slots_between(world, berlin(3, 0), berlin(4, 0))


def test_a_wrong_password_marks_the_connection_failing_and_backs_off(ctx, radicale, quiet):
    world = BookingWorld()
    acct = radicale.account()
    connection = connect(world, acct.server_url, acct.username, "wrong-app-password")
    assert run_sync(world, connection) == "failed"
    connection = reload(connection)
    assert connection.status == "failing" and connection.failures == 1
    assert connection.last_error == "The server refused the username or app password."
    first_wait = connection.next_sync_at - connection.last_error_at
    run_sync(world, connection)
    connection = reload(connection)
    assert connection.failures == 2 and connection.next_sync_at - connection.last_error_at == 2 * first_wait


def test_disconnecting_removes_the_busy_time(ctx, radicale, quiet):
    world = BookingWorld()
    acct = radicale.account()
    connection = connected(world, acct)
    acct.put(ical(berlin(3, 10), berlin(3, 11)))
    run_sync(world, connection)
    assert db.session.scalars(select(ExternalBusy)).all()
    tenancy.activate(world.org.id)
    service.disconnect(reload(connection), world.coach)
    db.session.commit()
    assert db.session.scalars(select(ExternalBusy)).all() == []
    assert berlin(3, 10) in slots_between(world, berlin(3, 0), berlin(4, 0))


def test_the_sweep_syncs_due_connections_and_one_failure_stops_no_other(ctx, radicale, quiet):
    world = BookingWorld()
    acct = radicale.account()
    good = connected(world, acct)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/"
    bad = connect(world, closed)
    acct.put(ical(berlin(3, 10), berlin(3, 11)))
    quiet.drain()  # the syncs the pages asked for first
    tenancy.activate(world.org.id)
    past = clock.now() - timedelta(minutes=1)
    db.session.execute(update(CalendarConnection).values(next_sync_at=past))
    db.session.commit()
    assert jobs.sweep_calendars() == 2  # both connections are queued
    quiet.drain()
    tenancy.activate(world.org.id)
    assert reload(bad).status == "failing" and "could not be reached" in reload(bad).last_error
    assert reload(good).status == "ok"
    assert berlin(3, 10) not in slots_between(world, berlin(3, 0), berlin(4, 0))
    # Nothing is due now: a second sweep queues nothing.
    assert jobs.sweep_calendars() == 0


def test_busy_changed_is_emitted_only_when_busy_time_changed(ctx, radicale, quiet, owner_db):
    world = BookingWorld()
    acct = radicale.account()
    connection = connected(world, acct)

    def emitted():
        return owner_db.execute("SELECT count(*) FROM outbox_events WHERE topic = 'calendar.busy_changed'"
                                ).fetchone()[0]

    start = emitted()
    acct.put(ical(berlin(3, 10), berlin(3, 11)))
    run_sync(world, connection)
    assert emitted() == start + 1
    run_sync(world, connection)
    assert emitted() == start + 1


def test_another_organizations_busy_rows_never_reach_this_one(ctx, radicale, quiet):
    ours, theirs = BookingWorld(), BookingWorld()
    acct = radicale.account()
    connection = connected(theirs, acct)
    acct.put(ical(berlin(3, 10), berlin(3, 11)))
    run_sync(theirs, connection)
    their_connection_id = connection.id
    tenancy.activate(ours.org.id)
    assert db.session.scalars(select(ExternalBusy)).all() == []
    assert db.session.scalars(select(CalendarConnection)).all() == []
    assert service.get_connection(ours.coach, their_connection_id) is None
    assert berlin(3, 10) in slots_between(ours, berlin(3, 0), berlin(4, 0))


def test_a_password_sealed_with_a_retired_key_is_a_clear_failure(ctx, radicale, quiet):
    world = BookingWorld()
    acct = radicale.account()
    connection = connect(world, acct.server_url, acct.username, acct.password)
    connection.secret_sealed = "gAAAAA-not-a-token-of-ours"
    db.session.commit()
    assert run_sync(world, connection) == "failed"
    connection = reload(connection)
    assert connection.status == "failing" and "can no longer be read" in connection.last_error


def test_the_app_password_never_reaches_a_log_line_even_at_debug_level(ctx, radicale, quiet, caplog):
    """caldav, requests and urllib3 log requests at DEBUG; neither the password nor the Basic credentials made
    from it may be in what they (or we) write, on success or refusal."""
    import base64
    import logging

    world = BookingWorld()
    acct = radicale.account("Personal")
    wrong = "wrong-app-password-7f3"
    secrets = {acct.password, wrong}
    secrets |= {base64.b64encode(f"{acct.username}:{p}".encode()).decode() for p in (acct.password, wrong)}
    with caplog.at_level(logging.DEBUG):
        connection = connected(world, acct)
        acct.put(ical(berlin(3, 10), berlin(3, 11)))
        assert run_sync(world, connection) == "synced"
        refused = connect(world, acct.server_url, acct.username, wrong)
        assert run_sync(world, refused) == "failed"
    written = "\n".join(f"{record.getMessage()} {record.args!r} {record.exc_text or ''}" for record in caplog.records)
    assert any(record.name.startswith(("caldav", "urllib3")) for record in caplog.records)  # they did log
    for secret in secrets:
        assert secret not in written
