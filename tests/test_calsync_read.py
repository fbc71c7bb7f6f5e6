"""Reading a CalDAV account as the sync job does: calendars, busy occurrences (recurrences across daylight-saving
changes, transparent and cancelled events, all-day events in the coach's zone), incremental sync, and every way a
server can fail (wrong password, closed port, a server that never answers, malformed answers, private addresses).

Against the real Radicale of the fixtures, and tiny local HTTP servers standing for outside servers misbehaving.
"""
from __future__ import annotations

import socket
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from coach.calsync.caldav_read import busy_occurrences
from coach.calsync.netguard import AddressRefused, check_url
from coach.calsync.provider import AuthFailed, Credentials, Malformed, Unreachable, open_provider

UTC = timezone.utc
WINDOW = (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 12, 1, tzinfo=UTC))


def vevent(body: str, uid: str | None = None) -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//phone//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid or uuid.uuid4()}\r\nDTSTAMP:20261201T000000Z\r\n{body.strip()}\r\nEND:VEVENT\r\n"
            "END:VCALENDAR\r\n").replace("\n", "\r\n").replace("\r\r\n", "\r\n")


def provider_for(acct, timeout: float = 5.0, allow_private: bool = True):
    return open_provider("caldav", Credentials(acct.server_url, acct.username, acct.password, timeout=timeout,
                                                allow_private=allow_private))


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- expanding events --------------------------------------------------------------------------------------

def test_weekly_rrule_with_exdate_blocks_the_right_instants_across_both_dst_changes():
    data = vevent("""
DTSTART;TZID=Europe/Berlin:20270315T090000
DTEND;TZID=Europe/Berlin:20270315T100000
RRULE:FREQ=WEEKLY;UNTIL=20271110T000000Z
EXDATE;TZID=Europe/Berlin:20270405T090000
""")
    _, busy = busy_occurrences(data, WINDOW, "Europe/Berlin")
    starts = [start for start, _ in busy]
    # Winter time (UTC+1) before 28 March, summer time (UTC+2) until 31 October, winter again after.
    assert starts[:3] == [utc(2027, 3, 15, 8), utc(2027, 3, 22, 8), utc(2027, 3, 29, 7)]
    assert utc(2027, 4, 5, 7) not in starts  # the EXDATE
    assert utc(2027, 4, 12, 7) in starts
    assert utc(2027, 10, 25, 7) in starts and utc(2027, 11, 1, 8) in starts and utc(2027, 11, 8, 8) in starts
    assert all(end - start == timedelta(hours=1) for start, end in busy)


def test_an_overridden_instance_moves_and_a_cancelled_one_frees_its_time():
    uid = "weekly-tennis@phone"
    data = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n"
            f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261201T000000Z\r\n"
            "DTSTART;TZID=Europe/Berlin:20270104T180000\r\nDTEND;TZID=Europe/Berlin:20270104T190000\r\n"
            "RRULE:FREQ=WEEKLY;COUNT=3\r\nEND:VEVENT\r\n"
            f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261201T000000Z\r\n"
            "RECURRENCE-ID;TZID=Europe/Berlin:20270111T180000\r\n"
            "DTSTART;TZID=Europe/Berlin:20270111T200000\r\nDTEND;TZID=Europe/Berlin:20270111T210000\r\nEND:VEVENT\r\n"
            f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261201T000000Z\r\n"
            "RECURRENCE-ID;TZID=Europe/Berlin:20270118T180000\r\nSTATUS:CANCELLED\r\n"
            "DTSTART;TZID=Europe/Berlin:20270118T180000\r\nDTEND;TZID=Europe/Berlin:20270118T190000\r\nEND:VEVENT\r\n"
            "END:VCALENDAR\r\n")
    _, busy = busy_occurrences(data, WINDOW, "Europe/Berlin")
    assert busy == [(utc(2027, 1, 4, 17), utc(2027, 1, 4, 18)), (utc(2027, 1, 11, 19), utc(2027, 1, 11, 20))]


