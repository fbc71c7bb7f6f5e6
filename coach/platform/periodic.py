"""Periodic jobs on RQ's own scheduling (``enqueue_at``), run by the worker's built-in scheduler.

Domains register their sweeps with :func:`periodic` (in their ``jobs`` module, loaded by the app
factory); platform knows none of them. Each periodic job re-schedules its next run when it runs, and
every worker makes sure at start that each one is scheduled, so a restart or an empty Redis never
loses them. (``rq cron`` would need the pickle serializer; our jobs are JSON.)
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from rq import Retry, get_current_job
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import text

from coach.clock import now
from coach.extensions import db
from coach.platform.jobs import get_app
from coach.platform.queues import queue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sweep:
    name: str
    every: int  # seconds between runs
    func: Callable[[], int]  # returns how many rows it handled; commits its own work


SCHEDULE: dict[str, Sweep] = {}


def periodic(every: int, name: str | None = None):
    """Register ``func()`` to run every ``every`` seconds in a worker (by its name, unique)."""

    def decorator(func: Callable[[], int]):
        key = name or func.__name__
        existing = SCHEDULE.get(key)
        if existing is not None and existing.func is not func:
            raise ValueError(f"periodic job {key!r} is registered twice")
        SCHEDULE[key] = Sweep(key, every, func)
        return func

    return decorator


@periodic(every=6 * 3600)
def sweep_processed_events() -> int:
    # Redelivery happens within hours; a month of history is plenty to stay idempotent.
    removed = db.session.execute(text("SELECT processed_events_sweep(interval '30 days')")).scalar_one()
    db.session.commit()
    return removed


def _job_id(name: str, when: datetime) -> str:
    return f"periodic-{name}-{int(when.timestamp())}"


def _schedule(name: str, delay: timedelta):
    when = now() + delay
    return queue("default").enqueue_at(when, run, name, job_id=_job_id(name, when),
                                       job_timeout=600, retry=Retry(max=2, interval=[60, 300]),
                                       result_ttl=3600, description=f"periodic {name}")


def run(name: str) -> int:
    """Run periodic job ``name`` and schedule its next run."""
    app = get_app()
    with app.app_context():
        sweep = SCHEDULE.get(name)
        if sweep is None:
            raise ValueError(f"unknown periodic job {name!r}")
        try:
            done = sweep.func()
        except Exception:
            # Schedule the next run only once RQ has no retry left, so the chain never forks.
            job = get_current_job()
            if job is None or not job.retries_left:
                _schedule(name, timedelta(seconds=sweep.every))
            raise
        log.info("periodic %s: %s rows", name, done)
        _schedule(name, timedelta(seconds=sweep.every))
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
