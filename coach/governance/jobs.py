"""The governance domain's outbox consumers and periodic jobs (imported by the app factory to register them)."""
from __future__ import annotations

from coach import clock
from coach.governance import branding  # noqa: F401 - registers the emails' brand context
from coach.governance.retention import apply_retention, retention_tenants
from coach.platform.jobs import each_tenant
from coach.platform.periodic import periodic


@periodic(every=24 * 3600, name="data_retention")
def sweep_data_retention() -> int:
    """Every organization with a retention set: its old chat messages and audit events, in batches."""
    now = clock.now()
    return each_tenant(retention_tenants(), lambda tenant_id: apply_retention(tenant_id, now), "data retention")
