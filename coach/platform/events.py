"""The catalogue of outbox topics.

Every topic is a named constant (a :class:`Topic`) declared in the ``events.py`` of the domain that
emits it, with the payload it carries and the queue its job runs on. Emitters pass the constant to
:func:`coach.platform.outbox.emit`, consumers to :func:`coach.platform.jobs.consumer`, and the relay
routes by it, so searching one name (``BOOKING_CONFIRMED``) finds who sends the event and everything
that happens when it arrives.
"""
from __future__ import annotations

from coach.platform.queues import QUEUE_NAMES

TOPICS: dict[str, Topic] = {}


class Topic(str):
    """An outbox topic: a ``str`` (what the outbox row stores) with its queue and documented payload.

    :param name: the topic as stored, ``<domain>.<what happened>``.
    :param payload: what the payload's keys are (ids as strings).
    :param queue: the RQ queue the event's job runs on.
    """

    payload: str
    queue: str

    def __new__(cls, name: str, payload: str, queue: str = "default") -> Topic:
        if queue not in QUEUE_NAMES:
            raise ValueError(f"unknown queue {queue!r} for topic {name!r}")
        if name in TOPICS:
            raise ValueError(f"topic {name!r} is declared twice")
        topic = super().__new__(cls, name)
        topic.payload, topic.queue = payload, queue
        TOPICS[name] = topic
        return topic


def queue_for_topic(name: str) -> str:
    """The queue an event's job runs on (``default`` for a topic no installed domain declares)."""
    topic = TOPICS.get(name)
    return topic.queue if topic is not None else "default"


MAIL_SEND = Topic("mail.send", "email_id: the emails row to send over SMTP", queue="mail")
