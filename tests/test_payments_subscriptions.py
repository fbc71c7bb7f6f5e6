"""Subscriptions through the (fake) provider: the first payment activates the plan (credits of the period, the
plan's space), renewals grant the next period, a failed renewal is past due until the grace period ends and
then access ends, cancel at period end and resume, events in any order; the books balanced after each."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from coach import clock, tenancy
from coach.errors import DomainError
from coach.extensions import db
from coach.orgs.models import ATHLETE
from coach.payments import checkout, subscriptions
from coach.payments.models import (CreditGrant, Payment, PaymentEvent, Product, ProductSpace, Subscription,
                                   SubscriptionSpaceGrant)
from coach.payments.settings import billing_settings
from coach.spaces import service as spaces
from tests.booking_support import BookingWorld
from tests.factories import add_member, make_user
from tests.payments_support import assert_books_balance


@pytest.fixture()
def world(ctx, app, fake_stripe, quiet):
    w = BookingWorld(price_minor=5000, currency="EUR")
    tenancy.activate(w.org.id)
    billing_settings(w.org.id).grace_days = 3
    w.space = spaces.create_space(w.org, w.coach, "Members' corner", "", "private")
    w.plan = Product(tenant_id=w.org.id, coach_membership_id=w.coach.id, kind="plan", title="Monthly",
                     price_minor=3000, currency="EUR", credits=2, interval="month")
    db.session.add(w.plan)
    db.session.flush()
    db.session.add(ProductSpace(tenant_id=w.org.id, product_id=w.plan.id, space_id=w.space.id))
    db.session.commit()
    fake_stripe.deliver_to_app(app)
    w.fake, w.runner = fake_stripe, quiet
    return w


def settle(w):
    w.runner.drain()
    tenancy.activate(w.org.id)
    db.session.expire_all()


def told(w, member) -> list[str]:
    """The titles of the member's payment notices (the worker's notifications consumers ran in settle)."""
    from coach.notifications.models import Notification

    tenancy.activate(w.org.id)
    return list(db.session.scalars(select(Notification.title).where(
        Notification.membership_id == member.id, Notification.kind == "payment_problem")))


def subscribe(w, athlete=None):
    athlete = athlete or w.athlete
    payment, url = checkout.start_product_checkout(w.plan, athlete, athlete)
    db.session.commit()
    session = w.fake.pay(re.search(r"(cs_[A-Za-z0-9_]+)", url).group(1))
    settle(w)
    return db.session.get(Payment, payment.id), session


def in_space(w, athlete) -> bool:
    return spaces.space_membership(w.space, athlete) is not None


def grants(sub) -> list[CreditGrant]:
    return db.session.scalars(select(CreditGrant).where(CreditGrant.subscription_id == sub.id)
                              .order_by(CreditGrant.created_at)).all()


def test_the_first_payment_activates_the_plan_with_its_credits_and_space(world):
    w = world
    payment, session = subscribe(w)
    sub = db.session.get(Subscription, payment.subscription_id)
    assert payment.status == "paid" and sub.status == "active"
    assert sub.provider_subscription_id == session["subscription"]
    assert sub.current_period_end > clock.now() + timedelta(days=27)
    assert [g.credits_total for g in grants(sub)] == [2]
    assert in_space(w, w.athlete)
    assert db.session.scalar(select(SubscriptionSpaceGrant.added_member).where(
        SubscriptionSpaceGrant.subscription_id == sub.id)) is True
    # One payment for the first period, however many events named it.
    assert db.session.scalar(select(func.count()).select_from(Payment).where(Payment.subscription_id == sub.id)) == 1
    with pytest.raises(DomainError, match="already subscribe"):
        checkout.start_product_checkout(w.plan, w.athlete, w.athlete)
    db.session.rollback()
    assert_books_balance(w.org.id)


def test_a_renewal_pays_and_grants_the_next_period(world):
    w = world
    payment, session = subscribe(w)
    sub = db.session.get(Subscription, payment.subscription_id)
    first_end = sub.current_period_end
    w.fake.renew(session["subscription"])
    settle(w)
    sub = db.session.get(Subscription, sub.id)
    assert sub.status == "active" and sub.current_period_end > first_end + timedelta(days=27)
    paid = db.session.scalars(select(Payment).where(Payment.subscription_id == sub.id,
                                                    Payment.status == "paid")).all()
    assert len(paid) == 2 and all(p.amount_minor == 3000 for p in paid)
    assert len(grants(sub)) == 2
    # The renewal's events delivered again change nothing.
    for event in w.fake.events("invoice.paid"):
        w.fake.resend(event["id"])
    settle(w)
    assert len(grants(sub)) == 2
    assert_books_balance(w.org.id)


def test_a_failed_renewal_keeps_access_for_the_grace_period_then_ends_it(world):
    w = world
    payment, session = subscribe(w)
    sub = db.session.get(Subscription, payment.subscription_id)
    w.fake.renew(session["subscription"], outcome="failed")
    settle(w)
    sub = db.session.get(Subscription, sub.id)
    assert sub.status == "past_due" and in_space(w, w.athlete)
    assert abs((sub.grace_until - clock.now()) - timedelta(days=3)) < timedelta(minutes=5)
    assert any("failed: access continues until" in t for t in told(w, w.athlete))
    assert subscriptions.end_due(w.org.id, clock.now()) == 0  # still within grace
    assert w.org.id not in subscriptions.due_tenants()
    assert w.org.id in subscriptions.due_tenants(sub.grace_until + timedelta(seconds=1))
    assert subscriptions.end_due(w.org.id, sub.grace_until + timedelta(seconds=1)) == 1
    db.session.commit()
    settle(w)
    sub = db.session.get(Subscription, sub.id)
    assert sub.status == "ended" and sub.ended_at is not None
    assert not in_space(w, w.athlete)
    assert "Monthly has ended" in told(w, w.athlete)
    assert w.fake.object(session["subscription"])["status"] == "canceled"
    assert_books_balance(w.org.id)


def test_a_paid_retry_during_grace_makes_it_active_again(world):
    w = world
    payment, session = subscribe(w)
    w.fake.renew(session["subscription"], outcome="failed")
    settle(w)
    w.fake.renew(session["subscription"], outcome="paid")
    settle(w)
    sub = db.session.get(Subscription, payment.subscription_id)
    assert sub.status == "active" and sub.grace_until is None and in_space(w, w.athlete)
    assert "Monthly is paid and active again" in told(w, w.athlete)
    assert_books_balance(w.org.id)


def test_cancel_at_period_end_resume_and_the_end(world):
    w = world
    outsider = add_member(w.org, make_user("not-the-subscriber@example.com"), ATHLETE)
    payment, session = subscribe(w)
    sub = db.session.get(Subscription, payment.subscription_id)
    with pytest.raises(DomainError, match="Only the subscriber"):
        subscriptions.cancel_at_period_end(sub, outsider)
    db.session.rollback()
    sub = db.session.get(Subscription, payment.subscription_id)
    subscriptions.cancel_at_period_end(sub, db.session.get(type(w.athlete), w.athlete.id))
    db.session.commit()
    assert w.fake.object(session["subscription"])["cancel_at_period_end"] is True
    subscriptions.resume(sub, db.session.get(type(w.athlete), w.athlete.id))
    db.session.commit()
    assert w.fake.object(session["subscription"])["cancel_at_period_end"] is False
    with pytest.raises(DomainError, match="nothing to resume"):
        subscriptions.resume(sub, db.session.get(type(w.athlete), w.athlete.id))
    db.session.rollback()
    subscriptions.cancel_at_period_end(db.session.get(Subscription, sub.id),
                                       db.session.get(type(w.athlete), w.athlete.id))
    db.session.commit()
    settle(w)
    assert db.session.get(Subscription, sub.id).cancel_at_period_end is True
    w.fake.renew(session["subscription"])  # the period ends: no renewal, the provider deletes it
    settle(w)
    sub = db.session.get(Subscription, sub.id)
    assert sub.status == "ended" and not in_space(w, w.athlete) and len(grants(sub)) == 1
    assert_books_balance(w.org.id)


def test_a_member_of_the_space_before_stays_after_the_end(world):
    w = world
    spaces._add(w.space, w.athlete, "member")
    db.session.commit()
    payment, session = subscribe(w)
    sub = db.session.get(Subscription, payment.subscription_id)
    assert db.session.scalar(select(SubscriptionSpaceGrant.added_member).where(
        SubscriptionSpaceGrant.subscription_id == sub.id)) is False
    subscriptions.end(sub, "test")
    db.session.commit()
    assert in_space(w, w.athlete)


def test_the_first_invoice_before_the_checkout_completion(world, client):
    w = world
    w.fake.deliver_to(None)
    payment, url = checkout.start_product_checkout(w.plan, w.athlete, w.athlete)
    db.session.commit()
    w.fake.pay(re.search(r"(cs_[A-Za-z0-9_]+)", url).group(1))
    events = w.fake.events()
    invoice = [e for e in events if e["type"] == "invoice.paid"]
    rest = [e for e in events if e["type"] != "invoice.paid"]
    for event in invoice + rest[::-1]:
        assert w.fake.post_event(client, event).status_code == 200
    settle(w)
    payment = db.session.get(Payment, payment.id)
    sub = db.session.get(Subscription, payment.subscription_id)
    assert payment.status == "paid" and sub.status == "active" and len(grants(sub)) == 1
    assert payment.provider_invoice_id == invoice[0]["data"]["object"]["id"]
    assert db.session.scalar(select(func.count()).select_from(Payment).where(Payment.subscription_id == sub.id)) == 1
    assert all(e.processed_at is not None for e in db.session.scalars(select(PaymentEvent)))
    assert_books_balance(w.org.id)


def test_an_abandoned_plan_checkout_never_starts(world):
    w = world
    other = add_member(w.org, make_user("late@example.com"), ATHLETE)
    payment, url = checkout.start_product_checkout(w.plan, other, other)
    db.session.commit()
    assert checkout.expire_due(w.org.id, payment.expires_at + timedelta(seconds=1)) == 1
    db.session.commit()
    sub = db.session.get(Subscription, payment.subscription_id)
    assert sub.status == "ended" and not in_space(w, other)


def test_a_plan_paid_by_hand_ends_with_its_period(world):
    w = world
    payment = checkout.record_manual_payment(athlete=w.athlete, actor=w.coach, reference="Bank transfer 7",
                                             product=w.plan)
    db.session.commit()
    sub = db.session.get(Subscription, payment.subscription_id)
    assert sub.status == "active" and sub.provider_subscription_id is None and in_space(w, w.athlete)
    assert subscriptions.end_due(w.org.id, sub.current_period_end + timedelta(seconds=1)) == 1
    db.session.commit()
    assert db.session.get(Subscription, sub.id).status == "ended" and not in_space(w, w.athlete)
    assert_books_balance(w.org.id)
