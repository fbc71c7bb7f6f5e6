"""Outbox topics of calendar sync (see :mod:`coach.platform.events`)."""
from __future__ import annotations

from coach.platform.events import Topic

# A sync was asked for (a connection was made, its calendars chosen, or "Sync now"): the consumer queues the job
# once the asking transaction committed, so the page never waits on the calendar server.
CALENDAR_SYNC_REQUESTED = Topic(
    "calendar.sync_requested",
    "connection_id; discover (true: list the account's calendars before reading busy time)")

# Busy time read from a coach's calendars changed (rows added or removed). Issue 22 projects availability from it.
CALENDAR_BUSY_CHANGED = Topic("calendar.busy_changed", "coach_membership_id")
