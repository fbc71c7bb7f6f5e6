"""The transactional outbox: ``emit`` writes an event in the caller's transaction.

The event exists if and only if the change that caused it commits. The relay
(:mod:`coach.platform.relay`) turns events into RQ jobs; consumers
(:mod:`coach.platform.jobs`) apply each event once.
"""
from __future__ import annotations

import uuid

from flask import g, has_app_context

from coach.extensions import db
from coach.platform.models import OutboxEvent


def emit(topic: str, payload: dict | None = None, *, tenant_id: uuid.UUID | None = None) -> OutboxEvent:
    """Record ``topic`` with ``payload`` for the organization in force (or ``tenant_id``).

    :param tenant_id: defaults to the active organization; ``None`` with no active
        organization makes a platform event (e.g. a password-reset email).
    :returns: the event as written (detached from the session: its fields stay readable
        after the commit).
    """
    if tenant_id is None and has_app_context():
        tenant_id = g.get("tenant_id")
    event = OutboxEvent(id=uuid.uuid4(), tenant_id=tenant_id, topic=topic, payload=payload or {},
                        request_id=g.get("request_id") if has_app_context() else None)
    db.session.add(event)
    db.session.flush()
    # Hand back a detached snapshot: after the commit the row may not be readable (a platform
    # event is insert-only under RLS) or already gone (the relay deletes it), so the session
    # must not try to refresh it.
    db.session.expunge(event)
    return event
