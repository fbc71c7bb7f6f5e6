"""The fake provider's state: Stripe-shaped objects in memory, the events it sends, and their delivery.

Everything is kept under one lock; webhooks leave from one background thread (so a browser's redirect after
"Pay" never waits for the app's answer), each delivery recorded with the HTTP status it got.
"""
from __future__ import annotations

import calendar
import copy
import hashlib
import hmac
import json
import queue
import secrets
import string
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone

API_VERSION = "2025-09-30.clover"
INTERVALS = ("day", "week", "month", "year")
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")
MIN_EXPIRY = 30 * 60
MAX_EXPIRY = 24 * 3600
# Stripe has no slack; a request built a moment before it is sent should not fail on a second or two.
EXPIRY_SLACK = 60
_ALPHABET = string.ascii_letters + string.digits


class FakeError(Exception):
    """An API refusal, answered in Stripe's error shape with a 4xx status."""

    def __init__(self, message: str, *, status: int = 400, type: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status, self.type, self.code, self.param = status, type, code, param

    def body(self) -> dict:
        error = {"type": self.type, "message": str(self)}
        if self.code:
            error["code"] = self.code
        if self.param:
            error["param"] = self.param
        return {"error": error}


def new_id(prefix: str) -> str:
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(24))


def _add_interval(ts: int, interval: str) -> int:
    if interval == "day":
        return ts + 86400
    if interval == "week":
        return ts + 7 * 86400
    moment = datetime.fromtimestamp(ts, timezone.utc)
    months = 12 if interval == "year" else 1
    month0 = moment.month - 1 + months
    year, month = moment.year + month0 // 12, month0 % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())


def _int(value, param: str, *, minimum: int = 0) -> int:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        raise FakeError(f"Invalid integer: {value}", param=param) from None
    if number < minimum:
        raise FakeError(f"This value must be greater than or equal to {minimum}.", param=param)
    return number


def _metadata(value, param: str) -> dict:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise FakeError("Invalid object", param=param)
    if len(value) > 50:
        raise FakeError("Metadata can have at most 50 keys.", param=param)
    for key, item in value.items():
        if len(key) > 40 or not isinstance(item, str) or len(item) > 500:
            raise FakeError("Metadata keys are at most 40 characters and values at most 500.", param=param)
    return {k: v for k, v in value.items() if v != ""}


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header for ``body``: ``t=<unix>,v1=<HMAC-SHA256 of "t.body">``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


