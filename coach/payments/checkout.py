"""Checkout orchestration: a pending payment and the provider's checkout for a session, a pack or a plan;
the one completion path every payment takes (card or by hand); expiry and cancellation of what was not paid.

The webhook, not the browser coming back, is the truth: :func:`complete` runs in the job that applies the
provider's ``checkout.session.completed`` (or ``invoice.paid``, or ``charge.refunded`` arriving first), or in
the request that records a payment by hand. It is idempotent (a paid payment is left alone), checks the
amount and currency against what we asked for (a mismatch is refused, recorded and the money sent back),
and then hands the payment to its purpose: a held booking is settled (or, if its time is gone, the money goes
back in full), a pack grants its credits, a plan activates its subscription. Services never commit.
"""
from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app, url_for
from sqlalchemy import select, text, update

from coach import clock, money
from coach.booking import lifecycle
from coach.booking.events import BOOKING_CANCELLED, BOOKING_EXPIRED
from coach.booking.models import LIVE_STATUSES, Booking, Offering
from coach.errors import Conflict, DomainError, NotAllowed
from coach.extensions import db
from coach.orgs.models import ATHLETE, STAFF, Membership, Organization
from coach.payments import credits, earnings, provider, refunds, subscriptions
from coach.payments.events import PAYMENT_FAILED, PAYMENT_PAID
from coach.payments.models import CARD, MANUAL, PACK, PLAN, Payment, Product, Subscription
from coach.platform import audit
from coach.platform.jobs import after_commit, consumer, each_tenant
from coach.platform.outbox import emit
from coach.platform.periodic import periodic
from coach.timezones import clock_time, zone_abbreviations

log = logging.getLogger(__name__)

OPEN = ("pending", "failed")  # a payment whose checkout may still be paid
SLOT_GONE = "The time was no longer free when the payment arrived: it was refunded in full."
HOLD_GONE = "The time was no longer held when the payment arrived: it was refunded in full."


class CheckoutError(DomainError):
    """Something about a purchase the buyer can fix (or should be told)."""


class ProviderUnavailable(DomainError):
    status = 503


# --- starting a checkout -------------------------------------------------------------------------------


def _hold_minutes() -> int:
    return int(current_app.config.get("PAYMENT_HOLD_MINUTES", 30))


def _return_urls(tenant_id: uuid.UUID, payment_id: uuid.UUID) -> tuple[str, str]:
    slug = db.session.scalar(select(Organization.slug).where(Organization.id == tenant_id))
    base = current_app.config["APP_BASE_URL"].rstrip("/")
    # The provider fills in its session's id: a buyer it sends back has paid, even if the webhook is still on its
    # way (and the payment says "failed" from a declined first try).
    return (base + url_for("payments.checkout_return", slug=slug, payment_id=payment_id)
            + "?session_id={CHECKOUT_SESSION_ID}",
            base + url_for("payments.checkout_cancel", slug=slug, payment_id=payment_id))


def _open_checkout(payment: Payment, *, mode: str, title: str, email: str, interval: str | None = None,
                   extra: dict | None = None) -> str:
    """Create the provider's checkout for ``payment`` (flushed, pending) and remember its id; the URL to go to."""
    success, cancel = _return_urls(payment.tenant_id, payment.id)
    metadata = {"tenant_id": str(payment.tenant_id), "payment_id": str(payment.id), **(extra or {})}
    try:
        made = provider.create_checkout(
            mode=mode, title=title[:120], amount_minor=payment.amount_minor, currency=payment.currency,
            interval=interval, customer_email=email, success_url=success, cancel_url=cancel, metadata=metadata,
            expires_at=payment.expires_at)
    except DomainError:
        raise
    except Exception as exc:  # the provider is down or refused: nothing of ours is kept (the caller rolls back)
        log.warning("creating a checkout for payment %s failed: %s", payment.id, exc)
        raise ProviderUnavailable("The payment provider cannot be reached right now. Try again in a minute.") \
            from exc
    payment.provider_checkout_id = made.id
    db.session.flush()
    return made.url


