"""Payments: what can be bought, what was paid, the credits it gave, the ledger that records every movement,
coach earnings in escrow, payouts, invoices and the provider's raw events (constraints: migration 0014).

Amounts are integer minor units of ``currency`` (see :mod:`coach.money`); ledger entries are signed (a
debit is positive) and every ledger transaction sums to zero per unit, checked by PostgreSQL at commit.
"""
from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, DateTime, ForeignKey, Integer, SmallInteger, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from coach import money
from coach.dbutil import TenantScoped, tenant_fk, tenant_relationship
from coach.extensions import db
from coach.orgs.models import Membership

PACK, PLAN = "pack", "plan"
PURPOSES = ("session", PACK, PLAN)
CARD, MANUAL = "card", "manual"
PAYMENT_STATUSES = ("pending", "paid", "failed", "expired", "cancelled")
PAYMENT_STATUS_LABELS = {"pending": "Awaiting payment", "paid": "Paid", "failed": "Failed", "expired": "Expired",
                         "cancelled": "Cancelled"}
SUBSCRIPTION_STATUSES = ("incomplete", "active", "past_due", "ended")
SUBSCRIPTION_STATUS_LABELS = {"incomplete": "Awaiting payment", "active": "Active", "past_due": "Payment failed",
                              "ended": "Ended"}
EARNING_STATUSES = ("pending", "available", "reversed", "paid")
LATE_CANCEL_POLICIES = {"forfeit": "The session is forfeited", "fee": "A late-cancel fee is kept",
                        "refund": "Always given back"}
CREDIT = "CREDIT"  # the ledger unit of session credits


class BillingSettings(TenantScoped, db.Model):
    """One organization's money settings: currency, commission, tax, seller details, windows, numbering."""

    __tablename__ = "billing_settings"

    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    commission_bps: Mapped[int] = mapped_column(Integer, default=1000)
    tax_rate_bps: Mapped[int] = mapped_column(Integer, default=0)
    tax_label: Mapped[str] = mapped_column(String(40), default="VAT")
    seller_name: Mapped[str] = mapped_column(String(200), default="")
    seller_address: Mapped[str] = mapped_column(Text, default="")
    seller_tax_id: Mapped[str] = mapped_column(String(40), default="")
    dispute_window_hours: Mapped[int] = mapped_column(Integer, default=48)
    grace_days: Mapped[int] = mapped_column(Integer, default=7)
    coaches_may_refund: Mapped[bool] = mapped_column(Boolean, default=False)
    next_invoice_number: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Product(TenantScoped, db.Model):
    """A credit pack (N sessions, valid N days) or a subscription plan (N credits per month or year)."""

    __tablename__ = "products"
    __table_args__ = (tenant_fk("coach_membership_id", "memberships", "fk_products_coach"),)

    coach_membership_id: Mapped[uuid.UUID] = mapped_column()
    kind: Mapped[str] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    credits: Mapped[int] = mapped_column(Integer)
    validity_days: Mapped[int | None] = mapped_column(Integer)
    weekly_limit: Mapped[int | None] = mapped_column(SmallInteger)
    interval: Mapped[str | None] = mapped_column(String(8))
    rollover: Mapped[bool] = mapped_column(Boolean, default=False)
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    coach: Mapped[Membership] = tenant_relationship("Product", "coach_membership_id")

    @property
    def price_label(self) -> str:
        label = money.format(self.price_minor, self.currency)
        return f"{label} / {self.interval}" if self.kind == PLAN else label


class ProductOffering(TenantScoped, db.Model):
    """An offering a product's credits can book."""

    __tablename__ = "product_offerings"
    __table_args__ = (tenant_fk("product_id", "products", "fk_product_offerings_product"),
                      tenant_fk("offering_id", "offerings", "fk_product_offerings_offering"))

    product_id: Mapped[uuid.UUID] = mapped_column()
    offering_id: Mapped[uuid.UUID] = mapped_column()


class ProductSpace(TenantScoped, db.Model):
    """A space a plan's subscribers get into while their subscription gives access."""

    __tablename__ = "product_spaces"
    __table_args__ = (tenant_fk("product_id", "products", "fk_product_spaces_product"),
                      tenant_fk("space_id", "spaces", "fk_product_spaces_space"))

    product_id: Mapped[uuid.UUID] = mapped_column()
    space_id: Mapped[uuid.UUID] = mapped_column()


