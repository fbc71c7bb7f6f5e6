"""Bookings written into the coach's chosen calendar, so their phone shows them.

**By UID, not by event order.** Booking events are delivered at least once, in parallel and in any order, and a
reschedule is the cancel of one booking plus a new booking carrying the same ``calendar_uid``. So nothing here
applies "the change an event describes". An event only marks the ``(calendar, UID)`` pair as ``pending``;
:func:`reconcile` then, under a lock per pair, looks up which booking carries that UID *now* and makes the
calendar match it: the live one's event is written (created, or updated in place with a higher SEQUENCE), and with
none live the event is removed. Running it twice, or for a stale event, changes nothing the second time.

**Which bookings.** Requested ones as a tentative event ("Requested: …": the coach's time is held and they must
answer), confirmed and started ones as confirmed events, and ended or no-show ones stay (the session happened at
that time). Cancelled, declined and expired bookings are removed. A held booking (a checkout open for minutes)
gets nothing. A group session is one event (UID ``session-<id>@coach``) naming its athletes, removed when its
last place goes.

**Coach's booking decides the time.** An event the coach changed or deleted in their calendar app is written back
at Coach's next change of that booking: the server refuses the conditional update (412), Coach re-reads the
current version and overwrites it (or creates it again), and records when (``overwritten_at``). Moving a session
is done in Coach, where the athlete is told; an edit on the phone alone would leave the two out of step. A
cancelled booking's event is removed even if it was edited.

**Failures never block a booking.** A failed write leaves the row ``failed`` with the provider's message; the
sweep (:mod:`coach.calsync.push_jobs`) retries it after 1, 2, 4 … minutes (at most an hour apart), and the
calendars page shows the count (:func:`states`).

The database transaction (holding the pair's advisory lock) stays open across the one remote call of a
reconcile: the lock must cover reading what is wanted, writing it and recording the new ETag, or two workers
could write an old version last. Each call is bounded by ``CALSYNC_TIMEOUT_SECONDS``.
"""
from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from cryptography.fernet import InvalidToken
from flask import current_app, g
from icalendar import Calendar, Event
from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import distinct_on, insert

from coach import clock
from coach.booking.models import Booking, CoachingSession
from coach.calsync.models import CalendarConnection, CalendarPush, CalendarSource
from coach.calsync.provider import AuthFailed, Conflict, NotFound, ProviderError, Unreachable, open_provider
from coach.calsync.service import credentials
from coach.extensions import db
from coach.orgs.models import Organization

log = logging.getLogger(__name__)

# Bookings that have an event in the coach's calendar, and what it says.
PUSHED_STATUSES = ("requested", "confirmed", "active", "ended", "no_show")
UPCOMING_STATUSES = ("requested", "confirmed", "active")
_OWN_UID = re.compile(r"booking-([0-9a-f-]{36})@coach")
_SESSION_UID = re.compile(r"session-([0-9a-f-]{36})@coach")


# --- the event --------------------------------------------------------------------------------------------------


def booking_url(booking: Booking, org_slug: str) -> str:
    """The booking's page in the app, absolute (``APP_BASE_URL``), built outside any request."""
    path = current_app.url_map.bind("localhost").build("booking.detail",
                                                       {"slug": org_slug, "booking_id": str(booking.id)})
    return current_app.config["APP_BASE_URL"] + path


@dataclass(frozen=True)
class Wanted:
    """What the event of one UID should say now: one booking's appointment, or a group session's (one event for
    all its athletes, so eight places in a clinic are one entry on the coach's phone, not eight)."""
    uid: str
    first: Booking  # the booking the event is built from (a group session's earliest live place)
    athletes: tuple[str, ...]  # by name
    sequence: int  # rises with every change (a group's: every place taken and every change of one)
    tentative: bool  # every place of it is still a request


