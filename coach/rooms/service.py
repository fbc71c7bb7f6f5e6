"""A session's room as its pages see it: who is in it, what happened in it, and ending it for everyone.

Who may enter and when is :mod:`coach.rooms.access` (one statement); the stays themselves are written by the
signaling socket (:mod:`coach.rooms.attendance`). This module reads them back for people (attendance shown on the
room's after-page and the booking page) and holds the room's own row: made on first entry
(:func:`coach.rooms.attendance.ensure_room`), ended by the coach (:func:`end_room`).

Plain functions: no request or session access; the caller commits.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import exists, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from coach import clock
from coach.booking.models import Booking, CoachingSession, Offering
from coach.booking.slots import merge_ranges
from coach.errors import Conflict, NotAllowed
from coach.extensions import db
from coach.orgs.models import Membership
from coach.platform import audit
from coach.platform.outbox import emit
from coach.rooms import relay
from coach.rooms.access import BEFORE, CANCELLED, IN_ROOM_STATUSES, RoomAccess
from coach.rooms.events import ROOM_ENDED
from coach.rooms.models import RoomAttendance, SessionRoom
from coach.rooms.recording import RecordingView, recordings_for

# An open stay whose page has not pinged for this long is counted to its last ping, not to now: the browser
# vanished (the socket pings every 15 s; the signaling sweep closes such stays at ``last_seen_at`` later).
STAY_STALE_AFTER = timedelta(seconds=60)


@dataclass(frozen=True)
class RoomPage:
    """What the room page shows: the session, its offering, the bookings in the room (with their athletes) and
    the participants, the coach first."""

    session: CoachingSession
    offering: Offering | None
    bookings: list[Booking]
    participants: list[Membership]


@dataclass
class MemberAttendance:
    """One member's time in a room: the sum of their stays (overlapping stays, two tabs, counted once)."""

    membership_id: uuid.UUID
    seconds: int = 0
    first_joined_at: datetime | None = None
    last_left_at: datetime | None = None  # None while a stay is still open
    stays: int = 0
    in_room: bool = False
    _ranges: list = field(default_factory=list, repr=False)

    @property
    def minutes(self) -> int:
        """Whole minutes, rounded (what people read: "attended 48 min"); at least 1 for any time at all."""
        return max(1, round(self.seconds / 60)) if self.seconds else 0


def room_page(access: RoomAccess) -> RoomPage:
    """The session, its offering and the bookings in the room with their athletes (two statements)."""
    session = db.session.get(CoachingSession, access.session_id)
    bookings = list(db.session.scalars(
        select(Booking).where(Booking.tenant_id == session.tenant_id, Booking.session_id == session.id,
                              Booking.status.in_(IN_ROOM_STATUSES))
        .order_by(Booking.created_at, Booking.id)).unique())
    offering = bookings[0].offering if bookings else db.session.get(Offering, session.offering_id)
    participants = [bookings[0].coach, *(b.athlete for b in bookings)] if bookings else []
    return RoomPage(session=session, offering=offering, bookings=bookings, participants=participants)


def my_booking(page: RoomPage, member: Membership) -> Booking | None:
    """``member``'s booking on the session (an athlete's own; the coach's when there is only one)."""
    mine = [b for b in page.bookings if b.athlete_membership_id == member.id]
    if not mine and page.bookings and page.bookings[0].coach_membership_id == member.id and len(page.bookings) == 1:
        return page.bookings[0]
    return mine[0] if mine else None


def had_place(access: RoomAccess, member_id: uuid.UUID) -> bool:
    """Whether ``member_id`` coaches the session or had any booking on it (a cancelled session's page is theirs
    to read; one statement, asked only then)."""
    if member_id == access.coach_id:
        return True
    return db.session.scalar(select(exists().where(
        Booking.session_id == access.session_id, Booking.athlete_membership_id == member_id))) or False


def recordings(tenant_id: uuid.UUID, session_id: uuid.UUID) -> list[RecordingView]:
    """The room's recordings for its after-page (those with a media item, oldest first; one statement)."""
    return recordings_for(tenant_id, session_id)


