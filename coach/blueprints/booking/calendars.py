"""A coach's calendar connections: connect a CalDAV account, choose calendars, sync now (issue 19, slice A)."""
from __future__ import annotations

from coach.blueprints.booking import bp  # noqa: F401
