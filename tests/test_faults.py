"""Faults with real processes: relays and workers killed with SIGKILL (alone, and under a steady stream of
events with a ledger of emitted versus applied), Redis stopped, PostgreSQL restarted (alone, and under
HTTP load against the production web server).

Every wait is bounded and every process started here is killed in ``finally``. The
relay and worker subprocesses run the Procfile's commands against the session's
embedded PostgreSQL and Valkey; they load the test consumers (tests/fault_consumers.py)
through ``COACH_EXTRA_CONSUMERS``. The web server is the Procfile's gunicorn with the
production settings (tests/fault_support.py). A test that stops a server of the session
starts it again before it ends.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import psutil
import psycopg
import pytest
import requests
from flask_migrate import upgrade
from rq import Worker
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

import tests.fault_consumers  # noqa: F401  (registers the test.* consumers in this process too)
from coach.devstack import APP_ROLE, DB_NAME, OWNER_ROLE, bootstrap_roles, socket_dir_of, start_postgres, start_valkey
from coach.extensions import db
from coach.platform import relay
from coach.platform.outbox import emit
from coach.platform.queues import queue, redis_conn
from tests.chat_support import ChatSocket, ChatWorld, Client, cookie_header, has_seq, post_message, unread_badge
from tests.chat_support import login as chat_login
from tests.conftest import Auth, csrf_from
from tests.factories import PASSWORD, make_org, make_user
from tests.fault_support import (Emitter, HttpLoad, attempts, gunicorn, ledger_effects, start_postgres_again,
                                 stop_postgres)
from tests.outbox_support import effects, fetch_job, other_app, outbox_row, processed, wait_until

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def org(ctx):
    return make_org(make_user(), slug="faults")


@pytest.fixture()
def scratch():
    """A short private folder (socket paths must stay short); removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="coach-fault-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _gone(process: psutil.Process | int) -> bool:
    """Exited (a zombie counts: the container's init may never reap it)."""
    try:
        if isinstance(process, int):
            process = psutil.Process(process)
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class Processes:
    """Starts the app's processes with the test stack's settings; kills what is left at the end."""

    def __init__(self, stack, folder: Path):
        self.stack, self.folder, self.started = stack, folder, []

    def env(self, **extra) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COACH_", "RQ_", "OUTBOX_", "RATELIMIT_"))}
        env.update(COACH_ENV="testing", SECRET_KEY="test-secret-key-not-for-production",
                   DATABASE_URL=self.stack.database_url, DATABASE_OWNER_URL=self.stack.owner_url,
                   REDIS_URL=self.stack.redis_url, COACH_EXTRA_CONSUMERS="tests.fault_consumers",
                   LOG_LEVEL="INFO", PYTHONUNBUFFERED="1")
        env.update(extra)
        return env

    def start(self, name: str, args: list[str], **env) -> subprocess.Popen:
        log = (self.folder / f"{name}.log").open("wb")
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=self.env(**env), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        proc.log_path = log.name
        self.started.append(proc)
        return proc

    @staticmethod
    def kill(proc: subprocess.Popen) -> None:
        """SIGKILL the process and everything it started (the worker's work process, RQ's scheduler)."""
        try:
            family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            family = []
        for member in family:  # parent first: it must not see its children die
            try:
                member.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        proc.wait(timeout=10)
        wait_until(lambda: all(_gone(member) for member in family), 10, "killed processes to exit")

    def log(self, proc) -> str:
        return Path(proc.log_path).read_text(errors="replace")[-4000:]

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                self.kill(proc)


@pytest.fixture()
def processes(stack, scratch):
    procs = Processes(stack, scratch)
    try:
        yield procs
    finally:
        procs.stop_all()


