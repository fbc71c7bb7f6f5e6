"""Outbox topics of the payments domain (see :mod:`coach.platform.events`)."""
from __future__ import annotations

from coach.platform.events import Topic

# A provider webhook was stored; its job applies it (the HTTP answer does not wait for the work).
PROVIDER_EVENT = Topic("payments.provider_event", "event_id: the payment_events row to apply")
PAYMENT_PAID = Topic("payments.paid", "payment_id")
PAYMENT_FAILED = Topic("payments.failed", "payment_id; reason")
PAYMENT_REFUNDED = Topic("payments.refunded", "payment_id; amount_minor (this refund); reason")
PAYMENT_DISPUTED = Topic("payments.disputed", "payment_id; amount_minor")
SUBSCRIPTION_CHANGED = Topic("payments.subscription_changed", "subscription_id; from; to (statuses)")
CREDITS_RETURNED = Topic("payments.credits_returned", "grant_id; booking_id")
# A coach's pack or plan was created, edited, archived or restored (the directory shows packs' per-session price).
PRODUCT_CHANGED = Topic("payments.product_changed", "product_id; coach_membership_id")
