"""The double-entry ledger: every movement of money or credits is one balanced transaction.

An entry is ``(account, ref_id, unit, amount)``; a positive amount is a debit, a negative one a credit, and
each transaction's entries sum to zero in every unit (PostgreSQL checks it at commit; :func:`post` checks
it first so the message is ours). Entries are never changed or removed: a correction is a new transaction.

Accounts (``ref_id`` says whose):

==========================  =========  ===========================================================
account                     ref_id     what its balance is
==========================  =========  ===========================================================
``provider_clearing``       --         money received through the provider (or by hand), not yet paid out
``athlete_prepaid``         grant      money paid for credits not yet spent (owed to the athlete as sessions)
``coach_pending``           coach      the coach's share of sessions not yet past the dispute window
``coach_available``         coach      the coach's share that can be paid out
``coach_paid``              coach      what was paid out to the coach
``org_commission``          --         the organization's share (commission, kept fees, forfeited value)
``refunds``                 payment    money given back
``disputes``                payment    money taken back by a dispute
``credits_outstanding``     grant      CREDIT: credits the athlete holds (a credit balance, negative)
``credits_issued``          --         CREDIT: the other side of every credit granted
==========================  =========  ===========================================================

Signs: assets and expenses are debits (positive), what is owed and earned are credits (negative). So
``coach_pending`` for a coach owed 45.00 EUR has the balance -4500, and a grant with 3 credits left has
``credits_outstanding`` -3 (``credit_grants.credits_remaining`` caches 3; :func:`check` compares them).

:func:`post` is idempotent by its key: posting the same key twice returns the first transaction and adds
nothing, so a redelivered webhook or a retried job cannot move money twice.
"""
from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert

from coach.extensions import db
from coach.payments.models import CREDIT, CreditGrant, Earning, LedgerEntry, LedgerTransaction, Payout

ACCOUNTS = ("provider_clearing", "athlete_prepaid", "coach_pending", "coach_available", "coach_paid",
            "org_commission", "refunds", "disputes", "credits_outstanding", "credits_issued")


class LedgerError(RuntimeError):
    """A programming error: entries that do not balance, an unknown account. Never the user's fault."""


@dataclass(frozen=True)
class Line:
    account: str
    amount: int
    unit: str
    ref_id: uuid.UUID | None = None


def line(account: str, amount: int, unit: str, ref_id: uuid.UUID | None = None) -> Line:
    return Line(account, int(amount), unit, ref_id)


def post(tenant_id: uuid.UUID, kind: str, key: str, lines: Iterable[Line], *, memo: str = "",
         payment_id: uuid.UUID | None = None, booking_id: uuid.UUID | None = None,
         actor_membership_id: uuid.UUID | None = None) -> tuple[uuid.UUID, bool]:
    """Record one balanced transaction under the idempotency ``key`` (unique per organization).

    Zero lines are dropped (a 0 % commission). Returns ``(transaction id, created)``; ``created`` is false
    when ``key`` was posted before, and then nothing is written.
    """
    lines = [x for x in lines if x.amount]
    totals: dict[str, int] = defaultdict(int)
    for x in lines:
        if x.account not in ACCOUNTS:
            raise LedgerError(f"unknown ledger account {x.account!r}")
        totals[x.unit] += x.amount
    if any(totals.values()):
        raise LedgerError(f"ledger transaction {kind}/{key} does not balance: {dict(totals)}")
    txn_id = uuid.uuid4()
    inserted = db.session.execute(
        insert(LedgerTransaction).values(
            id=txn_id, tenant_id=tenant_id, kind=kind, memo=memo[:300], idempotency_key=key[:200],
            payment_id=payment_id, booking_id=booking_id, actor_membership_id=actor_membership_id)
        .on_conflict_do_nothing(index_elements=["tenant_id", "idempotency_key"])
        .returning(LedgerTransaction.id)).scalar()
    if inserted is None:
        existing = db.session.scalar(select(LedgerTransaction.id).where(
            LedgerTransaction.tenant_id == tenant_id, LedgerTransaction.idempotency_key == key[:200]))
        return existing, False
    if lines:
        db.session.execute(insert(LedgerEntry), [
            {"id": uuid.uuid4(), "tenant_id": tenant_id, "transaction_id": txn_id, "account": x.account,
             "ref_id": x.ref_id, "unit": x.unit, "amount": x.amount} for x in lines])
    return txn_id, True


def posted(tenant_id: uuid.UUID, key: str) -> bool:
    return db.session.scalar(select(func.count()).select_from(LedgerTransaction).where(
        LedgerTransaction.tenant_id == tenant_id, LedgerTransaction.idempotency_key == key)) > 0


