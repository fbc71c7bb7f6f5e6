"""One connection's sync: list its calendars (when asked), read what changed in each calendar that blocks time,
and apply it to :class:`coach.booking.models.ExternalBusy`.

The network calls happen with no database transaction open (a slow server must not hold a connection of the pool
or row locks for its timeout): the connection is read in one short transaction, the provider is called, and the
outcome is written in a second short transaction. A Valkey lock keeps two syncs of one connection from running at
once (the sweep and "Sync now"). A failure is stored on the connection (status ``failing``, the message, its time)
and the next attempt backs off; it never touches another connection.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography.fernet import InvalidToken
from flask import current_app
from sqlalchemy import delete, insert, select

from coach import clock
from coach.booking.availability import coach_timezone
from coach.booking.models import ExternalBusy
from coach.calsync import service
from coach.calsync.models import CalendarConnection, CalendarSource
from coach.calsync.provider import Changes, ProviderError, RemoteCalendar, open_provider
from coach.extensions import db
from coach.orgs.models import Membership
from coach.platform.queues import redis_conn

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(hours=6)


@dataclass
class _Fetched:
    calendars: list[RemoteCalendar] | None = None
    changes: dict[uuid.UUID, Changes] = field(default_factory=dict)
    error: ProviderError | None = None


def window(now: datetime) -> tuple[datetime, datetime]:
    """The busy time kept: from a day ago to ``CALSYNC_HORIZON_DAYS`` ahead."""
    return now - timedelta(days=1), now + timedelta(days=int(current_app.config["CALSYNC_HORIZON_DAYS"]))


def run(tenant_id: uuid.UUID, connection_id: uuid.UUID, discover: bool = False) -> str:
    """Sync one connection (the caller has set the tenant). Returns what happened: ``synced``, ``failed``,
    ``gone`` (disconnected) or ``busy`` (another sync of it is running)."""
    lock = redis_conn().lock(f"calsync:sync:{connection_id}",
                             timeout=int(current_app.config["CALSYNC_TIMEOUT_SECONDS"] * 60) + 60, blocking=False)
    if not lock.acquire(blocking=False):
        return "busy"
    try:
        return _run(tenant_id, connection_id, discover)
    finally:
        try:
            lock.release()
        except Exception:  # noqa: BLE001  (expired: nothing to release)
            pass


def _run(tenant_id: uuid.UUID, connection_id: uuid.UUID, discover: bool) -> str:
    # 1. Read what to do, in one short transaction.
    connection = _load(tenant_id, connection_id)
    if connection is None:
        db.session.rollback()
        return "gone"
    now = clock.now()
    try:
        credentials = service.credentials(connection)
    except InvalidToken:  # sealed with a key no longer configured (ENCRYPTION_KEYS rotated without resealing)
        credentials = None
    coach = db.session.get(Membership, connection.coach_membership_id)
    zone = coach_timezone(coach) if coach is not None else "UTC"
    plans = [(s.id, s.url, _token_for(s, now)) for s in service.sources_of(connection) if s.blocks_time]
    discover = discover or connection.status == "pending" or not plans and connection.last_synced_at is None
    provider_name = connection.provider
    db.session.rollback()  # no transaction stays open while the server is asked

    # 2. Ask the server.
    fetched = _Fetched()
    try:
        if credentials is None:
            raise ProviderError("The saved app password can no longer be read; disconnect and connect the "
                                "account again.")
        provider = open_provider(provider_name, credentials)
        if discover:
            fetched.calendars = provider.list_calendars()
        for source_id, url, token in plans:
            fetched.changes[source_id] = provider.changes(url, token, window(now), zone)
    except ProviderError as exc:
        fetched.error = exc
    except Exception:  # noqa: BLE001  (a library's surprise: the coach gets a message, the log the traceback)
        log.exception("calendar sync of connection %s failed unexpectedly", connection_id)
        fetched.error = ProviderError("The calendar server's answer could not be read.")

    # 3. Write the outcome, in one short transaction.
    connection = _load(tenant_id, connection_id, for_update=True)
    if connection is None:
        db.session.rollback()
        return "gone"
    changed = False
    if fetched.calendars is not None:
        _apply_calendars(connection, fetched.calendars)
    skipped = 0
    for source_id, changes in fetched.changes.items():
        source = db.session.get(CalendarSource, source_id)
        if source is None or source.connection_id != connection.id or not source.blocks_time:
            continue  # disconnected or no longer chosen while we were asking
        changed |= apply_changes(source, connection.coach_membership_id, changes, now)
        skipped += changes.skipped
    done = clock.now()
    connection.updated_at = done
    if any(changes.full for changes in fetched.changes.values()) or not fetched.changes:
        connection.unreadable_events = skipped
    else:
        connection.unreadable_events += skipped
    if fetched.error is None:
        connection.status, connection.failures = "ok", 0
        connection.last_synced_at = done
        connection.next_sync_at = done + timedelta(seconds=int(current_app.config["CALSYNC_INTERVAL_SECONDS"]))
        outcome = "synced"
    else:
        connection.status = "failing"
        connection.failures = min(connection.failures + 1, 30000)
        connection.last_error, connection.last_error_at = str(fetched.error)[:500], done
        connection.next_sync_at = done + backoff(connection.failures)
        log.info("calendar sync of connection %s failed: %s", connection.id, type(fetched.error).__name__)
        outcome = "failed"
    if changed:
        service.busy_changed(connection.coach_membership_id)
    db.session.commit()
    return outcome


def backoff(failures: int) -> timedelta:
    """How long after the ``failures``-th failure in a row the next attempt comes: the interval, doubling, at
    most six hours."""
    interval = timedelta(seconds=int(current_app.config["CALSYNC_INTERVAL_SECONDS"]))
    return min(interval * (2 ** min(max(failures - 1, 0), 16)), MAX_BACKOFF)


def _load(tenant_id: uuid.UUID, connection_id: uuid.UUID, for_update: bool = False) -> CalendarConnection | None:
    query = select(CalendarConnection).where(CalendarConnection.tenant_id == tenant_id,
                                             CalendarConnection.id == connection_id,
                                             CalendarConnection.status != "disabled")
    if for_update:
        query = query.with_for_update()
    return db.session.scalar(query.execution_options(populate_existing=True))


def _token_for(source: CalendarSource, now: datetime) -> str | None:
    """The sync token to continue from, or None for a full read: the first sync, and the first of each day (a
    recurring event's occurrences entering the moving window are read although the event did not change)."""
    if source.last_synced_at is None or source.last_synced_at.date() < now.date():
        return None
    return source.sync_token


def _apply_calendars(connection: CalendarConnection, calendars: list[RemoteCalendar]) -> None:
    """The account's calendars as listed now: new ones added (not blocking until chosen), names refreshed; one
    no longer there is removed with its busy time unless bookings were written into it."""
    existing = {source.url: source for source in service.sources_of(connection)}
    listed = {calendar.url: calendar for calendar in calendars}
    for url, calendar in listed.items():
        source = existing.get(url)
        if source is None:
            db.session.add(CalendarSource(id=uuid.uuid4(), tenant_id=connection.tenant_id,
                                          connection_id=connection.id, url=url[:1000],
                                          display_name=calendar.name[:200], blocks_time=False,
                                          receives_bookings=False))
        elif source.display_name != calendar.name[:200]:
            source.display_name = calendar.name[:200]
    for url, source in existing.items():
        if url not in listed and not source.receives_bookings:
            if service._drop_busy(source):
                service.busy_changed(connection.coach_membership_id)
            db.session.delete(source)


def apply_changes(source: CalendarSource, coach_id: uuid.UUID, changes: Changes, now: datetime) -> bool:
    """Replace the busy rows of every event that changed (all of them on a full read, which also drops the
    events no longer listed); store where the sync left off. Whether any busy time changed."""
    scope = delete(ExternalBusy).where(ExternalBusy.tenant_id == source.tenant_id,
                                       ExternalBusy.source_id == source.id)
    old_rows = select(ExternalBusy.href, ExternalBusy.starts_at, ExternalBusy.ends_at).where(
        ExternalBusy.tenant_id == source.tenant_id, ExternalBusy.source_id == source.id)
    touched = [event.href for event in changes.events] + changes.removed
    if not changes.full:
        scope = scope.where(ExternalBusy.href.in_(touched))
        old_rows = old_rows.where(ExternalBusy.href.in_(touched))
    before = {(href, start, end) for href, start, end in db.session.execute(old_rows)}
    rows = [dict(id=uuid.uuid4(), tenant_id=source.tenant_id, source_id=source.id, coach_membership_id=coach_id,
                 href=event.href[:1000], etag=event.etag[:500], uid=event.uid[:500], starts_at=start, ends_at=end)
            for event in changes.events for start, end in event.occurrences]
    after = {(row["href"], row["starts_at"], row["ends_at"]) for row in rows}
    if before != after:
        db.session.execute(scope)
        if rows:
            db.session.execute(insert(ExternalBusy), rows)
    source.sync_token = changes.sync_token
    source.last_synced_at = now
    return before != after
