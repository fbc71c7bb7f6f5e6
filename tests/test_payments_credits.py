"""Credits: granted once per paid pack, spent once per booking (never twice, whatever the concurrency), given
back once, lapsing at expiry or when withdrawn; every movement in the ledger, the books balanced after each."""
from __future__ import annotations

import threading
import uuid
from datetime import timedelta, timezone

import pytest
from sqlalchemy import func, select

from coach import clock, money, tenancy
from coach.booking import service
from coach.booking.models import Booking
from coach.extensions import db
from coach.orgs.models import ATHLETE
from coach.payments import credits, earnings, ledger
from coach.payments.models import CREDIT, CreditGrant, CreditUse, Earning, Payment, Product, ProductOffering
from coach.payments.settings import billing_settings
from tests.booking_support import BookingWorld, make_offering
from tests.factories import add_member, make_user
from tests.payments_support import assert_books_balance

UTC = timezone.utc


# --- the money side until coach.payments.earnings has it (H3) ---------------------------------------------

def _accrue(booking, gross_minor, currency, *, source, key, payment_id=None, grant_id=None):
    settings = billing_settings(booking.tenant_id)
    commission = money.share(gross_minor, settings.commission_bps)
    txn, created = ledger.post(booking.tenant_id, "session.earned", key, [
        ledger.line(source[0], gross_minor, currency, source[1]),
        ledger.line("coach_pending", -(gross_minor - commission), currency, booking.coach_membership_id),
        ledger.line("org_commission", -commission, currency)], booking_id=booking.id)
    if created:
        db.session.add(Earning(tenant_id=booking.tenant_id, booking_id=booking.id,
                               coach_membership_id=booking.coach_membership_id, payment_id=payment_id,
                               grant_id=grant_id, gross_minor=gross_minor, commission_minor=commission,
                               net_minor=gross_minor - commission, currency=currency, status="pending",
                               available_at=booking.ends_at + timedelta(hours=48)))
        db.session.flush()
    return db.session.scalar(select(Earning).where(Earning.booking_id == booking.id))


def _reverse(booking, amount_minor=None, *, destination, key):
    earning = db.session.scalar(select(Earning).where(Earning.booking_id == booking.id))
    if earning is None or earning.status != "pending":
        return 0
    _, created = ledger.post(booking.tenant_id, "session.unearned", key, [
        ledger.line(destination[0], -earning.gross_minor, earning.currency, destination[1]),
        ledger.line("coach_pending", earning.net_minor, earning.currency, earning.coach_membership_id),
        ledger.line("org_commission", earning.commission_minor, earning.currency)], booking_id=booking.id)
    if created:
        earning.status, earning.reversed_minor = "reversed", earning.net_minor
        db.session.flush()
    return earning.gross_minor if created else 0


@pytest.fixture()
def money_side(monkeypatch):
    """H3's ``earnings.accrue``/``reverse`` when they exist; until then, stand-ins posting the same lines."""
    if not hasattr(earnings, "accrue"):
        monkeypatch.setattr(earnings, "accrue", _accrue, raising=False)
    if not hasattr(earnings, "reverse"):
        monkeypatch.setattr(earnings, "reverse", _reverse, raising=False)


# --- the world: a coach, an athlete, an offering, a paid pack ---------------------------------------------

class PackWorld(BookingWorld):
    def __init__(self):
        super().__init__(auto_confirm=True, price_minor=5000)
        tenancy.activate(self.org.id)
        billing_settings(self.org.id)
        db.session.commit()

    def pack(self, credits_count=3, price=12000, validity_days=90, weekly_limit=None, offering=None, athlete=None,
             paid_at=None) -> CreditGrant:
        """A pack bought and paid by card (the payment's row as the checkout leaves it), and its grant."""
        tenancy.activate(self.org.id)
        product = Product(tenant_id=self.org.id, coach_membership_id=self.coach.id, kind="pack",
                          title=f"{credits_count}-pack", price_minor=price, currency="EUR", credits=credits_count,
                          validity_days=validity_days, weekly_limit=weekly_limit)
        db.session.add(product)
        db.session.flush()
        db.session.add(ProductOffering(tenant_id=self.org.id, product_id=product.id,
                                       offering_id=(offering or self.offering).id))
        payment = Payment(tenant_id=self.org.id, athlete_membership_id=(athlete or self.athlete).id,
                          coach_membership_id=self.coach.id, purpose="pack", product_id=product.id,
                          amount_minor=price, currency="EUR", method="card", status="paid",
                          paid_at=paid_at or clock.now())
        db.session.add(payment)
        db.session.flush()
        grant = credits.grant_for_payment(payment)
        db.session.commit()
        return grant

    def slots(self, n, days_ahead=2):
        tenancy.activate(self.org.id)
        found = []
        day = days_ahead
        while len(found) < n:
            start = clock.now().replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=day)
            found += [s.starts_at for s in service.available_slots(self.offering, start, start + timedelta(days=1))]
            day += 1
        return found[:n]


