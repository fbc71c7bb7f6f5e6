"""Coach earnings held in escrow: each paid session (by card, by hand, or with a credit) earns its coach a
share, *pending* until the session ended and the organization's dispute window passed (``available_at``),
then *available* (the release sweep), then *paid* (a payout, :mod:`coach.payments.payouts`).

A refund or dispute takes the coach's and the organization's shares back in proportion: from pending while
the earning is pending, from available once it was released (so a coach whose earning was already paid out
can go negative until the next payout nets it). The ``earnings`` rows cache what the ledger says
(``net_minor - reversed_minor`` per status); :func:`coach.payments.ledger.check` proves they agree.
"""
from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import func, select, text

from coach import clock, money
from coach.booking.models import Booking
from coach.extensions import db
from coach.orgs.models import Membership
from coach.payments import ledger
from coach.payments.models import Earning, LedgerEntry, LedgerTransaction, Payment, Payout
from coach.payments.settings import billing_settings
from coach.platform.jobs import each_tenant
from coach.platform.periodic import periodic

ACCRUED, REVERSED, RELEASED = "earning.accrued", "earning.reversed", "earning.released"


def available_at(booking: Booking, tenant_id: uuid.UUID) -> datetime:
    """When ``booking``'s earning can be paid out: the session's end plus the dispute window."""
    return booking.ends_at + timedelta(hours=billing_settings(tenant_id).dispute_window_hours)


def earning_for(booking_id: uuid.UUID, tenant_id: uuid.UUID, *, lock: bool = False) -> Earning | None:
    query = select(Earning).where(Earning.tenant_id == tenant_id, Earning.booking_id == booking_id)
    return db.session.scalar(query.with_for_update() if lock else query)


def accrue(booking: Booking, gross_minor: int, currency: str, *, source: tuple[str, uuid.UUID | None], key: str,
           payment_id: uuid.UUID | None = None, grant_id: uuid.UUID | None = None) -> Earning:
    """Credit the coach of ``booking`` with ``gross_minor`` less the organization's commission, pending.

    One ledger transaction under ``key``: ``source`` +gross (where the money was: ``("provider_clearing",
    None)`` for a payment, ``("athlete_prepaid", grant.id)`` for a credit), coach_pending −net,
    org_commission −commission. Idempotent: a booking has one earning; asking again returns it.
    """
    t = booking.tenant_id
    existing = earning_for(booking.id, t)
    if existing is not None:
        return existing
    settings = billing_settings(t)
    commission = money.share(gross_minor, settings.commission_bps)
    net = gross_minor - commission
    account, ref = source
    _, created = ledger.post(t, ACCRUED, key, [
        ledger.line(account, gross_minor, currency, ref),
        ledger.line("coach_pending", -net, currency, booking.coach_membership_id),
        ledger.line("org_commission", -commission, currency)],
        memo=f"earned: booking {booking.id}", payment_id=payment_id, booking_id=booking.id)
    earning = Earning(tenant_id=t, booking_id=booking.id, coach_membership_id=booking.coach_membership_id,
                      payment_id=payment_id, grant_id=grant_id, gross_minor=gross_minor, commission_minor=commission,
                      net_minor=net, reversed_minor=0, currency=currency, status="pending",
                      available_at=booking.ends_at + timedelta(hours=settings.dispute_window_hours))
    if not created:  # the key was posted with no earning row: never by this module; keep the books honest
        raise ledger.LedgerError(f"ledger key {key!r} was posted before without an earning")
    db.session.add(earning)
    db.session.flush()
    return earning


def record_session_payment(payment: Payment, booking: Booking) -> Earning:
    """The coach's share of a paid session (ledger key ``paid:{payment.id}``)."""
    return accrue(booking, payment.amount_minor, payment.currency, source=("provider_clearing", None),
                  key=f"paid:{payment.id}", payment_id=payment.id)


# --- taking an earning back (refunds, disputes, returned credits) -----------------------------------------

@dataclass
class Reversal:
    """What taking ``gross`` back from one earning means: the ledger lines (without the destination's) and
    the change to the earnings row, applied once the transaction was posted."""

    earning: Earning | None
    gross: int = 0
    net: int = 0
    commission: int = 0
    lines: list[ledger.Line] = field(default_factory=list)

    def apply(self) -> None:
        if self.earning is None or not self.gross:
            return
        e = self.earning
        e.reversed_minor += self.net
        if e.reversed_minor == e.net_minor and e.status in ("pending", "available") \
                and self._gross_reversed_before + self.gross >= e.gross_minor:
            e.status = "reversed"
        db.session.flush()

    _gross_reversed_before: int = 0


