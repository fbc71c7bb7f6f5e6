"""Progress pages (being built)."""
from __future__ import annotations

from coach.blueprints.progress import bp  # noqa: F401