def test_a_relay_killed_between_enqueue_and_delete_delivers_again_and_the_effect_happens_once(
        quiet, org, owner_db, processes, scratch):
    event_id = emit("test.count", {"mark": "relay-crash"}, tenant_id=org.id).id
    db.session.commit()
    paused_at = scratch / "relay-paused"
    first = processes.start("relay", ["relay.py"], COACH_RELAY_PAUSE_AFTER_ENQUEUE=str(paused_at))
    wait_until(lambda: paused_at.exists() or first.poll() is not None, 20, "the relay to enqueue")
    assert paused_at.exists(), processes.log(first)

    job_id = f"event-{event_id}"
    assert queue("default", redis_conn()).job_ids == [job_id]  # enqueued...
    assert outbox_row(owner_db, event_id) is not None  # ...not yet deleted
    processes.kill(first)
    assert outbox_row(owner_db, event_id) is not None  # the delete never happened

    # A relay that runs normally delivers it again (once PostgreSQL has let go of the dead relay's lock).
    wait_until(lambda: relay.relay_once() == 1, 10, "the event to be claimable again")
    assert outbox_row(owner_db, event_id) is None
    assert queue("default", redis_conn()).job_ids == [job_id, job_id]

    quiet.drain()
    assert len(effects(owner_db, org.id, "relay-crash")) == 1
    assert processed(owner_db, org.id) == 1
    assert queue("default", redis_conn()).count == 0


def test_the_relay_process_wakes_on_notify_instead_of_waiting_for_its_poll(quiet, org, owner_db, processes):
    first = emit("test.count", {"mark": "first"}, tenant_id=org.id).id
    db.session.commit()
    running = processes.start("relay", ["relay.py"], OUTBOX_POLL_SECONDS="60")
    wait_until(lambda: outbox_row(owner_db, first) is None or running.poll() is not None, 20, "the relay to start")
    assert running.poll() is None, processes.log(running)
    time.sleep(0.3)  # the relay is now waiting on LISTEN (its poll would take a minute)

    second = emit("test.count", {"mark": "second"}, tenant_id=org.id).id
    db.session.commit()
    committed_at = time.monotonic()
    wait_until(lambda: outbox_row(owner_db, second) is None, 5, "the relay to wake up")
    assert time.monotonic() - committed_at < 2
    assert queue("default", redis_conn()).job_ids == [f"event-{first}", f"event-{second}"]


# Short heartbeats so that a dead worker's job counts as abandoned within seconds (see worker.py).
FAST_RECOVERY = dict(RQ_QUEUES="default", RQ_JOB_MONITORING_INTERVAL="1", RQ_HEARTBEAT_GRACE="1",
                     RQ_MAINTENANCE_INTERVAL="1", RQ_WORKER_TTL="16")


def test_a_worker_killed_mid_job_has_its_job_retried_and_the_effect_happens_once(
        quiet, org, owner_db, processes, scratch):
    marker = scratch / "attempts"
    event_id = emit("test.slow", {"mark": "worker-crash", "marker": str(marker), "sleep": 60}, tenant_id=org.id).id
    db.session.commit()
    assert relay.relay_once() == 1
    connection = redis_conn()
    job = fetch_job(connection, event_id)

    # The worker that dies runs no scheduler: a killed scheduler's lock would hold retries back for a minute.
    doomed = processes.start("worker-1", ["worker.py"], RQ_WITH_SCHEDULER="false", **FAST_RECOVERY)
    wait_until(lambda: marker.exists() or doomed.poll() is not None, 20, "the job to start")
    assert marker.exists(), processes.log(doomed)
    horse = int(marker.read_text().split()[0])
    assert horse != doomed.pid  # the work process (a child of the supervisor worker.py starts) runs the job
    processes.kill(doomed)
    assert _gone(horse)
    assert job.get_status() == "started"
    assert job.id in StartedJobRegistry(queue=queue("default", connection)).get_job_ids(cleanup=False)
    assert effects(owner_db, org.id, "worker-crash") == [] and processed(owner_db, org.id) == 0

    survivor = processes.start("worker-2", ["worker.py"], **FAST_RECOVERY)
    try:
        wait_until(lambda: effects(owner_db, org.id, "worker-crash") or survivor.poll() is not None, 30,
                   "the abandoned job to be retried")
    except AssertionError:
        raise AssertionError(processes.log(survivor)) from None
    wait_until(lambda: job.get_status() == "finished", 5, "the job to finish")
    attempts = marker.read_text().split()
    assert len(attempts) == 2 and attempts[1] != attempts[0]
    assert len(effects(owner_db, org.id, "worker-crash")) == 1
    assert processed(owner_db, org.id) == 1
    job.refresh()
    assert job.retries_left == relay.JOB_RETRY.max - 1  # RQ's retry of an abandoned job


