"""Whose rows the database shows: the organization (and user) a request or job acts for.

Row-level security policies compare ``tenant_id`` with the transaction-local
setting ``app.tenant_id``. The setting is made in exactly one place: the
``after_begin`` hook below, from ``g.tenant_id`` / ``g.user_id``. With no
organization resolved nothing is set, and the policies show nothing.

Platform plumbing (jobs, idempotency) acts through this module; resolving an organization from a URL
and checking roles is :mod:`coach.tenancy`, a layer up.
"""
from __future__ import annotations

import uuid
from contextlib import contextmanager

from flask import g, has_app_context
from sqlalchemy import event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from coach.extensions import db

_SET_BOTH = text(
    "SELECT set_config('app.tenant_id', :tenant_id, true), set_config('app.user_id', :user_id, true)"
)


def _context_values() -> tuple[str, str]:
    if not has_app_context():
        return "", ""
    tenant_id = g.get("tenant_id")
    user_id = g.get("user_id")
    return (str(tenant_id) if tenant_id else ""), (str(user_id) if user_id else "")


@event.listens_for(Session, "after_begin")
def _apply_tenant_settings(session, transaction, connection):
    """Tell PostgreSQL, for this transaction only, whose rows are visible."""
    tenant_id, user_id = _context_values()
    if tenant_id or user_id:
        connection.execute(_SET_BOTH, {"tenant_id": tenant_id, "user_id": user_id})


def _apply_now() -> None:
    """Re-apply the settings inside a transaction that is already open."""
    session = db.session()
    if session.in_transaction():
        tenant_id, user_id = _context_values()
        session.execute(_SET_BOTH, {"tenant_id": tenant_id, "user_id": user_id})


def activate(tenant_id: uuid.UUID | None, user_id: uuid.UUID | None = None) -> None:
    """Act for ``tenant_id`` (and ``user_id``) from now on, in this request or job.

    :param tenant_id: the organization, or ``None`` to see no tenant rows.
    :param user_id: the acting user; memberships of this user stay visible
        across organizations (the organization picker needs them).
    """
    before = (g.get("tenant_id"), g.get("user_id"))
    g.tenant_id = tenant_id
    if user_id is not None:
        g.user_id = user_id
    if (g.tenant_id, g.get("user_id")) != before:  # a round trip only when something changed
        _apply_now()


@contextmanager
def acting_for(tenant_id: uuid.UUID | None, user_id: uuid.UUID | None = None):
    """Act for ``tenant_id`` (and ``user_id``) inside the block, then restore what was in force."""
    saved = (g.get("tenant_id"), g.get("user_id"))
    g.tenant_id, g.user_id = tenant_id, user_id
    _apply_now()
    try:
        yield
    except BaseException:
        g.tenant_id, g.user_id = saved
        try:
            _apply_now()
        except SQLAlchemyError:
            # The block failed because the transaction did (a lost connection): it can run nothing more, so
            # its settings no longer matter, and the block's own error is the one to report.
            pass
        raise
    g.tenant_id, g.user_id = saved
    _apply_now()


def deactivate() -> None:
    """Stop acting for any organization."""
    g.tenant_id = None
    _apply_now()
