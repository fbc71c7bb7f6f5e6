"""The error every domain raises for something the user can fix or should be told.

A domain error carries the HTTP status that fits it and a message that is safe to show. Services raise
it; the app-wide handler (``coach.app``) rolls the transaction back and answers with the error page, or
its fragment for htmx; views that re-show a form with the message use
:func:`coach.blueprints.forms.attempt` instead of catching it themselves.
"""
from __future__ import annotations


class DomainError(ValueError):
    """Base of the domains' errors: ``status`` (an HTTP status) and a message safe to show.

    A ``ValueError`` so that code which validated input with ``except ValueError`` keeps working.
    """

    status: int = 422

    def __init__(self, message: str = "", status: int | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status

    @property
    def message(self) -> str:
        return str(self)


class NotAllowed(DomainError):
    """The person may not do this (403)."""

    status = 403


class Conflict(DomainError):
    """The request clashes with the current state, e.g. a time taken meanwhile (409)."""

    status = 409
