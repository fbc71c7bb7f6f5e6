"""Identifiers from URLs and forms."""
from __future__ import annotations

import uuid


def parse_uuid(value) -> uuid.UUID | None:
    """``value`` as a UUID, or ``None`` when it is not one (a mistyped or tampered id: the caller answers 404)."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None
