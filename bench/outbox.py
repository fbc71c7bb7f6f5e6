"""``outbox``: how fast the relay moves events to RQ, and how late a job starts after its commit.

1. Throughput. ``BENCH_EVENTS`` (default 50,000) events are emitted through
   ``coach.platform.outbox.emit`` in an app context acting for one organization, committing every
   1,000; then relays drain them, and the time until the outbox is empty is measured:

   * ``relay_once`` called in a loop in this process (no process start, no LISTEN);
   * 1 and 2 ``python relay.py`` processes, timed from the first relay's
     "outbox relay started" log line (its own timestamp) to the outbox found empty (polled every
     50 ms). The events wait in RQ's ``default`` queue, unconsumed, and are removed afterwards.

   Target: >= 5,000 events/s. The closing ``events_per_s`` is the best of the three.

2. Commit to job start. One relay process and one worker consume ``bench.noop``
   (:mod:`bench.consumers`, loaded through ``COACH_EXTRA_CONSUMERS``) while this process emits
   ``BENCH_EVENT_RATE`` events/s (default 200) for ``BENCH_SECONDS``, each in its own transaction,
   as requests do. Each job pushes (consumer start − emit time) to a Redis list. Two workers:

   * ``python worker.py``: the production worker (the Procfile's), which forks a work horse per job;
   * ``rq worker --worker-class rq.worker.SimpleWorker``: RQ's non-forking worker, which runs jobs
     in its own process. It shows what the relay and queue cost without the fork per job.

   Each worker is also run at ``BENCH_EVENT_RATE_LOW`` (default 10/s), a rate both keep up with:
   at 200/s one worker process of either kind falls behind, and the figure then measures the
   backlog, not the pipeline. Target: p95 < 500 ms. The closing ``p95_ms`` is the production
   worker's at ``BENCH_EVENT_RATE``.

Last line: ``events_per_s=... p95_ms=...`` plus the figures of each variant.
"""
from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone

import psycopg
import redis
from rq import Queue

from bench import harness
from bench.consumers import LATENCY_KEY, TOPIC

TARGET_EVENTS_PER_S = 5000
TARGET_P95_MS = 500
COMMIT_EVERY = 1000
POLL_SECONDS = 0.05


# --- helpers ------------------------------------------------------------------------------------


def _pending(conninfo: str) -> int:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return conn.execute("SELECT pending FROM outbox_stats()").fetchone()[0]


def _emit_batched(app, tenant_id, count: int) -> float:
    """Emit ``count`` events, committing every ``COMMIT_EVERY``; returns the seconds it took."""
    from coach import tenancy
    from coach.extensions import db
    from coach.platform.outbox import emit

    started = time.perf_counter()
    with app.app_context():
        tenancy.activate(tenant_id)
        done = 0
        while done < count:
            for n in range(done, min(done + COMMIT_EVERY, count)):
                emit(TOPIC, {"run": "drain", "n": n})
            db.session.commit()
            done = min(done + COMMIT_EVERY, count)
    return time.perf_counter() - started


def _log_time(log_path, text: str, process, timeout: float = 60.0) -> float:
    """Epoch seconds of the first JSON log line of ``log_path`` whose message is ``text`` (bounded wait)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            lines = log_path.read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        for line in lines:
            if text in line and line.startswith("{"):
                ts = json.loads(line)["ts"].rstrip("Z")
                return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc).timestamp()
        if process.poll() is not None:
            raise RuntimeError(f"{log_path.name}: exited with {process.returncode}:\n{harness.tail(log_path)}")
        time.sleep(0.02)
    raise RuntimeError(f"{log_path.name}: no {text!r} after {timeout:.0f}s:\n{harness.tail(log_path)}")


def _wait_drained(conninfo: str, timeout: float = 300.0) -> float:
    """Poll until the outbox is empty; returns the epoch seconds when it was seen empty."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _pending(conninfo) == 0:
            return time.time()
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"outbox not drained after {timeout:.0f}s ({_pending(conninfo)} events pending)")


def _check_and_clear_queue(bench) -> int:
    """How many jobs wait in RQ's default queue; then remove them."""
    connection = redis.Redis.from_url(bench.redis_url)
    try:
        q = Queue("default", connection=connection)
        found = q.count
        q.empty()
        return found
    finally:
        connection.close()


# --- 1. throughput ----------------------------------------------------------------------------------


def _drain_in_process(bench, app, services: dict) -> tuple[float, dict]:
    from coach.platform.relay import relay_once

    meter = harness.CpuMeter({"relays": os.getpid(), **services})
    with app.app_context():
        meter.start()
        started = time.perf_counter()
        deadline = started + 300
        while time.perf_counter() < deadline and relay_once():
            pass
        elapsed = time.perf_counter() - started
        cpu = meter.stop()
    if _pending(bench.app_conninfo()):
        raise RuntimeError("relay_once loop ended with events still pending")
    return elapsed, cpu


