"""Rooms' jobs: what follows a room's end, and (imported from here so the app and the worker load them) the
other room modules' consumers and sweeps: the stays' sweep (``attendance_jobs``) and the recordings'
(``recording_jobs``)."""
from __future__ import annotations

import uuid
from datetime import datetime

from flask import g

from coach.platform.jobs import consumer
from coach.rooms import attendance_jobs, recording_jobs, service  # noqa: F401 - their consumers and sweeps
from coach.rooms.events import ROOM_ENDED


@consumer(ROOM_ENDED)
def close_stays_left_open(payload: dict) -> None:
    """No stay outlives its room: one that a socket opened while the coach was ending it (its join checked the
    room a moment before the end committed) is closed at the end. Ending closed the others already, so a
    redelivered event changes nothing."""
    service.close_open_stays(g.tenant_id, uuid.UUID(payload["session_id"]),
                             datetime.fromisoformat(payload["ended_at"]))
