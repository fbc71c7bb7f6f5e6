"""Waitlists on full group sessions: the line, a freed seat given to the first in it (booked or offered), exactly
once under concurrency, and what is refused.

Services are called directly; seats free through the real outbox (the booking topics' consumers run in the job
runner), and concurrency runs real transactions in threads like tests/test_booking_service.py.
"""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from coach import clock, tenancy
from coach.booking import service, waitlist
from coach.booking.errors import LineWaiting, SlotTaken
from coach.booking.models import Booking, CoachingSession, WaitlistEntry
from coach.booking.waitlist import OfferGone, WaitlistError
from coach.extensions import db
from coach.notifications.models import Notification
from coach.orgs.models import ATHLETE, Membership
from coach.orgs.service import remove_member
from coach.platform.models import AuditEvent
from tests.booking_support import BookingWorld
from tests.factories import add_member, make_user
from tests.test_booking_service import berlin, race, requests_booking


class GroupWorld(BookingWorld):
    """A group offering of two seats, a session at 10:00 in three days filled by two athletes, and three more
    athletes to line up."""

    def __init__(self, **offering):
        super().__init__(**{"title": "Squad training", "capacity": 2, "auto_confirm": True,
                            "waitlist_mode": "auto", **offering})
        self.starts_at = berlin(3, 10)
        self.seated = [self.athlete, add_member(self.org, make_user(name="Bea Booked"), ATHLETE)]
        self.waiting = [add_member(self.org, make_user(name=f"Wen Waiting {n}"), ATHLETE) for n in (1, 2, 3)]
        tenancy.activate(self.org.id)
        self.bookings = [service.request_booking(self.offering, a, self.starts_at, "", a) for a in self.seated]
        db.session.commit()
        self.session = db.session.get(CoachingSession, self.bookings[0].session_id)
        self.session_id = self.session.id

    def line_up(self, *athletes):
        tenancy.activate(self.org.id)
        entries = [waitlist.join(self.session, a, a) for a in athletes or self.waiting]
        db.session.commit()
        return entries

    def cancel(self, booking):
        tenancy.activate(self.org.id)
        booking = db.session.get(Booking, booking.id)
        service.transition(booking, "cancel", booking.athlete)
        db.session.commit()


@pytest.fixture()
def group(ctx):
    return GroupWorld()


def deliver(job_runner):
    with job_runner.paused():
        job_runner.drain()
    db.session.expire_all()


def seat_offered(job_runner) -> GroupWorld:
    """A line that offers freed seats, with one athlete in it (Wen Waiting 1), offered the seat Arno gave up."""
    world = GroupWorld(waitlist_mode="offer")
    world.line_up(world.waiting[0])
    world.cancel(world.bookings[0])
    deliver(job_runner)
    return world


def statuses(world) -> list[str]:
    """The line's places, first first (a line follows its time: when every seat freed, a new session row holds
    the time again and the line moves to it)."""
    db.session.expire_all()
    return [e.status for e in db.session.scalars(select(WaitlistEntry).where(
        WaitlistEntry.offering_id == world.offering.id).order_by(WaitlistEntry.created_at))]


def live_bookings_of(world, athlete) -> list[Booking]:
    return list(db.session.scalars(select(Booking).where(
        Booking.offering_id == world.offering.id, Booking.starts_at == world.starts_at,
        Booking.athlete_membership_id == athlete.id, Booking.status.in_(("held", "requested", "confirmed")))))


def filler(org_id, session_id):
    """A :func:`race` worker that fills the session's freed seats from its line (as the consumer and the sweep
    do); how many it gave."""
    def worker(ready):
        ready()
        return waitlist.fill(org_id, session_id)
    return worker


def seats(world) -> tuple[int, int]:
    """Seats taken and the capacity at the session's time (over its session rows: see :func:`statuses`)."""
    db.session.expire_all()
    rows = db.session.execute(select(CoachingSession.live_seats, CoachingSession.capacity).where(
        CoachingSession.offering_id == world.offering.id, CoachingSession.starts_at == world.starts_at)).all()
    return sum(r[0] for r in rows), rows[0][1]


# --- the line --------------------------------------------------------------------------------------------

def test_athletes_line_up_in_order_and_see_their_place(group):
    first, second, third = group.line_up()
    assert [waitlist.place_of(e) for e in (first, second, third)] == [1, 2, 3]
    assert waitlist.ordinal(2) == "2nd" and waitlist.ordinal(11) == "11th" and waitlist.ordinal(23) == "23rd"
    tenancy.activate(group.org.id)
    waitlist.leave(first, group.waiting[0])
    db.session.commit()
    assert waitlist.place_of(second) == 1
    places = waitlist.places_of(group.waiting[2])
    assert [(p.place, p.offering.title) for p in places] == [(2, "Squad training")]
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "waitlist.joined")) == 3


