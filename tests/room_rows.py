"""One row in each table of issue 20 (session rooms: the room, a stay, a consent, a recording), written directly:
the RLS tests and the cross-tenant crawl need them to exist, not to have been made through a call."""
from __future__ import annotations

from datetime import timedelta

from coach.extensions import db
from coach.rooms.models import RoomAttendance, RoomConsent, RoomRecording, SessionRoom
from tests.factories import media_row


def seed_room_rows(org, coach, athlete, booking) -> dict:
    """The room of ``booking``'s session, as if the call had happened: both stayed, the athlete agreed to be
    recorded, and the coach's recording is a media item."""
    session_id, start = booking.session_id, booking.starts_at
    room = SessionRoom(tenant_id=org.id, session_id=session_id, opened_at=start - timedelta(minutes=5),
                       ended_at=booking.ends_at, ended_by_membership_id=coach.id)
    db.session.add(room)
    for member in (coach, athlete):
        db.session.add(RoomAttendance(tenant_id=org.id, session_id=session_id, membership_id=member.id,
                                      peer_id=member.id, joined_at=start, last_seen_at=booking.ends_at,
                                      left_at=booking.ends_at))
    db.session.add(RoomConsent(tenant_id=org.id, session_id=session_id, membership_id=athlete.id, given_at=start))
    item = media_row(org.id, coach, "Session recording", filename="session.webm", duration_ms=3_600_000)
    item.origin, item.expires_at = "recording", booking.ends_at + timedelta(days=90)
    db.session.flush()
    recording = RoomRecording(tenant_id=org.id, session_id=session_id, media_id=item.id,
                              started_by_membership_id=coach.id, status="finished", started_at=start,
                              stopped_at=booking.ends_at, parts_received=3, bytes_received=15_000_000,
                              last_part_at=booking.ends_at)
    db.session.add(recording)
    db.session.flush()
    return {"room": room, "recording": recording, "media": item}
