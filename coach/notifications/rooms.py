"""Notices of the session rooms (:mod:`coach.rooms`): when the coach enters a session's room, each athlete booked on
it who is not there yet is called in ("Maria is in the room: join now"), once per session, linking to the room.
In the app (the bell updates at once) by default; a member may choose email for the kind."""
from __future__ import annotations

import uuid

from flask import g

from coach.extensions import db
from coach.notifications import service
from coach.notifications.booking_mail import short_when
from coach.orgs.models import Organization
from coach.platform.jobs import consumer
from coach.rooms import access, service as rooms
from coach.rooms.events import ROOM_JOINED


@consumer(ROOM_JOINED)
def call_athletes_in(payload: dict) -> None:
    """The coach started a stay: every booked athlete not in the room is told, while the room is still open (a
    late delivery after the room closed tells nobody). A coach who leaves and comes back calls nobody twice."""
    if payload.get("role") != access.COACH:
        return
    session_id, coach_id = uuid.UUID(payload["session_id"]), uuid.UUID(payload["membership_id"])
    now_open = access.check(g.tenant_id, session_id, coach_id)
    if now_open is None or not now_open.may_enter:
        return
    waiting = rooms.athletes_not_in_room(g.tenant_id, session_id)
    if not waiting:
        return
    slug = db.session.get(Organization, g.tenant_id).slug
    url = service.path_for("rooms.room", slug=slug, session_id=session_id)
    for booking in waiting:
        athlete, coach = booking.athlete, booking.coach
        service.notify(athlete, "room_open", dedupe_key=f"room_open:{session_id}:{athlete.id}",
                       title=f"{coach.user.display_name} is in the room: join now",
                       body=f"{booking.offering.title}, {short_when(booking.starts_at, athlete)}.",
                       url=url, actor_id=coach_id, subject_id=session_id)
    service.announce()