def _check_athlete(athlete: Membership, actor: Membership, tenant_id: uuid.UUID) -> None:
    if athlete.tenant_id != tenant_id or athlete.role != ATHLETE:
        raise CheckoutError("Purchases are made for athletes of this organization.")
    if actor.id != athlete.id and actor.role not in STAFF:
        raise NotAllowed("You can only buy for yourself.")


def start_session_checkout(offering: Offering, athlete: Membership, starts_at: datetime, note: str,
                           actor: Membership) -> tuple[Booking, Payment, str]:
    """Hold the time for ``PAYMENT_HOLD_MINUTES`` (a ``held`` booking), make the pending payment (the price
    from the offering, never from a form) and the provider's checkout; returns the URL to send the buyer to."""
    if not offering.price_minor:
        raise CheckoutError("This offering is free: book it without paying.")
    _check_athlete(athlete, actor, offering.tenant_id)
    booking = lifecycle.request_booking(offering, athlete, starts_at, note, actor, hold_minutes=_hold_minutes())
    payment = Payment(id=uuid.uuid4(), tenant_id=offering.tenant_id, athlete_membership_id=athlete.id,
                      coach_membership_id=offering.coach_membership_id, purpose="session", booking_id=booking.id,
                      amount_minor=offering.price_minor, currency=offering.currency, method=CARD, status="pending",
                      expires_at=booking.expires_at)
    db.session.add(payment)
    db.session.flush()
    when = _as_read_by(athlete, booking.starts_at)
    url = _open_checkout(payment, mode="payment", title=f"{offering.title}, {when}", email=athlete.user.email,
                         extra={"booking_id": str(booking.id)})
    audit.record("payment.checkout", actor=actor.user, target_type="payment", target_id=payment.id,
                 details={"purpose": "session", "booking": str(booking.id), "amount": payment.amount_minor,
                          "currency": payment.currency})
    return booking, payment, url


def _as_read_by(athlete: Membership, at: datetime) -> str:
    """The session's start as its buyer reads clocks, for the provider's checkout page: in their zone, named, on
    their 12- or 24-hour clock ("Mon 7 Dec 2026, 2:30 pm CET"), not in UTC."""
    name = athlete.user.timezone or "UTC"
    try:
        local = at.astimezone(ZoneInfo(name))
    except (KeyError, ValueError):
        name, local = "UTC", at.astimezone(ZoneInfo("UTC"))
    hours = clock_time(local, athlete.user.hour_cycle or 24)
    return f"{local:%a %-d %b %Y}, {hours} {zone_abbreviations(name, at, at)}"


def _check_product(product: Product, athlete: Membership) -> None:
    if product.tenant_id != athlete.tenant_id or product.archived_at is not None:
        raise CheckoutError("This product is not on sale any more.")
    if product.kind == PLAN:
        taken = db.session.scalar(select(Subscription.id).where(
            Subscription.tenant_id == product.tenant_id, Subscription.athlete_membership_id == athlete.id,
            Subscription.product_id == product.id, Subscription.status.in_(("active", "past_due"))))
        if taken is not None:
            raise Conflict("You already subscribe to this plan (see My billing).")


def start_product_checkout(product: Product, athlete: Membership, actor: Membership) -> tuple[Payment, str]:
    """A pending payment for a pack or a plan (with its ``incomplete`` subscription) and the provider's checkout."""
    _check_athlete(athlete, actor, product.tenant_id)
    _check_product(product, athlete)
    now = clock.now()
    subscription = None
    if product.kind == PLAN:
        subscription = Subscription(id=uuid.uuid4(), tenant_id=product.tenant_id, athlete_membership_id=athlete.id,
                                    product_id=product.id, status="incomplete")
        db.session.add(subscription)
        db.session.flush()
    payment = Payment(id=uuid.uuid4(), tenant_id=product.tenant_id, athlete_membership_id=athlete.id,
                      coach_membership_id=product.coach_membership_id, purpose=product.kind, product_id=product.id,
                      subscription_id=subscription.id if subscription else None, amount_minor=product.price_minor,
                      currency=product.currency, method=CARD, status="pending",
                      expires_at=now + timedelta(minutes=max(_hold_minutes(), 30)))
    db.session.add(payment)
    db.session.flush()
    extra = {"subscription_id": str(subscription.id)} if subscription else {}
    url = _open_checkout(payment, mode="subscription" if product.kind == PLAN else "payment", title=product.title,
                         email=athlete.user.email, interval=product.interval, extra=extra)
    audit.record("payment.checkout", actor=actor.user, target_type="payment", target_id=payment.id,
                 details={"purpose": product.kind, "product": product.title, "amount": payment.amount_minor,
                          "currency": payment.currency})
    return payment, url


