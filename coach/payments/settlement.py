"""Settling bookings that will not take place: the consumers of ``booking.cancelled``, ``booking.declined``,
``booking.expired`` and ``booking.no_show`` apply the cancellation policy (:mod:`coach.payments.policy`):
the credit back to its pack (:func:`coach.payments.credits.return_credit`) and the money's share back through
the provider (:func:`coach.payments.refunds.refund`).

Idempotent: the credit goes back once (its use is marked returned), and the refund asked for is what the
policy gives minus what was already refunded, so a second run asks for nothing. A booking that was only
``held`` was never paid (a payment arriving after it ended is refunded by the checkout's completion), and
a rescheduled booking's credit moved to its successor: neither is settled here.
"""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select

from coach import clock, money
from coach.booking.events import BOOKING_CANCELLED, BOOKING_DECLINED, BOOKING_EXPIRED, BOOKING_NO_SHOW
from coach.booking.models import Booking
from coach.extensions import db
from coach.payments import credits, policy, refunds
from coach.payments.models import Payment
from coach.platform import audit
from coach.platform.jobs import consumer

REASONS = {policy.ATHLETE_CANCEL: "Cancelled by the athlete", policy.COACH_CANCEL: "Cancelled by the coach",
           policy.DECLINED: "Declined by the coach", policy.EXPIRED: "Expired without an answer",
           policy.NO_SHOW: "No-show"}


def settle(booking: Booking, cause: str, now: datetime | None = None) -> policy.Outcome:
    """Apply the policy's outcome for ``booking`` ending by ``cause``; what it decided."""
    outcome = policy.outcome(cause, booking, now or clock.now())
    returned = credits.return_credit(booking, now=now) if outcome.return_credit else False
    refunded = 0
    if outcome.refund_percent:
        for payment in db.session.scalars(select(Payment).where(
                Payment.tenant_id == booking.tenant_id, Payment.booking_id == booking.id,
                Payment.status == "paid").order_by(Payment.created_at)):
            target = money.share(payment.amount_minor, outcome.refund_percent * 100)
            amount = min(target - payment.refunded_minor, payment.refundable_minor)
            if amount > 0:
                refunds.refund(payment, amount, reason=REASONS[cause], actor=None)
                refunded += amount
    if returned or refunded:
        audit.record("booking.settled", actor_label="system", target_type="booking", target_id=booking.id,
                     details={"cause": cause, "credit_returned": returned, "refunded_minor": refunded})
    return outcome


def _successor_exists(booking: Booking) -> bool:
    return db.session.scalar(select(Booking.id).where(Booking.tenant_id == booking.tenant_id,
                                                      Booking.rescheduled_from_id == booking.id).limit(1)) is not None


@consumer(BOOKING_CANCELLED, BOOKING_DECLINED, BOOKING_EXPIRED, BOOKING_NO_SHOW)
def booking_ended(payload: dict) -> None:
    """A booking will not take place (or was missed): give back what the policy says."""
    booking = db.session.scalar(select(Booking).where(Booking.id == uuid.UUID(payload["booking_id"])))
    if booking is None or payload.get("from") == "held" or booking.status != payload.get("to"):
        return
    if booking.status == "cancelled" and _successor_exists(booking):
        return
    settle(booking, policy.cause_of(booking, booking.status))