@pytest.fixture()
def world(ctx, money_side):
    return PackWorld()


def spend(world, grant, starts_at, athlete=None):
    tenancy.activate(world.org.id)
    athlete = athlete or world.athlete
    booking = credits.book_with_credit(world.offering, athlete, starts_at, "", athlete, grant.id)
    db.session.commit()
    return booking


def remaining(grant) -> int:
    return db.session.scalar(select(CreditGrant.credits_remaining).where(CreditGrant.id == grant.id))


# --- granting ----------------------------------------------------------------------------------------------

def test_a_paid_pack_grants_its_credits_once_however_often_the_payment_is_reported(world):
    grant = world.pack(credits_count=5, price=20000)
    payment = db.session.get(Payment, grant.payment_id)
    again = credits.grant_for_payment(payment)
    db.session.commit()
    assert again.id == grant.id and grant.credits_remaining == 5 and grant.credits_total == 5
    assert db.session.scalar(select(func.count()).select_from(CreditGrant).where(
        CreditGrant.payment_id == payment.id)) == 1
    assert ledger.balance(world.org.id, "credits_outstanding", CREDIT, grant.id) == -5
    assert ledger.balance(world.org.id, "athlete_prepaid", "EUR", grant.id) == -20000
    assert grant.expires_at == payment.paid_at + timedelta(days=90)
    assert_books_balance(world.org.id)


# --- spending ----------------------------------------------------------------------------------------------

def test_booking_with_a_credit_takes_one_and_earns_the_coach_its_value(world):
    grant = world.pack(credits_count=3, price=10000)
    first, second = world.slots(2)
    booking = spend(world, grant, first)
    assert booking.status == "confirmed" and remaining(grant) == 2
    paid = credits.credit_for_booking(booking)
    assert paid is not None and paid[0].id == grant.id and paid[1] == 2
    # 10000 over 3 credits: 3333, 3333, 3334 (the last takes the remainder), so a spent pack earns all paid.
    assert db.session.scalar(select(Earning.gross_minor).where(Earning.booking_id == booking.id)) == 3333
    spend(world, grant, second)
    assert remaining(grant) == 1
    assert ledger.balance(world.org.id, "athlete_prepaid", "EUR", grant.id) == -3334
    assert_books_balance(world.org.id)


def test_twenty_concurrent_bookings_against_a_three_credit_pack_spend_exactly_three(world, app):
    grant = world.pack(credits_count=3, price=9000)
    times = world.slots(20)
    barrier = threading.Barrier(20)
    results: list = [None] * 20

    def run(i):
        with app.app_context():
            tenancy.activate(world.org.id)
            try:
                # Lined up before taking a connection: the pool has fewer than twenty (the rest queue there).
                barrier.wait(timeout=10)
                offering = service.get_offering(world.org, str(world.offering.id))
                athlete = service.get_athlete(world.org, str(world.athlete.id))
                results[i] = credits.book_with_credit(offering, athlete, times[i], "", athlete, str(grant.id)).id
                db.session.commit()
            except Exception as exc:  # the outcome under test
                db.session.rollback()
                results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    booked = [r for r in results if isinstance(r, uuid.UUID)]
    refused = [r for r in results if not isinstance(r, uuid.UUID)]
    assert len(booked) == 3, results
    assert all(isinstance(r, credits.NoCreditsLeft) for r in refused), refused
    tenancy.activate(world.org.id)
    assert remaining(grant) == 0
    assert db.session.scalar(select(func.count()).select_from(CreditUse).where(CreditUse.grant_id == grant.id)) == 3
    assert db.session.scalar(select(func.count()).select_from(Booking).where(
        Booking.athlete_membership_id == world.athlete.id)) == 3
    assert ledger.balance(world.org.id, "credits_outstanding", CREDIT, grant.id) == 0
    assert ledger.balance(world.org.id, "athlete_prepaid", "EUR", grant.id) == 0
    assert_books_balance(world.org.id)


