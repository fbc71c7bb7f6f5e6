"""RQ worker: ``python worker.py`` (queues from ``RQ_QUEUES``, default: default, mail, media, notifications).

Runs RQ's built-in scheduler too (``with_scheduler``), so no rq-scheduler is needed.

A worker that dies mid-job (kill -9, lost machine) leaves its job in the queue's
started registry; another worker's maintenance retries it once the dead worker's
heartbeat has expired (the job's ``Retry``; consumers are idempotent). How soon
that happens is tunable (coach/config.py); the defaults retry it within a minute:

``RQ_JOB_MONITORING_INTERVAL`` (10)  seconds between heartbeats while a job runs
``RQ_HEARTBEAT_GRACE`` (20)         seconds a missed heartbeat is tolerated before the job counts as abandoned
``RQ_MAINTENANCE_INTERVAL`` (20)    seconds between registry clean-ups (abandoned jobs are found there)
``RQ_WORKER_TTL`` (35)              worker key lifetime; an idle worker wakes every ``RQ_WORKER_TTL - 15`` s
``RQ_WITH_SCHEDULER`` (true)        run the scheduler (``enqueue_at``/``enqueue_in``, retry intervals) here
"""
from __future__ import annotations

from redis import Redis
from rq import Queue, Worker
from rq.serializers import JSONSerializer

from coach.app import create_app
from coach.platform.periodic import ensure_scheduled
from coach.platform.queues import PromptStop

class CoachWorker(PromptStop, Worker):
    """RQ's forking worker with the heartbeat grace configurable (RQ fixes it at 60 s), stopping promptly."""

    heartbeat_grace = 60

    def get_heartbeat_ttl(self, job, working_time: float = 0.0) -> int:
        if job.timeout and job.timeout > 0:
            return int(min(job.timeout - working_time, self.job_monitoring_interval)) + self.heartbeat_grace
        return self.job_monitoring_interval + self.heartbeat_grace


def main() -> None:
    # Building the app loads every installed domain's consumers and sweeps once here, so each forked
    # work horse inherits them instead of importing per job.
    app = create_app()
    config = app.config
    connection = Redis.from_url(config["REDIS_URL"])
    CoachWorker.heartbeat_grace = config["RQ_HEARTBEAT_GRACE"]
    with app.app_context():
        queues = [Queue(name, connection=connection, serializer=JSONSerializer) for name in config["RQ_QUEUES"]]
        worker = CoachWorker(
            queues, connection=connection, serializer=JSONSerializer,
            worker_ttl=config["RQ_WORKER_TTL"],
            job_monitoring_interval=config["RQ_JOB_MONITORING_INTERVAL"],
            maintenance_interval=config["RQ_MAINTENANCE_INTERVAL"],
        )
        try:
            ensure_scheduled()  # periodic sweeps: make sure each has a pending run
        except Exception:  # Redis away at start: the worker's own loop retries connecting
            app.logger.exception("could not schedule periodic jobs")
        worker.work(with_scheduler=config["RQ_WITH_SCHEDULER"])


if __name__ == "__main__":
    main()
