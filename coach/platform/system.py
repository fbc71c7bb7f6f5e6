"""What the admin System page and /metrics show: queues, failed jobs, the outbox."""
from __future__ import annotations

import uuid

from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy import func, select, text, update

from coach.extensions import db
from coach.platform.models import OutboxEvent
from coach.platform.queues import QUEUE_NAMES, queue, redis_conn


def queue_stats() -> list[dict]:
    connection = redis_conn()
    rows = []
    for name in QUEUE_NAMES:
        q = queue(name, connection)
        rows.append({"name": name, "queued": q.count, "failed": FailedJobRegistry(queue=q).count})
    return rows


def org_outbox_stats(tenant_id: uuid.UUID) -> dict:
    """One organization's outbox (RLS shows only its rows): events waiting, dead letters, the oldest wait."""
    row = db.session.execute(
        select(func.count().filter(OutboxEvent.dead_at.is_(None)),
               func.count().filter(OutboxEvent.dead_at.is_not(None)),
               func.coalesce(func.extract("epoch", func.now() - func.min(OutboxEvent.created_at)
                                          .filter(OutboxEvent.dead_at.is_(None))), 0))
        .where(OutboxEvent.tenant_id == tenant_id)).one()
    return {"pending": row[0], "dead": row[1], "oldest_age_seconds": max(0.0, float(row[2]))}


def outbox_stats() -> dict:
    """Platform-wide counts (no event content): pending, dead, age of the oldest pending event."""
    row = db.session.execute(text("SELECT pending, dead, oldest_age_seconds FROM outbox_stats()")).one()
    return {"pending": row.pending, "dead": row.dead, "oldest_age_seconds": float(row.oldest_age_seconds)}


def dead_letters(tenant_id: uuid.UUID, limit: int = 50) -> list[OutboxEvent]:
    """This organization's events that exhausted their attempts (RLS shows only its own)."""
    return list(db.session.scalars(
        select(OutboxEvent).where(OutboxEvent.tenant_id == tenant_id, OutboxEvent.dead_at.is_not(None))
        .order_by(OutboxEvent.dead_at.desc()).limit(limit)
    ))


def retry_dead_letter(tenant_id: uuid.UUID, event_id: uuid.UUID) -> bool:
    """Put a dead event back in line; ``False`` when there is no such dead event here."""
    result = db.session.execute(
        update(OutboxEvent)
        .where(OutboxEvent.tenant_id == tenant_id, OutboxEvent.id == event_id, OutboxEvent.dead_at.is_not(None))
        .values(dead_at=None, attempts=0, last_error=None, available_at=db.func.now())
    )
    return result.rowcount == 1


def failed_jobs(tenant_id: uuid.UUID, limit: int = 50) -> list[dict]:
    """Failed jobs of this organization's events (jobs carry their tenant id)."""
    found = []
    for name, job in _failed_jobs():
        if _job_tenant(job) != str(tenant_id):
            continue
        result = job.latest_result()
        found.append({"id": job.id, "queue": name, "description": job.description,
                      "ended_at": job.ended_at, "error": (result.exc_string or "").strip().splitlines()[-1:]
                      if result else []})
        if len(found) >= limit:
            break
    return found


def all_failed_jobs(limit: int = 100) -> list[dict]:
    """Failed jobs of every organization, for the operators: ids, queue, topic, organization and the
    exception's type only (never a job's description, arguments or error message, which may quote content)."""
    found = []
    for name, job in _failed_jobs():
        result = job.latest_result()
        last = (result.exc_string or "").strip().splitlines()[-1:] if result else []
        found.append({"id": job.id, "queue": name, "topic": _job_topic(job), "tenant_id": _job_tenant(job),
                      "ended_at": job.ended_at, "error_type": _exception_type(last[0]) if last else ""})
        if len(found) >= limit:
            break
    return found


def _failed_jobs():
    """``(queue name, job)`` of the oldest 500 or so failed jobs of each queue."""
    connection = redis_conn()
    for name in QUEUE_NAMES:
        registry = FailedJobRegistry(queue=queue(name, connection))
        for job_id in registry.get_job_ids(0, 500):
            job = _job(job_id, connection)
            if job is not None:
                yield name, job


def _exception_type(line: str) -> str:
    """``ValueError`` of ``ValueError: the message`` (a dotted name at most 100 characters long, else "")."""
    name = line.split(":", 1)[0].strip()
    return name if len(name) <= 100 and all(part.isidentifier() for part in name.split(".")) else ""


def _job(job_id: str, connection):
    try:
        return Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
    except NoSuchJobError:
        return None


def _job_tenant(job) -> str | None:
    try:
        return (job.args[0] or {}).get("tenant_id")
    except (IndexError, AttributeError, TypeError):
        return None


def _job_topic(job) -> str:
    try:
        topic = (job.args[0] or {}).get("topic")
    except (IndexError, AttributeError, TypeError):
        return ""
    return topic if isinstance(topic, str) else ""


def retry_failed_job(tenant_id: uuid.UUID | None, job_id: str, *, any_tenant: bool = False) -> bool:
    """Requeue a failed job of this organization (or of any, for the operators' console)."""
    job = _job(job_id, redis_conn())
    if job is None or not (any_tenant or _job_tenant(job) == str(tenant_id)):
        return False
    registry = FailedJobRegistry(queue=queue(job.origin, redis_conn()))
    if job.id not in registry:
        return False
    registry.requeue(job)
    return True


def discard_failed_job(tenant_id: uuid.UUID | None, job_id: str, *, any_tenant: bool = False) -> bool:
    """Delete a failed job of this organization (or of any, for the operators' console)."""
    job = _job(job_id, redis_conn())
    if job is None or not (any_tenant or _job_tenant(job) == str(tenant_id)):
        return False
    registry = FailedJobRegistry(queue=queue(job.origin, redis_conn()))
    if job.id not in registry:
        return False
    registry.remove(job, delete_job=True)
    return True
