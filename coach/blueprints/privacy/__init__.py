"""Privacy pages: a person's export and account deletion under ``/account/privacy``; an organization's export
and closing under ``/o/<slug>/privacy`` (admins)."""
from __future__ import annotations

from flask import Blueprint

from coach import tenancy

bp = Blueprint("privacy", __name__, url_prefix="/account/privacy")
org = tenancy.org_blueprint("org_privacy", __name__, "/o/<slug>/privacy")

# The route modules register their views on ``bp`` and ``org`` (imported last: they import them from here).
from coach.blueprints.privacy import deletion, exports  # noqa: E402, F401
