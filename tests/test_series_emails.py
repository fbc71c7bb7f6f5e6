"""A recurring series is news once, not once per occurrence: booking it, cancelling it from an occurrence on or
moving it from an occurrence on sends each person concerned one notification and one email, which lists the dates
in the reader's zone and clock, links to the series page and carries one calendar (``METHOD:PUBLISH``) with an
entry per occurrence under its booking's own UID and SEQUENCE. The occurrences' own events still reach everyone
else (the coach's CalDAV calendar gets every occurrence), and a single occurrence changed on its own is told as
before.

Events go the real way (outbox → relay → RQ worker → SMTP to the ``mailbox``), drained from the test's thread.
"""
from __future__ import annotations

import time
from datetime import date, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from icalendar import Calendar

from coach.booking import series as series_service
from coach.booking import service as booking
from coach.booking.models import Booking
from coach.extensions import db
from coach.notifications.models import Notification
from tests.booking_support import make_offering
from tests.mailbox import Mailbox
from tests.test_booking_emails import BERLIN, NEW_YORK, UTC, only, subject, world  # noqa: F401 - world: fixture
from tests.test_calsync_push import connect, events_on_server


def berlin_day(days_ahead: int) -> date:
    return (datetime.now(UTC).astimezone(BERLIN) + timedelta(days=days_ahead)).date()


def at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=BERLIN).astimezone(UTC)


def calendar_of(message) -> Calendar:
    parts = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1, [p.get_content_type() for p in message.walk()]
    assert parts[0].get_param("method") == "PUBLISH" and parts[0].get_filename() == "series.ics"
    return Calendar.from_ical(parts[0].get_payload(decode=True))


def entries(message) -> dict[str, object]:
    """The calendar's events by UID (each UID once)."""
    cal = calendar_of(message)
    assert str(cal["METHOD"]) == "PUBLISH"
    events = cal.walk("VEVENT")
    by_uid = {str(e["UID"]): e for e in events}
    assert len(by_uid) == len(events)
    return by_uid


