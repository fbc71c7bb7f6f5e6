"""Checkout: a session, a pack or a plan paid through the (fake) provider's checkout, the webhook applying it
(not the return URL), the return page, a checkout left or declined, a hold that expired before the money came,
amounts that do not match, manual payments; the books balanced after each."""
from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from coach import tenancy
from coach.booking import lifecycle
from coach.booking.models import Booking
from coach.errors import DomainError
from coach.extensions import db
from coach.orgs.models import ATHLETE, COACH
from coach.payments import checkout, ledger
from coach.payments.models import CreditGrant, Payment, PaymentEvent, Product
from tests.booking_support import BookingWorld
from tests.factories import PASSWORD, add_member, make_user
from tests.payments_support import assert_books_balance


@pytest.fixture()
def world(ctx, app, fake_stripe, quiet):
    """An organization with a priced offering (EUR 50.00), a pack and webhooks delivered to the app; the
    background worker stands still so each test applies the provider's events itself (``settle``)."""
    w = BookingWorld(price_minor=5000, currency="EUR")
    tenancy.activate(w.org.id)
    w.pack = Product(tenant_id=w.org.id, coach_membership_id=w.coach.id, kind="pack", title="5-pack",
                     price_minor=20000, currency="EUR", credits=5, validity_days=90)
    db.session.add(w.pack)
    db.session.commit()
    fake_stripe.deliver_to_app(app)
    w.fake, w.runner = fake_stripe, quiet
    return w


def settle(w):
    """Run the relay and the worker until every event (the provider's included) is applied."""
    w.runner.drain()
    tenancy.activate(w.org.id)
    db.session.expire_all()


def reload(obj):
    db.session.expire_all()
    return db.session.get(type(obj), obj.id)


def checkout_id_of(url: str) -> str:
    return re.search(r"(cs_[A-Za-z0-9_]+)", url).group(1)


def login(client, email):
    from tests.conftest import Auth

    assert Auth(client).login(email, PASSWORD).status_code in (302, 303)


def test_a_paid_session_is_settled_by_the_webhook_not_the_return(world, client):
    w = world
    slot = w.first_slot()
    booking, payment, url = checkout.start_session_checkout(w.offering, w.athlete, slot.starts_at, "", w.athlete)
    db.session.commit()
    assert booking.status == "held" and payment.status == "pending" and payment.amount_minor == 5000
    # The buyer came back before the provider told us anything: the page waits (and polls every 2 s).
    login(client, w.athlete.user.email)
    page = client.get(f"/o/{w.org.slug}/billing/checkout/{payment.id}").get_data(as_text=True)
    assert "Processing…" in page and 'hx-trigger="every 2s"' in page and ">Refresh</a>" in page
    # htmx's poll gets the status alone, which replaces itself.
    poll = client.get(f"/o/{w.org.slug}/billing/checkout/{payment.id}", headers={"HX-Request": "true"})
    fragment = poll.get_data(as_text=True).strip()
    assert fragment.startswith('<section id="checkout-status"') and "<html" not in fragment
    w.fake.pay(checkout_id_of(url))
    settle(w)
    payment, booking = reload(payment), reload(booking)
    assert payment.status == "paid" and payment.provider_payment_id.startswith("pi_")
    assert booking.status == "requested"
    assert ledger.balance(w.org.id, "provider_clearing", "EUR") == 5000
    page = client.get(f"/o/{w.org.slug}/billing/checkout/{payment.id}").get_data(as_text=True)
    assert "Payment received" in page and "every 2s" not in page and "€50.00" in page
    poll = client.get(f"/o/{w.org.slug}/billing/checkout/{payment.id}", headers={"HX-Request": "true"})
    assert "Payment received" in poll.get_data(as_text=True) and "hx-trigger" not in poll.get_data(as_text=True)
    event = db.session.scalar(select(PaymentEvent).where(PaymentEvent.type == "checkout.session.completed"))
    assert event.processed_at is not None and event.outcome.startswith("paid")
    assert_books_balance(w.org.id)


def test_an_auto_confirm_offering_is_confirmed_once_paid(ctx, app, fake_stripe, quiet):
    w = BookingWorld(price_minor=7000, currency="EUR", auto_confirm=True)
    fake_stripe.deliver_to_app(app)
    w.fake, w.runner = fake_stripe, quiet
    booking, payment, url = checkout.start_session_checkout(w.offering, w.athlete, w.first_slot().starts_at, "",
                                                            w.athlete)
    db.session.commit()
    w.fake.pay(checkout_id_of(url))
    settle(w)
    assert reload(booking).status == "confirmed" and reload(payment).status == "paid"
    assert_books_balance(w.org.id)


