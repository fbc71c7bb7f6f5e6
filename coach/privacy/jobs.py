"""The privacy domain's outbox consumers and periodic jobs (imported by the app factory to register them)."""
from __future__ import annotations

from flask import g

from coach.platform.jobs import after_commit, consumer
from coach.platform.periodic import periodic
from coach.privacy import closing, deletion, exports
from coach.privacy.events import EXPORT_REQUESTED

# --- data exports --------------------------------------------------------------------------------------------------


@consumer(EXPORT_REQUESTED)
def export_requested(payload: dict) -> None:
    """Consumer of ``privacy.export_requested``: queue the build once the event's transaction commits (the build
    takes minutes and commits its progress as it goes: not a job to run inside the event's transaction)."""
    tenant_id = str(g.tenant_id) if g.get("tenant_id") else None
    kind, export_id = payload["kind"], payload["export_id"]
    after_commit(lambda: exports.enqueue_build(kind, export_id, tenant_id))


@periodic(every=3600, name="privacy_expire_exports")
def expire_exports() -> int:
    """Every hour: delete the files of exports older than a week (marked expired), and fail the ones whose worker
    died."""
    done = exports.expire_account_exports()
    return done + exports.expire_org_exports()


# --- account deletion and organization closing ---------------------------------------------------------------------


@periodic(every=600, name="privacy_erase_accounts")
def erase_accounts() -> int:
    """Every 10 minutes: erase the accounts whose 14 days of grace are over (each in its own transaction)."""
    return deletion.erase_due_accounts()


@periodic(every=600, name="privacy_erase_organizations")
def erase_organizations() -> int:
    """Every 10 minutes: erase the organizations whose closing is due (objects, then every tenant row)."""
    return closing.erase_due_organizations()
