"""Keyset pagination, newest first, on ``(created_at, id)``: one helper and one cursor format for every list.

A cursor is the position of the last row shown, ``created_at|id`` in URL-safe base64 (no padding). A
missing, tampered or malformed cursor reads as "from the start", never as an error. Row comparison
(``(created_at, id) < (:t, :id)``) lets PostgreSQL walk the ``(tenant_id, created_at DESC, id DESC)``
indexes the lists have.

Hand-written rather than sqlakeyset: every list here is newest-first on the same two columns, and
one 40-line function with a stable, short cursor is simpler than a general multi-column library
whose cursors carry type tags.
"""
from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from sqlalchemy import Select, tuple_

from coach.extensions import db

T = TypeVar("T")

MAX_CURSOR = 120  # a real cursor is ~70 characters; longer input is not worth decoding


def encode_cursor(created_at: datetime, ident: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{ident}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    """The ``(created_at, id)`` a page continues after; ``None`` for a missing or malformed cursor."""
    if not cursor or len(cursor) > MAX_CURSOR:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, _, ident = raw.partition("|")
        created = datetime.fromisoformat(when)
        return (created, uuid.UUID(ident)) if created.tzinfo else None
    except (ValueError, UnicodeDecodeError):
        return None


@dataclass
class Page(Generic[T]):
    rows: list[T]
    next_cursor: str | None  # None on the last page


def newest_first(query: Select, created_col, id_col, after: str | None, limit: int) -> Page:
    """One page of ``query``'s rows (a ``select`` of one model or of rows with ``created_at`` and ``id``).

    :param created_col: the column rows are ordered by (``Model.created_at``).
    :param id_col: the tie-breaker (``Model.id``).
    :param after: the cursor of the previous page's last row, or ``None`` for the first page.
    """
    position = decode_cursor(after)
    if position is not None:
        query = query.where(tuple_(created_col, id_col) < tuple_(*position))
    rows = list(db.session.scalars(query.order_by(created_col.desc(), id_col.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else None
    cursor = encode_cursor(getattr(last, created_col.key), getattr(last, id_col.key)) if more and last else None
    return Page(rows, cursor)
