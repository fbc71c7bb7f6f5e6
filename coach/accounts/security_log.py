"""A person's own security log: sign-ins and failures, second-factor, passkey, password and email changes,
sessions ended, exports and deletion. Shown to them on their security page; global like their account."""
from __future__ import annotations

import uuid

from flask import has_request_context, request
from sqlalchemy import select

from coach.accounts.models import SecurityEvent
from coach.extensions import db
from coach.platform.pagination import Page, newest_first

# What each action reads as on the security page (an action missing here shows as its code).
LABELS = {
    "login.succeeded": "Signed in",
    "login.failed": "Wrong password",
    "login.link_used": "Signed in with an emailed link",
    "login.locked": "Sign-in attempts slowed down after failures",
    "login.unusual": "Sign-in from a new device or country",
    "twofactor.enabled": "Two-factor authentication turned on",
    "twofactor.disabled": "Two-factor authentication turned off",
    "twofactor.failed": "Wrong two-factor code",
    "recovery.used": "Recovery code used",
    "recovery.regenerated": "New recovery codes made",
    "passkey.added": "Passkey added",
    "passkey.removed": "Passkey removed",
    "passkey.used": "Signed in with a passkey",
    "password.changed": "Password changed",
    "password.reset": "Password reset by email",
    "email.change_requested": "Email change requested",
    "email.changed": "Email address changed",
    "email.change_undone": "Email change undone",
    "session.revoked": "Signed out a session",
    "session.revoked_others": "Signed out every other session",
    "reauth.succeeded": "Confirmed identity",
    "reauth.failed": "Wrong answer when confirming identity",
    "export.requested": "Data export requested",
    "export.ready": "Data export ready",
    "deletion.requested": "Account deletion requested",
    "deletion.cancelled": "Account deletion cancelled",
    "platform_admin.granted": "Made a platform admin (operators' console)",
    "platform_admin.revoked": "No longer a platform admin",
}


def record(user_id: uuid.UUID, action: str, **detail) -> SecurityEvent:
    """Add a line to ``user_id``'s security log (the caller commits). The request's address and browser are
    taken from the request when there is one; ``detail`` is small JSON (never a secret or a code)."""
    ip = agent = ""
    if has_request_context():
        ip = (request.remote_addr or "")[:64]
        agent = "".join(ch for ch in request.user_agent.string if ch.isprintable())[:200]
    event = SecurityEvent(id=uuid.uuid4(), user_id=user_id, action=action[:40], ip=ip, user_agent=agent,
                          detail=detail)
    db.session.add(event)
    return event


def page(user_id: uuid.UUID, after: str | None = None, size: int = 50) -> Page[SecurityEvent]:
    """``user_id``'s security log, newest first, keyset paged."""
    query = select(SecurityEvent).where(SecurityEvent.user_id == user_id)
    return newest_first(query, SecurityEvent.created_at, SecurityEvent.id, after, size)


def label(action: str) -> str:
    return LABELS.get(action, action)
