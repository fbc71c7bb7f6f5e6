"""The one state machine every booking moves through: requesting (and rescheduling) a booking, the
transitions, and the outbox topic each status change emits.

Services never commit; the caller (a view or a job) commits once, so a change, its
audit event and its outbox event land together or not at all.

Lifecycle::

    held ── settle ──▶ requested (or settle_confirm ──▶ confirmed); held ── expire/cancel ──▶ expired/cancelled

    requested ─┬─ confirm ──▶ confirmed ── start ──▶ active ── end ──▶ ended
               ├─ decline ──▶ declined       │                 │            │
               ├─ expire ───▶ expired        ├─ cancel ──▶ cancelled       │
               └─ cancel ───▶ cancelled      └───────── no_show ◀──────────┘

Every transition is a compare-and-swap on the status the caller saw: of a racing
accept and expire exactly one changes the row.
"""
from __future__ import annotations

import dataclasses
import uuid
from collections import defaultdict
from datetime import datetime, timedelta, timezone

from flask import current_app
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from coach import clock
from coach.booking import slots as slotlib
from coach.booking.access import books_for_others
from coach.booking.availability import slot_rules
from coach.booking.errors import EXCLUDED, BookingError, LineWaiting, SlotTaken, sqlstate
from coach.booking.events import STATUS_TOPICS
from coach.booking.models import LIVE_STATUSES, Booking, CoachingSession, Offering, WaitlistEntry
from coach.extensions import db
from coach.orgs.models import ATHLETE, Membership
from coach.platform import audit
from coach.platform.outbox import emit

UTC = timezone.utc
NOTE_MAX = 2000

# action → (statuses it may start from, status it leads to)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "confirm": (("requested",), "confirmed"),
    "decline": (("requested",), "declined"),
    "expire": (("requested", "held"), "expired"),
    "cancel": (("held", "requested", "confirmed"), "cancelled"),
    # A held booking's checkout was paid: it goes on as if it had just been requested (or confirmed, for an
    # auto-confirm offering). Only the payments domain does this, as the system.
    "settle": (("held",), "requested"),
    "settle_confirm": (("held",), "confirmed"),
    "start": (("confirmed",), "active"),
    "end": (("active",), "ended"),
    "no_show": (("confirmed", "active", "ended"), "no_show"),
}


PAST = {"settle": "paid", "settle_confirm": "paid",
        "confirm": "confirmed", "decline": "declined", "cancel": "cancelled", "no_show": "marked as a no-show",
        "expire": "expired", "start": "started", "end": "ended"}


# --- requesting a booking ----------------------------------------------------------------------------


def _check_slot(offering: Offering, starts_at: datetime, now: datetime,
                ignore_session: uuid.UUID | None) -> slotlib.Slot:
    """The slot starting at ``starts_at``; :class:`SlotTaken` if it was offered but is busy now."""
    window = (starts_at, starts_at + timedelta(minutes=1))
    rules = slot_rules(offering, *window, ignore_session=ignore_session)
    for slot in slotlib.compute_slots(rules, *window, now):
        if slot.starts_at == starts_at:
            return slot
    # Would it be offered if nobody had booked anything? Then it was taken, not invalid.
    free_rules = dataclasses.replace(rules, busy=(), open_sessions=(), day_counts={})
    if any(s.starts_at == starts_at for s in slotlib.compute_slots(free_rules, *window, now)):
        raise SlotTaken("This time was just taken. Choose another.")
    if starts_at < now:
        raise BookingError("That time is in the past. Choose a time from the calendar.")
    raise BookingError("That time is not available for this offering. Choose a time from the calendar.")


def _seat_lock(offering: Offering) -> None:
    """The coach's seat lock, held to the end of the transaction (taking it again in the same one is a no-op)."""
    db.session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                       {"key": f"coach-seats:{offering.tenant_id}:{offering.coach_membership_id}"})


