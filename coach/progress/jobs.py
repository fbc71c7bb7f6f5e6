"""The development domain's consumers and sweeps: importing the modules registers them (the app factory imports
this module, see ``DOMAINS`` in coach.app)."""
from __future__ import annotations

from coach.progress import athletes, reports  # noqa: F401
