"""Small database helpers the domain services share."""
from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.exc import DBAPIError

from coach.extensions import db


def insert_or_raise(row, error: Exception, sqlstates: Iterable[str] = ("23505",)) -> None:
    """Insert ``row`` in a savepoint; if PostgreSQL refuses it with one of ``sqlstates``, raise ``error``.

    For the races a check before the insert cannot close (two requests taking the same name or
    time at once): the savepoint is rolled back and the caller's transaction can go on.
    """
    try:
        with db.session.begin_nested():
            db.session.add(row)
            db.session.flush()
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) in tuple(sqlstates):
            raise error from exc
        raise
