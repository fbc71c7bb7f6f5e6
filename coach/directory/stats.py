"""Facts about coaches computed from their bookings, offerings and packs: what a profile and a public listing show
beside what the coach wrote (response time, sessions delivered, price range, next free slot).

:func:`coach_facts` answers for many coaches in a fixed number of statements (plus one per active offering and
week looked at for the next slot), so a page or an organization's refresh never runs one query per coach per fact.
"""
from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import Integer, and_, func, literal, or_, select, union_all

from coach import clock
from coach.booking.availability import available_slots
from coach.booking.models import Booking, CoachCalendar, Offering
from coach.directory.models import CoachProfile
from coach.extensions import db
from coach.payments.models import PACK, Product, ProductOffering

RESPONSE_WINDOW_DAYS = 90
RESPONSE_MIN_ANSWERS = 3  # fewer answered requests than this say nothing about a coach's habits


@dataclass(frozen=True)
class CoachFacts:
    """What the data says about one coach (``None``: not enough data, or nothing offered)."""

    response_minutes: int | None = None
    sessions_delivered: int = 0
    currency: str | None = None
    price_min_minor: int | None = None
    price_max_minor: int | None = None
    next_slot_at: datetime | None = None


def coach_facts(tenant_id: uuid.UUID, coach_ids: Iterable[uuid.UUID], now: datetime | None = None,
                *, with_next_slot: bool = True) -> dict[uuid.UUID, CoachFacts]:
    """Facts for each of ``coach_ids`` (coach memberships of ``tenant_id``); every id gets an entry.

    :param with_next_slot: look for the next free slot (the only part whose cost grows with offerings).
    """
    ids = list(dict.fromkeys(coach_ids))
    if not ids:
        return {}
    now = now or clock.now()
    response = _response_minutes(tenant_id, ids, now)
    delivered = _sessions_delivered(tenant_id, ids)
    prices = _price_ranges(tenant_id, ids)
    slots = _next_slots(tenant_id, ids, now) if with_next_slot else {}
    facts = {}
    for coach_id in ids:
        currency, low, high = prices.get(coach_id, (None, None, None))
        facts[coach_id] = CoachFacts(
            response_minutes=response.get(coach_id), sessions_delivered=delivered.get(coach_id, 0),
            currency=currency, price_min_minor=low, price_max_minor=high, next_slot_at=slots.get(coach_id))
    return facts


def _response_minutes(tenant_id: uuid.UUID, ids: list[uuid.UUID], now: datetime) -> dict[uuid.UUID, int | None]:
    """The median minutes from a request to the coach's answer, over the requests of the last 90 days.

    A request is a booking of an offering that is not confirmed automatically and that someone other than the
    coach made (a coach booking for an athlete confirms at once); its answer is the confirmation, or the decline.
    Expired requests were never answered and are left out.
    """
    # Confirmed (whatever happened later): the confirmation; declined: the status change that declined it.
    answered_at = func.coalesce(Booking.confirmed_at, Booking.status_changed_at)
    minutes = func.extract("epoch", answered_at - Booking.created_at) / 60
    median = func.percentile_cont(0.5).within_group(minutes)
    query = (select(Booking.coach_membership_id, median, func.count())
             .join(Offering, and_(Offering.tenant_id == Booking.tenant_id, Offering.id == Booking.offering_id))
             .where(Booking.tenant_id == tenant_id, Booking.coach_membership_id.in_(ids),
                    Booking.created_at >= now - timedelta(days=RESPONSE_WINDOW_DAYS),
                    Offering.auto_confirm.is_(False),
                    Booking.booked_by_membership_id.is_distinct_from(Booking.coach_membership_id),
                    or_(Booking.confirmed_at.is_not(None), Booking.status == "declined"),
                    answered_at >= Booking.created_at)
             .group_by(Booking.coach_membership_id))
    found = {}
    for coach_id, value, answers in db.session.execute(query):
        found[coach_id] = max(0, round(float(value))) if answers >= RESPONSE_MIN_ANSWERS else None
    return found


