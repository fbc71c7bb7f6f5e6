"""``upload``: one large file (1 GiB) uploaded like the browser does, through the local backend and through S3.

``python -m bench upload [--size-mb N] [--concurrency N]``

Both runs use the production configuration (``gunicorn --config gunicorn.conf.py wsgi:app``,
gevent, ``WEB_CONCURRENCY`` workers) on a throwaway PostgreSQL and Valkey; the S3 run talks to a
moto server (``moto_server``, its own process) whose bucket is prepared with the operator command
``flask media storage-setup``. The client does what ``static/js/media.js`` does:

1. a logged-in member POSTs the intent (``/o/<slug>/media/uploads``, JSON, CSRF header) and gets
   the signed part URLs;
2. sends the parts, ``--concurrency`` at a time (default 4; media.js sends 3), each on a new
   connection, generated on the fly (nothing is read whole into memory on either side of the wire);
3. POSTs ``finalize_url``.

The file is declared ``application/pdf`` (``%PDF-`` then incompressible filler): no media worker
runs, so the figures are the upload path alone (parts, then finalize: completing the multipart
upload and checking the head of the file).

Measured per run: throughput (MiB/s, 1 MiB = 1,048,576 bytes) from the intent to finalize's answer;
the RSS of the gunicorn master and every worker, sampled every 50 ms, as growth over the idle
figure taken just before (after a small warm-up upload, so one-time imports and clients are not
counted; the growth over the cold figure is shown too); CPU of gunicorn, moto and this client; the
bytes the client sent to the app's origin and to the S3 endpoint. The part URLs of the S3 run are
checked before any byte is sent: one that points at the app stops the benchmark. Afterwards the
object is looked up in storage: its size must be the file's, and samples around the part
boundaries must hold the bytes that were sent there.

Baseline, in the same run: the same parts sent the same way to a bare Flask route on the same
gunicorn settings that reads each body and discards it (what the server stack itself receives).

Target: peak memory growth of the web processes < 50 MiB; 0 payload bytes through the app on S3.
Last line: ``mb_per_s=<local> peak_mem_growth_mb=<max of both runs> s3_payload_bytes_through_app=<n>``
and more figures.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import random
import re
import statistics
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench import harness

MiB = 1024 * 1024
TARGET_GROWTH_MIB = 50
SAMPLE_SECONDS = 0.05
IDLE_SECONDS = 1.0
TIMEOUT = 300.0  # one request; a 1 GiB finalize on a busy machine takes seconds, not minutes
BUCKET = "coach-bench-media"
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
# The filler repeats with a period that no part size divides, so parts sent to the wrong place show.
PERIOD = MiB + 4099
SEND_BLOCK = MiB  # http.client reads the body in blocks of this size


# --- the file -----------------------------------------------------------------------------------------


class Filler:
    """The bytes of the benchmark's file, made on the fly: ``%PDF-1.7`` then random bytes, repeating."""

    def __init__(self, seed: int = 20261122):
        rng = random.Random(seed)
        block = b"%PDF-1.7\n%bench\n" + rng.randbytes(PERIOD - 16)
        self.doubled = memoryview(block + block)  # any slice up to PERIOD long is contiguous

    def at(self, offset: int, length: int) -> bytes:
        out = bytearray()
        while length > 0:
            n = min(length, PERIOD)
            start = offset % PERIOD
            out += self.doubled[start:start + n]
            offset, length = offset + n, length - n
        return bytes(out)


class PartBody:
    """A file-like body for http.client: ``size`` bytes of the file from ``offset``, a block at a time."""

    def __init__(self, filler: Filler, offset: int, size: int):
        self.doubled, self.offset, self.left = filler.doubled, offset, size

    def read(self, n: int = -1):
        n = self.left if n is None or n < 0 else min(n, self.left, PERIOD)
        if n <= 0:
            return b""
        start = self.offset % PERIOD
        self.offset, self.left = self.offset + n, self.left - n
        return self.doubled[start:start + n]


# --- a small HTTP client --------------------------------------------------------------------------------


class HttpFailure(RuntimeError):
    pass


