"""Organization administration: members, invitations, the audit trail and the System page."""
from __future__ import annotations

from coach import tenancy

bp = tenancy.org_blueprint("admin", __name__, "/o/<slug>/admin")

# The route modules register their views on ``bp`` (imported last: they import ``bp`` from here).
from coach.blueprints.admin import dashboard, platform_views, settings, views  # noqa: E402, F401
