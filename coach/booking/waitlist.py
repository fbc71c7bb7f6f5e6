"""Waitlists on full group sessions: joining and leaving the line, and giving a freed seat to the first in it.

A group session is full when ``live_seats == capacity``. While its offering's ``waitlist_mode`` is not "off",
athletes line up in ``waitlist_entries`` (one open place per athlete and session, by a unique index). When a seat
frees (a booking of the session is cancelled, declined or expires; a consumer of those topics and a periodic sweep
call :func:`fill`), the first waiting athlete by ``created_at`` gets it:

- "auto": booked through :func:`coach.booking.lifecycle.request_booking`, exactly as if they had booked
  themselves (auto-confirm or a request, the exclusion constraint, audit, the booking topics);
- "offer": the seat is held for them by a ``held`` booking that expires at ``offered_until`` (``now +
  waitlist_offer_minutes``, never past the start): nobody else can take it meanwhile. They :func:`accept` (the
  booking is settled like a paid hold) or the booking sweep expires the hold, which frees the seat again and
  :func:`fill` offers it to the next.

Paid offerings always offer (never book automatically: the athlete has to pay), and accepting opens the checkout
(the blueprint hands the seat to :func:`coach.payments.checkout.start_session_checkout`; see
:func:`release_for_checkout`).

While anyone waits, the session's free seats are the line's: :func:`coach.booking.lifecycle.request_booking`
refuses a direct booking by anyone but the first waiting (``LineWaiting``, 409), so a seat freed before the
consumer runs still goes to the first in line; joining is open while the line claims every free seat.

Exactly once under concurrency: every path that changes who has a seat (fill, join, leave, accept) first takes the
coach's seat lock (the advisory lock ``request_booking`` takes) and then the session's row lock, in that order,
so they queue; the free seats are counted from the locked row, and the seat itself is taken by
``request_booking``'s ``live_seats + 1 WHERE live_seats < capacity``. Services never commit.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from coach import clock
from coach.booking import lifecycle
from coach.booking.access import books_for_others
from coach.booking.errors import BookingError, SlotTaken, sqlstate
from coach.booking.events import WAITLIST_BOOKED, WAITLIST_OFFERED
from coach.booking.models import (LIVE_STATUSES, WAITLIST_OPEN, Booking, CoachingSession, Offering,
                                  WaitlistEntry)
from coach.extensions import db
from coach.ids import parse_uuid
from coach.orgs.models import ATHLETE, Membership, Organization
from coach.platform import audit
from coach.platform.outbox import emit

log = logging.getLogger(__name__)

MODES = {"off": "No waitlist", "auto": "Book the first in line automatically",
         "offer": "Offer the seat to the first in line for a limited time"}
STATUS_LABELS = {"waiting": "Waiting", "offered": "Seat offered", "booked": "Booked", "left": "Left the line",
                 "expired": "Offer ran out", "closed": "Closed"}


class WaitlistError(BookingError):
    """A waitlist request that cannot be carried out (422 unless said otherwise)."""


class OfferGone(WaitlistError):
    """The offered seat is no longer theirs (410)."""

    status = 410


# --- reading ---------------------------------------------------------------------------------------------


def takes_waitlist(offering: Offering) -> bool:
    """Whether full sessions of ``offering`` take a waitlist."""
    return offering.active and offering.capacity > 1 and offering.waitlist_mode != "off"


def mode_of(offering: Offering) -> str:
    """The mode that applies: a paid offering never books automatically (the athlete has to pay first)."""
    if offering.waitlist_mode == "auto" and offering.price_minor:
        return "offer"
    return offering.waitlist_mode


def _in_org(model, org: Organization, row_id):
    """``model``'s row ``row_id`` of ``org``; ``None`` for another organization's id or no UUID at all."""
    rid = parse_uuid(row_id)
    if rid is None:
        return None
    return db.session.scalar(select(model).where(model.tenant_id == org.id, model.id == rid))


def get_session(org: Organization, session_id) -> CoachingSession | None:
    return _in_org(CoachingSession, org, session_id)


def get_entry(org: Organization, entry_id) -> WaitlistEntry | None:
    return _in_org(WaitlistEntry, org, entry_id)


def may_act_for(actor: Membership, athlete_id: uuid.UUID) -> bool:
    """The athlete themselves, or a scheduler or admin on their behalf."""
    return actor.id == athlete_id or books_for_others(actor)


def line(session: CoachingSession) -> list[WaitlistEntry]:
    """The open places of ``session``'s line, first first."""
    return list(db.session.scalars(select(WaitlistEntry).where(
        WaitlistEntry.tenant_id == session.tenant_id, WaitlistEntry.session_id == session.id,
        WaitlistEntry.status.in_(WAITLIST_OPEN)).options(selectinload(WaitlistEntry.athlete))
        .order_by(WaitlistEntry.created_at, WaitlistEntry.id)))


