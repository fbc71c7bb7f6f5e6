"""The production worker (``python worker.py``, as the Procfile runs it) reuses its process across jobs and keeps
what a fork per job gave: a job past its timeout is stopped and the worker goes on; a job the alarm cannot stop
is killed with its work process and retried; the work process is replaced after ``WORKER_MAX_JOBS`` jobs and no
job is lost or run twice; SIGTERM stops it promptly.

Real processes against the session's PostgreSQL and Valkey (the fault tests' :class:`Processes`).
"""
from __future__ import annotations

import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import psutil
from rq import Retry

from coach.extensions import db
from coach.platform import relay
from coach.platform.outbox import emit
from coach.platform.queues import queue, redis_conn
from tests.outbox_support import effects, wait_until
from tests.test_faults import FAST_RECOVERY, org, processes, scratch  # noqa: F401  (fixtures)


def _event(org, topic: str, payload: dict) -> dict:
    """An event as the relay hands it to ``handle_event`` (for jobs enqueued with settings of the test's own)."""
    return {"id": str(uuid.uuid4()), "tenant_id": str(org.id), "topic": topic, "payload": payload,
            "request_id": None, "created_at": time.time()}


def _pids(marker) -> list[int]:
    return [int(line) for line in marker.read_text().split()] if marker.exists() else []


def test_a_job_past_its_timeout_is_stopped_and_the_worker_goes_on_with_the_next(quiet, org, owner_db, processes,
                                                                                 scratch):
    stuck_marker, next_marker = scratch / "stuck", scratch / "next"
    default = queue("default", redis_conn())
    stuck = default.enqueue("coach.platform.jobs.handle_event",
                            _event(org, "test.slow", {"mark": "stuck", "marker": str(stuck_marker), "sleep": 3600}),
                            job_timeout=2)
    after = default.enqueue("coach.platform.jobs.handle_event",
                            _event(org, "test.slow", {"mark": "next", "marker": str(next_marker), "sleep": 0}))
    worker = processes.start("worker", ["worker.py"], **FAST_RECOVERY)
    wait_until(lambda: stuck_marker.exists() or worker.poll() is not None, 30, "the stuck job to start")
    started = time.monotonic()
    try:
        wait_until(lambda: effects(owner_db, org.id, "next") or worker.poll() is not None, 20,
                   "the next job to run")
    except AssertionError:
        raise AssertionError(processes.log(worker)) from None
    assert time.monotonic() - started < 10  # the stuck job was stopped at its 2 s, not after its hour
    assert stuck.get_status(refresh=True) == "failed"
    assert "JobTimeoutException" in stuck.latest_result().exc_string
    assert effects(owner_db, org.id, "stuck") == []  # its transaction was rolled back
    assert len(effects(owner_db, org.id, "next")) == 1
    wait_until(lambda: after.get_status(refresh=True) == "finished", 5, "the next job to finish")
    # One work process ran both, a child of the worker the Procfile starts.
    assert _pids(stuck_marker) == _pids(next_marker)
    assert _pids(stuck_marker)[0] in {p.pid for p in psutil.Process(worker.pid).children()}


def test_a_job_the_alarm_cannot_stop_is_killed_with_its_work_process_and_retried(quiet, ctx, processes, scratch):
    marker = scratch / "attempts"
    job = queue("default", redis_conn()).enqueue("tests.outbox_support.stuck_past_the_alarm", str(marker),
                                                 job_timeout=1, retry=Retry(max=1, interval=[0]))
    worker = processes.start("worker", ["worker.py"], WORKER_KILL_GRACE="1", **FAST_RECOVERY)
    try:
        wait_until(lambda: len(_pids(marker)) >= 2 or worker.poll() is not None, 30, "the job to run again")
        wait_until(lambda: job.get_status(refresh=True) == "finished", 10, "the retry to finish")
    except AssertionError:
        raise AssertionError(processes.log(worker)) from None
    first, second = _pids(marker)
    assert first != second and not psutil.pid_exists(first)  # killed, and a new work process took over
    assert worker.poll() is None  # the worker itself lives on
    assert "past its timeout; killing it" in processes.log(worker)


def test_the_work_process_is_replaced_after_max_jobs_and_no_job_is_lost_or_run_twice(quiet, org, owner_db,
                                                                                      processes, scratch):
    marker = scratch / "pids"
    marks = [f"recycle-{n}" for n in range(10)]
    for mark in marks:
        emit("test.slow", {"mark": mark, "marker": str(marker), "sleep": 0}, tenant_id=org.id)
    db.session.commit()
    assert relay.relay_once() == len(marks)
    worker = processes.start("worker", ["worker.py"], WORKER_MAX_JOBS="3", **FAST_RECOVERY)
    try:
        wait_until(lambda: all(effects(owner_db, org.id, mark) for mark in marks) or worker.poll() is not None, 60,
                   "every job to run")
    except AssertionError:
        raise AssertionError(processes.log(worker)) from None
    time.sleep(0.5)  # a second run of any job would show now
    assert {mark: len(effects(owner_db, org.id, mark)) for mark in marks} == {mark: 1 for mark in marks}
    runs_per_process = Counter(_pids(marker))
    assert sum(runs_per_process.values()) == len(marks)
    assert len(runs_per_process) >= 4 and max(runs_per_process.values()) <= 3, runs_per_process
    assert worker.pid not in runs_per_process and worker.poll() is None  # the supervisor stays
    assert Path(worker.log_path).read_text().count("stopping to be replaced: ran 3 jobs") >= 3

    # A deploy's SIGTERM stops the worker and its work process promptly.
    child = psutil.Process(worker.pid).children()
    stopped_at = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=10) == 0
    assert time.monotonic() - stopped_at < 5
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in child)