def _sessions_delivered(tenant_id: uuid.UUID, ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Sessions that ended with at least one athlete in them (a group session counts once)."""
    query = (select(Booking.coach_membership_id, func.count(Booking.session_id.distinct()))
             .where(Booking.tenant_id == tenant_id, Booking.coach_membership_id.in_(ids), Booking.status == "ended")
             .group_by(Booking.coach_membership_id))
    return dict(db.session.execute(query).all())


def _price_ranges(tenant_id: uuid.UUID, ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[str, int, int]]:
    """Per coach: (currency, lowest, highest) price of one session, over active offerings and the per-session price
    of the packs (not archived) that book them. A coach pricing in several currencies is shown in the one most of
    their prices use (prices in different currencies cannot be compared without rates)."""
    offerings = select(Offering.coach_membership_id.label("coach_id"), Offering.currency.label("currency"),
                       Offering.price_minor.label("price")).where(
        Offering.tenant_id == tenant_id, Offering.coach_membership_id.in_(ids), Offering.active.is_(True))
    booked = select(literal(1)).where(
        ProductOffering.tenant_id == Product.tenant_id, ProductOffering.product_id == Product.id,
        Offering.tenant_id == ProductOffering.tenant_id, Offering.id == ProductOffering.offering_id,
        Offering.active.is_(True)).exists()
    packs = select(Product.coach_membership_id, Product.currency,
                   func.round(Product.price_minor / func.greatest(Product.credits, 1)).cast(Integer)).where(
        Product.tenant_id == tenant_id, Product.coach_membership_id.in_(ids), Product.kind == PACK,
        Product.archived_at.is_(None), booked)
    points: dict[uuid.UUID, list[tuple[str, int]]] = defaultdict(list)
    for coach_id, currency, price in db.session.execute(union_all(offerings, packs)):
        points[coach_id].append((currency, int(price)))
    ranges = {}
    for coach_id, rows in points.items():
        counts = Counter(currency for currency, _ in rows)
        # Most prices first, then alphabetically: the same answer on every refresh.
        currency = min(counts, key=lambda c: (-counts[c], c))
        prices = [price for c, price in rows if c == currency]
        ranges[coach_id] = (currency, min(prices), max(prices))
    return ranges


def _next_slots(tenant_id: uuid.UUID, ids: list[uuid.UUID], now: datetime) -> dict[uuid.UUID, datetime]:
    """The earliest bookable slot of each coach's active offerings within DIRECTORY_SLOT_HORIZON_DAYS.

    Looked for a week at a time, stopping at the first week that has one, so a busy coach costs one statement per
    offering rather than the whole horizon's.
    """
    offerings = db.session.scalars(select(Offering).where(
        Offering.tenant_id == tenant_id, Offering.coach_membership_id.in_(ids), Offering.active.is_(True))
        .order_by(Offering.coach_membership_id, Offering.created_at, Offering.id)).all()
    if not offerings:
        return {}
    zones = dict(db.session.execute(select(CoachCalendar.coach_membership_id, CoachCalendar.timezone).where(
        CoachCalendar.tenant_id == tenant_id, CoachCalendar.coach_membership_id.in_(ids))).all())
    by_coach: dict[uuid.UUID, list[Offering]] = defaultdict(list)
    for offering in offerings:
        by_coach[offering.coach_membership_id].append(offering)
    horizon = now + timedelta(days=current_app.config["DIRECTORY_SLOT_HORIZON_DAYS"])
    found = {}
    for coach_id, own in by_coach.items():
        start = now
        while start < horizon and coach_id not in found:
            end = min(start + timedelta(days=7), horizon)
            earliest = None
            for offering in own:
                slots = available_slots(offering, start, end, now=now, tz=zones.get(coach_id))
                first = min((slot.starts_at for slot in slots), default=None)
                if first is not None and (earliest is None or first < earliest):
                    earliest = first
            if earliest is not None:
                found[coach_id] = earliest
            start = end
    return found


def refresh_profile_stats(profile: CoachProfile, now: datetime | None = None) -> CoachFacts:
    """Store the response time and sessions delivered on ``profile`` (the caller commits)."""
    now = now or clock.now()
    facts = coach_facts(profile.tenant_id, [profile.coach_membership_id], now, with_next_slot=False)[
        profile.coach_membership_id]
    profile.response_minutes = facts.response_minutes
    profile.sessions_delivered = facts.sessions_delivered
    profile.stats_at = now
    db.session.flush()
    return facts
