"""Outbox topics of organizations (see :mod:`coach.platform.events`): a member's role changed or they left, which
other domains follow (the public directory lists coaches only)."""
from __future__ import annotations

from coach.platform.events import Topic

MEMBER_ROLE_CHANGED = Topic("orgs.member_role_changed", "membership_id; from; to (roles)")
MEMBER_REMOVED = Topic("orgs.member_removed", "membership_id; role (the role they had)")
