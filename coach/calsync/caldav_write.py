"""Writing bookings into a CalDAV calendar: one event resource per booking UID (RFC 4791 section 5.3.2).

Every write is conditional, so Coach never overwrites an edit it has not seen by accident: a new event is created
with ``If-None-Match: *`` (refused if something already sits at that address), an update carries ``If-Match`` with
the ETag Coach got when it last wrote (refused, 412, if the coach changed the event meanwhile). What to do about a
refusal is the caller's rule (:mod:`coach.calsync.push`); asking for an overwrite (``href`` without ``etag``)
re-reads the current ETag first, so even an overwrite replaces only the version it has just seen.
"""
from __future__ import annotations

import re
from urllib.parse import quote, urljoin

from coach.calsync.netguard import host_of
from coach.calsync.provider import Conflict, NotFound, ProviderError, Unreachable, Written

_CONTENT_TYPE = "text/calendar; charset=utf-8"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._@-]")


def event_href(calendar_url: str, uid: str) -> str:
    """Where the event of ``uid`` lives in the calendar: a name derived from the UID alone, so a write that was
    lost half-way (the server stored it, the answer never came) is found again at the same address."""
    base = calendar_url if calendar_url.endswith("/") else calendar_url + "/"
    return urljoin(base, quote(_SAFE_NAME.sub("-", uid)) + ".ics")


class CalDAVWriter:
    """Mixed into :class:`coach.calsync.caldav_provider.CalDAVProvider` (``self.client``: a ``caldav.DAVClient``;
    failures mapped by the reader's ``_mapped_errors``, shared by both halves)."""

    def event_href(self, calendar_url: str, uid: str) -> str:
        return event_href(calendar_url, uid)

    def put_event(self, calendar_url: str, uid: str, ical: bytes, href: str | None, etag: str | None) -> Written:
        """Create (``href`` None), replace if unchanged (``href`` and ``etag``) or overwrite (``href`` alone: the
        current version is read first; a deleted event is created again). :class:`Conflict` when the server
        refuses the precondition."""
        target = href or event_href(calendar_url, uid)
        if href is None:
            condition = {"If-None-Match": "*"}
        elif etag:
            condition = {"If-Match": etag}
        else:
            current = self._etag_of(target)
            condition = {"If-Match": current} if current else {"If-None-Match": "*"}
        with self._mapped_errors():
            response = self.client.put(target, ical, {"Content-Type": _CONTENT_TYPE, **condition})
        self._check(response.status, target)
        return Written(href=target, etag=response.headers.get("ETag"))

    def delete_event(self, href: str, etag: str | None) -> None:
        """Remove the event (only that version, with ``etag``); already gone is not an error."""
        with self._mapped_errors():
            response = self.client.request(href, "DELETE", "", {"If-Match": etag} if etag else {})
        if response.status in (404, 410):
            return
        self._check(response.status, href)

    def _etag_of(self, href: str) -> str | None:
        """The event's ETag now, or ``None`` when it is not there."""
        with self._mapped_errors():
            response = self.client.request(href, "HEAD")
        if response.status in (404, 410):
            return None
        self._check(response.status, href)
        return response.headers.get("ETag")

    @staticmethod
    def _check(status: int, url: str) -> None:
        if status in (200, 201, 204):
            return
        if status == 412:
            raise Conflict("The event was changed in the calendar since Coach wrote it.")
        if status in (404, 410):
            raise NotFound("The calendar or the event is no longer on the server.")
        if status >= 500:
            raise Unreachable(f"{host_of(url)} answered with a server error ({status}).")
        raise ProviderError(f"{host_of(url)} refused to save the event ({status}): the calendar may have been "
                            "deleted or be read-only. Choose another calendar to receive bookings.")