def test_joining_is_refused_clearly(group):
    entry, = group.line_up(group.waiting[0])
    tenancy.activate(group.org.id)
    with pytest.raises(WaitlistError, match="already on this waitlist") as twice:
        waitlist.join(group.session, group.waiting[0], group.waiting[0])
    assert twice.value.status == 409
    db.session.rollback()
    with pytest.raises(WaitlistError, match="already has a seat"):
        waitlist.join(group.session, group.seated[0], group.seated[0])
    db.session.rollback()
    with pytest.raises(WaitlistError, match="only join a waitlist for yourself") as other:
        waitlist.join(group.session, group.waiting[1], group.waiting[2])
    assert other.value.status == 403
    db.session.rollback()
    # A scheduler may line an athlete up.
    entry = waitlist.join(group.session, group.waiting[1], group.scheduler)
    assert entry.added_by_membership_id == group.scheduler.id
    db.session.commit()


def test_a_session_with_a_free_seat_is_booked_not_waited_for(group):
    group.cancel(group.bookings[1])
    tenancy.activate(group.org.id)
    with pytest.raises(WaitlistError, match="free seat: book it") as caught:
        waitlist.join(group.session, group.waiting[0], group.waiting[0])
    assert caught.value.status == 409


def test_an_offering_without_a_waitlist_takes_none(ctx):
    world = GroupWorld(waitlist_mode="off")
    tenancy.activate(world.org.id)
    with pytest.raises(WaitlistError, match="takes no waitlist"):
        waitlist.join(world.session, world.waiting[0], world.waiting[0])
    assert waitlist.full_sessions(world.offering, world.starts_at - timedelta(days=1),
                                  world.starts_at + timedelta(days=1)) == []


def test_the_week_shows_full_sessions_that_take_a_waitlist(group):
    tenancy.activate(group.org.id)
    full = waitlist.full_sessions(group.offering, group.starts_at - timedelta(days=1),
                                  group.starts_at + timedelta(days=1))
    assert [s.id for s in full] == [group.session.id]


# --- a freed seat ----------------------------------------------------------------------------------------

def test_a_cancelled_seat_goes_to_the_first_in_line_automatically(group, job_runner, mailbox):
    group.line_up()
    group.cancel(group.bookings[0])
    deliver(job_runner)
    assert statuses(group) == ["booked", "waiting", "waiting"]
    booked, = live_bookings_of(group, group.waiting[0])
    assert booked.status == "confirmed"  # an auto-confirm offering, as if they had booked themselves
    assert seats(group) == (2, 2)
    notice = db.session.scalar(select(Notification).where(Notification.membership_id == group.waiting[0].id,
                                                          Notification.kind == "waitlist_booked"))
    assert notice.title.startswith("A seat opened: you're booked into Squad training at ")
    assert "(Europe/Berlin)" in notice.title
    deliver(job_runner)  # the notice's email
    assert any("A seat opened" in m["Subject"] for m in mailbox.to(group.waiting[0].user.email))
    # The next one moved up.
    assert waitlist.place_of(db.session.scalars(select(WaitlistEntry).where(
        WaitlistEntry.athlete_membership_id == group.waiting[1].id)).one()) == 1


def test_an_offered_seat_is_held_until_taken(ctx, job_runner, mailbox):
    world = GroupWorld(waitlist_mode="offer", waitlist_offer_minutes=30, auto_confirm=False)
    first, _second, _third = world.line_up()
    world.cancel(world.bookings[1])
    deliver(job_runner)
    assert statuses(world) == ["offered", "waiting", "waiting"]
    entry = db.session.get(WaitlistEntry, first.id)
    assert clock.now() + timedelta(minutes=29) < entry.offered_until <= clock.now() + timedelta(minutes=30)
    assert seats(world) == (2, 2)  # the seat is theirs: nobody else can book it meanwhile
    tenancy.activate(world.org.id)
    with pytest.raises(service.SlotTaken):
        service.request_booking(world.offering, world.waiting[2], world.starts_at, "", world.waiting[2])
    db.session.rollback()
    notice = db.session.scalar(select(Notification).where(Notification.kind == "waitlist_offered"))
    assert notice.membership_id == world.waiting[0].id and ": take it" in notice.title
    booking = waitlist.accept(db.session.get(WaitlistEntry, first.id), world.waiting[0])
    db.session.commit()
    assert booking.status == "requested"  # the coach answers, as for any request
    assert statuses(world) == ["booked", "waiting", "waiting"]
    with pytest.raises(WaitlistError, match="already yours"):
        waitlist.accept(db.session.get(WaitlistEntry, first.id), world.waiting[0])
    db.session.rollback()