def test_a_pack_that_does_not_cover_the_offering_is_refused_and_nothing_is_written(world):
    other = make_offering(world.coach, title="Video review")
    grant = world.pack(credits_count=2, offering=other)
    start = world.slots(1)[0]
    tenancy.activate(world.org.id)
    with pytest.raises(credits.CreditError, match="does not cover Technique session"):
        credits.book_with_credit(world.offering, world.athlete, start, "", world.athlete, grant.id)
    db.session.rollback()
    assert remaining(grant) == 2 and credits.usable_grants(world.athlete, world.offering, start) == []


def test_another_athletes_or_organizations_pack_reads_as_not_found(world):
    mine = world.pack(credits_count=2)
    someone = add_member(world.org, make_user(name="Other Athlete"), ATHLETE)
    other_world = PackWorld()
    theirs = other_world.pack(credits_count=2)
    theirs_id = theirs.id
    start = world.slots(1)[0]
    tenancy.activate(world.org.id)
    for grant_id in (theirs_id, str(uuid.uuid4()), "not-an-id"):
        with pytest.raises(credits.GrantNotFound) as refused:
            credits.book_with_credit(world.offering, world.athlete, start, "", world.athlete, grant_id)
        assert refused.value.status == 404
        db.session.rollback()
    tenancy.activate(world.org.id)
    mine_id = mine.id
    with pytest.raises(credits.GrantNotFound):
        credits.book_with_credit(world.offering, someone, start, "", someone, mine_id)
    db.session.rollback()
    # And the other organization sees none of this one's grants.
    tenancy.activate(other_world.org.id)
    assert db.session.get(CreditGrant, mine_id) is None
    assert {g.id for g in db.session.scalars(select(CreditGrant))} == {theirs_id}
    tenancy.activate(world.org.id)
    assert remaining(mine) == 2


def test_a_taken_slot_leaves_the_credit_where_it_was(world):
    grant = world.pack(credits_count=2)
    start = world.slots(1)[0]
    rival = add_member(world.org, make_user(name="Rival"), ATHLETE)
    tenancy.activate(world.org.id)
    service.request_booking(world.offering, rival, start, "", rival)
    db.session.commit()
    tenancy.activate(world.org.id)
    with pytest.raises(service.SlotTaken):
        credits.book_with_credit(world.offering, world.athlete, start, "", world.athlete, grant.id)
    db.session.rollback()
    tenancy.activate(world.org.id)
    assert remaining(grant) == 2
    assert not db.session.scalar(select(func.count()).select_from(CreditUse))
    assert_books_balance(world.org.id)


def test_the_weekly_limit_counts_the_sessions_week_on_the_coachs_calendar(world):
    grant = world.pack(credits_count=5, weekly_limit=1)
    tenancy.activate(world.org.id)
    times = world.slots(70)
    week_of = {t: credits.week_start(world.offering, t) for t in times}
    first = times[0]
    same_week = next(t for t in times[1:] if week_of[t] == week_of[first])
    next_week = next(t for t in times if week_of[t] > week_of[first])
    spend(world, grant, first)
    assert credits.usable_grants(world.athlete, world.offering, same_week) == []
    tenancy.activate(world.org.id)
    with pytest.raises(credits.CreditError, match="at most 1 session a week"):
        credits.book_with_credit(world.offering, world.athlete, same_week, "", world.athlete, grant.id)
    db.session.rollback()
    spend(world, grant, next_week)
    assert remaining(grant) == 3
    assert_books_balance(world.org.id)


def test_an_expired_pack_cannot_pay_and_is_not_offered(world):
    grant = world.pack(credits_count=2, validity_days=1, paid_at=clock.now() - timedelta(days=2))
    start = world.slots(1)[0]
    tenancy.activate(world.org.id)
    assert credits.usable_grants(world.athlete, world.offering, start) == []
    with pytest.raises(credits.NoCreditsLeft, match="expires before this session"):
        credits.book_with_credit(world.offering, world.athlete, start, "", world.athlete, grant.id)
    db.session.rollback()


def test_usable_grants_lists_the_soonest_to_expire_first(world):
    later = world.pack(credits_count=2, validity_days=60)
    sooner = world.pack(credits_count=2, validity_days=30)
    tenancy.activate(world.org.id)
    start = world.slots(1)[0]
    assert [g.id for g in credits.usable_grants(world.athlete, world.offering, start)] == [sooner.id, later.id]


# --- giving back, expiry, revocation -------------------------------------------------------------------------

def test_a_credit_is_given_back_once_with_its_money(world):
    grant = world.pack(credits_count=2, price=8000)
    booking = spend(world, grant, world.slots(1)[0])
    tenancy.activate(world.org.id)
    assert credits.return_credit(booking) is True
    assert credits.return_credit(booking) is False
    db.session.commit()
    assert remaining(grant) == 2 and credits.credit_for_booking(booking) is None
    assert ledger.balance(world.org.id, "athlete_prepaid", "EUR", grant.id) == -8000
    assert ledger.balance(world.org.id, "coach_pending", "EUR", world.coach.id) == 0
    assert_books_balance(world.org.id)


