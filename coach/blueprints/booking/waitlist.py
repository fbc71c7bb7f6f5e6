"""Waitlists on full group sessions: join, leave, take an offered seat (issue 19, slice G)."""
from __future__ import annotations

from coach.blueprints.booking import bp  # noqa: F401
