"""Which part of the navigation the page in force belongs to, for ``aria-current`` in the header.

``section`` is one of the primary tabs (home, feed, chat, sessions, media) or ``more`` for pages reached through
the "More" menu; ``item`` names the exact link (a "More" entry or an account-menu entry) when one matches. A
page of a section's sub-tree (a space, a post, a conversation, a booking) marks its section. Every role has the
same five tabs: a coach's daily page is Sessions too (requests are accepted there); their Schedule (availability)
is set up now and then, from "More".
"""
from __future__ import annotations

from flask import has_request_context, request

# Endpoints named by their own link in a menu (the first match wins: exact endpoints before blueprints).
_ITEMS = {
    "spaces.index": "spaces", "booking.coaches": "book", "booking.coach_page": "book",
    "directory.search_coaches": "coaches", "directory.edit_own": "my_profile", "booking.my_schedule": "schedule",
    "admin.dashboard": "dashboard", "admin.members": "members", "admin.audit_log": "audit",
    "admin.audit_csv": "audit", "admin.system_page": "system", "accounts.profile": "profile",
    "accounts.security": "security", "orgs.picker": "picker", "notifications.index": "notifications",
}
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
    item = _ITEMS.get(endpoint) or _BLUEPRINT_ITEMS.get(blueprint)
    if endpoint == "orgs.home" or endpoint.startswith("orgs.onboarding"):
        section = "home"
    elif item == "spaces":
        section = "feed"
    elif item in _MORE_ITEMS:
        section = "more"
    else:
        section = _BLUEPRINT_SECTIONS.get(blueprint)
    return {"section": section, "item": item}
