"""Payouts: what a coach earned over a period (sessions delivered, gross, commission, refunds, net) and the
record of paying it out by hand (a bank transfer's reference), which moves the available earnings to paid.

Paying through Stripe Connect (transfers to the coach's connected account) is the next step; the ``method``
column already allows ``stripe_connect``. Until then an admin pays and records it here.
"""
from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import func, select, update

from coach import money
from coach.booking.models import Booking, Offering
from coach.errors import DomainError
from coach.extensions import db
from coach.orgs.models import Membership
from coach.payments import earnings, ledger
from coach.payments.models import Earning, LedgerEntry, LedgerTransaction, Payout
from coach.platform import audit

UTC = timezone.utc
REFERENCE_MAX = 120
MAX_PERIOD_DAYS = 400
STATUS_LABELS = {"pending": "Pending", "available": "Available", "paid": "Paid out", "reversed": "Refunded"}


class PayoutError(DomainError):
    """A period or payout that cannot be (nothing to pay, a bad period, no reference)."""


@dataclass
class Line:
    earning: Earning
    starts_at: datetime
    offering: str
    athlete: str
    refunded: int  # gross taken back (refunds, disputes, returned credits)

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.earning.status, self.earning.status)

    @property
    def commission(self) -> int:
        """The commission kept (what was taken back of it is no longer the organization's)."""
        return self.earning.commission_minor - (self.refunded - self.earning.reversed_minor)

    @property
    def net(self) -> int:
        return self.earning.net_minor - self.earning.reversed_minor


@dataclass
class Totals:
    currency: str
    sessions: int = 0
    gross: int = 0
    commission: int = 0
    refunds: int = 0
    net: int = 0
    payable: int = 0  # available and not yet paid out


@dataclass
class Report:
    coach: Membership
    start: date
    end: date
    lines: list[Line] = field(default_factory=list)
    totals: list[Totals] = field(default_factory=list)
    payouts: list[Payout] = field(default_factory=list)

    @property
    def payable(self) -> bool:
        return any(t.payable > 0 for t in self.totals)


def check_period(start: date, end: date) -> None:
    if start > end:
        raise PayoutError("The period's start must not be after its end.")
    if (end - start).days > MAX_PERIOD_DAYS:
        raise PayoutError(f"A period can span at most {MAX_PERIOD_DAYS} days.")


def _bounds(start: date, end: date) -> tuple[datetime, datetime]:
    return datetime.combine(start, time(), UTC), datetime.combine(end + timedelta(days=1), time(), UTC)


def _commission_back(tenant_id: uuid.UUID, booking_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    if not booking_ids:
        return {}
    rows = db.session.execute(
        select(LedgerTransaction.booking_id, func.sum(LedgerEntry.amount))
        .join(LedgerEntry, (LedgerEntry.tenant_id == LedgerTransaction.tenant_id)
              & (LedgerEntry.transaction_id == LedgerTransaction.id))
        .where(LedgerTransaction.tenant_id == tenant_id, LedgerTransaction.booking_id.in_(booking_ids),
               LedgerTransaction.kind.in_(earnings.TAKE_BACK_KINDS), LedgerEntry.account == "org_commission")
        .group_by(LedgerTransaction.booking_id)).all()
    return {booking_id: int(total) for booking_id, total in rows}


def report(coach: Membership, start: date, end: date) -> Report:
    """The coach's sessions of the period (by the session's date, UTC) with what each earned.

    "Sessions delivered" counts the sessions with an earning not fully taken back.
    """
    check_period(start, end)
    lo, hi = _bounds(start, end)
    t = coach.tenant_id
    rows = db.session.execute(
        select(Earning, Booking.starts_at, Offering.title, Membership)
        .join(Booking, (Booking.tenant_id == Earning.tenant_id) & (Booking.id == Earning.booking_id))
        .join(Offering, (Offering.tenant_id == Booking.tenant_id) & (Offering.id == Booking.offering_id))
        .join(Membership, (Membership.tenant_id == Booking.tenant_id)
              & (Membership.id == Booking.athlete_membership_id))
        .where(Earning.tenant_id == t, Earning.coach_membership_id == coach.id, Booking.starts_at >= lo,
               Booking.starts_at < hi)
        .order_by(Booking.starts_at, Booking.id)).all()
    back = _commission_back(t, [r[0].booking_id for r in rows])
    result = Report(coach, start, end)
    totals: dict[str, Totals] = {}
    for earning, starts_at, title, athlete in rows:
        line = Line(earning, starts_at, title, athlete.user.display_name,
                    earning.reversed_minor + back.get(earning.booking_id, 0))
        result.lines.append(line)
        total = totals.setdefault(earning.currency, Totals(earning.currency))
        total.sessions += earning.status != "reversed"
        total.gross += earning.gross_minor
        total.commission += line.commission
        total.refunds += line.refunded
        total.net += line.net
        if earning.status == "available":
            total.payable += line.net
    result.totals = sorted(totals.values(), key=lambda x: x.currency)
    result.payouts = list(db.session.scalars(
        select(Payout).where(Payout.tenant_id == t, Payout.coach_membership_id == coach.id,
                             Payout.period_start <= end, Payout.period_end >= start)
        .order_by(Payout.paid_at)))
    return result


def _csv_safe(value: str) -> str:
    """Keep spreadsheet programs from running a cell as a formula."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def report_csv(rep: Report) -> str:
    """The report as CSV: one row per session, then a total row per currency (amounts as plain decimals)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["date", "offering", "athlete", "status", "currency", "gross", "commission", "refunds", "net"])
    for line in rep.lines:
        cur = line.earning.currency
        writer.writerow([line.starts_at.strftime("%Y-%m-%d %H:%M"), _csv_safe(line.offering),
                         _csv_safe(line.athlete), line.status_label, cur,
                         money.plain(line.earning.gross_minor, cur), money.plain(line.commission, cur),
                         money.plain(line.refunded, cur), money.plain(line.net, cur)])
    for total in rep.totals:
        cur = total.currency
        writer.writerow([f"total ({total.sessions} sessions delivered)", "", "", "", cur, money.plain(total.gross, cur),
                         money.plain(total.commission, cur), money.plain(total.refunds, cur),
                         money.plain(total.net, cur)])
    return out.getvalue()


