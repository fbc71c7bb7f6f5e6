"""Consumers of space events.

Mentions and comments become notifications (:mod:`coach.notifications.jobs`); a new post is
pushed to the open pages of the space's members by the web process that wrote it. Nothing
else is left to do here: ``space.post_created`` is consumed so it is not reported as an
event without a consumer.
"""
from __future__ import annotations

from coach.platform.jobs import consumer
from coach.spaces.events import SPACE_POST_CREATED


@consumer(SPACE_POST_CREATED)
def _post_created(payload: dict) -> None:
    """Nothing to do in a worker: the live "new posts" push happens when the post is written."""