class Store:
    """The fake's objects by id, the events sent, idempotent replies, and the webhook delivery thread."""

    def __init__(self, *, base_url: str = "", webhook_url=None, webhook_secret: str = "whsec_fake"):
        self.base_url = base_url.rstrip("/")
        self.webhook_secret = webhook_secret
        self.target = webhook_url  # a URL, a callable(body, headers) -> status, or None (record only)
        self.lock = threading.RLock()
        self.objects: dict[str, dict] = {}
        self.line_items: dict[str, list[dict]] = {}
        self.events: list[dict] = []
        self.deliveries: dict[str, dict] = {}
        self.idempotent: dict[str, tuple[str, int, dict]] = {}
        self._queue: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._deliver_loop, name="fakestripe-webhooks", daemon=True)
        self._thread.start()

    # --- plumbing -------------------------------------------------------------------------------

    def close(self) -> None:
        self._stop.set()
        self._queue.put(None)
        self._thread.join(timeout=5)

    def reset(self) -> None:
        """Forget every object and event (deliveries still in flight are dropped)."""
        self.flush(timeout=5)
        with self.lock:
            self.objects.clear()
            self.line_items.clear()
            self.events.clear()
            self.deliveries.clear()
            self.idempotent.clear()

    def get(self, object_id: str, kind: str) -> dict:
        obj = self.objects.get(object_id or "")
        if obj is None or obj["object"] != kind:
            raise FakeError(f"No such {kind.split('.')[-1].replace('_', '')}: '{object_id}'", status=404,
                            code="resource_missing", param="id")
        return obj

    def _put(self, obj: dict) -> dict:
        self.objects[obj["id"]] = obj
        return obj

    # --- events ---------------------------------------------------------------------------------

    def emit(self, type: str, obj: dict, previous: dict | None = None) -> dict:
        """Record an event carrying a snapshot of ``obj`` and queue its delivery."""
        data = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = previous
        event = {"id": new_id("evt"), "object": "event", "api_version": API_VERSION, "created": int(time.time()),
                 "data": data, "livemode": False, "pending_webhooks": 1,
                 "request": {"id": None, "idempotency_key": None}, "type": type}
        with self.lock:
            self.events.append(event)
            self.deliveries[event["id"]] = {"id": event["id"], "type": type, "object_id": obj["id"],
                                            "attempts": 0, "status": None, "error": ""}
        self._queue.put(event["id"])
        return event

    def resend(self, event_id: str) -> None:
        with self.lock:
            if event_id not in self.deliveries:
                raise FakeError(f"No such event: '{event_id}'", status=404, code="resource_missing")
        self._queue.put(event_id)

    def sent(self) -> list[dict]:
        """Every event, oldest first, with its delivery record (``status``: the app's HTTP answer)."""
        with self.lock:
            return [{**copy.deepcopy(e), "delivery": dict(self.deliveries[e["id"]])} for e in self.events]

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued delivery was attempted; False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._queue.all_tasks_done:
                if self._queue.unfinished_tasks == 0:
                    return True
            time.sleep(0.02)
        return False

    def _deliver_loop(self) -> None:
        while not self._stop.is_set():
            try:
                event_id = self._queue.get(timeout=1.0)
            except queue.Empty:
                self.sweep()
                continue
            try:
                if event_id is not None:
                    self._deliver(event_id)
            finally:
                self._queue.task_done()

    def _deliver(self, event_id: str) -> None:
        with self.lock:
            event = next((e for e in self.events if e["id"] == event_id), None)
            record = self.deliveries.get(event_id)
            target = self.target
        if event is None or record is None or target is None:
            return
        body = json.dumps(event, indent=2).encode()
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "FakeStripe/1.0",
                   "Stripe-Signature": sign(body, self.webhook_secret)}
        status, error = None, ""
        try:
            if callable(target):
                answer = target(body, headers)
                status = getattr(answer, "status_code", answer)
            else:
                request = urllib.request.Request(target, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=15) as response:
                    status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except Exception as exc:  # the app is down or the callable failed: recorded like Stripe's dashboard
            error = f"{type(exc).__name__}: {exc}"
        with self.lock:
            record["attempts"] += 1
            record["status"] = status
            record["error"] = error

    # --- checkout sessions ----------------------------------------------------------------------

    def create_checkout_session(self, p: dict) -> dict:
        now = int(time.time())
        mode = p.get("mode")
        if mode not in ("payment", "subscription"):
            raise FakeError("Invalid mode: must be one of payment or subscription (the fake has no setup mode)",
                            param="mode")
        if not p.get("success_url"):
            raise FakeError("Missing required param: success_url.", param="success_url")
        items = p.get("line_items")
        if not isinstance(items, list) or not items:
            raise FakeError("Missing required param: line_items.", param="line_items")
        lines, currency = [], None
        for n, item in enumerate(items):
            lines.append(self._line(item, n, mode))
            if currency and lines[-1]["currency"] != currency:
                raise FakeError("All line items must use the same currency.", param=f"line_items[{n}]")
            currency = lines[-1]["currency"]
        recurring = [line for line in lines if line["price"]["recurring"]]
        if mode == "subscription" and not recurring:
            raise FakeError("You must provide at least one recurring price in `subscription` mode when using "
                            "prices.", param="line_items")
        if mode == "payment" and recurring:
            raise FakeError("You must specify `mode=subscription` when using recurring prices.",
                            param="line_items")
        expires_at = now + MAX_EXPIRY
        if p.get("expires_at") not in (None, ""):
            expires_at = _int(p["expires_at"], "expires_at")
            if not now + MIN_EXPIRY - EXPIRY_SLACK <= expires_at <= now + MAX_EXPIRY + EXPIRY_SLACK:
                raise FakeError("The `expires_at` timestamp must be between 30 minutes and 24 hours after the "
                                "Checkout Session is created.", param="expires_at")
        total = sum(line["amount_total"] for line in lines)
        session_id = new_id("cs_test")
        email = p.get("customer_email") or None
        session = {
            "id": session_id, "object": "checkout.session", "mode": mode, "status": "open",
            "payment_status": "unpaid", "url": f"{self.base_url}/checkout/{session_id}",
            "success_url": p["success_url"], "cancel_url": p.get("cancel_url") or None,
            "customer": None, "customer_email": email,
            "customer_details": {"email": email} if email else None,
            "metadata": _metadata(p.get("metadata"), "metadata"),
            "amount_subtotal": total, "amount_total": total, "currency": currency,
            "created": now, "expires_at": expires_at, "livemode": False,
            "payment_intent": None, "subscription": None, "invoice": None,
            "client_reference_id": p.get("client_reference_id") or None,
            "_payment_intent_metadata": _metadata((p.get("payment_intent_data") or {}).get("metadata"),
                                                  "payment_intent_data[metadata]"),
            "_subscription_metadata": _metadata((p.get("subscription_data") or {}).get("metadata"),
                                                "subscription_data[metadata]"),
        }
        with self.lock:
            self.line_items[session_id] = lines
            return self._put(session)

    def _line(self, item, n: int, mode: str) -> dict:
        param = f"line_items[{n}]"
        if not isinstance(item, dict):
            raise FakeError("Invalid line item.", param=param)
        if item.get("price"):
            raise FakeError(f"No such price: '{item['price']}' (the fake takes price_data only)",
                            status=404, code="resource_missing", param=f"{param}[price]")
        data = item.get("price_data")
        if not isinstance(data, dict):
            raise FakeError("You must specify either `price` or `price_data`.", param=param)
        currency = str(data.get("currency") or "")
        if len(currency) != 3 or not currency.isalpha():
            raise FakeError(f"Invalid currency: {currency}", param=f"{param}[price_data][currency]")
        if "unit_amount" not in data:
            raise FakeError("Missing required param: unit_amount.", param=f"{param}[price_data][unit_amount]")
        unit = _int(data["unit_amount"], f"{param}[price_data][unit_amount]")
        quantity = _int(item.get("quantity", 1), f"{param}[quantity]", minimum=1)
        name = (data.get("product_data") or {}).get("name") if isinstance(data.get("product_data"), dict) else None
        if not name:
            raise FakeError("Missing required param: product_data[name].",
                            param=f"{param}[price_data][product_data][name]")
        recurring = None
        if data.get("recurring") not in (None, ""):
            interval = (data["recurring"] or {}).get("interval") if isinstance(data["recurring"], dict) else None
            if interval not in INTERVALS:
                raise FakeError(f"Invalid recurring interval: {interval}",
                                param=f"{param}[price_data][recurring][interval]")
            recurring = {"interval": interval, "interval_count": 1}
        price = {"id": new_id("price"), "object": "price", "currency": currency.lower(), "unit_amount": unit,
                 "recurring": recurring, "product": new_id("prod"), "type": "recurring" if recurring else "one_time",
                 "product_name": name}
        return {"id": new_id("li"), "object": "item", "description": name, "price": price, "quantity": quantity,
                "currency": currency.lower(), "amount_subtotal": unit * quantity, "amount_total": unit * quantity}

    def retrieve_checkout_session(self, session_id: str) -> dict:
        self.sweep()
        with self.lock:
            return self.get(session_id, "checkout.session")

    def session_lines(self, session_id: str) -> list[dict]:
        with self.lock:
            return self.line_items.get(session_id, [])

    def expire_checkout_session(self, session_id: str) -> dict:
        with self.lock:
            session = self.get(session_id, "checkout.session")
            if session["status"] != "open":
                raise FakeError(f'Only Checkout Sessions with a status in ["open"] can be expired. This Checkout '
                                f'Session has a status of "{session["status"]}".', code="checkout_session_not_open")
            return self._expire(session)

    def _expire(self, session: dict) -> dict:
        session["status"] = "expired"
        session["url"] = None
        self.emit("checkout.session.expired", public(session))
        return session

    def lapse(self, session_id: str) -> dict:
        """Let an open session's time run out now (Stripe then expires it by itself, with its event)."""
        with self.lock:
            session = self.get(session_id, "checkout.session")
            if session["status"] != "open":
                raise FakeError(f"This Checkout Session is {session['status']}.", code="checkout_session_not_open")
            session["expires_at"] = int(time.time())
        self.sweep()
        return session

    def sweep(self) -> None:
        """Expire open sessions whose ``expires_at`` passed, as Stripe does (with its event)."""
        now = time.time()
        with self.lock:
            for obj in list(self.objects.values()):
                if obj["object"] == "checkout.session" and obj["status"] == "open" and obj["expires_at"] <= now:
                    self._expire(obj)

    def pay(self, session_id: str) -> dict:
        """The buyer paid: the payment (and for a subscription its customer, subscription and first invoice)."""
        self.sweep()
        with self.lock:
            session = self.get(session_id, "checkout.session")
            if session["status"] != "open":
                raise FakeError(f"This Checkout Session is {session['status']}.", code="checkout_session_not_open")
            lines = self.line_items[session_id]
            email = session["customer_email"] or "buyer@example.com"
            session["customer_details"] = {"email": email, "name": "Test Buyer"}
            if session["mode"] == "payment":
                intent, _charge = self._charge(session["amount_total"], session["currency"],
                                               session["_payment_intent_metadata"], email)
                session["payment_intent"] = intent["id"]
            else:
                customer = self._put({"id": new_id("cus"), "object": "customer", "email": email,
                                      "created": int(time.time()), "metadata": {}})
                subscription = self._subscribe(session, customer, lines)
                session["customer"] = customer["id"]
                session["subscription"] = subscription["id"]
                session["invoice"] = subscription["latest_invoice"]
            session["status"] = "complete"
            session["payment_status"] = "paid"
            session["url"] = None
            self.emit("checkout.session.completed", public(session))
            return session

    def decline(self, session_id: str) -> dict:
        """The buyer's card was declined: ``payment_intent.payment_failed``; the session stays open."""
        with self.lock:
            session = self.get(session_id, "checkout.session")
            if session["status"] != "open":
                raise FakeError(f"This Checkout Session is {session['status']}.", code="checkout_session_not_open")
            metadata = (session["_payment_intent_metadata"] if session["mode"] == "payment"
                        else session["_subscription_metadata"])
            intent = self._put({
                "id": new_id("pi"), "object": "payment_intent", "amount": session["amount_total"],
                "amount_received": 0, "currency": session["currency"], "status": "requires_payment_method",
                "metadata": dict(metadata), "latest_charge": None, "created": int(time.time()),
                "last_payment_error": {"type": "card_error", "code": "card_declined",
                                       "decline_code": "generic_decline", "message": "Your card was declined."},
                "livemode": False,
            })
            self.emit("payment_intent.payment_failed", intent)
            return intent

    # --- payments, refunds, disputes ------------------------------------------------------------

    def _charge(self, amount: int, currency: str, metadata: dict, email: str) -> tuple[dict, dict]:
        now = int(time.time())
        intent_id, charge_id = new_id("pi"), new_id("ch")
        charge = self._put({
            "id": charge_id, "object": "charge", "amount": amount, "amount_captured": amount, "amount_refunded": 0,
            "currency": currency, "paid": True, "captured": True, "refunded": False, "disputed": False,
            "status": "succeeded", "payment_intent": intent_id, "metadata": dict(metadata), "created": now,
            "billing_details": {"email": email}, "receipt_email": email, "livemode": False,
        })
        intent = self._put({
            "id": intent_id, "object": "payment_intent", "amount": amount, "amount_received": amount,
            "currency": currency, "status": "succeeded", "metadata": dict(metadata), "latest_charge": charge_id,
            "created": now, "last_payment_error": None, "livemode": False,
        })
        self.emit("payment_intent.succeeded", intent)
        self.emit("charge.succeeded", charge)
        return intent, charge

    def _charge_of(self, payment_intent_id: str) -> dict:
        intent = self.get(payment_intent_id, "payment_intent")
        if intent["status"] != "succeeded" or not intent["latest_charge"]:
            raise FakeError(f"This PaymentIntent ({payment_intent_id}) does not have a successful charge to refund.",
                            code="charge_not_refundable", param="payment_intent")
        return self.objects[intent["latest_charge"]]

    def create_refund(self, p: dict) -> dict:
        with self.lock:
            if p.get("charge"):
                charge = self.get(p["charge"], "charge")
            elif p.get("payment_intent"):
                charge = self._charge_of(p["payment_intent"])
            else:
                raise FakeError("One of the following params should be provided for this request: payment_intent "
                                "or charge.", param="payment_intent")
            remaining = charge["amount"] - charge["amount_refunded"]
            amount = remaining if p.get("amount") in (None, "") else _int(p["amount"], "amount", minimum=1)
            if charge["refunded"] or remaining <= 0:
                raise FakeError(f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded")
            if amount > remaining:
                raise FakeError(f"Refund amount ({amount} {charge['currency']}) is greater than unrefunded amount "
                                f"on charge ({remaining} {charge['currency']})", code="amount_too_large",
                                param="amount")
            reason = p.get("reason") or None
            if reason is not None and reason not in REFUND_REASONS:
                raise FakeError(f"Invalid reason: must be one of {', '.join(REFUND_REASONS)}", param="reason")
            refund = self._put({
                "id": new_id("re"), "object": "refund", "amount": amount, "charge": charge["id"],
                "payment_intent": charge["payment_intent"], "currency": charge["currency"], "reason": reason,
                "status": "succeeded", "metadata": _metadata(p.get("metadata"), "metadata"),
                "created": int(time.time()),
            })
            previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
            charge["amount_refunded"] += amount
            charge["refunded"] = charge["amount_refunded"] == charge["amount"]
            self.emit("refund.created", refund)
            self.emit("charge.refunded", charge, previous)
            return refund

    def dispute(self, payment_intent_id: str, amount: int | None = None, reason: str = "fraudulent") -> dict:
        with self.lock:
            charge = self._charge_of(payment_intent_id)
            amount = charge["amount"] if amount is None else _int(amount, "amount", minimum=1)
            if amount > charge["amount"]:
                raise FakeError("A dispute cannot be larger than its charge.", param="amount")
            dispute = self._put({
                # Stripe's disputes carry no metadata of their own: the app finds the payment by payment_intent.
                "id": new_id("dp"), "object": "dispute", "amount": amount, "currency": charge["currency"],
                "charge": charge["id"], "payment_intent": charge["payment_intent"], "reason": reason,
                "status": "needs_response", "metadata": {}, "created": int(time.time()), "livemode": False,
            })
            charge["disputed"] = True
            self.emit("charge.dispute.created", dispute)
            return dispute

    # --- subscriptions and invoices -------------------------------------------------------------

    def _subscribe(self, session: dict, customer: dict, lines: list[dict]) -> dict:
        now = int(time.time())
        interval = next(line["price"]["recurring"]["interval"] for line in lines if line["price"]["recurring"])
        end = _add_interval(now, interval)
        sub_id = new_id("sub")
        items = [{"id": new_id("si"), "object": "subscription_item", "price": line["price"],
                  "quantity": line["quantity"], "current_period_start": now, "current_period_end": end,
                  "subscription": sub_id} for line in lines]
        subscription = self._put({
            "id": sub_id, "object": "subscription", "status": "active", "customer": customer["id"],
            "cancel_at_period_end": False, "cancel_at": None, "canceled_at": None, "ended_at": None,
            "current_period_start": now, "current_period_end": end, "start_date": now, "created": now,
            "items": {"object": "list", "data": items, "has_more": False},
            "metadata": dict(session["_subscription_metadata"]), "latest_invoice": None,
            "currency": session["currency"], "livemode": False, "_interval": interval,
            "_amount": session["amount_total"],
        })
        self.emit("customer.subscription.created", public(subscription))
        self._invoice(subscription, "subscription_create", paid=True)
        return subscription

    def _invoice(self, subscription: dict, billing_reason: str, *, paid: bool,
                 ended: tuple[int, int] | None = None) -> dict:
        amount = subscription["_amount"]
        start, end = subscription["current_period_start"], subscription["current_period_end"]
        customer = self.objects[subscription["customer"]]
        intent = charge = None
        if paid:
            intent, charge = self._charge(amount, subscription["currency"], {}, customer["email"])
        details = {"metadata": dict(subscription["metadata"]), "subscription": subscription["id"]}
        invoice = self._put({
            "id": new_id("in"), "object": "invoice", "customer": customer["id"], "customer_email": customer["email"],
            "subscription": subscription["id"], "subscription_details": details,
            "parent": {"type": "subscription_details", "subscription_details": details},
            "billing_reason": billing_reason, "currency": subscription["currency"],
            "amount_due": amount, "amount_paid": amount if paid else 0, "amount_remaining": 0 if paid else amount,
            "status": "paid" if paid else "open", "paid": paid, "attempt_count": 1,
            # As on Stripe: a renewal invoice's own period_start/period_end name the period that just ended (the
            # first invoice's are the period itself); the line item's period is the one paid for.
            "period_start": ended[0] if ended else start, "period_end": ended[1] if ended else end,
            "lines": {"object": "list", "has_more": False, "data": [{
                "id": new_id("il"), "object": "line_item", "amount": amount, "currency": subscription["currency"],
                "period": {"start": start, "end": end}, "quantity": 1,
                "description": subscription["items"]["data"][0]["price"]["product_name"]}]},
            "payment_intent": intent["id"] if intent else None, "charge": charge["id"] if charge else None,
            "next_payment_attempt": None if paid else end + 3 * 86400,
            "created": int(time.time()), "livemode": False,
        })
        subscription["latest_invoice"] = invoice["id"]
        self.emit("invoice.paid" if paid else "invoice.payment_failed", invoice)
        return invoice

    def retrieve_subscription(self, sub_id: str) -> dict:
        with self.lock:
            return self.get(sub_id, "subscription")

    def update_subscription(self, sub_id: str, p: dict) -> dict:
        with self.lock:
            subscription = self.get(sub_id, "subscription")
            if subscription["status"] == "canceled":
                raise FakeError("A canceled subscription can only update its cancellation_details and metadata.",
                                code="resource_missing")
            previous = {}
            if "cancel_at_period_end" in p:
                flag = str(p["cancel_at_period_end"]).lower()
                if flag not in ("true", "false"):
                    raise FakeError(f"Invalid boolean: {p['cancel_at_period_end']}", param="cancel_at_period_end")
                previous["cancel_at_period_end"] = subscription["cancel_at_period_end"]
                subscription["cancel_at_period_end"] = flag == "true"
                subscription["cancel_at"] = subscription["current_period_end"] if flag == "true" else None
            if "metadata" in p:
                previous["metadata"] = dict(subscription["metadata"])
                subscription["metadata"].update(_metadata(p["metadata"], "metadata"))
            if previous:
                self.emit("customer.subscription.updated", public(subscription), previous)
            return subscription

    def cancel_subscription(self, sub_id: str) -> dict:
        with self.lock:
            subscription = self.get(sub_id, "subscription")
            if subscription["status"] == "canceled":
                raise FakeError(f"No such subscription: '{sub_id}' (it was canceled)", status=404,
                                code="resource_missing")
            return self._end(subscription)

    def _end(self, subscription: dict) -> dict:
        now = int(time.time())
        subscription.update(status="canceled", canceled_at=now, ended_at=now)
        self.emit("customer.subscription.deleted", public(subscription))
        return subscription

    def renew(self, sub_id: str, outcome: str = "paid") -> dict:
        """The period ended: a new one paid, or an unpaid invoice (``past_due``); cancel-at-period-end ends it."""
        if outcome not in ("paid", "failed"):
            raise FakeError("outcome must be paid or failed", param="outcome")
        with self.lock:
            subscription = self.get(sub_id, "subscription")
            if subscription["status"] == "canceled":
                raise FakeError("This subscription is canceled.", code="subscription_canceled")
            if subscription["cancel_at_period_end"]:
                self._end(subscription)
                return subscription
            previous = {"status": subscription["status"],
                        "current_period_start": subscription["current_period_start"],
                        "current_period_end": subscription["current_period_end"]}
            if outcome == "paid":
                start = subscription["current_period_end"]
                end = _add_interval(start, subscription["_interval"])
                subscription.update(status="active", current_period_start=start, current_period_end=end)
                for item in subscription["items"]["data"]:
                    item.update(current_period_start=start, current_period_end=end)
                self._invoice(subscription, "subscription_cycle", paid=True,
                              ended=(previous["current_period_start"], previous["current_period_end"]))
            else:
                subscription["status"] = "past_due"
                saved = subscription["current_period_start"], subscription["current_period_end"]
                # The unpaid invoice is for the coming period; the subscription stays on the old one meanwhile.
                subscription["current_period_start"] = saved[1]
                subscription["current_period_end"] = _add_interval(saved[1], subscription["_interval"])
                self._invoice(subscription, "subscription_cycle", paid=False, ended=saved)
                subscription["current_period_start"], subscription["current_period_end"] = saved
            self.emit("customer.subscription.updated", public(subscription), previous)
            return subscription

    def end_unpaid(self, sub_id: str) -> dict:
        """Stripe gave up retrying an unpaid renewal and canceled the subscription."""
        with self.lock:
            subscription = self.get(sub_id, "subscription")
            if subscription["status"] == "canceled":
                raise FakeError("This subscription is canceled.", code="subscription_canceled")
            return self._end(subscription)


def public(obj: dict) -> dict:
    """``obj`` without the fake's own bookkeeping (keys starting with ``_``)."""
    return {k: v for k, v in obj.items() if not k.startswith("_")}