def record_manual_payment(*, athlete: Membership, actor: Membership, reference: str, booking: Booking | None = None,
                          product: Product | None = None) -> Payment:
    """A cash or bank-transfer payment recorded by the coach or an admin: the amount is the stored price, and
    it completes exactly like a card payment (settles a held booking, grants a pack, starts a plan)."""
    reference = (reference or "").strip()
    if not reference or len(reference) > 120 or not reference.isprintable():
        raise CheckoutError("Enter the payment's reference (at most 120 characters), e.g. the transfer's id.")
    if (booking is None) == (product is None):
        raise CheckoutError("Say what was paid for: a booking or a product.")
    tenant_id = athlete.tenant_id
    coach_id = booking.coach_membership_id if booking is not None else product.coach_membership_id
    if actor.tenant_id != tenant_id or (actor.role not in STAFF and actor.id != coach_id):
        raise NotAllowed("Only the coach or an admin records a payment by hand.")
    if booking is not None:
        if booking.tenant_id != tenant_id or booking.athlete_membership_id != athlete.id:
            raise CheckoutError("That booking is not this athlete's.")
        if booking.status not in LIVE_STATUSES:
            raise CheckoutError(f"This booking is {booking.status_label.lower()}: there is nothing to pay.")
        offering = db.session.get(Offering, booking.offering_id)
        if not offering.price_minor:
            raise CheckoutError("This offering is free.")
        paid = db.session.scalar(select(Payment.id).where(
            Payment.tenant_id == tenant_id, Payment.booking_id == booking.id, Payment.status == "paid"))
        if paid is not None:
            raise Conflict("This booking is paid already.")
        amount, currency, purpose = offering.price_minor, offering.currency, "session"
    else:
        if athlete.role != ATHLETE:
            raise CheckoutError("Purchases are made for athletes of this organization.")
        _check_product(product, athlete)
        amount, currency, purpose = product.price_minor, product.currency, product.kind
    subscription = None
    if purpose == PLAN:
        subscription = Subscription(id=uuid.uuid4(), tenant_id=tenant_id, athlete_membership_id=athlete.id,
                                    product_id=product.id, status="incomplete")
        db.session.add(subscription)
        db.session.flush()
    payment = Payment(id=uuid.uuid4(), tenant_id=tenant_id, athlete_membership_id=athlete.id,
                      coach_membership_id=coach_id, purpose=purpose,
                      booking_id=booking.id if booking is not None else None,
                      product_id=product.id if product is not None else None,
                      subscription_id=subscription.id if subscription else None, amount_minor=amount,
                      currency=currency, method=MANUAL, status="pending", reference=reference,
                      recorded_by_membership_id=actor.id)
    db.session.add(payment)
    db.session.flush()
    audit.record("payment.manual", actor=actor.user, target_type="payment", target_id=payment.id,
                 details={"purpose": purpose, "amount": amount, "currency": currency, "reference": reference,
                          "athlete": athlete.user.email})
    complete(payment, provider_payment_id=None, amount_minor=amount, currency=currency)
    if payment.status != "paid":
        raise CheckoutError(payment.failure_reason or "The payment could not be recorded.")
    return payment


# --- completion: the webhook's (or the manual form's) one path ---------------------------------------------


