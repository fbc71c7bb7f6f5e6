"""The payment provider: Stripe through its official client. The only module that imports ``stripe``.

The client is configured on every call from ``current_app.config`` (``STRIPE_SECRET_KEY``, and
``STRIPE_API_BASE`` when set: the fake provider of development and tests), never through the library's
module globals, so two apps (or a test and the app) never share a key or a base URL.

Every refusal or outage of the provider becomes :class:`ProviderError` (a domain error, 502) with a message
safe to show; a webhook whose signature does not verify raises :class:`BadSignature` (400).
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import stripe
from flask import current_app

from coach.errors import DomainError

log = logging.getLogger(__name__)

MODES = ("payment", "subscription")
INTERVALS = ("day", "week", "month", "year")
# Stripe refuses a checkout that expires sooner than 30 minutes or later than 24 hours after it is created;
# a hold shorter than that is ended by the app, which then expires the checkout itself.
MIN_CHECKOUT_SECONDS = 31 * 60
MAX_CHECKOUT_SECONDS = 24 * 3600 - 60
REFUND_REASON = "requested_by_customer"

_clients: dict[tuple, stripe.StripeClient] = {}
_clients_lock = threading.Lock()


class ProviderError(DomainError):
    """The provider refused a request or could not be reached (nothing was charged or changed there).

    ``code`` is Stripe's error code when it gave one (``amount_too_large``, ``resource_missing`` …).
    """

    status = 502

    def __init__(self, message: str, status: int | None = None, *, code: str | None = None):
        super().__init__(message, status)
        self.code = code


class BadSignature(DomainError):
    """A webhook whose ``Stripe-Signature`` is missing, forged or too old (400)."""

    status = 400


@dataclass(frozen=True)
class Checkout:
    """A provider checkout: its id (``cs_...``) and the hosted page to send the buyer to."""

    id: str
    url: str


def enabled() -> bool:
    """Whether card payments can be taken (a secret key is configured)."""
    return bool(current_app.config.get("STRIPE_SECRET_KEY"))


def checkout_origin() -> str | None:
    """The origin of the provider's hosted checkout page, which the browser is redirected to after a form post
    (the Content-Security-Policy's ``form-action`` must allow it): the fake's when ``STRIPE_API_BASE`` is set,
    Stripe Checkout's with a real key, None when card payments are off."""
    config = current_app.config
    base = config.get("STRIPE_API_BASE") or ""
    if base:
        parts = urlsplit(base)
        return f"{parts.scheme}://{parts.netloc}"
    return "https://checkout.stripe.com" if config.get("STRIPE_SECRET_KEY") else None


def _client() -> stripe.StripeClient:
    config = current_app.config
    key = config.get("STRIPE_SECRET_KEY") or ""
    if not key:
        raise ProviderError("Card payments are not set up here (no STRIPE_SECRET_KEY).", 503)
    base = (config.get("STRIPE_API_BASE") or "").rstrip("/")
    retries = int(config.get("STRIPE_MAX_NETWORK_RETRIES", 2))
    timeout = float(config.get("STRIPE_TIMEOUT_SECONDS", 20))
    cache_key = (key, base, retries, timeout)
    with _clients_lock:
        client = _clients.get(cache_key)
        if client is None:
            client = stripe.StripeClient(
                key, base_addresses={"api": base} if base else None, max_network_retries=retries,
                http_client=stripe.RequestsClient(timeout=timeout))
            _clients[cache_key] = client
    return client


def _call(what: str, request):
    """Run ``request(client)``; Stripe's errors become :class:`ProviderError` with a message to show."""
    client = _client()
    try:
        return request(client)
    except stripe.APIConnectionError as exc:
        log.warning("payment provider unreachable (%s): %s", what, exc)
        raise ProviderError("The payment provider cannot be reached right now; nothing was charged or changed. "
                            "Try again in a minute.") from exc
    except stripe.AuthenticationError as exc:
        log.error("payment provider refused our API key (%s): %s", what, exc)
        raise ProviderError("The payment provider refused this site's credentials; an administrator must check "
                            "STRIPE_SECRET_KEY.") from exc
    except stripe.StripeError as exc:
        message = exc.user_message or str(exc) or type(exc).__name__
        log.warning("payment provider refused %s: %s (%s)", what, message, exc.code)
        raise ProviderError(f"The payment provider refused to {what}: {message}", code=exc.code) from exc


def _timestamp(value) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp())
    return int(value)


def _metadata(values: dict) -> dict[str, str]:
    return {str(k): str(v) for k, v in values.items() if v is not None}