def test_an_offer_that_runs_out_goes_to_the_next_in_line(ctx, job_runner, mailbox):
    world = GroupWorld(waitlist_mode="offer", waitlist_offer_minutes=30)
    first, second, _third = world.line_up()
    world.cancel(world.bookings[0])
    deliver(job_runner)
    later = clock.now() + timedelta(minutes=31)
    tenancy.activate(world.org.id)
    assert service.run_due(world.org.id, now=later).total >= 1  # the booking sweep expires the hold
    db.session.commit()
    deliver(job_runner)
    assert statuses(world) == ["expired", "offered", "waiting"]
    with pytest.raises(OfferGone, match="run out") as gone:
        waitlist.accept(db.session.get(WaitlistEntry, first.id), world.waiting[0])
    assert gone.value.status == 410
    db.session.rollback()
    # The released hold is not reported as an unpaid checkout.
    assert not db.session.scalar(select(Notification).where(
        Notification.membership_id == world.waiting[0].id, Notification.kind == "booking_declined"))


def test_declining_an_offer_passes_the_seat_on(ctx, job_runner, mailbox):
    world = GroupWorld(waitlist_mode="offer")
    first, _second, _third = world.line_up()
    world.cancel(world.bookings[0])
    deliver(job_runner)
    tenancy.activate(world.org.id)
    waitlist.leave(db.session.get(WaitlistEntry, first.id), world.waiting[0])
    db.session.commit()
    deliver(job_runner)
    assert statuses(world) == ["left", "offered", "waiting"]
    assert seats(world) == (2, 2)


def test_who_booked_another_way_or_left_the_organization_is_skipped(group, job_runner, mailbox):
    gone, booked_elsewhere, third = group.waiting
    group.line_up()
    with job_runner.paused():
        tenancy.activate(group.org.id)
        remove_member(group.org, db.session.get(Membership, gone.id))
        db.session.commit()
        # The second in line took the first free seat themselves, before the line moved.
        group.cancel(group.bookings[0])
        tenancy.activate(group.org.id)
        service.request_booking(group.offering, booked_elsewhere, group.starts_at, "", booked_elsewhere)
        db.session.commit()
        group.cancel(group.bookings[1])
        job_runner.drain()
    db.session.expire_all()
    # The removed member's place went with them; the one who booked is marked booked; the third got the seat.
    assert statuses(group) == ["booked", "booked"]
    assert live_bookings_of(group, third) and live_bookings_of(group, booked_elsewhere)
    assert seats(group) == (2, 2)


def test_a_session_that_started_closes_its_line(group):
    group.line_up()
    tenancy.activate(group.org.id)
    assert waitlist.sweep(group.org.id, now=group.starts_at + timedelta(minutes=1)) == 0
    db.session.commit()
    assert statuses(group) == ["closed", "closed", "closed"]
    assert group.org.id not in waitlist.due_tenants()


# --- exactly once ----------------------------------------------------------------------------------------

def test_concurrent_cancels_and_fillers_give_two_seats_to_the_first_two_exactly_once(group, app, job_runner,
                                                                                     mailbox):
    group.line_up()
    org_id, session_id = group.org.id, group.session.id
    booking_ids = [b.id for b in group.bookings]

    def cancel(booking_id):
        def worker(ready):
            booking = db.session.get(Booking, booking_id)
            booking.athlete, booking.offering
            ready()
            service.transition(booking, "cancel", booking.athlete)
        return worker

    with job_runner.paused():
        results = race(app, org_id, [cancel(b) for b in booking_ids])
        assert results == [None, None], results
        # Three fillers at once (two consumers and the sweep, say), then the real consumers themselves.
        given = race(app, org_id, [filler(org_id, session_id) for _ in range(3)])
        assert sorted(given) == [0, 0, 2] or sorted(given) == [0, 1, 1], given
        job_runner.drain()
    db.session.expire_all()
    assert statuses(group) == ["booked", "booked", "waiting"], given
    for athlete in group.waiting[:2]:
        assert len(live_bookings_of(group, athlete)) == 1
    assert not live_bookings_of(group, group.waiting[2])
    assert seats(group) == (2, 2)


# --- tenancy ---------------------------------------------------------------------------------------------

