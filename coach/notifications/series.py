"""Recurring series news: one notification and one email per person for a series booked, cancelled from an
occurrence on, or moved from an occurrence on, instead of one per occurrence.

:mod:`coach.booking.series` emits the action's own topic (``booking.series_booked`` / ``_cancelled`` / ``_moved``)
next to the occurrences' status events, which carry ``series_batch`` and which
:func:`coach.notifications.jobs.booking_changed` therefore skips (calendar pushes, waitlists and the rest still take
each of them). Who is told follows the single booking's rules (``jobs._booking_plans`` for the first occurrence):
whoever did not act, in the app and by email as they chose; the one who acted gets the email only when a single
booking would have sent them one. The kinds are the booking kinds, so preferences and digests apply unchanged.

The email lists every date in the reader's zone and on their clock, links to the series page, and carries one
``METHOD:PUBLISH`` calendar (``series.ics``, :func:`coach.booking.ics.publication`) with one VEVENT per occurrence
under its booking's own UID and SEQUENCE, so later single-occurrence invitations update the same entries.
"""
from __future__ import annotations

import uuid
from datetime import datetime

from flask import current_app, g
from sqlalchemy import select

from coach import clock
from coach.booking import ics
from coach.booking.events import SERIES_BOOKED, SERIES_CANCELLED, SERIES_MOVED
from coach.booking.models import Booking, BookingSeries
from coach.extensions import db
from coach.notifications import booking_mail, service
from coach.notifications.booking_mail import short_when, zone_of
from coach.orgs.models import Membership, Organization
from coach.platform.jobs import consumer
from coach.timezones import clock_time

TEMPLATE = "booking_series"
TITLE_DATES = 6  # dates named in a notification's title (the email lists them all)


def _bookings(ids: list[str]) -> list[Booking]:
    """The bookings of ``ids`` in that order (one statement), those that still exist."""
    wanted = [uuid.UUID(i) for i in ids]
    rows = {b.id: b for b in db.session.scalars(select(Booking).where(
        Booking.tenant_id == g.tenant_id, Booking.id.in_(wanted)))} if wanted else {}
    return [rows[i] for i in wanted if i in rows]


@consumer(SERIES_BOOKED, SERIES_CANCELLED, SERIES_MOVED)
def series_changed(payload: dict) -> None:
    """Coach and athlete, once each, about a whole action on a series."""
    from coach.notifications.jobs import _booking_plans  # jobs imports this module to register it

    series = db.session.scalar(select(BookingSeries).where(
        BookingSeries.tenant_id == g.tenant_id, BookingSeries.id == uuid.UUID(payload["series_id"])))
    action = payload.get("action")
    bookings = _bookings(payload.get("booking_ids") or [])
    if series is None or not bookings or action not in ("booked", "cancelled", "moved"):
        return
    sequences = dict(zip(payload["booking_ids"], payload.get("calendar_sequences") or []))
    previous = _bookings(payload.get("previous_ids") or []) if action == "moved" else []
    actor_id = payload.get("actor_membership_id")
    actor = db.session.get(Membership, uuid.UUID(actor_id)) if actor_id else None
    news = News(series, action, bookings, {str(b.id): sequences.get(str(b.id), b.calendar_sequence)
                                           for b in bookings},
                previous, [(datetime.fromisoformat(at), why) for at, why in payload.get("skipped") or []], actor)
    first = bookings[0]
    before, after = {"booked": (None, "confirmed"), "cancelled": ("confirmed", "cancelled"),
                     "moved": (None, "confirmed")}[action]
    slug = db.session.get(Organization, g.tenant_id).slug
    url = service.path_for("booking.series_detail", slug=slug, series_id=series.id)
    for person, kind, _, email_only in _booking_plans(first, before, after, actor,
                                                      previous[0] if previous else None):
        if person is None:
            continue
        email = news.builder(url)
        if email_only:
            service.email_only(person, kind, email)
            continue
        service.notify(person, kind, dedupe_key=f"series:{series.id}:{action}:{first.id}",
                       title=news.title(person), url=url, actor_id=actor.id if actor else None,
                       subject_id=series.id, email=email)
    service.announce()


