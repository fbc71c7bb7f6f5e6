"""Request ids, one JSON log line per request, Prometheus metrics, optional OpenTelemetry."""
from __future__ import annotations

import hmac
import json
import logging
import re
import time
import uuid

from flask import Flask, Response, abort, current_app, g, has_app_context, request, request_started
from flask_login import current_user
from sqlalchemy import inspect as sa_inspect

from coach.extensions import db

REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
access_log = logging.getLogger("coach.request")


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the request id of the request or job that logged it."""

    converter = time.gmtime  # "ts" ends in Z: UTC in every process, gunicorn's master included

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if has_app_context() and g.get("request_id"):
            entry["request_id"] = g.request_id
        extra = getattr(record, "fields", None)
        if extra:
            entry.update(extra)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        root.setLevel(level)
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    # Replace plain console handlers (basicConfig's); keep others (a test's log capture).
    root.handlers[:] = [h for h in root.handlers if type(h) is not logging.StreamHandler] + [handler]
    root.setLevel(level)
    logging.Formatter.converter = time.gmtime


def incoming_request_id() -> str:
    """``X-Request-ID`` if it is a sane token, else a new id (forged or oversized values are replaced)."""
    given = request.headers.get("X-Request-ID", "")
    # fullmatch: with match, "$" would let a trailing newline through into the response header.
    return given if REQUEST_ID_RE.fullmatch(given) else uuid.uuid4().hex


def _signed_in_user_id() -> str | None:
    """Who made the request, for its log line, without a query: after a commit the user's attributes are
    expired, and reading ``id`` would load them again (after the response is built, where a database that
    has just gone away fails the request). The identity map keeps the key through the expiry."""
    user = current_user._get_current_object() if current_user else None
    if user is None or not user.is_authenticated:
        return None
    state = sa_inspect(user, raiseerr=False)
    identity = state.identity if state is not None else None
    return str(identity[0]) if identity else None


def init_observability(app: Flask) -> None:
    # Not at the top: gunicorn's master imports this module for JsonFormatter; metrics belong to the workers.
    from coach.platform import metrics

    metrics.init(app)

    # On request_started, not before_request: URL value preprocessors (the organization lookup) and
    # earlier before_request hooks (CSRF) run before any before_request of ours and may end the request.
    def _start(sender, **extra):
        g.request_id = incoming_request_id()
        g.request_started = time.perf_counter()

    request_started.connect(_start, app, weak=False)

    @app.after_request
    def _log(response: Response):
        started = g.get("request_started")
        duration_ms = (time.perf_counter() - started) * 1000 if started else 0.0
        route = request.url_rule.rule if request.url_rule else "<unmatched>"
        response.headers["X-Request-ID"] = g.get("request_id", "")
        metrics.observe_request(request.method, route, response.status_code, duration_ms / 1000)
        if request.endpoint != "static":
            access_log.info("request", extra={"fields": {
                "request_id": g.get("request_id"),
                "method": request.method,
                "route": route,
                "status": response.status_code,
                "duration_ms": round(duration_ms, 2),
                "user_id": _signed_in_user_id(),
                "org_id": str(g.tenant_id) if g.get("tenant_id") else None,
            }})
        return response

    @app.get("/metrics", endpoint="core.metrics")
    def metrics_view():
        """Prometheus metrics: bearer token (METRICS_TOKEN) or a request from this machine."""
        token = current_app.config.get("METRICS_TOKEN")
        auth = request.headers.get("Authorization", "")
        local = request.remote_addr in ("127.0.0.1", "::1")
        if not (local or (token and hmac.compare_digest(auth.encode(), f"Bearer {token}".encode()))):
            abort(403)
        body, content_type = metrics.render()
        return Response(body, content_type=content_type)

    _init_tracing(app)


def _init_tracing(app: Flask) -> None:
    """OpenTelemetry for Flask, SQLAlchemy and Redis, only when an OTLP endpoint is configured."""
    if not app.config["OTEL_EXPORTER_OTLP_ENDPOINT"]:
        return
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.flask import FlaskInstrumentor
        from opentelemetry.instrumentation.redis import RedisInstrumentor
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        app.logger.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed "
                           "(pip install 'coach[otel]'); tracing stays off")
        return
    provider = TracerProvider(resource=Resource.create({"service.name": app.config["OTEL_SERVICE_NAME"]}))
    # The exporter's endpoint from our settings (it would otherwise read the environment itself).
    endpoint = app.config["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    FlaskInstrumentor().instrument_app(app)
    with app.app_context():
        SQLAlchemyInstrumentor().instrument(engine=db.engine)
    RedisInstrumentor().instrument()
