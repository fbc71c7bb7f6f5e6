"""Who was in a session's room and for how long: one stay per room page (its peer id), from the socket's
``join`` to its ``leave`` (or the socket's close), kept fresh while the socket lives.

A reconnect of the same page (same peer id) re-opens its stay rather than starting a new one: the booking
sees one stay with the drop inside it, and ``room.joined`` is emitted once per stay. A browser that vanished
without its socket closing cleanly (a crashed process) leaves a stay open: :func:`sweep` closes it at its
last sign of life.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, literal_column, text, update
from sqlalchemy.dialects.postgresql import insert

from coach.extensions import db
from coach.platform import outbox
from coach.rooms.events import ROOM_JOINED
from coach.rooms.models import RoomAttendance, SessionRoom

# A stay not seen for this long has lost its browser (an open socket is seen at least every 30 s).
STALE_AFTER = timedelta(seconds=60)


def ensure_room(tenant_id: uuid.UUID, session_id: uuid.UUID) -> None:
    """The session's room row exists (made on the first entry; concurrent first entries make one)."""
    db.session.execute(insert(SessionRoom).values(tenant_id=tenant_id, session_id=session_id)
                       .on_conflict_do_nothing(constraint="uq_session_rooms_session"))


def join(tenant_id: uuid.UUID, session_id: uuid.UUID, member_id: uuid.UUID, peer_id: uuid.UUID, role: str,
         now: datetime) -> bool | None:
    """Start ``peer_id``'s stay, or re-open it (a reconnect). True for a new stay (``room.joined`` emitted),
    False for a re-opened one, None when the peer id is another member's (the join is refused). Needs the
    tenant active; the caller commits."""
    ensure_room(tenant_id, session_id)
    statement = insert(RoomAttendance).values(
        tenant_id=tenant_id, session_id=session_id, membership_id=member_id, peer_id=peer_id, joined_at=now,
        last_seen_at=now)
    statement = statement.on_conflict_do_update(
        constraint="uq_room_attendance_peer",
        set_={"left_at": None, "last_seen_at": func.greatest(RoomAttendance.last_seen_at, now)},
        where=RoomAttendance.membership_id == statement.excluded.membership_id,
    ).returning(literal_column("xmax = 0"))  # PostgreSQL: xmax is 0 for a row this statement inserted
    inserted = db.session.execute(statement).scalar_one_or_none()
    if inserted is None:
        return None
    if inserted:
        outbox.emit(ROOM_JOINED, {"session_id": str(session_id), "membership_id": str(member_id), "role": role},
                    tenant_id=tenant_id)
    return bool(inserted)


def seen(tenant_id: uuid.UUID, session_id: uuid.UUID, peer_id: uuid.UUID, now: datetime) -> None:
    """The stay's browser is still there (its socket sent something, or is idle but open)."""
    db.session.execute(update(RoomAttendance).where(
        RoomAttendance.tenant_id == tenant_id, RoomAttendance.session_id == session_id,
        RoomAttendance.peer_id == peer_id, RoomAttendance.left_at.is_(None), RoomAttendance.last_seen_at < now)
        .values(last_seen_at=now))


def leave(tenant_id: uuid.UUID, session_id: uuid.UUID, peer_id: uuid.UUID, now: datetime) -> None:
    """The stay ends now (the page left, or its socket closed)."""
    db.session.execute(update(RoomAttendance).where(
        RoomAttendance.tenant_id == tenant_id, RoomAttendance.session_id == session_id,
        RoomAttendance.peer_id == peer_id, RoomAttendance.left_at.is_(None))
        .values(left_at=func.greatest(RoomAttendance.joined_at, now),
                last_seen_at=func.greatest(RoomAttendance.last_seen_at, now)))


def stale_tenants(now: datetime) -> list[uuid.UUID]:
    """Organizations with a stay not seen for :data:`STALE_AFTER` (a narrow definer function: the sweep runs
    for every organization)."""
    return list(db.session.scalars(text("SELECT * FROM room_attendance_stale_tenants(:before)"),
                                   {"before": now - STALE_AFTER}))


def sweep(tenant_id: uuid.UUID, now: datetime) -> int:
    """Close the organization's stays whose browser vanished, at their last sign of life; how many."""
    result = db.session.execute(update(RoomAttendance).where(
        RoomAttendance.tenant_id == tenant_id, RoomAttendance.left_at.is_(None),
        RoomAttendance.last_seen_at < now - STALE_AFTER).values(left_at=RoomAttendance.last_seen_at))
    return result.rowcount
