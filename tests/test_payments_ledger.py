"""The ledger's guarantees, held by PostgreSQL: balanced at commit, append-only, idempotent by key; and money
in each currency's own minor unit."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from coach import money, tenancy
from coach.extensions import db
from coach.payments import ledger
from coach.payments.models import CREDIT
from coach.payments.settings import billing_settings, next_invoice_number
from tests.factories import make_org, make_user


@pytest.fixture()
def org(ctx):
    org = make_org(make_user("ledger-admin@example.com"), slug="ledger-org")
    other = make_org(make_user("ledger-other@example.com"), slug="ledger-other")
    tenancy.activate(org.id)
    return org, other


def test_a_balanced_transaction_is_posted_once_per_key(org):
    a, _ = org
    coach = uuid.uuid4()
    lines = [ledger.line("provider_clearing", 5000, "EUR"), ledger.line("coach_pending", -4500, "EUR", coach),
             ledger.line("org_commission", -500, "EUR")]
    first, created = ledger.post(a.id, "session.paid", "pay-1", lines)
    again, created_again = ledger.post(a.id, "session.paid", "pay-1", lines)
    db.session.commit()
    assert created and not created_again and first == again
    assert ledger.balance(a.id, "coach_pending", "EUR", coach) == -4500
    assert ledger.balance(a.id, "provider_clearing", "EUR") == 5000
    # Balanced, but no earnings row caches the coach's pending share: the check says so.
    result = ledger.check(a.id)
    assert not result.unbalanced and "4500 EUR in the ledger, 0 in earnings rows" in str(result)


def test_entries_that_do_not_balance_never_commit(org):
    a, _ = org
    with pytest.raises(ledger.LedgerError):
        ledger.post(a.id, "bad", "bad-1", [ledger.line("provider_clearing", 100, "EUR"),
                                            ledger.line("org_commission", -99, "EUR")])
    # Written around post(): PostgreSQL's deferred check refuses it at commit.
    txn = uuid.uuid4()
    db.session.execute(text("INSERT INTO ledger_transactions (id, tenant_id, kind, idempotency_key) "
                            "VALUES (:id, :t, 'raw', 'raw-1')"), {"id": txn, "t": a.id})
    db.session.execute(text("INSERT INTO ledger_entries (id, tenant_id, transaction_id, account, unit, amount) "
                            "VALUES (:id, :t, :x, 'provider_clearing', 'CREDIT', 3)"),
                       {"id": uuid.uuid4(), "t": a.id, "x": txn})
    with pytest.raises(DBAPIError, match="does not balance"):
        db.session.commit()
    db.session.rollback()
    tenancy.activate(a.id)
    assert not ledger.posted(a.id, "raw-1")


def test_the_ledger_is_append_only(org):
    a, _ = org
    ledger.post(a.id, "credit.granted", "grant-1", [ledger.line("credits_issued", 5, CREDIT),
                                                     ledger.line("credits_outstanding", -5, CREDIT, uuid.uuid4())])
    db.session.commit()
    for statement in ("UPDATE ledger_entries SET amount = amount * 2", "DELETE FROM ledger_entries",
                      "DELETE FROM ledger_transactions"):
        tenancy.activate(a.id)
        with pytest.raises(DBAPIError, match="permission denied|append-only"):
            db.session.execute(text(statement))
        db.session.rollback()


def test_another_organizations_ledger_is_invisible(org):
    a, b = org
    ledger.post(a.id, "session.paid", "pay-a", [ledger.line("provider_clearing", 700, "EUR"),
                                                 ledger.line("org_commission", -700, "EUR")])
    db.session.commit()
    tenancy.activate(b.id)
    assert ledger.balance(a.id, "provider_clearing", "EUR") == 0


def test_invoice_numbers_are_gapless_and_a_rollback_gives_its_number_back(org):
    a, b = org
    assert billing_settings(a.id).currency == "EUR"
    assert next_invoice_number(a.id) == 1
    db.session.commit()
    tenancy.activate(a.id)
    assert next_invoice_number(a.id) == 2
    db.session.rollback()
    tenancy.activate(a.id)
    assert next_invoice_number(a.id) == 2
    db.session.commit()
    tenancy.activate(b.id)
    assert next_invoice_number(b.id) == 1  # each organization counts its own


@pytest.mark.parametrize("typed, currency, minor, shown", [
    ("49.90", "EUR", 4990, "€49.90"), ("5,000", "JPY", 5000, "¥5,000"), ("1.250", "KWD", 1250, "KWD1.250"),
    ("0", "EUR", 0, "€0.00"),
])
def test_money_uses_each_currencys_own_decimals(typed, currency, minor, shown):
    assert money.parse(typed, currency) == minor
    assert money.format(minor, currency) == shown


@pytest.mark.parametrize("typed, currency, message", [
    ("12.5", "JPY", "no decimals"), ("-3", "EUR", "negative"), ("1e9", "EUR", "more than"),
    ("ten", "EUR", "not an amount"), ("1.999", "EUR", "at most 2 decimals"), ("inf", "EUR", "not an amount"),
    ("NaN", "EUR", "not an amount"),
])
def test_bad_amounts_are_refused_with_a_reason(typed, currency, message):
    with pytest.raises(money.MoneyError, match=message):
        money.parse(typed, currency)


def test_a_member_with_payment_records_is_not_removed_and_is_told_why(ctx):
    from coach.booking import service as booking_service
    from coach.orgs.service import OrgError, remove_member
    from coach.spaces import service as spaces_service
    from tests.booking_support import BookingWorld
    from tests.payments_support import assert_books_balance, seed_payment_rows

    world = BookingWorld()
    tenancy.activate(world.org.id)
    slot = world.first_slot()
    booking = booking_service.request_booking(world.offering, world.athlete, slot.starts_at, "", world.athlete)
    space = spaces_service.create_space(world.org, world.coach, "Paid space", "", "private")
    seed_payment_rows(world.org, world.coach, world.athlete, world.offering, space, booking)
    db.session.commit()
    tenancy.activate(world.org.id)
    with pytest.raises(OrgError, match="payment records") as refused:
        remove_member(world.org, world.athlete)
    assert refused.value.status == 409
    db.session.rollback()
    tenancy.activate(world.org.id)
    assert db.session.get(type(world.athlete), world.athlete.id) is not None
    assert_books_balance(world.org.id)
