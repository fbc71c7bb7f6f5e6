"""Payments test helpers: rows written straight into every payments table (for the RLS and crawl tests,
which are about the database and the routes, not the flows), and the ledger check every payments test
ends with."""
from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone

from coach.extensions import db
from coach.payments import ledger
from coach.payments.models import (CREDIT, CreditGrant, CreditUse, Earning, Invoice, PaymentEvent, Payment, Payout,
                                   Product, ProductOffering, ProductSpace, Subscription, SubscriptionSpaceGrant)
from coach.payments.settings import billing_settings, next_invoice_number


def seed_payment_rows(org, coach, athlete, offering, space, booking, label: str = "") -> dict:
    """One row in every payments table of ``org`` (a pack bought and used on ``booking``, a plan with a
    subscription and space access, earnings, a payout, a receipt, a raw provider event), the ledger balanced."""
    now = datetime.now(timezone.utc)
    t = org.id
    settings = billing_settings(t)
    pack = Product(tenant_id=t, coach_membership_id=coach.id, kind="pack", title=f"{label} 5-pack".strip(), price_minor=20000,
                   currency=settings.currency, credits=5, validity_days=90)
    plan = Product(tenant_id=t, coach_membership_id=coach.id, kind="plan", title=f"{label} monthly".strip(), price_minor=5000,
                   currency=settings.currency, credits=2, interval="month")
    db.session.add_all([pack, plan])
    db.session.flush()
    db.session.add(ProductOffering(tenant_id=t, product_id=pack.id, offering_id=offering.id))
    db.session.add(ProductSpace(tenant_id=t, product_id=plan.id, space_id=space.id))
    sub = Subscription(tenant_id=t, athlete_membership_id=athlete.id, product_id=plan.id, status="active",
                       provider_subscription_id=f"sub_seed_{uuid.uuid4().hex}", current_period_start=now,
                       current_period_end=now + timedelta(days=30))
    db.session.add(sub)
    db.session.flush()
    db.session.add(SubscriptionSpaceGrant(tenant_id=t, subscription_id=sub.id, space_id=space.id, added_member=False))
    payment = Payment(tenant_id=t, athlete_membership_id=athlete.id, coach_membership_id=coach.id, purpose="pack",
                      product_id=pack.id, amount_minor=20000, currency=pack.currency, method="card", status="paid",
                      provider_checkout_id=f"cs_seed_{uuid.uuid4().hex}", paid_at=now)
    db.session.add(payment)
    db.session.flush()
    grant = CreditGrant(tenant_id=t, athlete_membership_id=athlete.id, product_id=pack.id, payment_id=payment.id,
                        credits_total=5, credits_remaining=4, unit_value_minor=4000, currency=pack.currency,
                        expires_at=now + timedelta(days=90))
    db.session.add(grant)
    db.session.flush()
    db.session.add(CreditUse(tenant_id=t, grant_id=grant.id, booking_id=booking.id,
                             week_start=booking.starts_at.date() - timedelta(days=booking.starts_at.weekday())))
    cur = pack.currency
    ledger.post(t, "pack.paid", f"seed-pay-{payment.id}", [
        ledger.line("provider_clearing", 20000, cur), ledger.line("athlete_prepaid", -20000, cur, grant.id),
        ledger.line("credits_issued", 5, CREDIT), ledger.line("credits_outstanding", -5, CREDIT, grant.id)],
        payment_id=payment.id)
    ledger.post(t, "credit.used", f"seed-use-{booking.id}", [
        ledger.line("credits_outstanding", 1, CREDIT, grant.id), ledger.line("credits_issued", -1, CREDIT),
        ledger.line("athlete_prepaid", 4000, cur, grant.id), ledger.line("coach_pending", -3600, cur, coach.id),
        ledger.line("org_commission", -400, cur)], booking_id=booking.id)
    payout = Payout(tenant_id=t, coach_membership_id=coach.id, period_start=date(2026, 11, 1),
                    period_end=date(2026, 11, 30), amount_minor=1, currency=cur, method="manual", reference="seed")
    db.session.add(payout)
    db.session.flush()
    ledger.post(t, "payout", f"payout:{payout.id}", [ledger.line("coach_available", 1, cur, coach.id),
                                                      ledger.line("provider_clearing", -1, cur)])
    db.session.add(Earning(tenant_id=t, booking_id=booking.id, coach_membership_id=coach.id, grant_id=grant.id,
                           gross_minor=4000, commission_minor=400, net_minor=3600, currency=cur, status="pending",
                           available_at=booking.ends_at + timedelta(hours=48)))
    number = next_invoice_number(t)
    db.session.add(Invoice(tenant_id=t, number=number, kind="receipt", payment_id=payment.id,
                           buyer_name=athlete.user.display_name, buyer_email=athlete.user.email,
                           seller_name=org.name, lines=[{"description": pack.title, "quantity": 1,
                                                         "unit_minor": 20000, "total_minor": 20000}],
                           subtotal_minor=20000, tax_minor=0, total_minor=20000, tax_rate_bps=0, tax_label="VAT",
                           currency=cur))
    db.session.add(PaymentEvent(id=f"evt_seed_{uuid.uuid4().hex}", tenant_id=t, type="checkout.session.completed",
                                payload={"seed": True}, processed_at=now, outcome="seeded"))
    db.session.flush()
    invoice = db.session.scalar(db.select(Invoice).where(Invoice.tenant_id == t, Invoice.number == number))
    return {"pack": pack, "plan": plan, "payment": payment, "grant": grant, "subscription": sub, "payout": payout,
            "invoice": invoice}


def assert_books_balance(tenant_id) -> None:
    """The ledger check of :func:`coach.payments.ledger.check`: every payments test ends with it."""
    result = ledger.check(tenant_id)
    assert result.ok, str(result)
