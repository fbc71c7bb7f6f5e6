"""Money given back: refunds we make (the provider first, then our books), refunds made at the provider's
dashboard (learnt from its webhook) and disputes (chargebacks).

Each is one ledger transaction: the money leaves (``provider_clearing`` −R, ``refunds``/``disputes`` of the
payment +R) and is taken back from whoever had it, in proportion (``plan_reversal``): for a session, the
coach's earning (pending, or available once released) and the organization's commission; for a pack or a
plan period, the athlete's prepaid balance of its grant, the rest from the organization. The payment's
``refunded_minor``/``disputed_minor``, the booking (a full refund of a session still to come cancels it),
the credit note and the athlete's email change in the same transaction.

Concurrent refunds of one payment queue on its row lock, so "refundable" is read after the previous one
committed, and the refund number ``n`` (in the ledger key and the provider's idempotency key) is taken
under that lock: a retried request reuses the provider's refund instead of making a second.
"""
from __future__ import annotations

import logging
import uuid

from sqlalchemy import func, select

from coach import money
from coach.booking import lifecycle
from coach.booking.models import LIVE_STATUSES, Booking
from coach.errors import DomainError, NotAllowed
from coach.extensions import db
from coach.orgs.models import ADMIN, Membership
from coach.payments import credits, earnings, invoices, ledger
from coach.payments.events import PAYMENT_DISPUTED, PAYMENT_REFUNDED
from coach.payments.models import CreditGrant, LedgerTransaction, Payment
from coach.payments.settings import billing_settings
from coach.platform import audit
from coach.platform.outbox import emit

log = logging.getLogger(__name__)

REASON_MAX = 300


class RefundError(DomainError):
    """A refund that cannot be made as asked (too much, nothing paid); the message says why."""


class ProviderRefundFailed(DomainError):
    """The provider refused or could not be reached: nothing was recorded; try again."""

    status = 502


def may_refund(actor: Membership | None, payment: Payment) -> bool:
    """Admins refund any payment; a coach only their own, and only when the organization allows it."""
    if actor is None:
        return False
    if actor.role == ADMIN:
        return True
    return (actor.id == payment.coach_membership_id
            and billing_settings(payment.tenant_id).coaches_may_refund)


def _lock(payment: Payment) -> Payment:
    """The payment's row, locked until the transaction ends, and its current values."""
    db.session.execute(select(Payment.id).where(Payment.tenant_id == payment.tenant_id, Payment.id == payment.id)
                       .with_for_update())
    db.session.refresh(payment)
    return payment


def refund_count(payment: Payment) -> int:
    return int(db.session.scalar(select(func.count()).select_from(LedgerTransaction).where(
        LedgerTransaction.tenant_id == payment.tenant_id, LedgerTransaction.payment_id == payment.id,
        LedgerTransaction.kind == "refund")))


def _take_back(payment: Payment, amount: int) -> tuple[list[ledger.Line], earnings.Reversal | None]:
    """The lines that take ``amount`` back from whoever holds the payment's money (see the module doc)."""
    cur = payment.currency
    if payment.purpose == "session" and payment.booking_id is not None:
        earning = earnings.earning_for(payment.booking_id, payment.tenant_id, lock=True)
        if earning is not None and earning.payment_id == payment.id:
            plan = earnings.plan_reversal(earning, amount)
            rest = amount - plan.gross  # nothing left of the earning (never expected): the organization gives it
            return [*plan.lines, ledger.line("org_commission", rest, cur)], plan
        return [ledger.line("org_commission", amount, cur)], None
    grant_id = db.session.scalar(select(CreditGrant.id).where(CreditGrant.tenant_id == payment.tenant_id,
                                                               CreditGrant.payment_id == payment.id))
    prepaid = -ledger.balance(payment.tenant_id, "athlete_prepaid", cur, grant_id) if grant_id else 0
    from_prepaid = max(0, min(amount, prepaid))
    return [ledger.line("athlete_prepaid", from_prepaid, cur, grant_id),
            ledger.line("org_commission", amount - from_prepaid, cur)], None


