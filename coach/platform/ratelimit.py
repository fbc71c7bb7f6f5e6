"""Rate limits (Flask-Limiter on Redis, moving window, in-memory fallback when Redis is away).

Application-wide limits per IP, per signed-in user and per organization; routes add
their own. The login form counts failed attempts only: refused per account from one address
and per address; per account from everywhere it only slows (:func:`slow_down_login`), so
nobody can lock someone else out by typing wrong passwords for them.
Every limit is a setting (``RATELIMIT_*`` in coach.config, from the environment; README lists them),
read from the app's config on each request.
"""
from __future__ import annotations

import logging
import math
import time
from datetime import timedelta

from flask import current_app, g, request
from flask_limiter import ApplicationLimit, Limiter
from limits import parse as parse_limit
from flask_limiter.util import get_remote_address
from flask_login import current_user


log = logging.getLogger(__name__)


def _setting(name: str):
    """A limit that Flask-Limiter reads on each request, from the app's config."""
    return lambda: current_app.config[name]


def ip_key() -> str:
    return f"ip:{get_remote_address()}"


def user_key() -> str:
    return f"user:{current_user.id}" if current_user.is_authenticated else ip_key()


def org_key() -> str:
    tenant_id = g.get("tenant_id")
    return f"org:{tenant_id}" if tenant_id else ip_key()


def _form_email() -> str:
    """The email a form names, lower-cased and bounded, as a counter's key."""
    return (request.form.get("email") or "").strip().lower()[:254]


def login_account_ip_key() -> str:
    """One account guessed from one address: refused past its limit. Keyed by both, so a stranger's
    guesses elsewhere never refuse the owner."""
    return f"login-account-ip:{_form_email()}:{get_remote_address()}"


def signin_link_key() -> str:
    """Sign-in links asked for one account: its inbox must not be flooded through us."""
    return f"signin-link:{_form_email()}"


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
        ApplicationLimit(_setting("RATELIMIT_PER_IP"), key_function=ip_key, exempt_when=_static, scope="ip"),
        ApplicationLimit(_setting("RATELIMIT_PER_USER"), key_function=user_key,
                         exempt_when=lambda: _anonymous() or _static(), scope="user"),
        ApplicationLimit(_setting("RATELIMIT_PER_ORG"), key_function=org_key,
                         exempt_when=lambda: _no_org() or _static(), scope="org"),
    ],
    strategy="moving-window",
    headers_enabled=True,
    swallow_errors=True,
    in_memory_fallback_enabled=True,
)

LOGIN_PER_ACCOUNT_IP = _setting("RATELIMIT_LOGIN_PER_ACCOUNT_IP")
LOGIN_PER_IP = _setting("RATELIMIT_LOGIN_PER_IP")
SIGNIN_LINK_PER_ACCOUNT = _setting("RATELIMIT_SIGNIN_LINK_PER_ACCOUNT")
UPLOADS_PER_USER = _setting("RATELIMIT_UPLOADS_PER_USER")
EMAIL_PER_IP = _setting("RATELIMIT_EMAIL_PER_IP")
STORAGE_PER_IP = _setting("RATELIMIT_STORAGE_PER_IP")
SECOND_STEP_PER_ACCOUNT = _setting("RATELIMIT_TWOFACTOR_PER_ACCOUNT")
SECOND_STEP_PER_IP = _setting("RATELIMIT_TWOFACTOR_PER_IP")


def second_step_limits(account_key):
    """The limits of the second sign-in step (two-factor and recovery codes), shared by its forms: wrong codes
    (422) only, refused past a limit per account (``account_key()``: the person half signed in) and per address.
    A stranger must know the password to reach this step, so a refusal per account locks out nobody else."""
    per_account = limiter.shared_limit(SECOND_STEP_PER_ACCOUNT, "second-step-account", key_func=account_key,
                                       methods=["POST"], deduct_when=failed_form)
    per_ip = limiter.shared_limit(SECOND_STEP_PER_IP, "second-step-ip", methods=["POST"], deduct_when=failed_form)
    return lambda view: per_account(per_ip(view))


def limit_window(setting: str):
    """The window of the limit named by the setting ``setting`` (how long a lockout lasts), a timedelta."""
    return timedelta(seconds=parse_limit(current_app.config[setting]).get_expiry())


def second_step_exhausted(account_key: str) -> bool:
    """Whether the failure being answered now uses up the account's second-step limit (it is counted after the
    response, so one left means none after it): time to tell the account's person."""
    if not (current_app.config.get("RATELIMIT_ENABLED", True) and limiter.enabled):
        return False
    # The identifiers Flask-Limiter counts a shared limit under: its key prefix, the key, the limit's scope.
    identifiers = [prefix for prefix in [current_app.config.get("RATELIMIT_KEY_PREFIX")] if prefix]
    try:
        _, remaining = limiter.limiter.get_window_stats(
            parse_limit(current_app.config["RATELIMIT_TWOFACTOR_PER_ACCOUNT"]), *identifiers, account_key,
            "second-step-account")
    except Exception:
        log.warning("second-step failures not read: rate limit storage unavailable", exc_info=True)
        return False
    return remaining <= 1


def _account_counter(email: str):
    """The per-account limit across addresses and its key, for the limiter's own storage (Redis, or
    its in-memory fallback while Redis is away); ``None`` when rate limits are off."""
    if not (current_app.config.get("RATELIMIT_ENABLED", True) and limiter.enabled):
        return None
    item = parse_limit(current_app.config["RATELIMIT_LOGIN_PER_ACCOUNT"])
    return item, ("login-account", email.strip().lower()[:254])


def slow_down_login(email: str) -> float:
    """Wait before checking a password for an account whose failed logins (from every address
    together) passed ``RATELIMIT_LOGIN_PER_ACCOUNT``; returns the seconds waited.

    Every attempt waits, right password or wrong, so the wait says nothing about the password. A
    refusal here would let anyone lock the owner out; a wait slows every further guess and costs the
    owner a moment. Under gevent ``time.sleep`` yields: the worker serves others meanwhile.
    """
    counter = _account_counter(email)
    if counter is None:
        return 0.0
    item, key = counter
    try:
        over = not limiter.limiter.test(item, *key)
    except Exception:  # storage away: no delay (the refusing limits still count in memory)
        log.warning("login slow-down not checked: rate limit storage unavailable", exc_info=True)
        return 0.0
    if not over:
        return 0.0
    delay = float(current_app.config["LOGIN_SLOWDOWN_SECONDS"])
    time.sleep(delay)
    return delay


def count_failed_login(email: str) -> bool:
    """Count one wrong password for the account, wherever it came from (see :func:`slow_down_login`); ``True``
    when the account's failures have now reached the limit (its person is told: a lockout notice)."""
    counter = _account_counter(email)
    if counter is None:
        return False
    item, key = counter
    try:
        limiter.limiter.hit(item, *key)
        return not limiter.limiter.test(item, *key)
    except Exception:
        log.warning("failed login not counted: rate limit storage unavailable", exc_info=True)
        return False


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
    """Bind the limiter to ``app`` (``RATELIMIT_ENABLED`` and the limits come from its config)."""
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"])
    # A Redis that is away must cost milliseconds, not seconds: fall back to memory.
    app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", {"socket_timeout": 0.2, "socket_connect_timeout": 0.2})
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "coach-rl")
    limiter.init_app(app)
