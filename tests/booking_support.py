"""Booking factories: a coach with weekly hours and an offering, made through the services."""
from __future__ import annotations

from datetime import date, timedelta

from coach import clock, tenancy
from coach.booking import service
from coach.extensions import db
from coach.orgs.models import ATHLETE, COACH, SCHEDULER
from tests.factories import add_member, make_org, make_user

OFFERING_DEFAULTS = dict(title="Technique session", description="", duration_minutes=60, price_minor=0,
                         currency="EUR", location="Court 1", meeting_url="", capacity=1, auto_confirm=False,
                         buffer_before_minutes=0, buffer_after_minutes=0, min_notice_minutes=0, max_per_day=None,
                         horizon_days=60, cancellation_window_hours=24)


def make_offering(coach, actor=None, **values):
    tenancy.activate(coach.tenant_id)
    offering = service.save_offering(coach, {**OFFERING_DEFAULTS, **values}, actor or coach)
    db.session.commit()
    return offering


def open_every_day(coach, start="09:00", end="17:00", actor=None, tz: str | None = None):
    """Weekly hours on all seven days (and the coach's zone, if given)."""
    tenancy.activate(coach.tenant_id)
    if tz:
        service.set_coach_timezone(coach, tz, actor or coach)
    s = int(start[:2]) * 60 + int(start[3:])
    e = int(end[:2]) * 60 + int(end[3:])
    for weekday in range(7):
        service.add_rule(coach, weekday, s, e, actor or coach)
    db.session.commit()


def next_monday(today: date | None = None) -> date:
    today = today or clock.now().date()
    return today + timedelta(days=7 - today.weekday())


class BookingWorld:
    """An organization with a coach (Berlin hours 09–17 every day), an athlete, a scheduler and an offering."""

    def __init__(self, **offering_values):
        self.org = make_org(make_user(f"admin-{id(self)}@example.com", "Ada Admin"))
        self.coach = add_member(self.org, make_user(f"coach-{id(self)}@example.com", "Carla Coach"), COACH)
        self.athlete = add_member(self.org, make_user(f"athlete-{id(self)}@example.com", "Arno Athlete"), ATHLETE)
        self.scheduler = add_member(self.org, make_user(f"sched-{id(self)}@example.com", "Sam Scheduler"),
                                    SCHEDULER)
        open_every_day(self.coach, tz="Europe/Berlin")
        self.offering = make_offering(self.coach, **offering_values)

    def first_slot(self, days_ahead: int = 2):
        start = clock.now().replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=days_ahead)
        tenancy.activate(self.org.id)
        slots = service.available_slots(self.offering, start, start + timedelta(days=1))
        assert slots, "the world should offer slots"
        return slots[0]
