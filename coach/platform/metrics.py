"""Prometheus metrics. Multiprocess-safe under gunicorn when ``PROMETHEUS_MULTIPROC_DIR`` is set
(gunicorn.conf.py sets it); queue depths, failed jobs and outbox lag are read at scrape time."""
from __future__ import annotations

import logging
import os

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
