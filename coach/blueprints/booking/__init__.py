"""Booking: find a coach, pick a time, book; sessions and their actions; the coach's schedule editor."""
from __future__ import annotations

from flask import abort, g

from coach import tenancy
from coach.orgs.service import org_by_slug


def _enter(endpoint: str, slug: str) -> None:
    # The calendar feed has no session: its secret names the member (see _enter_for_feed).
    if endpoint == "booking.feed":
        _enter_for_feed(slug)
    else:
        tenancy.enter_org(slug)


def _enter_for_feed(slug: str) -> None:
    """Calendar apps fetch the feed without a session: the secret in the URL is the credential."""
    org = org_by_slug(slug) if len(slug) <= 40 else None
    if org is None:
        abort(404)
    # Not g.org: that names the organization a member is on, and pages (a 404 for a wrong secret) would
    # show it to whoever holds the URL. The feed view reads g.feed_org once the secret is checked.
    g.feed_org = org
    tenancy.activate(org.id)


bp = tenancy.org_blueprint("booking", __name__, "/o/<slug>", enter=_enter)

# The route modules register their views on ``bp`` (imported last: they import ``bp`` from here).
from coach.blueprints.booking import calendars, schedule, series, views, waitlist  # noqa: E402, F401
from coach.blueprints.booking.manage import links  # noqa: E402, F401  (the app registers it)
