"""A coach's computed facts: how fast they answer requests, sessions delivered, price range (packs too), next slot."""
from __future__ import annotations

from datetime import timedelta

import pytest

from coach import clock, tenancy
from coach.booking.availability import add_time_off, set_offering_active
from coach.directory import stats
from coach.extensions import db
from coach.payments import catalog
from tests.booking_support import make_offering
from tests.directory_support import DirectoryWorld


@pytest.fixture()
def world(ctx):
    return DirectoryWorld()


def _request(w, minutes_to_answer: float | None, status: str, *, days_ago: int = 3, auto: bool = False,
             by_coach: bool = False):
    """A request to Maria made ``days_ago`` days ago and answered (confirmed or declined) after the minutes."""
    now = clock.now()
    offering = w.auto if auto else w.aim
    w.requests = getattr(w, "requests", 0) + 1  # each in its own hour: a coach's sessions never overlap
    booking = w.write_booking(w.maria, offering, w.ana, now + timedelta(days=5, hours=2 * w.requests), status)
    booking.created_at = now - timedelta(days=days_ago)
    answered = booking.created_at + timedelta(minutes=minutes_to_answer) if minutes_to_answer is not None else None
    booking.confirmed_at = answered if status != "declined" else None
    booking.status_changed_at = answered or booking.created_at
    if by_coach:
        booking.booked_by_membership_id = w.maria.id
    db.session.flush()
    return booking


def test_response_time_is_the_median_of_answered_requests_and_needs_three(world):
    w = world
    w.auto = make_offering(w.maria, title="Instant aim", duration_minutes=30, price_minor=2000, auto_confirm=True)
    facts = stats.coach_facts(w.org.id, [w.maria.id, w.jon.id])
    # No answered requests yet (the world's ended booking was written already confirmed).
    assert facts[w.maria.id].response_minutes is None
    _request(w, 30, "confirmed")
    _request(w, 90, "declined")
    # Not requests the coach answered: auto-confirmed, booked by the coach, expired, or older than 90 days.
    _request(w, 0.01, "confirmed", auto=True)
    _request(w, 0, "confirmed", by_coach=True)
    _request(w, None, "expired")
    _request(w, 5, "confirmed", days_ago=100)
    assert stats.coach_facts(w.org.id, [w.maria.id])[w.maria.id].response_minutes is None  # two answers
    _request(w, 60, "ended")
    facts = stats.coach_facts(w.org.id, [w.maria.id, w.jon.id])
    assert facts[w.maria.id].response_minutes == 60  # the median of 30, 60 and 90
    assert facts[w.jon.id].response_minutes is None


def test_sessions_delivered_counts_ended_sessions_once(world):
    w = world
    now = clock.now()
    w.write_booking(w.maria, w.aim, w.ben, now - timedelta(days=3), "ended")
    w.write_booking(w.maria, w.aim, w.ben, now - timedelta(days=4), "cancelled")
    w.write_booking(w.maria, w.aim, w.ben, now - timedelta(days=5), "no_show")
    facts = stats.coach_facts(w.org.id, [w.maria.id, w.jon.id, w.kim.id])
    assert facts[w.maria.id].sessions_delivered == 2  # the world's ended one and Ben's
    assert facts[w.jon.id].sessions_delivered == 0
    assert facts[w.kim.id] == stats.CoachFacts()  # nothing offered, nothing delivered


def test_price_range_spans_offerings_and_per_session_price_of_packs(world):
    w = world
    facts = stats.coach_facts(w.org.id, [w.maria.id, w.jon.id], with_next_slot=False)
    assert (facts[w.maria.id].currency, facts[w.maria.id].price_min_minor, facts[w.maria.id].price_max_minor) == \
        ("EUR", 4500, 4500)
    assert facts[w.jon.id].price_min_minor == 8000
    # A 5-session pack at EUR 150 makes a session EUR 30; an archived offering no longer counts.
    catalog.save_product(w.maria, {"kind": "pack", "title": "Five aim reviews", "price": "150", "credits": "5",
                                   "validity_days": "90", "offering_ids": [str(w.aim.id)]}, w.maria)
    vip = make_offering(w.maria, title="VIP day", duration_minutes=240, price_minor=30000)
    tenancy.activate(w.org.id)
    facts = stats.coach_facts(w.org.id, [w.maria.id], with_next_slot=False)[w.maria.id]
    assert (facts.currency, facts.price_min_minor, facts.price_max_minor) == ("EUR", 3000, 30000)
    set_offering_active(vip, False, w.maria)
    facts = stats.coach_facts(w.org.id, [w.maria.id], with_next_slot=False)[w.maria.id]
    assert (facts.price_min_minor, facts.price_max_minor) == (3000, 4500)


def test_mixed_currencies_show_the_most_common_one(world):
    w = world
    make_offering(w.jon, title="Return drills", duration_minutes=60, price_minor=5000)
    make_offering(w.jon, title="Clinic (US)", duration_minutes=60, price_minor=100, currency="USD")
    tenancy.activate(w.org.id)
    facts = stats.coach_facts(w.org.id, [w.jon.id], with_next_slot=False)[w.jon.id]
    assert (facts.currency, facts.price_min_minor, facts.price_max_minor) == ("EUR", 5000, 8000)


def test_next_slot_is_the_earliest_free_one_and_skips_time_off(world):
    w = world
    now = clock.now()
    first = stats.coach_facts(w.org.id, [w.maria.id, w.kim.id], now)
    slot = first[w.maria.id].next_slot_at
    assert slot is not None and now < slot < now + timedelta(days=2)
    assert first[w.kim.id].next_slot_at is None  # no offerings
    # Ten days off: the next slot is after them (found in a later week of the horizon).
    add_time_off(w.maria, now, now + timedelta(days=10), "Bootcamp", w.maria)
    later = stats.coach_facts(w.org.id, [w.maria.id], now)[w.maria.id].next_slot_at
    assert later >= now + timedelta(days=10)
    # Off for longer than the horizon (28 days): no slot to show.
    add_time_off(w.maria, now + timedelta(days=10), now + timedelta(days=40), "Travel", w.maria)
    assert stats.coach_facts(w.org.id, [w.maria.id], now)[w.maria.id].next_slot_at is None


def test_refresh_profile_stats_stores_them_on_the_profile(world):
    w = world
    facts = stats.refresh_profile_stats(w.maria_profile)
    db.session.commit()
    db.session.refresh(w.maria_profile)
    assert w.maria_profile.sessions_delivered == facts.sessions_delivered == 1
    assert w.maria_profile.stats_at is not None
