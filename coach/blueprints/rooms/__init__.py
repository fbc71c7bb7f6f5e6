"""Live session rooms under ``/o/<slug>/sessions/<session_id>``: the room page, its signaling socket, the
recording's upload routes and the side panel (the booking's conversation and the coach's notes)."""
from __future__ import annotations

from coach import tenancy

bp = tenancy.org_blueprint("rooms", __name__, "/o/<slug>/sessions")

# The route modules register their views on ``bp`` (imported last: they import it from here).
from coach.blueprints.rooms import panel, recording, signaling, views  # noqa: E402, F401