class Subscription(TenantScoped, db.Model):
    __tablename__ = "subscriptions"
    __table_args__ = (tenant_fk("athlete_membership_id", "memberships", "fk_subscriptions_athlete"),
                      tenant_fk("product_id", "products", "fk_subscriptions_product", ondelete="NO ACTION"))

    athlete_membership_id: Mapped[uuid.UUID] = mapped_column()
    product_id: Mapped[uuid.UUID] = mapped_column()
    status: Mapped[str] = mapped_column(String(12))
    provider_subscription_id: Mapped[str | None] = mapped_column(String(255))
    provider_customer_id: Mapped[str | None] = mapped_column(String(255))
    current_period_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    current_period_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    grace_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    product: Mapped[Product] = tenant_relationship("Subscription", "product_id", "Product")
    athlete: Mapped[Membership] = tenant_relationship("Subscription", "athlete_membership_id")

    @property
    def status_label(self) -> str:
        return SUBSCRIPTION_STATUS_LABELS.get(self.status, self.status)


class SubscriptionSpaceGrant(TenantScoped, db.Model):
    __tablename__ = "subscription_space_grants"
    __table_args__ = (tenant_fk("subscription_id", "subscriptions", "fk_subscription_space_grants_subscription"),
                      tenant_fk("space_id", "spaces", "fk_subscription_space_grants_space"))

    subscription_id: Mapped[uuid.UUID] = mapped_column()
    space_id: Mapped[uuid.UUID] = mapped_column()
    added_member: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Payment(TenantScoped, db.Model):
    """Money owed or paid for one thing: a session (``booking_id``), a pack or a plan period (``product_id``)."""

    __tablename__ = "payments"
    __table_args__ = (
        tenant_fk("athlete_membership_id", "memberships", "fk_payments_athlete", ondelete="NO ACTION"),
        tenant_fk("coach_membership_id", "memberships", "fk_payments_coach", ondelete="NO ACTION"),
        tenant_fk("product_id", "products", "fk_payments_product", ondelete="NO ACTION"),
        tenant_fk("booking_id", "bookings", "fk_payments_booking", ondelete="NO ACTION"),
        tenant_fk("subscription_id", "subscriptions", "fk_payments_subscription", ondelete="NO ACTION"),
    )

    athlete_membership_id: Mapped[uuid.UUID] = mapped_column()
    coach_membership_id: Mapped[uuid.UUID | None] = mapped_column()
    purpose: Mapped[str] = mapped_column(String(8))
    product_id: Mapped[uuid.UUID | None] = mapped_column()
    booking_id: Mapped[uuid.UUID | None] = mapped_column()
    subscription_id: Mapped[uuid.UUID | None] = mapped_column()
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    tax_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    method: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(10))
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    disputed_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    provider_checkout_id: Mapped[str | None] = mapped_column(String(255))
    provider_payment_id: Mapped[str | None] = mapped_column(String(255))
    provider_invoice_id: Mapped[str | None] = mapped_column(String(255))
    reference: Mapped[str] = mapped_column(String(120), default="")
    failure_reason: Mapped[str] = mapped_column(String(300), default="")
    recorded_by_membership_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    athlete: Mapped[Membership] = tenant_relationship("Payment", "athlete_membership_id")

    @property
    def status_label(self) -> str:
        if self.status == "paid" and self.refunded_minor:
            return "Refunded" if self.refunded_minor == self.amount_minor else "Partly refunded"
        return PAYMENT_STATUS_LABELS.get(self.status, self.status)

    @property
    def amount_label(self) -> str:
        return money.format(self.amount_minor, self.currency)

    @property
    def refundable_minor(self) -> int:
        return self.amount_minor - self.refunded_minor - self.disputed_minor if self.status == "paid" else 0


class CreditGrant(TenantScoped, db.Model):
    """Credits an athlete holds: a bought pack, or one period of a plan. ``credits_remaining`` is a cache of
    the ledger's CREDIT balance for this grant, kept by one conditional UPDATE (never below zero)."""

    __tablename__ = "credit_grants"
    __table_args__ = (
        tenant_fk("athlete_membership_id", "memberships", "fk_credit_grants_athlete", ondelete="NO ACTION"),
        tenant_fk("product_id", "products", "fk_credit_grants_product", ondelete="NO ACTION"),
        tenant_fk("payment_id", "payments", "fk_credit_grants_payment", ondelete="NO ACTION"),
        tenant_fk("subscription_id", "subscriptions", "fk_credit_grants_subscription", ondelete="NO ACTION"),
    )

    athlete_membership_id: Mapped[uuid.UUID] = mapped_column()
    product_id: Mapped[uuid.UUID] = mapped_column()
    payment_id: Mapped[uuid.UUID | None] = mapped_column()
    subscription_id: Mapped[uuid.UUID | None] = mapped_column()
    credits_total: Mapped[int] = mapped_column(Integer)
    credits_remaining: Mapped[int] = mapped_column(Integer)
    unit_value_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    weekly_limit: Mapped[int | None] = mapped_column(SmallInteger)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    product: Mapped[Product] = tenant_relationship("CreditGrant", "product_id", "Product")


