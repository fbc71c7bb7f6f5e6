"""Consumers of ``test.*`` topics for the outbox and fault tests.

Each leaves one observable effect in the consumer's transaction: an ``audit_events`` row
(action ``test.effect``, ``target_id`` = the payload's ``mark``), so a test counts how
many times an event took effect. The tests import this module; worker and relay
subprocesses load it through ``COACH_EXTRA_CONSUMERS=tests.fault_consumers``.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from flask import g
from sqlalchemy import text

from coach.extensions import db
from coach.platform import audit
from coach.platform.events import Topic
from coach.platform.jobs import consumer

EFFECT = "test.effect"

TEST_COUNT = Topic("test.count", "mark: the effect's target_id")
TEST_FLAKY = Topic("test.flaky", "mark; fail_while: a file; the consumer fails while it exists")
TEST_WHOAMI = Topic("test.whoami", "mark: the effect records the tenant setting and request id")
TEST_SLOW = Topic("test.slow", "mark; marker: a file of pids; sleep: seconds the first attempt sleeps")
TEST_LEDGER = Topic("test.ledger", "mark; trace: a file each attempt appends start/end lines to; hold: a file that may "
                                   "name a worker whose work horses then hold their transaction open for a minute")
# Declared on the notifications queue, consumed by nobody: the relay's routing test.
TEST_NOTIFY = Topic("test.notify", "mark", queue="notifications")


def _effect(payload: dict, **details) -> None:
    audit.record(EFFECT, target_type="test", target_id=payload["mark"], details=details)


@consumer(TEST_COUNT)
def count(payload: dict) -> None:
    """The plain effect."""
    _effect(payload)


@consumer(TEST_FLAKY)
def flaky(payload: dict) -> None:
    """Writes its effect, then fails (rolling it back) while the file ``payload["fail_while"]`` exists."""
    _effect(payload)
    if os.path.exists(payload["fail_while"]):
        raise RuntimeError("test.flaky: told to fail")


@consumer(TEST_WHOAMI)
def whoami(payload: dict) -> None:
    """Records what the job sees: the organization PostgreSQL was told and the request id."""
    setting = db.session.execute(text("SELECT current_setting('app.tenant_id', true)")).scalar()
    _effect(payload, tenant_setting=setting, request_id=g.get("request_id"))


@consumer(TEST_SLOW)
def slow(payload: dict) -> None:
    """Appends its pid to ``payload["marker"]``; the first attempt then sleeps (to be killed meanwhile)."""
    marker = Path(payload["marker"])
    first = not marker.exists()
    with marker.open("a") as f:
        f.write(f"{os.getpid()}\n")
    if first:
        time.sleep(float(payload.get("sleep", 30)))
    _effect(payload)


@consumer(TEST_LEDGER)
def ledger(payload: dict) -> None:
    """The effect (with the pid that wrote it). A work horse of the worker whose pid is in the file
    ``payload["hold"]`` then holds its transaction open for a minute (the test kills that worker
    meanwhile). ``start``/``end`` lines in ``payload["trace"]`` tell the test what each attempt did."""
    trace = Path(payload["trace"])
    _trace(trace, "start", payload["mark"])
    _effect(payload, pid=os.getpid())
    hold = Path(payload["hold"])
    if hold.exists() and hold.read_text().strip() == str(os.getppid()):
        _trace(trace, "hold", payload["mark"])
        time.sleep(60)
    _trace(trace, "end", payload["mark"])


def _trace(path: Path, what: str, mark: str) -> None:
    with path.open("a") as f:  # one short line per write (O_APPEND): lines of several processes never mix
        f.write(f"{os.getpid()} {what} {mark} {time.time():.3f}\n")
