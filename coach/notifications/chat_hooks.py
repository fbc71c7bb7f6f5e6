"""What notifications hooks into chat (chat is the lower layer and does not import notifications).

- Reading a conversation to its end reads its "new messages" notification
  (:data:`coach.chat.service.conversation_read`).
- Open pages keep the bell's count current: the socket hub sends it with chat's badges, and again when
  :func:`coach.notifications.service.publish_counts` publishes a ``notify`` event.

Connected on import; importing the notifications domain must import this module.
"""
from __future__ import annotations

from coach.chat import hub
from coach.chat.service import conversation_read
from coach.notifications import service

BELL_EVENT = "notify"  # the event type publish_counts sends


@conversation_read.connect
def _read_conversation_notification(conversation, member, now=None, **_) -> None:
    service.read_subject(conversation.tenant_id, member.id, conversation.id, now)


hub.register_badge(BELL_EVENT, service.unread_count, "notifications/_bell.html")
