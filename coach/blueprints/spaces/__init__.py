"""Community spaces: feeds, posts, comments, reactions, members and moderation."""
from __future__ import annotations

from coach import tenancy

bp = tenancy.org_blueprint("spaces", __name__, "/o/<slug>")

# The route modules register their views on ``bp`` (imported last: they import ``bp`` from here).
from coach.blueprints.spaces import views  # noqa: E402, F401
