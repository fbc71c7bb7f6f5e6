"""Booking jobs: the minute sweep, the precise job at each booking's moments, and their scheduling.

Both the sweep and the precise jobs call :func:`coach.booking.service.run_due` for one
organization, which is idempotent: whichever runs first does the work, the other finds
nothing left. The sweep is the safety net (a lost scheduled job, a worker that was down);
the precise jobs make transitions and reminders happen on the minute.
"""
from __future__ import annotations

import logging
import uuid
from datetime import datetime

from flask import g
from rq import Retry

from coach import tenancy
from coach.booking import service
from coach.booking.events import (BOOKING_ACTIVE, BOOKING_CANCELLED, BOOKING_CONFIRMED, BOOKING_DECLINED,
                                  BOOKING_ENDED, BOOKING_EXPIRED, BOOKING_HELD, BOOKING_NO_SHOW, BOOKING_REQUESTED)
from coach.extensions import db
from coach.clock import now as clock_now
from coach.platform.jobs import consumer, each_tenant, get_app
from coach.platform.periodic import periodic
from coach.platform.queues import queue

log = logging.getLogger(__name__)


def run_due_for(tenant_id: str) -> int:
    """RQ entry point: apply what is due in one organization now."""
    app = get_app()
    with app.app_context():
        tenancy.activate(uuid.UUID(tenant_id))
        result = service.run_due(uuid.UUID(tenant_id))
        db.session.commit()
        return result.total


@periodic(every=60, name="sweep_bookings")
def sweep_all() -> int:
    """The safety net under the precise per-booking jobs (expiries, starts, ends, reminders): every organization
    with something due, one transaction each (a failure stays in its organization)."""
    return each_tenant(service.due_tenants(), lambda tenant_id: service.run_due(tenant_id).total, "booking sweep")


def schedule_moments(tenant_id: uuid.UUID, moments: list[datetime]) -> None:
    """Enqueue :func:`run_due_for` at each future moment; one job per organization and second."""
    now = clock_now()
    q = queue("default")
    for when in moments:
        if when <= now:
            continue
        q.enqueue_at(when, run_due_for, str(tenant_id),
                     job_id=f"booking-due-{tenant_id}-{int(when.timestamp())}", job_timeout=120,
                     retry=Retry(max=3, interval=[0, 60, 300]), result_ttl=600,
                     description=f"booking moments {tenant_id} {when.isoformat()}")


@consumer(BOOKING_HELD, BOOKING_REQUESTED, BOOKING_CONFIRMED, BOOKING_ACTIVE, BOOKING_DECLINED, BOOKING_EXPIRED,
          BOOKING_CANCELLED, BOOKING_ENDED, BOOKING_NO_SHOW)
def schedule_from_event(payload: dict) -> None:
    """Every booking event schedules the exact-time jobs it implies (expiry, start, end, reminders)."""
    schedule_moments(g.tenant_id, service.moments_for(payload))

# Waitlists move on when a seat frees (their consumer and sweep live in their own module).
from coach.booking import waitlist_jobs  # noqa: E402, F401
# A recurring series ends with its last occurrence.
from coach.booking import series_jobs  # noqa: E402, F401