def _retry_state(connection, job) -> str:
    """What holds a retried job back: its status, where RQ keeps it, and who holds the scheduler locks."""
    default = queue("default", connection)
    locks = {key.decode(): (connection.get(key), connection.ttl(key)) for key in connection.keys("rq:scheduler-lock:*")}
    return (f"job status {job.get_status(refresh=True)}, retries left {job.retries_left}; "
            f"started {StartedJobRegistry(queue=default).get_job_ids(cleanup=False)}, "
            f"scheduled {ScheduledJobRegistry(queue=default).get_job_ids(cleanup=False)}; "
            f"scheduler locks (holder, ttl s): {locks}")


def test_with_the_production_timings_a_job_whose_worker_was_killed_runs_again_within_a_minute(
        quiet, org, owner_db, processes, scratch):
    """The Procfile's worker with the RQ_* defaults of coach/config.py (not FAST_RECOVERY), killed mid-job
    and restarted as a platform restarts a crashed process: the job runs again within 60 s of the kill."""
    marker = scratch / "attempts"
    event_id = emit("test.slow", {"mark": "production", "marker": str(marker), "sleep": 300}, tenant_id=org.id).id
    db.session.commit()
    assert relay.relay_once() == 1
    connection = redis_conn()
    job = fetch_job(connection, event_id)
    procfile_worker = dict(RQ_QUEUES="default,mail,notifications")  # every RQ_* timing at its default

    doomed = processes.start("worker-1", ["worker.py"], **procfile_worker)
    wait_until(lambda: marker.exists() or doomed.poll() is not None, 30, "the job to start")
    assert marker.exists(), processes.log(doomed)
    processes.kill(doomed)
    killed_at = time.monotonic()
    assert job.get_status() == "started" and effects(owner_db, org.id, "production") == []

    restarted = processes.start("worker-1-restarted", ["worker.py"], **procfile_worker)
    try:
        wait_until(lambda: len(marker.read_text().split()) >= 2 or restarted.poll() is not None, 60,
                   "the job to run again", 0.5)
    except AssertionError:
        raise AssertionError(f"the job did not run again within 60 s of the kill: {_retry_state(connection, job)}\n"
                             f"{processes.log(restarted)[-2500:]}") from None
    ran_again_after = time.monotonic() - killed_at
    assert ran_again_after < 60, processes.log(restarted)
    wait_until(lambda: effects(owner_db, org.id, "production"), 10, "the effect")
    assert len(effects(owner_db, org.id, "production")) == 1 and processed(owner_db, org.id) == 1


def _settled(owner_db, connection) -> bool:
    """No event left to deliver: no outbox row, and no event job queued, started or waiting for a retry
    (the periodic sweeps' jobs are not events). Read without RQ's clean-up, which would retry abandoned
    jobs from here instead of from the workers."""
    default = queue("default", connection)
    jobs = [*default.job_ids, *StartedJobRegistry(queue=default).get_job_ids(cleanup=False),
            *ScheduledJobRegistry(queue=default).get_job_ids(cleanup=False)]
    return (owner_db.execute("SELECT count(*) FROM outbox_events").fetchone()[0] == 0
            and not any(job.startswith("event-") for job in jobs))


