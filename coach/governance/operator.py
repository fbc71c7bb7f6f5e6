"""The platform operators' console: who is a platform admin, and what the console shows.

Everything here is counts, sizes, times, ids, queue and route names, and organizations' names and slugs:
never a tenant's content (posts, messages, people's names, job arguments or error messages). Organizations'
figures come from the SECURITY DEFINER functions of migration 0018, which return aggregates only.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app, g
from sqlalchemy import func, select, text

from coach import clock
from coach.accounts import security_log
from coach.accounts.models import User
from coach.errors import DomainError
from coach.extensions import db
from coach.media.service import human_size
from coach.platform import audit, metrics, system
from coach.tenancy import acting_for

SESSIONS_DAYS = 30


class OperatorError(DomainError):
    pass


def _platform_event(action: str, **fields) -> None:
    """An audit event of no organization, whatever organization the caller was acting for."""
    with acting_for(None, g.get("user_id")):
        audit.record(action, tenant_id=None, **fields)


# --- who may use the console ------------------------------------------------------------------------------


def _user(email: str) -> User:
    user = db.session.scalar(select(User).where(func.lower(User.email) == (email or "").strip().lower()))
    if user is None:
        raise OperatorError(f"No account has the email address {email!r}.")
    return user


def set_platform_admin(email: str, granted: bool, actor_label: str) -> tuple[User, bool]:
    """Grant or revoke the platform-admin flag; audited as a platform event and in the person's security log.

    :returns: the user and whether anything changed (granting twice changes nothing and records nothing).
    """
    user = _user(email)
    if user.platform_admin == granted:
        return user, False
    user.platform_admin = granted
    action = "platform_admin.granted" if granted else "platform_admin.revoked"
    _platform_event(action, target_type="user", target_id=user.id, actor_label=actor_label,
                    details={"email": user.email})
    security_log.record(user.id, action)
    db.session.flush()
    return user, True


def platform_admins() -> list[User]:
    return list(db.session.scalars(select(User).where(User.platform_admin.is_(True)).order_by(User.email)))


# --- what the console shows -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrgFigures:
    id: uuid.UUID
    slug: str
    name: str
    created_at: datetime
    members: int
    storage_used: int
    storage_quota: int
    sessions: int  # delivered in the last SESSIONS_DAYS days
    last_activity: datetime | None
    outbox_pending: int
    outbox_dead: int

    @property
    def storage_label(self) -> str:
        return f"{human_size(self.storage_used)} of {human_size(self.storage_quota)}"

    @property
    def storage_percent(self) -> int:
        return min(100, round(100 * self.storage_used / self.storage_quota)) if self.storage_quota else 100


@dataclass(frozen=True)
class FailedJob:
    id: str
    queue: str
    topic: str
    org_slug: str  # "" for a platform job, "?" for an organization that no longer exists
    ended_at: datetime | None
    error_type: str


def organizations(now: datetime | None = None) -> list[OrgFigures]:
    """Every organization with its member count, storage, sessions delivered lately, last activity and
    outbox (two statements: the definer functions)."""
    now = now or clock.now()
    outbox = {row.tenant_id: row for row in db.session.execute(text("SELECT * FROM platform_outbox_by_org()"))}
    default_quota = current_app.config["MEDIA_QUOTA_BYTES"]
    rows = db.session.execute(text("SELECT * FROM platform_organizations(:since)"),
                              {"since": now - timedelta(days=SESSIONS_DAYS)})
    found = []
    for row in rows:
        waiting = outbox.get(row.id)
        found.append(OrgFigures(row.id, row.slug, row.name, row.created_at, int(row.members), int(row.storage_bytes),
                                int(row.quota_bytes if row.quota_bytes is not None else default_quota),
                                int(row.sessions), row.last_activity, int(waiting.pending) if waiting else 0,
                                int(waiting.dead) if waiting else 0))
    return found


def outbox() -> dict:
    """The whole outbox: events waiting, dead, and the age of the oldest waiting one (the lag)."""
    return system.outbox_stats()


def queues() -> list[dict]:
    return system.queue_stats()


def failed_jobs(orgs: list[OrgFigures], limit: int = 100) -> list[FailedJob]:
    slugs = {str(org.id): org.slug for org in orgs}
    return [FailedJob(job["id"], job["queue"], job["topic"],
                      "" if job["tenant_id"] is None else slugs.get(job["tenant_id"], "?"),
                      job["ended_at"], job["error_type"])
            for job in system.all_failed_jobs(limit)]


def retry_job(job_id: str, actor: User) -> bool:
    """Requeue any organization's failed job; audited as a platform event."""
    if not system.retry_failed_job(None, job_id, any_tenant=True):
        return False
    _platform_event("platform.job_retry", actor=actor, target_type="job", target_id=job_id)
    return True


def delete_job(job_id: str, actor: User) -> bool:
    """Delete any organization's failed job; audited as a platform event."""
    if not system.discard_failed_job(None, job_id, any_tenant=True):
        return False
    _platform_event("platform.job_delete", actor=actor, target_type="job", target_id=job_id)
    return True


def slowest_routes(limit: int = 15) -> list[metrics.RouteLatency]:
    return metrics.route_latencies(limit)


def multiprocess_metrics() -> bool:
    return metrics.multiprocess_enabled()
