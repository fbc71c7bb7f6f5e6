"""Dependency checks for ``/health/ready``, each bounded by a short timeout."""
from __future__ import annotations

import logging

import redis
from flask import current_app
from sqlalchemy import text

from coach.extensions import db

log = logging.getLogger(__name__)


def check_dependencies() -> list[str]:
    """Names of the dependencies that do not answer (empty when all is well)."""
    failures = []
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any driver or pool error means "not ready"
        log.warning("readiness: postgresql failed: %s", exc)
        failures.append("postgresql")
    try:
        client = redis.Redis.from_url(current_app.config["REDIS_URL"], socket_timeout=1, socket_connect_timeout=1)
        client.ping()
        client.close()
    except Exception as exc:
        log.warning("readiness: redis failed: %s", exc)
        failures.append("redis")
    return failures