def test_under_a_steady_stream_a_killed_relay_and_a_killed_worker_lose_no_event_and_apply_none_twice(
        app, quiet, org, owner_db, processes, scratch):
    """The ledger: every mark the test committed took effect exactly once, though while events kept coming
    a relay was SIGKILLed wherever it was, another between enqueueing its batch and deleting it, and a
    worker in the middle of a job (its effect written, not committed); replacements took over."""
    began = time.monotonic()
    timeline: list[str] = []

    def note(what: str) -> None:
        timeline.append(f"{time.monotonic() - began:5.1f}s {what}")

    # The worker that dies runs no scheduler (see the test above): the other one retries its job.
    doomed = processes.start("worker-doomed", ["worker.py"], RQ_WITH_SCHEDULER="false", **FAST_RECOVERY)
    processes.start("worker-steady", ["worker.py"], **FAST_RECOVERY)
    first_relay = processes.start("relay-1", ["relay.py"])
    connection = redis_conn()
    wait_until(lambda: len(Worker.all(connection=connection)) == 2 and "relay started" in processes.log(first_relay),
               30, "the workers and the relay to start", 0.1)
    emitter = Emitter(app, org.id, scratch, rate=4)
    emitter.start()
    note("stream started")
    try:
        # A relay SIGKILLed wherever it is in its loop.
        wait_until(lambda: len(ledger_effects(owner_db, org.id)) >= 5, 20, "the stream to flow")
        processes.kill(first_relay)
        note(f"relay-1 killed after {len(emitter.emitted)} events")
        # A relay SIGKILLed between enqueueing a batch (what came meanwhile) and deleting it.
        paused_at = scratch / "relay-paused"
        stalled = processes.start("relay-2", ["relay.py"], COACH_RELAY_PAUSE_AFTER_ENQUEUE=str(paused_at))
        wait_until(lambda: paused_at.exists() or stalled.poll() is not None, 20, "the second relay to enqueue")
        assert paused_at.exists(), processes.log(stalled)
        note(f"relay-2 stalled after enqueueing, {len(emitter.emitted)} events emitted")
        replacement = processes.start("relay-3", ["relay.py"])
        # A worker SIGKILLed in the middle of a job: its consumer wrote the effect, nothing is committed.
        emitter.hold_in(doomed.pid)
        in_flight = wait_until(emitter.held, 20, "the doomed worker's job to hold its transaction open")
        processes.kill(doomed)
        note(f"worker killed in the middle of {in_flight.mark}")
        processes.start("worker-replacement", ["worker.py"], **FAST_RECOVERY)
        wait_until(lambda: "relay started" in processes.log(replacement), 20, "the third relay to start", 0.1)
        processes.kill(stalled)
        after_kills = len(emitter.emitted) + 1
        note(f"relay-2 killed, {len(emitter.emitted)} events emitted")
        # The stream goes on until the replacement relay has handed over an event emitted after the kills.
        wait_until(lambda: len(emitter.emitted) > after_kills, 10, "the stream to go on")
        wait_until(lambda: outbox_row(owner_db, emitter.emitted[f"ledger-{after_kills:04d}"]) is None, 20,
                   "the replacement relay to carry the stream")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n" + "\n".join(timeline)) from None
    finally:
        emitted = emitter.finish()
    note(f"stream ended: {len(emitted)} events")

    try:
        wait_until(lambda: set(ledger_effects(owner_db, org.id)) >= set(emitted) and _settled(owner_db, connection),
                   60, "every emitted event to take effect", 0.2)
    except AssertionError:
        effects_now = ledger_effects(owner_db, org.id)
        raise AssertionError(f"lost: {sorted(set(emitted) - set(effects_now))}\n" + "\n".join(timeline) + "\n"
                             + "\n".join(processes.log(p)[-1500:] for p in processes.started)) from None
    note("every event took effect")
    time.sleep(1)  # a duplicate delivery still running would show now
    effects_by_mark = ledger_effects(owner_db, org.id)
    assert sorted(set(emitted) - set(effects_by_mark)) == [], timeline  # 0 lost
    assert {mark: n for mark, n in effects_by_mark.items() if n != 1} == {}, timeline  # 0 applied twice
    assert sorted(set(effects_by_mark) - set(emitted)) == []  # nothing that was not emitted
    assert processed(owner_db, org.id) == len(emitted)
    assert FailedJobRegistry(queue=queue("default", connection)).get_job_count(cleanup=False) == 0
    # The faults did happen: the held job ran again elsewhere, the stalled relay's batch was delivered twice.
    assert [a.ended for a in attempts(emitter.trace) if a.mark == in_flight.mark] == [False, True]
    worker_logs = "".join(Path(p.log_path).read_text(errors="replace") for p in processes.started
                          if "worker" in Path(p.log_path).name)
    assert "already processed" in worker_logs, timeline


