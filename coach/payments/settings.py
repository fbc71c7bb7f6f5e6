"""An organization's billing settings, created with the defaults the first time anything asks."""
from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert

from coach.extensions import db
from coach.payments.models import BillingSettings


def billing_settings(tenant_id: uuid.UUID) -> BillingSettings:
    """The organization's settings row (inserted with the defaults if it has none yet; race-safe)."""
    found = db.session.scalar(select(BillingSettings).where(BillingSettings.tenant_id == tenant_id))
    if found is not None:
        return found
    db.session.execute(insert(BillingSettings).values(id=uuid.uuid4(), tenant_id=tenant_id, currency="EUR")
                       .on_conflict_do_nothing(index_elements=["tenant_id"]))
    return db.session.scalar(select(BillingSettings).where(BillingSettings.tenant_id == tenant_id))


def next_invoice_number(tenant_id: uuid.UUID) -> int:
    """Take the organization's next invoice number. Gapless: the row stays locked until the caller's
    transaction ends, and a rollback gives the number back."""
    billing_settings(tenant_id)
    return db.session.execute(
        update(BillingSettings).where(BillingSettings.tenant_id == tenant_id)
        .values(next_invoice_number=BillingSettings.next_invoice_number + 1)
        .returning(BillingSettings.next_invoice_number - 1)).scalar_one()
