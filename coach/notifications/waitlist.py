"""Notices of the waitlists (:mod:`coach.booking.waitlist`): the athlete first in line is told that a freed seat
was booked for them, or that it is theirs to take until a deadline. Emailed by default (the second needs an answer
in time); each member's preference for the kind decides."""
from __future__ import annotations

import uuid
from datetime import datetime

from flask import g
from sqlalchemy import select

from coach.booking.events import WAITLIST_BOOKED, WAITLIST_OFFERED
from coach.booking.models import Offering
from coach.extensions import db
from coach.notifications import service
from coach.notifications.booking_mail import short_when, zone_of
from coach.orgs.models import Membership, Organization
from coach.platform.jobs import consumer


def _athlete(payload: dict) -> Membership | None:
    return db.session.scalar(select(Membership).where(
        Membership.tenant_id == g.tenant_id, Membership.id == uuid.UUID(payload["athlete_membership_id"])))


def _when(moment: str, member: Membership) -> str:
    """``Tue 8 Dec, 10:00 (Europe/Berlin)`` in the member's own zone, on their own clock."""
    return f"{short_when(datetime.fromisoformat(moment), member)} ({zone_of(member).key})"


@consumer(WAITLIST_BOOKED, WAITLIST_OFFERED)
def tell_athlete(payload: dict) -> None:
    """The first in line: "A seat opened: you're booked into <offering> at <time>" (auto), or "A seat in
    <offering> is yours until <time>: take it" (offer; the link opens the line's page with the button)."""
    athlete = _athlete(payload)
    offering = db.session.get(Offering, uuid.UUID(payload["offering_id"]))
    if athlete is None or offering is None:
        return
    slug = db.session.get(Organization, g.tenant_id).slug
    if payload.get("offered_until"):
        kind, subject = "waitlist_offered", payload["entry_id"]
        title = f"A seat in {offering.title} is yours until {_when(payload['offered_until'], athlete)}: take it"
        url = service.path_for("booking.waitlist_page", slug=slug, session_id=payload["session_id"])
        body = (f"The session starts {_when(payload['starts_at'], athlete)}. After the deadline the seat goes to the "
                "next on the waitlist.")
    else:
        kind, subject = "waitlist_booked", payload["booking_id"]
        title = f"A seat opened: you're booked into {offering.title} at {_when(payload['starts_at'], athlete)}"
        url = service.path_for("booking.detail", slug=slug, booking_id=payload["booking_id"])
        body = "You were first on the waitlist."
    service.notify(athlete, kind, dedupe_key=f"waitlist:{payload['entry_id']}:{kind}",
                   title=title, url=url, body=body, subject_id=uuid.UUID(subject))
    service.announce()
