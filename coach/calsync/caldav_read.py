"""Reading a CalDAV account: its calendars, what changed in one, and the busy occurrences of each event.

What changed comes from one REPORT: RFC 6578 ``sync-collection`` asking for each changed event's ETag and
calendar data (removed events come back as 404 entries), so an incremental sync is one round trip. With no token,
or one the server no longer knows, the same report without a token lists the whole calendar; a server without
sync-collection gets a ``calendar-query`` of every event (``full``), skipped while the calendar's ``getctag`` is the
one the last full read saw. The report is built here rather than with
caldav's ``objects_by_sync_token(load_objects=True)``, which loads each changed event with a GET of its own.

Each event resource is expanded with ``recurring_ical_events`` inside the window (RRULE, RDATE, EXDATE, overridden
instances, daylight-saving changes in the event's own zone). Not busy: TRANSP:TRANSPARENT, STATUS:CANCELLED and
the events Coach wrote itself (UID ending ``@coach``). All-day and floating times are read in the coach's zone.
An event that cannot be read is skipped and counted (``Changes.skipped``); an answer that is not CalDAV at all is
:class:`Malformed`.
"""
from __future__ import annotations

import contextlib
from datetime import date, datetime, time, timedelta
from urllib.parse import unquote, urljoin
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events
import requests
from caldav.lib import error as dav_error
from lxml import etree

from coach.calsync.netguard import AddressRefused, host_of
from coach.calsync.provider import (AuthFailed, BusyEvent, Changes, Malformed, NotFound, ProviderError,
                                    RemoteCalendar, Unreachable)

DAV, CALDAV = "DAV:", "urn:ietf:params:xml:ns:caldav"
OWN_UID_SUFFIX = "@coach"
AUTH_MESSAGE = "The server refused the username or app password."
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_blank_text=True)

_SYNC_REPORT = """<?xml version="1.0" encoding="utf-8"?>
<d:sync-collection xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">
  <d:sync-token>{token}</d:sync-token>
  <d:sync-level>1</d:sync-level>
  <d:prop><d:getetag/><c:calendar-data/></d:prop>
</d:sync-collection>"""

_QUERY_REPORT = """<?xml version="1.0" encoding="utf-8"?>
<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">
  <d:prop><d:getetag/><c:calendar-data/></d:prop>
  <c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT">
    <c:time-range start="{start}" end="{end}"/>
  </c:comp-filter></c:comp-filter></c:filter>
</c:calendar-query>"""


_CTAG_PROPFIND = """<?xml version="1.0" encoding="utf-8"?>
<d:propfind xmlns:d="DAV:" xmlns:cs="http://calendarserver.org/ns/"><d:prop><cs:getctag/></d:prop></d:propfind>"""
CALSERVER = "http://calendarserver.org/ns/"
# The token of a calendar read by calendar-query: its getctag when the full read began. The sync keeps tokens
# opaque; this provider alone knows that one starting so means "no sync-collection here, compare the ctag".
CTAG_TOKEN = "ctag:"


class _SyncUnavailable(Exception):
    """The server refused the sync-collection report (unsupported, or our token is forgotten)."""


