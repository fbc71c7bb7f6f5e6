"""RQ entry points. Every event job runs in an app context with its organization set for RLS.

Consumers register with :func:`consumer` (a topic may have several: they run in order, in one
transaction). Platform knows no domain: each domain's ``jobs`` module registers its consumers when the
app factory loads the installed domains (``DOMAINS`` in :mod:`coach.app`).

:func:`handle_event` applies an event at most once: the ``processed_events`` row is written in the same
transaction as the consumers' changes, so a redelivered event finds it and does nothing. What must happen
only once that transaction has committed (telling web processes over Redis) is registered with
:func:`after_commit`.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from flask import Flask, current_app, g, has_app_context
from sqlalchemy import text

from coach.platform import tenant_context
from coach.extensions import db

log = logging.getLogger(__name__)

_CONSUMERS: dict[str, list[Callable[[dict], None]]] = {}
_app: Flask | None = None


def consumer(*topics: str):
    """Register ``func(payload)`` as a consumer of each of ``topics`` (:class:`coach.platform.events.Topic`)."""

    def decorator(func):
        for topic in topics:
            funcs = _CONSUMERS.setdefault(topic, [])
            if func not in funcs:
                funcs.append(func)
        return func

    return decorator


def consumers_of(topic: str) -> list[Callable[[dict], None]]:
    """What runs when ``topic`` arrives, in order (the System page and the tests read it)."""
    return list(_CONSUMERS.get(topic, ()))


def after_commit(callback: Callable[[], None]) -> None:
    """Run ``callback`` once the event's transaction has committed (never if it rolls back).

    Outside an event job (a request, a test) it runs at once: the caller commits first there.
    """
    pending = g.get("_after_commit") if has_app_context() else None
    if pending is None:
        callback()
    else:
        pending.append(callback)


def each_tenant(tenant_ids, work: Callable[[uuid.UUID], int], what: str) -> int:
    """Run ``work(tenant_id)`` for each organization, acting for it, one transaction each: a failure is
    logged and stays in its organization. The sum of what ``work`` returned."""
    done = 0
    for tenant_id in tenant_ids:
        db.session.rollback()
        with tenant_context.acting_for(tenant_id):
            try:
                done += work(tenant_id)
                db.session.commit()
            except Exception:
                db.session.rollback()
                log.exception("%s failed for organization %s", what, tenant_id)
    db.session.commit()
    return done


def use_app(app: Flask) -> None:
    """The app jobs run in when RQ calls them outside any app context: the process's first app (the
    factory registers each app it builds; a worker builds one)."""
    global _app
    if _app is None:
        _app = app


def get_app() -> Flask:
    """The app a job runs in: the current one, else the one the factory registered (a worker's)."""
    if has_app_context():
        return current_app._get_current_object()
    if _app is None:
        raise RuntimeError("no app: a job ran in a process that never called coach.create_app()")
    return _app


def handle_event(event: dict) -> str:
    """Apply one outbox event; returns ``"done"``, ``"duplicate"`` or ``"no-consumer"``."""
    app = get_app()
    with app.app_context():
        g.request_id = event.get("request_id") or uuid.uuid4().hex
        tenant_id = uuid.UUID(event["tenant_id"]) if event.get("tenant_id") else None
        tenant_context.activate(tenant_id)
        started = time.time()
        lag_ms = (started - event["created_at"]) * 1000 if event.get("created_at") else None
        funcs = _CONSUMERS.get(event["topic"])
        if not funcs:
            log.error("no consumer for topic %s (event %s)", event["topic"], event["id"])
            return "no-consumer"
        # One statement claims the event: INSERT ... ON CONFLICT DO NOTHING, whose row count says whether this
        # delivery is the first (a concurrent one waits for the other's transaction, then finds its row). No
        # RETURNING and no conflict target: either makes PostgreSQL read the row under the SELECT policies, and
        # a platform event's row (no organization) may be written but not read back. Any other failure (e.g.
        # the organization was deleted) is a real one for RQ to record.
        claimed = db.session.execute(
            text("INSERT INTO processed_events (event_id, tenant_id, topic) VALUES (:id, :tenant, :topic) "
                 "ON CONFLICT DO NOTHING"),
            {"id": event["id"], "tenant": tenant_id, "topic": event["topic"]},
        ).rowcount == 1
        if not claimed:
            db.session.rollback()
            log.info("event %s (%s) already processed", event["id"], event["topic"])
            return "duplicate"
        g._after_commit = []
        try:
            for func in funcs:
                func(event.get("payload") or {})
            db.session.commit()
        except Exception:
            db.session.rollback()
            g._after_commit = None
            raise
        callbacks, g._after_commit = g._after_commit, None
        for callback in callbacks:
            try:
                callback()
            except Exception:  # the change is committed: a hint that did not go out is not a failure
                log.exception("after-commit step of event %s (%s) failed", event["id"], event["topic"])
        log.info("event %s (%s) processed, %.0f ms after commit", event["id"], event["topic"], lag_ms or -1)
        return "done"
