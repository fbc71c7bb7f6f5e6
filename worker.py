"""RQ worker: ``python worker.py`` (queues from ``RQ_QUEUES``, default: default, mail, media, notifications).

Runs RQ's built-in scheduler too (``with_scheduler``), so no rq-scheduler is needed.
"""
from __future__ import annotations

import os

from redis import Redis
from rq import Queue, Worker
from rq.serializers import JSONSerializer

from coach import create_app
from coach.platform.periodic import ensure_scheduled

QUEUES = [q.strip() for q in os.environ.get("RQ_QUEUES", "default,mail,media,notifications").split(",") if q.strip()]


def main() -> None:
    app = create_app()
    connection = Redis.from_url(app.config["REDIS_URL"])
    with app.app_context():
        queues = [Queue(name, connection=connection, serializer=JSONSerializer) for name in QUEUES]
        worker = Worker(queues, connection=connection, serializer=JSONSerializer)
        try:
            ensure_scheduled()  # periodic sweeps: make sure each has a pending run
        except Exception:  # Redis away at start: the worker's own loop retries connecting
            app.logger.exception("could not schedule periodic jobs")
        worker.work(with_scheduler=True)


if __name__ == "__main__":
    main()
