"""What every benchmark shares: a throwaway stack, the production server, the load generator, output.

* :func:`running_stack` starts embedded PostgreSQL and Valkey in a temporary folder
  (``coach.devstack.start_stack(..., throwaway=True)``), applies the migrations with
  ``flask --app coach db upgrade`` as production would, and removes everything afterwards.
* :meth:`BenchStack.start_gunicorn` runs ``gunicorn --config gunicorn.conf.py TARGET`` (the Procfile's
  settings: gevent workers, ``WEB_CONCURRENCY``) on a free port of 127.0.0.1 and polls until it answers.
* :func:`run_load` runs :mod:`bench.load` in a separate process and samples the CPU the server
  used during the measured window.

Every wait is bounded: servers get 60 s to come up, a load run its duration plus a margin.
"""
from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
HOST = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def bench_seconds() -> float:
    """The measured duration of a load run (``BENCH_SECONDS``, default 10 s)."""
    return env_float("BENCH_SECONDS", 10.0)


def warmup_seconds() -> float:
    """Load sent before measuring starts (``BENCH_WARMUP``, default 2 s)."""
    return env_float("BENCH_WARMUP", 2.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def console_script(name: str) -> list[str]:
    """The venv's console script ``name`` if there is one, else ``python -m name``."""
    script = Path(PYTHON).parent / name
    return [str(script)] if script.exists() else [PYTHON, "-m", name]


# --- the stack --------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen
    log_path: Path


@dataclass
class BenchStack:
    """Running servers plus the environment every process of the benchmark is given."""

    stack: object
    workdir: Path
    env: dict
    servers: list[Server] = field(default_factory=list)
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def redis_url(self) -> str:
        return self.stack.redis_url

    def app_conninfo(self) -> str:
        """The runtime role's URL for psycopg (RLS applies)."""
        return self.stack.database_url.replace("postgresql+psycopg://", "postgresql://")

    def service_pids(self) -> dict[str, int]:
        """Root pids of the embedded PostgreSQL and Valkey (for :class:`CpuMeter`)."""
        import redis

        pids = {}
        pid_file = self.workdir / "servers" / "postgres" / "postmaster.pid"
        if pid_file.exists():
            pids["postgres"] = int(pid_file.read_text().split()[0])
        client = redis.Redis.from_url(self.redis_url)
        try:
            pids["valkey"] = int(client.info("server")["process_id"])
        finally:
            client.close()
        return pids

    def start_gunicorn(self, name: str, target: str, ready_path: str, extra_env: dict | None = None) -> Server:
        """``gunicorn --config gunicorn.conf.py TARGET`` on a free port; returns once ``ready_path`` answers 200."""
        port = free_port()
        env = dict(self.env)
        env.update(HOST=HOST, PORT=str(port), WEB_CONCURRENCY=os.environ.get("WEB_CONCURRENCY", "2"),
                   APP_BASE_URL=f"http://{HOST}:{port}",
                   # One metrics folder per server: gunicorn.conf.py empties it at start.
                   PROMETHEUS_MULTIPROC_DIR=str(self.workdir / f"metrics-{name}"))
        env.update(extra_env or {})
        log_path = self.workdir / f"{name}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen([*console_script("gunicorn"), "--config", "gunicorn.conf.py", target], cwd=ROOT,
                                       env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        server = Server(name, port, process, log_path)
        self.servers.append(server)
        wait_ready(server, ready_path)
        return server

    def spawn(self, name: str, args: list[str], extra_env: dict | None = None) -> tuple[subprocess.Popen, Path]:
        """Start a helper process (relay, worker) with the benchmark's environment, logging to a file."""
        env = dict(self.env)
        env.update(extra_env or {})
        log_path = self.workdir / f"{name}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        self.processes.append(process)
        return process, log_path

    def stop_all(self) -> None:
        for process in [s.process for s in self.servers] + self.processes:
            stop_process(process)
        self.servers.clear()
        self.processes.clear()


def stop_process(process: subprocess.Popen, timeout: float = 25.0) -> None:
    """SIGTERM (a graceful stop), then SIGKILL of the process group this harness created for it."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)


def wait_ready(server: Server, path: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}:\n{tail(server.log_path)}")
        try:
            conn = http.client.HTTPConnection(HOST, server.port, timeout=2)
            conn.request("GET", path)
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return
            last = f"status {status}"
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise RuntimeError(f"{server.name} not ready on port {server.port} after {timeout:.0f}s ({last}):\n"
                       f"{tail(server.log_path)}")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def base_env(stack) -> dict:
    """The production environment, pointed at the throwaway servers."""
    env = {k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", "FLASK_APP")}
    env.update(
        COACH_ENV="production",
        SECRET_KEY=secrets.token_hex(32),
        DATABASE_URL=stack.database_url,
        DATABASE_OWNER_URL=stack.owner_url,
        REDIS_URL=stack.redis_url,
        SESSION_COOKIE_SECURE="false",  # the benchmark talks plain http to 127.0.0.1
        RATELIMIT_ENABLED="false",  # 16 clients from one address would be throttled, by design
        PATH=f"{Path(PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    return env


@contextmanager
def running_stack():
    """Throwaway PostgreSQL and Valkey with the migrations applied; everything is removed afterwards."""
    from coach.devstack import start_stack

    workdir = Path(tempfile.mkdtemp(prefix="coach-bench-"))
    say(f"starting embedded PostgreSQL and Valkey in {workdir}")
    stack = start_stack(workdir / "servers", throwaway=True)
    bench = BenchStack(stack=stack, workdir=workdir, env=base_env(stack))
    saved_environ = dict(os.environ)
    try:
        say("applying migrations (flask --app coach db upgrade)")
        subprocess.run([*console_script("flask"), "--app", "coach", "db", "upgrade"], cwd=ROOT, env=bench.env, check=True,
                       stdout=subprocess.DEVNULL, timeout=300)
        # The harness itself seeds and emits through the app's services: same settings.
        os.environ.update({k: bench.env[k] for k in ("COACH_ENV", "SECRET_KEY", "DATABASE_URL",
                                                      "DATABASE_OWNER_URL", "REDIS_URL")})
        yield bench
    finally:
        bench.stop_all()
        os.environ.clear()
        os.environ.update(saved_environ)
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def make_app():
    """The app, in this process, configured like the servers (for seeding and emitting events)."""
    from coach import create_app

    return create_app()


# --- seeding ------------------------------------------------------------------------------------


@dataclass
class Org:
    id: object
    slug: str
    password: str
    members: list[tuple[str, str]]  # (email, role)


def seed_org(app, slug: str = "bench-athletics", members: int = 50, coaches: int = 5) -> Org:
    """One organization with ``members`` members (an admin, ``coaches`` coaches, athletes), via the services."""
    from coach.accounts.service import create_user
    from coach.extensions import db
    from coach.orgs.models import Membership
    from coach.orgs.service import create_organization

    password = secrets.token_urlsafe(12)
    people = [(f"admin@{slug}.example", "Bench Admin", "admin")]
    people += [(f"coach{i:02d}@{slug}.example", f"Coach {i:02d}", "coach") for i in range(1, coaches + 1)]
    people += [(f"athlete{i:02d}@{slug}.example", f"Athlete {i:02d}", "athlete")
               for i in range(1, members - coaches)]
    with app.app_context():
        users = [(create_user(email, password, name, "Europe/Berlin"), role) for email, name, role in people]
        org = create_organization(users[0][0], "Bench Athletics", slug, "Europe/Berlin")
        for user, role in users[1:]:
            db.session.add(Membership(tenant_id=org.id, user_id=user.id, role=role))
        db.session.commit()
        return Org(id=org.id, slug=slug, password=password, members=[(e, r) for e, _, r in people])


# --- load and CPU -------------------------------------------------------------------------------


def _cpu_by_pid() -> tuple[dict[int, int], dict[int, float]]:
    """(parent of each pid, CPU seconds of each pid and its reaped children), from /proc."""
    parents: dict[int, int] = {}
    seconds: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2:].split()
        pid = int(entry)
        parents[pid] = int(fields[1])
        # utime, stime, cutime, cstime (stat fields 14-17): the process and its exited children, such
        # as RQ's work horses, which live for one job each.
        seconds[pid] = sum(int(v) for v in fields[11:15]) / CLOCK_TICKS
    return parents, seconds


def _tree(root: int, parents: dict[int, int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, frontier = {root}, [root]
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in found:
                found.add(child)
                frontier.append(child)
    return found


def _machine_busy_seconds() -> tuple[float, float]:
    """(busy, wall) seconds of the whole machine since boot, from /proc/stat (busy counts every core)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    cores = os.cpu_count() or 1
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS / cores


class CpuMeter:
    """CPU used between :meth:`start` and :meth:`stop`, in cores (1.0 = one core busy the whole time).

    ``trees`` names process trees to watch (a root pid and all its descendants). The whole machine is
    measured too, and ``others`` is what no watched tree used: other programs on a shared machine.
    """

    def __init__(self, trees: dict[str, int]):
        self.trees = dict(trees)
        self._start = None

    def _sample(self):
        parents, seconds = _cpu_by_pid()
        busy, wall = _machine_busy_seconds()
        members = {name: _tree(root, parents) for name, root in self.trees.items()}
        return {name: {pid: seconds[pid] for pid in pids if pid in seconds} for name, pids in members.items()}, \
            busy, wall, time.monotonic()

    def start(self) -> None:
        self._start = self._sample()

    def stop(self) -> dict:
        (trees0, busy0, wall0, t0), (trees1, busy1, wall1, t1) = self._start, self._sample()
        elapsed = max(t1 - t0, 1e-9)
        result: dict = {"cores": {}, "processes": {}}
        for name, now in trees1.items():
            before = trees0.get(name, {})
            shares = sorted(((cpu - before.get(pid, 0.0)) / elapsed for pid, cpu in now.items()), reverse=True)
            result["cores"][name] = sum(shares)
            result["processes"][name] = shares
        machine = (busy1 - busy0) / max(wall1 - wall0, 1e-9)
        result["machine"] = machine
        result["others"] = max(0.0, machine - sum(result["cores"].values()))
        return result


def run_load(*, port: int, path: str, clients: int, meter: dict[str, int] | None = None,
             logins: list | None = None, seconds: float | None = None, warmup: float | None = None,
             requests_per_connection: int | None = None, paths: list[str] | None = None) -> dict:
    """Closed-loop load from a separate process (:mod:`bench.load`).

    :param meter: process trees whose CPU is measured over the measured window (the loader's own
        is added as ``loader``); the result gets ``cpu`` (see :class:`CpuMeter`).
    :param paths: several paths each client goes round (``path`` is then only a label); the result gets
        ``path_latencies_ms``, each path's latencies.
    """
    seconds = bench_seconds() if seconds is None else seconds
    warmup = warmup_seconds() if warmup is None else warmup
    if requests_per_connection is None:
        requests_per_connection = env_int("BENCH_REQUESTS_PER_CONNECTION", 20)
    config = {"port": port, "path": path, "clients": clients, "seconds": seconds, "warmup": warmup,
              "logins": logins or [], "requests_per_connection": requests_per_connection}
    if paths:
        config["paths"] = list(paths)
    process = subprocess.Popen([PYTHON, "-m", "bench.load"], cwd=ROOT, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    process.stdin.write(json.dumps(config))
    process.stdin.close()
    cpu = CpuMeter({**(meter or {}), "loader": process.pid})
    deadline = time.monotonic() + warmup + seconds + 180
    result, result_cpu = None, {}
    try:
        for line in process.stdout:  # the loader's own timeouts bound this loop
            line = line.strip()
            if line == "measure-start":
                cpu.start()
            elif line == "measure-end":
                result_cpu = cpu.stop()
            elif line.startswith("{"):
                result = json.loads(line)
            if time.monotonic() > deadline:
                break
        process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if process.returncode != 0 or result is None:
        raise RuntimeError(f"load generator failed (exit {process.returncode})")
    result["cpu"] = result_cpu
    return result


def cpu_ms_per_request(results: list[dict], trees: tuple[str, ...] = ("server", "postgres", "valkey"),
                       in_flight: int = 0) -> float:
    """CPU the serving side (gunicorn, PostgreSQL, Valkey) spent per request over :func:`run_load` results,
    rounds pooled: their CPU seconds over their requests (``nan`` without requests).

    :param in_flight: requests per run that were under way when its window opened and finished inside it,
        which the loader does not count (it counts requests that start and end in the window): in a closed
        loop, one per client. The page benchmarks leave it 0 (long windows, many requests); ``pages``
        passes its clients.
    """
    cpu = sum(sum(r["cpu"].get("cores", {}).get(k, 0.0) for k in trees) * r["seconds"] for r in results)
    requests = sum(r["requests"] for r in results)
    return cpu * 1000 / (requests + in_flight * len(results)) if requests else float("nan")


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list (``nan`` when empty)."""
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(round(p / 100 * (len(sorted_values) - 1))))]


# --- output ---------------------------------------------------------------------------------------


def print_table(headers: list[str], rows: list[list]) -> None:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            print("  ".join("-" * w for w in widths))
    sys.stdout.flush()


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def key_values(**figures) -> str:
    """The one closing ``key=value`` line."""
    def fmt(v) -> str:
        if not isinstance(v, float):
            return str(v)
        return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}" if abs(v) < 1000 else f"{v:.0f}"

    return " ".join(f"{k}={fmt(v)}" for k, v in figures.items())


def header(name: str) -> None:
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"# bench {name}  ({today}; {os.cpu_count()} cores; WEB_CONCURRENCY="
          f"{os.environ.get('WEB_CONCURRENCY', '2')}; {bench_seconds():g}s measured after {warmup_seconds():g}s warm-up)")
    sys.stdout.flush()
