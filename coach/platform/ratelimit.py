"""Rate limits (Flask-Limiter on Redis, moving window, in-memory fallback when Redis is away).

Application-wide limits per IP, per signed-in user and per organization; routes add
their own (the login form counts failed attempts only, per account and per IP).
Every limit is configurable from the environment (README lists them).
"""
from __future__ import annotations

import math
import os
import time

from flask import g, request
from flask_limiter import ApplicationLimit, Limiter
from flask_limiter.util import get_remote_address
from flask_login import current_user


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def ip_key() -> str:
    return f"ip:{get_remote_address()}"


def user_key() -> str:
    return f"user:{current_user.id}" if current_user.is_authenticated else ip_key()


def org_key() -> str:
    tenant_id = g.get("tenant_id")
    return f"org:{tenant_id}" if tenant_id else ip_key()


def login_account_key() -> str:
    """The account a login form names (lower-cased, bounded), so guessing one password is slow everywhere."""
    email = (request.form.get("email") or "").strip().lower()[:254]
    return f"login-account:{email}"


def failed_form(response) -> bool:
    """Count a request only when its form was refused (422)."""
    return response.status_code == 422


def _anonymous() -> bool:
    return not current_user.is_authenticated


def _no_org() -> bool:
    return not g.get("tenant_id")


def _static() -> bool:
    return request.endpoint in ("static", "core.health", "core.ready", "core.metrics")


limiter = Limiter(
    key_func=ip_key,
    application_limits=[
        ApplicationLimit(lambda: _env("RATELIMIT_PER_IP", "600 per minute"), key_function=ip_key,
                         exempt_when=_static, scope="ip"),
        ApplicationLimit(lambda: _env("RATELIMIT_PER_USER", "300 per minute"), key_function=user_key,
                         exempt_when=lambda: _anonymous() or _static(), scope="user"),
        ApplicationLimit(lambda: _env("RATELIMIT_PER_ORG", "3000 per minute"), key_function=org_key,
                         exempt_when=lambda: _no_org() or _static(), scope="org"),
    ],
    strategy="moving-window",
    headers_enabled=True,
    swallow_errors=True,
    in_memory_fallback_enabled=True,
)

LOGIN_PER_ACCOUNT = lambda: _env("RATELIMIT_LOGIN_PER_ACCOUNT", "10 per 15 minutes")  # noqa: E731
LOGIN_PER_IP = lambda: _env("RATELIMIT_LOGIN_PER_IP", "30 per 15 minutes")  # noqa: E731
UPLOADS_PER_USER = lambda: _env("RATELIMIT_UPLOADS_PER_USER", "60 per hour")  # noqa: E731
EMAIL_PER_IP = lambda: _env("RATELIMIT_EMAIL_PER_IP", "10 per hour")  # noqa: E731


def retry_after_seconds(default: int = 60) -> int:
    """Seconds until the limit this request broke lets it through again, for the 429's ``Retry-After``.

    Flask-Limiter keeps the larger of an existing ``Retry-After`` and its own figure, so a
    guessed default would stretch a 10-second window to a minute.
    """
    try:
        current = limiter.current_limit
        if current is not None and current.breached:
            return max(1, math.ceil(current.reset_at - time.time()))
    except Exception:  # storage away: the default is the best we know
        pass
    return default


def init_limiter(app) -> None:
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"])
    # A Redis that is away must cost milliseconds, not seconds: fall back to memory.
    app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", {"socket_timeout": 0.2, "socket_connect_timeout": 0.2})
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "coach-rl")
    app.config.setdefault("RATELIMIT_ENABLED", os.environ.get("RATELIMIT_ENABLED", "true").lower() != "false")
    limiter.init_app(app)
