"""Who may do what with calendars and bookings, and the loaders that find a tenant's rows by id."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import defaultload, lazyload

from coach.accounts.models import User
from coach.booking.models import Booking, Offering
from coach.extensions import db
from coach.ids import parse_uuid as _uuid
from coach.orgs.models import ATHLETE, COACH, STAFF, Membership, Organization
from coach.orgs.service import members_with_role


def manages_calendar(actor: Membership, coach: Membership) -> bool:
    """The coach themself, or an admin or scheduler of the organization."""
    return actor.id == coach.id or actor.role in STAFF


def books_for_others(actor: Membership) -> bool:
    return actor.role in STAFF


def may_view(actor: Membership, booking: Booking) -> bool:
    return actor.id in (booking.athlete_membership_id, booking.coach_membership_id) or books_for_others(actor)


def coaches(org: Organization) -> list[Membership]:
    return members_with_role(org, COACH, limit=500)


def _member_with_role(org: Organization, membership_id, role: str) -> Membership | None:
    mid = _uuid(membership_id)
    if mid is None:
        return None
    return db.session.scalar(select(Membership).where(
        Membership.tenant_id == org.id, Membership.id == mid, Membership.role == role))


def get_coach(org: Organization, membership_id) -> Membership | None:
    return _member_with_role(org, membership_id, COACH)


def get_athlete(org: Organization, membership_id) -> Membership | None:
    return _member_with_role(org, membership_id, ATHLETE)


def get_offering(org: Organization, offering_id) -> Offering | None:
    oid = _uuid(offering_id)
    if oid is None:
        return None
    # With its coach and their name (pages show them), not the coach's organization: it is ``org``, and each
    # join more is planned again on every request of the calendar, the page athletes open most.
    return db.session.scalar(select(Offering).options(defaultload(Offering.coach).lazyload(Membership.organization))
                             .where(Offering.tenant_id == org.id, Offering.id == oid))


def get_booking(org: Organization, booking_id) -> Booking | None:
    bid = _uuid(booking_id)
    if bid is None:
        return None
    return db.session.scalar(select(Booking).where(Booking.tenant_id == org.id, Booking.id == bid))


def offerings_of(coach: Membership, include_inactive: bool = False) -> list[Offering]:
    query = select(Offering).where(Offering.tenant_id == coach.tenant_id,
                                   Offering.coach_membership_id == coach.id)
    if not include_inactive:
        query = query.where(Offering.active.is_(True))
    return list(db.session.scalars(query.order_by(Offering.active.desc(), func.lower(Offering.title))))


def bookable_coaches(org: Organization) -> list[tuple[Membership, int]]:
    """Coaches with the number of active offerings each has, by name."""
    counts = (select(Offering.coach_membership_id, func.count().label("n"))
              .where(Offering.tenant_id == org.id, Offering.active.is_(True))
              .group_by(Offering.coach_membership_id).subquery())
    rows = db.session.execute(
        select(Membership, func.coalesce(counts.c.n, 0)).options(lazyload(Membership.organization))
        .join(Membership.user)
        .outerjoin(counts, counts.c.coach_membership_id == Membership.id)
        .where(Membership.tenant_id == org.id, Membership.role == COACH)
        .order_by(func.lower(User.display_name)))
    return [(m, n) for m, n in rows]