def test_with_redis_stopped_pages_still_answer_and_login_is_still_throttled(app, ctx, scratch):
    make_user("lockout@example.com")
    make_org(make_user("keeper@example.com"), slug="keep")
    valkey = start_valkey(scratch / "valkey", persist=False)
    try:
        with other_app(app, REDIS_URL=f"{valkey.connection_url}/0", RATELIMIT_LOGIN_PER_ACCOUNT_IP="3 per minute") as web:
            browser = web.test_client()
            assert browser.get("/login").status_code == 200
            assert web.test_client().get("/health/ready").status_code == 200
            valkey.stop()

            def timed_get(client, path):
                started = time.monotonic()
                response = client.get(path)
                assert time.monotonic() - started < 2, f"{path} waited for Redis"
                return response

            for path in ("/", "/login", "/signup", "/password/forgot"):
                assert timed_get(browser, path).status_code == 200, path
            ready = timed_get(web.test_client(), "/health/ready")
            assert ready.status_code == 503 and ready.get_json()["failing"] == ["redis"]

            keeper = web.test_client()
            assert Auth(keeper).login("keeper@example.com").status_code == 303
            system = timed_get(keeper, "/o/keep/admin/system")
            assert system.status_code == 200 and "Redis does not answer" in system.get_data(as_text=True)

            auth = Auth(browser)
            for _ in range(3):
                assert browser.post("/login", data={"csrf_token": auth.csrf(), "email": "lockout@example.com",
                                                    "password": "wrong-password-here"}).status_code == 422
            throttled = browser.post("/login", data={"csrf_token": auth.csrf(), "email": "lockout@example.com",
                                                     "password": "correct-horse-battery"})
            assert throttled.status_code == 429
            assert int(throttled.headers["Retry-After"]) > 0
            # Another account is not affected.
            assert browser.post("/login", data={"csrf_token": auth.csrf(), "email": "someone@example.com",
                                                "password": "wrong-password-here"}).status_code == 422
    finally:
        try:
            valkey.stop()
        except Exception:  # already stopped
            pass


@contextmanager
def throwaway_postgres(folder: Path):
    server = start_postgres(folder / "pg", throwaway=True)
    try:
        yield server
    finally:
        server.cleanup()


def test_after_postgresql_restarts_readiness_recovers_without_an_app_restart(app, scratch):
    with throwaway_postgres(scratch) as server:
        socket_dir = socket_dir_of(server)
        bootstrap_roles(f"postgresql://postgres@/postgres?host={socket_dir}")
        urls = {"SQLALCHEMY_DATABASE_URI": f"postgresql+psycopg://{APP_ROLE}@/{DB_NAME}?host={socket_dir}",
                "DATABASE_OWNER_URL": f"postgresql+psycopg://{OWNER_ROLE}@/{DB_NAME}?host={socket_dir}"}
        with other_app(app, **urls) as web:
            with web.app_context():
                upgrade()
            client = web.test_client()
            assert client.get("/health/ready").status_code == 200

            stop_postgres(server)
            started = time.monotonic()
            down = client.get("/health/ready")
            assert time.monotonic() - started < 6  # within the 5 s connect timeout
            assert down.status_code == 503 and down.get_json()["failing"] == ["postgresql"]

            start_postgres_again(server)
            assert socket_dir_of(server) == socket_dir
            restarted = time.monotonic()
            wait_until(lambda: client.get("/health/ready").status_code == 200, 5, "readiness after the restart", 0.2)
            assert time.monotonic() - restarted < 5
            assert client.get("/login").status_code == 200


# Generous limits: five clients from one address sign in and browse continuously, by design.
UNTHROTTLED = {f"RATELIMIT_{name}": "100000 per minute"
               for name in ("PER_IP", "PER_USER", "LOGIN_PER_IP", "LOGIN_PER_ACCOUNT", "LOGIN_PER_ACCOUNT_IP")}


def _web_workers(server) -> set[int]:
    return {child.pid for child in psutil.Process(server.process.pid).children()}


def _errors_logged(server, limit: int = 3) -> str:
    """The first log lines at error level or with a traceback (what a 500 left behind), tracebacks cut to
    their last lines."""
    found = [entry for entry in server.log_entries() if entry.get("level") in ("error", "critical")
             or "exception" in entry or entry.get("logger") == "<not json>"]
    return "\n".join(f"{entry.get('logger')}: {entry.get('message')}\n{entry.get('exception', '')[-2500:]}"
                     for entry in found[:limit]) + (f"\n... {len(found) - limit} more" if len(found) > limit else "")


