"""The calendars page as a coach uses it, without JavaScript and with htmx: connect (the page never waits on the
server), watch the card settle, choose calendars, sync now, read clear errors, disconnect; who may see it, and
the bad input of the issue (private addresses, wrong passwords, servers that never answer or answer garbage)."""
from __future__ import annotations

import html
import re
import socket
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from coach import clock, tenancy
from coach.booking.models import ExternalBusy
from coach.calsync import sync
from coach.calsync.models import CalendarConnection, CalendarSource
from coach.extensions import db
from coach.platform.sealing import seal
from coach.orgs.models import COACH
from tests.booking_support import BookingWorld
from tests.conftest import csrf_from
from tests.factories import add_member, make_user
from tests.test_booking_views import logged_in
from tests.test_calsync_read import serving

HX = {"HX-Request": "true"}


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


class Page:
    def __init__(self, app, world, email: str | None = None):
        tenancy.activate(world.org.id)
        self.world = world
        self.browser = logged_in(app, email or world.coach.user.email)
        self.base = f"/o/{world.org.slug}/coaches/{world.coach.id}/calendars"

    def get(self, path: str = "", headers=None):
        return self.browser.get(self.base + path, headers=headers or {})

    def post(self, path: str = "", headers=None, **data):
        token = csrf_from(text(self.get()))
        return self.browser.post(self.base + path, data={"csrf_token": token, **data}, headers=headers or {})

    def connect(self, url: str, username: str = "coach", password: str = "app-password-123", headers=None):
        return self.post("", headers=headers, server_url=url, username=username, password=password, label="")


def connections(world):
    tenancy.activate(world.org.id)
    db.session.rollback()
    return db.session.scalars(select(CalendarConnection).execution_options(populate_existing=True)).all()


def card_html(page: Page, connection) -> str:
    return text(page.get(f"/{connection.id}", headers=HX))


def test_connecting_shows_connecting_then_the_calendars_then_last_synced(app, ctx, radicale, quiet):
    world = BookingWorld()
    acct = radicale.account("Personal")
    page = Page(app, world)
    assert "Connect a calendar account" in text(page.browser.get(f"/o/{world.org.slug}/calendars"))
    started = time.monotonic()
    answer = page.connect(acct.server_url, acct.username, acct.password)
    assert answer.status_code == 303 and time.monotonic() - started < 2
    shown = text(page.get())
    assert "Connecting…" in shown and acct.password not in shown
    (connection,) = connections(world)
    card = card_html(page, connection)
    assert "<html" not in card and 'hx-trigger="every 2s"' in card  # polls while connecting

    quiet.drain()
    card = card_html(page, connection)
    assert "hx-trigger" not in card  # settled: polling stops
    assert "Personal" in card and 'name="blocks"' in card and "Last synced" in card
    (source,) = db.session.scalars(select(CalendarSource)).all()

    answer = page.post(f"/{connection.id}/choose", headers=HX, blocks=str(source.id), receives=str(source.id))
    assert answer.status_code == 200 and "Syncing…" in text(answer) and 'hx-trigger="every 2s"' in text(answer)
    quiet.drain()
    card = card_html(page, connection)
    assert "Last synced" in card and "just now" in card and "checked" in card

    assert page.post(f"/{connection.id}/sync").status_code == 303
    assert "Syncing…" in text(page.get())
    quiet.drain()
    assert "Syncing…" not in text(page.get())


