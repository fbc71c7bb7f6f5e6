"""Scheduled booking transitions and reminders: the idempotent sweep and the precise RQ jobs.

Sweeps take ``now``; bookings are made through the services with ``now`` values that line
up with it (a request "made three days ago" for yesterday's slot is due to expire today).
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy import func, select

from coach import tenancy
from coach.booking import jobs, service
from coach.booking.models import Booking, CoachingSession
from coach.extensions import db
from coach.platform import periodic
from coach.platform.models import AuditEvent
from coach.platform.queues import queue, redis_conn
from tests.booking_support import BookingWorld, make_offering

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
SET_TENANT = "SELECT set_config('app.tenant_id', %s, true)"


def real_now() -> datetime:
    return datetime.now(UTC)


def day_slots(world, days_ahead: int, offering=None, now=None):
    """The slots of the Berlin day ``days_ahead`` days from today, as offered at ``now``."""
    tenancy.activate(world.org.id)
    day = (real_now().astimezone(BERLIN) + timedelta(days=days_ahead)).date()
    start = datetime(day.year, day.month, day.day, tzinfo=BERLIN).astimezone(UTC)
    return service.available_slots(offering or world.offering, start, start + timedelta(days=1), now=now)


def book(world, starts_at, offering=None, now=None) -> Booking:
    tenancy.activate(world.org.id)
    booking = service.request_booking(offering or world.offering, world.athlete, starts_at, "", world.athlete,
                                      now=now)
    db.session.commit()
    return booking


def run_due(world, now):
    tenancy.activate(world.org.id)
    result = service.run_due(world.org.id, now=now)
    db.session.commit()
    return result


def status_of(booking) -> str:
    return db.session.scalar(select(Booking.status).where(Booking.id == booking.id))


def live_seats(booking) -> int:
    return db.session.scalar(select(CoachingSession.live_seats).where(CoachingSession.id == booking.session_id))


def audit_actions(booking) -> list[str]:
    return list(db.session.scalars(select(AuditEvent.action).where(AuditEvent.target_id == str(booking.id))
                                   .order_by(AuditEvent.created_at)))


def emails_settled(owner_db, fragment: str, expected: int) -> list[str]:
    """The addresses of emails whose subject has ``fragment``, once ``expected`` have been written by
    the notifications' worker (or 30 s passed: the background worker on a loaded machine), and half a second more
    for any extra one."""
    deadline = time.monotonic() + 30
    while len(emails_with(owner_db, fragment)) < expected and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    return emails_with(owner_db, fragment)


def emails_with(owner_db, fragment: str) -> list[str]:
    rows = owner_db.execute("SELECT to_address FROM emails WHERE subject LIKE %s ORDER BY to_address",
                            [f"%{fragment}%"]).fetchall()
    return [r[0] for r in rows]


def wait_for_subject(mailbox, address: str, fragment: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [m for m in mailbox.to(address) if fragment in m["Subject"]]
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no email to {address} with {fragment!r} within {timeout}s")


def scheduled_booking_jobs() -> set[str]:
    return {i for i in ScheduledJobRegistry(queue=queue("default")).get_job_ids() if i.startswith("booking-due-")}


def due_job_id(tenant_id, when: datetime) -> str:
    return f"booking-due-{tenant_id}-{int(when.timestamp())}"


@pytest.fixture()
def world(ctx):
    return BookingWorld()


@pytest.fixture()
def grace(app) -> timedelta:
    minutes = app.config["BOOKING_END_GRACE_MINUTES"]
    assert minutes == 15
    return timedelta(minutes=minutes)


def confirmed_booking(world, now=None) -> Booking:
    """A booking three days ahead on an auto-confirm offering, confirmed at ``now`` (real time by default)."""
    offering = make_offering(world.coach, title="Drop-in", auto_confirm=True)
    return book(world, day_slots(world, 3, offering)[0].starts_at, offering=offering, now=now)


# --- transitions -----------------------------------------------------------------------------------

def test_an_unanswered_request_expires_when_due_and_frees_its_time(world):
    slot = day_slots(world, 3)[0]
    booking = book(world, slot.starts_at)
    assert run_due(world, booking.expires_at - timedelta(seconds=1)).total == 0
    assert status_of(booking) == "requested"

    result = run_due(world, booking.expires_at)
    assert (result.expired, result.total) == (1, 1)
    assert status_of(booking) == "expired"
    assert live_seats(booking) == 0
    assert slot.starts_at in [s.starts_at for s in day_slots(world, 3)]
    expired = db.session.scalar(select(AuditEvent).where(AuditEvent.target_id == str(booking.id),
                                                         AuditEvent.action == "booking.expired"))
    assert expired.actor_label == "system" and expired.actor_user_id is None

    assert run_due(world, booking.expires_at + timedelta(hours=1)).total == 0
    assert audit_actions(booking).count("booking.expired") == 1


def test_a_confirmed_session_starts_at_its_start_and_ends_after_the_grace(world, grace):
    booking = confirmed_booking(world)
    start, end = booking.starts_at, booking.ends_at
    assert run_due(world, start - timedelta(seconds=1)).started == 0
    assert world.org.id in service.due_tenants(start)

    result = run_due(world, start)
    assert (result.started, result.ended) == (1, 0)
    assert status_of(booking) == "active"
    assert live_seats(booking) == 1  # an active session still holds the coach's time

    assert run_due(world, end + grace - timedelta(seconds=1)).total == 0
    assert world.org.id not in service.due_tenants(end + grace - timedelta(seconds=1))
    assert world.org.id in service.due_tenants(end + grace)
    result = run_due(world, end + grace)
    assert (result.started, result.ended, result.total) == (0, 1, 1)
    assert status_of(booking) == "ended"
    assert live_seats(booking) == 0

    assert run_due(world, end + grace + timedelta(hours=2)).total == 0
    assert world.org.id not in service.due_tenants(end + grace + timedelta(hours=2))
    assert audit_actions(booking) == ["booking.confirmed", "booking.active", "booking.ended"]


def test_a_sweep_after_an_outage_takes_a_session_through_start_and_end_at_once(world, grace):
    booking = confirmed_booking(world)
    result = run_due(world, booking.ends_at + grace + timedelta(hours=3))
    assert (result.started, result.ended, result.reminders) == (1, 1, 0)
    assert status_of(booking) == "ended"
    assert audit_actions(booking) == ["booking.confirmed", "booking.active", "booking.ended"]


# --- reminders -------------------------------------------------------------------------------------

def test_athlete_and_coach_are_reminded_a_day_and_an_hour_before_once_each(world, owner_db, mailbox):
    booking = confirmed_booking(world)
    start = booking.starts_at
    athlete, coach = world.athlete.user.email, world.coach.user.email
    day_before = start - timedelta(hours=24)

    assert run_due(world, day_before - timedelta(seconds=1)).reminders == 0
    assert run_due(world, day_before).reminders == 1
    assert run_due(world, day_before + timedelta(minutes=1)).reminders == 0
    assert run_due(world, start - timedelta(hours=2)).reminders == 0
    # The sweep emits one reminder event; the notifications' worker emails both people.
    to_athlete = wait_for_subject(mailbox, athlete, "Reminder: Drop-in tomorrow")
    to_coach = wait_for_subject(mailbox, coach, "Reminder: Drop-in tomorrow")
    assert emails_with(owner_db, "tomorrow") == sorted([athlete, coach])
    assert "with Carla Coach" in mailbox.text(to_athlete[0])
    assert "with Arno Athlete" in mailbox.text(to_coach[0])
    assert f"/bookings/{booking.id}" in mailbox.text(to_athlete[0])

    assert world.org.id in service.due_tenants(start - timedelta(hours=1))
    assert run_due(world, start - timedelta(hours=1)).reminders == 1
    assert run_due(world, start - timedelta(minutes=30)).reminders == 0
    assert world.org.id not in service.due_tenants(start - timedelta(minutes=30))
    wait_for_subject(mailbox, athlete, "in one hour")
    wait_for_subject(mailbox, coach, "in one hour")
    assert emails_with(owner_db, "in one hour") == sorted([athlete, coach])
    reminders = [m for m in mailbox.to(athlete) + mailbox.to(coach) if m["Subject"].startswith("Reminder:")]
    assert len(reminders) == 4


def test_two_sweeps_at_the_same_moment_send_each_reminder_once(world, app, owner_db):
    booking = confirmed_booking(world)
    moment = booking.starts_at - timedelta(hours=24)
    tenant_id = world.org.id
    db.session.commit()
    barrier = threading.Barrier(2)
    results, errors = [], []

    def sweep():
        try:
            with app.app_context():
                tenancy.activate(tenant_id)
                barrier.wait(timeout=10)
                results.append(service.run_due(tenant_id, now=moment).reminders)
                db.session.commit()
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert sorted(results) == [0, 1]
    assert len(emails_settled(owner_db, "tomorrow", 2)) == 2  # one event, two emails, once


def test_a_booking_confirmed_three_hours_ahead_gets_only_the_one_hour_reminder(world, owner_db):
    start = day_slots(world, 3)[0].starts_at
    booking = book(world, start, now=start - timedelta(hours=4))
    tenancy.activate(world.org.id)
    service.transition(booking, "confirm", world.coach, now=start - timedelta(hours=3))
    db.session.commit()

    assert run_due(world, start - timedelta(hours=2)).reminders == 0
    assert world.org.id not in service.due_tenants(start - timedelta(hours=2))
    assert run_due(world, start - timedelta(hours=1)).reminders == 1
    assert len(emails_settled(owner_db, "in one hour", 2)) == 2
    assert emails_with(owner_db, "tomorrow") == []


# --- the minute sweep across organizations ---------------------------------------------------------

def test_the_sweep_acts_for_every_organization_within_its_own_rows(ctx, app, app_db):
    worlds = [BookingWorld(), BookingWorld()]
    three_days_ago = real_now() - timedelta(days=3)
    booking_ids = {}
    for world in worlds:
        # Requested three days ago for yesterday: nobody answered, so it expired two days ago.
        booking = book(world, day_slots(world, -1, now=three_days_ago)[0].starts_at, now=three_days_ago)
        booking_ids[world.org.id] = booking.id
    db.session.commit()

    with app.app_context():  # as the periodic job runs: no organization in force
        assert set(service.due_tenants()) == set(booking_ids)
        assert jobs.sweep_all() == 2
        assert service.due_tenants() == []
        assert jobs.sweep_all() == 0

    for org_id, booking_id in booking_ids.items():
        with app_db.transaction():
            app_db.execute(SET_TENANT, [str(org_id)])
            assert app_db.execute("SELECT id, status FROM bookings").fetchall() == [(booking_id, "expired")]
            assert app_db.execute("SELECT live_seats FROM coaching_sessions").fetchall() == [(0,)]
            targets = app_db.execute("SELECT tenant_id, target_id FROM audit_events "
                                     "WHERE action = 'booking.expired'").fetchall()
            assert targets == [(org_id, str(booking_id))]


def test_the_booking_sweep_is_a_periodic_job_every_minute(app):
    assert periodic.SCHEDULE["sweep_bookings"].every == 60
    with app.app_context():
        assert periodic.run("sweep_bookings") == 0
        registry = ScheduledJobRegistry(queue=queue("default"))
        next_runs = [i for i in registry.get_job_ids() if i.startswith("periodic-sweep_bookings-")]
        assert len(next_runs) == 1
        delay = registry.get_scheduled_time(next_runs[0]) - real_now()
        assert timedelta(seconds=50) < delay <= timedelta(seconds=60)


# --- precise jobs ----------------------------------------------------------------------------------

def test_a_confirmed_booking_schedules_the_sweep_at_each_of_its_moments(world, grace):
    booking = confirmed_booking(world)  # the background relay and worker consume booking.confirmed
    start, end = booking.starts_at, booking.ends_at
    moments = [start - timedelta(hours=24), start - timedelta(hours=1), start, end + grace]
    expected = {due_job_id(world.org.id, m): m for m in moments}
    deadline = time.monotonic() + 30  # the background worker's, on a machine that may be loaded
    while scheduled_booking_jobs() != set(expected) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert scheduled_booking_jobs() == set(expected)
    registry = ScheduledJobRegistry(queue=queue("default"))
    for job_id, moment in expected.items():
        assert registry.get_scheduled_time(job_id) == moment
        job = Job.fetch(job_id, connection=redis_conn(), serializer=JSONSerializer)
        assert job.func_name == "coach.booking.jobs.run_due_for"
        assert job.args == [str(world.org.id)]
        assert job.timeout == 120 and job.retries_left == 3


def test_only_moments_still_ahead_are_scheduled(world, grace, quiet):
    tenancy.activate(world.org.id)
    soon = real_now().replace(microsecond=0) + timedelta(minutes=30)
    times = {"starts_at": soon.isoformat(), "ends_at": (soon + timedelta(hours=1)).isoformat()}
    jobs.schedule_from_event({"to": "confirmed", **times})
    expected = {due_job_id(world.org.id, soon), due_job_id(world.org.id, soon + timedelta(hours=1) + grace)}
    assert scheduled_booking_jobs() == expected
    # Moments already past, and events that need no sweep, schedule nothing; a repeat adds nothing.
    jobs.schedule_from_event({"to": "requested", **times,
                              "expires_at": (real_now() - timedelta(minutes=1)).isoformat()})
    jobs.schedule_from_event({"to": "cancelled", **times})
    jobs.schedule_from_event({"to": "active", **times})
    jobs.schedule_from_event({"to": "confirmed", **times})
    assert scheduled_booking_jobs() == expected


def test_the_precise_job_is_safe_to_run_again(world, quiet):
    three_days_ago = real_now() - timedelta(days=3)
    booking = book(world, day_slots(world, -1, now=three_days_ago)[0].starts_at, now=three_days_ago)
    tenancy.activate(world.org.id)
    jobs.schedule_moments(world.org.id, [real_now() + timedelta(hours=1)])
    (job_id,) = scheduled_booking_jobs()
    job = Job.fetch(job_id, connection=redis_conn(), serializer=JSONSerializer)
    db.session.commit()

    assert job.perform() == 1  # the job as stored in Redis, run as the worker would
    assert jobs.run_due_for(str(world.org.id)) == 0
    assert jobs.run_due_for(str(world.org.id)) == 0
    tenancy.activate(world.org.id)
    assert status_of(booking) == "expired"
    assert audit_actions(booking).count("booking.expired") == 1
    assert db.session.scalar(select(func.count()).select_from(Booking)) == 1
