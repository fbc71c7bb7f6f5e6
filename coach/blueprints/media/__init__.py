"""The media library, uploads, an item's page and its review comments."""
from __future__ import annotations

from coach import tenancy

bp = tenancy.org_blueprint("media", __name__, "/o/<slug>/media")

# The route modules register their views on ``bp`` (imported last: they import ``bp`` from here).
from coach.blueprints.media import views  # noqa: E402, F401
