"""What a calendar provider does for Coach, whatever the server: list the account's calendars, tell what changed
in one since the last sync (busy occurrences in, removed events out), and write or remove the event of a booking.

CalDAV implements it today (:mod:`coach.calsync.caldav_provider`). A provider for Google Calendar or Microsoft
Graph is one more module that implements :class:`CalendarProvider` and calls :func:`register`; the sync, the
pushes, the pages and the jobs do not change (docs/ARCHITECTURE.md, "Calendar sync").

Every call is bounded by a timeout and raises a :class:`ProviderError` subclass with a message a coach can act
on; nothing else escapes a provider.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


class ProviderError(Exception):
    """A provider call failed; ``str(error)`` is shown to the coach (never the password, never a traceback)."""


class AuthFailed(ProviderError):
    """The server refused the username or app password (401/403)."""


class Unreachable(ProviderError):
    """The server did not answer in time, refused the connection, or answered with a server error."""


class Malformed(ProviderError):
    """The server answered with something that is not valid CalDAV/iCalendar."""


class Conflict(ProviderError):
    """The event changed on the server since we last wrote it (the ETag no longer matches: 412)."""


class NotFound(ProviderError):
    """The calendar or the event is no longer there (404/410)."""


@dataclass(frozen=True)
class Credentials:
    server_url: str
    username: str
    password: str
    timeout: float = 10.0
    # Off: every connection to a loopback, private, link-local or reserved address is refused (SSRF; see
    # coach.calsync.netguard and the CALSYNC_ALLOW_PRIVATE_ADDRESSES setting).
    allow_private: bool = False


@dataclass(frozen=True)
class RemoteCalendar:
    url: str
    name: str


@dataclass(frozen=True)
class BusyEvent:
    """One event resource: where it is, its version, and the busy occurrences it has in the sync window (empty
    for an event that is free/transparent, cancelled, or outside the window)."""

    href: str
    etag: str
    uid: str
    occurrences: tuple[tuple[datetime, datetime], ...]


@dataclass
class Changes:
    """What changed in a calendar. ``full``: this is the whole calendar (the first sync, or the server forgot
    our token), so every event not listed is gone; otherwise ``events`` changed and ``removed`` hrefs are gone."""

    events: list[BusyEvent] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    sync_token: str | None = None
    full: bool = True
    # Events that could not be read (broken iCalendar): skipped, and counted for the coach's page.
    skipped: int = 0


@dataclass(frozen=True)
class Written:
    href: str
    etag: str | None


class CalendarProvider(Protocol):
    name: str

    def list_calendars(self) -> list[RemoteCalendar]:
        """The account's calendars that hold events; :class:`AuthFailed` on a wrong password."""

    def changes(self, calendar_url: str, sync_token: str | None, window: tuple[datetime, datetime],
                zone: str = "UTC") -> Changes:
        """Events changed since ``sync_token`` (everything when ``None`` or when the server forgot it), with their
        busy occurrences expanded (RRULE, RDATE, EXDATE, overridden instances) inside ``window`` (UTC); all-day
        and floating times are read in ``zone`` (the coach's)."""

    def event_href(self, calendar_url: str, uid: str) -> str:
        """Where :meth:`put_event` creates the event of ``uid`` (the same address every time)."""

    def put_event(self, calendar_url: str, uid: str, ical: bytes, href: str | None, etag: str | None) -> Written:
        """Create (``href`` None) or replace the event; with ``etag``, only if unchanged (else :class:`Conflict`);
        ``href`` without ``etag`` overwrites whatever version is there now (creating it again if it was deleted)."""

    def delete_event(self, href: str, etag: str | None) -> None:
        """Remove the event; already gone is not an error."""


_FACTORIES: dict[str, Callable[[Credentials], CalendarProvider]] = {}


def register(name: str, factory: Callable[[Credentials], CalendarProvider]) -> None:
    _FACTORIES[name] = factory


def provider_names() -> tuple[str, ...]:
    return tuple(_FACTORIES)


def open_provider(name: str, credentials: Credentials) -> CalendarProvider:
    from coach.calsync import caldav_provider  # noqa: F401  (registers "caldav")

    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise ProviderError(f"Unknown calendar provider {name!r}.") from None
    return factory(credentials)
