"""RQ worker: ``python worker.py`` (queues from ``RQ_QUEUES``, default: default, mail, media, notifications).

Runs RQ's built-in scheduler too (``with_scheduler``), so no rq-scheduler is needed.

A worker that dies mid-job (kill -9, lost machine) leaves its job in the queue's
started registry; another worker's maintenance retries it once the dead worker's
heartbeat has expired (the job's ``Retry``; consumers are idempotent). How soon
that happens is tunable; the defaults are RQ's:

``RQ_JOB_MONITORING_INTERVAL`` (30)  seconds between heartbeats while a job runs
``RQ_HEARTBEAT_GRACE`` (60)         seconds a missed heartbeat is tolerated before the job counts as abandoned
``RQ_MAINTENANCE_INTERVAL`` (600)   seconds between registry clean-ups (abandoned jobs are found there)
``RQ_WORKER_TTL`` (420)             worker key lifetime; an idle worker wakes every ``RQ_WORKER_TTL - 15`` s
``RQ_WITH_SCHEDULER`` (true)        run the scheduler (``enqueue_at``/``enqueue_in``, retry intervals) here
"""
from __future__ import annotations

import os

from redis import Redis
from rq import Queue, Worker
from rq.defaults import DEFAULT_JOB_MONITORING_INTERVAL, DEFAULT_MAINTENANCE_TASK_INTERVAL, DEFAULT_WORKER_TTL
from rq.serializers import JSONSerializer

from coach import create_app
from coach.platform.jobs import _load_consumers
from coach.platform.periodic import ensure_scheduled
from coach.platform.queues import PromptStop

QUEUES = [q.strip() for q in os.environ.get("RQ_QUEUES", "default,mail,media,notifications").split(",") if q.strip()]


def _seconds(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    number = int(value)
    if number < 1:
        raise ValueError(f"{name} must be at least 1, got {value!r}")
    return number


class CoachWorker(PromptStop, Worker):
    """RQ's forking worker with the heartbeat grace configurable (RQ fixes it at 60 s), stopping promptly."""

    heartbeat_grace = 60

    def get_heartbeat_ttl(self, job, working_time: float = 0.0) -> int:
        if job.timeout and job.timeout > 0:
            return int(min(job.timeout - working_time, self.job_monitoring_interval)) + self.heartbeat_grace
        return self.job_monitoring_interval + self.heartbeat_grace


def main() -> None:
    app = create_app()
    connection = Redis.from_url(app.config["REDIS_URL"])
    CoachWorker.heartbeat_grace = _seconds("RQ_HEARTBEAT_GRACE", 60)
    with_scheduler = os.environ.get("RQ_WITH_SCHEDULER", "true").strip().lower() not in {"0", "false", "no", "off"}
    # Import every consumer once here, so each forked work horse inherits them instead of importing per job.
    _load_consumers()
    with app.app_context():
        queues = [Queue(name, connection=connection, serializer=JSONSerializer) for name in QUEUES]
        worker = CoachWorker(
            queues, connection=connection, serializer=JSONSerializer,
            worker_ttl=_seconds("RQ_WORKER_TTL", DEFAULT_WORKER_TTL),
            job_monitoring_interval=_seconds("RQ_JOB_MONITORING_INTERVAL", DEFAULT_JOB_MONITORING_INTERVAL),
            maintenance_interval=_seconds("RQ_MAINTENANCE_INTERVAL", DEFAULT_MAINTENANCE_TASK_INTERVAL),
        )
        try:
            ensure_scheduled()  # periodic sweeps: make sure each has a pending run
        except Exception:  # Redis away at start: the worker's own loop retries connecting
            app.logger.exception("could not schedule periodic jobs")
        worker.work(with_scheduler=with_scheduler)


if __name__ == "__main__":
    main()
