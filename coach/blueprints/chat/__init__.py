"""Chat: conversations, their history, and the WebSocket that makes them live (see ``views``)."""
from __future__ import annotations

from coach import tenancy

bp = tenancy.org_blueprint("chat", __name__, "/o/<slug>/chat")

# The route modules register their views on ``bp`` (imported last: they import ``bp`` from here).
from coach.blueprints.chat import views  # noqa: E402, F401
