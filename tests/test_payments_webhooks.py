"""The provider's webhook: verified (a forged or stale signature is a 400 and nothing is stored), stored raw once
per event id, applied in a job once, whatever the duplicates and the order; events of no organization or of
another organization's payment change nothing; the books balanced after each."""
from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import select

from coach import tenancy
from coach.booking.models import Booking
from coach.extensions import db
from coach.payments import checkout, ledger, provider
from coach.payments.models import Payment, PaymentEvent, Product
from tests.booking_support import BookingWorld
from tests.factories import add_member, make_user
from tests.payments_support import assert_books_balance


@pytest.fixture()
def world(ctx, app, fake_stripe, quiet):
    w = BookingWorld(price_minor=5000, currency="EUR")
    tenancy.activate(w.org.id)
    w.pack = Product(tenant_id=w.org.id, coach_membership_id=w.coach.id, kind="pack", title="3-pack",
                     price_minor=12000, currency="EUR", credits=3, validity_days=60)
    db.session.add(w.pack)
    db.session.commit()
    w.fake, w.runner = fake_stripe, quiet
    return w


def settle(w):
    w.runner.drain()
    tenancy.activate(w.org.id)
    db.session.expire_all()


def checkout_id_of(url: str) -> str:
    return re.search(r"(cs_[A-Za-z0-9_]+)", url).group(1)


def was_stored(w, client, event) -> bool:
    """Whether ``event`` was stored before, of any organization or none (rows of no organization cannot be
    read back by anyone but the migrations: a signed delivery of the same id says whether it is a duplicate)."""
    return w.fake.post_event(client, event).get_json()["duplicate"]


def paid_session(w):
    """A session checkout paid at the provider, its events recorded but not delivered yet."""
    w.fake.deliver_to(None)
    booking, payment, url = checkout.start_session_checkout(w.offering, w.athlete, w.first_slot().starts_at, "",
                                                            w.athlete)
    db.session.commit()
    session = w.fake.pay(checkout_id_of(url))
    return booking, payment, session


def test_forged_stale_or_unsigned_deliveries_are_refused_and_not_stored(world, client):
    w = world
    _, payment, _ = paid_session(w)
    event = w.fake.events("checkout.session.completed")[0]
    assert w.fake.post_event(client, event, secret="whsec_someone_else").status_code == 400
    assert w.fake.post_event(client, event, timestamp=int(time.time()) - 3600).status_code == 400
    assert client.post("/payments/webhook", data=b'{"id": "evt_x", "type": "charge.refunded"}',
                       headers={"Content-Type": "application/json"}).status_code == 400
    # A valid signature over another body does not vouch for this one.
    body = b'{"id": "evt_y", "type": "checkout.session.completed"}'
    header = w.fake.signature(b'{"id": "evt_z"}')
    assert client.post("/payments/webhook", data=body, headers={"Stripe-Signature": header}).status_code == 400
    settle(w)
    assert db.session.get(Payment, payment.id).status == "pending"
    assert not db.session.scalars(select(PaymentEvent)).all()
    assert not was_stored(w, client, event)
    assert_books_balance(w.org.id)


def test_a_body_over_one_megabyte_is_refused(world, client):
    event = world.fake.event("customer.created", {"id": "cus_big", "pad": "a" * (1024 * 1024)})
    assert world.fake.post_event(client, event).status_code == 413
    event["data"]["object"]["pad"] = ""
    assert not was_stored(world, client, event)


def test_duplicates_are_one_row_and_move_money_once(world, client):
    w = world
    _, payment, _ = paid_session(w)
    event = w.fake.events("checkout.session.completed")[0]
    # No session cookie and no CSRF token: the signature is the credential.
    first = w.fake.post_event(client, event)
    assert first.status_code == 200 and first.get_json()["duplicate"] is False
    for _ in range(3):
        again = w.fake.post_event(client, event)
        assert again.status_code == 200 and again.get_json()["duplicate"] is True
    settle(w)
    assert w.fake.post_event(client, event).get_json()["duplicate"] is True  # after it was applied too
    settle(w)
    assert db.session.scalar(select(Payment.status).where(Payment.id == payment.id)) == "paid"
    assert len(db.session.scalars(select(PaymentEvent)).all()) == 1
    assert ledger.balance(w.org.id, "provider_clearing", "EUR") == 5000
    assert_books_balance(w.org.id)


