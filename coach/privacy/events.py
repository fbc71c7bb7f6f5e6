"""Outbox topics of the privacy domain (see :mod:`coach.platform.events`)."""
from __future__ import annotations

from coach.platform.events import Topic

# A data export to build: a person's own (a platform event, no organization) or an organization's (its event).
# Its consumer queues the build job once the request's transaction has committed.
EXPORT_REQUESTED = Topic("privacy.export_requested", "kind ('account' | 'organization'); export_id")
