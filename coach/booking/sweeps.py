"""What the clock moves: expiries, starts, ends and reminders that are due, the organizations that have
any, and the instants at which a booking will next need the sweep.

The minute sweep and the precise jobs (:mod:`coach.booking.jobs`) both call :func:`run_due`.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, text, update

from coach import clock
from coach.booking.events import BOOKING_REMINDER
from coach.booking.lifecycle import TRANSITIONS, emit_change, release_seats
from coach.booking.models import LIVE_STATUSES, Booking
from coach.extensions import db
from coach.platform import audit
from coach.platform.outbox import emit


@dataclass
class SweepResult:
    expired: int = 0
    started: int = 0
    ended: int = 0
    reminders: int = 0

    @property
    def total(self) -> int:
        return self.expired + self.started + self.ended + self.reminders


def _sweep_transition(tenant_id: uuid.UUID, action: str, condition, now: datetime) -> int:
    """Move every booking of the organization matching ``condition`` by ``action``, set-based.

    Each row's status before the change is read under the row's lock in the same statement, so its audit
    event and topic say where it came from (an expiry may start from ``held`` or ``requested``).
    """
    sources, target = TRANSITIONS[action]
    before = (select(Booking.id, Booking.status).where(Booking.tenant_id == tenant_id, Booking.status.in_(sources),
                                                       condition)
              .with_for_update().subquery("before"))
    rows = db.session.execute(
        update(Booking).where(Booking.tenant_id == tenant_id, Booking.id == before.c.id,
                              Booking.status.in_(sources))
        .values(status=target, status_changed_at=now, calendar_sequence=Booking.calendar_sequence + 1)
        .returning(Booking.id, before.c.status.label("before"), Booking.session_id)
        .execution_options(synchronize_session=False)).all()
    if not rows:
        return 0
    if target not in LIVE_STATUSES:
        release_seats([row.session_id for row in rows if row.before in LIVE_STATUSES])
    came_from = {row.id: row.before for row in rows}
    changed = db.session.scalars(select(Booking).where(Booking.tenant_id == tenant_id,
                                                       Booking.id.in_(list(came_from)))
                                 .execution_options(populate_existing=True)).all()
    for booking in changed:
        audit.record(f"booking.{target}", actor_label="system", target_type="booking", target_id=booking.id,
                     details={"from": came_from[booking.id], "to": target})
        emit_change(booking, came_from[booking.id], target, None)
    return len(rows)


def run_due(tenant_id: uuid.UUID, now: datetime | None = None) -> SweepResult:
    """Apply every transition and reminder that is due in one organization. Idempotent.

    Each statement re-checks the status it changes, so a second run (or a run racing the
    precise job for the same moment) finds nothing left to do.
    """
    now = now or clock.now()
    grace = timedelta(minutes=current_app.config["BOOKING_END_GRACE_MINUTES"])
    result = SweepResult()
    result.expired = _sweep_transition(tenant_id, "expire", Booking.expires_at <= now, now)
    result.started = _sweep_transition(tenant_id, "start", Booking.starts_at <= now, now)
    result.ended = _sweep_transition(tenant_id, "end", Booking.ends_at + grace <= now, now)
    result.reminders = _send_reminders(tenant_id, now)
    return result


REMINDERS = {
    # kind → (column, how long before the start, the next reminder's lead time)
    "24h": ("reminder_24h_sent_at", timedelta(hours=24), timedelta(hours=1)),
    "1h": ("reminder_1h_sent_at", timedelta(hours=1), timedelta(0)),
}


def _send_reminders(tenant_id: uuid.UUID, now: datetime) -> int:
    """Mark due reminders sent and emit their events in the same transaction: each goes out once
    (the notifications' consumer tells both people, in the app and by email as they chose)."""
    sent = 0
    for kind, (column, lead, next_lead) in REMINDERS.items():
        col = getattr(Booking, column)
        ids = db.session.scalars(
            update(Booking).where(
                Booking.tenant_id == tenant_id, Booking.status == "confirmed", col.is_(None),
                Booking.confirmed_at <= Booking.starts_at - lead,
                Booking.starts_at - lead <= now, Booking.starts_at - next_lead > now)
            .values({column: now}).returning(Booking.id)).all()
        for booking in db.session.scalars(select(Booking).where(Booking.tenant_id == tenant_id,
                                                                Booking.id.in_(ids))):
            emit(BOOKING_REMINDER, {"booking_id": str(booking.id), "which": kind,
                                      "starts_at": booking.starts_at.isoformat()})
            sent += 1
    return sent


def due_tenants(now: datetime | None = None) -> list[uuid.UUID]:
    """Organizations with a transition or reminder due (through a narrow definer function)."""
    grace = timedelta(minutes=current_app.config["BOOKING_END_GRACE_MINUTES"])
    return list(db.session.scalars(text("SELECT bookings_due_tenants(:now, :grace)"),
                                   {"now": now or clock.now(), "grace": grace}))


def moments_for(payload: dict) -> list[datetime]:
    """The exact instants at which a booking event's booking may next need the sweep."""
    grace = timedelta(minutes=current_app.config["BOOKING_END_GRACE_MINUTES"])
    to = payload.get("to")
    starts_at = datetime.fromisoformat(payload["starts_at"])
    ends_at = datetime.fromisoformat(payload["ends_at"])
    if to in ("held", "requested") and payload.get("expires_at"):
        return [datetime.fromisoformat(payload["expires_at"])]
    if to == "confirmed":
        return [starts_at - timedelta(hours=24), starts_at - timedelta(hours=1), starts_at, ends_at + grace]
    if to == "active":
        return [ends_at + grace]
    return []
