"""Reading a CalDAV account: its calendars, what changed in one, and the busy occurrences of each event
(slice A builds this)."""
from __future__ import annotations


class CalDAVReader:
    """Mixed into :class:`coach.calsync.caldav_provider.CalDAVProvider` (``self.client``: a ``caldav.DAVClient``)."""