def _keep_seats_for_the_line(offering: Offering, starts_at: datetime, athlete_id: uuid.UUID) -> bool:
    """While athletes wait for the session at ``starts_at``, its free seats are theirs, first in line first:
    anyone else is refused (:class:`LineWaiting`), so a seat freed before the waitlist's consumer runs cannot be
    taken past the line. Takes the coach's seat lock first (as every waitlist change does), so the line read here
    is the one the seat is taken against. True when the athlete is one of those waiting (and may take it)."""
    if offering.waitlist_mode == "off":
        return False  # a line left from before it was turned off closes at the next sweep; it keeps no seat
    _seat_lock(offering)
    line = db.session.execute(
        select(WaitlistEntry.athlete_membership_id, WaitlistEntry.status, WaitlistEntry.session_id)
        .join(CoachingSession, (CoachingSession.tenant_id == WaitlistEntry.tenant_id)
              & (CoachingSession.id == WaitlistEntry.session_id))
        .where(WaitlistEntry.tenant_id == offering.tenant_id, CoachingSession.offering_id == offering.id,
               CoachingSession.starts_at == starts_at, WaitlistEntry.status.in_(("waiting", "offered")))
        .order_by(WaitlistEntry.created_at, WaitlistEntry.id)).all()
    if not line or any(a == athlete_id and status == "offered" for a, status, _ in line):
        return False  # nobody waits, or this is the athlete the seat was offered to (taking it through a checkout)
    waiting = [a for a, status, _ in line if status == "waiting"]
    taken = db.session.scalar(select(func.coalesce(func.sum(CoachingSession.live_seats), 0)).where(
        CoachingSession.tenant_id == offering.tenant_id, CoachingSession.offering_id == offering.id,
        CoachingSession.starts_at == starts_at))
    if not waiting or athlete_id in waiting[:max(offering.capacity - taken, 0)]:
        return athlete_id in waiting
    people = "1 athlete is" if len(waiting) == 1 else f"{len(waiting)} athletes are"
    raise LineWaiting(f"{people} waiting for a seat in this session, and a freed seat goes to the first in line. "
                      "Join the waitlist to get the next one.", session_id=line[-1][2])


def _hold_seat(offering: Offering, starts_at: datetime, ends_at: datetime) -> CoachingSession:
    """Take a seat: in an open group session at that time, or in a new session holding the coach's time."""
    # One seat-taker per coach at a time, until its transaction ends. Without it, two requests writing
    # overlapping sessions (or one joining a group session that another's new session overlaps) each wait
    # for the other's uncommitted row in the exclusion check, and PostgreSQL aborts one with a deadlock.
    # The exclusion constraint still decides who gets the time; this only puts the contenders in a line.
    _seat_lock(offering)
    for attempt in range(2):
        if offering.capacity > 1:
            taken = db.session.execute(
                update(CoachingSession).where(
                    CoachingSession.tenant_id == offering.tenant_id, CoachingSession.offering_id == offering.id,
                    CoachingSession.starts_at == starts_at, CoachingSession.live_seats > 0)
                .values(live_seats=CoachingSession.live_seats + 1)
                .where(CoachingSession.live_seats < CoachingSession.capacity)
                .returning(CoachingSession.id)).scalar()
            if taken is not None:
                return db.session.get(CoachingSession, taken)
            full = db.session.scalar(select(func.count()).select_from(CoachingSession).where(
                CoachingSession.tenant_id == offering.tenant_id, CoachingSession.offering_id == offering.id,
                CoachingSession.starts_at == starts_at, CoachingSession.live_seats > 0))
            if full:
                raise SlotTaken("This session just filled up. Choose another time.")
        session = CoachingSession(
            tenant_id=offering.tenant_id, coach_membership_id=offering.coach_membership_id, offering_id=offering.id,
            starts_at=starts_at, ends_at=ends_at,
            busy_from=starts_at - timedelta(minutes=offering.buffer_before_minutes),
            busy_until=ends_at + timedelta(minutes=offering.buffer_after_minutes),
            capacity=offering.capacity, live_seats=1)
        try:
            with db.session.begin_nested():
                db.session.add(session)
                db.session.flush()
            return session
        except DBAPIError as exc:
            if sqlstate(exc) not in EXCLUDED:
                raise
            # Someone else holds this time. For a group, they may have just opened this very session.
            if offering.capacity == 1 or attempt:
                raise SlotTaken("This time was just taken. Choose another.") from exc
    raise SlotTaken("This time was just taken. Choose another.")