def test_transparent_cancelled_and_coachs_own_events_are_not_busy():
    for body, uid in (("TRANSP:TRANSPARENT", None), ("STATUS:CANCELLED", None), ("", "booking-42@coach")):
        data = vevent(f"DTSTART:20270110T100000Z\nDTEND:20270110T110000Z\n{body}", uid)
        assert busy_occurrences(data, WINDOW, "UTC")[1] == []


def test_an_all_day_event_blocks_the_whole_day_in_the_coachs_zone():
    data = vevent("DTSTART;VALUE=DATE:20270110\nDTEND;VALUE=DATE:20270111")
    assert busy_occurrences(data, WINDOW, "America/New_York")[1] == [(utc(2027, 1, 10, 5), utc(2027, 1, 11, 5))]


# --- against Radicale --------------------------------------------------------------------------------------

def test_lists_the_accounts_event_calendars(radicale):
    acct = radicale.account("Personal")
    acct.add_calendar("Work")
    names = sorted(calendar.name for calendar in provider_for(acct).list_calendars())
    assert names == ["Personal", "Work"]


def test_a_wrong_app_password_is_auth_failed_with_a_plain_message(radicale):
    acct = radicale.account()
    acct.password = "not-the-password"
    with pytest.raises(AuthFailed) as refused:
        provider_for(acct).list_calendars()
    assert str(refused.value) == "The server refused the username or app password."
    assert "not-the-password" not in str(refused.value)


def test_changes_full_then_incremental_with_a_deletion(radicale):
    acct = radicale.account()
    event = acct.put(vevent("DTSTART:20270110T100000Z\nDTEND:20270110T110000Z"))
    provider = provider_for(acct)
    first = provider.changes(acct.calendar_url, None, WINDOW)
    assert first.full and first.sync_token
    assert [e.occurrences for e in first.events] == [((utc(2027, 1, 10, 10), utc(2027, 1, 10, 11)),)]
    nothing = provider.changes(acct.calendar_url, first.sync_token, WINDOW)
    assert not nothing.full and nothing.events == [] and nothing.removed == []
    href = first.events[0].href
    event.delete()
    gone = provider.changes(acct.calendar_url, nothing.sync_token, WINDOW)
    assert not gone.full and gone.removed == [href]


def test_a_recurring_event_stored_on_the_server_is_expanded_across_the_dst_change(radicale):
    acct = radicale.account()
    acct.put(vevent("""
DTSTART;TZID=Europe/Berlin:20270315T090000
DTEND;TZID=Europe/Berlin:20270315T100000
RRULE:FREQ=WEEKLY;COUNT=5
EXDATE;TZID=Europe/Berlin:20270405T090000
"""))
    (event,) = provider_for(acct).changes(acct.calendar_url, None, WINDOW, "Europe/Berlin").events
    assert [start for start, _ in event.occurrences] == [
        utc(2027, 3, 15, 8), utc(2027, 3, 22, 8), utc(2027, 3, 29, 7), utc(2027, 4, 12, 7)]


def test_a_forgotten_sync_token_falls_back_to_a_full_listing(radicale):
    acct = radicale.account()
    acct.put(vevent("DTSTART:20270110T100000Z\nDTEND:20270110T110000Z"))
    changes = provider_for(acct).changes(acct.calendar_url, "http://radicale.org/ns/sync/unknown", WINDOW)
    assert changes.full and len(changes.events) == 1


def test_a_broken_event_is_skipped_and_counted(radicale):
    acct = radicale.account()
    acct.put(vevent("DTSTART:20270110T100000Z\nDTEND:20270110T110000Z"))
    good = provider_for(acct).changes(acct.calendar_url, None, WINDOW)
    assert good.skipped == 0
    changes = _serve_sync_with(good, "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:garbage\r\nEND:VCALENDAR\r\n")
    assert changes.skipped == 1 and len(changes.events) == 1


