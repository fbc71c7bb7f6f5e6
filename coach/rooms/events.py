"""Outbox topics of the rooms domain (see :mod:`coach.platform.events`).

``ROOM_JOINED`` is emitted when a member starts a stay in a session's room (the signaling socket's join);
``ROOM_ENDED`` when the coach ends the room for everyone. A topic may have several consumers (they run in
order, in one transaction): notifications tell the athletes, the rooms domain closes stays, recording stops.
"""
from __future__ import annotations

from coach.platform.events import Topic

ROOM_JOINED = Topic(
    "room.joined",
    "session_id; membership_id (who started a stay); role (coach | athlete); emitted once per new stay (a "
    "reconnect of the same page's peer is not a new stay)",
)
ROOM_ENDED = Topic(
    "room.ended",
    "session_id; ended_by (the coach's membership id); ended_at (ISO 8601, UTC)",
)