def calendar_event(wanted: Wanted, org_slug: str, now: datetime) -> bytes:
    """The calendar object Coach stores (RFC 5545; no METHOD, ORGANIZER or ATTENDEE: a stored event with
    attendees would make the server send invitations of its own)."""
    utc, booking = timezone.utc, wanted.first
    url = booking_url(booking, org_slug)
    names = list(wanted.athletes[:3]) + ([f"{len(wanted.athletes) - 3} more"] if len(wanted.athletes) > 3 else [])
    who = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    event = Event()
    event.add("uid", wanted.uid)
    event.add("sequence", wanted.sequence)
    event.add("dtstamp", now.astimezone(utc))
    event.add("last-modified", now.astimezone(utc))
    event.add("dtstart", booking.starts_at.astimezone(utc))
    event.add("dtend", booking.ends_at.astimezone(utc))
    event.add("summary", f"{'Requested: ' if wanted.tentative else ''}{booking.offering.title} with {who}")
    location = booking.offering.meeting_url or booking.offering.location
    if location:
        event.add("location", location)
    event.add("url", url)
    description = [f"Booked in Coach ({booking.status_label.lower()}): {url}"]
    if len(wanted.athletes) > 1:
        description.append("Athletes: " + ", ".join(wanted.athletes))
    elif booking.note:
        description.append(f"Note: {booking.note}")
    event.add("description", "\n".join(description))
    event.add("status", "TENTATIVE" if wanted.tentative else "CONFIRMED")
    event.add("transp", "OPAQUE")
    cal = Calendar()
    cal.add("prodid", "-//Coach//Bookings//EN")
    cal.add("version", "2.0")
    cal.add_component(event)
    return cal.to_ical()


def event_uid(booking_id: uuid.UUID) -> str | None:
    """The UID of a booking's event in the coach's calendar: the appointment's own (kept across reschedules), or,
    for a place in a group session, the session's."""
    row = db.session.execute(
        select(Booking.calendar_uid, CoachingSession.capacity, CoachingSession.id)
        .join(CoachingSession, and_(CoachingSession.tenant_id == Booking.tenant_id,
                                    CoachingSession.id == Booking.session_id))
        .where(Booking.tenant_id == g.tenant_id, Booking.id == booking_id)).first()
    if row is None:
        return None
    if row.capacity > 1:
        return f"session-{row.id}@coach"
    return row.calendar_uid or f"booking-{booking_id}@coach"


# --- what is pending --------------------------------------------------------------------------------------------


def receiving_sources(coach_membership_id: uuid.UUID) -> list[uuid.UUID]:
    """The calendars of the coach's connections that receive bookings (at most one per connection)."""
    return list(db.session.scalars(
        select(CalendarSource.id)
        .join(CalendarConnection, and_(CalendarConnection.tenant_id == CalendarSource.tenant_id,
                                       CalendarConnection.id == CalendarSource.connection_id))
        .where(CalendarSource.tenant_id == g.tenant_id, CalendarSource.receives_bookings,
               CalendarConnection.coach_membership_id == coach_membership_id,
               CalendarConnection.status != "disabled")))


def mark(source_ids: list[uuid.UUID], uid: str, booking_id: uuid.UUID, pushed: bool,
         now: datetime | None = None) -> list[uuid.UUID]:
    """Mark ``uid`` pending in each calendar; the calendars marked.

    :param pushed: the booking's status now has an event; otherwise only calendars that may hold one (written,
        or a write that failed half-way) are marked, so a held or never-written booking costs no request.
    """
    if not source_ids:
        return []
    now = now or clock.now()
    if not pushed:
        return list(db.session.scalars(
            update(CalendarPush)
            .where(CalendarPush.tenant_id == g.tenant_id, CalendarPush.source_id.in_(source_ids),
                   CalendarPush.uid == uid,
                   or_(CalendarPush.href.is_not(None), CalendarPush.state == "failed"))
            .values(state="pending", updated_at=now)
            .returning(CalendarPush.source_id)))
    statement = insert(CalendarPush).values([
        {"id": uuid.uuid4(), "tenant_id": g.tenant_id, "source_id": source_id, "uid": uid, "booking_id": booking_id,
         "state": "pending", "updated_at": now} for source_id in source_ids])
    db.session.execute(statement.on_conflict_do_update(constraint="uq_calendar_pushes_uid",
                                                       set_={"state": "pending", "updated_at": now}))
    return list(source_ids)


