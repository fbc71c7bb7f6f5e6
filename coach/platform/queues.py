"""Redis connections and RQ queues, configured once per process."""
from __future__ import annotations

from functools import lru_cache

from flask import current_app
from redis import BlockingConnectionPool, Redis
from rq import Queue
from rq.serializers import JSONSerializer

QUEUE_NAMES = ("default", "mail", "media", "notifications")


@lru_cache(maxsize=8)
def _redis_for(url: str, max_connections: int) -> Redis:
    # Short timeouts: a Redis outage must fail fast, never hang a request. A bounded pool that waits
    # (up to 2 s) for a free connection: 1,000 sockets closing at once under gevent would otherwise
    # open 1,000 connections to Redis together, and many time out in its accept queue.
    pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=2, socket_timeout=2,
                                           socket_connect_timeout=2, health_check_interval=30)
    return Redis(connection_pool=pool)


def redis_conn() -> Redis:
    return _redis_for(current_app.config["REDIS_URL"], current_app.config["REDIS_MAX_CONNECTIONS"])


def queue(name: str, connection: Redis | None = None) -> Queue:
    if name not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {name!r}")
    return Queue(name, connection=connection or redis_conn(), serializer=JSONSerializer)


class PromptStop:
    """Mixin for RQ workers: stop within a second instead of up to a minute.

    RQ listens for its commands (stop a job, shut down) on a pub/sub thread that waits 60 s per
    read, and redis-py ≥ 8.2 joins that thread without a timeout when RQ stops it: a worker's
    shutdown (a deploy's SIGTERM, a burst worker's end) then hangs until the read times out. The
    same listener, reading a second at a time, is stopped at once.
    """

    PUBSUB_WAIT_SECONDS = 1.0

    def subscribe(self):
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(sleep_time=self.PUBSUB_WAIT_SECONDS, daemon=True,
                                                       exception_handler=self._pubsub_exception_handler)