def request_booking(offering: Offering, athlete: Membership, starts_at: datetime, note: str, actor: Membership,
                    now: datetime | None = None, rescheduled_from: Booking | None = None,
                    hold_minutes: int | None = None, confirm: bool = False, series_batch: bool = False) -> Booking:
    """Book ``athlete`` into ``offering`` at ``starts_at`` (UTC).

    Auto-confirm offerings are confirmed at once; others wait for the coach. The coach's
    time is held by the database's exclusion constraint, so of concurrent requests for
    overlapping times exactly one succeeds and the others get :class:`SlotTaken`.

    :param hold_minutes: keep the place ``held`` for that long while a checkout is open (it expires, freeing
        the time, unless the payment settles it first: ``settle``/``settle_confirm``).
    :param confirm: the coach (or staff for them) books it, as a recurring series does: confirmed at once, as if
        the coach had accepted the request (the caller checks who may).
    :param series_batch: one of many made by one action on a recurring series, which tells people of them once
        (its own topic, :mod:`coach.booking.series`): the event says so (see :func:`emit_change`).
    """
    now = now or clock.now()
    note = (note or "").strip()
    if len(note) > NOTE_MAX:
        raise BookingError(f"A note can have at most {NOTE_MAX:,} characters.")
    if not offering.active:
        raise BookingError("This offering is no longer available.")
    if athlete.role != ATHLETE or athlete.tenant_id != offering.tenant_id:
        raise BookingError("Sessions are booked for athletes of this organization.")
    if starts_at.tzinfo is None:
        raise BookingError("That time is not valid.")
    starts_at = starts_at.astimezone(UTC)
    ignore = rescheduled_from.session_id if rescheduled_from and offering.capacity == 1 else None
    slot = _check_slot(offering, starts_at, now, ignore)
    status = "confirmed" if offering.auto_confirm or confirm else "requested"
    ttl = timedelta(hours=current_app.config["BOOKING_REQUEST_TTL_HOURS"])
    if hold_minutes is not None:
        status, ttl = "held", timedelta(minutes=hold_minutes)
    try:
        # One savepoint for the seat and the booking: a refusal leaves no seat taken in the caller's transaction.
        with db.session.begin_nested():
            in_line = offering.capacity > 1 and _keep_seats_for_the_line(offering, slot.starts_at, athlete.id)
            session = _hold_seat(offering, slot.starts_at, slot.ends_at)
            booking = Booking(
                tenant_id=offering.tenant_id, session_id=session.id, offering_id=offering.id,
                coach_membership_id=offering.coach_membership_id, athlete_membership_id=athlete.id,
                booked_by_membership_id=actor.id, starts_at=session.starts_at, ends_at=session.ends_at, status=status,
                note=note, expires_at=None if status == "confirmed" else min(now + ttl, slot.starts_at),
                confirmed_at=now if status == "confirmed" else None, status_changed_at=now,
                rescheduled_from_id=rescheduled_from.id if rescheduled_from else None,
                # The same appointment in everyone's calendar: the UID carries over, the SEQUENCE rises.
                calendar_uid=rescheduled_from.uid if rescheduled_from else None,
                calendar_sequence=rescheduled_from.calendar_sequence + 1 if rescheduled_from else 0)
            db.session.add(booking)
            db.session.flush()
            if in_line:  # they waited for this seat: their place in the line is done
                db.session.execute(update(WaitlistEntry).where(
                    WaitlistEntry.tenant_id == offering.tenant_id, WaitlistEntry.athlete_membership_id == athlete.id,
                    WaitlistEntry.status == "waiting",
                    WaitlistEntry.session_id.in_(select(CoachingSession.id).where(
                        CoachingSession.tenant_id == offering.tenant_id, CoachingSession.offering_id == offering.id,
                        CoachingSession.starts_at == slot.starts_at)))
                    .values(status="booked", booking_id=booking.id, updated_at=now)
                    .execution_options(synchronize_session=False))
    except IntegrityError as exc:
        if sqlstate(exc) == "23505":
            raise BookingError(f"{athlete.user.display_name} already has a place in this session.") from exc
        raise
    audit.record(f"booking.{status}", actor=actor.user, target_type="booking", target_id=booking.id,
                 details={"offering": offering.title, "athlete": athlete.user.email,
                          "starts_at": slot.starts_at.isoformat(), "to": status,
                          **({"rescheduled_from": str(rescheduled_from.id)} if rescheduled_from else {})})
    emit_change(booking, None, status, actor, rescheduled_from=rescheduled_from, series_batch=series_batch)
    return booking