def test_the_time_is_held_and_nobody_else_can_take_it(world):
    w = world
    slot = w.first_slot()
    checkout.start_session_checkout(w.offering, w.athlete, slot.starts_at, "", w.athlete)
    db.session.commit()
    other = add_member(w.org, make_user("other-athlete@example.com"), ATHLETE)
    with pytest.raises(DomainError, match="taken"):
        checkout.start_session_checkout(w.offering, other, slot.starts_at, "", other)
    db.session.rollback()


def test_money_for_a_hold_that_expired_goes_back_in_full(world, client):
    w = world
    booking, payment, url = checkout.start_session_checkout(w.offering, w.athlete, w.first_slot().starts_at, "",
                                                            w.athlete)
    db.session.commit()
    # The provider's page stays open; the hold runs out first (the sweep's doing, here by hand) ...
    w.fake.deliver_to(None)
    session = w.fake.pay(checkout_id_of(url))
    completed = w.fake.events("checkout.session.completed")[0]
    tenancy.activate(w.org.id)
    lifecycle.transition(db.session.get(Booking, booking.id), "expire", None)
    db.session.commit()
    w.runner.drain()  # booking.expired: the unpaid payment expires with its hold
    tenancy.activate(w.org.id)
    assert reload(payment).status == "expired"
    # ... and then the payment arrives: recorded, and all of it refunded at the provider.
    assert w.fake.post_event(client, completed).status_code == 200
    settle(w)
    payment = reload(payment)
    assert payment.status == "paid" and payment.refunded_minor == 5000
    assert "refunded in full" in payment.failure_reason
    refunds = [o for o in w.fake.store.objects.values()
               if o.get("object") == "refund" and o.get("payment_intent") == session["payment_intent"]]
    assert sum(r["amount"] for r in refunds) == 5000
    assert reload(booking).status == "expired"
    login(client, w.athlete.user.email)
    page = client.get(f"/o/{w.org.slug}/billing/checkout/{payment.id}").get_data(as_text=True)
    assert "Payment refunded" in page and "refunded in full" in page
    assert_books_balance(w.org.id)


def test_an_amount_that_does_not_match_is_refused_and_sent_back(world, client):
    w = world
    payment, url = checkout.start_product_checkout(w.pack, w.athlete, w.athlete)
    db.session.commit()
    w.fake.deliver_to(None)
    session = w.fake.pay(checkout_id_of(url))
    event = w.fake.events("checkout.session.completed")[0]
    event["id"] = event["id"] + "_tampered"
    event["data"]["object"]["amount_total"] = 100  # not what we asked for
    assert w.fake.post_event(client, event).status_code == 200
    settle(w)
    payment = reload(payment)
    assert payment.status == "failed" and "not €200.00" in payment.failure_reason
    assert db.session.scalar(select(CreditGrant).where(CreditGrant.payment_id == payment.id)) is None
    refunds = [o for o in w.fake.store.objects.values()
               if o.get("object") == "refund" and o.get("payment_intent") == session["payment_intent"]]
    assert [r["amount"] for r in refunds] == [100]
    assert ledger.balance(w.org.id, "provider_clearing", "EUR") == 0
    # The sweep leaves the refusal as it is (its reason is what the buyer must read).
    assert checkout.expire_due(w.org.id, payment.created_at + timedelta(days=2)) == 0
    login(client, w.athlete.user.email)
    page = client.get(f"/o/{w.org.slug}/billing/checkout/{payment.id}").get_data(as_text=True)
    assert "Payment failed" in page and "money sent back" in page and "Try again" not in page
    assert_books_balance(w.org.id)


def test_pay_now_resumes_an_open_checkout_only(world, client):
    w = world
    booking, payment, url = checkout.start_session_checkout(w.offering, w.athlete, w.first_slot().starts_at, "",
                                                            w.athlete)
    db.session.commit()
    login(client, w.athlete.user.email)
    answer = client.get(f"/o/{w.org.slug}/billing/checkout/{payment.id}/pay")
    assert answer.status_code == 303 and answer.headers["Location"] == url
    lifecycle.transition(db.session.get(Booking, booking.id), "expire", None)
    db.session.commit()
    settle(w)
    answer = client.get(f"/o/{w.org.slug}/billing/checkout/{payment.id}/pay")
    assert answer.status_code == 303 and answer.headers["Location"].endswith(f"/billing/checkout/{payment.id}")
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Payment expired" in page and "Choose a time again" in page


