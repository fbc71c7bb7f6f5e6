"""Coach profiles, search and reviews.

- ``bp`` (``/o/<slug>/...``): a coach's profile page and its editor, the organization's taxonomy and
  verification (admins), searching the organization's own coaches (through RLS, not the projection), writing,
  replying to, flagging and moderating reviews.
- ``public`` (``/coaches``): the public directory (search over the projection), public profiles, and starting
  a booking from them (sign up or log in, join the coach's organization as an athlete, book).
"""
from __future__ import annotations

from flask import Blueprint

from coach import tenancy

bp = tenancy.org_blueprint("directory", __name__, "/o/<slug>")
public = Blueprint("directory_public", __name__, url_prefix="/coaches")

# The route modules register their views (imported last: they import the blueprints from here).
from coach.blueprints.directory import (org_search, profiles, public_profile, public_search,  # noqa: E402, F401
                                        reviews, taxonomy)
