"""Health checks and the development mailbox."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("core", __name__)

# The route modules register their views on ``bp`` (imported last: they import ``bp`` from here).
from coach.blueprints.core import app_icons, views  # noqa: E402, F401
