"""The lists of bookings the pages show: a member's sessions as coach or athlete, grouped for the sessions page."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from coach import clock
from coach.booking.availability import zone
from coach.booking.models import Booking
from coach.extensions import db
from coach.orgs.models import Membership

# What each list of the sessions page shows: an athlete's upcoming list includes the requests they wait on;
# a coach answers requests in their own list.
UPCOMING_AS_ATHLETE = ("requested", "confirmed", "active")
UPCOMING_AS_COACH = ("confirmed", "active")
PAST_STATUSES = ("ended", "no_show", "active", "confirmed", "cancelled", "declined", "expired")


def bookings_for(membership: Membership, *, as_coach: bool, statuses: tuple[str, ...] | None = None,
                 after: datetime | None = None, before: datetime | None = None, newest_first: bool = False,
                 limit: int = 50) -> list[Booking]:
    """A member's bookings, as coach or as athlete, filtered by status and start time (one query)."""
    column = Booking.coach_membership_id if as_coach else Booking.athlete_membership_id
    query = select(Booking).where(Booking.tenant_id == membership.tenant_id, column == membership.id)
    if statuses:
        query = query.where(Booking.status.in_(statuses))
    if after is not None:
        query = query.where(Booking.starts_at >= after)
    if before is not None:
        query = query.where(Booking.starts_at < before)
    order = (Booking.starts_at.desc(), Booking.id.desc()) if newest_first else (Booking.starts_at, Booking.id)
    return list(db.session.scalars(query.order_by(*order).limit(limit)))


def session_lists(member: Membership, coach: Membership | None, tz: str, now: datetime | None = None) -> dict:
    """The sessions page's lists: requests to answer, today, upcoming and past.

    :param member: whose sessions, as athlete, when ``coach`` is ``None``.
    :param coach: whose sessions, as coach (the member themself, or any coach for staff).
    :param tz: the viewer's zone, where "today" ends.
    :returns: ``pending``, ``today``, ``upcoming``, ``past`` (bookings) and the ``now`` they were cut at.
    """
    now = now or clock.now()
    viewer_zone = zone(tz)
    local_midnight = datetime.combine(now.astimezone(viewer_zone).date() + timedelta(days=1), datetime.min.time(),
                                      viewer_zone)
    as_coach = coach is not None
    who = coach if as_coach else member
    pending = bookings_for(who, as_coach=True, statuses=("requested",)) if as_coach else []
    upcoming = bookings_for(who, as_coach=as_coach, statuses=UPCOMING_AS_COACH if as_coach else UPCOMING_AS_ATHLETE,
                            after=now - timedelta(hours=12), limit=100)
    upcoming = [b for b in upcoming if b.status == "active" or b.ends_at > now]
    today = [b for b in upcoming if b.starts_at < local_midnight] if as_coach else []
    later = [b for b in upcoming if b not in today]
    past = bookings_for(who, as_coach=as_coach, before=now, newest_first=True, limit=30, statuses=PAST_STATUSES)
    return dict(pending=pending, today=today, upcoming=later, past=[b for b in past if b not in upcoming], now=now)


def pending_count(membership: Membership) -> int:
    return db.session.scalar(select(func.count()).select_from(Booking).where(
        Booking.tenant_id == membership.tenant_id, Booking.coach_membership_id == membership.id,
        Booking.status == "requested")) or 0
