"""The provider's webhook events: received (verified, stored raw, answered fast) and applied in a job.

:func:`receive` runs in the HTTP request: the signature is verified (``provider.verify``: a bad or stale one
raises and nothing is stored), the event is stored as it came in ``payment_events`` under the provider's
event id (``ON CONFLICT DO NOTHING``: a duplicate delivery is the same row and emits nothing), and
``PROVIDER_EVENT`` is emitted in the same transaction. The organization is the event's
``metadata.tenant_id`` (a UUID of an existing organization); an event without one is stored with no
organization, marked ignored, and never applied; so is an event of a type no handler takes (stored for the
audit, no job).

:func:`apply` is the consumer: it loads the stored event under the organization's RLS and applies it by type.
Every handler is idempotent (compare-and-swap on statuses, ledger keys, one payment per invoice) and
out-of-order safe: a ``charge.refunded`` or a first ``invoice.paid`` that arrives before
``checkout.session.completed`` completes the payment from the data it carries first; a dispute on a payment
not yet completed waits (``processed_at`` stays empty) and is applied right after the payment completes.
``payment_events.processed_at``/``outcome`` say what happened to each event.
"""
from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime

from flask import g
from sqlalchemy import select, text

from coach import clock
from coach.errors import DomainError
from coach.extensions import db
from coach.orgs.models import Organization
from coach.payments import checkout, provider, refunds, subscriptions
from coach.payments.events import PROVIDER_EVENT
from coach.payments.models import PLAN, Payment, PaymentEvent, Product, Subscription
from coach.platform import tenant_context
from coach.platform.jobs import consumer
from coach.platform.outbox import emit

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
STORE = text("INSERT INTO payment_events (id, tenant_id, type, payload, processed_at, outcome) "
             "VALUES (:id, :tenant_id, :type, CAST(:payload AS jsonb), :processed_at, :outcome) ON CONFLICT DO NOTHING")
PARKED = "waiting for the payment to complete"


class ProviderBusy(DomainError):
    """The event cannot be placed now (the provider is not answering our look-up): it retries later."""

    status = 503


class BadEvent(DomainError):
    """Not a webhook we can store (a bad signature, a body that is not an event)."""

    status = 400


# --- reading an event ---------------------------------------------------------------------------------


def _obj(event: dict) -> dict:
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    return obj if isinstance(obj, dict) else {}


def metadata_of(obj: dict) -> dict:
    """The metadata we gave at checkout, wherever this object type carries it."""
    for candidate in (obj.get("metadata"), (obj.get("subscription_details") or {}).get("metadata"),
                      ((obj.get("parent") or {}).get("subscription_details") or {}).get("metadata")):
        if isinstance(candidate, dict) and candidate:
            return candidate
    return {}