@dataclass
class Traffic:
    """Request bodies the client sent, by origin and kind (``json``, ``form``, ``part``)."""

    bytes: dict = field(default_factory=dict)
    requests: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, origin: str, kind: str, n: int) -> None:
        with self.lock:
            self.bytes[(origin, kind)] = self.bytes.get((origin, kind), 0) + n
            self.requests[(origin, kind)] = self.requests.get((origin, kind), 0) + 1

    def sum(self, origin: str | None = None, kind: str | None = None, what: str = "bytes") -> int:
        table = self.bytes if what == "bytes" else self.requests
        return sum(v for (o, k), v in table.items() if (origin is None or o == origin) and (kind is None or k == kind))


def origin_of(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def request(url: str, method: str, traffic: Traffic, kind: str, body=None, length: int = 0,
            headers: dict | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request on a new connection (``Connection: close``); returns status, headers, body."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or parts.hostname != harness.HOST:
        raise HttpFailure(f"refusing to send to {url}: the benchmark talks to {harness.HOST} only")
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT, blocksize=SEND_BLOCK)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        all_headers = {"User-Agent": "coach-bench", "Connection": "close", **(headers or {})}
        if body is not None:
            all_headers["Content-Length"] = str(length)
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        data = response.read()
        traffic.add(origin_of(url), kind, length)
        return response.status, response.headers, data
    finally:
        conn.close()


class Member:
    """A logged-in member of the app (cookies, CSRF token), talking JSON to the app's origin."""

    def __init__(self, base: str, traffic: Traffic):
        self.base, self.traffic = base, traffic
        self.cookies: dict[str, str] = {}
        self.csrf = ""

    def _call(self, method: str, path: str, kind: str, body: bytes | None = None,
              headers: dict | None = None) -> tuple[int, bytes]:
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        status, response_headers, data = request(urllib.parse.urljoin(self.base, path), method, self.traffic, kind,
                                                 body, len(body) if body is not None else 0, headers)
        for cookie in response_headers.get_all("Set-Cookie") or []:
            name, _, value = cookie.split(";", 1)[0].partition("=")
            if value:
                self.cookies[name.strip()] = value
            else:
                self.cookies.pop(name.strip(), None)
        return status, data

    def log_in(self, email: str, password: str, slug: str) -> None:
        status, page = self._call("GET", "/login", "page")
        match = CSRF_RE.search(page.decode("utf-8", "replace"))
        if status != 200 or not match:
            raise HttpFailure(f"GET /login: status {status}, csrf token {'found' if match else 'missing'}")
        form = urllib.parse.urlencode({"email": email, "password": password, "csrf_token": match.group(1)}).encode()
        status, _ = self._call("POST", "/login", "form", form, {"Content-Type": "application/x-www-form-urlencoded"})
        if status != 303 or "session" not in self.cookies:
            raise HttpFailure(f"POST /login as {email}: status {status} (expected 303 and a session cookie)")
        # The upload form's token, as media.js reads it from the library page.
        status, page = self._call("GET", f"/o/{slug}/media", "page")
        match = CSRF_RE.search(page.decode("utf-8", "replace"))
        if status != 200 or not match:
            raise HttpFailure(f"GET /o/{slug}/media: status {status}, csrf token {'found' if match else 'missing'}")
        self.csrf = match.group(1)

    def json(self, method: str, path: str, payload: dict | None, expect: int) -> dict:
        body = json.dumps(payload or {}).encode()
        status, data = self._call(method, path, "json", body, {"Content-Type": "application/json",
                                                               "Accept": "application/json", "X-CSRFToken": self.csrf})
        if status != expect:
            raise HttpFailure(f"{method} {path}: status {status}, expected {expect}: {data[:300]!r}")
        return json.loads(data)


# --- one upload -------------------------------------------------------------------------------------------


@dataclass
class Upload:
    media_id: str
    size: int
    parts: int
    part_bytes: int
    part_origins: set
    intent_s: float
    parts_s: float
    finalize_s: float
    wall_s: float
    status: str


def upload(member: Member, slug: str, filler: Filler, size: int, concurrency: int, s3_origin: str | None,
           name: str = "bench-upload.pdf") -> Upload:
    """Intent, parts (``concurrency`` at a time, each on a new connection), finalize; like media.js."""
    t0 = time.perf_counter()
    plan = member.json("POST", f"/o/{slug}/media/uploads",
                       {"filename": name, "size": size, "content_type": "application/pdf", "audience": "staff"}, 201)
    t1 = time.perf_counter()
    app_origin = origin_of(member.base)
    urls = [(p["number"], p["size"], urllib.parse.urljoin(member.base, p["url"])) for p in plan["parts"]]
    origins = {origin_of(url) for _, _, url in urls}
    if sum(s for _, s, _ in urls) != size or [n for n, _, _ in urls] != list(range(1, len(urls) + 1)):
        raise HttpFailure(f"the plan's parts do not add up to the file: {plan['part_count']} parts")
    if s3_origin is not None and (app_origin in origins or origins != {s3_origin}):
        raise HttpFailure(f"S3 upload plan sends parts to {sorted(origins)}, not only to the S3 endpoint "
                          f"{s3_origin} (the app is {app_origin}): payload would pass through the app")

    jobs: queue.Queue = queue.Queue()
    for number, part_size, url in urls:
        jobs.put((number, part_size, url, (number - 1) * plan["part_bytes"]))
    failures: list[str] = []

    def sender() -> None:
        while not failures:
            try:
                number, part_size, url, offset = jobs.get_nowait()
            except queue.Empty:
                return
            for attempt in (1, 2, 3):
                try:
                    status, headers, data = request(url, "PUT", member.traffic, "part",
                                                    PartBody(filler, offset, part_size), part_size)
                except (OSError, http.client.HTTPException) as exc:
                    status, headers, data = 0, None, repr(exc).encode()
                if status == 200 and headers.get("ETag"):
                    break
                if attempt == 3:
                    failures.append(f"part {number}: status {status} {data[:300]!r}")
                    return

    threads = [threading.Thread(target=sender, name=f"part-sender-{i}", daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * len(urls))
    if failures or any(t.is_alive() for t in threads):
        raise HttpFailure(f"sending parts failed: {failures or 'a sender is still running'}")
    t2 = time.perf_counter()
    done = member.json("POST", plan["finalize_url"], {}, 200)
    t3 = time.perf_counter()
    if done.get("status") != "processing":
        raise HttpFailure(f"finalize answered {done!r}, expected status 'processing'")
    return Upload(plan["media_id"], size, len(urls), plan["part_bytes"], origins, t1 - t0, t2 - t1, t3 - t2,
                  t3 - t0, done["status"])


def verify_object(storage, key: str, size: int, part_bytes: int, filler: Filler, read_range) -> None:
    """The stored object has the file's size, and the bytes sent around part boundaries are where they belong."""
    stored = storage.size_of(key)
    if stored != size:
        raise RuntimeError(f"stored object {key} has {stored} bytes, expected {size}")
    parts = -(-size // part_bytes)
    probes = [0, max(0, size - 4096)]
    for number in sorted({1, 2, parts // 2, parts - 1}):
        if 0 < number < parts:
            probes.append(number * part_bytes - 2048)
    for offset in probes:
        length = min(4096, size - offset)
        if read_range(key, offset, length) != filler.at(offset, length):
            raise RuntimeError(f"stored object {key} differs from the file sent at bytes {offset}-{offset + length}")


# --- measuring the server -------------------------------------------------------------------------------


def tree_rss(root: int) -> dict[int, int]:
    """RSS in bytes of ``root`` and all its descendants, by pid."""
    try:
        parent = psutil.Process(root)
        processes = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return {}
    found = {}
    for process in processes:
        try:
            found[process.pid] = process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return found


class MemorySampler:
    """RSS of process trees every ``SAMPLE_SECONDS`` in a thread: per-pid peaks and the peak of the sum."""

    def __init__(self, roots: dict[str, int]):
        self.roots = roots
        self.peak: dict[str, dict[int, int]] = {name: {} for name in roots}
        self.peak_sum: dict[str, int] = {name: 0 for name in roots}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, root in self.roots.items():
                rss = tree_rss(root)
                for pid, value in rss.items():
                    self.peak[name][pid] = max(self.peak[name].get(pid, 0), value)
                self.peak_sum[name] = max(self.peak_sum[name], sum(rss.values()))
            self.samples += 1
            self._stop.wait(SAMPLE_SECONDS)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


def idle_rss(root: int, seconds: float = IDLE_SECONDS) -> dict[int, int]:
    """Median RSS of each process of the tree over ``seconds`` of idling."""
    seen: dict[int, list[int]] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for pid, value in tree_rss(root).items():
            seen.setdefault(pid, []).append(value)
        time.sleep(SAMPLE_SECONDS)
    return {pid: int(statistics.median(values)) for pid, values in seen.items()}


def growth(base: dict[int, int], peak: dict[int, int], peak_sum: int) -> dict:
    """Per-process peak growth over ``base`` (a process that was not there counts whole) and of the sum."""
    per_pid = {pid: value - base.get(pid, 0) for pid, value in peak.items()}
    return {"per_pid": per_pid, "max": max(per_pid.values(), default=0),
            "sum": peak_sum - sum(v for pid, v in base.items() if pid in peak)}


def log_routes(log_path: Path, start: int) -> dict[str, list[float]]:
    """Durations (ms) by ``METHOD route`` of the app's request log lines written after byte ``start``."""
    routes: dict[str, list[float]] = {}
    with open(log_path, "rb") as log:
        log.seek(start)
        for line in log:
            brace = line.find(b"{")
            if brace < 0 or b'"route"' not in line:
                continue
            try:
                entry = json.loads(line[brace:])
            except ValueError:
                continue
            fields = entry.get("fields", entry)
            if "route" in fields:
                routes.setdefault(f"{fields.get('method')} {fields['route']}", []).append(
                    float(fields.get("duration_ms") or 0))
    return routes


# --- the baseline: a bare Flask route that receives parts --------------------------------------------


def _make_sink_app():
    """A bare Flask app whose ``PUT /parts/<n>`` reads the body in 256 KiB chunks and throws it away."""
    from flask import Flask, request

    app = Flask("upload-sink")

    @app.get("/")
    def ready():
        return "ok"

    @app.put("/parts/<int:number>")
    def part(number: int):
        request.max_content_length = None
        received = 0
        while chunk := request.stream.read(256 * 1024):
            received += len(chunk)
        return "", 200, {"ETag": f'"{number}-{received}"'}

    return app


def __getattr__(name: str):
    # ``gunicorn bench.upload:sink_app`` builds it on demand; importing the benchmark does not.
    if name == "sink_app":
        globals()["sink_app"] = app = _make_sink_app()
        return app
    raise AttributeError(name)


def run_sink(bench, size: int, part_bytes: int, concurrency: int) -> dict:
    """The parts alone, sent the same way to the bare sink on the same gunicorn settings."""
    server = bench.start_gunicorn("sink", "bench.upload:sink_app", ready_path="/")
    base = f"http://{harness.HOST}:{server.port}"
    filler, traffic = Filler(), Traffic()
    try:
        parts = [(n, min(part_bytes, size - (n - 1) * part_bytes)) for n in range(1, -(-size // part_bytes) + 1)]
        jobs: queue.Queue = queue.Queue()
        for number, part_size in parts:
            jobs.put((number, part_size))
        failures: list[str] = []

        def sender() -> None:
            while not failures:
                try:
                    number, part_size = jobs.get_nowait()
                except queue.Empty:
                    return
                status, _, data = request(f"{base}/parts/{number}", "PUT", traffic, "part",
                                          PartBody(filler, (number - 1) * part_bytes, part_size), part_size)
                if status != 200:
                    failures.append(f"part {number}: status {status} {data[:200]!r}")

        harness.say(f"baseline: {size / MiB:,.0f} MiB of parts to a bare Flask route, {concurrency} at a time")
        meter = harness.CpuMeter({"web": server.process.pid})
        meter.start()
        t0 = time.perf_counter()
        threads = [threading.Thread(target=sender, daemon=True) for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT * len(parts))
        seconds = time.perf_counter() - t0
        cpu = meter.stop()
        if failures or traffic.sum(kind="part") != size:
            raise HttpFailure(f"baseline parts failed: {failures or 'not every byte was sent'}")
        return {"seconds": seconds, "parts": len(parts), "cpu": cpu}
    finally:
        harness.stop_process(server.process)
        bench.servers.remove(server)


# --- moto ---------------------------------------------------------------------------------------------


def start_moto(bench) -> tuple[subprocess.Popen, str]:
    """``moto_server`` in its own process (not sharing this process's GIL) on a free port."""
    port = harness.free_port()
    process, log_path = bench.spawn("moto", [*harness.console_script("moto_server"), "-H", harness.HOST,
                                             "-p", str(port)])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {process.returncode}:\n{harness.tail(log_path)}")
        try:
            conn = http.client.HTTPConnection(harness.HOST, port, timeout=2)
            conn.request("GET", "/moto-api/")
            conn.getresponse().read()
            conn.close()
            return process, f"http://{harness.HOST}:{port}"
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"moto_server not ready on port {port}:\n{harness.tail(log_path)}")


# --- one run ----------------------------------------------------------------------------------------------


@dataclass
class Run:
    backend: str
    upload: Upload
    web_growth: dict
    web_cold_growth: dict
    web_idle_mib: float
    moto_growth_mib: float | None
    cpu: dict
    client_cpu_cores: float
    traffic: Traffic
    app_origin: str
    s3_origin: str | None
    routes: dict
    samples: int
    workers: int


def run_backend(bench, backend: str, org: harness.Org, size: int, concurrency: int, moto: tuple | None) -> Run:
    from coach.media.storage import LocalStorage, S3Storage

    filler = Filler()
    env = {"MEDIA_BACKEND": backend}
    if backend == "local":
        env["MEDIA_LOCAL_ROOT"] = str(bench.workdir / "media")
    else:
        env.update(S3_BUCKET=BUCKET, S3_ENDPOINT_URL=moto[1], S3_REGION="us-east-1")
    os.environ.update(env)  # for storage-setup and the storage this process verifies with
    server = bench.start_gunicorn(f"app-{backend}", "wsgi:app", ready_path="/health/ready", extra_env=env)
    base = f"http://{harness.HOST}:{server.port}"
    try:
        setup_env = {**bench.env, **env, "APP_BASE_URL": base}
        harness.say(f"{backend}: flask media storage-setup")
        subprocess.run([*harness.console_script("flask"), "--app", "coach", "media", "storage-setup", "--origin",
                        base], cwd=harness.ROOT, env=setup_env, check=True, stdout=subprocess.DEVNULL, timeout=120)

        cold = idle_rss(server.process.pid)
        traffic = Traffic()
        member = Member(base, traffic)
        admin = org.members[0][0]
        member.log_in(admin, org.password, org.slug)
        s3_origin = moto[1] if moto else None
        harness.say(f"{backend}: warm-up (6 small uploads, so both workers have imported and built what uploads use)")
        for n in range(6):
            upload(member, org.slug, filler, 9 * MiB, 2, s3_origin, name=f"warm-up-{n}.pdf")
        idle = idle_rss(server.process.pid)
        moto_idle = sum(tree_rss(moto[0].pid).values()) if moto else 0
        traffic = member.traffic = Traffic()  # count the measured upload only

        log_start = server.log_path.stat().st_size
        roots = {"web": server.process.pid, **({"moto": moto[0].pid} if moto else {})}
        meter = harness.CpuMeter({"web": server.process.pid, **({"moto": moto[0].pid} if moto else {}),
                                  **bench.service_pids()})
        harness.say(f"{backend}: uploading {size / MiB:,.0f} MiB, {concurrency} parts at a time")
        with MemorySampler(roots) as sampler:
            meter.start()
            c0 = time.process_time()
            result = upload(member, org.slug, filler, size, concurrency, s3_origin)
            client_cpu = (time.process_time() - c0) / result.wall_s
            cpu = meter.stop()
        time.sleep(0.5)  # the request log line of finalize is written after its answer
        routes = log_routes(server.log_path, log_start)

        harness.say(f"{backend}: verifying the stored object")
        key = f"{org.id}/{result.media_id}/original"
        if backend == "local":
            storage = LocalStorage(env["MEDIA_LOCAL_ROOT"], bench.env["SECRET_KEY"])

            def read_range(key, offset, length):
                with open(storage.object_path(key), "rb") as f:
                    f.seek(offset)
                    return f.read(length)
        else:
            storage = S3Storage(BUCKET, "us-east-1", moto[1])

            def read_range(key, offset, length):
                answer = storage.client.get_object(Bucket=BUCKET, Key=key,
                                                   Range=f"bytes={offset}-{offset + length - 1}")
                return answer["Body"].read()
        verify_object(storage, key, size, result.part_bytes, filler, read_range)
        moto_growth = None
        if moto:
            moto_growth = (sampler.peak_sum["moto"] - moto_idle) / MiB
        return Run(backend, result, growth(idle, sampler.peak["web"], sampler.peak_sum["web"]),
                   growth(cold, sampler.peak["web"], sampler.peak_sum["web"]), sum(idle.values()) / MiB,
                   moto_growth, cpu, client_cpu, traffic, base, s3_origin, routes, sampler.samples, len(idle) - 1)
    finally:
        harness.stop_process(server.process)
        bench.servers.remove(server)


# --- the benchmark -------------------------------------------------------------------------------------


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench upload")
    parser.add_argument("--size-mb", type=int, default=harness.env_int("BENCH_UPLOAD_MB", 1024),
                        help="file size in MiB (default 1024, or BENCH_UPLOAD_MB)")
    parser.add_argument("--concurrency", type=int, default=4, help="parts sent at a time (default 4)")
    parser.add_argument("--backend", choices=("local", "s3", "both"), default="both")
    return parser.parse_args(argv or [])


def run(argv: list[str] | None = None) -> str:
    args = _parse(argv)
    size = args.size_mb * MiB
    harness.header("upload")
    backends = ("local", "s3") if args.backend == "both" else (args.backend,)
    runs: list[Run] = []
    with harness.running_stack() as bench:
        limits = {"MEDIA_MAX_BYTES": str(max(2 * 1024 * MiB, 2 * size)),
                  "MEDIA_QUOTA_BYTES": str(max(100 * 1024 * MiB, 8 * size)),
                  # moto accepts any credentials; the app and this process sign with these.
                  "AWS_ACCESS_KEY_ID": "bench-access-key", "AWS_SECRET_ACCESS_KEY": "bench-secret-key",
                  "AWS_DEFAULT_REGION": "us-east-1"}
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            bench.env.pop(name, None)
            os.environ.pop(name, None)
        bench.env.update(limits)
        os.environ.update(limits)
        app = harness.make_app()
        harness.say("seeding one organization (an admin, a coach, an athlete)")
        org = harness.seed_org(app, slug="bench-upload", members=3, coaches=1)
        part_bytes = max(harness.env_int("MEDIA_PART_BYTES", 8 * MiB), -(-size // 10_000))  # as start_upload
        sink = run_sink(bench, size, part_bytes, args.concurrency)
        moto = start_moto(bench) if "s3" in backends else None
        for backend in backends:
            runs.append(run_backend(bench, backend, org, size, args.concurrency, moto if backend == "s3" else None))

    _report(runs, size, args.concurrency, sink)
    by = {r.backend: r for r in runs}
    peak = max(r.web_growth["sum"] for r in runs) / MiB
    figures: dict = {}
    figures["mb_per_s"] = size / MiB / by["local"].upload.wall_s if "local" in by else float("nan")
    figures["peak_mem_growth_mb"] = peak
    figures["s3_payload_bytes_through_app"] = (by["s3"].traffic.sum(by["s3"].app_origin, "part")
                                               if "s3" in by else "n/a")
    if "s3" in by:
        figures["s3_mb_per_s"] = size / MiB / by["s3"].upload.wall_s
    for r in runs:
        figures[f"{r.backend}_peak_mem_growth_mb"] = r.web_growth["sum"] / MiB
    figures["size_mb"] = args.size_mb
    return harness.key_values(**figures)


def _report(runs: list[Run], size: int, concurrency: int, sink: dict) -> None:
    print()
    print(f"file: {size / MiB:,.0f} MiB declared application/pdf ('%PDF-' then random filler), {concurrency} parts "
          "at a time, each on a new connection; no media worker runs: the upload path only (intent, parts, finalize)")
    print("MiB/s: 1 MiB = 1,048,576 bytes; from the intent's request to finalize's answer. Memory: RSS of the "
          "gunicorn master and workers sampled every 50 ms; growth = peak - idle RSS taken after 6 small warm-up "
          "uploads ('cold': over the RSS before them).")
    print()
    rows = []
    for r in runs:
        u = r.upload
        cores = r.cpu.get("cores", {})
        per_process = "/".join(f"{s:.2f}" for s in r.cpu.get("processes", {}).get("web", [])[:r.workers + 1])
        rows.append([r.backend, f"{u.parts} x {u.part_bytes / MiB:g}", f"{u.wall_s:.2f}", size / MiB / u.wall_s,
                     f"{u.intent_s * 1000:.0f}", f"{u.parts_s:.2f}", f"{u.finalize_s * 1000:.0f}",
                     f"{r.web_idle_mib:.0f}", f"{r.web_growth['max'] / MiB:.1f}", f"{r.web_growth['sum'] / MiB:.1f}",
                     f"{r.web_cold_growth['sum'] / MiB:.1f}",
                     "-" if r.moto_growth_mib is None else f"{r.moto_growth_mib:,.0f}",
                     per_process, f"{cores.get('moto', 0.0):.2f}" if r.s3_origin else "-",
                     f"{cores.get('postgres', 0.0):.2f}", f"{r.client_cpu_cores:.2f}",
                     f"{r.cpu.get('others', 0.0):.2f}"])
    harness.print_table(["backend", "parts x MiB", "wall s", "MiB/s", "intent ms", "parts s", "finalize ms",
                         "web idle MiB", "growth max/proc", "growth sum", "growth cold", "moto growth",
                         "gunicorn CPU/proc", "moto CPU", "postgres", "client CPU", "others"], rows)
    print(f"CPU columns are cores over the upload ({os.cpu_count()} cores in all; 'others' is CPU no process of this "
          "benchmark used: other work on the machine; 'client CPU' includes the RSS sampler).")

    print("\nThe parts phase alone (the same parts, client and gunicorn settings) against the baseline, a bare "
          "Flask route that reads each body and discards it:")
    rows = [["baseline: bare Flask, discard", sink["parts"], f"{sink['seconds']:.2f}", size / MiB / sink["seconds"],
             "/".join(f"{s:.2f}" for s in sink["cpu"]["processes"].get("web", [])[:3]),
             f"{sink['cpu']['others']:.2f}", "1.00"]]
    for r in runs:
        rate = size / MiB / r.upload.parts_s
        rows.append([f"{r.backend}: {'the app' if r.backend == 'local' else 'moto'} receives", r.upload.parts,
                     f"{r.upload.parts_s:.2f}", rate, "-", "-", f"{rate / (size / MiB / sink['seconds']):.2f}"])
    harness.print_table(["parts sent to", "parts", "seconds", "MiB/s", "gunicorn CPU/proc", "others",
                         "of baseline"], rows)

    print("\nBytes the client sent (request bodies), by destination:")
    rows = []
    for r in runs:
        for origin, label in ((r.app_origin, "app"), (r.s3_origin, "S3 endpoint")):
            if origin is None:
                continue
            rows.append([r.backend, f"{label} {origin}", r.traffic.sum(origin, "json", "requests"),
                         r.traffic.sum(origin, "json"), r.traffic.sum(origin, "part", "requests"),
                         r.traffic.sum(origin, "part")])
    harness.print_table(["backend", "destination", "JSON requests", "JSON bytes", "part requests", "part bytes"], rows)

    print("\nThe app's request log over the upload (server-side durations):")
    rows = []
    for r in runs:
        for route, durations in sorted(r.routes.items()):
            durations.sort()
            rows.append([r.backend, route, len(durations), f"{harness.percentile(durations, 50):.0f}",
                         f"{durations[-1]:.0f}", f"{sum(durations) / 1000:.2f}"])
    harness.print_table(["backend", "route", "requests", "p50 ms", "max ms", "total s"], rows)

    print()
    for r in runs:
        pids = ", ".join(f"{pid}: {g / MiB:+.1f}" for pid, g in sorted(r.web_growth["per_pid"].items()))
        met = "met" if r.web_growth["sum"] / MiB < TARGET_GROWTH_MIB else "MISSED"
        print(f"{r.backend}: web processes' peak growth {r.web_growth['sum'] / MiB:.1f} MiB summed, by pid "
              f"{pids} ({r.samples} samples; target < {TARGET_GROWTH_MIB} MiB: {met}); object verified "
              f"({size:,} bytes, sampled bytes at part boundaries match)")
        if r.s3_origin:
            through = r.traffic.sum(r.app_origin, "part")
            part_routes = sum(len(d) for route, d in r.routes.items() if "/storage/" in route)
            print(f"s3: part URLs point at {', '.join(sorted(r.upload.part_origins))} (checked before sending); "
                  f"payload bytes sent to the app {through} (target 0: {'met' if through == 0 else 'MISSED'}); "
                  f"/storage requests in the app's log: {part_routes}")


if __name__ == "__main__":
    import sys

    print(run(sys.argv[1:]))
