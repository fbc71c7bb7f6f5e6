"""The cancellation policy as a table: cause × inside/outside the window × late-cancel policy × how it was paid."""
from __future__ import annotations

from datetime import timedelta

import pytest

from coach import clock, tenancy
from coach.booking import service
from coach.extensions import db
from coach.payments import credits, policy
from coach.payments.policy import (ATHLETE_CANCEL, COACH_CANCEL, CREDIT, DECLINED, EXPIRED, FREE, MONEY, NO_SHOW,
                                   Outcome)
from tests.test_payments_credits import PackWorld, money_side  # noqa: F401 - the fixture

BACK, KEPT = True, False

# (cause, late, late_cancel_policy, fee %, paid by) → (credit back, % of the money back)
TABLE = [
    # The coach's side ends it: everything back, whatever the window or the policy.
    (COACH_CANCEL, False, "forfeit", 50, CREDIT, BACK, 0),
    (COACH_CANCEL, True, "forfeit", 50, CREDIT, BACK, 0),
    (COACH_CANCEL, True, "forfeit", 50, MONEY, KEPT, 100),
    (COACH_CANCEL, True, "fee", 50, MONEY, KEPT, 100),
    (DECLINED, False, "forfeit", 50, CREDIT, BACK, 0),
    (DECLINED, True, "fee", 30, MONEY, KEPT, 100),
    (EXPIRED, False, "forfeit", 50, CREDIT, BACK, 0),
    (EXPIRED, True, "forfeit", 50, MONEY, KEPT, 100),
    # The athlete, in good time: everything back.
    (ATHLETE_CANCEL, False, "forfeit", 50, CREDIT, BACK, 0),
    (ATHLETE_CANCEL, False, "forfeit", 50, MONEY, KEPT, 100),
    (ATHLETE_CANCEL, False, "fee", 50, MONEY, KEPT, 100),
    # The athlete, late: as the offering says.
    (ATHLETE_CANCEL, True, "forfeit", 50, CREDIT, KEPT, 0),
    (ATHLETE_CANCEL, True, "forfeit", 50, MONEY, KEPT, 0),
    (ATHLETE_CANCEL, True, "fee", 30, MONEY, KEPT, 70),
    (ATHLETE_CANCEL, True, "fee", 100, MONEY, KEPT, 0),
    (ATHLETE_CANCEL, True, "fee", 30, CREDIT, KEPT, 0),  # a credit cannot be split: a fee keeps it
    (ATHLETE_CANCEL, True, "fee", 0, CREDIT, BACK, 0),
    (ATHLETE_CANCEL, True, "fee", 0, MONEY, KEPT, 100),
    (ATHLETE_CANCEL, True, "refund", 50, CREDIT, BACK, 0),
    (ATHLETE_CANCEL, True, "refund", 50, MONEY, KEPT, 100),
    # Not showing up costs like a late cancellation.
    (NO_SHOW, False, "forfeit", 50, CREDIT, KEPT, 0),
    (NO_SHOW, False, "forfeit", 50, MONEY, KEPT, 0),
    (NO_SHOW, False, "fee", 25, MONEY, KEPT, 75),
    (NO_SHOW, False, "fee", 25, CREDIT, KEPT, 0),
    (NO_SHOW, False, "refund", 50, CREDIT, BACK, 0),
    (NO_SHOW, False, "refund", 50, MONEY, KEPT, 100),
    # A free booking has nothing to give back.
    (COACH_CANCEL, False, "forfeit", 50, FREE, KEPT, 0),
    (ATHLETE_CANCEL, True, "refund", 50, FREE, KEPT, 0),
]


@pytest.mark.parametrize(("cause", "late", "late_policy", "fee", "paid_by", "credit_back", "refund"), TABLE)
def test_the_policy_table(cause, late, late_policy, fee, paid_by, credit_back, refund):
    assert policy.decide(cause, late, late_policy, fee, paid_by) == Outcome(credit_back, refund)


def test_an_unknown_cause_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown cause"):
        policy.decide("weather", False, "forfeit", 50, MONEY)


def test_the_outcome_reads_as_a_sentence():
    assert Outcome(True, 0).summary == "The credit goes back to the pack."
    assert Outcome(False, 100).summary == "Everything paid is refunded."
    assert Outcome(False, 70).summary == "70 % of the price is refunded."
    assert Outcome(False, 0).summary == "Nothing is given back."


# --- the inputs read from a real booking ---------------------------------------------------------------------

@pytest.fixture()
def world(ctx, money_side, quiet):  # noqa: F811 - the imported fixture
    """The background worker stands still: each test delivers the events it means to."""
    return PackWorld()


def test_a_booking_paid_with_a_credit_and_cancelled_late_by_the_athlete_forfeits_it(world):
    grant = world.pack(credits_count=2)
    tenancy.activate(world.org.id)
    soon = [s for s in world.slots(40, days_ahead=0) if s > clock.now() + timedelta(hours=3)][0]
    booking = credits.book_with_credit(world.offering, world.athlete, soon, "", world.athlete, grant.id)
    db.session.commit()
    assert policy.paid_by(booking) == CREDIT
    assert policy.outcome(ATHLETE_CANCEL, booking) == Outcome(False, 0)  # confirmed, inside 24 hours
    service.transition(booking, "cancel", world.athlete)
    db.session.commit()
    assert booking.late_cancellation and policy.cause_of(booking, "cancelled") == ATHLETE_CANCEL
    assert policy.outcome(ATHLETE_CANCEL, booking) == Outcome(False, 0)


def test_a_cancellation_by_the_coach_or_an_admin_is_the_coachs(world):
    grant = world.pack(credits_count=2)
    first, second = world.slots(2, days_ahead=3)
    tenancy.activate(world.org.id)
    one = credits.book_with_credit(world.offering, world.athlete, first, "", world.athlete, grant.id)
    two = credits.book_with_credit(world.offering, world.athlete, second, "", world.athlete, grant.id)
    db.session.commit()
    service.transition(one, "cancel", world.coach)
    service.transition(two, "cancel", world.scheduler)
    db.session.commit()
    assert policy.cause_of(one, "cancelled") == policy.cause_of(two, "cancelled") == COACH_CANCEL
    assert policy.outcome(COACH_CANCEL, one) == Outcome(True, 0)


def test_a_free_booking_is_paid_by_nothing(world):
    tenancy.activate(world.org.id)
    booking = service.request_booking(world.offering, world.athlete, world.slots(1)[0], "", world.athlete)
    db.session.commit()
    assert policy.paid_by(booking) == FREE
    assert policy.outcome(COACH_CANCEL, booking) == Outcome(False, 0)