def _uuid(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _id(value) -> str | None:
    """A provider id given as a string or as an expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def tenant_of(event: dict) -> uuid.UUID | None:
    """The organization an event belongs to: its ``metadata.tenant_id``, if that is an existing organization."""
    obj = _obj(event)
    meta = metadata_of(obj)
    intent = _id(obj.get("payment_intent"))
    if not meta.get("tenant_id") and obj.get("object") == "dispute" and intent:
        # A dispute carries no metadata of its own: its payment intent's says whose it is.
        try:
            meta = provider.payment_intent_metadata(intent)
        except DomainError as exc:  # answered 503: the provider delivers it again later
            raise ProviderBusy("The payment this dispute is about cannot be looked up right now.") from exc
    tenant_id = _uuid(meta.get("tenant_id"))
    if tenant_id is None:
        return None
    return db.session.scalar(select(Organization.id).where(Organization.id == tenant_id))


# --- receiving (the HTTP request) ---------------------------------------------------------------------


def receive(body: bytes, signature: str) -> tuple[str, bool]:
    """Verify, store and announce one delivery; ``(event id, stored now)``. The caller commits.

    :raises BadEvent: a bad or stale signature, or a body that is not an event (nothing is stored).
    """
    try:
        provider.verify(body, signature or "")
    except provider.BadSignature as exc:
        raise BadEvent("The webhook signature is not valid (or too old).") from exc
    try:
        event = json.loads(body)
    except ValueError as exc:
        raise BadEvent("The webhook body is not JSON.") from exc
    if not isinstance(event, dict):
        raise BadEvent("The webhook body is not an event.")
    event_id, kind = event.get("id"), event.get("type")
    if not (isinstance(event_id, str) and 0 < len(event_id) <= 255 and isinstance(kind, str) and 0 < len(kind) <= 100):
        raise BadEvent("The event has no id or type.")
    tenant_id = tenant_of(event)
    tenant_context.activate(tenant_id)
    values = {"id": event_id, "tenant_id": tenant_id, "type": kind, "payload": event}
    if tenant_id is None:
        values.update(processed_at=clock.now(), outcome="ignored: no organization in its metadata")
    elif kind not in HANDLERS:
        # Stored for the audit, nothing to apply: no job (the provider sends many such, e.g. charge.succeeded).
        values.update(processed_at=clock.now(), outcome=f"ignored: {kind} is not handled")
    # Plain SQL whose row count says whether this delivery is the first. No RETURNING and no conflict target: a
    # row with no organization may be written but not read back.
    stored = db.session.execute(STORE, {**values, "payload": json.dumps(event), "processed_at": values.get(
        "processed_at"), "outcome": values.get("outcome", "")}).rowcount == 1
    if stored and values.get("processed_at") is None:
        emit(PROVIDER_EVENT, {"event_id": event_id}, tenant_id=tenant_id)
    return event_id, stored


# --- applying (the job) -------------------------------------------------------------------------------


@consumer(PROVIDER_EVENT)
def _provider_event(payload: dict) -> None:
    apply(payload["event_id"])


def apply(event_id: str) -> str:
    """Apply the stored event ``event_id`` of the organization in force; its outcome. Idempotent."""
    tenant_id = g.get("tenant_id")
    row = db.session.scalar(select(PaymentEvent).where(PaymentEvent.tenant_id == tenant_id,
                                                       PaymentEvent.id == event_id).with_for_update())
    if row is None:
        return "no such event"
    if row.processed_at is not None:
        return row.outcome
    return _run(row)


def _run(row: PaymentEvent) -> str:
    handler = HANDLERS.get(row.type)
    if handler is None:
        outcome, done, completed = f"ignored: {row.type} is not handled", True, None
    else:
        try:
            # A savepoint: a handler that refuses leaves nothing half-done, and the event still records why.
            with db.session.begin_nested():
                outcome, done, completed = handler(row.tenant_id, _obj(row.payload))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            if isinstance(exc, DomainError) and exc.status >= 500:
                raise  # the provider or a dependency is away: the job fails and RQ retries it
            # A refusal stays unapplied (processed_at empty: an operator finds it by that, with the reason);
            # an event we cannot read is done with.
            refused = isinstance(exc, DomainError)
            what = "refused" if refused else "ignored: malformed event"
            outcome, done, completed = f"{what}: {exc}", not refused, None
    row.outcome = outcome[:300]
    if done:
        row.processed_at = clock.now()
    db.session.flush()
    log.info("payment event %s (%s): %s", row.id, row.type, outcome)
    if completed is not None:
        _replay_parked(completed, row.id)
    return row.outcome


def _replay_parked(payment: Payment, current: str) -> None:
    """Apply the events that waited for ``payment`` to complete (a dispute that arrived first)."""
    by_payment = PaymentEvent.payload["data"]["object"]["metadata"]["payment_id"].astext == str(payment.id)
    condition = by_payment
    if payment.provider_payment_id:
        condition = by_payment | (PaymentEvent.payload["data"]["object"]["payment_intent"].astext
                                  == payment.provider_payment_id)
    for parked in db.session.scalars(select(PaymentEvent).where(
            PaymentEvent.tenant_id == payment.tenant_id, PaymentEvent.processed_at.is_(None),
            PaymentEvent.id != current, PaymentEvent.outcome == PARKED, condition)
            .order_by(PaymentEvent.received_at).with_for_update()).all():
        _run(parked)


Result = tuple[str, bool, Payment | None]  # (outcome, done, a payment this event completed)


def _payment(tenant_id: uuid.UUID, obj: dict, *, by_intent: bool = False) -> Payment | None:
    """The payment an object is about: by the provider's payment intent (a charge may be a renewal's),
    else the ``payment_id`` of its metadata, else its checkout id; always within ``tenant_id``."""
    intent = _id(obj.get("payment_intent"))
    if by_intent and intent:
        found = db.session.scalar(select(Payment).where(Payment.tenant_id == tenant_id,
                                                        Payment.provider_payment_id == intent))
        if found is not None:
            return found
    payment_id = _uuid(metadata_of(obj).get("payment_id"))
    if payment_id is None and intent and obj.get("object") == "dispute":
        try:  # a dispute carries no metadata of its own: its payment intent's names the payment
            payment_id = _uuid(provider.payment_intent_metadata(intent).get("payment_id"))
        except DomainError as exc:
            log.warning("payment intent %s cannot be looked up: %s", intent, exc)
    if payment_id is not None:
        found = db.session.scalar(select(Payment).where(Payment.tenant_id == tenant_id, Payment.id == payment_id))
        if found is not None:
            return found
    checkout_id = _id(obj.get("id"))
    if checkout_id and str(obj.get("object", "")) == "checkout.session":
        return db.session.scalar(select(Payment).where(Payment.tenant_id == tenant_id,
                                                       Payment.provider_checkout_id == checkout_id))
    return None


UNKNOWN: Result = ("ignored: no payment of this organization matches", True, None)


def _checkout_completed(tenant_id: uuid.UUID, obj: dict) -> Result:
    payment = _payment(tenant_id, obj)
    if payment is None:
        return UNKNOWN
    if payment.provider_checkout_id and _id(obj.get("id")) and _id(obj.get("id")) != payment.provider_checkout_id:
        return "ignored: the checkout is not this payment's", True, None
    if obj.get("payment_status") == "unpaid":
        return "waiting: the checkout completed, the payment is not through yet", True, None
    outcome = checkout.complete(
        payment, provider_payment_id=_id(obj.get("payment_intent")), amount_minor=int(obj.get("amount_total") or 0),
        currency=str(obj.get("currency") or ""), provider_invoice_id=_id(obj.get("invoice")),
        provider_subscription_id=_id(obj.get("subscription")), provider_customer_id=_id(obj.get("customer")))
    return outcome, True, payment if payment.status == "paid" else None


def _checkout_expired(tenant_id: uuid.UUID, obj: dict) -> Result:
    payment = _payment(tenant_id, obj)
    if payment is None:
        return UNKNOWN
    if checkout.expire(payment, tell_provider=False):
        return "expired", True, None
    return f"no change: the payment is {payment.status}", True, None


def _payment_failed(tenant_id: uuid.UUID, obj: dict) -> Result:
    payment = _payment(tenant_id, obj, by_intent=True)
    if payment is None:
        return UNKNOWN
    error = obj.get("last_payment_error") or {}
    reason = (error.get("message") if isinstance(error, dict) else None) or "The card was declined."
    if checkout.fail(payment, reason):
        return f"failed: {reason}", True, None
    return f"no change: the payment is {payment.status}", True, None


def _complete_from_charge(payment: Payment, obj: dict) -> str | None:
    """A charge event before the checkout's: complete the payment from what the charge says first."""
    if payment.status == "paid":
        return None
    amount = obj.get("amount")
    if amount is None:
        amount = obj.get("amount_captured")
    return checkout.complete(payment, provider_payment_id=_id(obj.get("payment_intent")),
                             amount_minor=int(amount or 0), currency=str(obj.get("currency") or ""))