def test_unknown_types_are_stored_and_ignored(world, client):
    w = world
    _, payment, session = paid_session(w)
    odd = w.fake.event("customer.created", {"id": "cus_1", "object": "customer",
                                            "metadata": {"tenant_id": str(w.org.id)}})
    assert w.fake.post_event(client, odd).status_code == 200
    settle(w)
    row = db.session.get(PaymentEvent, odd["id"])
    assert row.processed_at is not None and row.outcome.startswith("ignored")
    assert row.payload["data"]["object"]["id"] == "cus_1"
    assert db.session.get(Payment, payment.id).status == "pending"


def test_events_of_no_organization_or_of_another_organizations_payment_change_nothing(world, client):
    w = world
    _, payment, session = paid_session(w)
    event = w.fake.events("checkout.session.completed")[0]
    payment_id = payment.id
    other = BookingWorld(price_minor=5000, currency="EUR")
    tenancy.activate(w.org.id)
    stray = dict(event, id=event["id"] + "_nometa")
    stray["data"] = {"object": dict(event["data"]["object"], metadata={})}
    assert w.fake.post_event(client, stray).status_code == 200
    bogus = dict(event, id=event["id"] + "_bogus")
    bogus["data"] = {"object": dict(event["data"]["object"], metadata={"tenant_id": "not-a-uuid",
                                                                        "payment_id": str(payment.id)})}
    assert w.fake.post_event(client, bogus).status_code == 200
    # Another organization's id with this organization's payment: that organization has no such payment.
    foreign = dict(event, id=event["id"] + "_foreign")
    foreign["data"] = {"object": dict(event["data"]["object"], metadata={"tenant_id": str(other.org.id),
                                                                          "payment_id": str(payment_id)})}
    assert w.fake.post_event(client, foreign).status_code == 200
    settle(w)
    assert db.session.get(Payment, payment_id).status == "pending"
    # Stored (a redelivery is a duplicate) with no organization: nobody's to read.
    assert was_stored(w, client, stray) and was_stored(w, client, bogus)
    assert db.session.get(PaymentEvent, stray["id"]) is None and db.session.get(PaymentEvent, bogus["id"]) is None
    tenancy.activate(other.org.id)
    row = db.session.get(PaymentEvent, foreign["id"])
    assert row.outcome.startswith("ignored: no payment")
    # Neither organization sees the other's event.
    assert db.session.get(PaymentEvent, event["id"]) is None
    assert_books_balance(other.org.id)
    tenancy.activate(w.org.id)
    db.session.expunge_all()
    assert db.session.get(PaymentEvent, foreign["id"]) is None
    assert_books_balance(w.org.id)


def test_a_refund_that_arrives_before_the_completion(world, client):
    w = world
    booking, payment, session = paid_session(w)
    completed = w.fake.events("checkout.session.completed")[0]
    provider.refund(session["payment_intent"], 2000, reason="goodwill", idempotency_key="test-refund-1")
    refunded = w.fake.events("charge.refunded")[0]
    assert w.fake.post_event(client, refunded).status_code == 200
    settle(w)
    payment = db.session.get(Payment, payment.id)
    assert payment.status == "paid" and payment.refunded_minor == 2000
    assert w.fake.post_event(client, completed).status_code == 200
    settle(w)
    payment = db.session.get(Payment, payment.id)
    assert payment.status == "paid" and payment.refunded_minor == 2000
    assert ledger.balance(w.org.id, "provider_clearing", "EUR") == 3000
    assert db.session.get(PaymentEvent, completed["id"]).outcome == "already paid"
    assert_books_balance(w.org.id)