class CreditUse(TenantScoped, db.Model):
    """One credit spent on one booking (``returned_at`` once given back)."""

    __tablename__ = "credit_uses"
    __table_args__ = (tenant_fk("grant_id", "credit_grants", "fk_credit_uses_grant", ondelete="NO ACTION"),
                      tenant_fk("booking_id", "bookings", "fk_credit_uses_booking", ondelete="NO ACTION"))

    grant_id: Mapped[uuid.UUID] = mapped_column()
    booking_id: Mapped[uuid.UUID] = mapped_column()
    week_start: Mapped[date] = mapped_column(Date)
    used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    returned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LedgerTransaction(TenantScoped, db.Model):
    """A balanced set of ledger entries (append-only; see :mod:`coach.payments.ledger`)."""

    __tablename__ = "ledger_transactions"

    kind: Mapped[str] = mapped_column(String(40))
    memo: Mapped[str] = mapped_column(String(300), default="")
    idempotency_key: Mapped[str] = mapped_column(String(200))
    payment_id: Mapped[uuid.UUID | None] = mapped_column()
    booking_id: Mapped[uuid.UUID | None] = mapped_column()
    actor_membership_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class LedgerEntry(TenantScoped, db.Model):
    __tablename__ = "ledger_entries"
    __table_args__ = (tenant_fk("transaction_id", "ledger_transactions", "fk_ledger_entries_transaction"),)

    transaction_id: Mapped[uuid.UUID] = mapped_column()
    account: Mapped[str] = mapped_column(String(40))
    ref_id: Mapped[uuid.UUID | None] = mapped_column()
    unit: Mapped[str] = mapped_column(String(6))
    amount: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Payout(TenantScoped, db.Model):
    __tablename__ = "payouts"
    __table_args__ = (tenant_fk("coach_membership_id", "memberships", "fk_payouts_coach", ondelete="NO ACTION"),)

    coach_membership_id: Mapped[uuid.UUID] = mapped_column()
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    method: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str] = mapped_column(String(120), default="")
    recorded_by_membership_id: Mapped[uuid.UUID | None] = mapped_column()
    paid_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Earning(TenantScoped, db.Model):
    """The coach's share of one booking: pending until the session ended and the dispute window passed,
    then available, then paid out (or reversed by a refund or dispute while pending)."""

    __tablename__ = "earnings"
    __table_args__ = (
        tenant_fk("booking_id", "bookings", "fk_earnings_booking", ondelete="NO ACTION"),
        tenant_fk("coach_membership_id", "memberships", "fk_earnings_coach", ondelete="NO ACTION"),
        tenant_fk("payment_id", "payments", "fk_earnings_payment", ondelete="NO ACTION"),
        tenant_fk("grant_id", "credit_grants", "fk_earnings_grant", ondelete="NO ACTION"),
        tenant_fk("payout_id", "payouts", "fk_earnings_payout", ondelete="NO ACTION"),
    )

    booking_id: Mapped[uuid.UUID] = mapped_column()
    coach_membership_id: Mapped[uuid.UUID] = mapped_column()
    payment_id: Mapped[uuid.UUID | None] = mapped_column()
    grant_id: Mapped[uuid.UUID | None] = mapped_column()
    gross_minor: Mapped[int] = mapped_column(BigInteger)
    commission_minor: Mapped[int] = mapped_column(BigInteger)
    net_minor: Mapped[int] = mapped_column(BigInteger)
    reversed_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(10))
    available_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    payout_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Invoice(TenantScoped, db.Model):
    """A receipt (or credit note) with its gapless number, and the details as they were when issued."""

    __tablename__ = "invoices"
    __table_args__ = (tenant_fk("payment_id", "payments", "fk_invoices_payment", ondelete="NO ACTION"),)

    number: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(12))
    payment_id: Mapped[uuid.UUID] = mapped_column()
    buyer_name: Mapped[str] = mapped_column(String(200))
    buyer_email: Mapped[str] = mapped_column(String(254))
    seller_name: Mapped[str] = mapped_column(String(200))
    seller_address: Mapped[str] = mapped_column(Text, default="")
    seller_tax_id: Mapped[str] = mapped_column(String(40), default="")
    lines: Mapped[list] = mapped_column(JSONB)
    subtotal_minor: Mapped[int] = mapped_column(BigInteger)
    tax_minor: Mapped[int] = mapped_column(BigInteger)
    total_minor: Mapped[int] = mapped_column(BigInteger)
    tax_rate_bps: Mapped[int] = mapped_column(Integer)
    tax_label: Mapped[str] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PaymentEvent(db.Model):
    """A provider webhook event as it arrived (``tenant_id`` NULL when no organization could be told)."""

    __tablename__ = "payment_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict] = mapped_column(JSONB)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(300), default="")
