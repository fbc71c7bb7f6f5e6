"""Telling web processes what changed, and who is online: Redis pub/sub, presence keys, and the
send limit every process shares.

Pub/sub is a hint, never the record: every event names rows already committed in
PostgreSQL, and a client that missed one (Redis away, a reconnect) asks for what it lacks.
So publishing never fails a request: a Redis error is logged and the caller goes on.
"""
from __future__ import annotations

import json
import logging
import threading
import uuid

from flask import current_app
from limits import RateLimitItemPerSecond
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError
from sqlalchemy import event as orm_event
from sqlalchemy.orm import Session

from coach.extensions import db
from coach.platform.queues import redis_conn

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "coach:chat:"
# Events about accounts rather than one organization (a session ended) go to every process here; the
# hub's pattern subscription covers it.
ACCOUNTS_CHANNEL = f"{CHANNEL_PREFIX}accounts"
PRESENCE_TTL_SECONDS = 60  # a heartbeat every 20 s keeps a member online
STATES = ("online", "away")


def channel(tenant_id) -> str:
    return ACCOUNTS_CHANNEL if tenant_id is None else f"{CHANNEL_PREFIX}{tenant_id}"


def publish(tenant_id: uuid.UUID | None, event: dict) -> bool:
    """Announce ``event`` to every web process (``tenant_id`` None: an accounts event); ``False`` if
    Redis did not take it."""
    try:
        redis_conn().publish(channel(tenant_id), json.dumps(event, default=str))
        return True
    except RedisError as exc:
        log.warning("chat event not published (Redis unavailable: %s): %s", exc, event.get("type"))
        return False


# --- publishing once the transaction commits -------------------------------------------------------

_PENDING = "coach.chat.realtime.pending"


def publish_after_commit(tenant_id: uuid.UUID | None, event: dict) -> None:
    """Publish ``event`` when the current transaction commits, never if it rolls back.

    For receivers of lower layers' signals (a session revoked, a member removed), which run inside
    the caller's transaction: telling the web processes before the commit would close sockets for a
    change that may yet be rolled back.
    """
    db.session.info.setdefault(_PENDING, []).append((tenant_id, event))


@orm_event.listens_for(Session, "after_commit")
def _publish_pending(session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint was released: the real commit is still to come
    for tenant_id, event in session.info.pop(_PENDING, ()):
        publish(tenant_id, event)


@orm_event.listens_for(Session, "after_transaction_end")
def _forget_pending(session, transaction) -> None:
    if transaction.parent is None:
        session.info.pop(_PENDING, None)  # rolled back (a commit has published and emptied it)


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
    """``{member_id: "online" | "away" | "offline" | "unknown"}``; unknown for all when Redis is away."""
    return live_presence(tenant_id, member_ids)[0]


def live_presence(tenant_id, member_ids) -> tuple[dict, bool]:
    """The members' presence and whether live updates work now (Redis answers), in one round trip.

    With Redis away, pages still show every stored message, but nothing new arrives until a reload:
    the page says so instead of looking live, and presence is unknown rather than "offline"."""
    member_ids = list(member_ids)
    try:
        connection = redis_conn()
        values = connection.mget([_presence_key(tenant_id, m) for m in member_ids]) if member_ids \
            else (connection.ping() and [])
    except RedisError:
        return {m: "unknown" for m in member_ids}, False
    return {m: (v.decode() if isinstance(v, bytes) else v) or "offline" for m, v in zip(member_ids, values)}, True


# --- how fast a member may send ---------------------------------------------------------------------

# A moving window, not a fixed one: "20 messages in any 10 seconds" holds exactly (a fixed window lets
# twice that through across a window's edge, and a burst's refusals would depend on when it started).
# It keeps one Redis list per member, at most as long as the limit, updated by one script per message:
# cheap at chat's rates.
_send_limiters: dict[str, MovingWindowRateLimiter] = {}
_send_limiters_lock = threading.Lock()


def _send_limiter(url: str) -> MovingWindowRateLimiter:
    with _send_limiters_lock:
        limiter = _send_limiters.get(url)
        if limiter is None:
            # Short timeouts: a frame must not wait seconds for a Redis that is away.
            storage = RedisStorage(url, key_prefix="coach-chat-send", socket_timeout=0.2, socket_connect_timeout=0.2)
            limiter = _send_limiters[url] = MovingWindowRateLimiter(storage)
        return limiter


def allow_send(tenant_id, member_id) -> bool:
    """Count one message of a member against ``CHAT_MESSAGES_PER_10S``, across their sockets and forms
    in every process; ``False`` when over it. When Redis is away the message is allowed: a limit
    nobody can count must not stop members talking.
    """
    item = RateLimitItemPerSecond(current_app.config["CHAT_MESSAGES_PER_10S"], 10)
    try:
        return _send_limiter(current_app.config["REDIS_URL"]).hit(item, str(tenant_id), str(member_id))
    except Exception as exc:  # RedisError, or limits' own wrapper of it
        log.warning("chat send limit not counted (Redis unavailable: %s)", exc)
        return True