def test_a_dispute_that_arrives_first_waits_for_the_payment(world, client):
    w = world
    _, payment, session = paid_session(w)
    completed = w.fake.events("checkout.session.completed")[0]
    w.fake.dispute(session["payment_intent"], 5000)
    disputed = w.fake.events("charge.dispute.created")[0]
    assert w.fake.post_event(client, disputed).status_code == 200
    settle(w)
    row = db.session.get(PaymentEvent, disputed["id"])
    assert row.processed_at is None and "waiting" in row.outcome
    assert w.fake.post_event(client, completed).status_code == 200
    settle(w)
    payment = db.session.get(Payment, payment.id)
    assert payment.status == "paid" and payment.disputed_minor == 5000
    assert db.session.get(PaymentEvent, disputed["id"]).processed_at is not None
    assert_books_balance(w.org.id)


def test_a_shuffled_stream_with_replays_applies_each_event_once(world, client):
    w = world
    _, pack_payment, url = None, *checkout.start_product_checkout(w.pack, w.athlete, w.athlete)
    db.session.commit()
    w.fake.deliver_to(None)
    session = w.fake.pay(checkout_id_of(url))
    provider.refund(session["payment_intent"], 12000, reason="changed mind", idempotency_key="test-refund-2")
    events = w.fake.events()
    for event in reversed(events):  # the refund first, the completion last
        assert w.fake.post_event(client, event).status_code == 200
    for event in events:  # and all of it again
        assert w.fake.post_event(client, event).get_json()["duplicate"] is True
    settle(w)
    payment = db.session.get(Payment, pack_payment.id)
    assert payment.status == "paid" and payment.refunded_minor == 12000
    assert ledger.balance(w.org.id, "provider_clearing", "EUR") == 0
    assert all(row.processed_at is not None for row in db.session.scalars(select(PaymentEvent)))
    assert_books_balance(w.org.id)


def test_the_per_address_limit_never_drops_the_providers_deliveries(world, client, app, monkeypatch):
    w = world
    monkeypatch.setitem(app.config, "RATELIMIT_PER_IP", "5 per minute")
    _, payment, _ = paid_session(w)
    event = w.fake.events("checkout.session.completed")[0]
    answers = [w.fake.post_event(client, event).status_code for _ in range(12)]
    assert answers == [200] * 12
    # The same address is limited everywhere else.
    assert 429 in [client.get("/login").status_code for _ in range(8)]
    settle(w)
    assert db.session.get(Payment, payment.id).status == "paid"


def test_a_checkout_expired_at_the_provider_ends_the_payment_and_frees_the_time(world, app):
    w = world
    w.fake.deliver_to_app(app)
    booking, payment, url = checkout.start_session_checkout(w.offering, w.athlete, w.first_slot().starts_at, "",
                                                            w.athlete)
    db.session.commit()
    provider.expire_checkout(checkout_id_of(url))
    settle(w)
    assert db.session.get(Payment, payment.id).status == "expired"
    assert db.session.get(Booking, booking.id).status == "expired"
    event = db.session.get(PaymentEvent, w.fake.events("checkout.session.expired")[0]["id"])
    assert event.outcome == "expired"
    # The slot is free again: another athlete can hold it.
    other = add_member(w.org, make_user("next-in-line@example.com"), "athlete")
    again, _, _ = checkout.start_session_checkout(w.offering, other, booking.starts_at, "", other)
    db.session.commit()
    assert again.status == "held"


def test_a_signed_but_malformed_event_is_recorded_and_changes_nothing(world, client):
    w = world
    _, payment, _ = paid_session(w)
    event = w.fake.events("checkout.session.completed")[0]
    broken = dict(event, id=event["id"] + "_broken")
    broken["data"] = {"object": dict(event["data"]["object"], amount_total="fifty euros")}
    assert w.fake.post_event(client, broken).status_code == 200
    settle(w)
    row = db.session.get(PaymentEvent, broken["id"])
    assert row.processed_at is not None and row.outcome.startswith("ignored: malformed event")
    assert db.session.get(Payment, payment.id).status == "pending"
    # The real event still applies.
    assert w.fake.post_event(client, event).status_code == 200
    settle(w)
    assert db.session.get(Payment, payment.id).status == "paid"
    assert_books_balance(w.org.id)
