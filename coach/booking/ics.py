"""Calendar files (RFC 5545) for bookings, built with ``icalendar``: the feed, the invitations of booking
emails (iTIP, RFC 5546) and the "add to Google / Outlook" links.

In the feed a booking's UID never changes, times are in UTC, and a cancelled, declined or
expired booking stays in the feed marked ``STATUS:CANCELLED`` with a higher
``SEQUENCE``, so subscribed calendar apps remove it instead of keeping a ghost.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import quote, urlencode

from icalendar import Calendar, Event, vCalAddress, vText

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


# --- invitations (booking emails) -------------------------------------------------------------------

@dataclass(frozen=True)
class Appointment:
    """What an invitation and the "add to calendar" links say about one booking, for one recipient."""
    uid: str
    sequence: int
    starts_at: datetime
    ends_at: datetime
    summary: str
    description: str
    location: str
    url: str


def invitation(appointment: Appointment, *, method: str, status: str, organizer: tuple[str, str],
               attendee: tuple[str, str], now: datetime) -> bytes:
    """One event as an iTIP message: ``method`` ``REQUEST`` (add or update) or ``CANCEL`` (remove).

    Mail clients match it to the copy they keep by UID and replace it when SEQUENCE is higher, so a booking's
    invitations share its UID (a rescheduled booking inherits it) and carry its ``calendar_sequence``.

    :param organizer: ``(name, address)``: the coach's name with the app's own sender address, so a reply or an
        automatic "accepted" goes to a mailbox the app owns, never to a stranger's (the coach's own address is
        not given out).
    :param attendee: ``(name, address)`` of the recipient, told no reply is expected (``RSVP=FALSE``).
    """
    if method not in ("REQUEST", "CANCEL"):
        raise ValueError(f"unsupported iTIP method {method!r}")
    event = _appointment_event(appointment, status, organizer, now)
    who = _address(*attendee)
    who.params["ROLE"] = "REQ-PARTICIPANT"
    who.params["PARTSTAT"] = "TENTATIVE" if status == "TENTATIVE" else "ACCEPTED"
    who.params["RSVP"] = "FALSE"
    event.add("attendee", who)
    event.add("transp", "TRANSPARENT" if method == "CANCEL" else "OPAQUE")
    return _itip(method, [event])


def publication(appointments: Iterable[tuple[Appointment, str]], *, organizer: tuple[str, str],
                now: datetime) -> bytes:
    """Many appointments in one ``METHOD:PUBLISH`` calendar (a recurring series' email): one VEVENT per
    ``(appointment, STATUS)``, each with its own UID and SEQUENCE, so the entries it adds are the very ones a
    single booking's later invitation (REQUEST/CANCEL with that UID) updates; ``STATUS:CANCELLED`` marks removed ones.

    Why not one REQUEST per occurrence: in a REQUEST or CANCEL "all components MUST have the same UID" (RFC 5546
    §3.2.2, §3.2.5), and mail clients act on one calendar part per email, so n bookings would take n emails.
    PUBLISH allows many (§3.2.1), carries no ATTENDEE and asks for no reply.
    """
    events = []
    for appointment, status in appointments:
        event = _appointment_event(appointment, status, organizer, now)
        event.add("transp", "TRANSPARENT" if status == "CANCELLED" else "OPAQUE")
        events.append(event)
    return _itip("PUBLISH", events)


def _itip(method: str, events: list[Event]) -> bytes:
    cal = Calendar()
    cal.add("prodid", "-//Coach//Bookings//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method)
    for event in events:
        cal.add_component(event)
    return cal.to_ical()


def _appointment_event(appointment: Appointment, status: str, organizer: tuple[str, str], now: datetime) -> Event:
    """The VEVENT of one appointment (an invitation's or a publication's)."""
    event = Event()
    event.add("uid", appointment.uid)
    event.add("sequence", appointment.sequence)
    event.add("dtstamp", _utc(now))
    event.add("dtstart", _utc(appointment.starts_at))
    event.add("dtend", _utc(appointment.ends_at))
    event.add("summary", appointment.summary)
    event.add("status", status)
    if appointment.location:
        event.add("location", appointment.location)
    if appointment.url:
        event.add("url", appointment.url)
    if appointment.description:
        event.add("description", appointment.description)
    event.add("organizer", _address(*organizer))
    return event


def _address(name: str, email: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{email}")
    if name:
        address.params["CN"] = vText(name)
    return address


def google_link(appointment: Appointment) -> str:
    """Google Calendar's "create event" page with the appointment filled in (times in UTC)."""
    dates = f"{_utc(appointment.starts_at):%Y%m%dT%H%M%SZ}/{_utc(appointment.ends_at):%Y%m%dT%H%M%SZ}"
    return "https://calendar.google.com/calendar/render?" + urlencode({
        "action": "TEMPLATE", "text": appointment.summary, "dates": dates,
        "details": _details(appointment), "location": appointment.location}, safe="/:", quote_via=quote)


def outlook_link(appointment: Appointment) -> str:
    """Outlook on the web's "new event" form with the appointment filled in (times in UTC)."""
    return "https://outlook.live.com/calendar/0/deeplink/compose?" + urlencode({
        "path": "/calendar/action/compose", "rru": "addevent", "subject": appointment.summary,
        "startdt": f"{_utc(appointment.starts_at):%Y-%m-%dT%H:%M:%SZ}",
        "enddt": f"{_utc(appointment.ends_at):%Y-%m-%dT%H:%M:%SZ}",
        "body": _details(appointment), "location": appointment.location}, safe="/:", quote_via=quote)


def _details(appointment: Appointment) -> str:
    return "\n".join(part for part in (appointment.description, appointment.url) if part)
