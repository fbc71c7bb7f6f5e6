"""The one clock: every "now" in the code comes from here, always timezone-aware UTC."""
from __future__ import annotations

from datetime import datetime, timezone

UTC = timezone.utc


def now() -> datetime:
    """The current instant in UTC."""
    return datetime.now(UTC)
