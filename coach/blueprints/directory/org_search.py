"""Searching the organization's own coaches (``/o/<slug>/coaches``), for its members.

The same page as the public directory, over :func:`coach.directory.org_search.search_org`: the organization's
profiles read through RLS, listed publicly or not, so a club that keeps its directory private still has one.
"""
from __future__ import annotations

from flask import g

from coach.blueprints.directory import bp
from coach.blueprints.directory.public_search import answer, page_context
from coach.directory.org_search import search_org
from coach.tenancy import role_required


@bp.get("/coaches")
@role_required()
def search_coaches():
    """The organization's coaches: search, filter and page through them."""
    context, status = page_context("directory.search_coaches", lambda params: search_org(g.org, params))
    return answer("directory/org_search.html", context, status, public=False)
