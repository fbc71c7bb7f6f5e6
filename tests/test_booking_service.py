"""Booking service: the lifecycle, no double booking (by PostgreSQL), groups, rules, bad input, ICS.

Services are called directly in an app context; each test commits like a view would.
Concurrency tests run each request in its own thread and app context (its own database
session), so the database, not Python, decides who wins.
"""
from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import psycopg
import pytest
from icalendar import Calendar
from sqlalchemy import func, select, text

from coach import tenancy
from coach.booking import ics, service
from coach.booking.models import Booking, CoachingSession, Offering
from coach.booking.service import BookingError, SlotTaken
from coach.extensions import db
from coach.orgs.models import ATHLETE, COACH, Membership
from coach.platform.models import AuditEvent, OutboxEvent
from tests.booking_support import BookingWorld, make_offering
from tests.factories import add_member, make_org, make_user

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
SET_TENANT = "SELECT set_config('app.tenant_id', %s, true)"


# --- helpers ---------------------------------------------------------------------------------------

def real_now() -> datetime:
    return datetime.now(UTC)


def berlin_day(days_ahead: int):
    """The date ``days_ahead`` days from today in Berlin (the worlds' coach zone)."""
    return (real_now().astimezone(BERLIN) + timedelta(days=days_ahead)).date()


def berlin(days_ahead: int, hour: int, minute: int = 0) -> datetime:
    """A Berlin wall-clock time ``days_ahead`` days from today, as a UTC instant."""
    day = berlin_day(days_ahead)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=BERLIN).astimezone(UTC)


def day_slots(world, days_ahead: int, offering=None, now=None):
    """The slots offered on the Berlin day ``days_ahead`` days from today."""
    tenancy.activate(world.org.id)
    start = berlin(days_ahead, 0)
    return service.available_slots(offering or world.offering, start, start + timedelta(days=1), now=now)


def starts(slots) -> list[datetime]:
    return [s.starts_at for s in slots]


def book(world, starts_at, athlete=None, offering=None, now=None, note="", actor=None) -> Booking:
    tenancy.activate(world.org.id)
    athlete = athlete or world.athlete
    booking = service.request_booking(offering or world.offering, athlete, starts_at, note, actor or athlete,
                                      now=now)
    db.session.commit()
    return booking


def act(world, booking, action, actor, now=None) -> Booking:
    tenancy.activate(world.org.id)
    service.transition(booking, action, actor, now=now)
    db.session.commit()
    return booking


def count(model, **filters) -> int:
    query = select(func.count()).select_from(model)
    for name, value in filters.items():
        query = query.where(getattr(model, name) == value)
    return db.session.scalar(query)


def audit_actions(booking_id) -> list[str]:
    return list(db.session.scalars(select(AuditEvent.action).where(AuditEvent.target_id == str(booking_id))
                                   .order_by(AuditEvent.created_at, AuditEvent.action)))


def outbox_for(booking_id) -> list[OutboxEvent]:
    return list(db.session.scalars(select(OutboxEvent).where(
        OutboxEvent.payload["booking_id"].astext == str(booking_id)).order_by(OutboxEvent.created_at)))


