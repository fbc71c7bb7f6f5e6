"""Writing bookings into a CalDAV calendar (slice B builds this)."""
from __future__ import annotations


class CalDAVWriter:
    """Mixed into :class:`coach.calsync.caldav_provider.CalDAVProvider` (``self.client``: a ``caldav.DAVClient``)."""