def _drain_with_processes(bench, relays: int, services: dict, label: str) -> tuple[float, dict]:
    spawned = [bench.spawn(f"{label}-{i}", [harness.PYTHON, "relay.py"]) for i in range(relays)]
    meter = harness.CpuMeter({**{f"relay{i}": p.pid for i, (p, _) in enumerate(spawned)}, **services})
    meter.start()
    try:
        starts = [_log_time(log, "outbox relay started", p) for p, log in spawned]
        drained_at = _wait_drained(bench.app_conninfo())
        cpu = meter.stop()
    finally:
        for process, _ in spawned:
            harness.stop_process(process)
    # The meter started before the processes were up; their start-up (imports, create_app) is in
    # its figures, so the CPU shares are indicative only for the relays.
    return drained_at - min(starts), cpu


def throughput(bench, app, org, services: dict) -> list[dict]:
    count = harness.env_int("BENCH_EVENTS", 50_000)
    results = []
    variants = [("relay_once loop, in-process", 0), ("1 relay process", 1), ("2 relay processes", 2)]
    for label, relays in variants:
        harness.say(f"throughput: emitting {count:,} events ({label})")
        emit_seconds = _emit_batched(app, org.id, count)
        if _pending(bench.app_conninfo()) != count:
            raise RuntimeError("the outbox does not hold the events just emitted")
        harness.say(f"throughput: draining with {label}")
        if relays == 0:
            elapsed, cpu = _drain_in_process(bench, app, services)
        else:
            elapsed, cpu = _drain_with_processes(bench, relays, services, f"relay-drain-{relays}")
        queued = _check_and_clear_queue(bench)
        results.append({"label": label, "relays": max(relays, 1), "events": count, "emit_seconds": emit_seconds,
                        "seconds": elapsed, "events_per_s": count / elapsed, "queued": queued, "cpu": cpu})
    return results


# --- 2. commit to job start ------------------------------------------------------------------------


def _emit_paced(app, tenant_id, count: int, rate: float, run: str) -> float:
    """Emit ``count`` events at ``rate``/s, one transaction each; returns the achieved rate."""
    from coach import tenancy
    from coach.extensions import db
    from coach.platform.outbox import emit

    with app.app_context():
        tenancy.activate(tenant_id)
        started = time.perf_counter()
        for n in range(count):
            delay = started + n / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            emit(TOPIC, {"run": run, "n": n, "emitted_at": time.time()})
            db.session.commit()
        elapsed = time.perf_counter() - started
    return count / elapsed if elapsed else float("nan")