def open_entry(session: CoachingSession, athlete_id: uuid.UUID) -> WaitlistEntry | None:
    return db.session.scalar(select(WaitlistEntry).where(
        WaitlistEntry.tenant_id == session.tenant_id, WaitlistEntry.session_id == session.id,
        WaitlistEntry.athlete_membership_id == athlete_id, WaitlistEntry.status.in_(WAITLIST_OPEN)))


def place_of(entry: WaitlistEntry) -> int:
    """1 for the first in line (an open place); counts the open places ahead of it."""
    return 1 + db.session.scalar(select(func.count()).select_from(WaitlistEntry).where(
        WaitlistEntry.tenant_id == entry.tenant_id, WaitlistEntry.session_id == entry.session_id,
        WaitlistEntry.status.in_(WAITLIST_OPEN),
        (WaitlistEntry.created_at < entry.created_at)
        | ((WaitlistEntry.created_at == entry.created_at) & (WaitlistEntry.id < entry.id))))


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 22nd."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


@dataclass(frozen=True)
class Place:
    """An athlete's open place in a line, as their sessions page shows it."""

    entry: WaitlistEntry
    session: CoachingSession
    offering: Offering
    place: int

    @property
    def place_label(self) -> str:
        return ordinal(self.place)


def places_of(athlete: Membership, now: datetime | None = None) -> list[Place]:
    """``athlete``'s open places in lines of sessions still ahead, soonest first (one statement)."""
    now = now or clock.now()
    other = WaitlistEntry.__table__.alias("other")
    ahead = (select(func.count()).select_from(other).where(
        other.c.tenant_id == WaitlistEntry.tenant_id, other.c.session_id == WaitlistEntry.session_id,
        other.c.status.in_(WAITLIST_OPEN),
        (other.c.created_at < WaitlistEntry.created_at)
        | ((other.c.created_at == WaitlistEntry.created_at) & (other.c.id < WaitlistEntry.id)))
        .correlate(WaitlistEntry.__table__).scalar_subquery())
    rows = db.session.execute(
        select(WaitlistEntry, CoachingSession, Offering, ahead)
        .join(CoachingSession, (CoachingSession.tenant_id == WaitlistEntry.tenant_id)
              & (CoachingSession.id == WaitlistEntry.session_id))
        .join(Offering, (Offering.tenant_id == WaitlistEntry.tenant_id) & (Offering.id == WaitlistEntry.offering_id))
        .where(WaitlistEntry.tenant_id == athlete.tenant_id, WaitlistEntry.athlete_membership_id == athlete.id,
               WaitlistEntry.status.in_(WAITLIST_OPEN), CoachingSession.starts_at > now)
        .order_by(CoachingSession.starts_at).limit(100)).all()
    return [Place(entry, session, offering, n + 1) for entry, session, offering, n in rows]


