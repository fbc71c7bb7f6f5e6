"""Waitlist jobs: a freed seat moves the session's line on (a consumer of the booking topics that free one), and
a periodic sweep under it (a lost event, a line whose session started). Both call the idempotent
:func:`coach.booking.waitlist.fill` under the session's lock, so they may race: a seat is given once."""
from __future__ import annotations

import uuid

from flask import g

from coach.booking import waitlist
from coach.booking.events import BOOKING_CANCELLED, BOOKING_DECLINED, BOOKING_EXPIRED
from coach.booking.models import LIVE_STATUSES
from coach.platform.jobs import consumer, each_tenant
from coach.platform.periodic import periodic


@consumer(BOOKING_CANCELLED, BOOKING_DECLINED, BOOKING_EXPIRED)
def seat_freed(payload: dict) -> None:
    """A booking that held a seat stopped holding it: the first in the session's line gets (or is offered) it."""
    if payload.get("from") not in LIVE_STATUSES:
        return
    waitlist.seat_freed(g.tenant_id, uuid.UUID(payload["booking_id"]), given_up=payload.get("to") == "cancelled")


@periodic(every=60, name="sweep_waitlists")
def sweep_all() -> int:
    """Every organization with an open line: free seats given, lines of sessions that started closed."""
    return each_tenant(waitlist.due_tenants(), waitlist.sweep, "waitlist sweep")
