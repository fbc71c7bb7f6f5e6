"""Jobs that write bookings into coaches' calendars (see :mod:`coach.calsync.push`).

- Every booking status topic marks the booking's UID pending in each calendar of its coach that receives bookings,
  and once that transaction has committed queues :func:`push_one` per calendar. Duplicates and any order are
  fine: the job reconciles with the bookings as they are when it runs.
- ``calendar.sync_requested`` (a calendar chosen or unchosen, "Sync now") queues :func:`refresh_connection`:
  a calendar that receives bookings gets every upcoming booking written (a backfill; those already there cost no
  request), one that no longer does has Coach's events removed (best effort) and its rows cleared.
- The sweep (every minute) retries failed writes after their back-off and picks up pending ones whose job was lost.

No job raises for a calendar server's failure (RQ retries would repeat what the sweep already does); the failure
is on the row for the calendars page.
"""
from __future__ import annotations

import logging
import uuid

from flask import current_app, g
from sqlalchemy import select

from coach import tenancy
from coach.booking.events import (BOOKING_ACTIVE, BOOKING_CANCELLED, BOOKING_CONFIRMED, BOOKING_DECLINED,
                                  BOOKING_ENDED, BOOKING_EXPIRED, BOOKING_HELD, BOOKING_NO_SHOW, BOOKING_REQUESTED)
from coach.calsync import push
from coach.calsync.events import CALENDAR_SYNC_REQUESTED
from coach.calsync.models import CalendarConnection, CalendarSource
from coach.extensions import db
from coach.platform.jobs import after_commit, consumer, each_tenant, get_app
from coach.platform.periodic import periodic
from coach.platform.queues import queue

log = logging.getLogger(__name__)


def _timeout(requests: int) -> int:
    return int(float(current_app.config["CALSYNC_TIMEOUT_SECONDS"]) * requests) + 30


@consumer(BOOKING_HELD, BOOKING_REQUESTED, BOOKING_CONFIRMED, BOOKING_ACTIVE, BOOKING_DECLINED, BOOKING_EXPIRED,
          BOOKING_CANCELLED, BOOKING_ENDED, BOOKING_NO_SHOW)
def booking_changed(payload: dict) -> None:
    """A booking changed status: its event in the coach's receiving calendars is due for a reconcile."""
    sources = push.receiving_sources(uuid.UUID(payload["coach_membership_id"]))
    if not sources:
        return
    booking_id = uuid.UUID(payload["booking_id"])
    uid = push.event_uid(booking_id)
    if uid is None:
        return
    marked = push.mark(sources, uid, booking_id, pushed=payload["to"] in push.PUSHED_STATUSES)
    if marked:
        tenant_id = g.tenant_id
        after_commit(lambda: [enqueue_push(tenant_id, source_id, uid) for source_id in marked])


def enqueue_push(tenant_id, source_id, uid: str) -> None:
    queue("default").enqueue(push_one, str(tenant_id), str(source_id), uid, job_timeout=_timeout(3),
                             result_ttl=300, failure_ttl=7 * 86400, description=f"calendar push {uid}")


def push_one(tenant_id: str, source_id: str, uid: str) -> str:
    """RQ entry point: make one calendar match the booking that carries ``uid`` now."""
    app = get_app()
    with app.app_context(), tenancy.acting_for(uuid.UUID(tenant_id)):
        outcome = push.reconcile(uuid.UUID(source_id), uid)
        db.session.commit()
        return outcome


@consumer(CALENDAR_SYNC_REQUESTED)
def connection_refreshed(payload: dict) -> None:
    """Calendars chosen or unchosen, or "Sync now": bring the connection's pushed events in line afterwards."""
    tenant_id, connection_id = g.tenant_id, payload["connection_id"]
    after_commit(lambda: queue("default").enqueue(
        refresh_connection, str(tenant_id), str(connection_id), job_timeout=600, result_ttl=300,
        failure_ttl=7 * 86400, description=f"calendar pushes of {connection_id}"))


def refresh_connection(tenant_id: str, connection_id: str) -> dict:
    """RQ entry point: write the upcoming bookings into the connection's receiving calendar, remove Coach's events
    from its other calendars; what happened, counted."""
    app = get_app()
    with app.app_context(), tenancy.acting_for(uuid.UUID(tenant_id)):
        connection = db.session.get(CalendarConnection, uuid.UUID(connection_id))
        if connection is None:
            return {}
        items = []
        for source in db.session.scalars(select(CalendarSource).where(
                CalendarSource.tenant_id == connection.tenant_id, CalendarSource.connection_id == connection.id)):
            receiving = source.receives_bookings and connection.status != "disabled"
            if receiving:
                push.mark_upcoming(source)
            items += [(connection.id, source.id, uid) for uid in push.marked(source.id, every=not receiving)]
        db.session.commit()
        return push.run_many(items)


@periodic(every=60, name="calendar_pushes")
def sweep_pushes() -> int:
    """Retry the failed writes whose back-off passed and the pending ones whose job was lost, in every
    organization."""
    return each_tenant(push.due_tenants(), lambda tenant_id: sum(push.run_many(push.due()).values()),
                       "calendar push sweep")