def balance(tenant_id: uuid.UUID, account: str, unit: str, ref_id: uuid.UUID | None = None) -> int:
    """The sum of an account's entries (debits positive)."""
    query = select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
        LedgerEntry.tenant_id == tenant_id, LedgerEntry.account == account, LedgerEntry.unit == unit)
    query = query.where(LedgerEntry.ref_id.is_(None) if ref_id is None else LedgerEntry.ref_id == ref_id)
    return int(db.session.scalar(query))


def balances(tenant_id: uuid.UUID, account: str, unit: str) -> dict[uuid.UUID | None, int]:
    """Every ``ref_id``'s balance of ``account`` in ``unit`` (e.g. each coach's pending earnings)."""
    rows = db.session.execute(
        select(LedgerEntry.ref_id, func.sum(LedgerEntry.amount)).where(
            LedgerEntry.tenant_id == tenant_id, LedgerEntry.account == account, LedgerEntry.unit == unit)
        .group_by(LedgerEntry.ref_id)).all()
    return {ref: int(total) for ref, total in rows}


@dataclass
class CheckResult:
    unbalanced: list[str]
    mismatches: list[str]

    @property
    def ok(self) -> bool:
        return not self.unbalanced and not self.mismatches

    def __str__(self) -> str:
        return "; ".join(self.unbalanced + self.mismatches) or "balanced"


def check(tenant_id: uuid.UUID) -> CheckResult:
    """Recompute the books of one organization and compare every cached balance with the ledger.

    - every transaction sums to zero per unit (PostgreSQL enforces it at commit; this proves it after);
    - each credit grant's ``credits_remaining`` equals minus its ``credits_outstanding`` balance;
    - each coach's pending earnings rows add up to minus the ``coach_pending`` balance, and the available and
      paid-out rows less the payouts to minus ``coach_available``, per currency.
    """
    unbalanced = [
        f"transaction {row.transaction_id} is off by {row.total} {row.unit}"
        for row in db.session.execute(text(
            "SELECT transaction_id, unit, sum(amount) AS total FROM ledger_entries WHERE tenant_id = :t "
            "GROUP BY transaction_id, unit HAVING sum(amount) <> 0"), {"t": tenant_id})]
    mismatches: list[str] = []
    outstanding = balances(tenant_id, "credits_outstanding", CREDIT)
    for grant_id, remaining in db.session.execute(select(CreditGrant.id, CreditGrant.credits_remaining).where(
            CreditGrant.tenant_id == tenant_id)).all():
        if -outstanding.get(grant_id, 0) != remaining:
            mismatches.append(f"grant {grant_id}: {remaining} credits cached, {-outstanding.get(grant_id, 0)} "
                              "in the ledger")
    # Paid-out rows count towards "available" less the payouts: a refund after a payout takes the coach's share
    # back from available (it can go below zero) while the row stays paid.
    paid_out = {(coach, cur): int(total) for coach, cur, total in db.session.execute(
        select(Payout.coach_membership_id, Payout.currency, func.sum(Payout.amount_minor))
        .where(Payout.tenant_id == tenant_id).group_by(Payout.coach_membership_id, Payout.currency)).all()}
    for statuses, account in ((("pending",), "coach_pending"), (("available", "paid"), "coach_available")):
        rows = db.session.execute(
            select(Earning.coach_membership_id, Earning.currency,
                   func.sum(Earning.net_minor - Earning.reversed_minor))
            .where(Earning.tenant_id == tenant_id, Earning.status.in_(statuses))
            .group_by(Earning.coach_membership_id, Earning.currency)).all()
        cached = {(coach, cur): int(total) for coach, cur, total in rows}
        if account == "coach_available":
            for key, total in paid_out.items():
                cached[key] = cached.get(key, 0) - total
        currencies = {cur for _, cur in cached} | set(db.session.scalars(
            select(LedgerEntry.unit).where(LedgerEntry.tenant_id == tenant_id, LedgerEntry.account == account)
            .distinct()))
        for cur in currencies:
            for coach, total in balances(tenant_id, account, cur).items():
                if -total != cached.get((coach, cur), 0):
                    mismatches.append(f"{account} of {coach}: {-total} {cur} in the ledger, "
                                      f"{cached.get((coach, cur), 0)} in earnings rows")
            for (coach, c), total in cached.items():
                if c == cur and coach not in balances(tenant_id, account, cur) and total:
                    mismatches.append(f"{account} of {coach}: earnings rows say {total} {cur}, the ledger 0")
    return CheckResult(unbalanced, mismatches)
