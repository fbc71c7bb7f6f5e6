"""Helpers shared by the outbox and fault tests."""
from __future__ import annotations

import os
import signal
import socket
import time
from contextlib import contextmanager

from rq.job import Job
from rq.serializers import JSONSerializer

from coach import create_app


def closed_port() -> int:
    """A localhost port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def other_app(app, **overrides):
    """A second app on the session app's settings plus ``overrides``.

    ``create_app`` rebinds process-wide state to the newest app: Flask-Limiter's shared
    ``limiter`` (its storage then points at the new app's Redis) and the metrics module's
    app (whose database it reads at scrape time). Both are put back afterwards, so later
    tests do not inherit a dead Redis or a stopped PostgreSQL.
    """
    from coach.platform import metrics
    from coach.platform.ratelimit import limiter

    saved, saved_options = dict(vars(limiter)), dict(limiter._storage_options)
    saved_metrics_app = metrics._app
    config = {k: app.config[k] for k in ("SECRET_KEY", "SQLALCHEMY_DATABASE_URI", "DATABASE_OWNER_URL", "REDIS_URL",
                                         "MAIL_SERVER", "MAIL_PORT", "APP_BASE_URL")}
    config.update(COACH_ENV="testing", SERVER_NAME=None, **overrides)
    try:
        other = create_app(config)
        other.test_client_class = app.test_client_class
        yield other
    finally:
        metrics._app = saved_metrics_app
        vars(limiter).clear()
        vars(limiter).update(saved)
        limiter._storage_options.clear()
        limiter._storage_options.update(saved_options)


def act_for(owner_db, tenant_id) -> None:
    """Let the owner connection see one organization's rows (RLS is forced for the owner too)."""
    owner_db.execute("SELECT set_config('app.tenant_id', %s, false)", [str(tenant_id)])


def effects(owner_db, tenant_id, mark: str) -> list[dict]:
    """The ``details`` of every effect a ``test.*`` consumer left for ``mark`` (see tests/fault_consumers.py)."""
    act_for(owner_db, tenant_id)
    rows = owner_db.execute("SELECT details FROM audit_events WHERE action = 'test.effect' AND target_id = %s",
                            [mark]).fetchall()
    return [r[0] for r in rows]


def processed(owner_db, tenant_id) -> int:
    act_for(owner_db, tenant_id)
    return owner_db.execute("SELECT count(*) FROM processed_events").fetchone()[0]


def outbox_row(owner_db, event_id):
    """The outbox row of ``event_id`` as a dict, or ``None`` once it is gone (the owner sees every row)."""
    cur = owner_db.execute("SELECT *, available_at - now() AS due_in FROM outbox_events WHERE id = %s",
                           [str(event_id)])
    row = cur.fetchone()
    return dict(zip([c.name for c in cur.description], row)) if row else None


def fetch_job(connection, event_id) -> Job:
    return Job.fetch(f"event-{event_id}", connection=connection, serializer=JSONSerializer)


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy (returned) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def stuck_past_the_alarm(marker: str) -> None:
    """An RQ job (not an event) that appends its pid to ``marker``; its first attempt then blocks SIGALRM and
    sleeps an hour: RQ's timeout cannot stop it, only killing its process can (a C call that never returns)."""
    first = not os.path.exists(marker)
    with open(marker, "a") as f:
        f.write(f"{os.getpid()}\n")
    if first:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(3600)