def mark_upcoming(source: CalendarSource, now: datetime | None = None) -> list[str]:
    """Mark every upcoming booking of the calendar's coach pending in it (a calendar just chosen to receive
    bookings); the UIDs marked."""
    now = now or clock.now()
    connection = db.session.get(CalendarConnection, (source.connection_id))
    bookings = db.session.scalars(
        select(Booking.id)
        .where(Booking.tenant_id == source.tenant_id, Booking.coach_membership_id == connection.coach_membership_id,
               Booking.status.in_(UPCOMING_STATUSES), Booking.ends_at > now)
        .order_by(Booking.starts_at)).all()
    uids = []
    for booking_id in bookings:
        uid = event_uid(booking_id)
        mark([source.id], uid, booking_id, pushed=True, now=now)
        uids.append(uid)
    return uids


def marked(source_id: uuid.UUID, every: bool = False) -> list[str]:
    """The UIDs of a calendar that wait for a reconcile (pending or failed; with ``every``, all it has)."""
    waiting = CalendarPush.state.in_(("pending", "failed")) if not every else CalendarPush.uid.is_not(None)
    return list(db.session.scalars(
        select(CalendarPush.uid).where(CalendarPush.tenant_id == g.tenant_id, CalendarPush.source_id == source_id,
                                       waiting)
        .order_by(CalendarPush.updated_at)))


def due(now: datetime | None = None, limit: int = 200) -> list[tuple[uuid.UUID, uuid.UUID, str]]:
    """``(connection, calendar, UID)`` of this organization's pushes the sweep should try now: pending ones whose
    job was lost (two minutes old), failed ones whose back-off has passed (the rule of
    ``calendar_pushes_due_tenants``)."""
    now = now or clock.now()
    backoff = func.least(text("interval '1 minute'") * func.power(2, CalendarPush.attempts),
                         text("interval '1 hour'"))
    return [tuple(row) for row in db.session.execute(
        select(CalendarSource.connection_id, CalendarPush.source_id, CalendarPush.uid)
        .join(CalendarSource, and_(CalendarSource.tenant_id == CalendarPush.tenant_id,
                                   CalendarSource.id == CalendarPush.source_id))
        .where(CalendarPush.tenant_id == g.tenant_id,
               or_(and_(CalendarPush.state == "pending", CalendarPush.updated_at <= now - timedelta(minutes=2)),
                   and_(CalendarPush.state == "failed", CalendarPush.updated_at + backoff <= now)))
        .order_by(CalendarPush.updated_at).limit(limit))]


def due_tenants(now: datetime | None = None) -> list[uuid.UUID]:
    """Organizations with a push due (for the sweep, which runs for no organization)."""
    return list(db.session.scalars(text("SELECT calendar_pushes_due_tenants(:now)"), {"now": now or clock.now()}))


# --- making the calendar match -------------------------------------------------------------------------------


def provider_for(connection: CalendarConnection):
    """The connection's provider (every request bounded by ``CALSYNC_TIMEOUT_SECONDS``)."""
    try:
        return open_provider(connection.provider, credentials(connection))
    except InvalidToken:
        raise AuthFailed("The saved app password can no longer be read; connect the calendar again.") from None


def _wanted(coach_membership_id: uuid.UUID, uid: str) -> Wanted | None:
    """What the event of ``uid`` should be now, or ``None`` when no booking carrying it has an event."""
    mine = and_(Booking.tenant_id == g.tenant_id, Booking.coach_membership_id == coach_membership_id)
    session = _SESSION_UID.fullmatch(uid)
    if session:
        places = list(db.session.scalars(select(Booking).where(mine, Booking.session_id == uuid.UUID(session[1]))
                                         .order_by(Booking.created_at, Booking.id)))
        live = [b for b in places if b.status in PUSHED_STATUSES]
        if not live:
            return None
        return Wanted(uid, live[0], tuple(sorted(b.athlete.user.display_name for b in live)),
                      sum(b.calendar_sequence + 1 for b in places), all(b.status == "requested" for b in live))
    carries = Booking.calendar_uid == uid
    own = _OWN_UID.fullmatch(uid)
    if own:
        carries = or_(carries, and_(Booking.id == uuid.UUID(own[1]), Booking.calendar_uid.is_(None)))
    # The newest, if a reschedule left several.
    booking = db.session.scalar(select(Booking).where(mine, Booking.status.in_(PUSHED_STATUSES), carries)
                                .order_by(Booking.created_at.desc()).limit(1))
    if booking is None:
        return None
    return Wanted(uid, booking, (booking.athlete.user.display_name,), booking.calendar_sequence,
                  booking.status == "requested")