def _wait_recorded(connection, count: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if connection.llen(LATENCY_KEY) >= count:
            break
        time.sleep(0.1)
    return connection.llen(LATENCY_KEY)


def latency(bench, app, org, services: dict, label: str, worker_args: list[str], rate: float) -> dict:
    seconds = harness.bench_seconds()
    count = max(1, int(rate * seconds))
    connection = redis.Redis.from_url(bench.redis_url)
    connection.delete(LATENCY_KEY)
    slug = "".join(c for c in label if c.isalnum())
    relay, relay_log = bench.spawn(f"relay-latency-{slug}-{rate:g}", [harness.PYTHON, "relay.py"])
    worker, worker_log = bench.spawn(f"worker-{slug}-{rate:g}", worker_args,
                                     extra_env={"COACH_EXTRA_CONSUMERS": "bench.consumers"})
    try:
        _log_time(relay_log, "outbox relay started", relay)
        # Warm-up: the first jobs pay for imports and connections.
        warm = 10
        _emit_paced(app, org.id, warm, min(rate, 10.0), "warmup")
        if _wait_recorded(connection, warm, 60) < warm:
            raise RuntimeError(f"worker {label}: warm-up jobs did not all run in 60s:\n{harness.tail(worker_log)}")
        connection.delete(LATENCY_KEY)

        harness.say(f"latency, {label}: {rate:g} events/s for {seconds:g}s")
        meter = harness.CpuMeter({"relay": relay.pid, "worker": worker.pid, **services})
        meter.start()
        achieved = _emit_paced(app, org.id, count, rate, "measure")
        cpu = meter.stop()
        # Bounded: whatever has not run 60 s after the last emit counts as later than that.
        recorded = _wait_recorded(connection, count, 60)
        records = [json.loads(v) for v in connection.lrange(LATENCY_KEY, 0, -1)]
    finally:
        harness.stop_process(relay)
        harness.stop_process(worker)
        connection.delete(LATENCY_KEY)
        connection.close()
    _check_and_clear_queue(bench)
    values = sorted(r["seconds"] * 1000 for r in records)
    starts = sorted(r["at"] for r in records)
    # Jobs that never ran count as infinitely late, so a percentile never looks better than it was.
    padded = values + [float("inf")] * max(0, count - recorded)
    return {"label": label, "events": count, "rate": rate, "achieved_rate": achieved, "recorded": recorded,
            # Jobs started per second from the first to the last: the worker's pace (its capacity when it
            # fell behind the emitter).
            "jobs_per_s": (len(starts) - 1) / (starts[-1] - starts[0]) if len(starts) > 1 else float("nan"),
            "p50_ms": harness.percentile(padded, 50), "p95_ms": harness.percentile(padded, 95),
            "p99_ms": harness.percentile(padded, 99), "max_ms": padded[-1] if padded else float("nan"), "cpu": cpu}


# --- the benchmark ------------------------------------------------------------------------------


def _cores(cpu: dict, *names: str) -> str:
    return "/".join(f"{cpu['cores'].get(n, 0.0):.2f}" for n in names)


def run() -> str:
    harness.header("outbox")
    with harness.running_stack() as bench:
        app = harness.make_app()
        harness.say("seeding one organization through the services")
        org = harness.seed_org(app, members=5, coaches=1)
        services = bench.service_pids()
        drains = throughput(bench, app, org, services)
        workers = [
            ("worker.py (forking)", [harness.PYTHON, "worker.py"]),
            ("SimpleWorker (no fork)",
             [*harness.console_script("rq"), "worker", "--url", bench.redis_url, "--serializer", "json",
              "--worker-class", "rq.worker.SimpleWorker", "--path", str(harness.ROOT), "default"]),
        ]
        rate = harness.env_float("BENCH_EVENT_RATE", 200.0)
        low_rate = harness.env_float("BENCH_EVENT_RATE_LOW", 10.0)
        latencies = [latency(bench, app, org, services, label, args, r)
                     for r in (rate, low_rate) for label, args in workers]

    print()
    rows = []
    for d in drains:
        relay_cores = sum(v for k, v in d["cpu"]["cores"].items() if k.startswith("relay"))
        rows.append([d["label"], d["events"], d["emit_seconds"], d["events"] / d["emit_seconds"], d["seconds"],
                     d["events_per_s"], d["queued"], f"{relay_cores:.2f}", _cores(d["cpu"], "postgres", "valkey"),
                     f"{d['cpu']['others']:.2f}"])
    harness.print_table(["relay (throughput)", "events", "emit s", "emitted/s", "drain s", "relayed/s", "in RQ",
                         "relay CPU", "pg/valkey CPU", "others"], rows)
    print()
    rows = []
    for r in latencies:
        rows.append([r["label"], f"{r['rate']:g}/s", r["events"], f"{r['achieved_rate']:.0f}/s", r["recorded"],
                     r["jobs_per_s"], r["p50_ms"], r["p95_ms"], r["p99_ms"], r["max_ms"],
                     _cores(r["cpu"], "relay", "worker"), _cores(r["cpu"], "postgres", "valkey"),
                     f"{r['cpu']['others']:.2f}"])
    harness.print_table(["commit -> job start", "rate", "events", "emitted", "ran", "jobs/s", "p50 ms", "p95 ms",
                         "p99 ms", "max ms", "relay/worker CPU", "pg/valkey CPU", "others"], rows)
    print("CPU columns are cores (2 in all); 'others' is CPU no process of this benchmark used. In the drain rows "
          "the relay CPU includes the relay's start-up.\n'jobs/s' is the pace at which jobs started, first to "
          "last; 'inf' is a job that had not run 60 s after the last event was emitted.")

    best = max(drains, key=lambda d: d["events_per_s"])
    production = latencies[0]
    print(f"\nrelayed {best['events_per_s']:,.0f} events/s ({best['label']}; target >= {TARGET_EVENTS_PER_S:,}: "
          f"{'met' if best['events_per_s'] >= TARGET_EVENTS_PER_S else 'MISSED'})")
    for r in latencies:
        print(f"commit -> job start p95 {r['p95_ms']:,.0f} ms with {r['label']} at {r['rate']:g} events/s "
              f"(target < {TARGET_P95_MS} ms: {'met' if r['p95_ms'] < TARGET_P95_MS else 'MISSED'})")
    by_label = {d["label"]: d["events_per_s"] for d in drains}
    return harness.key_values(
        events_per_s=best["events_per_s"], p95_ms=production["p95_ms"],
        loop_events_per_s=by_label["relay_once loop, in-process"],
        relay1_events_per_s=by_label["1 relay process"], relay2_events_per_s=by_label["2 relay processes"],
        worker_jobs_per_s=production["jobs_per_s"], simpleworker_p95_ms=latencies[1]["p95_ms"],
        simpleworker_jobs_per_s=latencies[1]["jobs_per_s"],
        low_rate=latencies[2]["rate"], low_p95_ms=latencies[2]["p95_ms"], low_simpleworker_p95_ms=latencies[3]["p95_ms"])
