"""Closing an organization: an admin asks (typing its address to confirm), every member is told, admins may
cancel during the grace period, then a sweep erases it: its stored objects, then every tenant row.

Asking takes the organization's coaches out of the public directory at once (its listings are deleted in the
same transaction); cancelling lists them again through the projection's consumers.

The rows go through the ``erase_organization`` function of migration 0017 (deleting the organization cascades
through every ``tenant_id`` foreign key; its audit trail, which has none, is deleted after it); the closing
stays on record as a platform event (no organization), with the organization's id, address and name.
"""
from __future__ import annotations

import uuid
from zoneinfo import ZoneInfo

from sqlalchemy import select, text

from coach import clock
from coach.accounts.models import User
from coach.directory import projection
from coach.directory.events import LISTING_CHANGED
from coach.errors import Conflict, DomainError
from coach.extensions import db
from coach.media.storage import get_storage
from coach.orgs.models import Membership, Organization
from coach.platform import audit, tenant_context
from coach.platform.mail import queue_email
from coach.platform.outbox import emit
from coach.privacy.deletion import GRACE, each_in_own_transaction


class ClosingError(DomainError):
    """A closing that cannot be asked for or cancelled; the message says why."""


def storage_prefixes(org_id: uuid.UUID) -> list[str]:
    """Every folder of the store that holds this organization's objects: media, branding and exports under its
    id, progress reports under ``reports/``."""
    return [f"{org_id}/", f"reports/{org_id}/"]


def is_closing(org: Organization) -> bool:
    return org.closing_due_at is not None


def closes_on(org: Organization) -> str:
    """The day the organization will be erased, in its time zone (``20 December 2026``)."""
    due = org.closing_due_at.astimezone(ZoneInfo(org.timezone or "UTC"))
    return f"{due.day} {due:%B %Y}"


def _locked(org: Organization) -> Organization:
    return db.session.scalar(select(Organization).where(Organization.id == org.id).with_for_update()
                             .execution_options(populate_existing=True))


def _members(org: Organization) -> list[User]:
    return list(db.session.scalars(
        select(User).join(Membership, Membership.user_id == User.id)
        .where(Membership.tenant_id == org.id, User.erased_at.is_(None))))


def request_closing(org: Organization, actor: User, typed_slug: str) -> Organization:
    """Schedule ``org``'s erasure in :data:`GRACE` (an admin; the caller commits). Every member is emailed.

    :param typed_slug: what the admin typed to confirm; it must be the organization's address.
    :raises ClosingError: the address does not match.
    :raises Conflict: the organization is already closing.
    """
    if (typed_slug or "").strip().lower() != org.slug:
        raise ClosingError(f"Type the organization's address, {org.slug}, to confirm.")
    org = _locked(org)
    if is_closing(org):
        raise Conflict(f"{org.name} is already closing on {closes_on(org)}.")
    at = clock.now()
    org.closing_requested_at, org.closing_due_at = at, at + GRACE
    audit.record("organization.closing_requested", actor=actor, target_type="organization", target_id=org.id,
                 details={"due": org.closing_due_at.isoformat()})
    projection.remove_org(org.id)  # a closing organization takes no new athletes from the directory
    for member in _members(org):
        queue_email(member.email, f"{org.name} closes on {closes_on(org)}", "org_closing_scheduled",
                    user=member, org=org, due=closes_on(org))
    return org


def cancel_closing(org: Organization, actor: User) -> Organization:
    """Keep ``org`` after all (an admin, before the erasure ran). Every member is emailed.

    :raises ClosingError: it is not closing.
    """
    org = _locked(org)
    if not is_closing(org):
        raise ClosingError(f"{org.name} is not closing.")
    due = closes_on(org)
    org.closing_requested_at = org.closing_due_at = None
    audit.record("organization.closing_cancelled", actor=actor, target_type="organization", target_id=org.id,
                 details={"was_due": due})
    emit(LISTING_CHANGED, {"coach_membership_id": None}, tenant_id=org.id)  # listed again, if it lists
    for member in _members(org):
        queue_email(member.email, f"{org.name} stays open", "org_closing_cancelled", user=member, org=org)
    return org


def due_organizations(limit: int = 20) -> list[uuid.UUID]:
    return list(db.session.scalars(select(Organization.id).where(Organization.closing_due_at <= clock.now())
                                   .order_by(Organization.closing_due_at).limit(limit)))


def erase_organization(org_id: uuid.UUID) -> bool:
    """Erase one due organization: its stored objects, then every row (the caller commits). ``False`` when it is
    not due (cancelled meanwhile) or already gone, so running twice is harmless."""
    org = db.session.scalar(select(Organization).where(Organization.id == org_id).with_for_update(skip_locked=True))
    if org is None or org.closing_due_at is None or org.closing_due_at > clock.now():
        return False
    facts = {"slug": org.slug, "name": org.name, "requested_at": org.closing_requested_at.isoformat()}
    storage = get_storage()
    # Objects first: if the rows' deletion fails, the next run deletes them again (nothing is left unfindable).
    facts["objects"] = sum(storage.delete_prefix(prefix) for prefix in storage_prefixes(org.id))
    db.session.expunge(org)
    with tenant_context.acting_for(None, None):
        erased = db.session.execute(text("SELECT erase_organization(:id)"), {"id": org_id}).scalar_one()
        if erased:
            audit.record("organization.erased", actor_label="system", target_type="organization",
                         target_id=org_id, details=facts)
    return bool(erased)


def erase_due_organizations() -> int:
    """The sweep: erase every organization whose closing is due, each in its own transaction."""
    return each_in_own_transaction(due_organizations(), erase_organization, "organization")