def _gross_reversed(earning: Earning) -> int:
    """How much of the earning's gross was taken back so far: its net reversals plus the commission lines of
    its reversal transactions (the ledger knows the commission part; the row caches only the net)."""
    commission_back = db.session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0))
        .join(LedgerTransaction, (LedgerTransaction.tenant_id == LedgerEntry.tenant_id)
              & (LedgerTransaction.id == LedgerEntry.transaction_id))
        .where(LedgerEntry.tenant_id == earning.tenant_id, LedgerEntry.account == "org_commission",
               LedgerTransaction.booking_id == earning.booking_id, LedgerTransaction.kind.in_(TAKE_BACK_KINDS)))
    return earning.reversed_minor + int(commission_back)


# Transactions that take an earning back (their org_commission lines are the commission returned).
TAKE_BACK_KINDS = (REVERSED, "refund", "dispute")


def plan_reversal(earning: Earning | None, amount_minor: int | None) -> Reversal:
    """The lines that take up to ``amount_minor`` of gross (all that is left when ``None``) back from
    ``earning``, in proportion: the coach's part from pending (or available, once released or paid out) and
    the organization's from its commission. Exact: the cumulative shares are rounded, so a full take-back
    returns exactly the net and the commission."""
    if earning is None or earning.status == "reversed":
        return Reversal(earning)
    before = _gross_reversed(earning)
    left = earning.gross_minor - before
    take = left if amount_minor is None else max(0, min(amount_minor, left))
    if take <= 0:
        return Reversal(earning)
    after = before + take
    net_after = earning.net_minor if after == earning.gross_minor else \
        earning.net_minor * after // earning.gross_minor
    net = max(0, net_after - earning.reversed_minor)
    commission = take - net
    account = "coach_pending" if earning.status == "pending" else "coach_available"
    cur = earning.currency
    reversal = Reversal(earning, take, net, commission, [
        ledger.line(account, net, cur, earning.coach_membership_id), ledger.line("org_commission", commission, cur)])
    reversal._gross_reversed_before = before
    return reversal


def reverse(booking: Booking, amount_minor: int | None = None, *, destination: tuple[str, uuid.UUID | None],
            key: str) -> int:
    """Take (part of) ``booking``'s earning back to ``destination`` (e.g. ``("athlete_prepaid", grant.id)``
    when a credit is returned), in one ledger transaction under ``key``.

    The key must be this reversal's own (not the one of the CREDIT transaction that goes with it).

    :returns: the gross amount taken back (0 when there was no earning, nothing left, or ``key`` was posted).
    """
    t = booking.tenant_id
    earning = earning_for(booking.id, t, lock=True)
    plan = plan_reversal(earning, amount_minor)
    if not plan.gross:
        return 0
    account, ref = destination
    _, created = ledger.post(t, REVERSED, key, [*plan.lines, ledger.line(account, -plan.gross, plan.earning.currency,
                                                                          ref)],
                             memo=f"earning taken back: booking {booking.id}", payment_id=earning.payment_id,
                             booking_id=booking.id)
    if not created:
        return 0
    plan.apply()
    return plan.gross


# --- the release sweep -----------------------------------------------------------------------------------

# One statement: the due earnings become available and each gets its ledger transaction (keyed per earning,
# so a second run, or a concurrent one, adds nothing), with its two entries.
_RELEASE = text("""
    WITH due AS (
        UPDATE earnings SET status = 'available'
        WHERE tenant_id = :t AND status = 'pending' AND available_at <= :now
        RETURNING id, booking_id, payment_id, coach_membership_id, currency, net_minor - reversed_minor AS amount
    ), txn AS (
        INSERT INTO ledger_transactions (id, tenant_id, kind, memo, idempotency_key, booking_id, payment_id)
        SELECT gen_random_uuid(), :t, 'earning.released', 'released after the dispute window',
               'released:' || due.id, due.booking_id, due.payment_id FROM due
        ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
        RETURNING id, idempotency_key
    ), entries AS (
        INSERT INTO ledger_entries (id, tenant_id, transaction_id, account, ref_id, unit, amount)
        SELECT gen_random_uuid(), :t, txn.id, side.account, due.coach_membership_id, due.currency,
               side.sign * due.amount
        FROM due JOIN txn ON txn.idempotency_key = 'released:' || due.id
        CROSS JOIN (VALUES ('coach_pending', 1), ('coach_available', -1)) AS side(account, sign)
        WHERE due.amount <> 0
    )
    SELECT count(*) FROM due
""")