class News:
    """One action on a series, told to one reader at a time in their own words, zone and clock."""

    def __init__(self, series: BookingSeries, action: str, bookings: list[Booking], sequences: dict[str, int],
                 previous: list[Booking], skipped: list[tuple[datetime, str]], actor: Membership | None):
        self.series, self.action, self.bookings, self.sequences = series, action, bookings, sequences
        self.previous, self.skipped, self.actor = previous, skipped, actor
        self.offering = bookings[0].offering

    # wording

    def what(self) -> str:
        """"7 weekly sessions of Technique" / "3 sessions of Technique every 2 weeks"."""
        n, every = len(self.bookings), self.series.interval_weeks
        sessions = f"{n} {'weekly ' if every == 1 else ''}session{'s' if n != 1 else ''} of {self.offering.title}"
        return sessions if every == 1 else f"{sessions} every {every} weeks"

    def headline(self, reader: Membership) -> str:
        athlete, coach = self.bookings[0].athlete, self.bookings[0].coach
        verb = {"booked": "booked", "cancelled": "cancelled", "moved": "moved"}[self.action]
        other = coach if reader.id == athlete.id else athlete
        if self.actor is not None and reader.id == self.actor.id:
            return f"You {verb} {self.what()} {'for' if self.action == 'booked' else 'with'} " \
                   f"{other.user.display_name}"
        by = self.actor.user.display_name if self.actor else "Someone"
        if reader.id == athlete.id:
            return f"{by} {verb} {self.what()}{' for you' if self.action == 'booked' else ''}"
        return f"{by} {verb} {self.what()} with {athlete.user.display_name}"

    def summary(self, reader: Membership) -> str:
        """The dates in a line: "Tuesdays 10:00 (Europe/Berlin), 8 Dec – 26 Jan; 1 date was skipped: 15 Dec
        (taken by another session)"; cancelled: the dates; moved: from which day and time to which."""
        zone = zone_of(reader).key
        pattern = _pattern(self.bookings, reader)
        if self.action == "cancelled":
            dates = [f"{b.starts_at.astimezone(zone_of(reader)):%-d %b}" if pattern else short_when(b.starts_at, reader)
                     for b in self.bookings]
            shown = ", ".join(dates[:TITLE_DATES]) + (f" and {len(dates) - TITLE_DATES} more"
                                                      if len(dates) > TITLE_DATES else "")
            return f"{shown} ({pattern}, {zone})" if pattern else f"{shown} ({zone})"
        if self.action == "moved":
            before = _pattern(self.previous, reader)
            span = _span(self.bookings, reader)
            if pattern and before:
                return f"from {before} to {pattern} ({zone}), {span}"
            return f"{span} ({zone})"
        text = f"{pattern} ({zone}), {_span(self.bookings, reader)}" if pattern \
            else f"{_span(self.bookings, reader)} ({zone})"
        if self.skipped:
            n = len(self.skipped)
            text += f"; {n} date{' was' if n == 1 else 's were'} skipped: " + ", ".join(
                f"{at.astimezone(zone_of(reader)):%-d %b} ({why})" for at, why in self.skipped[:TITLE_DATES]) + (
                f" and {n - TITLE_DATES} more" if n > TITLE_DATES else "")
        return text

    def title(self, reader: Membership) -> str:
        return " ".join(f"{self.headline(reader)}: {self.summary(reader)}".split())

    def lines(self, reader: Membership) -> list[str]:
        """Every date, one a line, in the reader's zone and on their clock."""
        if self.action == "moved":
            return [f"{short_when(old.starts_at, reader)} → {short_when(new.starts_at, reader)}"
                    for old, new in zip(self.previous, self.bookings)]
        return [short_when(b.starts_at, reader) for b in self.bookings]

    # the email

    def builder(self, url: str) -> service.EmailBuilder:
        def build(member: Membership) -> service.OwnEmail:
            return self.email(member, url)
        return build

    def email(self, reader: Membership, url: str) -> service.OwnEmail:
        base = current_app.config["APP_BASE_URL"]
        cancelled = self.action == "cancelled"
        context = {
            "headline": self.headline(reader), "summary": self.summary(reader), "dates": self.lines(reader),
            "skipped": [f"{short_when(at, reader)}: {why}" for at, why in self.skipped],
            "zone": zone_of(reader).key, "series_url": base + url, "offering": self.offering,
            "action": self.action, "cancelled": cancelled, "count": len(self.bookings),
            "other": self.bookings[0].coach if reader.id == self.bookings[0].athlete_membership_id
            else self.bookings[0].athlete,
        }
        subject = " ".join(f"{self.headline(reader)} · {self.summary(reader)}".split())
        return service.OwnEmail(subject, TEMPLATE, context, (self.calendar(reader),))

    def calendar(self, reader: Membership) -> dict:
        """``series.ics``: every occurrence as its own booking's entry (UID, SEQUENCE), cancelled ones marked so."""
        org = db.session.get(Organization, self.series.tenant_id)
        base = current_app.config["APP_BASE_URL"]
        status, state = ("cancelled", "CANCELLED") if self.action == "cancelled" else ("confirmed", "CONFIRMED")
        entries = []
        for booking in self.bookings:
            other = booking.coach if reader.id == booking.athlete_membership_id else booking.athlete
            change = booking_mail.Change(status, self.sequences[str(booking.id)])
            page = base + service.path_for("booking.detail", slug=org.slug, booking_id=booking.id)
            entries.append((booking_mail.appointment_of(booking, change, org, other, page), state))
        data = ics.publication(entries, now=clock.now(), organizer=(self.bookings[0].coach.user.display_name,
                                                                    booking_mail.sender_address()))
        return {"filename": "series.ics", "content_type": "text/calendar; method=PUBLISH; charset=utf-8",
                "data": data}


def _pattern(bookings: list[Booking], reader: Membership) -> str | None:
    """"Tuesdays 10:00" when every booking is on the same weekday and time in the reader's zone, else ``None``."""
    zone = zone_of(reader)
    local = [b.starts_at.astimezone(zone) for b in bookings]
    if not local or len({(t.weekday(), t.hour, t.minute) for t in local}) != 1:
        return None
    return f"{local[0]:%A}s {clock_time(local[0], reader.user.hour_cycle or 24)}"


def _span(bookings: list[Booking], reader: Membership) -> str:
    """"8 Dec – 26 Jan" (the years named when they differ from each other)."""
    zone = zone_of(reader)
    first, last = bookings[0].starts_at.astimezone(zone), bookings[-1].starts_at.astimezone(zone)
    if first.date() == last.date():
        return f"{first:%-d %b}"
    if first.year != last.year and (last - first).days > 300:
        return f"{first:%-d %b %Y} – {last:%-d %b %Y}"
    return f"{first:%-d %b} – {last:%-d %b}"