def twelve_hour(moment: datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{local:%a %-d %b}, {local.hour % 12 or 12}:{local.minute:02d} {'am' if local.hour < 12 else 'pm'}"


def book_series(world, actor, first: datetime, count: int = 8, offering=None):
    """Plan and book as the confirm button does (the digest of the plan shown); the series and its bookings."""
    world.act()
    offering = offering or world.offering
    shown = series_service.plan(offering, world.ana, first, 1, count=count, actor=actor)
    series = world.do(series_service.book, offering, world.ana, first, 1, count, None, shown.digest, actor)
    return series, series_service.occurrences(series)


def series_notes(world, member, series) -> list[Notification]:
    return [n for n in world.notes(member) if n.subject_id == series.id]


def test_a_series_of_eight_with_one_conflict_is_one_email_and_one_notification_each(world, mailbox, app):
    world.act()
    world.ana.user.timezone, world.ana.user.hour_cycle = "America/New_York", 12
    db.session.commit()
    first_day = berlin_day(3)
    world.request(world.ben, starts_at=at(first_day + timedelta(weeks=3), 10))  # in the way of occurrence 4
    world.run()
    mailbox.clear()

    series, bookings = book_series(world, world.admin, at(first_day, 10))
    world.run()
    assert len(bookings) == 7

    to_ana = only(mailbox.to(world.ana.user.email))
    assert subject(to_ana).startswith("Ada Admin booked 7 weekly sessions of Technique session for you · ")
    assert "(America/New_York)" in subject(to_ana) and "1 date was skipped" in subject(to_ana)
    text = Mailbox.text(to_ana)
    for b in bookings:  # every date on her zone and clock
        assert f"- {twelve_hour(b.starts_at, NEW_YORK)}" in text
    skipped = at(first_day + timedelta(weeks=3), 10)
    assert f"{twelve_hour(skipped, NEW_YORK)}: taken by another session" in text
    assert f"{app.config['APP_BASE_URL']}/o/river/series/{series.id}" in text
    events = entries(to_ana)
    assert set(events) == {b.uid for b in bookings}
    for b in bookings:
        event = events[b.uid]
        assert event.decoded("DTSTART") == b.starts_at and event.decoded("DTEND") == b.ends_at
        assert int(event["SEQUENCE"]) == b.calendar_sequence == 0 and str(event["STATUS"]) == "CONFIRMED"
        assert "ATTENDEE" not in event and event["ORGANIZER"].params["CN"] == "Maria Santos"

    # The coach did not book it: told once too, in her words and zone.
    to_maria = only(mailbox.to(world.maria.user.email))
    assert subject(to_maria).startswith("Ada Admin booked 7 weekly sessions of Technique session with Ana Alves")
    assert "(Europe/Berlin)" in subject(to_maria)
    assert set(entries(to_maria)) == {b.uid for b in bookings}
    assert mailbox.to(world.admin.user.email) == []  # Ada did it herself

    [ana_note] = series_notes(world, world.ana, series)
    assert ana_note.kind == "booking_confirmed"
    assert ana_note.title.startswith("Ada Admin booked 7 weekly sessions of Technique session for you: ")
    assert ana_note.url == f"/o/river/series/{series.id}"
    [maria_note] = series_notes(world, world.maria, series)
    assert maria_note.kind == "booking_requested"
    # Nothing per occurrence.
    occurrence_ids = {b.id for b in bookings}
    assert not [n for n in world.all_notes() if n.subject_id in occurrence_ids]


def test_cancel_from_occurrence_five_is_one_email_naming_the_dates_with_their_entries_cancelled(world, mailbox):
    first_day = berlin_day(3)
    world.request(world.ben, starts_at=at(first_day + timedelta(weeks=3), 10))
    series, bookings = book_series(world, world.maria, at(first_day, 10))
    world.run()
    mailbox.clear()

    world.act()
    assert world.do(series_service.cancel_from, series, 5, world.maria) == 3
    world.run()
    gone = [db.session.get(Booking, b.id) for b in bookings[4:]]

    to_ana = only(mailbox.to(world.ana.user.email))
    assert subject(to_ana).startswith("Maria Santos cancelled 3 weekly sessions of Technique session · ")
    for b in gone:
        assert f"{b.starts_at.astimezone(BERLIN):%-d %b}" in subject(to_ana)
        assert f"- {b.starts_at.astimezone(BERLIN):%a %-d %b, %H:%M}" in Mailbox.text(to_ana)
    events = entries(to_ana)
    assert set(events) == {b.uid for b in gone}
    for b in gone:
        assert str(events[b.uid]["STATUS"]) == "CANCELLED"
        assert int(events[b.uid]["SEQUENCE"]) == b.calendar_sequence == 1
    # Maria cancelled: her own copy by email (her calendar's entries), no notification, as for a single booking.
    to_maria = only(mailbox.to(world.maria.user.email))
    assert subject(to_maria).startswith("You cancelled 3 weekly sessions of Technique session with Ana Alves")
    assert [n.kind for n in series_notes(world, world.ana, series)] == ["booking_cancelled", "booking_confirmed"]
    assert series_notes(world, world.maria, series) == []


def test_move_from_occurrence_three_is_one_email_from_the_old_day_and_time_to_the_new(world, mailbox):
    first_day = berlin_day(3)
    series, bookings = book_series(world, world.maria, at(first_day, 10))
    world.run()
    mailbox.clear()

    world.act()
    weekday = (first_day.weekday() + 1) % 7
    preview = series_service.plan_move(series, 3, weekday, 14 * 60, world.maria)
    world.do(series_service.move_from, series, 3, weekday, 14 * 60, preview.digest, world.maria)
    world.run()
    moved = series_service.occurrences(series)[2:]

    to_ana = only(mailbox.to(world.ana.user.email))
    old_day, new_day = f"{first_day:%A}s", f"{moved[0].starts_at.astimezone(BERLIN):%A}s"
    assert subject(to_ana).startswith(f"Maria Santos moved 6 weekly sessions of Technique session · from {old_day} "
                                      f"10:00 to {new_day} 14:00 (Europe/Berlin)")
    text = Mailbox.text(to_ana)
    for old, new in zip(bookings[2:], moved):
        assert f"- {old.starts_at.astimezone(BERLIN):%a %-d %b}, 10:00 → " \
               f"{new.starts_at.astimezone(BERLIN):%a %-d %b}, 14:00" in text
    events = entries(to_ana)
    assert set(events) == {b.uid for b in bookings[2:]}  # the same entries as before the move, updated
    for new in moved:
        assert events[new.uid].decoded("DTSTART") == new.starts_at and int(events[new.uid]["SEQUENCE"]) == 2
    assert subject(only(mailbox.to(world.maria.user.email))).startswith("You moved 6 weekly sessions")
    assert len(series_notes(world, world.ana, series)) == 2  # booked, moved


def test_one_occurrence_cancelled_on_its_own_is_told_as_a_single_booking(world, mailbox):
    series, bookings = book_series(world, world.maria, at(berlin_day(3), 10), count=4)
    world.run()
    mailbox.clear()

    world.act()
    second = db.session.get(Booking, bookings[1].id)
    world.do(booking.transition, second, "cancel", world.maria)
    world.run()

    to_ana = only(mailbox.to(world.ana.user.email))
    assert subject(to_ana).startswith("Maria Santos cancelled Technique session · ")
    part = [p for p in to_ana.walk() if p.get_content_type() == "text/calendar"]
    assert [p.get_param("method") for p in part] == ["CANCEL"] and part[0].get_filename() == "invite.ics"
    [event] = Calendar.from_ical(part[0].get_payload(decode=True)).walk("VEVENT")
    assert str(event["UID"]) == second.uid and int(event["SEQUENCE"]) == second.calendar_sequence


def test_in_the_app_only_gets_the_notification_without_an_email(world, mailbox):
    world.prefer(world.ana, "booking_confirmed", "in_app")
    series, _ = book_series(world, world.maria, at(berlin_day(3), 10), count=3)
    world.run()
    assert mailbox.to(world.ana.user.email) == []
    assert len(series_notes(world, world.ana, series)) == 1


def test_the_coachs_calendar_still_gets_every_occurrence(world, mailbox, radicale):
    acct = radicale.account()
    connect(SimpleNamespace(org=world.org, coach=world.maria), acct)
    world.act()
    series, bookings = book_series(world, world.maria, at(berlin_day(3), 10), count=4)
    world.run()
    on_server = {str(e["UID"]): e for e in events_on_server(acct)}
    assert set(on_server) == {b.uid for b in bookings}
    assert {e.decoded("DTSTART") for e in on_server.values()} == {b.starts_at for b in bookings}

    world.act()
    world.do(series_service.cancel_from, series, 3, world.maria)
    world.run()
    assert {str(e["UID"]) for e in events_on_server(acct)} == {b.uid for b in bookings[:2]}


def test_a_hundred_occurrences_are_one_email_in_reasonable_time(world, mailbox):
    offering = make_offering(world.maria, title="Footwork", horizon_days=730)
    mailbox.clear()
    series, bookings = book_series(world, world.maria, at(berlin_day(3), 10), count=100, offering=offering)
    assert len(bookings) == 100
    started = time.monotonic()
    world.run(timeout=60)
    took = time.monotonic() - started

    to_ana = only(mailbox.to(world.ana.user.email))
    assert len(entries(to_ana)) == 100
    assert subject(to_ana).startswith("Maria Santos booked 100 weekly sessions of Footwork for you")
    assert took < 30, took
    assert mailbox.to(world.maria.user.email) == []  # she booked it: nothing of hers to update


def test_another_organizations_members_get_nothing(world, mailbox):
    world.other_club()
    mailbox.clear()
    series, _ = book_series(world, world.maria, at(berlin_day(3), 10), count=3)
    world.run()
    told = {address for m in mailbox.messages for address in m["To"].split(",")}
    assert {a.strip() for a in told} == {world.ana.user.email}
    assert mailbox.to("yan@example.com") == [] and mailbox.to("zed@example.com") == []


def test_a_daily_digest_lists_the_series_once(world, mailbox):
    from coach import clock
    from coach.notifications import service

    world.prefer(world.ana, "booking_confirmed", "email", "daily")
    series, _ = book_series(world, world.maria, at(berlin_day(3), 10), count=5)
    world.run()
    assert mailbox.to(world.ana.user.email) == []
    world.act()
    assert service.send_due_emails(world.org.id, now=clock.now() + timedelta(days=1)) == 1
    world.run()
    digest = only(mailbox.to(world.ana.user.email))
    text = Mailbox.text(digest)
    assert text.count("Maria Santos booked 5 weekly sessions of Technique session for you") == 1
    assert [p for p in digest.walk() if p.get_content_type() == "text/calendar"] == []
