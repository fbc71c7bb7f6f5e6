"""Room messages between web processes: every frame a room's sockets exchange (and what the server itself
tells a room: someone joined, recording started, the room ended) goes through Redis pub/sub on the chat
channel of the organization, and each process's hub hands it to the room's sockets it holds.

Server-originated messages are published with :func:`publish` (after the commit, when the change that
prompted them must not be told before it is kept: :func:`publish_after_commit`).
"""
from __future__ import annotations

import json
import uuid

from coach.chat import realtime

ROOM_EVENT = "room"


def _event(tenant_id: uuid.UUID, session_id: uuid.UUID, message: dict, to_peer: str | None,
           from_peer: str | None) -> dict:
    return {"type": ROOM_EVENT, "tenant_id": str(tenant_id), "session_id": str(session_id),
            "to": to_peer, "from": from_peer, "message": message}


def encoded(tenant_id: uuid.UUID, session_id: uuid.UUID, message: dict, *, to_peer: str | None = None,
            from_peer: str | None = None) -> tuple[str, str]:
    """The channel and the published text of a room message, for a caller that publishes it itself (the
    signaling socket, in the same round trip as its check that the addressee is in the room)."""
    return realtime.channel(tenant_id), json.dumps(_event(tenant_id, session_id, message, to_peer, from_peer),
                                                   separators=(",", ":"))


def publish(tenant_id: uuid.UUID, session_id: uuid.UUID, message: dict, *, to_peer: str | None = None,
            from_peer: str | None = None) -> bool:
    """Send ``message`` (a dict with a ``type``) to the room's sockets in every process: to one peer, or to
    all but ``from_peer``. False when Redis did not take it (never raises)."""
    return realtime.publish(tenant_id, _event(tenant_id, session_id, message, to_peer, from_peer))


def publish_after_commit(tenant_id: uuid.UUID, session_id: uuid.UUID, message: dict, *,
                         to_peer: str | None = None) -> None:
    """:func:`publish` once the current transaction commits (never if it rolls back)."""
    realtime.publish_after_commit(tenant_id, _event(tenant_id, session_id, message, to_peer, None))