def reschedule_booking(booking: Booking, starts_at: datetime, actor: Membership, note: str | None = None,
                       now: datetime | None = None, by_manager: bool = False, series_batch: bool = False) -> Booking:
    """Cancel ``booking`` and book the same offering at ``starts_at``, linked, in one transaction.

    If the new time cannot be booked nothing changes: the old booking stays as it was.

    :param by_manager: the coach or staff moves it (a recurring series, :mod:`coach.booking.series`, which
        checks who may): allowed whenever they may cancel it, and the new booking is confirmed.
    """
    now = now or clock.now()
    allowed = allowed_actions(booking, actor, now)
    if "reschedule" not in allowed and not (by_manager and "cancel" in allowed):
        raise BookingError(f"This booking is {booking.status_label.lower()}; it cannot be rescheduled now.")
    with db.session.begin_nested():
        transition(booking, "cancel", actor, now=now, reason="rescheduled", series_batch=series_batch)
        return request_booking(booking.offering, booking.athlete, starts_at,
                               booking.note if note is None else note, actor, now=now, rescheduled_from=booking,
                               confirm=by_manager, series_batch=series_batch)


# --- the state machine -------------------------------------------------------------------------------


def allowed_actions(booking: Booking, actor: Membership, now: datetime | None = None) -> set[str]:
    """What ``actor`` may do with ``booking`` now (drives the buttons a page shows)."""
    return actions_for(booking.status, booking.starts_at, booking.coach_membership_id,
                       booking.athlete_membership_id, actor, now or clock.now())


def actions_for(status: str, starts_at: datetime, coach_id: uuid.UUID, athlete_id: uuid.UUID, actor: Membership,
                now: datetime) -> set[str]:
    """:func:`allowed_actions` from a booking's columns alone (a list's rows are not ORM objects)."""
    actions: set[str] = set()
    manages = actor.id == coach_id or books_for_others(actor)  # manages_calendar, by the coach's id
    is_athlete = actor.id == athlete_id or books_for_others(actor)
    if status == "requested" and manages:
        actions |= {"confirm", "decline"}
    # A held place (its checkout still open) is the athlete's to give up; the coach has not been asked yet.
    if status == "held" and starts_at > now and is_athlete:
        actions.add("cancel")
    if status in ("requested", "confirmed") and starts_at > now and (manages or is_athlete):
        actions.add("cancel")
        if is_athlete:
            actions.add("reschedule")
    if status in ("confirmed", "active", "ended") and starts_at <= now and manages:
        actions.add("no_show")
    return actions


def is_late_cancellation(booking: Booking, now: datetime) -> bool:
    return late_at(booking.status, booking.starts_at, booking.offering.cancellation_window_hours, now)


def late_at(status: str, starts_at: datetime, window_hours: int, now: datetime) -> bool:
    """Whether cancelling at ``now`` counts as late: a confirmed session inside its cancellation window."""
    return status == "confirmed" and now > starts_at - timedelta(hours=window_hours)