class CalDAVReader:
    """Mixed into :class:`coach.calsync.caldav_provider.CalDAVProvider` (``self.client``: a ``caldav.DAVClient``,
    ``self.credentials``)."""

    def list_calendars(self) -> list[RemoteCalendar]:
        """The account's calendars that hold events (PROPFIND of the principal's calendar home)."""
        with self._mapped_errors():
            found = []
            for calendar in self.client.principal().calendars():
                try:
                    components = calendar.get_supported_components()
                except (KeyError, dav_error.DAVError):
                    components = ["VEVENT"]  # a server that does not say holds events (RFC 4791: all types)
                if "VEVENT" not in components:
                    continue
                url = str(calendar.url)
                name = calendar.name or unquote(url.rstrip("/").rsplit("/", 1)[-1])
                found.append(RemoteCalendar(url=url, name=str(name)[:200]))
            return found

    def changes(self, calendar_url: str, sync_token: str | None, window: tuple[datetime, datetime],
                zone: str = "UTC") -> Changes:
        with self._mapped_errors():
            if sync_token and sync_token.startswith(CTAG_TOKEN):
                # A server without sync-collection: its ctag unchanged since the last full read means no event
                # changed, and one PROPFIND replaces reading every event again.
                ctag = self._ctag(calendar_url)
                if ctag is not None and CTAG_TOKEN + ctag == sync_token:
                    return Changes(sync_token=sync_token, full=False)
                return self._read_by_query(calendar_url, window, zone, ctag)
            if sync_token:
                try:
                    return self._expand(*self._sync(calendar_url, sync_token), full=False, window=window, zone=zone)
                except _SyncUnavailable:
                    pass  # the server forgot the token: list everything again
            try:
                entries, token = self._sync(calendar_url, "")
            except _SyncUnavailable:
                return self._read_by_query(calendar_url, window, zone, self._ctag(calendar_url))
            return self._expand(entries, token, full=True, window=window, zone=zone)

    def _read_by_query(self, url: str, window, zone: str, ctag: str | None) -> Changes:
        """Every event of the window by calendar-query; the ctag read *before* it becomes the token, so a change
        made during the read shows as a new ctag next time. No ctag: a full read every time."""
        token = CTAG_TOKEN + ctag if ctag else None
        return self._expand(self._query(url, window), token, full=True, window=window, zone=zone)

    def _ctag(self, url: str) -> str | None:
        """The calendar's ``getctag`` (a version of the whole collection most servers keep), or None."""
        try:
            response = self.client.request(url, "PROPFIND", _CTAG_PROPFIND,
                                           {"Depth": "0", "Content-Type": 'application/xml; charset="utf-8"'})
        except dav_error.AuthorizationError:
            return None  # a wrong password fails the query next, with its own message
        if response.status != 207:
            return None
        try:
            tree = _xml(response.raw)
        except Malformed:
            return None
        for propstat in tree.iterfind(f"{{{DAV}}}response/{{{DAV}}}propstat"):
            if " 200 " not in (propstat.findtext(f"{{{DAV}}}status") or " 200 "):
                continue
            value = (propstat.findtext(f"{{{DAV}}}prop/{{{CALSERVER}}}getctag") or "").strip()
            if value:
                return value[:400]
        return None

    # --- the two reports -------------------------------------------------------------------------------------

    def _report(self, url: str, body: str) -> etree._Element:
        response = self.client.request(url, "REPORT", body,
                                       {"Depth": "1", "Content-Type": 'application/xml; charset="utf-8"'})
        if response.status in (404, 410):
            raise NotFound(f"The calendar {url} is no longer on the server.")
        if response.status >= 500:
            raise Unreachable(f"{host_of(url)} answered with a server error ({response.status}).")
        if response.status != 207:
            raise _SyncUnavailable(response.status)
        return _xml(response.raw)

    def _sync(self, url: str, token: str) -> tuple[list[tuple[str, str, str | None]], str | None]:
        try:
            tree = self._report(url, _SYNC_REPORT.format(token=escape(token)))
        except dav_error.AuthorizationError:
            # 403 with DAV:valid-sync-token (a forgotten token) reads as an authorization error in caldav; a
            # wrong password fails the next request too and is reported then.
            raise _SyncUnavailable(403) from None
        new_token = tree.findtext(f"{{{DAV}}}sync-token")
        if new_token is None:
            raise _SyncUnavailable(207)
        return self._load_missing(_entries(url, tree)), new_token.strip() or None

    def _load_missing(self, entries):
        """Events a server listed without their data (allowed by RFC 6578): fetched one by one."""
        loaded = []
        for href, etag, data in entries:
            if data == "":
                response = self.client.request(href, "GET")
                if response.status in (404, 410):
                    data = None
                elif response.status == 200:
                    data = response.raw or ""
            loaded.append((href, etag, data))
        return loaded

    def _query(self, url: str, window: tuple[datetime, datetime]) -> list[tuple[str, str, str | None]]:
        start, end = (moment.astimezone(ZoneInfo("UTC")).strftime("%Y%m%dT%H%M%SZ") for moment in window)
        try:
            tree = self._report(url, _QUERY_REPORT.format(start=start, end=end))
        except _SyncUnavailable as refused:
            raise Malformed(f"{host_of(url)} does not answer calendar queries (HTTP {refused.args[0]}).") from None
        return _entries(url, tree)

    def _expand(self, entries, token, *, full: bool, window, zone: str) -> Changes:
        changes = Changes(sync_token=token, full=full)
        for href, etag, data in entries:
            if data is None:
                changes.removed.append(href)
                continue
            try:
                uid, occurrences = busy_occurrences(data, window, zone)
            except Exception:  # noqa: BLE001  (anything icalendar raises on a broken event: skip and count it)
                changes.skipped += 1
                continue
            changes.events.append(BusyEvent(href=href, etag=etag, uid=uid[:500], occurrences=tuple(occurrences)))
        return changes

    @contextlib.contextmanager
    def _mapped_errors(self):
        """Every failure as the provider error a coach can act on (never the password, never a traceback)."""
        host = host_of(self.credentials.server_url)
        try:
            yield
        except ProviderError:
            raise
        except dav_error.AuthorizationError:
            raise AuthFailed(AUTH_MESSAGE) from None
        except dav_error.NotFoundError:
            raise NotFound(f"{host} has no calendar at that address.") from None
        except requests.Timeout:
            raise Unreachable(f"{host} did not answer within {self.credentials.timeout:g} s.") from None
        except requests.ConnectionError as exc:
            if isinstance(_root(exc), AddressRefused):
                raise _root(exc) from None
            raise Unreachable(f"{host} could not be reached (connection refused or no such server).") from None
        except requests.RequestException:
            raise Unreachable(f"{host} could not be reached.") from None
        except dav_error.DAVError as exc:
            if " 5" in str(exc) or "50" in (getattr(exc, "reason", "") or ""):
                raise Unreachable(f"{host} answered with a server error.") from None
            raise Malformed(f"{host} did not answer like a CalDAV calendar server.") from None
        except (etree.XMLSyntaxError, ValueError, KeyError, IndexError, AttributeError, TypeError):
            raise Malformed(f"{host} answered with something that is not valid CalDAV.") from None


