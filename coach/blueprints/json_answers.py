"""JSON endpoints that a script calls (the media uploader, the room's recorder): a refusal is ``{"error": message}``
with its status, where the app-wide error handler would answer with the HTML error page."""
from __future__ import annotations

import functools

from flask import jsonify

from coach.errors import DomainError
from coach.extensions import db


def answers_json(view):
    """Wrap ``view`` so that a :class:`DomainError` rolls back and answers ``{"error": message}``."""
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except DomainError as exc:
            db.session.rollback()
            return jsonify(error=str(exc)), exc.status

    return wrapped
