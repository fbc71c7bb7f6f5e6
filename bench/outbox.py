"""``outbox``: how fast the relay moves events to RQ, how many jobs a worker process runs a second, how late a
job starts after its commit, and whether a burst drains with nothing lost or applied twice.

Every process is the Procfile's: ``python relay.py``, and ``python worker.py`` with the ``worker`` entry's
queues (``RQ_QUEUES=default,mail,notifications``), which loads the benchmark's consumer ``bench.noop``
(:mod:`bench.consumers`) through ``COACH_EXTRA_CONSUMERS``. ``BENCH_OUTBOX_PARTS`` (default
``relay,worker,latency,burst``) picks the parts.

1. ``relay``: throughput. ``BENCH_EVENTS`` (default 50,000) events are emitted through
   ``coach.platform.outbox.emit`` in an app context acting for one organization, committing every
   1,000; then relays drain them, and the time until the outbox is empty is measured:

   * ``relay_once`` called in a loop in this process (no process start, no LISTEN);
   * 1 and 2 ``python relay.py`` processes, timed from the first relay's
     "outbox relay started" log line (its own timestamp) to the outbox found empty (polled every
     50 ms). The events wait in RQ's ``default`` queue, unconsumed, and are removed afterwards.

   Target: >= 5,000 events/s. The closing ``events_per_s`` is the best of the three.

2. ``worker``: capacity. ``BENCH_WORKER_JOBS`` (default 20,000) events are emitted and relayed first, so
   they wait in RQ; then one ``python worker.py`` starts, and its pace is the number of jobs started per second
   from the first to the last (each job records when it started), with its CPU per job (the supervisor and its
   work process). Target: >= 300 jobs/s per worker process.

3. ``latency``: commit to job start. One relay process and one worker consume ``bench.noop`` while this
   process emits ``BENCH_EVENT_RATE`` events/s (default 200) for ``BENCH_OUTBOX_SECONDS`` (default 60), each
   in its own transaction, as requests do, then ``BENCH_EVENT_RATE_LOW`` (default 10) for 10 s. Each job
   pushes (consumer start - emit time) to a Redis list. Target: p95 < 500 ms at 200 events/s.

4. ``burst``: ``BENCH_BURST_EVENTS`` (default 50,000) events committed as fast as this process can (1,000 a
   transaction) while one relay and one worker run. It ends when every job has run (bounded: 30 minutes); then
   it checks that every event ran exactly once (one record per event in the Redis list, one
   ``processed_events`` row each), that no job failed and that the outbox and the queue are empty.

Last line: ``events_per_s=... p95_ms=...`` plus the figures of each part.
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
TARGET_JOBS_PER_S = 300
COMMIT_EVERY = 1000
POLL_SECONDS = 0.05


# --- helpers ------------------------------------------------------------------------------------


def _pending(conninfo: str) -> int:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return conn.execute("SELECT pending FROM outbox_stats()").fetchone()[0]


def _emit_batched(app, tenant_id, count: int, run: str = "drain") -> float:
    """Emit ``count`` events, committing every ``COMMIT_EVERY``; returns the seconds it took. Events of a
    ``run`` other than ``drain`` carry ``emitted_at``: their jobs record when they ran."""
    from coach import tenancy
    from coach.extensions import db
    from coach.platform.outbox import emit

    started = time.perf_counter()
    with app.app_context():
        tenancy.activate(tenant_id)
        done = 0
        while done < count:
            for n in range(done, min(done + COMMIT_EVERY, count)):
                emit(TOPIC, {"run": run, "n": n} if run == "drain" else {"run": run, "n": n, "emitted_at": time.time()})
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


# --- 2-4. workers -----------------------------------------------------------------------------------

WORKER_ENV = {"COACH_EXTRA_CONSUMERS": "bench.consumers", "RQ_QUEUES": "default,mail,notifications"}


def _worker(bench, name: str):
    return bench.spawn(name, [harness.PYTHON, "worker.py"], extra_env=WORKER_ENV)


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


def _records(connection) -> list[dict]:
    return [json.loads(v) for v in connection.lrange(LATENCY_KEY, 0, -1)]


def _pace(records: list[dict]) -> float:
    """Jobs started per second, first to last."""
    starts = sorted(r["at"] for r in records)
    return (len(starts) - 1) / (starts[-1] - starts[0]) if len(starts) > 1 else float("nan")


def capacity(bench, app, org, services: dict) -> dict:
    """A backlog waits in RQ; one worker process runs it: its pace and CPU per job."""
    from coach.platform.relay import relay_once

    count = harness.env_int("BENCH_WORKER_JOBS", 20_000)
    connection = redis.Redis.from_url(bench.redis_url)
    connection.delete(LATENCY_KEY)
    harness.say(f"worker capacity: {count:,} jobs waiting for one worker.py")
    _emit_batched(app, org.id, count, run="capacity")
    with app.app_context():
        while relay_once():
            pass
    worker, worker_log = _worker(bench, "worker-capacity")
    meter = harness.CpuMeter({"worker": worker.pid, **services})
    meter.start()
    metered_from = time.monotonic()
    try:
        recorded = _wait_recorded(connection, count, 1800)
        cpu = meter.stop()
        metered = time.monotonic() - metered_from
        records = _records(connection)
    finally:
        harness.stop_process(worker)
        connection.delete(LATENCY_KEY)
        connection.close()
    if recorded < count:
        raise RuntimeError(f"worker capacity: {recorded} of {count} jobs ran:\n{harness.tail(worker_log)}")
    starts = sorted(r["at"] for r in records)
    busy = starts[-1] - starts[0]
    # The longest wait between two job starts: where a work process was replaced, its cost.
    longest_gap = max((b - a for a, b in zip(starts, starts[1:])), default=0.0)
    replaced = worker_log.read_text(errors="replace").count("stopping to be replaced")
    # The meter's window includes the worker's start-up (~1 s before the first job): CPU per job is an upper bound.
    return {"jobs": count, "jobs_per_s": _pace(records), "seconds": busy, "replaced": replaced, "cpu": cpu,
            "longest_gap_ms": longest_gap * 1000,
            "worker_cpu_ms_per_job": cpu["cores"]["worker"] * metered * 1000 / count}


def latency(bench, app, org, services: dict, rate: float, seconds: float) -> dict:
    count = max(1, int(rate * seconds))
    connection = redis.Redis.from_url(bench.redis_url)
    connection.delete(LATENCY_KEY)
    relay, relay_log = bench.spawn(f"relay-latency-{rate:g}", [harness.PYTHON, "relay.py"])
    worker, worker_log = _worker(bench, f"worker-latency-{rate:g}")
    try:
        _log_time(relay_log, "outbox relay started", relay)
        # Warm-up: the first jobs pay for imports and connections.
        warm = 10
        _emit_paced(app, org.id, warm, min(rate, 10.0), "warmup")
        if _wait_recorded(connection, warm, 60) < warm:
            raise RuntimeError(f"warm-up jobs did not all run in 60s:\n{harness.tail(worker_log)}")
        connection.delete(LATENCY_KEY)

        harness.say(f"latency: {rate:g} events/s for {seconds:g}s")
        meter = harness.CpuMeter({"relay": relay.pid, "worker": worker.pid, **services})
        meter.start()
        achieved = _emit_paced(app, org.id, count, rate, "measure")
        cpu = meter.stop()
        # Bounded: whatever has not run 60 s after the last emit counts as later than that.
        recorded = _wait_recorded(connection, count, 60)
        records = _records(connection)
    finally:
        harness.stop_process(relay)
        harness.stop_process(worker)
        connection.delete(LATENCY_KEY)
        connection.close()
    _check_and_clear_queue(bench)
    values = sorted(r["seconds"] * 1000 for r in records)
    # Jobs that never ran count as infinitely late, so a percentile never looks better than it was.
    padded = values + [float("inf")] * max(0, count - recorded)
    return {"label": f"{rate:g} events/s", "events": count, "rate": rate, "achieved_rate": achieved,
            "recorded": recorded, "jobs_per_s": _pace(records),
            "p50_ms": harness.percentile(padded, 50), "p95_ms": harness.percentile(padded, 95),
            "p99_ms": harness.percentile(padded, 99), "max_ms": padded[-1] if padded else float("nan"), "cpu": cpu}


def _processed(bench, tenant_id) -> int:
    with psycopg.connect(bench.app_conninfo(), autocommit=True) as conn:
        with conn.transaction():
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", [str(tenant_id)])
            return conn.execute("SELECT count(*) FROM processed_events").fetchone()[0]


def burst(bench, app, org, services: dict) -> dict:
    """``BENCH_BURST_EVENTS`` committed at once with a relay and a worker running: all drain, each runs once."""
    from rq.registry import FailedJobRegistry

    count = harness.env_int("BENCH_BURST_EVENTS", 50_000)
    connection = redis.Redis.from_url(bench.redis_url)
    connection.delete(LATENCY_KEY)
    before = _processed(bench, org.id)
    relay, relay_log = bench.spawn("relay-burst", [harness.PYTHON, "relay.py"])
    worker, worker_log = _worker(bench, "worker-burst")
    try:
        _log_time(relay_log, "outbox relay started", relay)
        _log_time(worker_log, "started on", worker)
        harness.say(f"burst: {count:,} events")
        meter = harness.CpuMeter({"relay": relay.pid, "worker": worker.pid, **services})
        meter.start()
        started = time.time()
        emit_seconds = _emit_batched(app, org.id, count, run="burst")
        recorded = _wait_recorded(connection, count, 1800)
        drained_at = time.time()
        cpu = meter.stop()
        time.sleep(2)  # a duplicate still on its way would show now
        records = _records(connection)
        default = Queue("default", connection=connection)
        failed = FailedJobRegistry(queue=default).get_job_count()
        queued = default.count
    finally:
        harness.stop_process(relay)
        harness.stop_process(worker)
        connection.delete(LATENCY_KEY)
        connection.close()
    ran = [r["n"] for r in records if r["run"] == "burst"]
    latencies = sorted(r["seconds"] * 1000 for r in records)
    return {"events": count, "emit_seconds": emit_seconds, "seconds": drained_at - started,
            "events_per_s": recorded / (drained_at - started), "lost": count - len(set(ran)),
            "duplicates": len(ran) - len(set(ran)), "processed": _processed(bench, org.id) - before,
            "failed": failed, "queued": queued, "pending": _pending(bench.app_conninfo()),
            "p95_ms": harness.percentile(latencies, 95), "max_ms": latencies[-1] if latencies else float("nan"),
            "cpu": cpu}


# --- the benchmark ------------------------------------------------------------------------------


def _cores(cpu: dict, *names: str) -> str:
    return "/".join(f"{cpu['cores'].get(n, 0.0):.2f}" for n in names)


def run() -> str:
    harness.header("outbox")
    parts = set(os.environ.get("BENCH_OUTBOX_PARTS", "relay,worker,latency,burst").split(","))
    figures: dict = {}
    with harness.running_stack() as bench:
        app = harness.make_app()
        harness.say("seeding one organization through the services")
        org = harness.seed_org(app, members=5, coaches=1)
        services = bench.service_pids()
        drains = throughput(bench, app, org, services) if "relay" in parts else []
        worker = capacity(bench, app, org, services) if "worker" in parts else None
        latencies = []
        if "latency" in parts:
            latencies = [latency(bench, app, org, services, harness.env_float("BENCH_EVENT_RATE", 200.0),
                                 harness.env_float("BENCH_OUTBOX_SECONDS", 60.0)),
                         latency(bench, app, org, services, harness.env_float("BENCH_EVENT_RATE_LOW", 10.0), 10.0)]
        bursts = burst(bench, app, org, services) if "burst" in parts else None

    if drains:
        print()
        rows = []
        for d in drains:
            relay_cores = sum(v for k, v in d["cpu"]["cores"].items() if k.startswith("relay"))
            rows.append([d["label"], d["events"], d["emit_seconds"], d["events"] / d["emit_seconds"], d["seconds"],
                         d["events_per_s"], d["queued"], f"{relay_cores:.2f}", _cores(d["cpu"], "postgres", "valkey"),
                         f"{d['cpu']['others']:.2f}"])
        harness.print_table(["relay (throughput)", "events", "emit s", "emitted/s", "drain s", "relayed/s", "in RQ",
                             "relay CPU", "pg/valkey CPU", "others"], rows)
        best = max(drains, key=lambda d: d["events_per_s"])
        print(f"relayed {best['events_per_s']:,.0f} events/s ({best['label']}; target >= {TARGET_EVENTS_PER_S:,}: "
              f"{'met' if best['events_per_s'] >= TARGET_EVENTS_PER_S else 'MISSED'})")
        by_label = {d["label"]: d["events_per_s"] for d in drains}
        figures.update(events_per_s=best["events_per_s"], loop_events_per_s=by_label["relay_once loop, in-process"],
                       relay1_events_per_s=by_label["1 relay process"],
                       relay2_events_per_s=by_label["2 relay processes"])
    if worker:
        print()
        harness.print_table(["worker capacity", "jobs", "run s", "jobs/s", "replaced", "longest pause ms",
                             "worker CPU ms/job", "worker CPU", "pg/valkey CPU", "others"],
                            [["python worker.py, backlog in RQ", worker["jobs"], worker["seconds"],
                              worker["jobs_per_s"], worker["replaced"], worker["longest_gap_ms"],
                              worker["worker_cpu_ms_per_job"],
                              _cores(worker["cpu"], "worker"), _cores(worker["cpu"], "postgres", "valkey"),
                              f"{worker['cpu']['others']:.2f}"]])
        print(f"one worker process ran {worker['jobs_per_s']:,.0f} jobs/s (target >= {TARGET_JOBS_PER_S}: "
              f"{'met' if worker['jobs_per_s'] >= TARGET_JOBS_PER_S else 'MISSED'})")
        figures.update(worker_jobs_per_s=worker["jobs_per_s"], worker_cpu_ms_per_job=worker["worker_cpu_ms_per_job"],
                       worker_replaced=worker["replaced"], worker_longest_pause_ms=worker["longest_gap_ms"])
    if latencies:
        print()
        rows = [[r["label"], r["events"], f"{r['achieved_rate']:.0f}/s", r["recorded"], r["jobs_per_s"], r["p50_ms"],
                 r["p95_ms"], r["p99_ms"], r["max_ms"], _cores(r["cpu"], "relay", "worker"),
                 _cores(r["cpu"], "postgres", "valkey"), f"{r['cpu']['others']:.2f}"] for r in latencies]
        harness.print_table(["commit -> job start", "events", "emitted", "ran", "jobs/s", "p50 ms", "p95 ms",
                             "p99 ms", "max ms", "relay/worker CPU", "pg/valkey CPU", "others"], rows)
        for r in latencies:
            print(f"commit -> job start p95 {r['p95_ms']:,.0f} ms at {r['rate']:g} events/s "
                  f"(target < {TARGET_P95_MS} ms: {'met' if r['p95_ms'] < TARGET_P95_MS else 'MISSED'})")
        figures.update(p95_ms=latencies[0]["p95_ms"], p99_ms=latencies[0]["p99_ms"], rate=latencies[0]["rate"],
                       low_rate=latencies[1]["rate"], low_p95_ms=latencies[1]["p95_ms"])
    if bursts:
        b = bursts
        print()
        harness.print_table(["burst", "events", "emit s", "drain s", "events/s", "lost", "duplicates", "processed",
                             "failed", "left", "p95 ms", "relay/worker CPU", "pg/valkey CPU", "others"],
                            [["relay.py + worker.py", b["events"], b["emit_seconds"], b["seconds"], b["events_per_s"],
                              b["lost"], b["duplicates"], b["processed"], b["failed"], b["queued"] + b["pending"],
                              b["p95_ms"], _cores(b["cpu"], "relay", "worker"), _cores(b["cpu"], "postgres", "valkey"),
                              f"{b['cpu']['others']:.2f}"]])
        clean = b["lost"] == b["duplicates"] == b["failed"] == b["queued"] == b["pending"] == 0 and \
            b["processed"] == b["events"]
        print(f"a burst of {b['events']:,} events drained in {b['seconds']:,.0f} s: {b['lost']} lost, "
              f"{b['duplicates']} applied twice ({'met' if clean else 'MISSED'})")
        figures.update(burst_events=b["events"], burst_seconds=b["seconds"], burst_lost=b["lost"],
                       burst_duplicates=b["duplicates"], burst_events_per_s=b["events_per_s"])
    print("CPU columns are cores (2 in all); 'others' is CPU no process of this benchmark used. In the relay rows "
          "the relay CPU includes the relay's start-up.\n'jobs/s' is the pace at which jobs started, first to "
          "last; 'inf' is a job that had not run 60 s after the last event was emitted.")
    return harness.key_values(**figures)
