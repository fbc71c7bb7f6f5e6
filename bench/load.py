"""The load generator, run in its own process: ``python -m bench.load < config.json``.

asyncio with a minimal HTTP/1.1 keep-alive client over plain sockets (stdlib only). Each simulated
client sends its next request as soon as the previous answer is read (a closed loop) and, like a
browser, reuses its connection, but only for ``requests_per_connection`` requests: with endless
keep-alive the first gevent worker to wake may accept all connections and keep them while the
other worker idles, and runs then differed by up to 2x. The only target is 127.0.0.1. Every loop
is bounded in time (warm-up + measured seconds, plus a hard deadline) and in count (``MAX_REQUESTS``).

Config (JSON on stdin)::

    {"port": 8000, "path": "/", "clients": 16, "warmup": 2, "seconds": 10,
     "logins": [{"email": ..., "password": ...}, ...],   # optional: log each client in first
     "keepalive": true,   # false: a new connection per request (Connection: close)
     "requests_per_connection": 0,   # > 0: a new connection after that many requests
     "paths": ["/a", "/b"]}   # optional: each client goes round these (from its own offset) instead of "path"

Prints ``measure-start`` and ``measure-end`` lines as the measured window opens and closes,
then one JSON object: requests, errors, req_per_s, latency percentiles and every latency (ms) (with
``paths``, also ``path_latencies_ms``: each path's latencies in the order of ``paths``).
"""
from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from urllib.parse import urlencode

HOST = "127.0.0.1"
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
MAX_REQUESTS = 2_000_000


class HttpError(RuntimeError):
    pass


HX_PREFIX = "hx:"


class Client:
    """One keep-alive connection with a cookie jar; reconnects when the server closes."""

    def __init__(self, port: int, timeout: float = 30.0, keepalive: bool = True, per_connection: int = 0):
        self.port = port
        self.keepalive = keepalive
        self.per_connection = per_connection  # requests on one connection before a new one (0: no limit)
        self.sent_on_connection = 0
        self.timeout = timeout
        self.cookies: dict[str, str] = {}
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.wait_for(asyncio.open_connection(HOST, self.port), self.timeout)
        self.sent_on_connection = 0

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None
        self.sent_on_connection = 0

    async def request(self, method: str, path: str, form: dict | None = None) -> tuple[int, dict, bytes]:
        body = urlencode(form).encode() if form is not None else b""
        # A path written "hx:/o/..." is asked as htmx asks a fragment (HX-Request, not boosted).
        fragment = path.startswith(HX_PREFIX)
        path = path.removeprefix(HX_PREFIX)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{self.port}", "User-Agent: coach-bench",
                 "Accept: text/html"]
        if fragment:
            lines.append("HX-Request: true")
        last = not self.keepalive or (self.per_connection and self.sent_on_connection + 1 >= self.per_connection)
        if last:
            lines.append("Connection: close")
        if self.cookies:
            lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        if form is not None:
            lines += ["Content-Type: application/x-www-form-urlencoded", f"Content-Length: {len(body)}"]
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        for attempt in (1, 2):
            if self.writer is None:
                await self._connect()
            try:
                self.writer.write(raw)
                self.sent_on_connection += 1
                response = await asyncio.wait_for(self._read_response(), self.timeout)
                if last:
                    self.close()
                return response
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                # A keep-alive connection the server had already closed: retry once on a new one.
                self.close()
                if attempt == 2:
                    raise HttpError(f"connection failed: {exc!r}") from exc
        raise AssertionError("unreachable")

    async def _read_response(self) -> tuple[int, dict, bytes]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in header_lines:
            if not line:
                continue
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "set-cookie":
                cookie = value.split(";", 1)[0]
                key, _, val = cookie.partition("=")
                if val:
                    self.cookies[key] = val
                else:
                    self.cookies.pop(key, None)
            headers[name] = value
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(chunk[:-2])
            body = b"".join(parts)
        else:
            body = b""
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body


async def log_in(client: Client, email: str, password: str) -> None:
    status, _, body = await client.request("GET", "/login")
    match = CSRF_RE.search(body.decode("utf-8", "replace"))
    if status != 200 or not match:
        raise HttpError(f"GET /login: status {status}, csrf token {'found' if match else 'missing'}")
    status, headers, _ = await client.request("POST", "/login", {"email": email, "password": password,
                                                                 "csrf_token": match.group(1)})
    if status != 303 or "session" not in client.cookies:
        raise HttpError(f"POST /login as {email}: status {status} (expected 303 and a session cookie)")


async def run(config: dict) -> dict:
    port = int(config["port"])
    paths = list(config.get("paths") or [config["path"]])
    clients_n = int(config["clients"])
    warmup, seconds = float(config.get("warmup", 2)), float(config["seconds"])
    logins = config.get("logins") or []
    clients = [Client(port, keepalive=bool(config.get("keepalive", True)),
                      per_connection=int(config.get("requests_per_connection", 0))) for _ in range(clients_n)]
    if logins:
        await asyncio.gather(*(log_in(c, **logins[i % len(logins)]) for i, c in enumerate(clients)))

    start = time.perf_counter()
    measure_from, measure_to = start + warmup, start + warmup + seconds
    latencies: list[float] = []
    by_path: list[list[float]] = [[] for _ in paths]
    errors: dict[str, int] = {}
    counter = {"n": 0}

    async def loop(client: Client, offset: int) -> None:
        turn = offset
        while counter["n"] < MAX_REQUESTS:
            t0 = time.perf_counter()
            if t0 >= measure_to:
                return
            counter["n"] += 1
            index, turn = turn % len(paths), turn + 1
            try:
                status, _, _ = await client.request("GET", paths[index])
                problem = None if status == 200 else f"status {status}"
            except (HttpError, OSError, asyncio.TimeoutError) as exc:
                problem = type(exc).__name__
                client.close()
            t1 = time.perf_counter()
            if t0 >= measure_from and t1 <= measure_to:
                if problem:
                    errors[problem] = errors.get(problem, 0) + 1
                else:
                    latencies.append(t1 - t0)
                    by_path[index].append(t1 - t0)

    async def marks() -> None:
        # The harness measures CPU (server, database, this loader, the machine) between these marks.
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        print("measure-start", flush=True)
        await asyncio.sleep(max(0.0, measure_to - time.perf_counter()))
        print("measure-end", flush=True)

    await asyncio.wait_for(asyncio.gather(marks(), *(loop(c, n * len(paths) // clients_n)
                                                     for n, c in enumerate(clients))), warmup + seconds + 60)
    for c in clients:
        c.close()
    latencies.sort()

    def pct(p: float) -> float:
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(round(p / 100 * (len(latencies) - 1))))] * 1000

    result = {
        "requests": len(latencies),
        "errors": errors,
        "seconds": seconds,
        "req_per_s": len(latencies) / seconds,
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "max_ms": latencies[-1] * 1000 if latencies else float("nan"),
        "latencies_ms": [round(v * 1000, 3) for v in latencies],  # sorted; lets rounds be pooled
    }
    if config.get("paths"):
        result["path_latencies_ms"] = [[round(v * 1000, 3) for v in sorted(found)] for found in by_path]
    return result


def main() -> None:
    config = json.load(sys.stdin)
    print(json.dumps(asyncio.run(run(config))))


if __name__ == "__main__":
    main()