def _serve_sync_with(good, broken_ical: str):
    """A server that lists one readable event and one broken one (Radicale refuses to store a broken event)."""
    event = good.events[0]
    ok_ical = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:ok\r\nDTSTAMP:20261201T000000Z\r\n"
               "DTSTART:20270110T100000Z\r\nDTEND:20270110T110000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    body = f"""<?xml version="1.0"?>
<d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">
<d:response><d:href>/cal/ok.ics</d:href><d:propstat><d:prop><d:getetag>"1"</d:getetag>
<c:calendar-data>{ok_ical}</c:calendar-data></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
<d:response><d:href>/cal/bad.ics</d:href><d:propstat><d:prop><d:getetag>"2"</d:getetag>
<c:calendar-data>{broken_ical}</c:calendar-data></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
<d:sync-token>tok-1</d:sync-token></d:multistatus>"""
    assert event.href
    with serving(207, body, "application/xml") as url:
        return open_provider("caldav", Credentials(url, "u", "p", timeout=3, allow_private=True)).changes(
            url + "cal/", None, WINDOW)


# --- servers misbehaving -----------------------------------------------------------------------------------

class serving:
    """A tiny HTTP server on 127.0.0.1 answering every request with one status and body."""

    def __init__(self, status: int, body: str, content_type: str = "application/xml"):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                data = outer.body.encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", outer.content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PROPFIND = do_REPORT = do_OPTIONS = _answer

            def log_message(self, *args):
                pass

        self.status, self.body, self.content_type = status, body, content_type
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    def __enter__(self) -> str:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _credentials(url: str, timeout: float = 3.0) -> Credentials:
    return Credentials(url, "coach", "app-password-secret", timeout=timeout, allow_private=True)


def test_garbage_xml_is_malformed():
    with serving(207, "<d:multistatus xmlns:d='DAV:'><d:response><unclosed>", "application/xml") as url:
        with pytest.raises(Malformed):
            open_provider("caldav", _credentials(url)).changes(url + "cal/", None, WINDOW)
    with serving(207, "<html><body>Welcome to our hosting</body></html>", "text/html") as url:
        with pytest.raises(Malformed):
            open_provider("caldav", _credentials(url)).list_calendars()


def test_a_server_error_is_unreachable():
    with serving(503, "down for maintenance", "text/plain") as url:
        with pytest.raises(Unreachable):
            open_provider("caldav", _credentials(url)).changes(url + "cal/", None, WINDOW)


def test_a_closed_port_is_unreachable_at_once():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(Unreachable) as failed:
        open_provider("caldav", _credentials(f"http://127.0.0.1:{port}/")).list_calendars()
    assert time.monotonic() - started < 3
    assert "127.0.0.1 could not be reached" in str(failed.value)


def test_a_server_that_never_answers_fails_within_the_timeout():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections (the kernel does), never reads or answers
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        started = time.monotonic()
        with pytest.raises(Unreachable) as failed:
            open_provider("caldav", _credentials(url, timeout=1)).list_calendars()
        assert time.monotonic() - started < 5
        assert str(failed.value) == "127.0.0.1 did not answer within 1 s."
    finally:
        listener.close()


# --- where Coach connects ----------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["http://127.0.0.1:5232/", "http://localhost/", "http://10.1.2.3/dav/",
                                 "http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://0.0.0.0/"])
def test_private_and_local_addresses_are_refused(url):
    with pytest.raises(AddressRefused, match="private or local address"):
        check_url(url, allow_private=False)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/", "gopher://x/", "example.com",
                                 "https://user:pw@example.com/"])
def test_only_plain_http_and_https_addresses_are_fetched(url):
    with pytest.raises(AddressRefused):
        check_url(url, allow_private=True)


def test_every_connection_is_checked_even_if_the_name_was_public_before(radicale):
    """The guard checks the address each socket reached (DNS can change between the check and the request)."""
    acct = radicale.account()
    with pytest.raises(AddressRefused, match="private or local address"):
        provider_for(acct, allow_private=False).list_calendars()


# --- a server without sync-collection: calendar-query, and its ctag -------------------------------------------

class query_only_server:
    """A CalDAV calendar at ``/cal/`` that refuses sync-collection (403, as RFC 3253's supported-report says),
    answers calendar-query with its events, and PROPFIND with its ``getctag`` (``None``: the property is
    missing). Counts the calendar-queries, the full reads that cost."""

    def __init__(self, events: dict[str, str], ctag: str | None = "1"):
        self.events, self.ctag, self.queries = events, ctag, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: str):
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_REPORT(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                if "sync-collection" in body:
                    return self._send(403, '<d:error xmlns:d="DAV:"><d:supported-report/></d:error>')
                outer.queries += 1
                listed = "".join(
                    f'<d:response><d:href>/cal/{name}.ics</d:href><d:propstat><d:prop><d:getetag>"{name}"'
                    f"</d:getetag><c:calendar-data>{ical}</c:calendar-data></d:prop>"
                    "<d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"
                    for name, ical in outer.events.items())
                self._send(207, '<?xml version="1.0"?><d:multistatus xmlns:d="DAV:" '
                                f'xmlns:c="urn:ietf:params:xml:ns:caldav">{listed}</d:multistatus>')

            def do_PROPFIND(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                prop = (f"<cs:getctag>{outer.ctag}</cs:getctag>", "200 OK") if outer.ctag else ("<cs:getctag/>",
                                                                                              "404 Not Found")
                self._send(207, '<?xml version="1.0"?><d:multistatus xmlns:d="DAV:" '
                                'xmlns:cs="http://calendarserver.org/ns/"><d:response><d:href>/cal/</d:href>'
                                f"<d:propstat><d:prop>{prop[0]}</d:prop><d:status>HTTP/1.1 {prop[1]}</d:status>"
                                "</d:propstat></d:response></d:multistatus>")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_a_server_without_sync_collection_is_read_by_query_and_not_again_while_its_ctag_holds():
    dentist = vevent("DTSTART:20270110T100000Z\nDTEND:20270110T110000Z")
    fake = query_only_server({"dentist": dentist}, ctag="v1")
    with fake as url:
        reader = open_provider("caldav", _credentials(url))
        first = reader.changes(url + "cal/", None, WINDOW)
        assert first.full and fake.queries == 1
        assert [e.occurrences for e in first.events] == [((utc(2027, 1, 10, 10), utc(2027, 1, 10, 11)),)]

        # Nothing changed on the server: one PROPFIND, no events read, nothing removed.
        again = reader.changes(url + "cal/", first.sync_token, WINDOW)
        assert not again.full and again.events == [] and again.removed == [] and fake.queries == 1
        assert again.sync_token == first.sync_token

        # An event added (the server's ctag moves): everything is read again, the new event with it.
        fake.events["gym"] = vevent("DTSTART:20270111T170000Z\nDTEND:20270111T180000Z")
        fake.ctag = "v2"
        moved = reader.changes(url + "cal/", first.sync_token, WINDOW)
        assert moved.full and fake.queries == 2 and len(moved.events) == 2
        assert moved.sync_token != first.sync_token


def test_a_server_without_sync_collection_or_ctag_is_read_in_full_every_time():
    fake = query_only_server({"dentist": vevent("DTSTART:20270110T100000Z\nDTEND:20270110T110000Z")}, ctag=None)
    with fake as url:
        reader = open_provider("caldav", _credentials(url))
        first = reader.changes(url + "cal/", None, WINDOW)
        assert first.full and first.sync_token is None and len(first.events) == 1
        second = reader.changes(url + "cal/", first.sync_token, WINDOW)
        assert second.full and len(second.events) == 1 and fake.queries == 2