def lock(payment: Payment) -> Payment:
    """Re-read ``payment`` under its row lock: every change to a payment's status waits for the others."""
    db.session.execute(select(Payment.id).where(Payment.tenant_id == payment.tenant_id, Payment.id == payment.id)
                       .with_for_update())
    db.session.refresh(payment)
    return payment


def _set_status(payment: Payment, seen: tuple[str, ...], status: str, **values) -> bool:
    """Compare-and-swap ``payment``'s status from one of ``seen`` to ``status`` (with ``values``)."""
    changed = db.session.execute(
        update(Payment).where(Payment.tenant_id == payment.tenant_id, Payment.id == payment.id,
                              Payment.status.in_(seen))
        .values(status=status, **values).returning(Payment.id)).scalar()
    db.session.refresh(payment)
    return changed is not None


def complete(payment: Payment, *, provider_payment_id: str | None, amount_minor: int, currency: str,
             provider_invoice_id: str | None = None, provider_subscription_id: str | None = None,
             provider_customer_id: str | None = None, period: tuple[datetime, datetime] | None = None) -> str:
    """Apply the money received for ``payment``; idempotent. Returns what happened (an event's outcome).

    The amount and currency must be what we asked for; otherwise the payment is refused (``failed`` with the
    reason) and the money goes back at the provider. A session's held booking is settled; if its time is
    gone (the hold expired, the booking was cancelled) the payment is still recorded and then refunded in
    full. A pack grants its credits; a plan activates its subscription (``period`` from the provider's
    invoice, or the plan's interval from now).
    """
    lock(payment)
    if payment.status == "paid":
        changes = {}
        if provider_invoice_id and not payment.provider_invoice_id:
            changes["provider_invoice_id"] = provider_invoice_id
        if provider_payment_id and not payment.provider_payment_id:
            changes["provider_payment_id"] = provider_payment_id
        if changes:
            db.session.execute(update(Payment).where(Payment.tenant_id == payment.tenant_id,
                                                     Payment.id == payment.id).values(**changes))
            db.session.refresh(payment)
        if payment.purpose == PLAN and (provider_subscription_id or period):
            subscriptions.link_provider(payment, provider_subscription_id, provider_customer_id, period)
        return "already paid"
    currency = (currency or "").upper()
    if int(amount_minor) != payment.amount_minor or currency != payment.currency:
        return _refuse_mismatch(payment, provider_payment_id, int(amount_minor), currency)
    _set_status(payment, ("pending", "failed", "expired", "cancelled"), "paid", paid_at=clock.now(),
                provider_payment_id=provider_payment_id, failure_reason="",
                **({"provider_invoice_id": provider_invoice_id} if provider_invoice_id else {}))
    outcome = "paid"
    if payment.purpose == "session":
        outcome = _complete_session(payment)
    elif payment.purpose == PACK:
        credits.grant_for_payment(payment)
    else:
        subscriptions.activate(payment, provider_subscription_id=provider_subscription_id,
                               provider_customer_id=provider_customer_id, period=period)
    emit(PAYMENT_PAID, {"payment_id": str(payment.id)}, tenant_id=payment.tenant_id)
    audit.record("payment.paid", actor=None, actor_label="system" if payment.method == CARD else None,
                 target_type="payment", target_id=payment.id,
                 details={"amount": payment.amount_minor, "currency": payment.currency, "method": payment.method,
                          "outcome": outcome})
    return outcome


def _complete_session(payment: Payment) -> str:
    booking = db.session.scalar(select(Booking).where(Booking.tenant_id == payment.tenant_id,
                                                      Booking.id == payment.booking_id).with_for_update())
    settled = booking.status in LIVE_STATUSES and booking.status != "held"
    if booking.status == "held":
        offering = db.session.get(Offering, booking.offering_id)
        try:
            with db.session.begin_nested():
                lifecycle.transition(booking, "settle_confirm" if offering.auto_confirm else "settle", None)
            settled = True
        except DomainError:
            db.session.refresh(booking)
    earnings.record_session_payment(payment, booking)
    if settled:
        return f"paid; booking {booking.status}"
    # The hold expired (or the booking was cancelled) before the money arrived: all of it goes back.
    reason = HOLD_GONE if booking.status == "expired" else SLOT_GONE
    refunds.refund(payment, payment.amount_minor - payment.refunded_minor, reason=reason, actor=None)
    db.session.execute(update(Payment).where(Payment.tenant_id == payment.tenant_id, Payment.id == payment.id)
                       .values(failure_reason=reason))
    db.session.refresh(payment)
    return f"paid after the booking was {booking.status}: refunded in full"


