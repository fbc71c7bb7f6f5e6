"""Calendar feeds: a member's secret subscription address and what it lists."""
from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select

from coach import clock
from coach.booking.models import Booking, CalendarFeed
from coach.extensions import db
from coach.orgs.models import Membership, Organization
from coach.platform import audit


# Higher domains add their own events to a member's feed (progress: the athlete's scheduled workouts). Each
# source is ``fn(membership, start, end) -> iterable of icalendar Events``; booking never imports them.
_SOURCES: list[Callable[[Membership, datetime, datetime], Iterable]] = []
FEED_AHEAD = timedelta(days=180)


def register_source(fn: Callable[[Membership, datetime, datetime], Iterable]) -> Callable:
    """Register ``fn(membership, start, end)``: extra VEVENTs for ``membership``'s calendar feed."""
    if fn not in _SOURCES:
        _SOURCES.append(fn)
    return fn


def extra_events(membership: Membership, start: datetime, end: datetime) -> list:
    """The registered sources' events for ``membership`` between ``start`` and ``end``."""
    events: list = []
    for source in _SOURCES:
        events.extend(source(membership, start, end))
    return events


class FeedBookings(list):
    """The bookings of a feed, carrying the other sources' events (``extra_events``) to :func:`ics.calendar`."""

    extra_events: list


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def has_feed(membership: Membership) -> bool:
    return db.session.scalar(select(func.count()).select_from(CalendarFeed).where(
        CalendarFeed.tenant_id == membership.tenant_id, CalendarFeed.membership_id == membership.id)) > 0


def regenerate_feed(membership: Membership) -> str:
    """Issue a new secret feed address for ``membership``; the old one stops working. Returns the secret."""
    secret = secrets.token_urlsafe(32)
    feed = db.session.scalar(select(CalendarFeed).where(
        CalendarFeed.tenant_id == membership.tenant_id, CalendarFeed.membership_id == membership.id)
        .with_for_update())
    if feed is None:
        feed = CalendarFeed(tenant_id=membership.tenant_id, membership_id=membership.id, token_hash=_hash(secret))
        db.session.add(feed)
    else:
        feed.token_hash = _hash(secret)
        feed.created_at = clock.now()
    db.session.flush()
    audit.record("calendar_feed.issued", actor=membership.user, target_type="membership", target_id=membership.id)
    return secret


def feed_owner(org: Organization, secret: str) -> Membership | None:
    if not secret or len(secret) > 100:
        return None
    membership_id = db.session.scalar(select(CalendarFeed.membership_id).where(
        CalendarFeed.tenant_id == org.id, CalendarFeed.token_hash == _hash(secret)))
    return db.session.get(Membership, membership_id) if membership_id else None


def feed_bookings(membership: Membership, now: datetime | None = None) -> list[Booking]:
    """What a member's calendar feed lists: their sessions from 60 days ago on, as coach and as athlete, and
    (``extra_events``) what the registered sources add from 60 days ago to 180 days ahead.

    Declined, expired and cancelled ones stay listed (marked cancelled), so a calendar app that
    showed a request as tentative removes it.
    """
    now = now or clock.now()
    since = now - timedelta(days=60)
    found = FeedBookings(db.session.scalars(select(Booking).where(
        Booking.tenant_id == membership.tenant_id,
        or_(Booking.coach_membership_id == membership.id, Booking.athlete_membership_id == membership.id),
        Booking.starts_at >= since)
        .order_by(Booking.starts_at).limit(2000)))
    found.extra_events = extra_events(membership, since, now + FEED_AHEAD)
    return found
