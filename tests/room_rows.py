"""One row in each table of issue 20 (session rooms: the room, a stay, a consent, a recording), written directly:
the RLS tests and the cross-tenant crawl need them to exist, not to have been made through a call."""
from __future__ import annotations

from datetime import datetime, timedelta

from coach import clock
from coach.booking.models import Booking, CoachingSession
from coach.extensions import db
from coach.rooms.models import RoomAttendance, RoomConsent, RoomRecording, SessionRoom
from tests.factories import media_row


def seed_room_rows(org, coach, athlete, booking, label: str = "") -> dict:
    """The room of ``booking``'s session, as if the call had happened: both stayed, the athlete agreed to be
    recorded, and the coach's recording is a media item (its title starts with ``label``)."""
    session_id, start = booking.session_id, booking.starts_at
    room = SessionRoom(tenant_id=org.id, session_id=session_id, opened_at=start - timedelta(minutes=5),
                       ended_at=booking.ends_at, ended_by_membership_id=coach.id)
    db.session.add(room)
    for member in (coach, athlete):
        db.session.add(RoomAttendance(tenant_id=org.id, session_id=session_id, membership_id=member.id,
                                      peer_id=member.id, joined_at=start, last_seen_at=booking.ends_at,
                                      left_at=booking.ends_at))
    db.session.add(RoomConsent(tenant_id=org.id, session_id=session_id, membership_id=athlete.id, given_at=start))
    item = media_row(org.id, coach, f"{label} Session recording".strip(), filename="session.webm", duration_ms=3_600_000)
    item.origin, item.expires_at = "recording", booking.ends_at + timedelta(days=90)
    db.session.flush()
    recording = RoomRecording(tenant_id=org.id, session_id=session_id, media_id=item.id,
                              started_by_membership_id=coach.id, status="finished", started_at=start,
                              stopped_at=booking.ends_at, parts_received=3, bytes_received=15_000_000,
                              last_part_at=booking.ends_at)
    db.session.add(recording)
    db.session.flush()
    return {"room": room, "recording": recording, "media": item}


def write_session(coach, athlete, offering, starts_at: datetime, minutes: int) -> tuple[CoachingSession, Booking]:
    """A confirmed 1:1 session of ``coach`` with ``athlete`` at ``starts_at``, written directly (the booking rules
    only book the future; a room is open from ten minutes before its start), as tests/room_support.py does."""
    ends_at = starts_at + timedelta(minutes=minutes)
    session = CoachingSession(tenant_id=coach.tenant_id, coach_membership_id=coach.id, offering_id=offering.id,
                              starts_at=starts_at, ends_at=ends_at, busy_from=starts_at, busy_until=ends_at,
                              capacity=1, live_seats=1)
    db.session.add(session)
    db.session.flush()
    booking = Booking(tenant_id=coach.tenant_id, session_id=session.id, offering_id=offering.id,
                      coach_membership_id=coach.id, athlete_membership_id=athlete.id,
                      booked_by_membership_id=athlete.id, starts_at=starts_at, ends_at=ends_at, status="confirmed",
                      confirmed_at=starts_at - timedelta(days=1), status_changed_at=clock.now())
    db.session.add(booking)
    db.session.flush()
    return session, booking


def seed_rooms(org, coach, athlete, offering, label: str = "") -> dict[str, list[str]]:
    """The cross-tenant crawl's rooms: a 1:1 of ``coach`` with ``athlete`` whose room is open now (for two hours
    and the grace: the crawl takes a while), and one three days ago whose room ended (see :func:`seed_room_rows`).
    Its ids by crawl kind, the open room's first."""
    now = clock.now().replace(microsecond=0)
    live, live_booking = write_session(coach, athlete, offering, now - timedelta(minutes=5), 120)
    past, past_booking = write_session(coach, athlete, offering, now - timedelta(days=3), 60)
    rows = seed_room_rows(org, coach, athlete, past_booking, label=label)
    return {"room_session": [str(live.id), str(past.id)], "room_booking": [str(live_booking.id), str(past_booking.id)],
            "recording": [str(rows["recording"].id)]}
