"""Recurring series: book, preview conflicts, cancel or move from one occurrence onward (issue 19, slice F)."""
from __future__ import annotations

from coach.blueprints.booking import bp  # noqa: F401