def _lock(source_id: uuid.UUID, uid: str) -> None:
    db.session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                       {"key": f"calendar-push:{g.tenant_id}:{source_id}:{uid}"})


def reconcile(source_id: uuid.UUID, uid: str, now: datetime | None = None) -> str:
    """Make one calendar match the booking that carries ``uid`` now; what happened: ``written``, ``removed``,
    ``unchanged``, ``failed`` or ``gone`` (no such calendar).

    The caller commits. A provider failure is recorded on the row (``failed``, its message), never raised.
    """
    return _reconcile(source_id, uid, now or clock.now())[0]


def _reconcile(source_id: uuid.UUID, uid: str, now: datetime) -> tuple[str, ProviderError | None]:
    _lock(source_id, uid)
    source = db.session.get(CalendarSource, (source_id), populate_existing=True)
    if source is None:
        return "gone", None
    connection = db.session.get(CalendarConnection, (source.connection_id), populate_existing=True)
    row = db.session.scalar(select(CalendarPush).where(
        CalendarPush.tenant_id == g.tenant_id, CalendarPush.source_id == source_id, CalendarPush.uid == uid)
        .execution_options(populate_existing=True))
    receiving = source.receives_bookings and connection.status != "disabled"
    wanted = _wanted(connection.coach_membership_id, uid) if receiving else None
    if row is None:
        if wanted is None:
            return "unchanged", None
        row = CalendarPush(tenant_id=source.tenant_id, source_id=source_id, uid=uid, booking_id=wanted.first.id,
                           state="pending", attempts=0, sequence=0)
        db.session.add(row)
    if wanted is not None and row.href and row.state != "failed" and row.booking_id == wanted.first.id \
            and row.sequence == wanted.sequence:
        row.state = "present"
        return "unchanged", None
    if wanted is None and row.href is None and row.state != "failed":
        # Nothing of ours can be there (a failed write may have landed: that one is removed below).
        already = row.state == "removed" and receiving
        outcome = _settled_removed(row, receiving, now)
        return ("unchanged" if already else outcome), None
    try:
        provider = provider_for(connection)
        if wanted is None:
            # Removed even if it was edited in the calendar app: the session is off.
            provider.delete_event(row.href or provider.event_href(source.url, uid), None)
            return _settled_removed(row, receiving, now), None
        _write(provider, source, row, wanted, now)
        return "written", None
    except ProviderError as exc:
        row.state, row.last_error, row.updated_at = "failed", str(exc)[:500], now
        row.attempts = min((row.attempts or 0) + 1, 30)
        log.warning("calendar push %s to calendar %s failed: %s", uid, source_id, exc)
        return "failed", exc


def _write(provider, source: CalendarSource, row: CalendarPush, wanted: Wanted, now: datetime) -> None:
    slug = db.session.scalar(select(Organization.slug).where(Organization.id == source.tenant_id))
    body = calendar_event(wanted, slug, now)
    try:
        written = provider.put_event(source.url, row.uid, body, row.href, row.etag)
    except (Conflict, NotFound):
        # Changed or deleted in the calendar app since Coach wrote it (or a write whose answer was lost left it
        # there): Coach's booking decides, so the version there now is overwritten (or created again).
        written = provider.put_event(source.url, row.uid, body, row.href or provider.event_href(source.url, row.uid),
                                     None)
        if row.href:
            row.overwritten_at = now
            log.info("calendar push %s: the event was changed in the calendar; Coach's booking written back",
                     row.uid)
    row.href, row.etag = written.href, written.etag
    row.booking_id, row.sequence = wanted.first.id, wanted.sequence
    row.state, row.last_error, row.attempts, row.pushed_at, row.updated_at = "present", None, 0, now, now


