"""Calendar sync jobs: the sync of one connection (asked for by a page, or due), and the sweep that finds the
connections due in every organization.

A page asks with ``calendar.sync_requested``; its consumer queues :func:`sync_connection` once that transaction
committed. The sweep runs every minute and queues each connection whose ``next_sync_at`` passed (a successful
sync sets it ``CALSYNC_INTERVAL_SECONDS`` ahead, a failure backs off). Pushing bookings into calendars is slice
B's :mod:`coach.calsync.push_jobs`, loaded from here so the domain's jobs register together.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import uuid

from flask import current_app, g
from rq import Retry
from sqlalchemy import text, update

from coach import clock, tenancy
from coach.calsync import sync
from coach.calsync.events import CALENDAR_BUSY_CHANGED, CALENDAR_SYNC_REQUESTED
from coach.calsync.models import CalendarConnection
from coach.extensions import db
from coach.platform.jobs import after_commit, consumer, each_tenant, get_app
from coach.platform.periodic import periodic
from coach.platform.queues import queue

log = logging.getLogger(__name__)


def sync_connection(tenant_id: str, connection_id: str, discover: bool = False) -> str:
    """RQ entry point: sync one connection (see :func:`coach.calsync.sync.run`)."""
    app = get_app()
    with app.app_context(), tenancy.acting_for(uuid.UUID(tenant_id)):
        try:
            return sync.run(uuid.UUID(tenant_id), uuid.UUID(connection_id), discover)
        finally:
            db.session.rollback()


def enqueue_sync(tenant_id, connection_id, discover: bool = False) -> None:
    # One job per connection at a time in the queue (the id); the sync's own lock covers one already running.
    timeout = float(current_app.config["CALSYNC_TIMEOUT_SECONDS"])
    queue("default").enqueue(sync_connection, str(tenant_id), str(connection_id), discover,
                             job_id=f"calsync-{connection_id}-{'d' if discover else 's'}",
                             job_timeout=int(timeout * 40) + 60, result_ttl=300, failure_ttl=86400,
                             retry=Retry(max=1, interval=[60]), description=f"calendar sync {connection_id}")


@consumer(CALENDAR_SYNC_REQUESTED)
def sync_requested(payload: dict) -> None:
    """A page asked for a sync: queue it once the event's transaction commits."""
    tenant_id, connection_id, discover = g.tenant_id, payload["connection_id"], bool(payload.get("discover"))
    after_commit(lambda: enqueue_sync(tenant_id, connection_id, discover))


@consumer(CALENDAR_BUSY_CHANGED)
def busy_changed(payload: dict) -> None:
    """Nothing to do yet: slots read the busy rows directly. Issue 22 projects availability from this topic."""
    log.info("busy time of coach %s changed", payload.get("coach_membership_id"))


def due_tenants() -> list[uuid.UUID]:
    """Organizations with a connection due (a definer function: the worker reads no organization's rows)."""
    return list(db.session.scalars(text("SELECT calendar_connections_due_tenants(:now)"), {"now": clock.now()}))


def _enqueue_due(tenant_id: uuid.UUID) -> int:
    # Claimed by moving next_sync_at on: a second sweep before the sync ran does not queue it again.
    now = clock.now()
    due = list(db.session.scalars(
        update(CalendarConnection)
        .where(CalendarConnection.tenant_id == tenant_id, CalendarConnection.status != "disabled",
               CalendarConnection.next_sync_at <= now)
        .values(next_sync_at=now + sync.backoff(1))
        .returning(CalendarConnection.id)))
    for connection_id in due:
        enqueue_sync(tenant_id, connection_id)  # the job reads the row again: it exists before this commits
    return len(due)


@periodic(every=60, name="sync_calendars")
def sweep_calendars() -> int:
    """Queue the sync of every connection whose time came (each organization in its own transaction)."""
    return each_tenant(due_tenants(), _enqueue_due, "calendar sync sweep")


# Slice B's consumers (pushing bookings into calendars) live in their own module.
if importlib.util.find_spec("coach.calsync.push_jobs") is not None:
    importlib.import_module("coach.calsync.push_jobs")
