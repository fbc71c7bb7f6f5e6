"""Notifications: the list, opening one, preferences; and the unsubscribe links of the emails."""
from __future__ import annotations

from coach import tenancy

bp = tenancy.org_blueprint("notifications", __name__, "/o/<slug>/notifications")

# The route modules register their views on ``bp`` (imported last: they import ``bp`` from here).
from coach.blueprints.notifications import views  # noqa: E402, F401
from coach.blueprints.notifications.unsubscribe import links  # noqa: E402, F401  (the app registers it)
