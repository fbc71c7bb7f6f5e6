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
from collections.abc import Callable
from contextlib import contextmanager
from typing import TypeVar

from flask import g, has_app_context
from sqlalchemy import Text, cast, event, func, select, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from coach.extensions import db

T = TypeVar("T")

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


def set_user_setting(user_id, clear_tenant: bool = False):
    """A ``SELECT`` that sets ``app.user_id`` to the SQL expression ``user_id`` (and, with ``clear_tenant``,
    ``app.tenant_id`` to nothing), for use as a ``LATERAL`` subquery of the statement that finds the user.

    The setting is made in the same round trip as the lookup: a row that depends on the subquery's
    ``user_id`` column is read after it, under the policies the new setting allows. Whoever runs the
    statement records what it set with :func:`applied`.
    """
    columns = [func.set_config("app.user_id", cast(user_id, Text), True).label("user_id")]
    if clear_tenant:
        columns.insert(0, func.set_config("app.tenant_id", "", True).label("tenant_id"))
    # Every table it names is the enclosing statement's (a LATERAL subquery is not correlated by itself): one
    # setting from the one row, never one per row of a table of its own.
    return select(*columns).correlate_except(None)


def set_tenant_setting(tenant_id):
    """A ``SELECT`` that sets ``app.tenant_id`` to the SQL expression ``tenant_id`` (NULL: to nothing), for
    use as a ``LATERAL`` subquery that follows the row naming the organization (see :func:`set_user_setting`)."""
    return select(func.set_config("app.tenant_id", func.coalesce(cast(tenant_id, Text), ""), True)
                  .label("tenant_id")).correlate_except(None)


def applied(tenant_id: uuid.UUID | None, user_id: uuid.UUID | None) -> None:
    """Record that the open transaction already acts for ``tenant_id`` and ``user_id`` (a statement built
    with :func:`set_user_setting` / :func:`set_tenant_setting` set them): no round trip now, and every later
    transaction of this request or job gets them from ``after_begin`` as usual."""
    g.tenant_id = tenant_id
    g.user_id = user_id


def checked(setting: str | None, expected: uuid.UUID | None) -> uuid.UUID | None:
    """``expected``, once the value a statement's ``set_config`` returned (``setting``) is seen to match it:
    what ``g`` records must be what PostgreSQL was told."""
    if (setting or "") != (str(expected) if expected else ""):
        raise RuntimeError(f"the tenant settings read {setting!r}, not {expected}")
    return expected


def applied_user(user_id: uuid.UUID) -> None:
    """As :func:`applied`, for a statement that set ``app.user_id`` only (the organization stays as it was)."""
    g.user_id = user_id


def first_statement(lookup: Callable[[], T]) -> T:
    """Run ``lookup``, the first statement of a request (who is signed in, and where), once more on a fresh
    connection if the pooled one turns out dead (PostgreSQL restarted, a failover, an idle connection cut).

    Only when the session had no transaction open: nothing was done that a retry could repeat or lose. A
    database that is really away fails the second attempt too, and the request answers 503 as before.
    """
    session = db.session()
    if session.in_transaction():
        return lookup()
    try:
        return lookup()
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
        session.rollback()  # gives the dead connection back (the pool discards it) and ends the failed transaction
        return lookup()


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
