"""The reviews' nightly check: every organization's counted ratings against its visible reviews.

The counts are kept in the transaction of each review write, so a difference means a bug or a hand-made change
in the database. The check logs each difference as a warning and rewrites the counts from the rows (the listing
follows through ``directory.listing_changed``); ``flask directory check-ratings`` does the same on demand.
"""
from __future__ import annotations

import logging
import uuid

from sqlalchemy import select

from coach.directory import reviews
from coach.orgs.models import Organization
from coach.extensions import db
from coach.platform.jobs import each_tenant
from coach.platform.periodic import periodic

log = logging.getLogger(__name__)


def _check(tenant_id: uuid.UUID) -> int:
    found = reviews.check_ratings(tenant_id, fix=True)
    for mismatch in found:
        log.warning("ratings of organization %s fixed: %s", tenant_id, mismatch)
    return len(found)


@periodic(every=24 * 3600, name="check_review_ratings")
def check_review_ratings() -> int:
    """How many coaches' counts were wrong (and are now right), over every organization."""
    # ``organizations`` has no RLS: the one list of tenants a sweep may read without acting for one.
    tenant_ids = list(db.session.scalars(select(Organization.id).order_by(Organization.id)))
    return each_tenant(tenant_ids, _check, "review ratings check")