def _revoke_if_all_back(payment: Payment, amount: int, memo: str, actor: Membership | None) -> None:
    """A pack or plan period given back in full loses its credits left (before the take-back, which then
    finds the grant's prepaid money moved to the organization by the lapse)."""
    if payment.purpose == "session" or payment.refunded_minor + payment.disputed_minor + amount < payment.amount_minor:
        return
    grant = db.session.scalar(select(CreditGrant).where(CreditGrant.tenant_id == payment.tenant_id,
                                                        CreditGrant.payment_id == payment.id))
    if grant is not None:
        credits.revoke(grant, memo, actor)


def _book(payment: Payment, amount: int, *, kind: str, key: str, account: str, memo: str,
          actor: Membership | None) -> bool:
    """Post the money-out and take-back transaction; apply the earning's change when it was new."""
    if ledger.posted(payment.tenant_id, key):
        return False
    _revoke_if_all_back(payment, amount, memo, actor)
    lines, plan = _take_back(payment, amount)
    cur = payment.currency
    # Two steps in one transaction: the shares taken back become owed to the athlete (``account`` of the
    # payment, credited), and the money going out settles that (debited; ``provider_clearing`` credited).
    _, created = ledger.post(payment.tenant_id, kind, key, [
        *lines, ledger.line(account, -amount, cur, payment.id),
        ledger.line(account, amount, cur, payment.id), ledger.line("provider_clearing", -amount, cur)],
        memo=memo[:300], payment_id=payment.id,
        booking_id=payment.booking_id, actor_membership_id=actor.id if actor else None)
    if created and plan is not None:
        plan.apply()
    return created


def _after_money_back(payment: Payment, actor: Membership | None, reason: str) -> None:
    """A payment given back in full: its session, if still to come, is cancelled."""
    if payment.booking_id is None or payment.refunded_minor + payment.disputed_minor < payment.amount_minor:
        return
    booking = db.session.scalar(select(Booking).where(Booking.tenant_id == payment.tenant_id,
                                                      Booking.id == payment.booking_id))
    if booking is not None and booking.status in LIVE_STATUSES and booking.status != "active":
        lifecycle.transition(booking, "cancel", None, reason=f"refunded: {reason}"[:200])


def refund(payment: Payment, amount_minor: int, *, reason: str, actor: Membership | None) -> int:
    """Give ``amount_minor`` of ``payment`` back to the athlete.

    The provider's refund first (card payments; a manual payment is handed back by hand), then in the same
    transaction: the ledger, ``refunded_minor``, the booking (a full refund of a session still to come
    cancels it), a credit note and the athlete's email.

    :param actor: who refunds (checked: :func:`may_refund`); ``None`` for the system (the cancellation
        policy, a checkout completed too late).
    :raises RefundError: (422) more than is refundable, or nothing paid.
    :returns: the refund's number for this payment (1, 2, ...).
    """
    if actor is not None and not may_refund(actor, payment):
        raise NotAllowed("You may not refund this payment.")
    reason = " ".join((reason or "").split())[:REASON_MAX] or "refund"
    payment = _lock(payment)
    if payment.status != "paid":
        raise RefundError("Only a paid payment can be refunded.")
    if not isinstance(amount_minor, int) or amount_minor <= 0:
        raise RefundError("Enter an amount above zero.")
    if amount_minor > payment.refundable_minor:
        raise RefundError(
            f"At most {money.format(payment.refundable_minor, payment.currency)} can be refunded "
            f"(paid {payment.amount_label}, refunded {money.format(payment.refunded_minor, payment.currency)}"
            + (f", disputed {money.format(payment.disputed_minor, payment.currency)}" if payment.disputed_minor
               else "") + ").")
    n = refund_count(payment) + 1
    provider_refund_id = None
    if payment.method == "card" and payment.provider_payment_id:
        provider_refund_id = _provider_refund(payment, amount_minor, reason, n)
    _book(payment, amount_minor, kind="refund", key=f"refund:{payment.id}:{n}", account="refunds",
          memo=f"refund {n}: {reason}", actor=actor)
    payment.refunded_minor += amount_minor
    db.session.flush()
    audit.record("payment.refunded", actor=actor.user if actor else None, actor_label=None if actor else "system",
                 target_type="payment", target_id=payment.id,
                 details={"amount_minor": amount_minor, "currency": payment.currency, "reason": reason, "number": n,
                          **({"provider_refund": provider_refund_id} if provider_refund_id else {})})
    _after_money_back(payment, actor, reason)
    _credit_note_and_notice(payment, amount_minor, reason)
    return n