def _root(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    return exc


def _xml(raw) -> etree._Element:
    data = raw.encode() if isinstance(raw, str) else raw
    try:
        tree = etree.fromstring(data, parser=_PARSER)
    except etree.XMLSyntaxError:
        raise Malformed("The server answered with something that is not valid CalDAV XML.") from None
    if tree is None or tree.tag != f"{{{DAV}}}multistatus":
        raise Malformed("The server answered with something that is not a CalDAV multistatus.")
    return tree


def _entries(url: str, tree: etree._Element) -> list[tuple[str, str, str | None]]:
    """``(href, etag, calendar data or None when removed)`` of each event in a multistatus."""
    found = []
    calendar_path = unquote(requests.utils.urlparse(url).path).rstrip("/")
    for response in tree.iterfind(f"{{{DAV}}}response"):
        href = (response.findtext(f"{{{DAV}}}href") or "").strip()
        if not href:
            raise Malformed("The server listed an event without its address.")
        full = urljoin(url, href)
        if unquote(requests.utils.urlparse(full).path).rstrip("/") == calendar_path:
            continue  # the collection itself (some servers list it)
        status = response.findtext(f"{{{DAV}}}status") or ""
        if " 404 " in status or " 410 " in status:
            found.append((full, "", None))
            continue
        etag, data = "", None
        for propstat in response.iterfind(f"{{{DAV}}}propstat"):
            if " 200 " not in (propstat.findtext(f"{{{DAV}}}status") or " 200 "):
                continue
            etag = (propstat.findtext(f"{{{DAV}}}prop/{{{DAV}}}getetag") or etag).strip()
            data = propstat.findtext(f"{{{DAV}}}prop/{{{CALDAV}}}calendar-data") or data
        found.append((full, etag[:500], data or ""))
    return found


def busy_occurrences(data: str, window: tuple[datetime, datetime], zone: str) -> tuple[str, list]:
    """The UID of one event resource and its busy ``(start, end)`` occurrences (UTC) inside ``window``.

    :param zone: the coach's zone: all-day events block the whole day there; floating times are read there.
    """
    if not data.strip():
        raise ValueError("empty calendar data")
    calendar = icalendar.Calendar.from_ical(data)
    events = calendar.walk("VEVENT")
    if not events:
        return "", []  # a to-do or a journal entry: nothing busy
    uid = str(events[0].get("UID", ""))
    if uid.endswith(OWN_UID_SUFFIX):
        return uid, []  # a booking Coach wrote there: the booking itself already holds the time
    wall = ZoneInfo(zone)
    lo, hi = window
    busy = []
    for occurrence in recurring_ical_events.of(calendar).between(lo.astimezone(wall), hi.astimezone(wall)):
        if str(occurrence.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
            continue
        if str(occurrence.get("STATUS", "")).upper() == "CANCELLED":
            continue
        start = occurrence["DTSTART"].dt
        end = occurrence["DTEND"].dt if "DTEND" in occurrence else None
        if end is None and "DURATION" in occurrence:
            end = start + occurrence["DURATION"].dt
        if end is None:
            end = start + timedelta(days=1) if not isinstance(start, datetime) else start
        start, end = _instant(start, wall), _instant(end, wall)
        if end > start and end > lo and start < hi:
            busy.append((start, end))
    return uid, busy


def _instant(value: date | datetime, wall: ZoneInfo) -> datetime:
    """A DATE as midnight in the coach's zone, a floating time in that zone, in UTC."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time.min)
    if value.tzinfo is None:
        value = value.replace(tzinfo=wall)
    return value.astimezone(ZoneInfo("UTC"))
