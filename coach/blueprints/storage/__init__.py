"""The local storage backend's HTTP side: part uploads and signed object downloads (see ``views``)."""
from __future__ import annotations

from flask import Blueprint
from flask_limiter import ExemptionScope

from coach.extensions import csrf
from coach.platform.ratelimit import limiter

bp = Blueprint("storage", __name__, url_prefix="/storage")
# The signature in the URL is the credential: no CSRF token, and the app-wide limits do not apply (an
# upload is dozens of part requests, a video many Range requests); the views set a per-address limit.
csrf.exempt(bp)
limiter.exempt(bp, flags=ExemptionScope.APPLICATION)

# The route modules register their views on ``bp`` (imported last: they import ``bp`` from here).
from coach.blueprints.storage import views  # noqa: E402, F401