def test_a_wrong_password_reads_plainly_with_the_time_of_the_failure(app, ctx, radicale, quiet):
    world = BookingWorld()
    acct = radicale.account()
    page = Page(app, world)
    page.connect(acct.server_url, acct.username, "not-my-password")
    quiet.drain()
    shown = text(page.get())
    assert "The server refused the username or app password." in shown
    assert "make a new one and save it here" in shown and "New app password" in shown  # what to do about it
    assert re.search(r"Failed just now \(\w{3} \d{1,2} \w{3}, \d\d:\d\d CES?T\)\.", shown)
    assert re.search(r"Next try \w{3} \d{1,2} \w{3}, \d\d:\d\d CES?T\.", shown)
    assert "not-my-password" not in shown

    # A coach on a 12-hour clock reads the failure and the next try on it.
    tenancy.activate(world.org.id)
    world.coach.user.hour_cycle = 12
    db.session.commit()
    shown = text(Page(app, world).get())
    assert re.search(r"Failed just now \(\w{3} \d{1,2} \w{3}, \d{1,2}:\d\d [ap]m CES?T\)\.", shown)
    assert re.search(r"Next try \w{3} \d{1,2} \w{3}, \d{1,2}:\d\d [ap]m CES?T\.", shown)


def test_a_server_that_never_answers_fails_within_the_timeout_and_the_page_stays_fast(app, ctx, quiet,
                                                                                       monkeypatch):
    monkeypatch.setitem(app.config, "CALSYNC_TIMEOUT_SECONDS", 1)
    world = BookingWorld()
    page = Page(app, world)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        started = time.monotonic()
        assert page.connect(f"http://127.0.0.1:{listener.getsockname()[1]}/").status_code == 303
        assert time.monotonic() - started < 1
        started = time.monotonic()
        quiet.drain(timeout=30)
        assert time.monotonic() - started < 10
    finally:
        listener.close()
    assert "127.0.0.1 did not answer within 1 s." in text(page.get())
    (connection,) = connections(world)
    assert connection.status == "failing"


def test_a_server_answering_garbage_is_a_clear_error(app, ctx, quiet):
    world = BookingWorld()
    page = Page(app, world)
    with serving(207, "<multistatus><oops", "application/xml") as url:
        page.connect(url)
        quiet.drain()
    shown = text(page.get())
    assert "not valid CalDAV" in shown
    assert "New app password" not in shown  # the password form is for refused passwords only


@pytest.mark.parametrize("url, message", [
    ("http://127.0.0.1:5232/", "private or local address"),
    ("http://169.254.169.254/latest/", "private or local address"),
    ("file:///etc/passwd", "starting with https://"),
    ("https://coach:secret@example.com/", "in their own fields"),
])
def test_addresses_coach_does_not_fetch_are_refused_on_the_form(app, ctx, quiet, monkeypatch, url, message):
    monkeypatch.setitem(app.config, "CALSYNC_ALLOW_PRIVATE_ADDRESSES", False)
    world = BookingWorld()
    page = Page(app, world)
    for headers in ({}, HX):
        answer = page.connect(url, headers=headers)
        assert answer.status_code == 422 and message in text(answer)
        assert "app-password-123" not in text(answer)
    assert connections(world) == []


def test_missing_fields_are_named_and_nothing_is_written(app, ctx, quiet):
    world = BookingWorld()
    page = Page(app, world)
    answer = page.post("", server_url="", username="", password="")
    assert answer.status_code == 422
    for message in ("Enter the server's address.", "Enter the user name.", "Enter an app password."):
        assert message in text(answer)
    assert page.post("", server_url="x" * 2000, username="u", password="p").status_code == 422
    assert connections(world) == []


def test_choosing_a_calendar_of_another_connection_is_refused(app, ctx, radicale, quiet):
    world = BookingWorld()
    page = Page(app, world)
    first, second = radicale.account(), radicale.account()
    page.connect(first.server_url, first.username, first.password)
    page.connect(second.server_url, second.username, second.password)
    quiet.drain()
    one, two = connections(world)
    theirs = db.session.scalar(select(CalendarSource).where(CalendarSource.connection_id == two.id))
    answer = page.post(f"/{one.id}/choose", blocks=str(theirs.id))
    assert answer.status_code == 422
    assert db.session.scalar(select(func.count()).select_from(CalendarSource)
                             .where(CalendarSource.blocks_time.is_(True))) == 0


