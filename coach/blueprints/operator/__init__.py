"""The operators' console under ``/platform``: every organization's size and activity, queues, failed jobs,
the outbox and the slowest routes, for platform admins only (``flask platform-admin``). No tenant's content."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("operator", __name__, url_prefix="/platform")

# The route modules register their views on ``bp`` (imported last: they import it from here).
from coach.blueprints.operator import views  # noqa: E402, F401