def test_a_pack_bought_through_the_buy_button(world, client):
    w = world
    login(client, w.athlete.user.email)
    page = client.get(f"/o/{w.org.slug}/billing/coaches/{w.coach.id}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    answer = client.post(f"/o/{w.org.slug}/billing/products/{w.pack.id}/buy", data={"csrf_token": token})
    assert answer.status_code == 303 and answer.headers["Location"].startswith(w.fake.url)
    tenancy.activate(w.org.id)
    payment = db.session.scalar(select(Payment).where(Payment.product_id == w.pack.id))
    assert payment.amount_minor == 20000 and payment.status == "pending"
    w.fake.pay(checkout_id_of(answer.headers["Location"]))
    settle(w)
    grant = db.session.scalar(select(CreditGrant).where(CreditGrant.payment_id == payment.id))
    assert grant.credits_remaining == 5 and reload(payment).status == "paid"
    assert_books_balance(w.org.id)


def test_another_organizations_product_or_payment_is_not_found(world, client):
    w = world
    other = BookingWorld(price_minor=5000, currency="EUR")
    tenancy.activate(other.org.id)
    theirs = Product(tenant_id=other.org.id, coach_membership_id=other.coach.id, kind="pack", title="Theirs",
                     price_minor=1000, currency="EUR", credits=1, validity_days=30)
    db.session.add(theirs)
    db.session.commit()
    theirs_id, their_slug, their_email = theirs.id, other.org.slug, other.athlete.user.email
    tenancy.activate(w.org.id)
    payment, _ = checkout.start_product_checkout(w.pack, w.athlete, w.athlete)
    db.session.commit()
    login(client, w.athlete.user.email)
    page = client.get(f"/o/{w.org.slug}/billing/coaches/{w.coach.id}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    assert client.post(f"/o/{w.org.slug}/billing/products/{theirs_id}/buy",
                       data={"csrf_token": token}).status_code == 404
    assert client.post(f"/o/{w.org.slug}/billing/products/not-a-uuid/buy",
                       data={"csrf_token": token}).status_code == 404
    # The other organization's athlete cannot see this payment's page, under their organization or ours.
    client2 = client.application.test_client()
    login(client2, their_email)
    assert client2.get(f"/o/{their_slug}/billing/checkout/{payment.id}").status_code == 404
    assert client2.get(f"/o/{w.org.slug}/billing/checkout/{payment.id}").status_code == 404


def test_a_declined_card_says_so_and_offers_to_try_again(world, client):
    w = world
    booking, payment, url = checkout.start_session_checkout(w.offering, w.athlete, w.first_slot().starts_at, "",
                                                            w.athlete)
    db.session.commit()
    w.fake.decline(checkout_id_of(url))
    settle(w)
    assert reload(payment).status == "failed" and reload(booking).status == "held"
    from coach.notifications.models import Notification

    notice = db.session.scalars(select(Notification).where(Notification.membership_id == w.athlete.id,
                                                           Notification.kind == "payment_problem")).one()
    assert notice.title == "Your payment of €50.00 did not go through"
    assert notice.url == f"/o/{w.org.slug}/billing/checkout/{payment.id}"
    login(client, w.athlete.user.email)
    page = client.get(f"/o/{w.org.slug}/billing/checkout/{payment.id}").get_data(as_text=True)
    assert "Payment failed" in page and "Try again" in page and w.fake.url in page
    # The retry on the same checkout succeeds: the money is applied all the same.
    w.fake.pay(checkout_id_of(url))
    settle(w)
    assert reload(payment).status == "paid" and reload(booking).status == "requested"
    assert_books_balance(w.org.id)


def test_leaving_the_checkout_and_giving_the_time_back(world, client):
    w = world
    booking, payment, url = checkout.start_session_checkout(w.offering, w.athlete, w.first_slot().starts_at, "",
                                                            w.athlete)
    db.session.commit()
    login(client, w.athlete.user.email)
    page = client.get(f"/o/{w.org.slug}/billing/checkout/{payment.id}/cancelled").get_data(as_text=True)
    assert "Not paid yet" in page and "Pay now" in page and "Give the time back" in page
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    answer = client.post(f"/o/{w.org.slug}/billing/checkout/{payment.id}/abandon", data={"csrf_token": token})
    assert answer.status_code == 303
    settle(w)
    assert reload(booking).status == "cancelled" and reload(payment).status == "cancelled"
    assert w.fake.session(checkout_id_of(url))["status"] == "expired"
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Payment cancelled" in page and "Choose a time again" in page


def test_an_unpaid_hold_expires_with_its_checkout(world):
    w = world
    booking, payment, url = checkout.start_session_checkout(w.offering, w.athlete, w.first_slot().starts_at, "",
                                                            w.athlete)
    db.session.commit()
    lifecycle.transition(booking, "expire", None)
    db.session.commit()
    settle(w)
    assert reload(payment).status == "expired"
    assert w.fake.session(checkout_id_of(url))["status"] == "expired"
    # The provider's own expiry event arriving afterwards changes nothing.
    settle(w)
    event = db.session.scalar(select(PaymentEvent).where(PaymentEvent.type == "checkout.session.expired"))
    assert event is None or event.outcome.startswith("no change")


def test_product_checkouts_past_their_time_are_swept(world):
    w = world
    payment, url = checkout.start_product_checkout(w.pack, w.athlete, w.athlete)
    db.session.commit()
    later = payment.expires_at + timedelta(seconds=1)
    assert w.org.id not in checkout.due_tenants() and w.org.id in checkout.due_tenants(later)
    assert checkout.expire_due(w.org.id, later) == 1
    db.session.commit()
    assert reload(payment).status == "expired"
    assert w.fake.session(checkout_id_of(url))["status"] == "expired"


def test_a_manual_payment_takes_the_same_path(world):
    w = world
    booking, payment, _ = checkout.start_session_checkout(w.offering, w.athlete, w.first_slot(3).starts_at, "",
                                                          w.athlete)
    db.session.commit()
    with pytest.raises(DomainError, match="reference"):
        checkout.record_manual_payment(athlete=w.athlete, actor=w.coach, reference=" ", booking=booking)
    db.session.rollback()
    with pytest.raises(DomainError, match="coach or an admin"):
        checkout.record_manual_payment(athlete=w.athlete, actor=w.athlete, reference="cash", booking=booking)
    db.session.rollback()
    manual = checkout.record_manual_payment(athlete=w.athlete, actor=w.coach, reference="Cash, 3 Dec",
                                            booking=db.session.get(Booking, booking.id))
    db.session.commit()
    assert manual.status == "paid" and manual.method == "manual" and manual.amount_minor == 5000
    assert reload(booking).status == "requested"
    pack = checkout.record_manual_payment(athlete=w.athlete, actor=w.coach, reference="Transfer 42",
                                          product=w.pack)
    db.session.commit()
    assert db.session.scalar(select(CreditGrant).where(CreditGrant.payment_id == pack.id)).credits_remaining == 5
    assert ledger.balance(w.org.id, "provider_clearing", "EUR") == 25000
    assert_books_balance(w.org.id)


def test_a_free_offering_or_a_foreign_athlete_cannot_be_checked_out(world):
    w = world
    free = BookingWorld(price_minor=0, currency="EUR")
    with pytest.raises(DomainError, match="free"):
        checkout.start_session_checkout(free.offering, free.athlete, free.first_slot().starts_at, "", free.athlete)
    db.session.rollback()
    tenancy.activate(w.org.id)
    coach = add_member(w.org, make_user("coach2@example.com"), COACH)
    with pytest.raises(DomainError):
        checkout.start_product_checkout(w.pack, coach, coach)
    db.session.rollback()


def test_the_stored_event_is_the_raw_payload(world):
    w = world
    payment, url = checkout.start_product_checkout(w.pack, w.athlete, w.athlete)
    db.session.commit()
    w.fake.pay(checkout_id_of(url))
    settle(w)
    sent = w.fake.events("checkout.session.completed")[0]
    stored = db.session.get(PaymentEvent, sent["id"])
    assert stored.tenant_id == w.org.id
    assert json.dumps(stored.payload["data"]["object"]["metadata"], sort_keys=True) == json.dumps(
        sent["data"]["object"]["metadata"], sort_keys=True)