def test_sync_now_pressed_again_at_once_is_refused_with_the_wait_and_asks_the_server_nothing(app, ctx, radicale,
                                                                                              quiet):
    world = BookingWorld()
    page = Page(app, world)
    for name in ("Home", "Work"):
        acct = radicale.account(name)
        page.connect(acct.server_url, acct.username, acct.password)
    quiet.drain()
    one, two = connections(world)
    assert page.post(f"/{one.id}/sync").status_code == 303
    def again_of(connection):
        return next(c for c in connections(world) if c.id == connection.id)

    asked = again_of(one).sync_requested_at

    again = page.post(f"/{one.id}/sync")  # without JavaScript: the page, with the wait
    assert again.status_code == 429 and int(again.headers["Retry-After"]) >= 1
    wait = re.search(r"Sync now works again in (\d+) s", text(again))
    assert wait and 1 <= int(wait.group(1)) <= 30 and "<html" in text(again)
    swapped = page.post(f"/{one.id}/sync", headers={**HX, "HX-Target": f"connection-{one.id}"})
    assert swapped.status_code == 422 and "<html" not in text(swapped)  # htmx swaps the card, message and all
    assert "Sync now works again in" in text(swapped) and f'id="connection-{one.id}"' in text(swapped)
    assert again_of(one).sync_requested_at == asked  # no second sync was asked for
    quiet.drain()
    assert again_of(one).last_synced_at >= asked  # the one accepted press synced

    # The limit is per connection: the other account syncs at once.
    assert page.post(f"/{two.id}/sync").status_code == 303


def test_a_revoked_app_password_is_replaced_on_the_card_and_the_chosen_calendars_stay(app, ctx, radicale, quiet,
                                                                                        owner_db):
    world = BookingWorld()
    acct = radicale.account("Personal")
    page = Page(app, world)
    page.connect(acct.server_url, acct.username, acct.password)
    quiet.drain()
    (connection,) = connections(world)
    (source,) = db.session.scalars(select(CalendarSource)).all()
    page.post(f"/{connection.id}/choose", headers=HX, blocks=str(source.id), receives="")
    quiet.drain()
    card = card_html(page, connection)
    assert "New app password" not in card  # nothing to fix while it works

    # The app password is revoked: the sync fails with the server's refusal and the card asks for a new one.
    tenancy.activate(world.org.id)
    db.session.execute(update(CalendarConnection).where(CalendarConnection.id == connection.id)
                       .values(secret_sealed=seal("revoked-password")))
    db.session.commit()
    tenancy.activate(world.org.id)
    assert sync.run(world.org.id, connection.id) == "failed"
    card = card_html(page, connection)
    assert "The server refused the username or app password." in card and "New app password" in card

    empty = page.post(f"/{connection.id}/password", headers={**HX, "HX-Target": f"connection-{connection.id}"},
                      password="")
    assert empty.status_code == 422 and "Enter the new app password." in text(empty)
    assert f'id="connection-{connection.id}"' in text(empty) and "<html" not in text(empty)
    without_js = page.post(f"/{connection.id}/password", password="")
    assert without_js.status_code == 422 and "Enter the new app password." in text(without_js)

    saved = page.post(f"/{connection.id}/password", password=acct.password)
    assert saved.status_code == 303
    assert "Syncing…" in text(page.get())
    quiet.drain()
    (connection,) = connections(world)
    assert connection.status == "ok" and connection.failures == 0
    (source,) = db.session.scalars(select(CalendarSource).execution_options(populate_existing=True)).all()
    assert source.blocks_time  # chosen before, still chosen
    card = card_html(page, connection)
    assert "refused" not in card and "New app password" not in card and acct.password not in card
    owner_db.execute("SELECT set_config('app.tenant_id', %s, false)", (str(world.org.id),))
    trail = [row[0] for row in owner_db.execute(
        "SELECT action || ' ' || details::text FROM audit_events ORDER BY created_at").fetchall()]
    changed = [entry for entry in trail if entry.startswith("calendar.password_changed")]
    assert len(changed) == 1 and acct.password not in " ".join(trail)


