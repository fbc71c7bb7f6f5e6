"""Packages and payments: single sessions, credit packs and subscription plans paid through the provider
(Stripe) or recorded by hand, the double-entry ledger, coach earnings in escrow, payouts, refunds and
invoices. See docs/ARCHITECTURE.md, "Payments"."""