def csv_filename(rep: Report) -> str:
    name = "".join(c if c.isalnum() else "-" for c in rep.coach.user.display_name.lower()).strip("-") or "coach"
    return f"payout-{name}-{rep.start:%Y%m%d}-{rep.end:%Y%m%d}.csv"


def record(coach: Membership, start: date, end: date, reference: str, actor: Membership) -> list[Payout]:
    """Record that the coach was paid (by hand, ``reference`` of the transfer) what is available from the
    period's sessions: one payout per currency; the earnings become paid and the ledger moves the money
    (``coach_available`` +X, ``provider_clearing`` −X, key ``payout:{payout.id}``).

    :raises PayoutError: no reference, a bad period, or nothing available to pay.
    """
    check_period(start, end)
    reference = " ".join((reference or "").split())
    if not reference:
        raise PayoutError("Enter the transfer's reference (e.g. the bank transfer's ID).")
    if len(reference) > REFERENCE_MAX:
        raise PayoutError(f"A reference has at most {REFERENCE_MAX} characters.")
    lo, hi = _bounds(start, end)
    t = coach.tenant_id
    # Locked: a concurrent payout of the same period, or a refund taking an earning back, waits for this one.
    due = list(db.session.scalars(
        select(Earning).join(Booking, (Booking.tenant_id == Earning.tenant_id) & (Booking.id == Earning.booking_id))
        .where(Earning.tenant_id == t, Earning.coach_membership_id == coach.id, Earning.status == "available",
               Booking.starts_at >= lo, Booking.starts_at < hi)
        .order_by(Earning.id).with_for_update(of=Earning)))
    by_currency: dict[str, list[Earning]] = {}
    for earning in due:
        by_currency.setdefault(earning.currency, []).append(earning)
    payouts = []
    for cur, rows in sorted(by_currency.items()):
        amount = sum(e.net_minor - e.reversed_minor for e in rows)
        # Never more than the coach's available balance: a refund after an earlier payout left it short (even
        # negative), and this payout nets that debt.
        amount = min(amount, -ledger.balance(t, "coach_available", cur, coach.id))
        if amount <= 0:
            continue
        payout = Payout(id=uuid.uuid4(), tenant_id=t, coach_membership_id=coach.id, period_start=start,
                        period_end=end, amount_minor=amount, currency=cur, method="manual", reference=reference,
                        recorded_by_membership_id=actor.id)
        db.session.add(payout)
        db.session.flush()
        ledger.post(t, "payout", f"payout:{payout.id}", [
            ledger.line("coach_available", amount, cur, coach.id), ledger.line("provider_clearing", -amount, cur)],
            memo=f"payout {reference}", actor_membership_id=actor.id)
        db.session.execute(update(Earning).where(Earning.tenant_id == t, Earning.id.in_([e.id for e in rows]))
                           .values(status="paid", payout_id=payout.id).execution_options(synchronize_session=False))
        audit.record("payout.recorded", actor=actor.user, target_type="payout", target_id=payout.id,
                     details={"coach": coach.user.email, "amount_minor": amount, "currency": cur,
                              "reference": reference, "period": f"{start}..{end}"})
        payouts.append(payout)
    if not payouts:
        raise PayoutError("Nothing is available to pay out for this period (earnings become available once "
                          "the session ended and the dispute window passed).")
    for e in due:
        db.session.refresh(e)
    return payouts