def _charge_refunded(tenant_id: uuid.UUID, obj: dict) -> Result:
    payment = _payment(tenant_id, obj, by_intent=True)
    if payment is None:
        return UNKNOWN
    checkout.lock(payment)
    completed = _complete_from_charge(payment, obj)
    if payment.status != "paid":
        return f"not applied: {completed}", True, None
    refunds.record_provider_refund(payment, int(obj.get("amount_refunded") or 0))
    outcome = f"refunded {obj.get('amount_refunded')} in total"
    return (f"{completed}; {outcome}" if completed else outcome), True, payment if completed else None


def _dispute_created(tenant_id: uuid.UUID, obj: dict) -> Result:
    payment = _payment(tenant_id, obj, by_intent=True)
    if payment is None:
        return UNKNOWN
    checkout.lock(payment)
    if payment.status != "paid":
        return PARKED, False, None
    refunds.record_dispute(payment, _id(obj.get("id")) or "", int(obj.get("amount") or 0))
    return f"dispute of {obj.get('amount')} recorded", True, None


def _subscription_for(tenant_id: uuid.UUID, provider_id: str | None, meta: dict) -> Subscription | None:
    sub = subscriptions.by_provider_id(tenant_id, provider_id)
    if sub is not None:
        return sub
    sub_id = _uuid(meta.get("subscription_id"))
    if sub_id is None:
        payment_id = _uuid(meta.get("payment_id"))
        if payment_id is not None:
            sub_id = db.session.scalar(select(Payment.subscription_id).where(Payment.tenant_id == tenant_id,
                                                                             Payment.id == payment_id))
    if sub_id is None:
        return None
    return db.session.scalar(select(Subscription).where(Subscription.tenant_id == tenant_id,
                                                        Subscription.id == sub_id))


