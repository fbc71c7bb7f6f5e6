"""A coach's calendar connections: connect an account, choose its calendars, ask for a sync, disconnect.

Nothing here talks to a calendar server: connecting saves the connection as pending and asks for a sync
(``calendar.sync_requested``), whose job lists the account's calendars and reads busy time
(:mod:`coach.calsync.sync`). A page never waits on a remote server. The app password is sealed
(:mod:`coach.platform.sealing`) before it reaches the session, and never enters an audit detail or a message.
Services never commit.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import delete, select

from coach import clock
from coach.booking.models import ExternalBusy
from coach.calsync.events import CALENDAR_BUSY_CHANGED, CALENDAR_SYNC_REQUESTED
from coach.calsync.models import CalendarConnection, CalendarPush, CalendarSource
from coach.calsync.netguard import AddressRefused, check_url, host_of
from coach.calsync.provider import Credentials
from coach.errors import DomainError
from coach.extensions import db
from coach.ids import parse_uuid
from coach.orgs.models import Membership
from coach.platform import audit, sealing
from coach.platform.outbox import emit
from coach.platform.queues import redis_conn

MAX_CONNECTIONS = 10
# A page stops polling a requested sync after this long (a stopped worker must not keep browsers polling).
POLL_FOR = timedelta(minutes=2)
# "Sync now" of one connection at most once in this long: each press asks the coach's server for every chosen
# calendar (and retries the failed writes); the job id already folds presses made while one waits.
SYNC_NOW_SPACING = timedelta(seconds=30)


class CalendarError(DomainError):
    """A calendar connection request that cannot be carried out; the message is safe to show. HTTP 422."""

    status = 422


def credentials(connection: CalendarConnection) -> Credentials:
    """What a provider needs to reach ``connection``'s server, with the settings' timeout and SSRF rule."""
    config = current_app.config
    return Credentials(server_url=connection.server_url, username=connection.username,
                       password=sealing.unseal(connection.secret_sealed) if connection.secret_sealed else "",
                       timeout=float(config["CALSYNC_TIMEOUT_SECONDS"]),
                       allow_private=bool(config["CALSYNC_ALLOW_PRIVATE_ADDRESSES"]))


def connections_of(coach: Membership) -> list[CalendarConnection]:
    return list(db.session.scalars(select(CalendarConnection).where(
        CalendarConnection.tenant_id == coach.tenant_id, CalendarConnection.coach_membership_id == coach.id)
        .order_by(CalendarConnection.created_at, CalendarConnection.id)))


def get_connection(coach: Membership, connection_id) -> CalendarConnection | None:
    """``coach``'s connection by id, or None (another coach's or another organization's is None too)."""
    cid = parse_uuid(connection_id)
    if cid is None:
        return None
    return db.session.scalar(select(CalendarConnection).where(
        CalendarConnection.tenant_id == coach.tenant_id, CalendarConnection.coach_membership_id == coach.id,
        CalendarConnection.id == cid))


def sources_of(connection: CalendarConnection) -> list[CalendarSource]:
    return list(db.session.scalars(select(CalendarSource).where(
        CalendarSource.tenant_id == connection.tenant_id, CalendarSource.connection_id == connection.id)
        .order_by(CalendarSource.display_name, CalendarSource.url)))


def connect(coach: Membership, server_url: str, username: str, password: str, label: str,
            actor: Membership) -> CalendarConnection:
    """Save a pending connection and ask for its calendars to be listed (by the sync job).

    :raises CalendarError: a URL Coach does not fetch (not http(s), a private address), or too many connections.
    """
    server_url = server_url.strip()
    try:
        check_url(server_url, bool(current_app.config["CALSYNC_ALLOW_PRIVATE_ADDRESSES"]))
    except AddressRefused as exc:
        raise CalendarError(str(exc)) from None
    if len(connections_of(coach)) >= MAX_CONNECTIONS:
        raise CalendarError(f"A coach can connect at most {MAX_CONNECTIONS} calendar accounts.")
    now = clock.now()
    connection = CalendarConnection(
        id=uuid.uuid4(), tenant_id=coach.tenant_id, coach_membership_id=coach.id, provider="caldav",
        label=(label.strip() or host_of(server_url))[:120], server_url=server_url, username=username.strip(),
        secret_sealed=sealing.seal(password), status="pending", failures=0, unreadable_events=0,
        sync_requested_at=now, created_at=now, updated_at=now)
    db.session.add(connection)
    db.session.flush()
    emit(CALENDAR_SYNC_REQUESTED, {"connection_id": str(connection.id), "discover": True})
    # The host only: never the password, and the username stays in the row.
    audit.record("calendar.connected", actor=actor.user, target_type="calendar_connection",
                 target_id=connection.id, details={"coach_membership_id": str(coach.id),
                                                   "server": host_of(server_url)})
    return connection


