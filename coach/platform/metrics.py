"""Prometheus metrics. Multiprocess-safe under gunicorn when ``PROMETHEUS_MULTIPROC_DIR`` is set
(gunicorn.conf.py sets it); queue depths, failed jobs and outbox lag are read at scrape time."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from flask import Flask, current_app, has_app_context
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

from coach.platform.system import outbox_stats, queue_stats

log = logging.getLogger(__name__)

REQUESTS = Counter("coach_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("coach_http_request_duration_seconds", "HTTP request latency", ["method", "route"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

_app: Flask | None = None


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(method, route).observe(seconds)


class StateCollector:
    """Gauges read from Redis and PostgreSQL when scraped (never cached, never fatal)."""

    def collect(self):
        depth = GaugeMetricFamily("coach_queue_depth", "Jobs waiting per RQ queue", labels=["queue"])
        failed = GaugeMetricFamily("coach_jobs_failed", "Failed jobs kept per RQ queue", labels=["queue"])
        pending = GaugeMetricFamily("coach_outbox_pending", "Outbox events not yet relayed")
        dead = GaugeMetricFamily("coach_outbox_dead", "Outbox events that exhausted their attempts")
        lag = GaugeMetricFamily("coach_outbox_lag_seconds", "Age of the oldest pending outbox event")
        # The app serving this scrape; a later create_app in the same process (tests, tools)
        # must not make /metrics read another app's database and Redis.
        app = current_app._get_current_object() if has_app_context() else _app
        if app is not None:
            with app.app_context():
                try:
                    for row in queue_stats():
                        depth.add_metric([row["name"]], row["queued"])
                        failed.add_metric([row["name"]], row["failed"])
                except Exception as exc:
                    log.warning("metrics: queue stats unavailable: %s", exc)
                try:
                    stats = outbox_stats()
                    pending.add_metric([], stats["pending"])
                    dead.add_metric([], stats["dead"])
                    lag.add_metric([], stats["oldest_age_seconds"])
                except Exception as exc:
                    log.warning("metrics: outbox stats unavailable: %s", exc)
        yield from (depth, failed, pending, dead, lag)


_state = StateCollector()


def init(app: Flask) -> None:
    global _app
    _app = app


@dataclass(frozen=True)
class RouteLatency:
    """One route's requests so far: how many, their mean time and the bucket bound 95 % of them stayed under
    (``None`` past the last bucket)."""

    method: str
    route: str
    count: int
    mean_seconds: float
    p95_seconds: float | None


def multiprocess_enabled() -> bool:
    """Whether the metrics are every worker process's (gunicorn with ``PROMETHEUS_MULTIPROC_DIR``)."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def route_latencies(limit: int = 15) -> list[RouteLatency]:
    """The slowest routes (by their 95th percentile bucket, then mean) from the request histogram.

    Under gunicorn with ``PROMETHEUS_MULTIPROC_DIR`` every worker's files are added up, as ``/metrics`` does;
    without it, this is the view of the process that answers (the figures since it started)."""
    if multiprocess_enabled():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        families = registry.collect()
    else:
        families = LATENCY.collect()
    totals: dict[tuple[str, str], dict] = {}
    for family in families:
        if family.name != "coach_http_request_duration_seconds":
            continue
        for sample in family.samples:
            key = (sample.labels.get("method", ""), sample.labels.get("route", ""))
            entry = totals.setdefault(key, {"count": 0.0, "sum": 0.0, "buckets": []})
            if sample.name.endswith("_count"):
                entry["count"] += sample.value
            elif sample.name.endswith("_sum"):
                entry["sum"] += sample.value
            elif sample.name.endswith("_bucket"):
                entry["buckets"].append((float(sample.labels["le"]), sample.value))
    found = []
    for (method, route), entry in totals.items():
        count = int(entry["count"])
        if not count:
            continue
        p95 = next((le for le, seen in sorted(entry["buckets"]) if seen >= 0.95 * count), None)
        found.append(RouteLatency(method, route, count, entry["sum"] / count,
                                  None if p95 is None or p95 == float("inf") else p95))
    found.sort(key=lambda r: (r.p95_seconds if r.p95_seconds is not None else float("inf"), r.mean_seconds),
               reverse=True)
    return found[:limit]


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        for collector in (REQUESTS, LATENCY):
            registry.register(collector)
    registry.register(_state)
    return generate_latest(registry), CONTENT_TYPE_LATEST