def _refuse_mismatch(payment: Payment, provider_payment_id: str | None, amount_minor: int, currency: str) -> str:
    got = f"{amount_minor} {currency}"
    try:
        got = money.format(amount_minor, currency)
    except Exception:  # an unknown currency code: shown as it came
        pass
    reason = (f"The provider reported {got}, not {payment.amount_label}: the payment was refused and the money "
              "sent back.")[:300]
    # No expiry any more: the sweep must not turn the refusal into "expired" (its reason is the one to show).
    _set_status(payment, ("pending", "failed", "expired", "cancelled"), "failed", failure_reason=reason,
                provider_payment_id=provider_payment_id, expires_at=None)
    if provider_payment_id and amount_minor > 0:
        provider.refund(provider_payment_id, amount_minor, reason="amount_mismatch",
                        idempotency_key=f"mismatch:{payment.id}")
    _release_hold(payment, "amount mismatch")
    emit(PAYMENT_FAILED, {"payment_id": str(payment.id), "reason": reason}, tenant_id=payment.tenant_id)
    audit.record("payment.refused", actor=None, actor_label="system", target_type="payment", target_id=payment.id,
                 details={"expected": payment.amount_minor, "expected_currency": payment.currency,
                          "got": amount_minor, "got_currency": currency})
    return "refused: amount or currency mismatch; money sent back"


# --- not paid: failed, expired, cancelled ---------------------------------------------------------------


def fail(payment: Payment, reason: str) -> bool:
    """The provider declined a payment attempt: ``failed`` with the reason (the checkout may still be retried
    while it is open; a later success completes it all the same)."""
    lock(payment)
    if not _set_status(payment, ("pending",), "failed", failure_reason=(reason or "The payment failed.")[:300]):
        return False
    emit(PAYMENT_FAILED, {"payment_id": str(payment.id), "reason": payment.failure_reason},
         tenant_id=payment.tenant_id)
    return True


def expire(payment: Payment, reason: str = "The checkout expired before it was paid.", *,
           status: str = "expired", tell_provider: bool = True) -> bool:
    """End an unpaid payment (``expired`` or ``cancelled``): its held booking goes, its plan's subscription
    ends, and the provider's checkout is expired too (after the commit). False if it was not open."""
    lock(payment)
    if not _set_status(payment, OPEN, status, failure_reason=reason[:300]):
        return False
    _release_hold(payment, reason)
    if payment.subscription_id is not None:
        subscriptions.abandon(payment)
    checkout_id = payment.provider_checkout_id
    if tell_provider and checkout_id:
        after_commit(lambda: _expire_at_provider(checkout_id))
    return True


def _expire_at_provider(checkout_id: str) -> None:
    try:
        provider.expire_checkout(checkout_id)
    except Exception as exc:  # already completed or expired there: its own webhook says which
        log.info("expiring checkout %s at the provider: %s", checkout_id, exc)


def _release_hold(payment: Payment, reason: str) -> None:
    if payment.booking_id is None:
        return
    booking = db.session.scalar(select(Booking).where(Booking.tenant_id == payment.tenant_id,
                                                      Booking.id == payment.booking_id))
    if booking is not None and booking.status == "held":
        try:
            with db.session.begin_nested():
                lifecycle.transition(booking, "expire", None)
        except DomainError:
            pass


