"""The public directory follows the events that change what a listing shows, and two sweeps catch what has no
event: a listing's next free slot passing by, and names, photos and zones changing elsewhere (nightly).

Every consumer recomputes the listing from the organization's rows, so it is idempotent and order does not
matter; an unlisted organization costs one lookup (nothing is read or written for it).
"""
from __future__ import annotations

import uuid
from collections import defaultdict

from flask import g
from sqlalchemy import or_, select

from coach import clock
from coach.booking import events as booking_events
from coach.booking.models import Offering
from coach.calsync.events import CALENDAR_BUSY_CHANGED
from coach.directory import projection
from coach.directory.events import LISTING_CHANGED, PROFILE_CHANGED, REVIEW_CHANGED, REVIEW_POSTED
from coach.directory.models import Listing
from coach.extensions import db
from coach.orgs.events import MEMBER_REMOVED, MEMBER_ROLE_CHANGED
from coach.orgs.models import COACH
from coach.payments.events import PRODUCT_CHANGED
from coach.platform.jobs import consumer, each_tenant
from coach.platform.periodic import periodic

# Booking changes that move a coach's next free slot, response time or sessions delivered.
BOOKING_TOPICS = (booking_events.BOOKING_HELD, booking_events.BOOKING_REQUESTED, booking_events.BOOKING_CONFIRMED,
                  booking_events.BOOKING_DECLINED, booking_events.BOOKING_EXPIRED, booking_events.BOOKING_CANCELLED,
                  booking_events.BOOKING_ENDED, booking_events.BOOKING_NO_SHOW)


def _coach_id(payload: dict, key: str = "coach_membership_id") -> uuid.UUID | None:
    value = payload.get(key)
    return uuid.UUID(value) if value else None


@consumer(PROFILE_CHANGED, LISTING_CHANGED, REVIEW_POSTED, REVIEW_CHANGED, CALENDAR_BUSY_CHANGED,
          booking_events.OFFERING_CHANGED, booking_events.AVAILABILITY_CHANGED, PRODUCT_CHANGED, *BOOKING_TOPICS)
def refresh_listing(payload: dict) -> None:
    """One coach's listing, or (no coach named) every listing of the organization."""
    coach_id = _coach_id(payload)
    if coach_id is None:
        projection.refresh_org(g.tenant_id)
    else:
        projection.refresh_coach(g.tenant_id, coach_id)


@consumer(MEMBER_ROLE_CHANGED, MEMBER_REMOVED)
def follow_membership(payload: dict) -> None:
    """A member became a coach or stopped being one (or left): listed or removed accordingly."""
    if COACH in (payload.get("from"), payload.get("to"), payload.get("role")):
        projection.refresh_coach(g.tenant_id, _coach_id(payload, "membership_id"))


@periodic(every=15 * 60, name="directory_next_slots")
def sweep_next_slots() -> int:
    """Refresh listings whose next free slot has passed, or that show none although the coach offers something
    (a slot may have opened without an event: a held booking that lapsed, hours moving into the horizon)."""
    now = clock.now()
    stale: dict[uuid.UUID, list[tuple[uuid.UUID, bool]]] = defaultdict(list)
    for org_id, coach_id, at in db.session.execute(select(
            Listing.organization_id, Listing.coach_membership_id, Listing.next_slot_at).where(
            or_(Listing.next_slot_at < now, Listing.next_slot_at.is_(None)))):
        stale[org_id].append((coach_id, at is not None))
    db.session.commit()

    def refresh(tenant_id: uuid.UUID) -> int:
        passed = {coach for coach, had_slot in stale[tenant_id] if had_slot}
        none = [coach for coach, had_slot in stale[tenant_id] if not had_slot]
        offering = set(db.session.scalars(select(Offering.coach_membership_id).where(
            Offering.tenant_id == tenant_id, Offering.coach_membership_id.in_(none), Offering.active.is_(True))
        .distinct())) if none else set()
        projection.refresh_coaches(tenant_id, passed | offering)
        return len(passed | offering)

    return each_tenant(list(stale), refresh, "directory next-slot sweep")


@periodic(every=24 * 3600, name="directory_rebuild")
def rebuild_directory() -> int:
    """Project everything again once a day: display names, photos and zones change without a directory event."""
    return projection.rebuild_all().listings