def _settled_removed(row: CalendarPush, receiving: bool, now: datetime) -> str:
    if not receiving:
        db.session.delete(row)  # a calendar no longer chosen keeps no rows
        return "removed"
    row.href = row.etag = row.last_error = None
    row.state, row.attempts, row.updated_at = "removed", 0, now
    return "removed"


def run_many(items: list[tuple[uuid.UUID, uuid.UUID, str]], now: datetime | None = None) -> dict[str, int]:
    """Reconcile ``(connection, calendar, UID)`` items, committing each; a connection that is unreachable or
    refuses its password is not asked again in this run (its other items wait for their next turn)."""
    counts: dict[str, int] = {}
    skipped: set[uuid.UUID] = set()
    for connection_id, source_id, uid in items:
        if connection_id in skipped:
            continue
        outcome, error = _reconcile(source_id, uid, now or clock.now())
        db.session.commit()
        counts[outcome] = counts.get(outcome, 0) + 1
        if isinstance(error, (Unreachable, AuthFailed)):
            skipped.add(connection_id)  # the connection's trouble, not this event's
    return counts


# --- what the calendars page shows ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PushState:
    """How writing bookings into one connection's calendar goes."""
    written: int
    failed: int
    last_error: str | None
    last_failed_at: datetime | None
    overwritten: int
    last_overwritten_at: datetime | None

    @property
    def recently_overwritten(self) -> bool:
        """Coach wrote a booking back over an edit made in the calendar app within the last week."""
        return self.last_overwritten_at is not None and clock.now() - self.last_overwritten_at < timedelta(days=7)

    @property
    def message(self) -> str | None:
        """"3 bookings could not be written: <error>", or ``None`` when all went in."""
        if not self.failed:
            return None
        what = "1 booking" if self.failed == 1 else f"{self.failed} bookings"
        return f"{what} could not be written to the calendar: {self.last_error}"


def states(connection_ids: list[uuid.UUID]) -> dict[uuid.UUID, PushState]:
    """Per connection (one statement for a page of them): events written, writes failing (with the newest
    message) and events Coach wrote back over an edit made in the calendar app."""
    if not connection_ids:
        return {}
    failed = CalendarPush.state == "failed"
    rows = db.session.execute(
        select(CalendarSource.connection_id,
               func.count().filter(CalendarPush.href.is_not(None)),
               func.count().filter(failed),
               func.max(CalendarPush.updated_at).filter(failed),
               func.count(CalendarPush.overwritten_at),
               func.max(CalendarPush.overwritten_at))
        .join(CalendarSource, and_(CalendarSource.tenant_id == CalendarPush.tenant_id,
                                   CalendarSource.id == CalendarPush.source_id))
        .where(CalendarPush.tenant_id == g.tenant_id, CalendarSource.connection_id.in_(connection_ids))
        .group_by(CalendarSource.connection_id)).all()
    errors = dict(db.session.execute(
        select(CalendarSource.connection_id, CalendarPush.last_error)
        .join(CalendarSource, and_(CalendarSource.tenant_id == CalendarPush.tenant_id,
                                   CalendarSource.id == CalendarPush.source_id))
        .where(CalendarPush.tenant_id == g.tenant_id, CalendarSource.connection_id.in_(connection_ids), failed)
        .ext(distinct_on(CalendarSource.connection_id))
        .order_by(CalendarSource.connection_id, CalendarPush.updated_at.desc())).all())
    result = {cid: PushState(0, 0, None, None, 0, None) for cid in connection_ids}
    for cid, written, failures, failed_at, overwritten, overwritten_at in rows:
        result[cid] = PushState(written, failures, errors.get(cid), failed_at, overwritten, overwritten_at)
    return result

