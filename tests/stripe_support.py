"""The fake payment provider for tests: one server per session, the app's config pointed at it.

``fake_stripe_server`` (session) runs :class:`fakestripe.FakeStripe` on 127.0.0.1; the ``app`` fixture takes
its ``config()``. Both fixtures reach tests through conftest: a test module must not import them itself (that
would define a second session server, which the app does not point at). Tests use ``fake_stripe`` (the same server; after each test its event log is cleared and
webhooks go nowhere again). Webhooks are only recorded unless a test says where they go:
``fake_stripe.deliver_to(url)`` (the live server), ``fake_stripe.deliver_to_app(app)`` (the test client,
in-process) or ``deliver_to(callable(body, headers) -> status)``.

    made = provider.create_checkout(...)
    fake_stripe.pay(made.id)                 # what the buyer's Pay button does; waits for the webhooks
    fake_stripe.events("checkout.session.completed")[0]["data"]["object"]["payment_intent"]
    fake_stripe.renew(sub_id, outcome="failed")
    fake_stripe.lapse(checkout_id)           # the checkout's time ran out unpaid
    fake_stripe.post_event(client, fake_stripe.event("charge.refunded", charge))   # hand-built, signed
"""
from __future__ import annotations

import json
import time

import pytest
import requests

from fakestripe import FakeStripe, sign
from fakestripe.store import new_id

API_KEY = "sk_test_coach_fake_provider"
WEBHOOK_SECRET = "whsec_coach_fake_provider_for_tests"
WEBHOOK_PATH = "/payments/webhook"


