"""Booking emails: what happened, when (in the reader's own zone, named, on their own clock), with whom, where, the
note; an iCalendar invitation (``text/calendar; method=REQUEST`` or ``CANCEL``, invite.ics) that mail clients add
to the calendar by themselves; "add to Google / Outlook" links; and for the athlete links to view, cancel or
reschedule the booking without logging in (:mod:`coach.booking.manage_links`).

:func:`builder` returns what :func:`coach.notifications.service.notify` calls when (and only when) an email goes
out right away: in-app-only members and digests never issue manage links.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr
from zoneinfo import ZoneInfo

from flask import current_app

from coach import clock
from coach.booking import ics, manage_links
from coach.booking import service as booking_service
from coach.booking.models import Booking
from coach.extensions import db
from coach.notifications import service
from coach.orgs.models import Membership, Organization
from coach.timezones import clock_time

TEMPLATE = "booking_update"
# The invitation each change sends (method, STATUS); a released hold sends none: nobody was ever invited.
INVITATIONS = {"requested": ("REQUEST", "TENTATIVE"), "confirmed": ("REQUEST", "CONFIRMED"),
               "declined": ("CANCEL", "CANCELLED"), "expired": ("CANCEL", "CANCELLED"),
               "cancelled": ("CANCEL", "CANCELLED")}


@dataclass(frozen=True)
class Change:
    """Why one booking email is sent.

    :param status: the status the booking reached (the event's ``to``; ``confirmed`` for a reminder), which picks
        the invitation; ``None`` sends none.
    :param sequence: the booking's ``calendar_sequence`` after the change (the event's, not the row's now: a later
        change must not be overtaken by an older email).
    :param previous: the booking a reschedule replaced ("moved from ... to ...").
    """
    status: str | None
    sequence: int
    previous: Booking | None = None
    reminder: str | None = None  # "tomorrow", "in one hour"


def zone_of(member: Membership) -> ZoneInfo:
    try:
        return ZoneInfo(member.user.timezone or "UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def short_when(moment: datetime, member: Membership) -> str:
    """``Tue 8 Dec, 10:00`` in the member's zone and on their clock (the zone is named by the caller)."""
    local = moment.astimezone(zone_of(member))
    return f"{local:%a %-d %b}, {clock_time(local, member.user.hour_cycle or 24)}"


def long_when(booking: Booking, member: Membership) -> str:
    """``Tuesday 8 December 2026, 10:00–11:00 (Europe/Berlin)``."""
    zone = zone_of(member)
    start, end = booking.starts_at.astimezone(zone), booking.ends_at.astimezone(zone)
    cycle = member.user.hour_cycle or 24
    until = clock_time(end, cycle) if end.date() == start.date() else f"{end:%a %-d %b}, {clock_time(end, cycle)}"
    return f"{start:%A %-d %B %Y}, {clock_time(start, cycle)}–{until} ({zone.key})"


def builder(booking: Booking, change: Change, headline: str) -> service.EmailBuilder:
    """The email of ``change`` for whoever it goes to; ``headline`` says what happened, in their words."""
    def build(member: Membership) -> service.OwnEmail:
        return _email(booking, change, headline, member)
    return build


def _email(booking: Booking, change: Change, headline: str, member: Membership) -> service.OwnEmail:
    org = db.session.get(Organization, booking.tenant_id)
    base = current_app.config["APP_BASE_URL"]
    is_athlete = member.id == booking.athlete_membership_id
    other = booking.coach if is_athlete else booking.athlete
    subject, headline, moved = _wording(booking, change, headline, member, other)
    manage = _manage_links(booking, change, base) if is_athlete else None
    app_url = base + service.path_for("booking.detail", slug=org.slug, booking_id=booking.id)
    appointment = appointment_of(booking, change, org, other, manage["view"] if manage else app_url)
    live = change.status in ("requested", "confirmed")
    attachments = (_invitation(booking, change, appointment, member),) if change.status in INVITATIONS else ()
    context = {
        "booking": booking, "headline": headline, "when": long_when(booking, member), "moved": moved,
        "other": other, "other_role": "Coach" if is_athlete else "Athlete", "offering": booking.offering,
        "status_label": _status_line(change, booking, is_athlete), "reminder": change.reminder, "app_url": app_url,
        "manage": manage, "live": live, "cancelled": change.status in ("declined", "expired", "cancelled"),
        "google_url": ics.google_link(appointment) if live else None,
        "outlook_url": ics.outlook_link(appointment) if live else None,
        "invitation": bool(attachments),
    }
    return service.OwnEmail(subject, TEMPLATE, context, attachments)


