"""Notification test support: River Club with a space, a coach's offering and ways to read what
members were told.

Events go the real way: a service writes the outbox row and commits, then :meth:`NotifyWorld.run`
drains the relay and an RQ worker from the test's thread (use the ``quiet`` fixture, so the
background runner does not deliver them first and an absence can be asserted without sleeping).
Emails then travel through SMTP to the ``mailbox``.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from coach.booking import service as booking
from coach.extensions import db
from coach.notifications.models import Notification, NotificationPreference
from coach.orgs.models import Membership
from coach.platform.models import Email
from coach.spaces import service as spaces
from tests.booking_support import make_offering, open_every_day
from tests.chat_support import ChatWorld
from tests.conftest import Auth

UTC = timezone.utc


class NotifyWorld(ChatWorld):
    """River Club (see :class:`tests.chat_support.ChatWorld`): Ada Admin, Maria Santos (coach, hosts
    the open space "Tennis" with Ana Alves and Ben Brown in it), Cleo Cruz; Maria offers a
    "Technique session" (Berlin hours 09–17 every day, requests she confirms)."""

    def __init__(self, app, runner):
        super().__init__()
        self.app, self.runner = app, runner
        open_every_day(self.maria, tz="Europe/Berlin")
        self.offering = make_offering(self.maria, title="Technique session")
        self.act()
        self._browsers: dict = {}

    # acting

    def do(self, fn, *args, **kwargs):
        """Call a service for River Club and commit, as a view would."""
        self.act()
        result = fn(*args, **kwargs)
        db.session.commit()
        return result

    def run(self, timeout: float = 20) -> None:
        """Deliver every pending event (relay + worker, then the emails they queued)."""
        db.session.commit()
        self.runner.drain(timeout)
        self.act()

    def post(self, author, text: str, space=None):
        return self.do(spaces.create_post, space or self.tennis, author, text, mention_url=lambda m: "#")

    def comment(self, post, author, text: str, parent=None):
        return self.do(spaces.add_comment, post, author, text, parent=parent)

    def slot(self, days_ahead: int = 3, index: int = 0, offering=None):
        self.act()
        day = (datetime.now(UTC) + timedelta(days=days_ahead)).replace(hour=0, minute=0, second=0, microsecond=0)
        slots = booking.available_slots(offering or self.offering, day, day + timedelta(days=1))
        assert len(slots) > index, "the world should offer slots"
        return slots[index].starts_at

    def request(self, athlete=None, starts_at=None, note: str = "", actor=None, offering=None, now=None):
        athlete = athlete or self.ana
        return self.do(booking.request_booking, offering or self.offering, athlete, starts_at or self.slot(),
                       note, actor or athlete, now=now)

    def prefer(self, member, kind: str, channel: str, timing: str = "immediate") -> None:
        from coach.notifications import service

        self.do(service.set_preference, member, kind, channel, timing)

    # reading

    def notes(self, member, kind: str | None = None) -> list[Notification]:
        """The member's notifications as the database has them now, newest first."""
        db.session.rollback()
        self.act()
        query = select(Notification).where(Notification.tenant_id == self.org.id,
                                           Notification.membership_id == member.id)
        if kind is not None:
            query = query.where(Notification.kind == kind)
        rows = list(db.session.scalars(query.order_by(Notification.created_at.desc(), Notification.id.desc())
                                       .execution_options(populate_existing=True)))
        return rows

    def all_notes(self) -> list[Notification]:
        db.session.rollback()
        self.act()
        return list(db.session.scalars(select(Notification).where(Notification.tenant_id == self.org.id)
                                       .execution_options(populate_existing=True)))

    def told(self) -> dict[str, list[str]]:
        """``{display name: [kinds]}`` of everyone told anything."""
        names = {m.id: m.user.display_name for m in db.session.scalars(
            select(Membership).where(Membership.tenant_id == self.org.id))}
        found: dict[str, list[str]] = {}
        for n in self.all_notes():
            found.setdefault(names[n.membership_id], []).append(n.kind)
        return {k: sorted(v) for k, v in found.items()}

    def preference_rows(self, member) -> dict[str, tuple[str, str]]:
        db.session.rollback()
        self.act()
        return {p.kind: (p.channel, p.email_timing) for p in db.session.scalars(
            select(NotificationPreference).where(NotificationPreference.tenant_id == self.org.id,
                                                 NotificationPreference.membership_id == member.id))}

    def queued_emails(self, address: str | None = None) -> list[Email]:
        """Rows of the ``emails`` table (platform rows: no organization, readable by the app role)."""
        db.session.rollback()
        query = select(Email).order_by(Email.created_at)
        if address:
            query = query.where(Email.to_address == address)
        rows = list(db.session.scalars(query))
        self.act()
        return rows

    # browsers

    def browser(self, member):
        """A logged-in test client for ``member`` (one per person, kept)."""
        if member.id not in self._browsers:
            client = self.app.test_client()
            self.act()
            email = member.user.email
            assert Auth(client).login(email).status_code == 303
            self._browsers[member.id] = client
        return self._browsers[member.id]
