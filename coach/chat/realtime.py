"""Telling web processes what changed, and who is online: Redis pub/sub and presence keys.

Pub/sub is a hint, never the record: every event names rows already committed in
PostgreSQL, and a client that missed one (Redis away, a reconnect) asks for what it lacks.
So publishing never fails a request: a Redis error is logged and the caller goes on.
"""
from __future__ import annotations

import json
import logging
import uuid

from redis.exceptions import RedisError

from coach.platform.queues import redis_conn

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "coach:chat:"
PRESENCE_TTL_SECONDS = 60  # a heartbeat every 20 s keeps a member online
STATES = ("online", "away")


def channel(tenant_id) -> str:
    return f"{CHANNEL_PREFIX}{tenant_id}"


def publish(tenant_id: uuid.UUID, event: dict) -> bool:
    """Announce ``event`` to every web process; ``False`` if Redis did not take it."""
    try:
        redis_conn().publish(channel(tenant_id), json.dumps(event, default=str))
        return True
    except RedisError as exc:
        log.warning("chat event not published (Redis unavailable: %s): %s", exc, event.get("type"))
        return False


def _presence_key(tenant_id, member_id) -> str:
    return f"coach:presence:{tenant_id}:{member_id}"


def set_presence(tenant_id, member_id, state: str) -> str | None:
    """Record ``state`` for a minute; the previous state (None: was offline), to announce changes."""
    if state not in STATES:
        raise ValueError(state)
    try:
        previous = redis_conn().set(_presence_key(tenant_id, member_id), state, ex=PRESENCE_TTL_SECONDS, get=True)
    except RedisError:
        return state  # unknown: announce nothing
    return previous.decode() if isinstance(previous, bytes) else previous


def clear_presence(tenant_id, member_id) -> None:
    try:
        redis_conn().delete(_presence_key(tenant_id, member_id))
    except RedisError:
        pass


def presence_of(tenant_id, member_ids) -> dict:
    """``{member_id: "online" | "away" | "offline"}``; offline for all when Redis is away."""
    member_ids = list(member_ids)
    if not member_ids:
        return {}
    try:
        values = redis_conn().mget([_presence_key(tenant_id, m) for m in member_ids])
    except RedisError:
        values = [None] * len(member_ids)
    return {m: (v.decode() if isinstance(v, bytes) else v) or "offline" for m, v in zip(member_ids, values)}
