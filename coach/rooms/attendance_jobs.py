"""The signaling side's jobs (imported by :mod:`coach.rooms.jobs`, which the app factory loads): the attendance
sweep (stays whose browser vanished are closed at their last heartbeat), and the nudge that makes a room's open
sockets check their access again at once when a booking leaves the room."""
from __future__ import annotations

import uuid

from flask import g
from sqlalchemy import select

from coach import clock
from coach.booking.events import BOOKING_CANCELLED, BOOKING_DECLINED, BOOKING_EXPIRED, BOOKING_NO_SHOW
from coach.booking.models import Booking
from coach.extensions import db
from coach.platform.jobs import consumer, each_tenant
from coach.platform.periodic import periodic
from coach.rooms import attendance, relay
from coach.rooms.access import IN_ROOM_STATUSES
from coach.rooms.signaling import RECHECK


@periodic(every=60, name="sweep_room_attendance")
def sweep_attendance() -> int:
    """Every organization with a stale stay: its stays closed (see :func:`coach.rooms.attendance.sweep`)."""
    now = clock.now()
    return each_tenant(attendance.stale_tenants(now), lambda tenant_id: attendance.sweep(tenant_id, now),
                       "room attendance sweep")


@consumer(BOOKING_CANCELLED, BOOKING_DECLINED, BOOKING_EXPIRED, BOOKING_NO_SHOW)
def booking_left_room(payload: dict) -> None:
    """A booking that held a place in its session's room no longer does: the room's sockets (in every process)
    check their access on their next frame rather than trusting a check of a few seconds ago."""
    if payload.get("from") not in IN_ROOM_STATUSES:
        return
    session_id = db.session.scalar(select(Booking.session_id).where(
        Booking.tenant_id == g.tenant_id, Booking.id == uuid.UUID(payload["booking_id"])))
    if session_id is not None:
        relay.publish(g.tenant_id, session_id, {"type": RECHECK})
