"""Consumers of chat events.

``chat.message`` is recorded for the notifications of a message to members who are offline
(the notifications part of the chat issue); until then it is consumed without effect. The
live delivery does not go through here: web processes push committed messages themselves
(:mod:`coach.chat.hub`).
"""
from __future__ import annotations

from coach.platform.jobs import consumer


@consumer("chat.message")
def _message(payload: dict) -> None:
    """Nothing to do until notifications land."""
