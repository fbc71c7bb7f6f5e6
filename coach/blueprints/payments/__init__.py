"""Payments: buying packs and plans, checkout and its return, my billing; the coach's products and earnings;
the admin's payments, refunds, payouts and settings; receipts; and the provider's webhook (no organization
in its URL: the event says which)."""
from __future__ import annotations

from flask import Blueprint

from coach import tenancy

bp = tenancy.org_blueprint("payments", __name__, "/o/<slug>/billing")
# The provider calls this one; it has no session and no organization in its URL.
hooks = Blueprint("payment_hooks", __name__, url_prefix="/payments")

# The route modules register their views on ``bp`` / ``hooks`` (imported last: they import them from here).
from coach.blueprints.payments import (  # noqa: E402, F401
    admin, checkout, documents, earnings, products, refunds, settings, shop, webhooks)