def test_expired_credits_lapse_once_and_their_money_goes_to_the_organization(world):
    grant = world.pack(credits_count=4, price=8000)
    spend(world, grant, world.slots(1)[0])
    later = clock.now() + timedelta(days=91)
    tenancy.activate(world.org.id)
    assert credits.expire_due(world.org.id, now=later) == 1
    assert credits.expire_due(world.org.id, now=later) == 0
    db.session.commit()
    assert remaining(grant) == 0
    assert ledger.balance(world.org.id, "athlete_prepaid", "EUR", grant.id) == 0
    # Breakage: the three unused credits' 6000; the spent one's commission (10 % of 2000) besides.
    assert ledger.balance(world.org.id, "org_commission", "EUR") == -6000 - 200
    assert_books_balance(world.org.id)


def test_the_expiry_sweep_visits_each_organization(world):
    grant = world.pack(credits_count=2, validity_days=1, paid_at=clock.now() - timedelta(days=2))
    assert credits.sweep_expired() >= 1
    tenancy.activate(world.org.id)
    assert remaining(grant) == 0
    assert_books_balance(world.org.id)


def test_a_revoked_pack_keeps_its_booked_sessions_and_loses_the_rest(world):
    grant = world.pack(credits_count=3, price=9000)
    booking = spend(world, grant, world.slots(1)[0])
    tenancy.activate(world.org.id)
    assert credits.revoke(grant, "refunded", world.coach) == 2
    assert credits.revoke(grant, "refunded", world.coach) == 0
    db.session.commit()
    assert remaining(grant) == 0 and db.session.get(Booking, booking.id).status == "confirmed"
    assert credits.usable_grants(world.athlete, world.offering, world.slots(1)[0]) == []
    # A credit given back to a withdrawn pack lapses at once.
    tenancy.activate(world.org.id)
    assert credits.return_credit(booking) is True
    db.session.commit()
    assert remaining(grant) == 0
    assert ledger.balance(world.org.id, "athlete_prepaid", "EUR", grant.id) == 0
    assert_books_balance(world.org.id)


def test_a_rescheduled_credit_booking_keeps_its_credit(world):
    grant = world.pack(credits_count=2)
    first, second = world.slots(2)
    booking = spend(world, grant, first)
    tenancy.activate(world.org.id)
    moved = service.reschedule_booking(booking, second, world.athlete)
    assert credits.carry_over(booking, moved, world.athlete) is True
    db.session.commit()
    assert remaining(grant) == 1
    assert credits.credit_for_booking(moved)[0].id == grant.id and credits.credit_for_booking(booking) is None
    assert_books_balance(world.org.id)


# --- plans ---------------------------------------------------------------------------------------------------

def test_a_plans_periods_grant_credits_and_rollover_keeps_the_unused_ones(world):
    from coach.payments.models import Subscription

    tenancy.activate(world.org.id)
    plan = Product(tenant_id=world.org.id, coach_membership_id=world.coach.id, kind="plan", title="Monthly",
                   price_minor=6000, currency="EUR", credits=2, interval="month", rollover=True)
    db.session.add(plan)
    db.session.flush()
    db.session.add(ProductOffering(tenant_id=world.org.id, product_id=plan.id, offering_id=world.offering.id))
    now = clock.now()
    sub = Subscription(tenant_id=world.org.id, athlete_membership_id=world.athlete.id, product_id=plan.id,
                       status="active", current_period_start=now, current_period_end=now + timedelta(days=30))
    db.session.add(sub)
    db.session.flush()
    grants = []
    for n, start in enumerate((now, now + timedelta(days=30))):
        payment = Payment(tenant_id=world.org.id, athlete_membership_id=world.athlete.id, purpose="plan",
                          product_id=plan.id, subscription_id=sub.id, amount_minor=6000, currency="EUR",
                          method="card", status="paid", paid_at=start, provider_invoice_id=f"in_{uuid.uuid4().hex}")
        db.session.add(payment)
        db.session.flush()
        grants.append(credits.grant_for_period(sub, payment, start, start + timedelta(days=30)))
    db.session.commit()
    first, second = grants
    assert first.expires_at == second.expires_at == now + timedelta(days=60)
    assert first.credits_remaining == second.credits_remaining == 2
    assert_books_balance(world.org.id)
