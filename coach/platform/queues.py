"""Redis connections and RQ queues, configured once per process."""
from __future__ import annotations

from functools import lru_cache

from flask import current_app
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

QUEUE_NAMES = ("default", "mail", "media", "notifications")


@lru_cache(maxsize=8)
def _redis_for(url: str) -> Redis:
    # Short timeouts: a Redis outage must fail fast, never hang a request.
    return Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30)


def redis_conn() -> Redis:
    return _redis_for(current_app.config["REDIS_URL"])


def queue(name: str, connection: Redis | None = None) -> Queue:
    if name not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {name!r}")
    return Queue(name, connection=connection or redis_conn(), serializer=JSONSerializer)


def queue_for_topic(topic: str) -> str:
    """Which queue an outbox topic's job runs on."""
    # Events of the media domain only queue the real work on ``media`` themselves (a transcode can take
    # minutes): their consumers, and the notifications some of them make, must not wait behind one.
    prefix = topic.split(".", 1)[0]
    return {"mail": "mail", "notify": "notifications"}.get(prefix, "default")
