"""Periodic jobs on RQ's own scheduling (``enqueue_in``), run by the worker's built-in scheduler.

Each periodic job re-schedules its next run when it runs, and every worker makes
sure at start that each one is scheduled, so a restart or an empty Redis never
loses them. (``rq cron`` would need the pickle serializer; our jobs are JSON.)
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from rq import Retry, get_current_job
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import delete, text

from coach.extensions import db
from coach.platform.queues import queue

log = logging.getLogger(__name__)

# name → (seconds between runs, what it does)
SCHEDULE: dict[str, int] = {
    "sweep_idempotency_keys": 3600,
    "sweep_processed_events": 6 * 3600,
    "sweep_expired_tokens": 3600,
    "sweep_bookings": 60,
    "sweep_media": 600,
    "send_notification_emails": 60,
}


def send_notification_emails() -> int:
    from coach.notifications.jobs import sweep_all

    return sweep_all()


def sweep_idempotency_keys() -> int:
    from coach.platform.idempotency import sweep

    return sweep(72)


def sweep_processed_events() -> int:
    # Redelivery happens within hours; a month of history is plenty to stay idempotent.
    removed = db.session.execute(text("SELECT processed_events_sweep(interval '30 days')")).scalar_one()
    db.session.commit()
    return removed


def sweep_expired_tokens() -> int:
    from coach.accounts.models import PasswordResetToken, PendingSignup

    now = datetime.now(timezone.utc)
    removed = db.session.execute(delete(PendingSignup).where(PendingSignup.expires_at < now)).rowcount
    removed += db.session.execute(
        delete(PasswordResetToken).where(PasswordResetToken.expires_at < now - timedelta(days=7))).rowcount
    db.session.commit()
    return removed


def sweep_bookings() -> int:
    # The safety net under the precise per-booking jobs: expiries, starts, ends, reminders.
    from coach.booking.jobs import sweep_all

    return sweep_all()


def sweep_media() -> int:
    # Abandoned uploads (aborted, room released), processing that never finished, deletions to redo.
    from coach.media.jobs import sweep_all

    return sweep_all()


def _job_id(name: str, when: datetime) -> str:
    return f"periodic-{name}-{int(when.timestamp())}"


def _schedule(name: str, delay: timedelta):
    when = datetime.now(timezone.utc) + delay
    return queue("default").enqueue_at(when, "coach.platform.periodic.run", name, job_id=_job_id(name, when),
                                       job_timeout=600, retry=Retry(max=2, interval=[60, 300]),
                                       result_ttl=3600, description=f"periodic {name}")


def run(name: str) -> int:
    """Run periodic job ``name`` and schedule its next run."""
    from coach.platform.jobs import _get_app

    if name not in SCHEDULE:
        raise ValueError(f"unknown periodic job {name!r}")
    app = _get_app()
    with app.app_context():
        try:
            done = globals()[name]()
        except Exception:
            # Schedule the next run only once RQ has no retry left, so the chain never forks.
            job = get_current_job()
            if job is None or not job.retries_left:
                _schedule(name, timedelta(seconds=SCHEDULE[name]))
            raise
        log.info("periodic %s: %s rows", name, done)
        _schedule(name, timedelta(seconds=SCHEDULE[name]))
        return done


def ensure_scheduled() -> list[str]:
    """Schedule every periodic job that has no pending run (idempotent; called at worker start)."""
    q = queue("default")
    pending = set(ScheduledJobRegistry(queue=q).get_job_ids()) | set(q.job_ids) | \
        set(StartedJobRegistry(queue=q).get_job_ids())
    scheduled = []
    for name in SCHEDULE:
        if not any(job_id.startswith(f"periodic-{name}-") for job_id in pending):
            _schedule(name, timedelta(seconds=30))
            scheduled.append(name)
    return scheduled
