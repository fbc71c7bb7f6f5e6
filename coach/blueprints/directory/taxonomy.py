"""taxonomy routes (see the package docstring)."""
from __future__ import annotations

from coach.blueprints.directory import bp, public  # noqa: F401