def race(app, tenant_id, workers) -> list:
    """Run each ``worker(ready)`` in its own thread and app context; ``ready()`` lines them up.

    A worker loads what it needs, calls ``ready()``, then acts; its transaction is committed
    if it returns, rolled back if it raises. Returns each worker's return value or exception.
    """
    barrier = threading.Barrier(len(workers))
    results: list = [None] * len(workers)

    def run(i, worker):
        with app.app_context():
            tenancy.activate(tenant_id)
            try:
                results[i] = worker(lambda: barrier.wait(timeout=10))
                db.session.commit()
            except Exception as exc:  # the outcome under test
                db.session.rollback()
                results[i] = exc

    threads = [threading.Thread(target=run, args=(i, w)) for i, w in enumerate(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a racing thread hung"
    return results


def requests_booking(offering_id, athlete_id, starts_at):
    """A :func:`race` worker: the athlete requests ``starts_at`` in the offering (both loaded before the race);
    the new booking's id."""
    def worker(ready):
        offering = db.session.get(Offering, offering_id)
        athlete = db.session.get(Membership, athlete_id)
        offering.coach, athlete.user  # loaded before the race
        ready()
        return service.request_booking(offering, athlete, starts_at, "", athlete).id
    return worker


@pytest.fixture()
def world(ctx):
    return BookingWorld()


# --- lifecycle -------------------------------------------------------------------------------------

def test_a_request_waits_for_the_coach_and_stops_holding_the_time_after_a_day(world):
    slot = day_slots(world, 3)[0]
    now = real_now()
    booking = book(world, slot.starts_at, now=now)
    assert booking.status == "requested"
    assert booking.expires_at == now + timedelta(hours=24)
    assert booking.confirmed_at is None
    assert (booking.starts_at, booking.ends_at) == (slot.starts_at, slot.starts_at + timedelta(hours=1))
    assert count(CoachingSession) == 1


def test_a_request_close_to_the_start_expires_at_the_start(world):
    slot = day_slots(world, 3)[2]
    booking = book(world, slot.starts_at, now=slot.starts_at - timedelta(hours=5))
    assert booking.status == "requested"
    assert booking.expires_at == slot.starts_at


def test_an_auto_confirm_offering_confirms_at_once(world):
    offering = make_offering(world.coach, title="Drop-in", auto_confirm=True)
    slot = day_slots(world, 3, offering)[0]
    now = real_now()
    booking = book(world, slot.starts_at, offering=offering, now=now)
    assert booking.status == "confirmed"
    assert booking.confirmed_at == now
    assert booking.expires_at is None
    assert audit_actions(booking.id) == ["booking.confirmed"]


@pytest.mark.parametrize("action, status, who", [
    ("confirm", "confirmed", "coach"),
    ("decline", "declined", "coach"),
    ("cancel", "cancelled", "athlete"),
    ("no_show", "no_show", "coach"),
])
def test_each_transition_writes_an_audit_event_and_an_outbox_event_with_it(world, quiet, action, status, who):
    slot = day_slots(world, 3)[0]
    booking = book(world, slot.starts_at)
    now = None
    if action == "no_show":
        act(world, booking, "confirm", world.coach)
        now = slot.starts_at + timedelta(minutes=10)
    actor = getattr(world, who)
    act(world, booking, action, actor, now=now)

    assert booking.status == status
    assert db.session.scalar(select(Booking.status).where(Booking.id == booking.id)) == status
    assert f"booking.{status}" in audit_actions(booking.id)
    audit_row = db.session.scalar(select(AuditEvent).where(AuditEvent.target_id == str(booking.id),
                                                           AuditEvent.action == f"booking.{status}"))
    assert audit_row.actor_user_id == actor.user_id
    event = [e for e in outbox_for(booking.id) if e.topic == f"booking.{status}"]
    assert len(event) == 1
    assert event[0].tenant_id == world.org.id
    assert event[0].payload["to"] == status
    assert event[0].payload["actor_membership_id"] == str(actor.id)


def test_a_transition_rolled_back_leaves_neither_audit_nor_outbox_event(world, quiet):
    booking = book(world, day_slots(world, 3)[0].starts_at)
    tenancy.activate(world.org.id)
    service.transition(booking, "confirm", world.coach)
    db.session.rollback()
    assert db.session.get(Booking, booking.id).status == "requested"
    assert "booking.confirmed" not in audit_actions(booking.id)
    assert [e.topic for e in outbox_for(booking.id)] == ["booking.requested"]


@pytest.mark.parametrize("action, who", [("decline", "coach"), ("expire", None)])
def test_a_stale_copy_cannot_change_a_booking_confirmed_meanwhile(world, app, action, who):
    booking = book(world, day_slots(world, 3)[0].starts_at)
    tenancy.activate(world.org.id)
    stale = db.session.get(Booking, booking.id)
    assert stale.status == "requested"
    # Someone else, in another session, confirms it.
    with app.app_context():
        tenancy.activate(world.org.id)
        service.transition(db.session.get(Booking, booking.id), "confirm", db.session.get(Membership, world.coach.id))
        db.session.commit()
    assert stale.status == "requested"  # this session has not seen that yet
    actor = getattr(world, who) if who else None
    with pytest.raises(BookingError, match="changed meanwhile: it is now confirmed"):
        service.transition(stale, action, actor, now=stale.expires_at + timedelta(seconds=1))
    db.session.rollback()
    assert db.session.get(Booking, booking.id).status == "confirmed"
    assert audit_actions(booking.id) == ["booking.requested", "booking.confirmed"]


def test_a_confirm_racing_the_expiry_sweep_has_exactly_one_winner(world, app):
    bookings = [book(world, s.starts_at) for s in day_slots(world, 3)[:4]]
    ids = [b.id for b in bookings]
    expired_at = max(b.expires_at for b in bookings) + timedelta(seconds=1)
    coach_id, tenant_id = world.coach.id, world.org.id
    db.session.commit()

    def confirm(booking_id):
        def worker(ready):
            booking = db.session.get(Booking, booking_id)
            coach = db.session.get(Membership, coach_id)
            booking.offering, booking.coach  # loaded before the race
            ready()
            service.transition(booking, "confirm", coach)
            return "confirmed"
        return worker

    def sweep(ready):
        ready()
        return service.run_due(tenant_id, now=expired_at).expired

    # Four coach confirmations and one sweep (which expires every request still open) start together.
    results = race(app, tenant_id, [confirm(b) for b in ids] + [sweep])
    swept = results.pop()
    statuses = dict(db.session.execute(select(Booking.id, Booking.status).where(Booking.id.in_(ids))).all())
    for booking_id, outcome in zip(ids, results):
        if outcome == "confirmed":
            assert statuses[booking_id] == "confirmed"
        else:
            assert isinstance(outcome, BookingError) and "now expired" in str(outcome), outcome
            assert statuses[booking_id] == "expired"
        decided = [a for a in audit_actions(booking_id) if a in ("booking.confirmed", "booking.expired")]
        assert len(decided) == 1
    assert swept == list(statuses.values()).count("expired")
    live = db.session.scalars(select(CoachingSession.live_seats)).all()
    assert sorted(live) == sorted(1 if s == "confirmed" else 0 for s in statuses.values())


# --- no double booking -----------------------------------------------------------------------------

def test_the_same_slot_cannot_be_requested_twice(world):
    slot = day_slots(world, 3)[0]
    book(world, slot.starts_at)
    other = add_member(world.org, make_user(), ATHLETE)
    assert slot.starts_at not in starts(day_slots(world, 3))
    with pytest.raises(SlotTaken) as caught:
        book(world, slot.starts_at, athlete=other)
    assert caught.value.status == 409
    db.session.rollback()
    assert count(Booking) == 1 and count(CoachingSession) == 1


def test_a_partly_overlapping_slot_of_another_offering_is_taken(world):
    short = make_offering(world.coach, title="Quick check-in", duration_minutes=30)
    ten = berlin(3, 10)
    book(world, ten)  # 10:00–11:00
    short_starts = starts(day_slots(world, 3, short))
    assert ten - timedelta(minutes=30) in short_starts  # 09:30–10:00 just fits
    assert ten + timedelta(minutes=30) not in short_starts
    assert ten + timedelta(minutes=60) in short_starts
    with pytest.raises(SlotTaken):
        book(world, ten + timedelta(minutes=30), offering=short)
    db.session.rollback()
    assert count(Booking) == 1


def test_a_buffer_after_a_session_keeps_the_next_slot_free(world):
    buffered = make_offering(world.coach, title="Video review", buffer_after_minutes=30)
    ten = berlin(3, 10)
    book(world, ten, offering=buffered)  # holds 10:00–11:30
    assert ten + timedelta(hours=1) not in starts(day_slots(world, 3))
    assert ten + timedelta(hours=2) in starts(day_slots(world, 3))
    with pytest.raises(SlotTaken):
        book(world, ten + timedelta(hours=1))
    db.session.rollback()
    book(world, ten + timedelta(hours=2))
    assert count(Booking) == 2


def test_the_database_refuses_an_overlapping_session_written_directly(world, app_db):
    ten = berlin(3, 10)
    booking = book(world, ten)
    with pytest.raises(psycopg.errors.ExclusionViolation) as caught:
        with app_db.transaction():
            app_db.execute(SET_TENANT, [str(world.org.id)])
            app_db.execute(
                "INSERT INTO coaching_sessions (id, tenant_id, coach_membership_id, offering_id, starts_at, ends_at,"
                " busy_from, busy_until, capacity, live_seats) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 1, 1)",
                [uuid.uuid4(), world.org.id, world.coach.id, booking.offering_id, ten + timedelta(minutes=45),
                 ten + timedelta(minutes=105), ten + timedelta(minutes=45), ten + timedelta(minutes=105)])
    assert caught.value.sqlstate == "23P01"


def test_eight_concurrent_requests_for_one_slot_make_exactly_one_booking(world, app):
    slot = day_slots(world, 3)[0]
    athletes = [add_member(world.org, make_user(), ATHLETE).id for _ in range(8)]
    offering_id = world.offering.id
    db.session.commit()

    results = race(app, world.org.id, [requests_booking(offering_id, a, slot.starts_at) for a in athletes])
    won = [r for r in results if isinstance(r, uuid.UUID)]
    assert len(won) == 1, results
    assert all(isinstance(r, SlotTaken) for r in results if r not in won), results
    assert count(Booking) == 1 and count(CoachingSession) == 1
    assert db.session.scalar(select(CoachingSession.live_seats)) == 1


# --- group sessions --------------------------------------------------------------------------------

@pytest.fixture()
def group(world):
    world.offering = make_offering(world.coach, title="Squad training", capacity=3)
    world.athletes = [world.athlete] + [add_member(world.org, make_user(), ATHLETE) for _ in range(3)]
    return world


def test_a_group_session_takes_bookings_up_to_its_capacity(group):
    ten = berlin(3, 10)
    for n, athlete in enumerate(group.athletes[:3]):
        book(group, ten, athlete=athlete)
        offered = {s.starts_at: s for s in day_slots(group, 3)}
        if n < 2:
            assert offered[ten].seats_left == 2 - n
        else:
            assert ten not in offered
    with pytest.raises(SlotTaken, match="filled up|taken"):
        book(group, ten, athlete=group.athletes[3])
    db.session.rollback()
    sessions = db.session.scalars(select(CoachingSession)).all()
    assert len(sessions) == 1 and sessions[0].live_seats == 3 and sessions[0].capacity == 3
    assert count(Booking, session_id=sessions[0].id) == 3


def test_cancelling_a_place_in_a_full_group_session_frees_a_seat(group):
    ten = berlin(3, 10)
    places = [book(group, ten, athlete=a) for a in group.athletes[:3]]
    act(group, places[1], "cancel", group.athletes[1])
    assert db.session.scalar(select(CoachingSession.live_seats)) == 2
    assert {s.starts_at: s.seats_left for s in day_slots(group, 3)}[ten] == 1
    late = book(group, ten, athlete=group.athletes[3])
    assert late.session_id == places[0].session_id
    assert db.session.scalar(select(CoachingSession.live_seats)) == 3


def test_the_same_athlete_cannot_take_two_places_in_one_group_session(group):
    ten = berlin(3, 10)
    book(group, ten)
    tenancy.activate(group.org.id)
    with pytest.raises(BookingError, match="already has a place") as caught:
        service.request_booking(group.offering, group.athlete, ten, "", group.athlete)
    assert not isinstance(caught.value, SlotTaken)
    # Nothing of the refused request is left in the transaction, even for a caller that commits.
    db.session.commit()
    assert db.session.scalar(select(CoachingSession.live_seats)) == 1
    assert count(Booking) == 1


def test_concurrent_group_requests_never_exceed_the_capacity(group, app):
    athletes = [group.athlete.id] + [add_member(group.org, make_user(), ATHLETE).id for _ in range(5)]
    offering_id = group.offering.id
    db.session.commit()

    for hour in (10, 11, 12):  # a few rounds: the interleavings differ each time
        results = race(app, group.org.id, [requests_booking(offering_id, a, berlin(3, hour)) for a in athletes])
        won = [r for r in results if isinstance(r, uuid.UUID)]
        assert len(won) == 3, results
        assert all(isinstance(r, SlotTaken) for r in results if r not in won), results
    sessions = db.session.scalars(select(CoachingSession)).all()
    assert [(s.live_seats, s.capacity) for s in sessions] == [(3, 3)] * 3
    assert count(Booking) == 9


def test_the_database_keeps_live_seats_within_the_capacity(group, app_db):
    book(group, berlin(3, 10))
    with pytest.raises(psycopg.errors.CheckViolation) as caught:
        with app_db.transaction():
            app_db.execute(SET_TENANT, [str(group.org.id)])
            app_db.execute("UPDATE coaching_sessions SET live_seats = capacity + 1")
    assert caught.value.sqlstate == "23514"


# --- cancelling and rescheduling -------------------------------------------------------------------

def test_a_cancellation_inside_the_cancellation_window_is_late(world):
    slot = day_slots(world, 3)[0]
    booking = book(world, slot.starts_at)
    act(world, booking, "confirm", world.coach)
    act(world, booking, "cancel", world.athlete, now=slot.starts_at - timedelta(hours=2))
    assert booking.status == "cancelled"
    assert booking.late_cancellation is True
    assert booking.cancelled_by_membership_id == world.athlete.id
    assert db.session.scalar(select(CoachingSession.live_seats)) == 0


def test_a_cancellation_before_the_cancellation_window_is_not_late(world):
    slot = day_slots(world, 3)[0]
    booking = book(world, slot.starts_at)
    act(world, booking, "confirm", world.coach)
    act(world, booking, "cancel", world.coach, now=slot.starts_at - timedelta(hours=25))
    assert booking.status == "cancelled"
    assert booking.late_cancellation is False
    assert booking.cancelled_by_membership_id == world.coach.id


def test_rescheduling_cancels_the_booking_and_books_the_new_time_linked_to_it(world, quiet):
    ten, two = berlin(3, 10), berlin(3, 14)
    old = book(world, ten, note="Serve")
    act(world, old, "confirm", world.coach)
    tenancy.activate(world.org.id)
    new = service.reschedule_booking(old, two, world.athlete)
    db.session.commit()
    assert old.status == "cancelled"
    assert (new.status, new.starts_at, new.rescheduled_from_id, new.note) == ("requested", two, old.id, "Serve")
    cancel = db.session.scalar(select(AuditEvent).where(AuditEvent.target_id == str(old.id),
                                                        AuditEvent.action == "booking.cancelled"))
    assert cancel.details["reason"] == "rescheduled"
    assert [e.topic for e in outbox_for(new.id)] == ["booking.requested"]
    assert ten in starts(day_slots(world, 3))
    assert two not in starts(day_slots(world, 3))


def test_rescheduling_to_a_taken_time_leaves_the_booking_as_it_was(world):
    ten, eleven = berlin(3, 10), berlin(3, 11)
    booking = book(world, ten)
    act(world, booking, "confirm", world.coach)
    book(world, eleven, athlete=add_member(world.org, make_user(), ATHLETE))
    tenancy.activate(world.org.id)
    with pytest.raises(SlotTaken):
        service.reschedule_booking(booking, eleven, world.athlete)
    assert booking.status == "confirmed"
    db.session.commit()  # even a caller that commits after the refusal changes nothing
    db.session.expire_all()
    assert db.session.get(Booking, booking.id).status == "confirmed"
    assert count(Booking) == 2
    assert sorted(db.session.scalars(select(CoachingSession.live_seats))) == [1, 1]
    assert "booking.cancelled" not in audit_actions(booking.id)


def test_rescheduling_into_time_its_own_session_holds_works(world):
    buffered = make_offering(world.coach, title="Long rally", buffer_after_minutes=30)
    ten, eleven = berlin(3, 10), berlin(3, 11)
    booking = book(world, ten, offering=buffered)  # holds 10:00–11:30, so 11:00 is not offered
    assert eleven not in starts(day_slots(world, 3, buffered))
    tenancy.activate(world.org.id)
    new = service.reschedule_booking(booking, eleven, world.athlete)
    db.session.commit()
    assert (booking.status, new.status, new.starts_at) == ("cancelled", "requested", eleven)


# --- bad input -------------------------------------------------------------------------------------

def _other_org_athlete(world):
    membership = add_member(make_org(), make_user(), ATHLETE)
    membership.role, membership.tenant_id  # loaded while its organization is active
    return membership


BAD_REQUESTS = {
    "in the past": (lambda w: dict(starts_at=berlin(-1, 10)), "in the past"),
    "outside the hours": (lambda w: dict(starts_at=berlin(3, 3)), "not available"),
    "off the slot grid": (lambda w: dict(starts_at=berlin(3, 10, 7)), "not available"),
    "naive time": (lambda w: dict(starts_at=berlin(3, 10).replace(tzinfo=None)), "not valid"),
    "note too long": (lambda w: dict(note="x" * 5000), "at most 2,000 characters"),
    "inactive offering": (lambda w: dict(inactive=True), "no longer available"),
    "a coach as athlete": (lambda w: dict(athlete=w.coach), "athletes of this organization"),
    "a scheduler as athlete": (lambda w: dict(athlete=w.scheduler), "athletes of this organization"),
    "another org's athlete": (lambda w: dict(athlete=_other_org_athlete(w)), "athletes of this organization"),
}


def test_bad_requests_are_refused_with_a_message_and_write_nothing(world):
    for case, (make_args, message) in BAD_REQUESTS.items():
        args = dict(starts_at=berlin(3, 10), note="", athlete=world.athlete)
        args.update(make_args(world))
        tenancy.activate(world.org.id)
        inactive = args.pop("inactive", False)
        if inactive:
            service.set_offering_active(world.offering, False, world.coach)
            db.session.commit()
        with pytest.raises(BookingError, match=message) as caught:
            service.request_booking(world.offering, args["athlete"], args["starts_at"], args["note"], world.athlete)
        assert not isinstance(caught.value, SlotTaken), case
        db.session.rollback()
        tenancy.activate(world.org.id)
        assert (count(Booking), count(CoachingSession)) == (0, 0), case
        if inactive:
            service.set_offering_active(world.offering, True, world.coach)
            db.session.commit()
    # The same request, made right, goes through.
    assert book(world, berlin(3, 10)).status == "requested"


# --- availability ----------------------------------------------------------------------------------

def test_an_inverted_weekly_rule_is_refused(world):
    with pytest.raises(BookingError, match="end must be after the start"):
        service.add_rule(world.coach, 0, 18 * 60, 17 * 60, world.coach)


def test_an_overlapping_weekly_rule_is_refused_naming_the_overlap(world):
    with pytest.raises(BookingError, match="16:00–18:00 overlaps 09:00–17:00"):
        service.add_rule(world.coach, 0, 16 * 60, 18 * 60, world.coach)
    db.session.rollback()
    tenancy.activate(world.org.id)
    service.add_rule(world.coach, 0, 17 * 60, 18 * 60, world.coach)  # touching is fine
    db.session.commit()
    assert [(r.start_minute, r.end_minute) for r in service.weekly_rules(world.coach)[0]] == [
        (540, 1020), (1020, 1080)]


def test_an_override_with_overlapping_intervals_is_refused(world):
    tenancy.activate(world.org.id)
    with pytest.raises(BookingError, match="overlaps"):
        service.set_override(world.coach, berlin_day(3), [(9 * 60, 12 * 60), (11 * 60, 13 * 60)], world.coach)
    with pytest.raises(BookingError, match="end must be after the start"):
        service.set_override(world.coach, berlin_day(3), [(12 * 60, 9 * 60)], world.coach)


def test_an_override_replaces_the_weekly_hours_of_its_day(world):
    tenancy.activate(world.org.id)
    service.set_override(world.coach, berlin_day(3), [(18 * 60, 20 * 60)], world.coach)
    db.session.commit()
    assert starts(day_slots(world, 3)) == [berlin(3, 18), berlin(3, 19)]
    assert len(day_slots(world, 4)) == 8


def test_a_closed_day_hides_that_days_slots(world):
    assert len(day_slots(world, 3)) == 8
    tenancy.activate(world.org.id)
    service.set_override(world.coach, berlin_day(3), [], world.coach)
    db.session.commit()
    assert day_slots(world, 3) == []
    assert len(day_slots(world, 4)) == 8
    with pytest.raises(BookingError, match="not available"):
        book(world, berlin(3, 10))


def test_time_off_is_checked_and_hides_the_slots_it_covers(world):
    tenancy.activate(world.org.id)
    with pytest.raises(BookingError, match="end after it starts"):
        service.add_time_off(world.coach, berlin(3, 12), berlin(3, 10), "", world.coach)
    with pytest.raises(BookingError, match="not valid"):
        service.add_time_off(world.coach, berlin(3, 10).replace(tzinfo=None), berlin(3, 12), "", world.coach)
    service.add_time_off(world.coach, berlin(3, 10), berlin(3, 12), "Dentist", world.coach)
    db.session.commit()
    offered = starts(day_slots(world, 3))
    assert berlin(3, 10) not in offered and berlin(3, 11) not in offered
    assert berlin(3, 9) in offered and berlin(3, 12) in offered


def test_an_unknown_time_zone_is_refused(world):
    tenancy.activate(world.org.id)
    for bad in ("Mars/Olympus_Mons", "", "../../etc/passwd"):
        with pytest.raises(BookingError, match="time zone"):
            service.set_coach_timezone(world.coach, bad, world.coach)
    assert service.coach_timezone(world.coach) == "Europe/Berlin"


def test_the_database_refuses_overlapping_weekly_rules_written_directly(world, app_db):
    with pytest.raises(psycopg.errors.ExclusionViolation) as caught:
        with app_db.transaction():
            app_db.execute(SET_TENANT, [str(world.org.id)])
            app_db.execute("INSERT INTO availability_rules (id, tenant_id, coach_membership_id, weekday, start_minute,"
                           " end_minute) VALUES (%s, %s, %s, 2, 600, 1200)",
                           [uuid.uuid4(), world.org.id, world.coach.id])
    assert caught.value.sqlstate == "23P01"


# --- who may do what -------------------------------------------------------------------------------

def test_the_actions_offered_depend_on_who_asks(world):
    booking = book(world, day_slots(world, 3)[0].starts_at)
    other_coach = add_member(world.org, make_user(), COACH)
    tenancy.activate(world.org.id)
    assert service.allowed_actions(booking, world.athlete) == {"cancel", "reschedule"}
    assert service.allowed_actions(booking, world.coach) == {"confirm", "decline", "cancel"}
    assert service.allowed_actions(booking, world.scheduler) == {"confirm", "decline", "cancel", "reschedule"}
    assert service.allowed_actions(booking, other_coach) == set()
    act(world, booking, "confirm", world.coach)
    assert service.allowed_actions(booking, world.coach) == {"cancel"}
    after_start = booking.starts_at + timedelta(minutes=5)
    assert service.allowed_actions(booking, world.coach, now=after_start) == {"no_show"}
    assert service.allowed_actions(booking, world.athlete, now=after_start) == set()


def test_an_athlete_cannot_confirm_their_own_request(world):
    booking = book(world, day_slots(world, 3)[0].starts_at)
    tenancy.activate(world.org.id)
    with pytest.raises(BookingError, match="cannot be confirmed"):
        service.transition(booking, "confirm", world.athlete)
    other_coach = add_member(world.org, make_user(), COACH)
    with pytest.raises(BookingError):
        service.transition(booking, "decline", other_coach)
    db.session.rollback()
    assert db.session.get(Booking, booking.id).status == "requested"


# --- calendar files --------------------------------------------------------------------------------

def _events(payload: bytes) -> dict[str, object]:
    cal = Calendar.from_ical(payload)
    return {str(e["uid"]): e for e in cal.walk("VEVENT")}


def _calendar(world, bookings, viewer=None) -> dict[str, object]:
    tenancy.activate(world.org.id)
    return _events(ics.calendar(bookings, viewer or world.coach, "https://coach.example", world.org.slug, "Mine"))


def test_the_calendar_file_lists_each_booking_with_a_stable_uid_utc_times_and_its_status(world):
    first, second, third = day_slots(world, 3)[:3]
    requested = book(world, first.starts_at, note="Footwork")
    confirmed = book(world, second.starts_at)
    act(world, confirmed, "confirm", world.coach)
    cancelled = book(world, third.starts_at)
    act(world, cancelled, "cancel", world.athlete)
    events = _calendar(world, [requested, confirmed, cancelled])
    expected = {requested: "TENTATIVE", confirmed: "CONFIRMED", cancelled: "CANCELLED"}
    assert set(events) == {f"booking-{b.id}@coach" for b in expected}
    for booking, status in expected.items():
        event = events[f"booking-{booking.id}@coach"]
        assert str(event["status"]) == status
        start = event.decoded("dtstart")
        assert start == booking.starts_at and start.utcoffset() == timedelta(0)
        assert event["dtstart"].to_ical().endswith(b"Z")
        assert event.decoded("dtend") == booking.ends_at
        assert "Arno Athlete" in str(event["summary"])  # the coach's feed names the athlete
    assert "Footwork" in str(events[f"booking-{requested.id}@coach"]["description"])
    athlete_view = _calendar(world, [confirmed], viewer=world.athlete)
    assert "Carla Coach" in str(athlete_view[f"booking-{confirmed.id}@coach"]["summary"])


def test_a_booking_keeps_its_uid_and_its_sequence_rises_when_it_changes(world):
    booking = book(world, day_slots(world, 3)[0].starts_at)
    uid = f"booking-{booking.id}@coach"
    sequences = [int(_calendar(world, [booking])[uid]["sequence"])]
    act(world, booking, "confirm", world.coach)
    sequences.append(int(_calendar(world, [booking])[uid]["sequence"]))
    act(world, booking, "cancel", world.athlete)
    event = _calendar(world, [booking])[uid]
    sequences.append(int(event["sequence"]))
    assert str(event["status"]) == "CANCELLED"
    assert sequences == sorted(set(sequences)), sequences


def test_every_transition_raises_the_calendar_sequence():
    for sources, target in service.TRANSITIONS.values():
        for source in sources:
            assert ics.SEQUENCE[target] > ics.SEQUENCE[source], (source, target)


def test_calendar_times_are_utc_whatever_zone_the_database_session_uses(world):
    booking = book(world, day_slots(world, 3)[0].starts_at)
    tenancy.activate(world.org.id)
    db.session.execute(text("SET LOCAL TIME ZONE 'America/New_York'"))
    db.session.refresh(booking)
    event = _events(ics.calendar([booking], world.coach, "https://coach.example", world.org.slug, "Mine"))[
        f"booking-{booking.id}@coach"]
    assert event["dtstart"].to_ical().endswith(b"Z")
    assert event.decoded("dtstart") == booking.starts_at
    db.session.rollback()


def test_a_regenerated_feed_address_replaces_the_old_one(world):
    tenancy.activate(world.org.id)
    first = service.regenerate_feed(world.athlete)
    db.session.commit()
    assert service.feed_owner(world.org, first).id == world.athlete.id
    second = service.regenerate_feed(world.athlete)
    db.session.commit()
    assert second != first
    assert service.feed_owner(world.org, first) is None
    assert service.feed_owner(world.org, second).id == world.athlete.id
    assert service.feed_owner(world.org, "") is None
    assert service.feed_owner(world.org, "x" * 500) is None
    other = make_org()
    tenancy.activate(other.id)
    assert service.feed_owner(other, second) is None
