"""Calendar files (RFC 5545) for bookings, built with ``icalendar``.

A booking's UID never changes, times are in UTC, and a cancelled, declined or
expired booking stays in the feed marked ``STATUS:CANCELLED`` with a higher
``SEQUENCE``, so subscribed calendar apps remove it instead of keeping a ghost.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone

from icalendar import Calendar, Event

from coach.booking.models import Booking
from coach.orgs.models import Membership

ICS_STATUS = {"held": "TENTATIVE", "requested": "TENTATIVE", "confirmed": "CONFIRMED", "active": "CONFIRMED",
              "ended": "CONFIRMED", "no_show": "CONFIRMED", "cancelled": "CANCELLED", "declined": "CANCELLED",
              "expired": "CANCELLED"}
# SEQUENCE by status: every transition of the lifecycle leads to a status ranked higher than the one it
# leaves (see coach.booking.lifecycle.TRANSITIONS), so each change raises it, however quickly it follows.
SEQUENCE = {"held": 0, "requested": 1, "confirmed": 2, "declined": 2, "expired": 2, "active": 3, "cancelled": 3,
            "ended": 4, "no_show": 5}


def _utc(value: datetime) -> datetime:
    # The driver returns timestamptz in the database session's zone; the file states UTC (…Z).
    return value.astimezone(timezone.utc)


def _event(booking: Booking, viewer: Membership | None, base_url: str, org_slug: str) -> Event:
    event = Event()
    other = booking.athlete if viewer is not None and viewer.id == booking.coach_membership_id else booking.coach
    event.add("uid", f"booking-{booking.id}@coach")
    event.add("dtstamp", _utc(booking.status_changed_at))
    event.add("last-modified", _utc(booking.status_changed_at))
    event.add("created", _utc(booking.created_at))
    # Rises with every change, so a calendar app replaces its copy.
    event.add("sequence", SEQUENCE[booking.status])
    event.add("dtstart", _utc(booking.starts_at))
    event.add("dtend", _utc(booking.ends_at))
    prefix = {"requested": "Requested: ", "held": "Awaiting payment: "}.get(booking.status, "")
    event.add("summary", f"{prefix}{booking.offering.title} with {other.user.display_name}")
    event.add("status", ICS_STATUS[booking.status])
    location = booking.offering.meeting_url or booking.offering.location
    if location:
        event.add("location", location)
    url = f"{base_url}/o/{org_slug}/bookings/{booking.id}"
    event.add("url", url)
    description = [f"Status: {booking.status_label}", url]
    if booking.note:
        description.insert(1, f"Note: {booking.note}")
    event.add("description", "\n".join(description))
    return event


def calendar(bookings: Iterable[Booking], viewer: Membership | None, base_url: str, org_slug: str,
             name: str) -> bytes:
    cal = Calendar()
    cal.add("prodid", "-//Coach//Bookings//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", name)
    for booking in bookings:
        cal.add_component(_event(booking, viewer, base_url, org_slug))
    # A feed's other sources (see coach.booking.feeds.register_source): ready-made events.
    for event in getattr(bookings, "extra_events", None) or ():
        cal.add_component(event)
    return cal.to_ical()
