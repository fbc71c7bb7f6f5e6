"""Links in booking emails that let their reader view, cancel or reschedule one booking without logging in.

A link is ``<signed tenant and secret>``: the signature (the app's SECRET_KEY) refuses a tampered or made-up link
before the database is asked; the tenant says which organization's rows to read (RLS); only the SHA-256 of the
secret is stored, with the booking, the one action it allows and its expiry. A view link works until it
expires; a cancel or reschedule link is spent by the change it made.

Services never commit; the caller does.
"""
from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select, update

from coach import clock
from coach.booking.models import MANAGE_ACTIONS, Booking, BookingLink
from coach.errors import DomainError
from coach.extensions import db
from coach.ids import parse_uuid
from coach.platform import audit

SALT = "booking-manage-link"
# How long a link works after it was sent: until the session is over, and at least this long.
MIN_TTL = timedelta(days=2)
AFTER_SESSION = timedelta(hours=12)


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue(booking: Booking, action: str, now: datetime | None = None) -> str:
    """A new link token for ``action`` on ``booking`` (the caller builds the URL with it)."""
    if action not in MANAGE_ACTIONS:
        raise ValueError(f"unknown manage action {action!r}")
    now = now or clock.now()
    secret = secrets.token_urlsafe(24)
    expires = max(booking.ends_at + AFTER_SESSION, now + MIN_TTL)
    db.session.add(BookingLink(tenant_id=booking.tenant_id, booking_id=booking.id, action=action,
                               token_hash=_hash(secret), expires_at=expires, created_at=now))
    return _serializer().dumps([booking.tenant_id.hex, secret])


def tenant_of(token: str) -> uuid.UUID | None:
    """The organization a genuine token belongs to (activate it before :func:`resolve`); ``None`` if forged."""
    try:
        data = _serializer().loads(token)
    except BadSignature:
        return None
    if not (isinstance(data, list) and len(data) == 2 and all(isinstance(x, str) for x in data)):
        return None
    return parse_uuid(data[0])


def resolve(token: str) -> BookingLink | None:
    """The link row of a genuine token, whatever its state (the caller checks :func:`refusal`)."""
    try:
        _, secret = _serializer().loads(token)
    except (BadSignature, ValueError, TypeError):
        return None
    return db.session.scalar(select(BookingLink).where(BookingLink.token_hash == _hash(secret)))


def refusal(link: BookingLink | None, now: datetime | None = None) -> str | None:
    """Why ``link`` cannot be used now (a sentence for the reader), or ``None`` when it can."""
    now = now or clock.now()
    if link is None:
        return "This link is not valid. Open the booking from the app instead."
    if link.used_at is not None:
        return "This link was already used. Each cancel or reschedule link works once."
    if link.expires_at <= now:
        return "This link has expired. Open the booking from the app instead."
    return None


def spend(link: BookingLink, now: datetime | None = None) -> bool:
    """Mark a cancel/reschedule link used, once: ``False`` when another request spent it first."""
    return db.session.execute(update(BookingLink).where(
        BookingLink.tenant_id == link.tenant_id, BookingLink.id == link.id, BookingLink.used_at.is_(None))
        .values(used_at=now or clock.now()).returning(BookingLink.id)).scalar() is not None


# --- using a link (the pages of coach.blueprints.booking.manage) -------------------------------------------

NOT_VALID = "This link is not valid. Open the booking from the app instead."
USED = "This link was already used. Each cancel or reschedule link works once."


class LinkRefused(DomainError):
    """A link that cannot be used (``why``: ``not_valid`` 404, ``wrong_action`` 403, ``used`` or ``expired``
    410); the message is written for whoever opened it."""

    def __init__(self, message: str, status: int, why: str, link: BookingLink | None = None):
        super().__init__(message, status)
        self.why = why
        self.link = link


def usable(token: str, action: str, now: datetime | None = None) -> tuple[BookingLink, Booking]:
    """The link of ``token`` and its booking, if the link allows ``action`` now (the token's organization
    must be active: see :func:`tenant_of`); :class:`LinkRefused` otherwise.

    A link is for one booking and one action: a view link cannot cancel, a cancel link cannot reschedule.
    """
    link = resolve(token)
    if link is None:
        raise LinkRefused(NOT_VALID, 404, "not_valid")
    if link.action != action:
        raise LinkRefused(f"This link only lets you {link.action} this booking, not {action} it. Use the "
                          "matching link of the email, or open the booking in the app.",
                          403, "wrong_action", link)
    why = refusal(link, now)
    if why is not None:
        raise LinkRefused(why, 410, "used" if link.used_at is not None else "expired", link)
    booking = db.session.scalar(select(Booking).where(Booking.tenant_id == link.tenant_id,
                                                      Booking.id == link.booking_id))
    if booking is None:  # the composite foreign key keeps them together; a deleted booking takes its links
        raise LinkRefused(NOT_VALID, 404, "not_valid")
    return link, booking


def carry_out(link: BookingLink, booking: Booking, change: Callable[[], Booking],
              now: datetime | None = None) -> Booking:
    """Spend ``link`` and make ``change`` (a cancel or a reschedule as the booking's athlete) in the caller's
    transaction, audited as ``booking_link.used``; the booking it leaves (the moved one after a reschedule).

    The spend comes first: its row lock queues a second request with the same link behind this one, which then
    finds it spent (:class:`LinkRefused`, 410). A refused change rolls back with the spend, so the link still
    works (a time taken meanwhile can be chosen again).
    """
    if link.action == "view":
        raise ValueError("a view link changes nothing")
    if not spend(link, now):
        raise LinkRefused(USED, 410, "used", link)
    result = change()
    audit.record("booking_link.used", actor=booking.athlete.user, target_type="booking", target_id=booking.id,
                 details={"action": link.action, "link": str(link.id),
                          **({"moved_to": str(result.id)} if result.id != booking.id else {})})
    return result


def record_refusal(refused: LinkRefused) -> None:
    """Audit a refused use of a genuine link (a reused or expired one, or one that asked the wrong action)."""
    link = refused.link
    if link is None:
        return
    audit.record("booking_link.refused", target_type="booking", target_id=link.booking_id,
                 actor_label="email link", details={"action": link.action, "why": refused.why, "link": str(link.id)})


def moved_to(booking: Booking) -> Booking | None:
    """The booking ``booking`` was rescheduled to, if it was."""
    if booking.status != "cancelled":
        return None
    return db.session.scalar(select(Booking).where(Booking.tenant_id == booking.tenant_id,
                                                   Booking.rescheduled_from_id == booking.id).limit(1))
