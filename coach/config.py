"""Settings, read from the environment only.

Every variable is listed with its default in the README. ``COACH_ENV`` picks the
profile: ``production`` (the default, strict), ``development`` (``make run``) or
``testing`` (the test suite).
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path


def _bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise RuntimeError(f"{name} must be an integer, got {value!r}") from exc


def _float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return float(value)
    except ValueError as exc:
        raise RuntimeError(f"{name} must be a number, got {value!r}") from exc


def _list(name: str, default: str = "") -> tuple[str, ...]:
    return tuple(part.strip() for part in (os.environ.get(name) or default).split(",") if part.strip())


class ConfigError(RuntimeError):
    """The environment does not describe a runnable app."""


def _dev_secret_key(instance_path: Path) -> str:
    """Generate a secret key once and keep it in ``instance/`` so sessions survive restarts."""
    instance_path.mkdir(parents=True, exist_ok=True)
    key_file = instance_path / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def load_config(instance_path: Path, overrides: dict | None = None) -> dict:
    """Build the Flask config mapping from the environment (and test overrides)."""
    overrides = dict(overrides or {})
    env = overrides.pop("COACH_ENV", None) or os.environ.get("COACH_ENV", "production")
    if env not in {"production", "development", "testing"}:
        raise ConfigError(f"COACH_ENV must be production, development or testing, not {env!r}")
    debug = env == "development"

    secret_key = overrides.get("SECRET_KEY") or os.environ.get("SECRET_KEY")
    if not secret_key:
        if env == "production":
            raise ConfigError("SECRET_KEY must be set in production (COACH_ENV=production).")
        secret_key = _dev_secret_key(instance_path)

    database_url = os.environ.get("DATABASE_URL", "")
    # PaaS providers hand out postgres:// URLs; SQLAlchemy needs the driver named.
    for prefix in ("postgres://", "postgresql://"):
        if database_url.startswith(prefix):
            database_url = "postgresql+psycopg://" + database_url[len(prefix):]

    owner_url = os.environ.get("DATABASE_OWNER_URL", "") or database_url
    for prefix in ("postgres://", "postgresql://"):
        if owner_url.startswith(prefix):
            owner_url = "postgresql+psycopg://" + owner_url[len(prefix):]

    cfg = {
        "COACH_ENV": env,
        "DEBUG": debug,
        "TESTING": env == "testing",
        "SECRET_KEY": secret_key,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "DATABASE_OWNER_URL": owner_url,
        "SQLALCHEMY_ENGINE_OPTIONS": {
            # No pre-ping (a round trip before every request's first statement): a pooled connection is
            # replaced after DB_POOL_RECYCLE_SECONDS, one the server has closed is seen at checkout without a
            # round trip (coach.extensions), and a request whose first statement still finds it dead retries
            # once on a fresh one (tenant_context.first_statement).
            "pool_recycle": _int("DB_POOL_RECYCLE_SECONDS", 1800),
            "pool_size": _int("DB_POOL_SIZE", 5),
            "max_overflow": _int("DB_MAX_OVERFLOW", 10),
            "pool_timeout": 10,
            "connect_args": {
                "connect_timeout": 5,
                # psycopg prepares a statement on its fifth use on a connection (kept across requests: a read-only
                # request ends with COMMIT). 0 turns preparing off, for a transaction-mode pooler that cannot keep
                # prepared statements (PgBouncer before 1.21, or without max_prepared_statements).
                "prepare_threshold": _int("DB_PREPARE_THRESHOLD", 5) or None,
                # A runaway query must not hold a web worker forever.
                "options": f"-c statement_timeout={_int('DB_STATEMENT_TIMEOUT_MS', 15000)}",
            },
        },
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "REDIS_MAX_CONNECTIONS": _int("REDIS_MAX_CONNECTIONS", 32),
        "APP_BASE_URL": os.environ.get("APP_BASE_URL", "http://127.0.0.1:5000").rstrip("/"),
        "MAIL_SERVER": os.environ.get("MAIL_SERVER", ""),
        "MAIL_PORT": _int("MAIL_PORT", 25),
        "MAIL_USERNAME": os.environ.get("MAIL_USERNAME", ""),
        "MAIL_PASSWORD": os.environ.get("MAIL_PASSWORD", ""),
        "MAIL_USE_TLS": _bool("MAIL_USE_TLS"),
        "MAIL_USE_SSL": _bool("MAIL_USE_SSL"),
        "MAIL_DEFAULT_SENDER": os.environ.get("MAIL_DEFAULT_SENDER", "Coach <no-reply@coach.localhost>"),
        "MAIL_TIMEOUT": _int("MAIL_TIMEOUT", 10),
        "PASSWORD_RESET_TTL_MINUTES": _int("PASSWORD_RESET_TTL_MINUTES", 60),
        # Emailed sign-in links ("Email me a sign-in link" on the login page) work once, this soon.
        "SIGNIN_LINK_TTL_MINUTES": _int("SIGNIN_LINK_TTL_MINUTES", 15),
        "INVITATION_TTL_DAYS": _int("INVITATION_TTL_DAYS", 7),
        # Passkeys (WebAuthn): the relying party id (the site's host name, e.g. coach.example.com) and the origin
        # browsers report (https://coach.example.com). Unset: taken from each request's host and scheme, which is
        # right when the app sees the host browsers use (directly, or behind a proxy with PROXY_FIX_HOPS).
        "WEBAUTHN_RP_ID": os.environ.get("WEBAUTHN_RP_ID", ""),
        "WEBAUTHN_ORIGIN": os.environ.get("WEBAUTHN_ORIGIN", "").rstrip("/"),
        # An unanswered booking request stops holding the coach's time after this long.
        "BOOKING_REQUEST_TTL_HOURS": _int("BOOKING_REQUEST_TTL_HOURS", 24),
        # Calendar sync (coach.calsync): each request to a coach's calendar server is bounded by the timeout; busy
        # time is read from a day ago to the horizon; a connection is synced again this many seconds after the
        # last sync. The server fetches URLs coaches type, so addresses on this machine or the private network
        # are refused unless allowed (on by default only in development and tests, for a local Radicale).
        "CALSYNC_TIMEOUT_SECONDS": _float("CALSYNC_TIMEOUT_SECONDS", 10.0),
        "CALSYNC_HORIZON_DAYS": _int("CALSYNC_HORIZON_DAYS", 180),
        "CALSYNC_INTERVAL_SECONDS": _int("CALSYNC_INTERVAL_SECONDS", 300),
        "CALSYNC_ALLOW_PRIVATE_ADDRESSES": _bool("CALSYNC_ALLOW_PRIVATE_ADDRESSES",
                                                 default=env in ("development", "testing")),
        # Live session rooms (coach.rooms). A room opens ROOM_OPENS_MINUTES before the session and closes
        # ROOM_GRACE_MINUTES after its end. ICE servers for WebRTC: STUN URLs, TURN URLs and the secret shared
        # with the TURN server (coturn's use-auth-secret): each member gets a credential valid ROOM_TURN_TTL_SECONDS.
        # With none set, browsers use host candidates only (one machine, a LAN).
        "ROOM_OPENS_MINUTES": _int("ROOM_OPENS_MINUTES", 10),
        "ROOM_GRACE_MINUTES": _int("ROOM_GRACE_MINUTES", 30),
        "ROOM_MAX_PARTICIPANTS": _int("ROOM_MAX_PARTICIPANTS", 6),
        "ROOM_STUN_URLS": _list("ROOM_STUN_URLS"),
        "ROOM_TURN_URLS": _list("ROOM_TURN_URLS"),
        "ROOM_TURN_SECRET": os.environ.get("ROOM_TURN_SECRET", ""),
        "ROOM_TURN_TTL_SECONDS": _int("ROOM_TURN_TTL_SECONDS", 6 * 3600),
        # The coach directory (coach.directory): reviews may be edited this many days after they are written; the
        # Bayesian rating pulls a coach with few reviews toward DIRECTORY_RATING_PRIOR_MEAN as if they had
        # DIRECTORY_RATING_PRIOR_WEIGHT reviews of that mean; a listing's next free slot is looked for this far ahead;
        # search results per page.
        "REVIEW_EDIT_DAYS": _int("REVIEW_EDIT_DAYS", 14),
        "DIRECTORY_RATING_PRIOR_MEAN": float(os.environ.get("DIRECTORY_RATING_PRIOR_MEAN", "3.8")),
        "DIRECTORY_RATING_PRIOR_WEIGHT": _int("DIRECTORY_RATING_PRIOR_WEIGHT", 5),
        "DIRECTORY_SLOT_HORIZON_DAYS": _int("DIRECTORY_SLOT_HORIZON_DAYS", 28),
        "DIRECTORY_PAGE_SIZE": _int("DIRECTORY_PAGE_SIZE", 20),
        # The public search's facet counts are kept in Valkey this long (counting them over every listing takes
        # a few hundred ms at 100k listings); 0 counts every time (the tests' default: they change and re-read).
        "DIRECTORY_FACET_CACHE_SECONDS": _int("DIRECTORY_FACET_CACHE_SECONDS", 0 if env == "testing" else 60),
        # A public search's rendered results are kept this long (a kept answer is used only while every coach it
        # shows is still listed and unchanged; the order, the set of matches and the counts may be this old).
        "DIRECTORY_RESULTS_CACHE_SECONDS": _int("DIRECTORY_RESULTS_CACHE_SECONDS", 0 if env == "testing" else 30),
        # Signaling frames: the largest accepted (an SDP offer with video, audio and a screen is a few KB), and
        # how many a socket may send in any 10 seconds before it is told to slow down (candidates come in bursts).
        "ROOM_MAX_FRAME_BYTES": _int("ROOM_MAX_FRAME_BYTES", 64 * 1024),
        "ROOM_FRAMES_PER_10S": _int("ROOM_FRAMES_PER_10S", 400),
        # Payments (coach.payments). With no STRIPE_SECRET_KEY outside production, `make run` and the tests start
        # the fake provider (fakestripe) and point STRIPE_API_BASE at it; with a real key, Stripe's own API.
        "STRIPE_SECRET_KEY": os.environ.get("STRIPE_SECRET_KEY", ""),
        "STRIPE_WEBHOOK_SECRET": os.environ.get("STRIPE_WEBHOOK_SECRET", ""),
        "STRIPE_API_BASE": os.environ.get("STRIPE_API_BASE", ""),
        # How old a webhook's signed timestamp may be (seconds) before it is refused as a replay.
        "STRIPE_WEBHOOK_TOLERANCE": _int("STRIPE_WEBHOOK_TOLERANCE", 300),
        # The client's retries on network errors (same idempotency key each time) and its per-request timeout.
        "STRIPE_MAX_NETWORK_RETRIES": _int("STRIPE_MAX_NETWORK_RETRIES", 2),
        "STRIPE_TIMEOUT_SECONDS": _int("STRIPE_TIMEOUT_SECONDS", 20),
        # A slot kept for an open checkout is freed after this long unless paid.
        "PAYMENT_HOLD_MINUTES": _int("PAYMENT_HOLD_MINUTES", 30),
        # A session moves from active to ended this long after its scheduled end.
        "BOOKING_END_GRACE_MINUTES": _int("BOOKING_END_GRACE_MINUTES", 15),
        # Media: "local" keeps objects under MEDIA_LOCAL_ROOT and signs its own URLs; "s3" uses S3_*.
        "MEDIA_BACKEND": os.environ.get("MEDIA_BACKEND", "local"),
        "MEDIA_LOCAL_ROOT": os.environ.get("MEDIA_LOCAL_ROOT", str(instance_path / "media")),
        "S3_BUCKET": os.environ.get("S3_BUCKET", ""),
        "S3_REGION": os.environ.get("S3_REGION", "us-east-1"),
        "S3_ENDPOINT_URL": os.environ.get("S3_ENDPOINT_URL", ""),
        # The endpoint browsers use, when it differs from the one the app reaches (a proxy or CDN).
        "S3_PUBLIC_ENDPOINT_URL": os.environ.get("S3_PUBLIC_ENDPOINT_URL", ""),
        "MEDIA_MAX_BYTES": _int("MEDIA_MAX_BYTES", 500 * 1024 * 1024),
        "MEDIA_QUOTA_BYTES": _int("MEDIA_QUOTA_BYTES", 100 * 1024 ** 3),
        "MEDIA_PART_BYTES": _int("MEDIA_PART_BYTES", 8 * 1024 * 1024),
        "MEDIA_URL_TTL_SECONDS": _int("MEDIA_URL_TTL_SECONDS", 900),
        "MEDIA_UPLOAD_TTL_HOURS": _int("MEDIA_UPLOAD_TTL_HOURS", 24),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": _bool("SESSION_COOKIE_SECURE", default=env == "production"),
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": _bool("SESSION_COOKIE_SECURE", default=env == "production"),
        "PERMANENT_SESSION_LIFETIME": _int("SESSION_LIFETIME_HOURS", 24 * 14) * 3600,
        # The cookie is signed again when the session changes or its server-side record is touched (every few
        # minutes of use: accounts.loader), not on every response (~1/8 of a small page's CPU went to it).
        "SESSION_REFRESH_EACH_REQUEST": False,
        "MAX_CONTENT_LENGTH": _int("MAX_FORM_BYTES", 1024 * 1024),
        "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO").upper(),
        "PROXY_FIX_HOPS": _int("PROXY_FIX_HOPS", 0),
        # /metrics answers other machines only with "Authorization: Bearer <METRICS_TOKEN>".
        "METRICS_TOKEN": os.environ.get("METRICS_TOKEN", ""),
        # WebSockets (flask-sock): frames over 16 KB close that socket; a ping keeps idle ones open
        # through proxies that drop silent connections.
        "SOCK_SERVER_OPTIONS": {"ping_interval": _int("CHAT_PING_SECONDS", 25),
                                "max_message_size": _int("CHAT_MAX_FRAME_BYTES", 16 * 1024)},
        # Messages one member may send per 10 seconds (all their sockets and forms, in every process)
        # before they are told to slow down.
        "CHAT_MESSAGES_PER_10S": _int("CHAT_MESSAGES_PER_10S", 20),
        # A chat message to someone offline is emailed this long after it arrives, unless they have
        # read the conversation by then (0: at once).
        "NOTIFY_MESSAGE_EMAIL_DELAY_SECONDS": _int("NOTIFY_MESSAGE_EMAIL_DELAY_SECONDS", 300),
        # The outbox relay (python relay.py): events claimed per batch, seconds between polls when no
        # NOTIFY arrives, enqueue attempts before an event is a dead letter.
        "OUTBOX_BATCH": _int("OUTBOX_BATCH", 500),
        "OUTBOX_POLL_SECONDS": _float("OUTBOX_POLL_SECONDS", 5.0),
        "OUTBOX_MAX_ATTEMPTS": _int("OUTBOX_MAX_ATTEMPTS", 8),
        # Fault-test seam: the relay writes this file and sleeps between enqueue and acknowledge.
        "RELAY_PAUSE_AFTER_ENQUEUE": os.environ.get("COACH_RELAY_PAUSE_AFTER_ENQUEUE", ""),
        # More modules that register outbox consumers on import (benchmarks', fault tests').
        "EXTRA_CONSUMERS": _list("COACH_EXTRA_CONSUMERS"),
        # The RQ worker (python worker.py). The timings make a job whose worker died (kill -9, a lost
        # machine) run again within a minute: its heartbeat (every 10 s) lapses 20 s after the last one,
        # and a live worker, waking at least every RQ_WORKER_TTL - 15 = 20 s, finds it abandoned at its
        # next maintenance (every 20 s): at most 10 + 20 + 20 s, plus the job's first retry interval.
        "RQ_QUEUES": _list("RQ_QUEUES", "default,mail,media,notifications"),
        "RQ_WITH_SCHEDULER": _bool("RQ_WITH_SCHEDULER", default=True),
        "RQ_JOB_MONITORING_INTERVAL": _int("RQ_JOB_MONITORING_INTERVAL", 10),
        "RQ_HEARTBEAT_GRACE": _int("RQ_HEARTBEAT_GRACE", 20),
        "RQ_MAINTENANCE_INTERVAL": _int("RQ_MAINTENANCE_INTERVAL", 20),
        "RQ_WORKER_TTL": _int("RQ_WORKER_TTL", 35),
        # The worker's work process runs job after job and is replaced after this many jobs or once its
        # resident memory passes this many MB (0: no limit); a job stuck this many seconds past its timeout
        # (where RQ's alarm cannot stop it) is killed with its work process (see worker.py).
        "WORKER_MAX_JOBS": _int("WORKER_MAX_JOBS", 10000),
        "WORKER_MAX_MEMORY_MB": _int("WORKER_MAX_MEMORY_MB", 512),
        "WORKER_KILL_GRACE": _int("WORKER_KILL_GRACE", 30),
        # RQ's own log lines in the worker; at INFO it writes three per job (an event job logs its own line).
        "RQ_LOG_LEVEL": os.environ.get("RQ_LOG_LEVEL") or "WARNING",
        # Rate limits (Flask-Limiter notation); RATELIMIT_ENABLED=false turns them all off.
        "RATELIMIT_ENABLED": _bool("RATELIMIT_ENABLED", default=True),
        "RATELIMIT_PER_IP": os.environ.get("RATELIMIT_PER_IP") or "600 per minute",
        "RATELIMIT_PER_USER": os.environ.get("RATELIMIT_PER_USER") or "300 per minute",
        "RATELIMIT_PER_ORG": os.environ.get("RATELIMIT_PER_ORG") or "3000 per minute",
        # Failed logins: refused per account from one address and per address; from everywhere together,
        # an account's further attempts only wait LOGIN_SLOWDOWN_SECONDS each (a refusal there would let
        # anyone lock the account's owner out).
        "RATELIMIT_LOGIN_PER_ACCOUNT_IP": os.environ.get("RATELIMIT_LOGIN_PER_ACCOUNT_IP") or "10 per 15 minutes",
        "RATELIMIT_LOGIN_PER_IP": os.environ.get("RATELIMIT_LOGIN_PER_IP") or "30 per 15 minutes",
        "RATELIMIT_LOGIN_PER_ACCOUNT": os.environ.get("RATELIMIT_LOGIN_PER_ACCOUNT") or "20 per 15 minutes",
        "LOGIN_SLOWDOWN_SECONDS": _float("LOGIN_SLOWDOWN_SECONDS", 2.0),
        "RATELIMIT_SIGNIN_LINK_PER_ACCOUNT": os.environ.get("RATELIMIT_SIGNIN_LINK_PER_ACCOUNT") or "3 per 15 minutes",
        "RATELIMIT_UPLOADS_PER_USER": os.environ.get("RATELIMIT_UPLOADS_PER_USER") or "60 per hour",
        "RATELIMIT_EMAIL_PER_IP": os.environ.get("RATELIMIT_EMAIL_PER_IP") or "10 per hour",
        "RATELIMIT_STORAGE_PER_IP": os.environ.get("RATELIMIT_STORAGE_PER_IP") or "1200 per minute",
        # Two-factor codes and recovery codes at the second sign-in step (wrong ones only): refused per account and
        # per address; an account's failures past its limit are emailed to its person once per window.
        "RATELIMIT_TWOFACTOR_PER_ACCOUNT": os.environ.get("RATELIMIT_TWOFACTOR_PER_ACCOUNT") or "10 per 15 minutes",
        "RATELIMIT_TWOFACTOR_PER_IP": os.environ.get("RATELIMIT_TWOFACTOR_PER_IP") or "30 per 15 minutes",
        # The no-login booking links of emails (view, cancel, reschedule pages and their forms), per address.
        "RATELIMIT_BOOKING_LINKS": os.environ.get("RATELIMIT_BOOKING_LINKS") or "30 per minute",
        # The public directory's search (/coaches), per address; "off" exempts it (the directory benchmark).
        "RATELIMIT_DIRECTORY_SEARCH": os.environ.get("RATELIMIT_DIRECTORY_SEARCH") or "120 per minute",
        # Fernet keys sealing secrets at rest (TOTP secrets, calendar passwords), comma-separated: the first seals,
        # all unseal (rotation). Unset: one key derived from SECRET_KEY (coach.platform.sealing).
        "ENCRYPTION_KEYS": os.environ.get("ENCRYPTION_KEYS", ""),
        # The request header a trusted proxy puts the client's country in (e.g. CF-IPCountry); unset: none is read.
        # Recorded with each session; a sign-in from a country never seen before is emailed to its person.
        "COUNTRY_HEADER": os.environ.get("COUNTRY_HEADER", ""),
        # Tracing: on only when an OTLP endpoint is set (and the otel extra installed).
        "OTEL_EXPORTER_OTLP_ENDPOINT": os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
        "OTEL_SERVICE_NAME": os.environ.get("OTEL_SERVICE_NAME") or "coach",
    }
    cfg.update(overrides)
    if not cfg["SQLALCHEMY_DATABASE_URI"]:
        raise ConfigError("DATABASE_URL must be set (make run sets it for the embedded database).")
    if not cfg.get("DATABASE_OWNER_URL"):
        cfg["DATABASE_OWNER_URL"] = cfg["SQLALCHEMY_DATABASE_URI"]
    return cfg
