"""Who may be in a session's room, and when: one statement, asked on the page and on every signaling frame.

A room is open to the session's coach and the athletes booked on it (a booking confirmed, under way or just
ended) from ``ROOM_OPENS_MINUTES`` before the start until ``ROOM_GRACE_MINUTES`` after the end, unless the
coach ended it for everyone. Nobody else enters: not an admin, not another coach, not another organization's
member (their rows are invisible under RLS, so the session reads as missing).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, bindparam, exists, select

from coach import clock
from coach.booking.models import Booking, CoachingSession
from coach.extensions import db
from coach.ids import parse_uuid
from coach.rooms.models import SessionRoom

# A booking whose holder belongs in the room: confirmed, under way, or ended (the grace after the end).
IN_ROOM_STATUSES = ("confirmed", "active", "ended")

BEFORE, OPEN, AFTER, CANCELLED = "before", "open", "after", "cancelled"
COACH, ATHLETE = "coach", "athlete"


@dataclass(frozen=True)
class RoomAccess:
    """What one member may do with one session's room now.

    :ivar role: ``"coach"``, ``"athlete"``, or None (not a participant: refused whatever the time).
    :ivar state: ``"before"`` (not open yet), ``"open"``, ``"after"`` (closed, or ended by the coach) or
        ``"cancelled"`` (no booking left on the session).
    """

    session_id: uuid.UUID
    coach_id: uuid.UUID
    starts_at: datetime
    ends_at: datetime
    opens_at: datetime
    closes_at: datetime
    ended_at: datetime | None
    role: str | None
    state: str

    @property
    def may_enter(self) -> bool:
        return self.role is not None and self.state == OPEN

    @property
    def is_coach(self) -> bool:
        return self.role == COACH


def window(starts_at: datetime, ends_at: datetime) -> tuple[datetime, datetime]:
    """When a session's room opens and closes."""
    config = current_app.config
    return (starts_at - timedelta(minutes=config["ROOM_OPENS_MINUTES"]),
            ends_at + timedelta(minutes=config["ROOM_GRACE_MINUTES"]))


def _check_statement():
    in_room = and_(Booking.tenant_id == CoachingSession.tenant_id, Booking.session_id == CoachingSession.id,
                   Booking.status.in_(IN_ROOM_STATUSES))
    return (select(CoachingSession.starts_at, CoachingSession.ends_at, CoachingSession.coach_membership_id,
                   SessionRoom.ended_at,
                   exists().where(in_room).label("live"),
                   exists().where(in_room, Booking.athlete_membership_id == bindparam("member_id")).label("booked"))
            .outerjoin(SessionRoom, and_(SessionRoom.tenant_id == CoachingSession.tenant_id,
                                         SessionRoom.session_id == CoachingSession.id))
            .where(CoachingSession.tenant_id == bindparam("tenant_id"), CoachingSession.id == bindparam("session_id")))


# Built once: the signaling socket asks it for every frame, and building the statement (and its cache key) each
# time cost more than running it (2.4 -> 1.5 ms of CPU per check, bench signaling).
_CHECK = _check_statement()


def check(tenant_id: uuid.UUID, session_id, member_id: uuid.UUID, now: datetime | None = None) -> RoomAccess | None:
    """``member_id``'s access to the room of ``session_id`` (any text: a bad id reads as missing), in one
    statement; None when the session does not exist in this organization. Needs the tenant active."""
    sid = session_id if isinstance(session_id, uuid.UUID) else parse_uuid(session_id)
    if sid is None:
        return None
    row = db.session.execute(_CHECK, {"tenant_id": tenant_id, "session_id": sid, "member_id": member_id}).one_or_none()
    if row is None:
        return None
    starts_at, ends_at, coach_id, ended_at, live, booked = row
    opens_at, closes_at = window(starts_at, ends_at)
    now = now or clock.now()
    role = COACH if member_id == coach_id and live else ATHLETE if booked else None
    if not live:
        state = CANCELLED
    elif ended_at is not None or now >= closes_at:
        state = AFTER
    elif now < opens_at:
        state = BEFORE
    else:
        state = OPEN
    return RoomAccess(session_id=sid, coach_id=coach_id, starts_at=starts_at, ends_at=ends_at, opens_at=opens_at,
                      closes_at=closes_at, ended_at=ended_at, role=role, state=state)