def test_disconnect_removes_the_connection(app, ctx, radicale, quiet):
    world = BookingWorld()
    acct = radicale.account()
    page = Page(app, world)
    page.connect(acct.server_url, acct.username, acct.password)
    quiet.drain()
    (connection,) = connections(world)
    connection_id = connection.id
    assert page.post(f"/{connection_id}/disconnect").status_code == 303
    assert connections(world) == []
    assert "No calendar connected" in text(page.get())
    assert page.get(f"/{connection_id}", headers=HX).status_code == 404


def test_who_may_see_a_coachs_calendars(app, ctx, radicale, quiet):
    world, other = BookingWorld(), BookingWorld()
    acct = radicale.account()
    page = Page(app, world)
    page.connect(acct.server_url, acct.username, acct.password)
    (connection,) = connections(world)
    coach_id, connection_id = world.coach.id, connection.id
    # The organization's scheduler manages the coach's calendar; another coach of it may not.
    tenancy.activate(world.org.id)
    scheduler = logged_in(app, world.scheduler.user.email)
    assert scheduler.get(page.base).status_code == 200
    colleague = add_member(world.org, make_user("colleague@example.com"), COACH)
    assert logged_in(app, colleague.user.email).get(page.base).status_code == 403
    # Another organization's coach: the coach, the connection and its card are not there (404).
    tenancy.activate(other.org.id)
    stranger = logged_in(app, other.coach.user.email)
    assert stranger.get(f"/o/{other.org.slug}/coaches/{coach_id}/calendars").status_code == 404
    assert stranger.get(f"/o/{other.org.slug}/coaches/{other.coach.id}/calendars/{connection_id}",
                        headers=HX).status_code == 404
    assert stranger.get(page.base).status_code == 404
    assert "No calendar connected" in text(stranger.get(f"/o/{other.org.slug}/calendars"))
    # An athlete has no calendars page.
    tenancy.activate(world.org.id)
    assert logged_in(app, world.athlete.user.email).get(f"/o/{world.org.slug}/calendars").status_code == 403


def test_events_that_cannot_be_read_are_counted_on_the_card_and_the_rest_still_blocks(app, ctx, quiet):
    world = BookingWorld()
    page = Page(app, world)
    start = (clock.now() + timedelta(days=3)).replace(microsecond=0)
    good = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:ok\r\nDTSTAMP:20261201T000000Z\r\n"
            f"DTSTART:{start:%Y%m%dT%H%M%SZ}\r\nDURATION:PT1H\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    broken = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:not-a-time\r\nEND:VCALENDAR\r\n"
    entries = "".join(
        f"<d:response><d:href>/cal/{n}.ics</d:href><d:propstat><d:prop><d:getetag>\"{n}\"</d:getetag>"
        f"<c:calendar-data>{data}</c:calendar-data></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>"
        "</d:response>" for n, data in enumerate((good, broken, broken)))
    body = ('<?xml version="1.0"?><d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">'
            f"{entries}<d:sync-token>t1</d:sync-token></d:multistatus>")
    with serving(207, body) as url:
        page.connect(url)
        (connection,) = connections(world)
        connection.status, connection.last_synced_at = "ok", clock.now()
        db.session.add(CalendarSource(id=uuid.uuid4(), tenant_id=world.org.id, connection_id=connection.id,
                                      url=url + "cal/", display_name="Work", blocks_time=True))
        db.session.commit()
        assert sync.run(world.org.id, connection.id) == "synced"
    assert "2 events could not be read" in text(page.get())
    tenancy.activate(world.org.id)
    assert [(row.starts_at, row.ends_at) for row in db.session.scalars(select(ExternalBusy))] == [
        (start, start + timedelta(hours=1))]
