"""Outbox topics of the chat domain (see :mod:`coach.platform.events`)."""
from __future__ import annotations

from coach.platform.events import Topic

CHAT_MESSAGE = Topic("chat.message", "conversation_id; message_id; seq (its number in the conversation); "
                                     "author_membership_id")