def transition(booking: Booking, action: str, actor: Membership | None, now: datetime | None = None,
               reason: str | None = None, series_batch: bool = False) -> Booking:
    """Apply ``action`` to ``booking`` as a compare-and-swap on the status it was loaded with.

    :param actor: the member acting; ``None`` for the system (expiry, start, end).
    :raises BookingError: the action is not possible from the current status, or the booking
        changed since it was loaded (the message says what it is now).
    """
    now = now or clock.now()
    if action not in TRANSITIONS:
        raise BookingError("Unknown action.")
    if actor is not None and action in ("confirm", "decline", "cancel", "no_show") \
            and action not in allowed_actions(booking, actor, now):
        raise BookingError(f"This booking is {booking.status_label.lower()}; it cannot be {PAST[action]} now.")
    sources, target = TRANSITIONS[action]
    seen = booking.status
    if seen not in sources:
        raise BookingError(f"This booking is {booking.status_label.lower()} and cannot change that way.")
    # Every change is a new version of the calendar event (invitations and synced calendars replace theirs).
    values = {"status": target, "status_changed_at": now, "calendar_sequence": Booking.calendar_sequence + 1}
    if target == "confirmed":
        values["confirmed_at"] = now
    if action == "settle":  # paid: now the coach has the usual time to answer
        ttl = timedelta(hours=current_app.config["BOOKING_REQUEST_TTL_HOURS"])
        values["expires_at"] = min(now + ttl, booking.starts_at)
    if target == "cancelled":
        values["late_cancellation"] = is_late_cancellation(booking, now)
        values["cancelled_by_membership_id"] = actor.id if actor else None
    changed = db.session.execute(
        update(Booking).where(Booking.tenant_id == booking.tenant_id, Booking.id == booking.id,
                              Booking.status == seen)
        .values(**values).returning(Booking.id)).scalar()
    if changed is None:
        db.session.refresh(booking)
        raise BookingError(f"This booking changed meanwhile: it is now {booking.status_label.lower()}.")
    if seen in LIVE_STATUSES and target not in LIVE_STATUSES:
        release_seats([booking.session_id])
    db.session.refresh(booking)
    details = {"from": seen, "to": target}
    if target == "cancelled":
        details["late"] = booking.late_cancellation
        if reason:
            details["reason"] = reason
    audit.record(f"booking.{target}", actor=actor.user if actor else None,
                 actor_label=None if actor else "system", target_type="booking", target_id=booking.id,
                 details=details)
    emit_change(booking, seen, target, actor, reason=reason, series_batch=series_batch)
    return booking


def release_seats(session_ids: list[uuid.UUID]) -> None:
    """Give back one seat per id (an id may repeat): the bookings stopped holding their sessions' time."""
    counts: dict[uuid.UUID, int] = defaultdict(int)
    for sid in session_ids:
        counts[sid] += 1
    for sid, n in counts.items():
        db.session.execute(update(CoachingSession).where(CoachingSession.id == sid)
                           .values(live_seats=CoachingSession.live_seats - n))


def emit_change(booking: Booking, before: str | None, after: str, actor: Membership | None,
                reason: str | None = None, rescheduled_from: Booking | None = None, series_batch: bool = False) -> None:
    """Emit the topic of the status ``after`` (see :mod:`coach.booking.events`) with the change's payload.

    :param series_batch: the change is one of a recurring series' action (``series_batch: true`` in the payload):
        notifications skip it (the series' own topic tells people once); every other consumer takes it as usual.
    """
    emit(STATUS_TOPICS[after], {
        "reason": reason,
        "rescheduled_from_id": str(rescheduled_from.id) if rescheduled_from else None,
        "calendar_uid": booking.uid, "calendar_sequence": booking.calendar_sequence,
        "booking_id": str(booking.id), "from": before, "to": after,
        "coach_membership_id": str(booking.coach_membership_id),
        "athlete_membership_id": str(booking.athlete_membership_id),
        "actor_membership_id": str(actor.id) if actor else None,
        "starts_at": booking.starts_at.isoformat(), "ends_at": booking.ends_at.isoformat(),
        "expires_at": booking.expires_at.isoformat() if booking.expires_at else None,
        **({"series_batch": True} if series_batch else {}),
    })
