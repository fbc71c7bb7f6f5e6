"""The payments domain's consumers and sweeps: importing the modules registers them (the app factory imports
this module, see ``DOMAINS`` in coach.app)."""
from __future__ import annotations

from coach.payments import (  # noqa: F401
    checkout, credits, earnings, invoices, settlement, subscriptions, webhooks)
