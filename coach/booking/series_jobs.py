"""Series jobs: a series ends when its last occurrence stops holding a time (a consumer of the booking topics
that end or release one). :func:`coach.booking.series.occurrence_settled` is a compare-and-swap on the series'
status, so a repeated event changes nothing."""
from __future__ import annotations

import uuid

from flask import g

from coach.booking import series
from coach.booking.events import BOOKING_CANCELLED, BOOKING_DECLINED, BOOKING_ENDED, BOOKING_EXPIRED, BOOKING_NO_SHOW
from coach.platform.jobs import consumer


@consumer(BOOKING_ENDED, BOOKING_NO_SHOW, BOOKING_CANCELLED, BOOKING_DECLINED, BOOKING_EXPIRED)
def occurrence_settled(payload: dict) -> None:
    """The booking may have been a series' last live occurrence: settle the series' status."""
    if payload.get("reason") == "rescheduled":
        return  # a move: the new booking holds the time
    series.occurrence_settled(g.tenant_id, uuid.UUID(payload["booking_id"]))