class FakeStripeHandle:
    """The running fake and what tests do with it (each action waits until its webhooks were delivered)."""

    def __init__(self, fake: FakeStripe):
        self.fake = fake
        self.store = fake.store
        self.url = fake.url
        self.secret = fake.webhook_secret

    def config(self) -> dict:
        """The app settings that point the real ``stripe`` client at the fake."""
        return {"STRIPE_API_BASE": self.url, "STRIPE_SECRET_KEY": API_KEY, "STRIPE_WEBHOOK_SECRET": self.secret,
                "STRIPE_MAX_NETWORK_RETRIES": 0}

    # --- what the buyer and the provider do ---------------------------------------------------

    def checkout_page(self, checkout_id: str) -> requests.Response:
        """The hosted checkout page as a browser gets it."""
        return requests.get(f"{self.url}/checkout/{checkout_id}", timeout=10)

    def pay(self, checkout_id: str) -> dict:
        """Press Pay on the checkout page; the completed checkout session (its ``payment_intent`` or
        ``subscription``). Raises if the page did not redirect to the success URL."""
        answer = requests.post(f"{self.url}/checkout/{checkout_id}/pay", allow_redirects=False, timeout=10)
        assert answer.status_code == 303, f"Pay answered {answer.status_code}: {answer.text[:300]}"
        self.flush()
        return self.session(checkout_id)

    def decline(self, checkout_id: str) -> requests.Response:
        """Press Decline: ``payment_intent.payment_failed`` is sent; the "card declined" page."""
        answer = requests.post(f"{self.url}/checkout/{checkout_id}/decline", allow_redirects=False, timeout=10)
        self.flush()
        return answer

    def lapse(self, checkout_id: str) -> dict:
        """The checkout's time runs out unpaid: Stripe expires it (``checkout.session.expired``)."""
        return self._control(f"/_fake/checkout/{checkout_id}/lapse", {})

    def renew(self, sub_id: str, outcome: str = "paid") -> dict:
        """The subscription's period ends: the next one paid (``invoice.paid``) or not (``invoice.payment_failed``,
        ``past_due``); one set to cancel at period end ends instead (``customer.subscription.deleted``)."""
        return self._control(f"/_fake/subscriptions/{sub_id}/renew", {"outcome": outcome})

    def end(self, sub_id: str) -> dict:
        """Stripe gives up retrying an unpaid renewal and cancels (``customer.subscription.deleted``)."""
        return self._control(f"/_fake/subscriptions/{sub_id}/end", {})

    def dispute(self, payment_intent_id: str, amount: int | None = None) -> dict:
        """The buyer's bank opens a dispute (``charge.dispute.created``); the dispute (``dp_...``)."""
        return self._control("/_fake/disputes", {"payment_intent": payment_intent_id, "amount": amount})

    def _control(self, path: str, values: dict) -> dict:
        answer = requests.post(self.url + path, json=values, timeout=10)
        assert answer.status_code == 200, f"{path} answered {answer.status_code}: {answer.text[:300]}"
        self.flush()
        return answer.json()

    # --- what it holds and sent ---------------------------------------------------------------

    def session(self, checkout_id: str) -> dict:
        with self.store.lock:
            return json.loads(json.dumps({k: v for k, v in self.store.get(checkout_id, "checkout.session").items()
                                          if not k.startswith("_")}))

    def object(self, object_id: str) -> dict:
        """Any object the fake holds (payment intent, charge, subscription, invoice …) by its id."""
        with self.store.lock:
            obj = self.store.objects[object_id]
            return json.loads(json.dumps({k: v for k, v in obj.items() if not k.startswith("_")}))

    def events(self, type: str | None = None) -> list[dict]:
        """The events sent so far (oldest first), each with ``delivery`` (``status``: the app's HTTP answer)."""
        self.flush()
        return [e for e in self.store.sent() if type is None or e["type"] == type]

    def flush(self, timeout: float = 15.0) -> None:
        assert self.store.flush(timeout), "the fake provider's webhooks were not all delivered in time"

    # --- where webhooks go ----------------------------------------------------------------------

    def deliver_to(self, target) -> None:
        """Send webhooks to a URL, a ``callable(body: bytes, headers: dict)`` returning a status (or a
        response), or nowhere (``None``: recorded only)."""
        self.store.target = target

    def deliver_to_app(self, app) -> None:
        """Send webhooks to ``app``'s ``/payments/webhook`` through its test client (no live server)."""
        client = app.test_client()
        self.deliver_to(lambda body, headers: client.post(WEBHOOK_PATH, data=body, headers=headers).status_code)

    def resend(self, event_id: str) -> None:
        """Deliver an event again (Stripe retries and duplicates happen)."""
        self.store.resend(event_id)
        self.flush()

    # --- hand-built events ------------------------------------------------------------------------

    def event(self, type: str, obj: dict, *, created: int | None = None) -> dict:
        """An event in Stripe's shape around ``obj`` (for out-of-order, unknown-type and replay tests)."""
        return {"id": new_id("evt"), "object": "event", "api_version": "2025-09-30.clover",
                "created": created or int(time.time()), "data": {"object": obj}, "livemode": False,
                "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None}, "type": type}

    def signature(self, body: bytes, *, timestamp: int | None = None, secret: str | None = None) -> str:
        """A ``Stripe-Signature`` header for ``body`` (another ``secret`` or an old ``timestamp``: refused)."""
        return sign(body, secret or self.secret, timestamp)

    def post_event(self, client, event: dict, *, timestamp: int | None = None, secret: str | None = None):
        """POST ``event`` signed (or mis-signed) to the app's webhook endpoint with ``client``."""
        body = json.dumps(event).encode()
        return client.post(WEBHOOK_PATH, data=body, headers={
            "Content-Type": "application/json", "Stripe-Signature": self.signature(body, timestamp=timestamp,
                                                                                   secret=secret)})

    def reset_log(self) -> None:
        self.flush()
        with self.store.lock:
            self.store.events.clear()
            self.store.deliveries.clear()


@pytest.fixture(scope="session")
def fake_stripe_server():
    """The fake payment provider on a free port of 127.0.0.1 for the whole session."""
    fake = FakeStripe(webhook_secret=WEBHOOK_SECRET, quiet=True).start()
    yield FakeStripeHandle(fake)
    fake.stop()


@pytest.fixture()
def fake_stripe(fake_stripe_server, app):
    """The session's fake provider (the app points at it); afterwards its log is cleared and webhooks stop."""
    fake_stripe_server.deliver_to(None)
    fake_stripe_server.reset_log()
    yield fake_stripe_server
    fake_stripe_server.flush()
    fake_stripe_server.deliver_to(None)
    fake_stripe_server.reset_log()
