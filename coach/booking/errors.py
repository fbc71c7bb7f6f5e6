"""How booking says no: its error classes, and the database refusals that mean "the time is taken"."""
from __future__ import annotations

from sqlalchemy.exc import DBAPIError

from coach.errors import DomainError

# Two transactions inserting conflicting rows under an exclusion constraint at the same moment each
# wait for the other; PostgreSQL then aborts one with a deadlock (40P01) instead of 23P01. For the
# loser that means the same thing: someone else holds the time.
EXCLUDED = ("23P01", "40P01")


class BookingError(DomainError):
    """A request that cannot be carried out; the message is safe to show. HTTP 422."""

    status = 422


class SlotTaken(BookingError):
    """The time was free a moment ago and is not any more. HTTP 409."""

    status = 409


class LineWaiting(BookingError):
    """The session's free seats are kept for the athletes on its waitlist, first in line first. HTTP 409.

    ``session_id`` is the session whose line to join."""

    status = 409

    def __init__(self, message: str, session_id=None):
        super().__init__(message)
        self.session_id = session_id


def sqlstate(exc: DBAPIError) -> str | None:
    """The SQLSTATE PostgreSQL refused a statement with."""
    return getattr(exc.orig, "sqlstate", None)