def create_checkout(*, mode: str, title: str, amount_minor: int, currency: str, interval: str | None = None,
                    customer_email: str | None, success_url: str, cancel_url: str, metadata: dict,
                    expires_at, idempotency_key: str | None = None) -> Checkout:
    """Open a hosted checkout for one line: ``title`` at ``amount_minor`` of ``currency`` (its own minor unit).

    :param mode: ``"payment"`` (one-off) or ``"subscription"`` (then ``interval``: day, week, month or year).
    :param success_url: where the buyer returns after paying; ``{CHECKOUT_SESSION_ID}`` is filled in.
    :param metadata: must carry ``tenant_id`` and ``payment_id``; copied to the payment intent (payment mode)
        or the subscription (whose invoices repeat it), so every webhook names them.
    :param expires_at: a datetime or unix time, kept within the 30 minutes to 24 hours Stripe allows.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if mode == "subscription" and interval not in INTERVALS:
        raise ValueError(f"a subscription needs an interval among {INTERVALS}, not {interval!r}")
    if not isinstance(amount_minor, int) or amount_minor <= 0:
        raise ValueError(f"amount_minor must be a positive integer, not {amount_minor!r}")
    meta = _metadata(metadata)
    if not meta.get("tenant_id") or not meta.get("payment_id"):
        raise ValueError("checkout metadata must carry tenant_id and payment_id")
    now = int(time.time())
    expires = min(max(_timestamp(expires_at), now + MIN_CHECKOUT_SECONDS), now + MAX_CHECKOUT_SECONDS)
    price_data: dict = {"currency": currency.lower(), "unit_amount": amount_minor,
                        "product_data": {"name": title[:250] or "Coaching"}}
    if mode == "subscription":
        price_data["recurring"] = {"interval": interval}
    params: dict = {"mode": mode, "line_items": [{"quantity": 1, "price_data": price_data}],
                    "success_url": success_url, "cancel_url": cancel_url, "metadata": meta, "expires_at": expires}
    if customer_email:
        params["customer_email"] = customer_email
    if mode == "payment":
        params["payment_intent_data"] = {"metadata": meta}
    else:
        params["subscription_data"] = {"metadata": meta}
    options = {"idempotency_key": idempotency_key} if idempotency_key else None
    session = _call("open a checkout", lambda c: c.v1.checkout.sessions.create(params, options))
    return Checkout(id=session.id, url=session.url)


def retrieve_checkout(checkout_id: str) -> dict:
    """The checkout as the provider has it (``status``: open, complete or expired; ``payment_intent`` …)."""
    return _call("look up the checkout", lambda c: c.v1.checkout.sessions.retrieve(checkout_id)).to_dict()


def expire_checkout(checkout_id: str) -> str:
    """Close an open checkout so it can no longer be paid; returns its status after (``expired``, or
    ``complete`` if the buyer paid meanwhile: that payment's webhook still arrives)."""
    try:
        return _call("close the checkout", lambda c: c.v1.checkout.sessions.expire(checkout_id)).status
    except ProviderError as exc:
        if exc.code == "resource_missing":
            raise
        status = retrieve_checkout(checkout_id).get("status")
        if status in ("expired", "complete"):
            return status
        raise


def refund(payment_intent_id: str, amount_minor: int, *, reason: str, idempotency_key: str,
           metadata: dict | None = None) -> str:
    """Give ``amount_minor`` of a payment back; returns the refund's id (``re_...``).

    The provider refuses more than remains unrefunded (:class:`ProviderError`, code ``amount_too_large``).
    ``reason`` is ours (free text, kept in the refund's metadata); the same ``idempotency_key`` never refunds
    twice.
    """
    if not isinstance(amount_minor, int) or amount_minor <= 0:
        raise ValueError(f"a refund is a positive integer amount, not {amount_minor!r}")
    params = {"payment_intent": payment_intent_id, "amount": amount_minor, "reason": REFUND_REASON,
              "metadata": {**_metadata(metadata or {}), "reason": str(reason)[:500]}}
    made = _call("make the refund", lambda c: c.v1.refunds.create(params, {"idempotency_key": idempotency_key}))
    return made.id


def payment_intent_metadata(payment_intent_id: str) -> dict:
    """The metadata of a payment intent (a dispute carries none of its own: this names the payment)."""
    intent = _call("look up the payment", lambda c: c.v1.payment_intents.retrieve(payment_intent_id))
    return intent.to_dict().get("metadata") or {}


def set_cancel_at_period_end(sub_id: str, flag: bool) -> dict:
    """Stop (``True``) or resume (``False``) renewal at the end of the current period; the subscription after."""
    made = _call("change the subscription",
                 lambda c: c.v1.subscriptions.update(sub_id, {"cancel_at_period_end": bool(flag)}))
    return made.to_dict()


def cancel_subscription(sub_id: str) -> dict:
    """End a subscription now (no refund of the period); already ended there counts as done."""
    try:
        return _call("cancel the subscription", lambda c: c.v1.subscriptions.cancel(sub_id)).to_dict()
    except ProviderError:
        try:
            current = _call("look up the subscription", lambda c: c.v1.subscriptions.retrieve(sub_id)).to_dict()
        except ProviderError:
            current = {}
        if current.get("status") == "canceled":
            return current
        raise


def verify(body: bytes, signature_header: str | None) -> dict:
    """The webhook event in ``body`` once its ``Stripe-Signature`` checks out (HMAC with
    ``STRIPE_WEBHOOK_SECRET``, timestamp within ``STRIPE_WEBHOOK_TOLERANCE`` seconds); else :class:`BadSignature`.
    """
    config = current_app.config
    secret = config.get("STRIPE_WEBHOOK_SECRET") or ""
    if not secret:
        raise BadSignature("Webhooks are not accepted here (no STRIPE_WEBHOOK_SECRET).")
    if not signature_header:
        raise BadSignature("The webhook has no Stripe-Signature header.")
    tolerance = int(config.get("STRIPE_WEBHOOK_TOLERANCE", 300))
    try:
        stripe.Webhook.construct_event(body, signature_header, secret, tolerance=tolerance)
    except stripe.SignatureVerificationError as exc:
        raise BadSignature(f"The webhook signature does not verify: {exc.user_message or exc}") from exc
    except ValueError as exc:  # not JSON
        raise BadSignature("The webhook body is not an event.") from exc
    event = json.loads(body)
    if not isinstance(event, dict) or not event.get("id") or not event.get("type"):
        raise BadSignature("The webhook body is not an event.")
    return event