def test_while_postgresql_restarts_under_load_no_answer_is_a_500_each_is_logged_and_the_pool_recovers(
        quiet, ctx, stack, scratch):
    """The Procfile's web server (gunicorn, gevent workers, production settings) under five clients: three
    reload a signed-in page that queries the database, two sign in through the form. Meanwhile the
    database drops their connections again and again for three seconds, then PostgreSQL (the session's)
    is stopped and started again. Every answer is a success or a 503 with
    Retry-After, never a 500 or a dropped connection; every answer has its request line (same request id,
    same status) in the server's log; both kinds of request succeed again after the restart with the
    same gunicorn workers (their pools reconnected)."""
    make_org(make_user("steady@example.com"), slug="steady")
    for n in range(2):
        make_user(f"signin{n}@example.com")
    db.session.remove()
    postgres = stack._postgres
    ok = {"page": (200,), "login": (303,), "login-form": (200,)}

    def browse(session, call):
        call(session, "page", "GET", "/o/steady/")

    def sign_in_as(email):
        def sign_in(session, call):
            session.cookies.clear()
            form = call(session, "login-form", "GET", "/login", keep_text=True)
            if form.status == 200:
                call(session, "login", "POST", "/login", data={"csrf_token": csrf_from(form.text), "email": email,
                                                               "password": PASSWORD})
        return sign_in

    with gunicorn(scratch, stack, **UNTHROTTLED) as web:
        workers = _web_workers(web)
        load = HttpLoad(web.url)
        try:
            for n in range(3):
                load.add(f"page-{n}", browse, session=chat_login(web.url, "steady@example.com"))
            for n in range(2):
                load.add(f"login-{n}", sign_in_as(f"signin{n}@example.com"))
            begin = time.monotonic()
            wait_until(lambda: all(load.succeeded_since(kind, begin, ok[kind]) for kind in ("page", "login")), 20,
                       "both kinds of request to succeed")
            # Connections dropped under the requests' feet (as a failover or a restart does), for three seconds.
            with psycopg.connect(f"postgresql://postgres@/postgres?host={socket_dir_of(postgres)}",
                                 autocommit=True) as superuser:
                blinking = time.monotonic()
                while time.monotonic() - blinking < 3:
                    superuser.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                      "WHERE usename = %s AND pid <> pg_backend_pid()", [APP_ROLE])
                    time.sleep(0.05)
            try:
                stop_postgres(postgres)
                stopped = time.monotonic()
                wait_until(lambda: all(load.succeeded_since(kind, stopped, (503,)) for kind in ("page", "login")),
                           15, "both kinds of request to answer 503 while PostgreSQL is down", 0.1)
                time.sleep(max(0.0, stopped + 2 - time.monotonic()))  # down for two seconds at least
            finally:
                start_postgres_again(postgres)
            restarted = time.monotonic()
            wait_until(lambda: all(load.succeeded_since(kind, restarted, ok[kind]) for kind in ("page", "login")),
                       20, "both kinds of request to succeed again after the restart", 0.1)
            recovered_in = time.monotonic() - restarted
            time.sleep(1)  # and go on succeeding
        finally:
            load.stop()
        assert _web_workers(web) == workers  # no worker died or was replaced: the same pools recovered
    answers = load.snapshot()
    logged = web.request_log()

    dropped = [(a.kind, a.error) for a in answers if a.status is None]
    assert dropped == []
    failed = [(a.kind, a.status, "logged as", logged.get(a.request_id)) for a in answers
              if a.status not in (*ok[a.kind], 503)]
    assert failed == [], _errors_logged(web)
    assert [a.kind for a in answers if a.status == 503 and not (a.retry_after or "").isdigit()] == []
    unlogged = [(a.kind, a.status, logged.get(a.request_id)) for a in answers if logged.get(a.request_id) != [a.status]]
    assert unlogged == [], f"{len(unlogged)} of {len(answers)} answers without their request line"
    counts = Counter((a.kind, a.status) for a in answers)
    assert counts[("page", 503)] and counts[("login", 503)], counts
    assert recovered_in < 10, counts


def _timed(session: requests.Session, method: str, url: str, **kwargs) -> requests.Response:
    started = time.monotonic()
    response = session.request(method, url, allow_redirects=False, timeout=10, **kwargs)
    assert time.monotonic() - started < 2, f"{method} {url} waited for Redis"
    return response


