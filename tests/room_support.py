"""Room test support: a club with a 1:1 session and a group session whose rooms are open now, and another club.

Sessions are written directly (the booking rules only book the future, and a room is open from ten minutes
before its start), as ``coach/cli.py`` does for the demo; everything else goes through the services.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from coach import clock, tenancy
from coach.booking.models import Booking, CoachingSession
from coach.extensions import db
from coach.orgs.models import ATHLETE, COACH
from coach.orgs.service import membership_for
from tests.booking_support import make_offering
from tests.factories import add_member, make_org, make_user


class RoomWorld:
    """River Club (slug ``river``): Ada Admin; Maria Santos (coach); athletes Ana Alves, Ben Brown, Cleo Cruz and
    Dev Diaz. ``one`` is Maria's 1:1 session with Ana, started five minutes ago and ending in five (its room is
    open, and stays open for the grace after its end); ``group`` is Maria's group session (capacity 6) with Ana
    and Ben, starting in six minutes (open: rooms open ten minutes early); ``later`` is a 1:1
    with Ana tomorrow (not open yet); ``cancelled`` a 1:1 with Ana starting now whose booking was cancelled.
    Cleo is booked on nothing. Hill Club (``hill``): Zed Stranger (admin) and Yara Young (coach) with a 1:1
    session with Zed open now.

    Each session has its booking(s): ``bookings[session.id]`` lists them.
    """

    def __init__(self, offering_values: dict | None = None):
        ada = make_user("ada@example.com", "Ada Admin")
        self.org = make_org(ada, slug="river", name="River Club")
        tenancy.activate(self.org.id)
        self.admin = membership_for(self.org, ada)
        self.maria = add_member(self.org, make_user("maria@example.com", "Maria Santos"), COACH)
        self.ana = add_member(self.org, make_user("ana@example.com", "Ana Alves"), ATHLETE)
        self.ben = add_member(self.org, make_user("ben@example.com", "Ben Brown"), ATHLETE)
        self.cleo = add_member(self.org, make_user("cleo@example.com", "Cleo Cruz"), ATHLETE)
        self.dev = add_member(self.org, make_user("dev@example.com", "Dev Diaz"), ATHLETE)
        self.offering = make_offering(self.maria, title="Video review", duration_minutes=60,
                                      meeting_url="https://meet.example.com/maria", **(offering_values or {}))
        self.group_offering = make_offering(self.maria, title="Group clinic", duration_minutes=60, capacity=6)
        now = clock.now().replace(microsecond=0)
        self.bookings: dict = {}
        self.one = self.session(self.maria, self.offering, now - timedelta(minutes=5), [self.ana], minutes=10)
        self.group = self.session(self.maria, self.group_offering, now + timedelta(minutes=6), [self.ana, self.ben])
        self.later = self.session(self.maria, self.offering, now + timedelta(days=1), [self.ana])
        self.cancelled = self.session(self.maria, self.offering, now + timedelta(hours=3), [self.ana],
                                      status="cancelled")
        db.session.commit()

    def session(self, coach, offering, starts_at: datetime, athletes, status: str = "confirmed",
                minutes: int = 60) -> CoachingSession:
        """A session of ``coach`` at ``starts_at`` with a booking in ``status`` for each athlete."""
        tenancy.activate(coach.tenant_id)
        ends_at = starts_at + timedelta(minutes=minutes)
        row = CoachingSession(tenant_id=coach.tenant_id, coach_membership_id=coach.id, offering_id=offering.id,
                              starts_at=starts_at, ends_at=ends_at, busy_from=starts_at, busy_until=ends_at,
                              capacity=offering.capacity,
                              live_seats=len(athletes) if status in ("confirmed", "active") else 0)
        db.session.add(row)
        db.session.flush()
        self.bookings[row.id] = []
        for athlete in athletes:
            booking = Booking(tenant_id=coach.tenant_id, session_id=row.id, offering_id=offering.id,
                              coach_membership_id=coach.id, athlete_membership_id=athlete.id,
                              booked_by_membership_id=athlete.id, starts_at=starts_at, ends_at=ends_at,
                              status=status, confirmed_at=starts_at - timedelta(days=1),
                              status_changed_at=clock.now())
            db.session.add(booking)
            db.session.flush()
            self.bookings[row.id].append(booking)
        return row

    def other_club(self):
        """Hill Club with its own open 1:1 session (Yara coaching Zed)."""
        zed = make_user("zed@example.com", "Zed Stranger")
        self.hill = make_org(zed, slug="hill", name="Hill Club")
        tenancy.activate(self.hill.id)
        self.zed = membership_for(self.hill, zed)
        self.yara = add_member(self.hill, make_user("yara@example.com", "Yara Young"), COACH)
        hill_offering = make_offering(self.yara, title="Hill session")
        self.hill_session = self.session(self.yara, hill_offering, clock.now() - timedelta(minutes=1), [self.zed])
        db.session.commit()
        self.hill_session_id = self.hill_session.id  # read while Hill is active (River's RLS hides the row)
        tenancy.activate(self.org.id)
        return self.hill

    def room_path(self, session: CoachingSession, org=None) -> str:
        return f"/o/{(org or self.org).slug}/sessions/{session.id}/room"
