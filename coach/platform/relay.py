"""The outbox relay: claims events, enqueues one RQ job each, deletes them once enqueued.

Run as ``python relay.py`` (the Procfile's ``relay``). Several relays
may run at once: each claims a batch with ``FOR UPDATE SKIP LOCKED`` inside its own
transaction, so no event is claimed twice at the same time; a relay that dies
mid-batch leaves its events locked only until its transaction aborts, and they
are delivered again (consumers are idempotent). Wakes on ``LISTEN outbox_events``,
polls slowly as a fallback.
"""
from __future__ import annotations

import logging
import select
import signal
import time

import psycopg
from flask import current_app
from redis.exceptions import RedisError
from rq import Retry
from sqlalchemy import text

from coach.extensions import db
from coach.platform.events import queue_for_topic
from coach.platform.jobs import handle_event
from coach.platform.queues import QUEUE_NAMES, queue, redis_conn

log = logging.getLogger(__name__)

# Batch size, poll interval and attempts are settings (OUTBOX_BATCH, OUTBOX_POLL_SECONDS,
# OUTBOX_MAX_ATTEMPTS in coach.config), read from the app the relay runs in.
JOB_TIMEOUT = 300
# The first retry is immediate: a job whose worker died is requeued by the next worker's maintenance
# without waiting for a scheduler (whose lock a killed worker may hold for a minute more).
JOB_RETRY = Retry(max=5, interval=[0, 30, 120, 600, 1800])


def _job_data(q, row) -> object:
    event = {
        "id": str(row.id),
        "tenant_id": str(row.tenant_id) if row.tenant_id else None,
        "topic": row.topic,
        "payload": row.payload,
        "request_id": row.request_id,
        "created_at": row.created_at.timestamp(),
    }
    return q.prepare_data(handle_event, args=[event], job_id=f"event-{row.id}",
                          timeout=JOB_TIMEOUT, retry=JOB_RETRY, result_ttl=300, failure_ttl=7 * 24 * 3600,
                          description=f"{row.topic} {row.id}")


def relay_once(batch: int | None = None) -> int:
    """Move up to ``batch`` (default ``OUTBOX_BATCH``) due events to RQ; returns how many were delivered."""
    config = current_app.config
    batch = batch or config["OUTBOX_BATCH"]
    connection = redis_conn()
    with db.engine.begin() as conn:
        rows = conn.execute(text("SELECT * FROM outbox_claim(:n)"), {"n": batch}).all()
        if not rows:
            return 0
        by_queue: dict[str, list] = {}
        for row in rows:
            by_queue.setdefault(queue_for_topic(row.topic), []).append(row)
        # Every job of the batch, whatever its queue, in one pipeline: one round trip to Redis per batch, and
        # all of them or none (MULTI/EXEC). The events are deleted only after it succeeded (below), so a relay
        # that dies in between delivers them again: at least once, and the consumers are idempotent.
        try:
            with connection.pipeline() as pipe:
                for name, queue_rows in by_queue.items():
                    q = queue(name, connection)
                    q.enqueue_many([_job_data(q, row) for row in queue_rows], pipeline=pipe)
                pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("outbox: enqueue failed for %d events: %s", len(rows), exc)
            for row in rows:
                conn.execute(text("SELECT outbox_fail(:id, :err, :max)"),
                             {"id": row.id, "err": f"{type(exc).__name__}: {exc}",
                              "max": config["OUTBOX_MAX_ATTEMPTS"]})
            return 0
        delivered = [row.id for row in rows]
        _after_enqueue_hook(config["RELAY_PAUSE_AFTER_ENQUEUE"])
        conn.execute(text("SELECT outbox_ack(:ids)"), {"ids": delivered})
        return len(delivered)


def _after_enqueue_hook(marker: str) -> None:
    """Test seam for the crash-between-enqueue-and-delete fault test: with a path set
    (``COACH_RELAY_PAUSE_AFTER_ENQUEUE``), write it and stall before the events are acknowledged."""
    if marker:
        open(marker, "w").close()
        time.sleep(3600)


def _listen_connection():
    url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("LISTEN outbox_events")
    return conn


def run_forever(stop=None) -> None:
    """Relay until ``stop()`` returns true (or SIGTERM/SIGINT)."""
    stopping = {"flag": False}

    def _stop(*_):
        stopping["flag"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    listener = None
    backoff = 0.5
    batch, poll_seconds = current_app.config["OUTBOX_BATCH"], current_app.config["OUTBOX_POLL_SECONDS"]
    log.info("outbox relay started (batch=%d, poll=%ss, queues=%s)", batch, poll_seconds, ",".join(QUEUE_NAMES))
    while not stopping["flag"] and not (stop and stop()):
        try:
            if listener is None:
                listener = _listen_connection()
            moved = relay_once(batch)
            backoff = 0.5
            if moved >= batch:
                continue  # more may be waiting
            ready, _, _ = select.select([listener.fileno()], [], [], poll_seconds)
            if ready:
                for _ in listener.notifies(timeout=0):
                    pass
        except Exception as exc:  # database or Redis away: wait and try again, never die
            log.warning("outbox relay: %s; retrying in %.1fs", exc, backoff)
            if listener is not None:
                try:
                    listener.close()
                except Exception:
                    pass
                listener = None
            time.sleep(backoff)
            backoff = min(backoff * 2, 30)
    log.info("outbox relay stopped")