def choose_calendars(connection: CalendarConnection, blocking: set[uuid.UUID], receiver: uuid.UUID | None,
                     actor: Membership) -> None:
    """Which of the connection's calendars block time, and which one receives bookings; a calendar that stops
    blocking time gives its busy rows back at once, and a sync is asked for the others."""
    sources = {source.id: source for source in sources_of(connection)}
    if not blocking <= sources.keys() or (receiver is not None and receiver not in sources):
        raise CalendarError("Choose among this account's calendars.")
    released = False
    for source in sources.values():
        if source.blocks_time and source.id not in blocking:
            released |= _drop_busy(source) > 0
            source.sync_token, source.last_synced_at = None, None  # read in full if it blocks again
        source.blocks_time = source.id in blocking
        if source.receives_bookings and source.id != receiver:
            source.receives_bookings = False
    db.session.flush()  # the unique "one receiver" index sees the old one cleared first
    if receiver is not None:
        sources[receiver].receives_bookings = True
    if released:
        busy_changed(connection.coach_membership_id)
    request_sync(connection)
    audit.record("calendar.calendars_chosen", actor=actor.user, target_type="calendar_connection",
                 target_id=connection.id,
                 details={"blocking": len(blocking), "receives_bookings": receiver is not None})


def change_password(connection: CalendarConnection, password: str, actor: Membership) -> None:
    """A new app password for ``connection`` (the server refused the old one): sealed, the back-off forgotten,
    and a sync asked for at once. The calendars chosen and the events written stay as they were."""
    connection.secret_sealed = sealing.seal(password)
    connection.failures = 0
    connection.updated_at = clock.now()
    request_sync(connection)
    audit.record("calendar.password_changed", actor=actor.user, target_type="calendar_connection",
                 target_id=connection.id, details={"server": host_of(connection.server_url)})


def request_sync(connection: CalendarConnection, discover: bool = False) -> None:
    """Ask for a sync now (the job runs once this transaction commits)."""
    connection.sync_requested_at = clock.now()
    emit(CALENDAR_SYNC_REQUESTED, {"connection_id": str(connection.id),
                                   "discover": discover or connection.status == "pending"})


def sync_now_wait(connection: CalendarConnection) -> int:
    """Claim "Sync now" for ``connection``: 0 when it may go ahead (and the next press waits
    :data:`SYNC_NOW_SPACING`), else the seconds until it may. Valkey down: allowed (the sync's own lock and job
    id still keep the server from being asked twice at once)."""
    key, spacing = f"calsync:sync-now:{connection.id}", int(SYNC_NOW_SPACING.total_seconds())
    try:
        store = redis_conn()
        if store.set(key, "1", nx=True, ex=spacing):
            return 0
        return max(int(store.ttl(key)), 1)
    except RedisError:
        return 0


def disconnect(connection: CalendarConnection, actor: Membership) -> None:
    """Remove the connection, its calendars, their busy time and the record of the bookings written there
    (no further writes; the events already written stay in the coach's calendar)."""
    sources = sources_of(connection)
    released = sum(_drop_busy(source) for source in sources)
    ids = [source.id for source in sources]
    if ids:
        db.session.execute(delete(CalendarPush).where(CalendarPush.tenant_id == connection.tenant_id,
                                                      CalendarPush.source_id.in_(ids)))
        db.session.execute(delete(CalendarSource).where(CalendarSource.tenant_id == connection.tenant_id,
                                                        CalendarSource.id.in_(ids)))
    db.session.delete(connection)
    if released:
        busy_changed(connection.coach_membership_id)
    audit.record("calendar.disconnected", actor=actor.user, target_type="calendar_connection",
                 target_id=connection.id, details={"server": host_of(connection.server_url)})


def busy_changed(coach_membership_id: uuid.UUID) -> None:
    emit(CALENDAR_BUSY_CHANGED, {"coach_membership_id": str(coach_membership_id)})


def _drop_busy(source: CalendarSource) -> int:
    return db.session.execute(delete(ExternalBusy).where(
        ExternalBusy.tenant_id == source.tenant_id, ExternalBusy.source_id == source.id)).rowcount


@dataclass(frozen=True)
class ConnectionState:
    """What the page says about a connection: the words, and whether it should look again shortly."""

    connection: CalendarConnection
    sources: list[CalendarSource]
    waiting: bool  # a sync was asked for and has not happened yet
    poll: bool  # the page looks again in a few seconds (stops once settled, or after POLL_FOR)


def state_of(connection: CalendarConnection, now: datetime | None = None) -> ConnectionState:
    now = now or clock.now()
    asked = connection.sync_requested_at
    settled_after = max((t for t in (connection.last_synced_at, connection.last_error_at) if t), default=None)
    waiting = asked is not None and (settled_after is None or settled_after < asked)
    return ConnectionState(connection=connection, sources=sources_of(connection), waiting=waiting,
                           poll=waiting and now - asked < POLL_FOR)