def cancel_hold(booking: Booking, actor: Membership) -> Booking:
    """The athlete gives up a held booking before paying: the booking is cancelled, its payment too, and the
    provider's checkout expired."""
    if booking.status != "held":
        raise CheckoutError(f"This booking is {booking.status_label.lower()}: there is no unpaid hold to cancel.")
    if actor.id != booking.athlete_membership_id and actor.role not in STAFF:
        raise NotAllowed("Only the athlete cancels this hold.")
    # The payments' locks first, then the booking's: the order complete() takes them in (no deadlock with a
    # payment arriving at the same moment; whichever comes second sees what the first did).
    payments = db.session.scalars(select(Payment).where(
        Payment.tenant_id == booking.tenant_id, Payment.booking_id == booking.id, Payment.status.in_(OPEN))
        .with_for_update()).all()
    lifecycle.transition(booking, "cancel", actor)
    for payment in payments:
        expire(payment, "Cancelled before it was paid.", status="cancelled")
    return booking


def pay_url(payment: Payment) -> str | None:
    """Where to resume an open checkout (the provider's page), or ``None`` when it cannot be paid any more."""
    if payment.status not in OPEN or payment.method != CARD or not payment.provider_checkout_id:
        return None
    if payment.expires_at is not None and payment.expires_at <= clock.now():
        return None
    if payment.booking_id is not None:
        status = db.session.scalar(select(Booking.status).where(Booking.tenant_id == payment.tenant_id,
                                                                 Booking.id == payment.booking_id))
        if status != "held":
            return None
    try:
        found = provider.retrieve_checkout(payment.provider_checkout_id)
    except DomainError as exc:
        log.info("checkout %s cannot be resumed: %s", payment.provider_checkout_id, exc)
        return None
    return found.get("url") if found.get("status") == "open" else None


def payment_for(tenant_id: uuid.UUID, payment_id) -> Payment | None:
    try:
        pid = uuid.UUID(str(payment_id))
    except ValueError:
        return None
    return db.session.scalar(select(Payment).where(Payment.tenant_id == tenant_id, Payment.id == pid))


# --- consumers and the sweep ---------------------------------------------------------------------------


@consumer(PAYMENT_FAILED)
def _note_failure(payload: dict) -> None:
    """The failure in the worker's log (the return page tells the buyer; notifications may add a consumer)."""
    log.info("payment %s failed: %s", payload.get("payment_id"), payload.get("reason"))


@consumer(BOOKING_EXPIRED, BOOKING_CANCELLED)
def _booking_left_hold(payload: dict) -> None:
    """A held booking expired or was cancelled: its unpaid payment ends with it, and the checkout too."""
    if payload.get("from") != "held":
        return
    booking_id = uuid.UUID(payload["booking_id"])
    for payment in db.session.scalars(select(Payment).where(Payment.booking_id == booking_id,
                                                            Payment.status.in_(OPEN))).all():
        cancelled = payload.get("to") == "cancelled"
        expire(payment, "Cancelled before it was paid." if cancelled else "The time was held for "
               f"{_hold_minutes()} minutes and the payment did not arrive.",
               status="cancelled" if cancelled else "expired")


def expire_due(tenant_id: uuid.UUID, now: datetime | None = None) -> int:
    """Expire the organization's open payments past their ``expires_at`` (checkouts never completed)."""
    now = now or clock.now()
    done = 0
    for payment in db.session.scalars(select(Payment).where(
            Payment.tenant_id == tenant_id, Payment.status.in_(OPEN), Payment.method == CARD,
            Payment.expires_at <= now).limit(500)).all():
        done += expire(payment)
    return done


@periodic(every=60, name="sweep_payment_checkouts")
def sweep_checkouts() -> int:
    """Open checkouts past their time, in every organization (the held bookings' own expiry is the booking
    sweep's; this catches packs and plans, and anything a lost event left behind)."""
    return each_tenant(due_tenants(), expire_due, "payment checkout sweep")


def due_tenants(now: datetime | None = None) -> list[uuid.UUID]:
    """Organizations with open card payments past their time (the migration's narrow definer function)."""
    return list(db.session.scalars(text("SELECT payments_due_tenants(:now)"), {"now": now or clock.now()}))