def _wording(booking: Booking, change: Change, headline: str, member: Membership,
             other: Membership) -> tuple[str, str, str | None]:
    """``(subject, headline, "moved from ... to ..." or None)`` in ``member``'s zone and clock."""
    zone = zone_of(member).key
    when = f"{short_when(booking.starts_at, member)} ({zone})"
    moved = None
    if change.reminder:
        subject = f"{headline} · {when}"
        headline = f"{booking.offering.title} with {other.user.display_name} starts {change.reminder}"
    elif change.previous is not None:
        subject = f"{headline} to {when}"
        moved = (f"{short_when(change.previous.starts_at, member)} to {short_when(booking.starts_at, member)} "
                 f"({zone})")
    else:
        subject = f"{headline} · {when}"
    return " ".join(subject.split()), headline, moved  # the subject: one header line whatever a name holds


def appointment_of(booking: Booking, change: Change, org: Organization, other: Membership,
                   page: str) -> ics.Appointment:
    """What ``booking``'s calendar entry says to the reader (``other`` is the person they meet)."""
    offering, name = booking.offering, other.user.display_name
    lines = (f"{offering.title} with {name} ({org.name})",
             f"Join: {offering.meeting_url}" if offering.meeting_url else "",
             f"Note: {booking.note}" if booking.note else "")
    return ics.Appointment(
        uid=booking.uid, sequence=change.sequence, starts_at=booking.starts_at, ends_at=booking.ends_at,
        summary=f"{'Requested: ' if change.status == 'requested' else ''}{offering.title} with {name}",
        description="\n".join(line for line in lines if line),
        location=offering.meeting_url or offering.location or "", url=page)


def _invitation(booking: Booking, change: Change, appointment: ics.Appointment, member: Membership) -> dict:
    """The ``invite.ics`` attachment: the coach's name as organizer at the app's own address, the reader as the
    attendee (see :func:`coach.booking.ics.invitation`)."""
    method, status = INVITATIONS[change.status]
    data = ics.invitation(appointment, method=method, status=status, now=clock.now(),
                          organizer=(booking.coach.user.display_name, sender_address()),
                          attendee=(member.user.display_name, member.user.email))
    return {"filename": "invite.ics", "content_type": f"text/calendar; method={method}; charset=utf-8",
            "data": data}


def _status_line(change: Change, booking: Booking, is_athlete: bool) -> str:
    if change.status == "requested":
        return f"Waiting for {booking.coach.user.display_name} to confirm" if is_athlete else \
            "Waiting for your answer: confirm or decline it in the app"
    return {"confirmed": "Confirmed", "declined": "Declined", "expired": "Expired without an answer",
            "cancelled": "Cancelled"}.get(change.status or "", "Released")


def sender_address() -> str:
    """The app's own sender address: an invitation's ORGANIZER (see :func:`coach.booking.ics.invitation`)."""
    return parseaddr(current_app.config["MAIL_DEFAULT_SENDER"])[1] or "no-reply@coach.localhost"


def _manage_links(booking: Booking, change: Change, base: str) -> dict[str, str]:
    """The athlete's links without logging in: view always; cancel and reschedule while the athlete could."""
    actions = ["view"]
    if change.status in ("requested", "confirmed"):
        allowed = booking_service.allowed_actions(booking, booking.athlete)
        actions += [a for a in ("cancel", "reschedule") if a in allowed]
    return {action: base + service.path_for(f"booking_links.{action}", token=manage_links.issue(booking, action))
            for action in actions}