def full_sessions(offering: Offering, window_start: datetime, window_end: datetime,
                  now: datetime | None = None) -> list[CoachingSession]:
    """Sessions of ``offering`` starting in the window that are full and still ahead (the week calendar shows
    them as "Full · waitlist"): every seat taken, or the free ones kept for those already waiting (see
    :func:`is_full`). None when the offering takes no waitlist. One statement."""
    if not takes_waitlist(offering):
        return []
    now = now or clock.now()
    waiting = (select(func.count()).select_from(WaitlistEntry).where(
        WaitlistEntry.tenant_id == CoachingSession.tenant_id, WaitlistEntry.session_id == CoachingSession.id,
        WaitlistEntry.status == "waiting").correlate(CoachingSession).scalar_subquery())
    return list(db.session.scalars(select(CoachingSession).where(
        CoachingSession.tenant_id == offering.tenant_id, CoachingSession.offering_id == offering.id,
        CoachingSession.starts_at >= max(window_start, now), CoachingSession.starts_at < window_end,
        (CoachingSession.live_seats >= CoachingSession.capacity)
        | (CoachingSession.live_seats + waiting >= CoachingSession.capacity)).order_by(CoachingSession.starts_at)))


def offer_booking_ids(booking_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these bookings hold a seat offered from a waitlist (their ``held`` is not a checkout's)."""
    if not booking_ids:
        return set()
    return set(db.session.scalars(select(WaitlistEntry.booking_id).where(
        WaitlistEntry.booking_id.in_(booking_ids), WaitlistEntry.offered_until.is_not(None))))


# --- the seat lock ---------------------------------------------------------------------------------------


def _lock_session(tenant_id: uuid.UUID, session_id: uuid.UUID) -> CoachingSession | None:
    """The coach's seat lock (the one :func:`lifecycle.request_booking` takes), then the session's row lock,
    always in this order so that fills, joins, leaves, accepts and bookings queue instead of deadlocking."""
    coach_id = db.session.scalar(select(CoachingSession.coach_membership_id).where(
        CoachingSession.tenant_id == tenant_id, CoachingSession.id == session_id))
    if coach_id is None:
        return None
    db.session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                       {"key": f"coach-seats:{tenant_id}:{coach_id}"})
    return db.session.scalar(select(CoachingSession).where(
        CoachingSession.tenant_id == tenant_id, CoachingSession.id == session_id)
        .with_for_update().execution_options(populate_existing=True))


def _lock_entry(entry: WaitlistEntry) -> WaitlistEntry:
    return db.session.scalar(select(WaitlistEntry).where(WaitlistEntry.tenant_id == entry.tenant_id,
                                                         WaitlistEntry.id == entry.id)
                             .with_for_update(of=WaitlistEntry).execution_options(populate_existing=True))


def _set(entry: WaitlistEntry, now: datetime, **values) -> None:
    for name, value in values.items():
        setattr(entry, name, value)
    entry.updated_at = now


def seat_of(session: CoachingSession, athlete_id: uuid.UUID) -> Booking | None:
    return db.session.scalar(select(Booking).where(
        Booking.tenant_id == session.tenant_id, Booking.session_id == session.id,
        Booking.athlete_membership_id == athlete_id, Booking.status.in_(LIVE_STATUSES)))


def _waiting_count(session: CoachingSession) -> int:
    return db.session.scalar(select(func.count()).select_from(WaitlistEntry).where(
        WaitlistEntry.tenant_id == session.tenant_id, WaitlistEntry.session_id == session.id,
        WaitlistEntry.status == "waiting"))


def is_full(session: CoachingSession) -> bool:
    """No seat is free for a newcomer: all taken, or the free ones kept for those already waiting."""
    return session.live_seats >= session.capacity or session.live_seats + _waiting_count(session) >= session.capacity


# --- joining and leaving ---------------------------------------------------------------------------------


def join(session: CoachingSession, athlete: Membership, actor: Membership,
         now: datetime | None = None) -> WaitlistEntry:
    """Put ``athlete`` at the end of ``session``'s line.

    :raises WaitlistError: the offering takes no waitlist, the session has a free seat (book it instead; 409),
        has started, or the athlete already has a seat or a place in the line.
    """
    now = now or clock.now()
    offering = db.session.get(Offering, session.offering_id)
    if not may_act_for(actor, athlete.id):
        raise WaitlistError("You can only join a waitlist for yourself.", status=403)
    if athlete.role != ATHLETE or athlete.tenant_id != session.tenant_id:
        raise WaitlistError("Waitlists are for athletes of this organization.")
    if not takes_waitlist(offering):
        raise WaitlistError("This session takes no waitlist.")
    session = _lock_session(session.tenant_id, session.id)
    if session.starts_at <= now:
        raise WaitlistError("This session has already started.")
    if not is_full(session):  # a seat the line does not claim
        raise WaitlistError("This session has a free seat: book it instead.", status=409)
    if seat_of(session, athlete.id) is not None:
        raise WaitlistError(f"{athlete.user.display_name} already has a seat in this session.", status=409)
    if open_entry(session, athlete.id) is not None:
        raise WaitlistError(f"{athlete.user.display_name} is already on this waitlist.", status=409)
    entry = WaitlistEntry(tenant_id=session.tenant_id, session_id=session.id, offering_id=offering.id,
                          athlete_membership_id=athlete.id, added_by_membership_id=actor.id, status="waiting",
                          created_at=now, updated_at=now)
    try:
        with db.session.begin_nested():
            db.session.add(entry)
            db.session.flush()
    except IntegrityError as exc:  # a twin request that passed the check first (the unique index decides)
        if sqlstate(exc) == "23505":
            raise WaitlistError(f"{athlete.user.display_name} is already on this waitlist.", status=409) from exc
        raise
    audit.record("waitlist.joined", actor=actor.user, target_type="waitlist_entry", target_id=entry.id,
                 details={"offering": offering.title, "athlete": athlete.user.email,
                          "starts_at": session.starts_at.isoformat()})
    return entry


def leave(entry: WaitlistEntry, actor: Membership, now: datetime | None = None) -> WaitlistEntry:
    """Take ``entry`` out of the line; an offered seat is given up (its hold is cancelled, and the seat goes to
    the next in line through the cancel's consumer)."""
    now = now or clock.now()
    if not may_act_for(actor, entry.athlete_membership_id):
        raise WaitlistError("You can only leave a waitlist you are on.", status=403)
    _lock_session(entry.tenant_id, entry.session_id)
    entry = _lock_entry(entry)
    if entry.status not in WAITLIST_OPEN:
        raise WaitlistError(f"This place is no longer in the line ({STATUS_LABELS[entry.status].lower()}).",
                            status=409)
    if entry.status == "offered" and entry.booking_id:
        booking = db.session.get(Booking, entry.booking_id)
        if booking is not None and booking.status == "held":
            lifecycle.transition(booking, "cancel", actor, now=now, reason="waitlist offer declined")
    _set(entry, now, status="left")
    audit.record("waitlist.left", actor=actor.user, target_type="waitlist_entry", target_id=entry.id)
    return entry


# --- an offered seat -------------------------------------------------------------------------------------


def _offer_to_take(entry: WaitlistEntry, actor: Membership, now: datetime) -> tuple[WaitlistEntry, Booking]:
    """The locked entry and its held booking, while the offer stands; :class:`OfferGone` (410) otherwise."""
    if not may_act_for(actor, entry.athlete_membership_id):
        raise WaitlistError("This seat was offered to someone else.", status=403)
    _lock_session(entry.tenant_id, entry.session_id)
    entry = _lock_entry(entry)
    if entry.status == "booked":
        raise WaitlistError("This seat is already yours.", status=409)
    booking = db.session.get(Booking, entry.booking_id) if entry.booking_id else None
    if (entry.status != "offered" or booking is None or booking.status != "held"
            or (entry.offered_until and entry.offered_until <= now)):
        raise OfferGone("This offer has run out: the seat went to the next in line.")
    return entry, booking


def accept(entry: WaitlistEntry, actor: Membership, now: datetime | None = None) -> Booking:
    """Take the offered seat: the held booking goes on as a request (or confirmed, for auto-confirm offerings),
    exactly like a paid hold. A paid offering's seat is taken through its checkout instead
    (:func:`release_for_checkout`).

    :raises OfferGone: the offer ran out or the seat was given up (410).
    """
    now = now or clock.now()
    entry, booking = _offer_to_take(entry, actor, now)
    offering = db.session.get(Offering, entry.offering_id)
    if offering.price_minor:
        raise WaitlistError(f"This seat costs {offering.price_label}: pay for it to take it.")
    lifecycle.transition(booking, "settle_confirm" if offering.auto_confirm else "settle", actor, now=now)
    _set(entry, now, status="booked")
    audit.record("waitlist.accepted", actor=actor.user, target_type="waitlist_entry", target_id=entry.id,
                 details={"booking": str(booking.id)})
    return booking


def release_for_checkout(entry: WaitlistEntry, actor: Membership, now: datetime | None = None) -> CoachingSession:
    """A paid offering's offered seat, handed to its checkout: the waitlist's hold is cancelled and the entry
    marked booked, inside the caller's transaction, which then books the seat through the checkout (its own
    held booking) before anyone else can (the caller holds the seat lock until it commits). Returns the
    session; the caller records the checkout's booking with :func:`mark_booked`."""
    now = now or clock.now()
    entry, booking = _offer_to_take(entry, actor, now)
    lifecycle.transition(booking, "cancel", actor, now=now, reason="waitlist offer taken to checkout")
    # The entry stays "offered" until :func:`mark_booked`: that is what lets the checkout's booking take the seat
    # the line keeps (lifecycle's rule for free seats while athletes wait).
    return db.session.get(CoachingSession, entry.session_id)


def mark_booked(entry: WaitlistEntry, booking: Booking) -> None:
    _set(entry, clock.now(), status="booked", booking_id=booking.id)
    audit.record("waitlist.accepted", actor=None, actor_label="system", target_type="waitlist_entry",
                 target_id=entry.id, details={"booking": str(booking.id), "checkout": True})


# --- giving freed seats ----------------------------------------------------------------------------------


def _close_line(session: CoachingSession, now: datetime) -> int:
    closed = db.session.execute(update(WaitlistEntry).where(
        WaitlistEntry.tenant_id == session.tenant_id, WaitlistEntry.session_id == session.id,
        WaitlistEntry.status.in_(WAITLIST_OPEN)).values(status="closed", updated_at=now)
        .returning(WaitlistEntry.id)).scalars().all()
    return len(closed)


def _next_waiting(session: CoachingSession) -> WaitlistEntry | None:
    # The session's row lock already queues every filler of this session; SKIP LOCKED only steps past an entry
    # that its athlete is leaving right now (they left: the next one is next).
    return db.session.scalar(select(WaitlistEntry).where(
        WaitlistEntry.tenant_id == session.tenant_id, WaitlistEntry.session_id == session.id,
        WaitlistEntry.status == "waiting").order_by(WaitlistEntry.created_at, WaitlistEntry.id)
        .limit(1).with_for_update(skip_locked=True, of=WaitlistEntry).execution_options(populate_existing=True))


def fill(tenant_id: uuid.UUID, session_id: uuid.UUID, now: datetime | None = None) -> int:
    """Give ``session``'s free seats to the first waiting, one by one; the number of seats given or offered.

    Idempotent and safe to run concurrently (a consumer per freed seat, and the sweep): the seats are counted
    under the session's lock. Skipped (closed) on the way: an athlete who left the organization or is no longer
    an athlete, one whose booking is refused (e.g. a role change); marked booked: one who booked another way.
    A session that started closes its line; inside the offering's minimum notice nobody is booked (the line
    waits, and closes at the start).
    """
    now = now or clock.now()
    session = _lock_session(tenant_id, session_id)
    if session is None:
        return 0
    offering = db.session.get(Offering, session.offering_id)
    if session.starts_at <= now or not takes_waitlist(offering):
        _close_line(session, now)
        return 0
    if session.starts_at < now + timedelta(minutes=offering.min_notice_minutes):
        return 0
    mode, given = mode_of(offering), 0
    while session.live_seats < session.capacity:
        entry = _next_waiting(session)
        if entry is None:
            break
        athlete = db.session.scalar(select(Membership).where(Membership.tenant_id == tenant_id,
                                                             Membership.id == entry.athlete_membership_id))
        if athlete is None or athlete.role != ATHLETE:
            _set(entry, now, status="closed")
            continue
        already = seat_of(session, athlete.id)
        if already is not None:
            _set(entry, now, status="booked", booking_id=already.id)
            continue
        try:
            with db.session.begin_nested():
                booking = lifecycle.request_booking(
                    offering, athlete, session.starts_at, "", athlete, now=now,
                    hold_minutes=offering.waitlist_offer_minutes if mode == "offer" else None)
        except SlotTaken:
            break  # the seat went another way meanwhile
        except BookingError as exc:
            log.info("waitlist entry %s skipped: %s", entry.id, exc.message)
            _set(entry, now, status="closed")
            continue
        if booking.session_id != session.id:
            # Every seat had freed, and a session without seats holds no time: the booking opened a new session at
            # that time. The line moves with it (the old row, with no seats, is nobody's any more).
            db.session.execute(update(WaitlistEntry).where(
                WaitlistEntry.tenant_id == tenant_id, WaitlistEntry.session_id == session.id,
                WaitlistEntry.status.in_(WAITLIST_OPEN)).values(session_id=booking.session_id)
                .execution_options(synchronize_session="fetch"))
            session = db.session.get(CoachingSession, booking.session_id)
        offered_until = booking.expires_at if mode == "offer" else None
        _set(entry, now, status="offered" if offered_until else "booked", booking_id=booking.id,
             offered_until=offered_until)
        audit.record("waitlist.offered" if offered_until else "waitlist.booked", actor=None, actor_label="system",
                     target_type="waitlist_entry", target_id=entry.id,
                     details={"booking": str(booking.id), "athlete": athlete.user.email,
                              **({"offered_until": offered_until.isoformat()} if offered_until else {})})
        emit(WAITLIST_OFFERED if offered_until else WAITLIST_BOOKED, {
            "entry_id": str(entry.id), "session_id": str(session.id), "offering_id": str(offering.id),
            "athlete_membership_id": str(athlete.id), "booking_id": str(booking.id),
            "starts_at": session.starts_at.isoformat(),
            "offered_until": offered_until.isoformat() if offered_until else None})
        db.session.refresh(session)
        given += 1
    return given


def seat_freed(tenant_id: uuid.UUID, booking_id: uuid.UUID, given_up: bool = False,
               now: datetime | None = None) -> int:
    """A booking stopped holding its seat: an offer it held ran out (or was given up: ``given_up``), and the
    session's line moves on."""
    now = now or clock.now()
    booking = db.session.scalar(select(Booking).where(Booking.tenant_id == tenant_id, Booking.id == booking_id))
    if booking is None or not db.session.scalar(select(
            select(WaitlistEntry.id).where(WaitlistEntry.tenant_id == tenant_id,
                                           WaitlistEntry.session_id == booking.session_id,
                                           WaitlistEntry.status.in_(WAITLIST_OPEN)).exists())):
        return 0  # no line (a one-on-one session, or nobody waiting): nothing to lock
    _lock_session(tenant_id, booking.session_id)
    db.session.execute(update(WaitlistEntry).where(
        WaitlistEntry.tenant_id == tenant_id, WaitlistEntry.booking_id == booking.id,
        WaitlistEntry.status == "offered").values(status="left" if given_up else "expired", updated_at=now))
    return fill(tenant_id, booking.session_id, now)


def sweep(tenant_id: uuid.UUID, now: datetime | None = None) -> int:
    """The safety net under the consumers: every session of the organization with an open line is filled (or
    closed, once it started). What a lost event left undone is done here."""
    now = now or clock.now()
    session_ids = db.session.scalars(select(WaitlistEntry.session_id).where(
        WaitlistEntry.tenant_id == tenant_id, WaitlistEntry.status.in_(WAITLIST_OPEN)).distinct().limit(500)).all()
    return sum(fill(tenant_id, sid, now) for sid in session_ids)


def due_tenants() -> list[uuid.UUID]:
    """Organizations with an open line somewhere (through a narrow definer function: the sweep runs for all)."""
    return list(db.session.scalars(text("SELECT waitlist_due_tenants()")))
