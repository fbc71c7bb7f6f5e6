"""Joining an organization from the public directory: a visitor who found a listed coach becomes an athlete of
the coach's organization to book them.

Only through a listing: the organization lists its coaches publicly and the coach is listed, so the directory
cannot be used to join an organization that did not open itself this way (invitations stay the only way into
every other one). The caller activates the organization (``tenancy.activate``) and commits.
"""
from __future__ import annotations

from sqlalchemy import select

from coach.accounts.models import User
from coach.dbutil import insert_or_raise
from coach.directory.models import CoachProfile, Listing
from coach.errors import DomainError
from coach.extensions import db
from coach.orgs.models import ATHLETE, Membership, Organization
from coach.orgs.service import membership_for
from coach.platform import audit


class JoinRefused(DomainError):
    """The organization cannot be joined from the directory (any more)."""

    status = 404


class _JoinedMeanwhile(Exception):
    """Another request of the same person made the membership first."""


def listing_is_live(org: Organization, listing: Listing) -> bool:
    """Whether ``listing`` still stands for a published coach of ``org``, read from the organization's own rows.

    The projection follows changes a moment later (outbox consumers); this closes that gap for what matters:
    an organization that stopped listing, or a coach who opted out, is not joined or shown through it.
    """
    if listing.organization_id != org.id or not org.listed_publicly or org.closing_due_at is not None:
        return False
    return bool(db.session.scalar(select(CoachProfile.listed).where(
        CoachProfile.tenant_id == org.id, CoachProfile.id == listing.id,
        CoachProfile.coach_membership_id == listing.coach_membership_id)))


def join_as_athlete(org: Organization, user: User, *, listing: Listing) -> Membership:
    """Make ``user`` an athlete of ``org``, found through ``listing``; their membership if they already have one.

    A new membership is audited (``membership.joined_from_directory``, naming the coach's listing); joining
    again, or as a member of any role, changes nothing (a double click, a second tab).
    """
    if not listing_is_live(org, listing):
        raise JoinRefused("This coach is no longer listed in the directory.")
    existing = membership_for(org, user)
    if existing is not None:
        return existing
    membership = Membership(tenant_id=org.id, user_id=user.id, role=ATHLETE)
    try:
        insert_or_raise(membership, _JoinedMeanwhile())
    except _JoinedMeanwhile:  # the savepoint is rolled back and the row forgotten; theirs stands
        return membership_for(org, user)
    audit.record("membership.joined_from_directory", actor=user, target_type="membership", target_id=membership.id,
                 details={"role": ATHLETE, "coach": listing.handle, "listing_id": str(listing.id)},
                 tenant_id=org.id)
    return membership
