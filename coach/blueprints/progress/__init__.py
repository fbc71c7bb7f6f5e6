"""Athlete development pages under ``/o/<slug>/progress``: frameworks and session records, goals, habits and
readiness, the exercise library and programs, the athlete pages with their timeline and charts, and reports."""
from __future__ import annotations

from coach import tenancy

bp = tenancy.org_blueprint("progress", __name__, "/o/<slug>/progress")

# The route modules register their views on ``bp`` (imported last: they import it from here).
from coach.blueprints.progress import (  # noqa: E402, F401
    athletes, frameworks, goals, habits, programs, records, reports)