def _provider_refund(payment: Payment, amount: int, reason: str, n: int) -> str:
    from coach.payments import provider  # the Stripe client (or the fake); imported where it is used

    try:
        return provider.refund(payment.provider_payment_id, amount, reason=reason,
                               idempotency_key=f"refund-{payment.tenant_id}-{payment.id}-{n}")
    except DomainError:
        raise
    except Exception as exc:  # the provider's own errors: nothing of ours was written yet
        log.warning("provider refund of payment %s failed: %s", payment.id, exc)
        raise ProviderRefundFailed("The payment provider did not make the refund; nothing was changed. "
                                   "Try again in a moment.") from exc


def _credit_note_and_notice(payment: Payment, amount: int, reason: str) -> None:
    note = invoices.issue_credit_note(payment, amount, reason)
    emit(PAYMENT_REFUNDED, {"payment_id": str(payment.id), "amount_minor": amount, "reason": reason,
                            "credit_note_id": str(note.id)}, tenant_id=payment.tenant_id)
    invoices.email_refund(payment, amount, reason, note)


def record_provider_refund(payment: Payment, amount_refunded_total: int) -> int:
    """A refund made at the provider (its dashboard): the provider's cumulative ``amount_refunded`` of the
    charge. What goes beyond what we recorded is booked as a refund (no provider call); idempotent by the
    cumulative amount, so a redelivered or late event changes nothing. :returns: the amount newly booked."""
    payment = _lock(payment)
    if payment.status != "paid":
        return 0
    extra = min(int(amount_refunded_total) - payment.refunded_minor, payment.refundable_minor)
    if extra <= 0:
        return 0
    reason = "refunded at the payment provider"
    created = _book(payment, extra, kind="refund", key=f"refund:{payment.id}:provider:{amount_refunded_total}",
                    account="refunds", memo=reason, actor=None)
    if not created:
        return 0
    payment.refunded_minor += extra
    db.session.flush()
    audit.record("payment.refunded", actor_label="provider", target_type="payment", target_id=payment.id,
                 details={"amount_minor": extra, "currency": payment.currency, "reason": reason})
    _after_money_back(payment, None, reason)
    _credit_note_and_notice(payment, extra, reason)
    return extra


def record_dispute(payment: Payment, dispute_id: str, amount_minor: int) -> int:
    """A dispute (chargeback) opened at the provider: the disputed money is taken back like a refund, into
    ``disputes`` of the payment (key ``dispute:{dispute_id}``: once per dispute). :returns: the amount booked."""
    payment = _lock(payment)
    if payment.status != "paid":
        return 0
    amount = min(int(amount_minor), payment.refundable_minor)
    if amount <= 0:
        return 0
    created = _book(payment, amount, kind="dispute", key=f"dispute:{dispute_id}", account="disputes",
                    memo=f"dispute {dispute_id}", actor=None)
    if not created:
        return 0
    payment.disputed_minor += amount
    db.session.flush()
    audit.record("payment.disputed", actor_label="provider", target_type="payment", target_id=payment.id,
                 details={"amount_minor": amount, "currency": payment.currency, "dispute": dispute_id})
    _after_money_back(payment, None, "disputed")
    emit(PAYMENT_DISPUTED, {"payment_id": str(payment.id), "amount_minor": amount}, tenant_id=payment.tenant_id)
    return amount


def refunds_of(payment: Payment) -> list[LedgerTransaction]:
    """The payment's refunds and disputes, oldest first (for its page)."""
    return list(db.session.scalars(select(LedgerTransaction).where(
        LedgerTransaction.tenant_id == payment.tenant_id, LedgerTransaction.payment_id == payment.id,
        LedgerTransaction.kind.in_(("refund", "dispute"))).order_by(LedgerTransaction.created_at)))


def get_payment(tenant_id: uuid.UUID, payment_id) -> Payment | None:
    try:
        pid = uuid.UUID(str(payment_id))
    except ValueError:
        return None
    return db.session.scalar(select(Payment).where(Payment.tenant_id == tenant_id, Payment.id == pid))
