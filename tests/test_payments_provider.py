"""The real stripe client (coach.payments.provider) against the fake provider (fakestripe) over HTTP."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests
import stripe

from coach.payments import provider


def _checkout(mode="payment", amount=5000, currency="EUR", interval=None, **extra):
    meta = {"tenant_id": str(uuid.uuid4()), "payment_id": str(uuid.uuid4())}
    made = provider.create_checkout(
        mode=mode, title="60-minute video review", amount_minor=amount, currency=currency, interval=interval,
        customer_email="ana@example.com", success_url="http://127.0.0.1:9/return?cs={CHECKOUT_SESSION_ID}",
        cancel_url="http://127.0.0.1:9/cancelled", metadata=meta,
        expires_at=extra.pop("expires_at", datetime.now(timezone.utc) + timedelta(minutes=45)), **extra)
    return made, meta


class Inbox:
    """A webhook receiver that answers like the app would and keeps what it got."""

    def __init__(self, status=200):
        self.status = status
        self.received: list[tuple[bytes, dict]] = []

    def __call__(self, body, headers):
        self.received.append((body, headers))
        return self.status

    def verified(self) -> list[dict]:
        return [provider.verify(body, headers["Stripe-Signature"]) for body, headers in self.received]


def test_checkout_page_shows_the_amount_and_pay_sends_signed_events(ctx, fake_stripe):
    inbox = Inbox()
    fake_stripe.deliver_to(inbox)
    made, meta = _checkout()
    assert made.id.startswith("cs_") and made.url == f"{fake_stripe.url}/checkout/{made.id}"

    page = fake_stripe.checkout_page(made.id)
    assert page.status_code == 200
    assert "Fake payment provider — no real money" in page.text
    assert "60-minute video review" in page.text and "€50.00" in page.text
    assert ">Pay €50.00</button>" in page.text and ">Decline</button>" in page.text
    assert "<script" not in page.text

    answer = requests.post(f"{fake_stripe.url}/checkout/{made.id}/pay", allow_redirects=False, timeout=10)
    assert answer.status_code == 303
    assert answer.headers["Location"] == f"http://127.0.0.1:9/return?cs={made.id}"
    fake_stripe.flush()

    events = inbox.verified()
    completed = [e for e in events if e["type"] == "checkout.session.completed"]
    assert len(completed) == 1
    session = completed[0]["data"]["object"]
    assert session["id"] == made.id and session["status"] == "complete" and session["payment_status"] == "paid"
    assert session["amount_total"] == 5000 and session["currency"] == "eur"
    assert session["metadata"] == meta
    assert session["payment_intent"].startswith("pi_")
    intent = fake_stripe.object(session["payment_intent"])
    charge = fake_stripe.object(intent["latest_charge"])
    assert intent["metadata"] == meta and charge["metadata"] == meta and charge["id"].startswith("ch_")
    assert all(e["delivery"]["status"] == 200 for e in fake_stripe.events())
    # Paying again is refused: the page says it is closed and no second payment is made.
    assert fake_stripe.checkout_page(made.id).status_code == 410
    assert len(fake_stripe.events("checkout.session.completed")) == 1


def test_forged_stale_or_missing_signatures_are_refused(ctx, fake_stripe):
    made, _ = _checkout()
    fake_stripe.pay(made.id)
    event = fake_stripe.events("checkout.session.completed")[0]
    event.pop("delivery")
    body = json.dumps(event).encode()

    assert provider.verify(body, fake_stripe.signature(body))["id"] == event["id"]
    with pytest.raises(provider.BadSignature) as forged:
        provider.verify(body, fake_stripe.signature(body, secret="whsec_someone_else"))
    assert forged.value.status == 400
    tampered = body.replace(b'"amount_total": 5000', b'"amount_total": 1')
    assert tampered != body
    with pytest.raises(provider.BadSignature):
        provider.verify(tampered, fake_stripe.signature(body))
    with pytest.raises(provider.BadSignature, match="signature"):
        provider.verify(body, fake_stripe.signature(body, timestamp=int(time.time()) - 301))
    with pytest.raises(provider.BadSignature):
        provider.verify(body, "")
    with pytest.raises(provider.BadSignature):
        provider.verify(b"not json", fake_stripe.signature(b"not json"))


def test_stale_tolerance_comes_from_config(app, ctx, fake_stripe, monkeypatch):
    body = json.dumps(fake_stripe.event("charge.refunded", {"id": "ch_x"})).encode()
    old = fake_stripe.signature(body, timestamp=int(time.time()) - 120)
    assert provider.verify(body, old)["type"] == "charge.refunded"
    monkeypatch.setitem(app.config, "STRIPE_WEBHOOK_TOLERANCE", 60)
    with pytest.raises(provider.BadSignature):
        provider.verify(body, old)


def test_refund_above_the_remainder_is_refused(ctx, fake_stripe):
    made, meta = _checkout()
    intent_id = fake_stripe.pay(made.id)["payment_intent"]

    first = provider.refund(intent_id, 3000, reason="Coach ill", idempotency_key="r1",
                            metadata={"tenant_id": meta["tenant_id"], "payment_id": meta["payment_id"]})
    assert first.startswith("re_")
    with pytest.raises(provider.ProviderError) as refused:
        provider.refund(intent_id, 3000, reason="again", idempotency_key="r2")
    assert refused.value.status == 502 and refused.value.code == "amount_too_large"
    assert "greater than unrefunded amount" in refused.value.message

    provider.refund(intent_id, 2000, reason="the rest", idempotency_key="r3")
    refunded = [e["data"]["object"] for e in fake_stripe.events("charge.refunded")]
    assert [c["amount_refunded"] for c in refunded] == [3000, 5000]
    assert [c["refunded"] for c in refunded] == [False, True]
    assert all(c["payment_intent"] == intent_id and c["metadata"] == meta for c in refunded)
    refund = fake_stripe.object(first)
    assert refund["metadata"]["reason"] == "Coach ill" and refund["metadata"]["payment_id"] == meta["payment_id"]


def test_a_refund_retried_with_its_key_is_made_once(ctx, fake_stripe):
    made, _ = _checkout()
    intent_id = fake_stripe.pay(made.id)["payment_intent"]
    first = provider.refund(intent_id, 1000, reason="late", idempotency_key="refund-once")
    again = provider.refund(intent_id, 1000, reason="late", idempotency_key="refund-once")
    assert again == first
    assert len(fake_stripe.events("charge.refunded")) == 1
    assert fake_stripe.object(fake_stripe.object(intent_id)["latest_charge"])["amount_refunded"] == 1000


def test_subscription_renews_paid_then_fails_then_ends_at_period_end(ctx, fake_stripe):
    made, meta = _checkout(mode="subscription", amount=3900, interval="month")
    session = fake_stripe.pay(made.id)
    sub_id = session["subscription"]
    assert sub_id.startswith("sub_") and session["customer"].startswith("cus_")
    first = fake_stripe.events("invoice.paid")[0]["data"]["object"]
    assert first["subscription"] == sub_id and first["billing_reason"] == "subscription_create"
    assert first["amount_paid"] == 3900 and first["currency"] == "eur"
    assert first["subscription_details"]["metadata"] == meta
    assert fake_stripe.object(sub_id)["metadata"] == meta

    fake_stripe.renew(sub_id, outcome="paid")
    renewal = fake_stripe.events("invoice.paid")[1]["data"]["object"]
    assert renewal["billing_reason"] == "subscription_cycle" and renewal["id"] != first["id"]
    # Stripe's shape: the renewal line pays for the next period; the invoice's own period names the one that ended.
    period = renewal["lines"]["data"][0]["period"]
    assert period["start"] == first["period_end"] < period["end"]
    assert (renewal["period_start"], renewal["period_end"]) == (first["period_start"], first["period_end"])
    assert renewal["payment_intent"].startswith("pi_")

    fake_stripe.renew(sub_id, outcome="failed")
    failed = fake_stripe.events("invoice.payment_failed")[0]["data"]["object"]
    assert failed["amount_due"] == 3900 and failed["amount_paid"] == 0
    assert failed["subscription_details"]["metadata"]["payment_id"] == meta["payment_id"]
    updated = fake_stripe.events("customer.subscription.updated")[-1]["data"]["object"]
    assert updated["status"] == "past_due" and updated["metadata"] == meta

    after = provider.set_cancel_at_period_end(sub_id, True)
    assert after["cancel_at_period_end"] is True
    assert fake_stripe.events("customer.subscription.updated")[-1]["data"]["object"]["cancel_at_period_end"]
    fake_stripe.renew(sub_id, outcome="paid")
    deleted = fake_stripe.events("customer.subscription.deleted")
    assert len(deleted) == 1 and deleted[0]["data"]["object"]["status"] == "canceled"
    assert len(fake_stripe.events("invoice.paid")) == 2  # nothing charged after it ended
    assert provider.cancel_subscription(sub_id)["status"] == "canceled"  # already ended: done, no error


def test_resume_and_cancel_a_subscription_now(ctx, fake_stripe):
    made, _ = _checkout(mode="subscription", amount=12000, interval="year")
    sub_id = fake_stripe.pay(made.id)["subscription"]
    provider.set_cancel_at_period_end(sub_id, True)
    assert provider.set_cancel_at_period_end(sub_id, False)["cancel_at_period_end"] is False
    ended = provider.cancel_subscription(sub_id)
    assert ended["status"] == "canceled"
    assert fake_stripe.events("customer.subscription.deleted")[0]["data"]["object"]["id"] == sub_id
    with pytest.raises(provider.ProviderError):
        provider.set_cancel_at_period_end(sub_id, False)


def test_jpy_amounts_have_no_decimals(ctx, fake_stripe):
    made, _ = _checkout(amount=5000, currency="JPY")
    page = fake_stripe.checkout_page(made.id).text
    assert "¥5,000" in page and "¥50" not in page.replace("¥5,000", "")
    session = fake_stripe.pay(made.id)
    assert session["amount_total"] == 5000 and session["currency"] == "jpy"
    assert fake_stripe.object(session["payment_intent"])["amount"] == 5000


def test_decline_shows_card_declined_and_keeps_the_checkout_open(ctx, fake_stripe):
    made, meta = _checkout()
    page = fake_stripe.decline(made.id)
    assert page.status_code == 402
    assert "Your card was declined" in page.text and 'href="http://127.0.0.1:9/cancelled"' in page.text
    failed = fake_stripe.events("payment_intent.payment_failed")[0]["data"]["object"]
    assert failed["metadata"] == meta and failed["last_payment_error"]["code"] == "card_declined"
    assert fake_stripe.session(made.id)["status"] == "open"
    assert fake_stripe.pay(made.id)["payment_status"] == "paid"


def test_expire_checkout_closes_it_and_says_when_it_was_paid_meanwhile(ctx, fake_stripe):
    made, meta = _checkout()
    assert provider.expire_checkout(made.id) == "expired"
    expired = fake_stripe.events("checkout.session.expired")
    assert len(expired) == 1 and expired[0]["data"]["object"]["metadata"] == meta
    assert fake_stripe.checkout_page(made.id).status_code == 410
    assert requests.post(f"{fake_stripe.url}/checkout/{made.id}/pay", allow_redirects=False,
                         timeout=10).status_code == 410
    assert provider.expire_checkout(made.id) == "expired"  # again: no error, no second event
    assert len(fake_stripe.events("checkout.session.expired")) == 1

    paid, _ = _checkout()
    fake_stripe.pay(paid.id)
    assert provider.expire_checkout(paid.id) == "complete"
    assert provider.retrieve_checkout(paid.id)["payment_status"] == "paid"


def test_an_unpaid_checkout_expires_by_itself_when_its_time_runs_out(ctx, fake_stripe):
    made, meta = _checkout()
    fake_stripe.lapse(made.id)
    expired = fake_stripe.events("checkout.session.expired")
    assert [e["data"]["object"]["id"] for e in expired] == [made.id]
    assert provider.retrieve_checkout(made.id)["status"] == "expired"
    page = fake_stripe.checkout_page(made.id)
    assert page.status_code == 410 and "This checkout is expired" in page.text


def test_an_idempotency_key_reused_for_another_request_is_refused(ctx, fake_stripe):
    made, _ = _checkout()
    intent_id = fake_stripe.pay(made.id)["payment_intent"]
    provider.refund(intent_id, 1000, reason="x", idempotency_key="one-key")
    with pytest.raises(provider.ProviderError) as reused:
        provider.refund(intent_id, 2000, reason="x", idempotency_key="one-key")
    assert "same parameters" in reused.value.message
    assert fake_stripe.object(fake_stripe.object(intent_id)["latest_charge"])["amount_refunded"] == 1000


def test_checkout_expiry_is_kept_within_what_stripe_allows(ctx, fake_stripe):
    soon = datetime.now(timezone.utc) + timedelta(minutes=5)
    made, _ = _checkout(expires_at=soon)
    assert fake_stripe.session(made.id)["expires_at"] >= int(time.time()) + 30 * 60


def test_dispute_names_the_payment_through_its_intent(ctx, fake_stripe):
    made, meta = _checkout()
    intent_id = fake_stripe.pay(made.id)["payment_intent"]
    dispute = fake_stripe.dispute(intent_id, 4000)
    event = fake_stripe.events("charge.dispute.created")[0]["data"]["object"]
    assert event["id"] == dispute["id"] and event["id"].startswith("dp_")
    assert event["payment_intent"] == intent_id and event["amount"] == 4000
    assert provider.payment_intent_metadata(intent_id) == meta


def test_provider_refusals_and_outages_are_clear_domain_errors(app, ctx, fake_stripe, monkeypatch):
    with pytest.raises(provider.ProviderError) as refused:
        _checkout(currency="EURO")
    assert refused.value.status == 502 and "Invalid currency" in refused.value.message
    with pytest.raises(provider.ProviderError) as missing:
        provider.refund("pi_doesnotexist", 100, reason="x", idempotency_key="missing")
    assert missing.value.code == "resource_missing"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    monkeypatch.setitem(app.config, "STRIPE_API_BASE", f"http://127.0.0.1:{closed_port}")
    with pytest.raises(provider.ProviderError, match="cannot be reached") as down:
        _checkout()
    assert down.value.status == 502

    monkeypatch.setitem(app.config, "STRIPE_SECRET_KEY", "")
    assert not provider.enabled()
    with pytest.raises(provider.ProviderError, match="not set up"):
        _checkout()


def test_checkout_origin_is_the_fakes_or_stripes(app, ctx, fake_stripe, monkeypatch):
    assert provider.checkout_origin() == fake_stripe.url
    monkeypatch.setitem(app.config, "STRIPE_API_BASE", "")
    assert provider.checkout_origin() == "https://checkout.stripe.com"
    monkeypatch.setitem(app.config, "STRIPE_SECRET_KEY", "")
    assert provider.checkout_origin() is None


def test_checkout_arguments_the_app_gets_wrong_are_refused_before_the_provider(ctx, fake_stripe):
    with pytest.raises(ValueError, match="tenant_id and payment_id"):
        provider.create_checkout(mode="payment", title="x", amount_minor=100, currency="EUR",
                                 customer_email=None, success_url="http://x/ok", cancel_url="http://x/no",
                                 metadata={"tenant_id": "t"}, expires_at=time.time() + 3600)
    with pytest.raises(ValueError, match="interval"):
        _checkout(mode="subscription")
    with pytest.raises(ValueError, match="positive"):
        _checkout(amount=0)


def test_failed_deliveries_are_recorded_and_can_be_resent(ctx, fake_stripe):
    inbox = Inbox(status=500)
    fake_stripe.deliver_to(inbox)
    made, _ = _checkout()
    fake_stripe.pay(made.id)
    completed = fake_stripe.events("checkout.session.completed")[0]
    assert completed["delivery"]["status"] == 500 and completed["delivery"]["attempts"] == 1
    inbox.status = 200
    fake_stripe.resend(completed["id"])
    again = fake_stripe.events("checkout.session.completed")[0]["delivery"]
    assert again["status"] == 200 and again["attempts"] == 2
    assert [provider.verify(b, h["Stripe-Signature"])["id"] for b, h in inbox.received].count(completed["id"]) == 2


def test_the_fake_runs_alone_as_make_run_starts_it(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "fakestripe", "--port", str(port), "--webhook-secret",
                                "whsec_alone"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                requests.get(f"{base}/_fake/events", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        client = stripe.StripeClient("sk_test_alone", base_addresses={"api": base}, max_network_retries=0)
        session = client.v1.checkout.sessions.create({
            "mode": "payment", "success_url": "http://x/ok",
            "line_items": [{"quantity": 1, "price_data": {"currency": "usd", "unit_amount": 2500,
                                                          "product_data": {"name": "Session"}}}]})
        assert session.url == f"{base}/checkout/{session.id}"
        assert "$25.00" in requests.get(session.url, timeout=5).text
        keyless = requests.get(f"{base}/v1/checkout/sessions/{session.id}", timeout=5)
        assert keyless.status_code == 401 and keyless.json()["error"]["type"] == "invalid_request_error"
    finally:
        process.terminate()
        process.wait(timeout=10)