def _invoice_period(obj: dict, product: Product, sub: Subscription) -> tuple[datetime, datetime]:
    # The line's period is the service period paid for; an invoice's own period_start/period_end name, on
    # Stripe's renewal invoices, the period that just ended. So the line first, the invoice's as a fallback.
    lines = (obj.get("lines") or {}).get("data") if isinstance(obj.get("lines"), dict) else None
    period = (lines[0].get("period") or {}) if lines else {}
    start, end = subscriptions.from_unix(period.get("start")), subscriptions.from_unix(period.get("end"))
    if not start or not end or end <= start:
        start, end = subscriptions.from_unix(obj.get("period_start")), subscriptions.from_unix(obj.get("period_end"))
    if start and end and end > start:
        return start, end
    return subscriptions.next_period(product, sub.current_period_end or start or clock.now())


def _initial_payment(tenant_id: uuid.UUID, sub: Subscription, meta: dict) -> Payment | None:
    payment_id = _uuid(meta.get("payment_id"))
    query = select(Payment).where(Payment.tenant_id == tenant_id, Payment.subscription_id == sub.id,
                                  Payment.purpose == PLAN)
    if payment_id is not None:
        found = db.session.scalar(query.where(Payment.id == payment_id))
        if found is not None:
            return found
    return db.session.scalar(query.order_by(Payment.created_at).limit(1))


def _invoice_paid(tenant_id: uuid.UUID, obj: dict) -> Result:
    meta = metadata_of(obj)
    sub = _subscription_for(tenant_id, _id(obj.get("subscription")), meta)
    if sub is None:
        return "ignored: no subscription of this organization matches", True, None
    invoice_id = _id(obj.get("id")) or ""
    product = db.session.get(Product, sub.product_id)
    period = _invoice_period(obj, product, sub)
    initial = _initial_payment(tenant_id, sub, meta)
    if initial is not None:
        checkout.lock(initial)
    is_first = (initial is not None and obj.get("billing_reason") != "subscription_cycle"
                and initial.provider_invoice_id in (None, invoice_id)
                and (initial.status != "paid" or sub.current_period_end is None
                     or period[0] < sub.current_period_end - (sub.current_period_end - sub.current_period_start) / 2))
    if is_first:
        outcome = checkout.complete(
            initial, provider_payment_id=_id(obj.get("payment_intent")), amount_minor=int(obj.get("amount_paid") or 0),
            currency=str(obj.get("currency") or ""), provider_invoice_id=invoice_id,
            provider_subscription_id=_id(obj.get("subscription")), provider_customer_id=_id(obj.get("customer")),
            period=period)
        return f"first invoice: {outcome}", True, initial if initial.status == "paid" else None
    outcome = subscriptions.renew(
        sub, invoice_id=invoice_id, provider_payment_id=_id(obj.get("payment_intent")),
        amount_minor=int(obj.get("amount_paid") or 0), currency=str(obj.get("currency") or ""), period=period)
    return outcome, True, None


def _invoice_failed(tenant_id: uuid.UUID, obj: dict) -> Result:
    meta = metadata_of(obj)
    sub = _subscription_for(tenant_id, _id(obj.get("subscription")), meta)
    if sub is None:
        return "ignored: no subscription of this organization matches", True, None
    if sub.status == "incomplete":
        initial = _initial_payment(tenant_id, sub, meta)
        if initial is not None and checkout.fail(initial, "The first payment of the plan failed."):
            return "the first payment failed", True, None
        return "no change", True, None
    return subscriptions.payment_failed(sub, "The renewal payment failed."), True, None


def _subscription_updated(tenant_id: uuid.UUID, obj: dict) -> Result:
    sub = _subscription_for(tenant_id, _id(obj.get("id")), metadata_of(obj))
    if sub is None:
        return "ignored: no subscription of this organization matches", True, None
    return subscriptions.synchronise(sub, obj), True, None


def _subscription_deleted(tenant_id: uuid.UUID, obj: dict) -> Result:
    sub = _subscription_for(tenant_id, _id(obj.get("id")), metadata_of(obj))
    if sub is None:
        return "ignored: no subscription of this organization matches", True, None
    return subscriptions.end(sub, "cancelled at the provider"), True, None


HANDLERS = {
    "checkout.session.completed": _checkout_completed,
    "checkout.session.async_payment_succeeded": _checkout_completed,
    "checkout.session.expired": _checkout_expired,
    "payment_intent.payment_failed": _payment_failed,
    "charge.refunded": _charge_refunded,
    "charge.dispute.created": _dispute_created,
    "invoice.paid": _invoice_paid,
    "invoice.payment_failed": _invoice_failed,
    "customer.subscription.updated": _subscription_updated,
    "customer.subscription.deleted": _subscription_deleted,
}
