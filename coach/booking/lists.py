"""The lists of bookings the pages show: a member's sessions as coach or athlete, grouped for the sessions page."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cache
from datetime import datetime, timedelta, tzinfo

from sqlalchemy import and_, bindparam, func, literal, select, union_all
from sqlalchemy.orm import aliased

from coach import clock
from coach.accounts.models import User
from coach.booking.availability import zone
from coach.booking.lifecycle import actions_for, late_at
from coach.booking.models import STATUS_LABELS, Booking, Offering
from coach.extensions import db
from coach.orgs.models import Membership

# What each list of the sessions page shows: an athlete's upcoming list includes the requests they wait on;
# a coach answers requests in their own list. A held place (awaiting its payment) takes the coach's time, so
# both see it among the upcoming ones (the coach is asked only once it is paid).
UPCOMING_AS_ATHLETE = ("held", "requested", "confirmed", "active")
UPCOMING_AS_COACH = ("held", "confirmed", "active")
PAST_STATUSES = ("ended", "no_show", "active", "confirmed", "cancelled", "declined", "expired")
PENDING_LIMIT, UPCOMING_LIMIT, PAST_LIMIT = 50, 100, 30


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


@dataclass(frozen=True, slots=True)
class SessionRow:
    """One booking as a list shows it: its own columns, the names around it, its times in the viewer's zone
    and what the viewer may do with it, all worked out once when the list is read (not per template call)."""

    id: uuid.UUID
    offering_id: uuid.UUID
    coach_membership_id: uuid.UUID
    athlete_membership_id: uuid.UUID
    status: str
    starts_at: datetime
    ends_at: datetime
    note: str
    late_cancellation: bool
    offering_title: str
    coach_name: str
    athlete_name: str
    starts_local: datetime
    ends_local: datetime
    zone: str  # the zone of the two above, by name: aware datetimes compare (and hash) by their instant alone
    actions: frozenset[str]
    late_if_cancelled: bool

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)


def session_row(booking: Booking, actor: Membership, viewer_zone: tzinfo, now: datetime | None = None) -> SessionRow:
    """The row of one loaded booking (the booking's page shows the same row as the lists)."""
    now = now or clock.now()
    return _row(booking.id, booking.offering_id, booking.coach_membership_id, booking.athlete_membership_id,
                booking.status, booking.starts_at, booking.ends_at, booking.note, booking.late_cancellation,
                booking.offering.title, booking.offering.cancellation_window_hours, booking.coach.user.display_name,
                booking.athlete.user.display_name, actor=actor, viewer_zone=viewer_zone, now=now)


def _row(id, offering_id, coach_id, athlete_id, status, starts_at, ends_at, note, late_cancellation, title,
         window_hours, coach_name, athlete_name, *, actor: Membership, viewer_zone: tzinfo,
         now: datetime) -> SessionRow:
    return SessionRow(id, offering_id, coach_id, athlete_id, status, starts_at, ends_at, note or "",
                      late_cancellation, title, coach_name, athlete_name, starts_at.astimezone(viewer_zone),
                      ends_at.astimezone(viewer_zone), str(viewer_zone),
                      frozenset(actions_for(status, starts_at, coach_id, athlete_id, actor, now)),
                      late_at(status, starts_at, window_hours, now))


ROW_COLUMNS = (Booking.id, Booking.offering_id, Booking.coach_membership_id, Booking.athlete_membership_id,
               Booking.status, Booking.starts_at, Booking.ends_at, Booking.note, Booking.late_cancellation)


def _part(name: str, as_coach: bool, statuses: tuple[str, ...], limit: int, since: bool = False,
          until: bool = False, newest_first: bool = False):
    """One list's bookings in its order (``pos``), by the (tenant, person, starts_at) indexes."""
    column = Booking.coach_membership_id if as_coach else Booking.athlete_membership_id
    order = (Booking.starts_at.desc(), Booking.id.desc()) if newest_first else (Booking.starts_at, Booking.id)
    query = select(literal(name).label("list"), func.row_number().over(order_by=order).label("pos"),
                   *ROW_COLUMNS).where(Booking.tenant_id == bindparam("tenant_id"), column == bindparam("who"),
                                       Booking.status.in_(statuses))
    if since:
        query = query.where(Booking.starts_at >= bindparam("since"))
    if until:
        query = query.where(Booking.starts_at < bindparam("now"))
    return query.order_by(*order).limit(limit)


@cache
def _lists_statement(as_coach: bool):
    """The sessions page's one statement, built once per side (only its parameters change, so SQLAlchemy
    reuses the compiled form): each list by its own index range and limit, then the offering's title and the
    other person's name. The viewed person is one side of every row (the coach, or the athlete), so only the
    other side is joined: each join more costs PostgreSQL planning time on every request (a statement with
    both people's memberships and users took ~8 ms to plan, this one under 1 ms)."""
    parts = [_part("upcoming", as_coach, UPCOMING_AS_COACH if as_coach else UPCOMING_AS_ATHLETE,
                   UPCOMING_LIMIT, since=True),
             _part("past", as_coach, PAST_STATUSES, PAST_LIMIT, until=True, newest_first=True)]
    if as_coach:
        parts.append(_part("pending", True, ("requested",), PENDING_LIMIT))
    picked = union_all(*parts).subquery("picked")
    other, person = aliased(Membership), aliased(User)
    return (
        select(picked, Offering.title, Offering.cancellation_window_hours, person.display_name)
        .join(Offering, and_(Offering.tenant_id == bindparam("tenant_id"), Offering.id == picked.c.offering_id))
        .join(other, and_(other.tenant_id == bindparam("tenant_id"),
                          other.id == (picked.c.athlete_membership_id if as_coach else picked.c.coach_membership_id)))
        .join(person, person.id == other.user_id)
        .order_by(picked.c.list, picked.c.pos))


def _rows(who: Membership, as_coach: bool, actor: Membership, viewer_zone: tzinfo,
          now: datetime) -> dict[str, list[SessionRow]]:
    """Every list of ``who`` (as coach, or as athlete) as :class:`SessionRow` lists, by list name."""
    found = db.session.execute(_lists_statement(as_coach), {
        "tenant_id": who.tenant_id, "who": who.id, "now": now, "since": now - timedelta(hours=12)})
    mine = who.user.display_name
    lists: dict[str, list[SessionRow]] = {}
    for name, _pos, *columns, title, window, other_name in found:
        coach_name, athlete_name = (mine, other_name) if as_coach else (other_name, mine)
        lists.setdefault(name, []).append(_row(*columns, title, window, coach_name, athlete_name, actor=actor,
                                               viewer_zone=viewer_zone, now=now))
    return lists


def session_lists(member: Membership, coach: Membership | None, tz: str, now: datetime | None = None) -> dict:
    """The sessions page's lists: requests to answer, today, upcoming and past (one statement).

    :param member: the viewer (what they may do with each row), and whose sessions, as athlete, when
        ``coach`` is ``None``.
    :param coach: whose sessions, as coach (the member themself, or any coach for staff).
    :param tz: the viewer's zone, where "today" ends and the rows' times are read.
    :returns: ``pending``, ``today``, ``upcoming``, ``past`` (:class:`SessionRow` lists), the ``now`` they
        were cut at and the viewer's ``zone``.
    """
    now = now or clock.now()
    viewer_zone = zone(tz)
    local_midnight = datetime.combine(now.astimezone(viewer_zone).date() + timedelta(days=1), datetime.min.time(),
                                      viewer_zone)
    as_coach = coach is not None
    lists = _rows(coach if as_coach else member, as_coach, member, viewer_zone, now)
    upcoming = [r for r in lists.get("upcoming", ()) if r.status == "active" or r.ends_at > now]
    shown = {r.id for r in upcoming}
    today = [r for r in upcoming if r.starts_at < local_midnight] if as_coach else []
    later = [r for r in upcoming if r.starts_at >= local_midnight] if as_coach else upcoming
    return dict(pending=lists.get("pending", []), today=today, upcoming=later,
                past=[r for r in lists.get("past", ()) if r.id not in shown], now=now, zone=viewer_zone)


def pending_count(membership: Membership) -> int:
    return db.session.scalar(select(func.count()).select_from(Booking).where(
        Booking.tenant_id == membership.tenant_id, Booking.coach_membership_id == membership.id,
        Booking.status == "requested")) or 0


def org_rows(actor: Membership, tz: str, *, statuses: tuple[str, ...], since: datetime | None = None,
             until: datetime | None = None, limit: int = 20, now: datetime | None = None) -> list[SessionRow]:
    """Bookings of every coach of the organization (staff's home), by start time: both people's names joined,
    since no one side is the viewer. One statement.

    :param actor: the staff member viewing (what they may do with each row).
    :param statuses: which bookings; ``since``/``until`` bound their start.
    """
    now = now or clock.now()
    coach, coach_user, athlete, athlete_user = aliased(Membership), aliased(User), aliased(Membership), aliased(User)
    query = (select(*ROW_COLUMNS, Offering.title, Offering.cancellation_window_hours, coach_user.display_name,
                    athlete_user.display_name)
             .join(Offering, and_(Offering.tenant_id == Booking.tenant_id, Offering.id == Booking.offering_id))
             .join(coach, and_(coach.tenant_id == Booking.tenant_id, coach.id == Booking.coach_membership_id))
             .join(coach_user, coach_user.id == coach.user_id)
             .join(athlete, and_(athlete.tenant_id == Booking.tenant_id, athlete.id == Booking.athlete_membership_id))
             .join(athlete_user, athlete_user.id == athlete.user_id)
             .where(Booking.tenant_id == actor.tenant_id, Booking.status.in_(statuses)))
    if since is not None:
        query = query.where(Booking.starts_at >= since)
    if until is not None:
        query = query.where(Booking.starts_at < until)
    viewer_zone = zone(tz)
    return [_row(*row, actor=actor, viewer_zone=viewer_zone, now=now)
            for row in db.session.execute(query.order_by(Booking.starts_at, Booking.id).limit(limit))]


def athletes_of(coach: Membership, limit: int = 200) -> list[uuid.UUID]:
    """The athletes who booked ``coach`` at least once (their memberships' ids; one statement)."""
    return list(db.session.scalars(
        select(Booking.athlete_membership_id).where(Booking.tenant_id == coach.tenant_id,
                                                    Booking.coach_membership_id == coach.id)
        .group_by(Booking.athlete_membership_id).limit(limit)))
