"""Rooms: signaling (being built)."""
from __future__ import annotations

from coach.blueprints.rooms import bp  # noqa: F401