def test_another_organizations_line_never_shows(group, job_runner, mailbox):
    other = GroupWorld()
    other.line_up()
    group.line_up(group.waiting[0])
    tenancy.activate(group.org.id)
    assert waitlist.get_session(group.org, other.session_id) is None
    assert waitlist.get_entry(group.org, db.session.scalars(select(WaitlistEntry.id)).first()) is not None
    assert len(db.session.scalars(select(WaitlistEntry)).all()) == 1  # RLS: only ours
    assert waitlist.places_of(group.waiting[0])[0].session.id == group.session.id
    other.cancel(other.bookings[0])
    deliver(job_runner)
    tenancy.activate(group.org.id)
    assert statuses(group) == ["waiting"]
    tenancy.activate(other.org.id)
    assert statuses(other) == ["booked", "waiting", "waiting"]
    assert str(uuid.uuid4())  # (a random id is simply not found)
    assert waitlist.get_entry(other.org, "not-an-id") is None


# --- a freed seat is the line's --------------------------------------------------------------------------

def test_a_freed_seat_is_kept_for_the_line_until_the_first_in_line_has_it(group, job_runner, mailbox):
    """Between a cancel and the waitlist's consumer, nobody books past the line; the first in line may."""
    walk_in = add_member(group.org, make_user(name="Walt Walk-in"), ATHLETE)
    group.line_up(*group.waiting[:2])
    with job_runner.paused():
        group.cancel(group.bookings[0])  # the consumer has not run yet: a seat is free, two wait
        tenancy.activate(group.org.id)
        for outsider in (walk_in, group.waiting[1]):
            with pytest.raises(LineWaiting, match="2 athletes are waiting for a seat") as refused:
                service.request_booking(group.offering, outsider, group.starts_at, "", outsider)
            assert refused.value.status == 409 and refused.value.session_id == group.session_id
        db.session.rollback()
        assert seats(group) == (1, 2)
        # Joining is open again: the free seat is the line's, so the session counts as full.
        tenancy.activate(group.org.id)
        session = db.session.get(CoachingSession, group.session_id)
        assert waitlist.is_full(session)
        waitlist.join(session, walk_in, walk_in)
        db.session.commit()
        job_runner.drain()
    db.session.expire_all()
    assert statuses(group) == ["booked", "waiting", "waiting"]
    assert len(live_bookings_of(group, group.waiting[0])) == 1 and not live_bookings_of(group, walk_in)
    assert seats(group) == (2, 2)


def test_the_first_in_line_may_book_the_freed_seat_directly(group, job_runner, mailbox):
    group.line_up(*group.waiting[:2])
    with job_runner.paused():
        group.cancel(group.bookings[0])
        tenancy.activate(group.org.id)
        service.request_booking(group.offering, group.waiting[0], group.starts_at, "", group.waiting[0])
        db.session.commit()
        job_runner.drain()  # the consumer finds them seated and marks their place booked
    assert statuses(group) == ["booked", "waiting"]
    assert seats(group) == (2, 2) and not live_bookings_of(group, group.waiting[1])


def test_a_direct_booking_racing_the_filler_never_takes_the_first_in_lines_seat(group, app, job_runner, mailbox):
    """The walk-in and the waitlist's filler start at the same moment (either may take the coach's seat lock
    first): the seat goes to the first in line, exactly once, and the walk-in is told to join the line."""
    walk_in = add_member(group.org, make_user(name="Walt Walk-in"), ATHLETE)
    group.line_up(group.waiting[0])
    org_id, session_id, offering_id, starts_at = group.org.id, group.session_id, group.offering.id, group.starts_at
    walk_in_id = walk_in.id

    with job_runner.paused():
        group.cancel(group.bookings[0])
        outcomes = race(app, org_id, [requests_booking(offering_id, walk_in_id, starts_at), filler(org_id, session_id)])
    # The walk-in is refused either way: the seat kept for the line, or (the filler first) the session full.
    assert isinstance(outcomes[0], LineWaiting | SlotTaken) and outcomes[0].status == 409, outcomes
    assert outcomes[1] == 1, outcomes
    db.session.expire_all()
    assert statuses(group) == ["booked"]
    assert len(live_bookings_of(group, group.waiting[0])) == 1 and not live_bookings_of(group, walk_in)
    assert seats(group) == (2, 2)


def test_a_line_left_after_the_waitlist_was_turned_off_keeps_no_seat(group, job_runner, mailbox):
    walk_in = add_member(group.org, make_user(name="Walt Walk-in"), ATHLETE)
    group.line_up(group.waiting[0])
    tenancy.activate(group.org.id)
    service.save_offering(group.coach, {"waitlist_mode": "off"}, group.coach, group.offering)
    db.session.commit()
    with job_runner.paused():
        group.cancel(group.bookings[0])
        tenancy.activate(group.org.id)
        booking = service.request_booking(group.offering, walk_in, group.starts_at, "", walk_in)
        db.session.commit()
        assert booking.status == "confirmed"
        job_runner.drain()
    assert statuses(group) == ["closed"] and seats(group) == (2, 2)
