"""Organization picker, creation, home, and accepting invitations."""
from __future__ import annotations

from flask import Blueprint

from coach import tenancy

bp = Blueprint("orgs", __name__)


@bp.url_value_preprocessor
def _resolve_org(endpoint, values):
    # The invitation pages name an organization the visitor does not belong to yet.
    if values and "slug" in values and endpoint and not endpoint.startswith("orgs.invitation"):
        tenancy.enter_org(values["slug"])


# The route modules register their views on ``bp`` (imported last: they import ``bp`` from here).
from coach.blueprints.orgs import views  # noqa: E402, F401
from coach.blueprints.orgs import onboarding  # noqa: E402, F401
from coach.blueprints.orgs import home  # noqa: E402, F401
