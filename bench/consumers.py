"""The benchmarks' consumer: topic ``bench.noop`` does nothing but record how late it ran.

Loaded by a worker only when ``COACH_EXTRA_CONSUMERS=bench.consumers`` (see
``coach.app.load_domains``); the app never registers it on its own.

The payload carries ``emitted_at``, the epoch seconds taken just before ``emit()`` in the
transaction that is then committed (the event's own ``created_at`` is set at the same moment, at
flush, which a consumer does not see). The latency pushed to Redis is therefore emit-to-consumer:
it includes the commit, the relay, the queue and the worker picking the job up, and is an upper
bound of commit-to-job-start. The record names the event's ``run`` and ``n``, so a run can tell an event that
never ran from one that ran twice.
"""
from __future__ import annotations

import json
import time

from coach.platform.events import Topic
from coach.platform.jobs import consumer
from coach.platform.queues import redis_conn

TOPIC = Topic("bench.noop", "run; n; emitted_at (epoch seconds, for the latency)")
LATENCY_KEY = "bench:outbox:latency"


@consumer(TOPIC)
def record_latency(payload: dict) -> None:
    started = time.time()
    emitted_at = payload.get("emitted_at")
    if emitted_at is None:
        return
    redis_conn().rpush(LATENCY_KEY, json.dumps({"run": payload.get("run"), "n": payload.get("n"),
                                                "seconds": started - emitted_at, "at": started}))
