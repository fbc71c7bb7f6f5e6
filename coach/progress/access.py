"""Who may see and change an athlete's development data.

The organization's coaches and admins see every athlete of it (and write records, programs, notes); an
athlete sees their own data only; schedulers see none of it. Private coach notes are for coaches and admins.
"""
from __future__ import annotations

import uuid

from sqlalchemy import select

from coach.errors import DomainError
from coach.extensions import db
from coach.ids import parse_uuid
from coach.orgs.models import ADMIN, ATHLETE, COACH, Membership

STAFF_ROLES = (ADMIN, COACH)


class ProgressError(DomainError):
    """A development action that cannot be done, with a message safe to show (422 unless said otherwise)."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message, status=status)


def is_staff(member: Membership) -> bool:
    return member.role in STAFF_ROLES


def require_staff(member: Membership) -> None:
    if not is_staff(member):
        raise ProgressError("Only the organization's coaches and admins can do that.", status=403)


def load_athlete(viewer: Membership, athlete_id: uuid.UUID | str | None) -> Membership:
    """The athlete ``viewer`` asks about, or a 404 (a wrong id, another organization's member, someone who is
    not an athlete, or, for an athlete viewer, anyone but themselves)."""
    athlete_uuid = athlete_id if isinstance(athlete_id, uuid.UUID) else parse_uuid(athlete_id)
    if athlete_uuid is None:
        raise ProgressError("No such athlete.", status=404)
    if not is_staff(viewer) and athlete_uuid != viewer.id:
        raise ProgressError("No such athlete.", status=404)
    athlete = db.session.scalar(select(Membership).where(Membership.tenant_id == viewer.tenant_id,
                                                         Membership.id == athlete_uuid))
    if athlete is None or athlete.role != ATHLETE:
        raise ProgressError("No such athlete.", status=404)
    return athlete


def athletes_of(viewer: Membership) -> list[Membership]:
    """The athletes ``viewer`` may open: every athlete for staff, themselves for an athlete."""
    if not is_staff(viewer):
        return [viewer] if viewer.role == ATHLETE else []
    return list(db.session.scalars(
        select(Membership).where(Membership.tenant_id == viewer.tenant_id, Membership.role == ATHLETE)
        .order_by(Membership.created_at)))
