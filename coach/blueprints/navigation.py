"""Which part of the navigation the page in force belongs to, for ``aria-current`` in the header.

``section`` is one of the primary tabs (home, feed, chat, sessions, media) or ``more`` for pages reached through
the "More" menu; ``item`` names the exact link (a "More" entry or an account-menu entry) when one matches. A
page of a section's sub-tree (a space, a post, a conversation, a booking) marks its section. Every role has the
same five tabs: a coach's daily page is Sessions too (requests are accepted there); their Schedule (availability)
is set up now and then, from "More".

A page reached from another page marks what that page marks (its breadcrumb's): the calendars, an offering's form
and planning a series hang off the Schedule (a coach looks for them all under More › Schedule, whichever of the
schedule's two addresses they came by); a coach's profile and reviews are More › Coaches, or More › My profile
when they are the coach's own; the sports and skills list is one of the admin's settings pages; the reviews'
moderation queue sits with the posts' (the Feed); reviewing a session is part of the session (Sessions). An
offering's week and its booking form continue "Book a session" (their breadcrumb starts at its list of coaches),
except when they move a booking (``reschedule``: that starts from the booking, under Sessions). A series, and a
session's waitlist, are listed with the member's sessions: Sessions.
"""
from __future__ import annotations

from flask import current_app, g, has_request_context, request

# Endpoints named by their own link in a menu (the first match wins: exact endpoints before blueprints).
_ITEMS = {
    "spaces.index": "spaces", "booking.coaches": "book", "booking.coach_page": "book",
    "directory.search_coaches": "coaches", "directory.edit_own": "my_profile", "booking.my_schedule": "schedule",
    "admin.dashboard": "dashboard", "admin.members": "members", "admin.audit_log": "audit",
    "admin.audit_csv": "audit", "admin.system_page": "system", "accounts.profile": "profile",
    "accounts.security": "security", "orgs.picker": "picker", "notifications.index": "notifications",
    "booking.series_plan": "schedule", "directory.taxonomy": "settings", "directory.delete_term": "settings",
    "directory.review": "coaches", "directory.flag": "coaches",
}
# Every route of these modules (a page, or a form re-shown without JavaScript) is part of the coach's schedule.
_MODULE_ITEMS = {"coach.blueprints.booking.schedule": "schedule", "coach.blueprints.booking.calendars": "schedule"}
# A coach's own pages of the directory are "My profile"; another coach's are "Coaches".
_COACH_PAGES = frozenset({"directory.profile_page", "directory.edit_profile", "directory.coach_reviews"})
# Choosing a time and confirming it, after "Book a session" › a coach.
_BOOKING_STEPS = frozenset({"booking.calendar", "booking.book"})
# Pages whose parent marks a tab without a menu entry of its own.
_SECTIONS = {"directory.moderation_reviews": "feed", "directory.hide": "feed", "directory.review_form": "sessions"}
_BLUEPRINT_ITEMS = {"progress": "progress", "payments": "billing", "admin": "settings", "operator": "platform"}
_BLUEPRINT_SECTIONS = {"spaces": "feed", "chat": "chat", "media": "media", "booking": "sessions",
                       "rooms": "sessions"}
_MORE_ITEMS = frozenset({"schedule", "spaces", "book", "coaches", "my_profile", "dashboard", "members", "audit",
                         "system", "progress", "billing", "settings"})


def nav_section() -> dict[str, str | None]:
    """``{"section": ..., "item": ...}`` for the current request (both ``None`` outside a known page)."""
    if not has_request_context() or request.endpoint is None:
        return {"section": None, "item": None}
    endpoint = request.endpoint
    blueprint = request.blueprint or ""
    item = _ITEMS.get(endpoint) or _item_of_module(endpoint) or _BLUEPRINT_ITEMS.get(blueprint)
    if endpoint in _COACH_PAGES:
        me = getattr(g, "membership", None)
        mine = me is not None and (request.view_args or {}).get("coach_id") == str(me.id)
        item = "my_profile" if mine else "coaches"
    if endpoint in _BOOKING_STEPS and not request.values.get("reschedule"):
        item = "book"
    if endpoint in _SECTIONS:
        section = _SECTIONS[endpoint]
    elif endpoint == "orgs.home" or endpoint.startswith("orgs.onboarding"):
        section = "home"
    elif item == "spaces":
        section = "feed"
    elif item in _MORE_ITEMS:
        section = "more"
    else:
        section = _BLUEPRINT_SECTIONS.get(blueprint)
    return {"section": section, "item": item}


def _item_of_module(endpoint: str) -> str | None:
    view = current_app.view_functions.get(endpoint)
    return _MODULE_ITEMS.get(getattr(view, "__module__", ""))