def release_due(tenant_id: uuid.UUID, now: datetime | None = None) -> int:
    """Make every earning of the organization whose ``available_at`` passed available (set-based)."""
    return int(db.session.execute(_RELEASE, {"t": tenant_id, "now": now or clock.now()}).scalar_one())


def due_tenants(now: datetime | None = None) -> list[uuid.UUID]:
    """Organizations with earnings to release (through the migration's narrow definer function)."""
    return list(db.session.scalars(text("SELECT earnings_due_tenants(:now)"), {"now": now or clock.now()}))


@periodic(every=300, name="release_earnings")
def sweep_all() -> int:
    """Release the earnings whose dispute window passed, one organization per transaction."""
    return each_tenant(due_tenants(), release_due, "earnings release")


# --- what the coach sees ----------------------------------------------------------------------------------

@dataclass
class Totals:
    currency: str
    pending: int = 0
    available: int = 0
    paid: int = 0


@dataclass
class Month:
    month: date
    currency: str
    net: int
    sessions: int
    height: float = 0.0  # of the chart's bar, 0-100

    @property
    def label(self) -> str:
        return self.month.strftime("%b %Y")


def summary(coach: Membership) -> list[Totals]:
    """Pending, available (the ledger's balance: it can be negative after a late refund) and paid out, per
    currency the coach has earned in."""
    t = coach.tenant_id
    totals: dict[str, Totals] = {}
    rows = db.session.execute(
        select(LedgerEntry.account, LedgerEntry.unit, func.sum(LedgerEntry.amount))
        .where(LedgerEntry.tenant_id == t, LedgerEntry.ref_id == coach.id,
               LedgerEntry.account.in_(("coach_pending", "coach_available")))
        .group_by(LedgerEntry.account, LedgerEntry.unit)).all()
    for account, unit, total in rows:
        row = totals.setdefault(unit, Totals(unit))
        setattr(row, "pending" if account == "coach_pending" else "available", -int(total))
    for cur, paid in db.session.execute(
            select(Payout.currency, func.sum(Payout.amount_minor))
            .where(Payout.tenant_id == t, Payout.coach_membership_id == coach.id).group_by(Payout.currency)).all():
        totals.setdefault(cur, Totals(cur)).paid = int(paid)
    return sorted(totals.values(), key=lambda x: x.currency)


def monthly(coach: Membership, months: int = 12, tz: str = "UTC", today: date | None = None) -> list[Month]:
    """The coach's net earnings per month of the sessions' dates (the last ``months`` months, the coach's
    zone), after what was taken back; each with its bar's height relative to the best month of its currency."""
    today = today or clock.now().date()
    first = date(today.year, today.month, 1)
    for _ in range(months - 1):
        first = date(first.year - (first.month == 1), (first.month - 2) % 12 + 1, 1)
    local_month = func.date_trunc("month", func.timezone(tz, Booking.starts_at))
    rows = db.session.execute(
        select(local_month.label("m"), Earning.currency, func.sum(Earning.net_minor - Earning.reversed_minor),
               func.count())
        .join(Booking, (Booking.tenant_id == Earning.tenant_id) & (Booking.id == Earning.booking_id))
        .where(Earning.tenant_id == coach.tenant_id, Earning.coach_membership_id == coach.id,
               func.timezone(tz, Booking.starts_at) >= first)
        .group_by("m", Earning.currency).order_by("m")).all()
    found = {(m.date(), cur): (int(net), n) for m, cur, net, n in rows}
    currencies = sorted({cur for _, cur in found}) or []
    result: list[Month] = []
    for cur in currencies:
        best = max((net for (_, c), (net, _) in found.items() if c == cur), default=0)
        month = first
        for _ in range(months):
            net, n = found.get((month, cur), (0, 0))
            result.append(Month(month, cur, net, n, round(100 * max(net, 0) / best, 1) if best > 0 else 0.0))
            month = date(month.year + (month.month == 12), month.month % 12 + 1, 1)
    return result


def chart(months: list[Month]) -> dict[str, list[Month]]:
    """The months grouped by currency (one chart each)."""
    grouped: dict[str, list[Month]] = defaultdict(list)
    for m in months:
        grouped[m.currency].append(m)
    return dict(grouped)


def recent(coach: Membership, limit: int = 50) -> list[tuple[Earning, Booking]]:
    """The coach's latest earnings with their bookings (newest sessions first)."""
    return list(db.session.execute(
        select(Earning, Booking)
        .join(Booking, (Booking.tenant_id == Earning.tenant_id) & (Booking.id == Earning.booking_id))
        .where(Earning.tenant_id == coach.tenant_id, Earning.coach_membership_id == coach.id)
        .order_by(Booking.starts_at.desc()).limit(limit)).all())