def attendance_summary(tenant_id: uuid.UUID, session_id: uuid.UUID,
                       now: datetime | None = None) -> dict[uuid.UUID, MemberAttendance]:
    """Each member's attendance in the room of ``session_id``, by membership id (one statement).

    A closed stay counts from joining to leaving; an open one to now, or to its last ping when the page stopped
    pinging (``STAY_STALE_AFTER``). A member's overlapping stays (a second tab, a reconnect) count once.
    """
    now = now or clock.now()
    rows = db.session.execute(
        select(RoomAttendance.membership_id, RoomAttendance.joined_at, RoomAttendance.last_seen_at,
               RoomAttendance.left_at)
        .where(RoomAttendance.tenant_id == tenant_id, RoomAttendance.session_id == session_id)
        .order_by(RoomAttendance.joined_at))
    summary: dict[uuid.UUID, MemberAttendance] = {}
    for member_id, joined_at, last_seen_at, left_at in rows:
        entry = summary.setdefault(member_id, MemberAttendance(member_id))
        entry.stays += 1
        entry.first_joined_at = min(entry.first_joined_at or joined_at, joined_at)
        if left_at is None:
            alive = now - last_seen_at <= STAY_STALE_AFTER
            entry.in_room = entry.in_room or alive
            until = now if alive else last_seen_at
        else:
            until = left_at
            entry.last_left_at = max(entry.last_left_at or left_at, left_at)
        entry._ranges.append((joined_at, max(joined_at, until)))
    for entry in summary.values():
        if entry.in_room:
            entry.last_left_at = None
        starts, ends = merge_ranges(entry._ranges)
        entry.seconds = int(sum((end - start).total_seconds() for start, end in zip(starts, ends)))
    return summary


def athletes_not_in_room(tenant_id: uuid.UUID, session_id: uuid.UUID,
                         now: datetime | None = None) -> list[Booking]:
    """The bookings in the room whose athlete is not in it now (no stay open and pinging): whom to call in when
    the coach arrives. One statement; each booking with its athlete, offering and coach."""
    now = now or clock.now()
    in_room = exists().where(RoomAttendance.tenant_id == Booking.tenant_id,
                             RoomAttendance.session_id == Booking.session_id,
                             RoomAttendance.membership_id == Booking.athlete_membership_id,
                             RoomAttendance.left_at.is_(None),
                             RoomAttendance.last_seen_at >= now - STAY_STALE_AFTER)
    return list(db.session.scalars(
        select(Booking).where(Booking.tenant_id == tenant_id, Booking.session_id == session_id,
                              Booking.status.in_(IN_ROOM_STATUSES), ~in_room)
        .order_by(Booking.created_at, Booking.id)))


def close_open_stays(tenant_id: uuid.UUID, session_id: uuid.UUID, at: datetime) -> int:
    """End every stay still open in the room at ``at`` (never before the stay began); how many were open."""
    result = db.session.execute(
        update(RoomAttendance)
        .where(RoomAttendance.tenant_id == tenant_id, RoomAttendance.session_id == session_id,
               RoomAttendance.left_at.is_(None))
        .values(left_at=func.greatest(RoomAttendance.joined_at, at),
                last_seen_at=func.greatest(RoomAttendance.last_seen_at, at))
        .execution_options(synchronize_session=False))
    return result.rowcount


def end_room(access: RoomAccess, actor: Membership, now: datetime | None = None) -> bool:
    """The coach ends the room for everyone: it reads as over from now on (joins are refused, every socket is
    told ``ended`` and closed), the open stays end now, ``room.ended`` goes out and the audit trail keeps who.

    :returns: True when this call ended it, False when it was over already (ending twice is harmless).
    :raises NotAllowed: ``actor`` is not the session's coach.
    :raises Conflict: the room has not opened yet (ending it then would shut it before the session).
    """
    if not access.is_coach or actor.id != access.coach_id:
        raise NotAllowed("Only the session's coach can end the room for everyone.")
    if access.state == BEFORE:
        raise Conflict("The room has not opened yet, so there is nothing to end.")
    if access.state == CANCELLED or access.ended_at is not None:
        return False
    now = now or clock.now()
    tenant_id = actor.tenant_id
    stmt = pg_insert(SessionRoom).values(id=uuid.uuid4(), tenant_id=tenant_id, session_id=access.session_id,
                                         opened_at=now, ended_at=now, ended_by_membership_id=actor.id)
    ended = db.session.scalar(stmt.on_conflict_do_update(
        constraint="uq_session_rooms_session",
        set_={"ended_at": stmt.excluded.ended_at, "ended_by_membership_id": stmt.excluded.ended_by_membership_id},
        where=SessionRoom.ended_at.is_(None)).returning(SessionRoom.id))
    if ended is None:
        return False  # another request ended it between the check and now
    closed = close_open_stays(tenant_id, access.session_id, now)
    emit(ROOM_ENDED, {"session_id": str(access.session_id), "ended_by": str(actor.id), "ended_at": now.isoformat()},
         tenant_id=tenant_id)
    audit.record("room.ended", actor=actor.user, target_type="coaching_session", target_id=access.session_id,
                 details={"stays_closed": closed}, tenant_id=tenant_id)
    relay.publish_after_commit(tenant_id, access.session_id, {"type": "ended", "by": actor.user.display_name})
    return True