def test_with_valkey_stopped_the_production_server_answers_pages_and_chat_works_without_live_pushes(
        ctx, stack, scratch):
    """gunicorn with the production settings, its Valkey stopped: the main pages of a signed-in member
    answer 200 without waiting for Redis, signing in works (the rate limiter falls back to memory),
    a message sent by the form is stored and shown, and the chat socket still opens, greets and
    echoes the member's own messages (only the pushes between web processes, which go through Redis,
    are lost)."""
    world = ChatWorld()
    with_maria = world.direct(world.ana, world.maria)
    world.say(with_maria, world.maria, "Before the outage")
    conversation_id = with_maria.id
    db.session.remove()
    valkey = start_valkey(scratch / "valkey", persist=False)
    try:
        # One worker process: the pages below are rendered once before the outage, so the 2 s bound
        # measures waiting for Redis, not compiling templates.
        with gunicorn(scratch, stack, redis_url=f"{valkey.connection_url}/0", workers=1) as web:
            ana = chat_login(web.url, "ana@example.com")
            conversation_url = f"{web.url}/o/river/chat/{conversation_id}"
            pages = ("/o/river/", "/o/river/chat", f"/o/river/chat/{conversation_id}", "/profile", "/o/river/spaces",
                     "/o/river/bookings", "/orgs")
            for path in pages:
                assert ana.get(web.url + path, timeout=10).status_code == 200, path
            valkey.stop()

            for path in pages:
                assert _timed(ana, "GET", web.url + path).status_code == 200, path
            assert _timed(ana, "GET", web.url + "/").headers["Location"].endswith("/o/river/")
            assert "Before the outage" in _timed(ana, "GET", conversation_url).text
            stranger = requests.Session()  # a sign-in goes through the limiter's memory fallback
            token = csrf_from(_timed(stranger, "GET", f"{web.url}/login").text)
            assert _timed(stranger, "POST", f"{web.url}/login", data={
                "csrf_token": token, "email": "ben@example.com", "password": PASSWORD}).status_code == 303
            assert _timed(stranger, "GET", f"{web.url}/o/river/chat").status_code == 200

            sent = post_message(web.url, ana, "river", conversation_id, "Sent while Redis is away")
            assert sent.status_code == 303
            assert "Sent while Redis is away" in _timed(ana, "GET", conversation_url).text

            sock = ChatSocket(Client.connect(web.url.replace("http://", "ws://") + "/o/river/chat/socket",
                                             headers={"Cookie": cookie_header(ana), "Origin": web.url}))
            try:
                sock.wait_for(lambda f: unread_badge(f) is not None, 5, "the greeting (unread badge)")
                sock.send(type="resume", conversation=str(conversation_id), after=0)
                sock.wait_for(has_seq(2, conversation_id), 5, "the replay from PostgreSQL")
                sock.send(type="send", conversation=str(conversation_id), body="Over the socket",
                          client_id=str(uuid.uuid4()))
                assert "Over the socket" in sock.wait_for(has_seq(3, conversation_id), 5, "the echo of my message")
            finally:
                sock.close()
            assert [entry for entry in web.log_entries() if entry.get("logger") == "coach.request"
                    and entry.get("status", 0) >= 500] == []
            assert "chat hub lost Redis" in web.log_path.read_text()
    finally:
        try:
            valkey.stop()
        except Exception:  # already stopped
            pass


ROLE_MESSAGE_RE = re.compile(r'<(\w+)[^>]*\brole="(?:alert|status)"[^>]*>(.*?)</\1>', re.S)


def _notices(page: str) -> list[str]:
    """The text of every alert or status element of a page that says something."""
    texts = [re.sub(r"<[^>]+>", " ", inner) for _, inner in ROLE_MESSAGE_RE.findall(page)]
    return [" ".join(text.split()) for text in texts if text.strip()]


def test_with_valkey_stopped_the_chat_page_tells_the_member_that_live_updates_are_off(app, ctx, scratch):
    """New messages from others reach an open chat page only through Redis pub/sub. While Valkey is away
    the page must say so (an alert or status that the same page does not show with Valkey running),
    rather than look live and stay silent."""
    world = ChatWorld()
    with_maria = world.direct(world.ana, world.maria)
    world.say(with_maria, world.maria, "Before the outage")
    valkey = start_valkey(scratch / "valkey", persist=False)
    try:
        with other_app(app, REDIS_URL=f"{valkey.connection_url}/0") as web:
            browser = web.test_client()
            assert Auth(browser).login("ana@example.com").status_code == 303
            path = f"/o/river/chat/{with_maria.id}"
            with_redis = browser.get(path)
            assert with_redis.status_code == 200
            valkey.stop()
            without_redis = browser.get(path)
            assert without_redis.status_code == 200
            page = without_redis.get_data(as_text=True)
            assert "Before the outage" in page
            new_notices = set(_notices(page)) - set(_notices(with_redis.get_data(as_text=True)))
            assert new_notices, ("the chat page looks the same with Redis away: nothing tells the member that "
                                 "new messages will not arrive until they reload")
    finally:
        try:
            valkey.stop()
        except Exception:  # already stopped
            pass
