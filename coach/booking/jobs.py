"""Booking jobs: the minute sweep, the precise job at each booking's moments, and their scheduling.

Both the sweep and the precise jobs call :func:`coach.booking.service.run_due` for one
organization, which is idempotent: whichever runs first does the work, the other finds
nothing left. The sweep is the safety net (a lost scheduled job, a worker that was down);
the precise jobs make transitions and reminders happen on the minute.
"""
from __future__ import annotations

import logging
import uuid
from datetime import datetime, timezone

from rq import Retry

from coach import tenancy
from coach.booking import service
from coach.booking.models import STATUSES
from coach.extensions import db
from coach.platform.jobs import _get_app, consumer, each_tenant
from coach.platform.queues import queue

log = logging.getLogger(__name__)

# Every booking event schedules the exact-time jobs it implies (notifications consume them too).
TOPICS = tuple(f"booking.{status}" for status in STATUSES)


def run_due_for(tenant_id: str) -> int:
    """RQ entry point: apply what is due in one organization now."""
    app = _get_app()
    with app.app_context():
        tenancy.activate(uuid.UUID(tenant_id))
        result = service.run_due(uuid.UUID(tenant_id))
        db.session.commit()
        return result.total


def sweep_all() -> int:
    """Every organization with something due, one transaction each (a failure stays in its organization)."""
    return each_tenant(service.due_tenants(), lambda tenant_id: service.run_due(tenant_id).total, "booking sweep")


def schedule_moments(tenant_id: uuid.UUID, moments: list[datetime]) -> None:
    """Enqueue :func:`run_due_for` at each future moment; one job per organization and second."""
    now = datetime.now(timezone.utc)
    q = queue("default")
    for when in moments:
        if when <= now:
            continue
        q.enqueue_at(when, "coach.booking.jobs.run_due_for", str(tenant_id),
                     job_id=f"booking-due-{tenant_id}-{int(when.timestamp())}", job_timeout=120,
                     retry=Retry(max=3, interval=[10, 60, 300]), result_ttl=600,
                     description=f"booking moments {tenant_id} {when.isoformat()}")


def _schedule_from_event(payload: dict) -> None:
    from flask import g

    schedule_moments(g.tenant_id, service.moments_for(payload))


for _topic in TOPICS:
    consumer(_topic)(_schedule_from_event)
