"""The privacy domain's outbox consumers and periodic jobs (imported by the app factory to register them)."""
from __future__ import annotations
