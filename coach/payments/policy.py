"""The cancellation policy: what a booking that will not take place gives back, as one table.

The outcome depends on why it ends (the cause), whether that happened inside the offering's cancellation
window (late), what the offering says a late cancellation costs (``late_cancel_policy``: ``forfeit``, ``fee``
with ``late_cancel_fee_percent``, or ``refund``), and how it was paid (a credit, money, or nothing):

=====================  ===========  ===============================  ===================  ===================
cause                  window       late_cancel_policy               paid by credit       paid by money
=====================  ===========  ===============================  ===================  ===================
coach/admin cancel     any          any                              credit back          100 % back
declined, expired      any          any                              credit back          100 % back
athlete cancel         outside      any                              credit back          100 % back
athlete cancel         inside       refund                           credit back          100 % back
athlete cancel         inside       fee (p %)                        kept if p > 0        (100 - p) % back
athlete cancel         inside       forfeit                          kept                 nothing
no-show                --           refund                           credit back          100 % back
no-show                --           fee (p %)                        kept if p > 0        (100 - p) % back
no-show                --           forfeit                          kept                 nothing
=====================  ===========  ===============================  ===================  ===================

A credit cannot be split: a fee keeps it (unless the fee is 0 %). A free booking gives nothing back (there
is nothing to give). Only the athlete's own cancellation can be late; a booking the coach (or an admin,
even on the athlete's behalf) cancels, declines or lets expire always gives everything back.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from coach import clock
from coach.booking.models import Booking
from coach.extensions import db
from coach.payments.models import CreditUse, Payment

ATHLETE_CANCEL, COACH_CANCEL, DECLINED, EXPIRED, NO_SHOW = "athlete_cancel", "coach_cancel", "declined", "expired", \
    "no_show"
CAUSES = (ATHLETE_CANCEL, COACH_CANCEL, DECLINED, EXPIRED, NO_SHOW)
CREDIT, MONEY, FREE = "credit", "money", "free"


@dataclass(frozen=True)
class Outcome:
    """What goes back: the credit (``return_credit``) and ``refund_percent`` of the money paid."""

    return_credit: bool
    refund_percent: int

    @property
    def summary(self) -> str:
        if self.return_credit:
            return "The credit goes back to the pack."
        if self.refund_percent == 100:
            return "Everything paid is refunded."
        if self.refund_percent:
            return f"{self.refund_percent} % of the price is refunded."
        return "Nothing is given back."


EVERYTHING = Outcome(True, 100)
NOTHING = Outcome(False, 0)


def decide(cause: str, late: bool, late_policy: str, fee_percent: int, paid_by: str) -> Outcome:
    """The table above, as a function of its columns (no database)."""
    if cause not in CAUSES:
        raise ValueError(f"unknown cause {cause!r}")
    if paid_by == FREE:
        return NOTHING
    costs = cause == NO_SHOW or (cause == ATHLETE_CANCEL and late)
    if not costs or late_policy == "refund":
        outcome = EVERYTHING
    elif late_policy == "fee":
        fee = max(0, min(100, fee_percent))
        outcome = Outcome(fee == 0, 100 - fee)
    else:  # forfeit (and anything unknown: the stricter reading)
        outcome = NOTHING
    if paid_by == CREDIT:
        return Outcome(outcome.return_credit, 0)
    return Outcome(False, outcome.refund_percent)


def paid_by(booking: Booking) -> str:
    """How ``booking`` was paid: a credit not yet given back, a paid session payment, or nothing."""
    if db.session.scalar(select(func.count()).select_from(CreditUse).where(
            CreditUse.tenant_id == booking.tenant_id, CreditUse.booking_id == booking.id,
            CreditUse.returned_at.is_(None))):
        return CREDIT
    if db.session.scalar(select(func.count()).select_from(Payment).where(
            Payment.tenant_id == booking.tenant_id, Payment.booking_id == booking.id, Payment.status == "paid")):
        return MONEY
    return FREE


def cause_of(booking: Booking, to: str) -> str:
    """The cause of ``booking`` reaching status ``to``: a cancellation is the athlete's only when the athlete
    themself cancelled it."""
    if to == "cancelled":
        return ATHLETE_CANCEL if booking.cancelled_by_membership_id == booking.athlete_membership_id \
            else COACH_CANCEL
    return {"declined": DECLINED, "expired": EXPIRED, "no_show": NO_SHOW}[to]


def outcome(cause: str, booking: Booking, now: datetime | None = None) -> Outcome:
    """What ``booking``, ending by ``cause``, gives back (see the table).

    Late: a cancelled booking says whether its cancellation was late (decided when it happened); otherwise
    whether ``now`` lies inside the window of a confirmed session.
    """
    now = now or clock.now()
    offering = booking.offering
    if booking.status == "cancelled":
        late = booking.late_cancellation
    else:
        late = booking.status == "confirmed" and (booking.starts_at - now).total_seconds() \
            < offering.cancellation_window_hours * 3600
    return decide(cause, late, offering.late_cancel_policy, offering.late_cancel_fee_percent, paid_by(booking))
