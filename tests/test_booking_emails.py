"""Booking emails as their readers notice them: a subject and text that say what happened, when (in the reader's own
zone, named, on their clock), with whom, where and the note; an invitation their mail app adds to the calendar
(``text/calendar; method=REQUEST``/``CANCEL``, one UID, a SEQUENCE that rises with every change); add-to-Google and
add-to-Outlook links with the right times; for the athlete, links that work without logging in. A reschedule is one
email per person, preferences are followed (in the app only → no email; a digest lists it without an invitation),
and another organization's people are never written to.

Events go the real way (outbox → relay → RQ worker → SMTP to the ``mailbox``), drained from the test's thread.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar
from sqlalchemy import func, select

from coach import tenancy
from coach.booking import ics
from coach.booking import service as booking
from coach.booking.models import BookingLink
from coach.extensions import db
from coach.notifications import service
from tests.booking_support import make_offering, open_every_day
from tests.factories import add_member, make_org, make_user
from tests.mailbox import Mailbox
from tests.notification_support import NotifyWorld

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture()
def world(app, quiet, ctx):
    return NotifyWorld(app, quiet)


def mails(mailbox, member) -> list:
    return mailbox.to(member.user.email)


def subject(message) -> str:
    # A long subject is folded before its first word; unfolded, it keeps the fold's space.
    return " ".join(message["Subject"].split())


def only(rows):
    assert len(rows) == 1, [subject(m) if hasattr(m, "get") else m for m in rows]
    return rows[0]


def body(message) -> str:
    return Mailbox.text(message)


def invite_part(message):
    parts = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1, [p.get_content_type() for p in message.walk()]
    return parts[0]


def invitation(message):
    """The email's invitation, parsed with ``icalendar``: ``(calendar, its one event)``."""
    part = invite_part(message)
    cal = Calendar.from_ical(part.get_payload(decode=True))
    events = cal.walk("VEVENT")
    assert len(events) == 1
    return cal, events[0]


def local(moment: datetime, zone: ZoneInfo, fmt: str = "%a %-d %b, %H:%M") -> str:
    return moment.astimezone(zone).strftime(fmt)


def links(message) -> dict[str, str]:
    """The labelled links of the plain-text body: ``{"Cancel": url, ...}``."""
    return dict(re.findall(r"^([A-Z][A-Za-z ]+): (https?://\S+)$", body(message).replace("\r\n", "\n"), re.M))


def new_yorker_on_a_12_hour_clock(world):
    world.act()
    world.ana.user.timezone = "America/New_York"
    world.ana.user.hour_cycle = 12
    db.session.commit()


# --- what each email says ---------------------------------------------------------------------------

def test_a_request_emails_the_coach_a_tentative_invitation_and_the_athlete_her_own_copy(world, mailbox, app):
    new_yorker_on_a_12_hour_clock(world)
    requested = world.request(world.ana, note="Backhand please")
    world.run()
    start = requested.starts_at

    to_maria = only(mails(mailbox, world.maria))
    assert subject(to_maria) == f"Ana Alves requested Technique session · {local(start, BERLIN)} (Europe/Berlin)"
    text = body(to_maria)
    assert f"When: {local(start, BERLIN, '%A %-d %B %Y, %H:%M')}–" in text and "(Europe/Berlin)" in text
    assert "Athlete: Ana Alves" in text and "Where: Court 1" in text and "Note: Backhand please" in text
    assert "Status: Waiting for your answer: confirm or decline it in the app" in text
    assert f"{app.config['APP_BASE_URL']}/o/river/bookings/{requested.id}" in text
    assert "/b/" not in text  # the coach's email links to the app, never to links without login

    part = invite_part(to_maria)
    assert part.get_content_type() == "text/calendar" and part.get_param("method") == "REQUEST"
    assert part.get_filename() == "invite.ics"
    cal, event = invitation(to_maria)
    assert str(cal["METHOD"]) == "REQUEST" and str(event["STATUS"]) == "TENTATIVE"
    assert str(event["UID"]) == f"booking-{requested.id}@coach" and event["SEQUENCE"] == 0
    assert event.decoded("DTSTART") == start and event.decoded("DTSTART").utcoffset() == timedelta(0)
    assert event.decoded("DTEND") == requested.ends_at
    assert str(event["SUMMARY"]) == "Requested: Technique session with Ana Alves"
    attendee = event["ATTENDEE"]
    assert str(attendee) == "mailto:maria@example.com" and attendee.params["RSVP"] == "FALSE"
    organizer = event["ORGANIZER"]
    assert organizer.params["CN"] == "Maria Santos"
    assert str(organizer) == "mailto:" + re.search(r"[\w.+-]+@[\w.-]+", app.config["MAIL_DEFAULT_SENDER"]).group(0)
    assert abs(event.decoded("DTSTAMP") - datetime.now(UTC)) < timedelta(minutes=5)

    # Ana asked herself: no notification in the app, but her own email and invitation, in her zone and clock.
    assert world.notes(world.ana) == []
    to_ana = only(mails(mailbox, world.ana))
    hour = start.astimezone(NEW_YORK)
    twelve = f"{hour:%a %-d %b}, {hour.hour % 12 or 12}:{hour:%M} {'am' if hour.hour < 12 else 'pm'}"
    assert subject(to_ana) == f"You requested Technique session with Maria Santos · {twelve} (America/New_York)"
    assert "Coach: Maria Santos" in body(to_ana) and "Status: Waiting for Maria Santos to confirm" in body(to_ana)
    _, event = invitation(to_ana)
    assert str(event["ATTENDEE"]) == "mailto:ana@example.com" and str(event["STATUS"]) == "TENTATIVE"
    found = links(to_ana)
    assert set(found) >= {"View the booking", "Reschedule", "Cancel", "Add to Google Calendar", "Add to Outlook"}
    base = app.config["APP_BASE_URL"]
    assert re.fullmatch(re.escape(base) + r"/b/[\w.-]+", found["View the booking"])
    assert re.fullmatch(re.escape(base) + r"/b/[\w.-]+/cancel", found["Cancel"])
    assert re.fullmatch(re.escape(base) + r"/b/[\w.-]+/reschedule", found["Reschedule"])
    assert len({found["View the booking"].split("/")[4], found["Cancel"].split("/")[4],
                found["Reschedule"].split("/")[4]}) == 3  # one link per action
    assert to_ana["List-Unsubscribe"] and to_ana["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_the_sequence_rises_from_request_to_confirmation_to_the_move_to_the_cancellation(world, mailbox):
    requested = world.request(world.ana)
    world.run()
    world.do(booking.transition, requested, "confirm", world.maria)
    world.run()
    world.act()
    moved = world.do(booking.reschedule_booking, requested, world.slot(5), world.ana)
    world.run()
    world.do(booking.transition, moved, "cancel", world.maria)
    world.run()

    to_ana = mails(mailbox, world.ana)
    assert [subject(m).split(" · ")[0].split(" to ")[0] for m in to_ana] == [
        "You requested Technique session with Maria Santos", "Maria Santos confirmed Technique session",
        "You moved Technique session with Maria Santos", "Maria Santos cancelled Technique session"]
    parsed = [invitation(m) for m in to_ana]
    assert [str(cal["METHOD"]) for cal, _ in parsed] == ["REQUEST", "REQUEST", "REQUEST", "CANCEL"]
    assert [str(e["STATUS"]) for _, e in parsed] == ["TENTATIVE", "CONFIRMED", "TENTATIVE", "CANCELLED"]
    assert {str(e["UID"]) for _, e in parsed} == {f"booking-{requested.id}@coach"}  # one appointment throughout
    sequences = [e["SEQUENCE"] for _, e in parsed]
    assert sequences == sorted(set(sequences)), sequences  # strictly rising
    assert parsed[2][1].decoded("DTSTART") == moved.starts_at and parsed[3][1].decoded("DTSTART") == moved.starts_at

    # The move is one email per person, not a cancellation and a new request.
    to_maria = mails(mailbox, world.maria)
    assert [subject(m).split(" · ")[0].split(" to ")[0] for m in to_maria] == [
        "Ana Alves requested Technique session", "You confirmed Technique session with Ana Alves",
        "Ana Alves moved Technique session", "You cancelled Technique session with Ana Alves"]
    move = to_maria[2]
    before, after = local(requested.starts_at, BERLIN), local(moved.starts_at, BERLIN)
    assert subject(move) == f"Ana Alves moved Technique session to {after} (Europe/Berlin)"
    assert f"Moved from {before} to {after} (Europe/Berlin)." in body(move)
    assert str(invitation(move)[1]["UID"]) == f"booking-{requested.id}@coach"
    in_app = world.notes(world.maria)
    assert [n.kind for n in in_app] == ["booking_requested", "booking_requested"]  # no "cancelled" for the move
    assert in_app[0].title == f"Ana Alves moved Technique session from {before} (Europe/Berlin) to {after} " \
                              "(Europe/Berlin)"

    # A cancelled booking's email offers no cancel or reschedule link, and no add-to-calendar link.
    cancelled = links(to_ana[3])
    assert "View the booking" in cancelled and not {"Cancel", "Reschedule", "Add to Google Calendar"} & set(cancelled)
    assert "removes it from your calendar" in body(to_ana[3])


def test_declined_and_expired_requests_send_a_cancel_invitation(world, mailbox):
    declined = world.request(world.ana)
    world.do(booking.transition, declined, "decline", world.maria)
    expiring = world.request(world.ana, starts_at=world.slot(4))
    world.run()
    world.do(booking.run_due, world.org.id, now=expiring.expires_at)
    world.run()

    by_subject = {subject(m).split(" · ")[0]: m for m in mails(mailbox, world.ana)}
    for what in ("Maria Santos declined Technique session",
                 "Your request for Technique session expired without an answer"):
        cal, event = invitation(by_subject[what])
        assert str(cal["METHOD"]) == "CANCEL" and str(event["STATUS"]) == "CANCELLED"
        assert invite_part(by_subject[what]).get_param("method") == "CANCEL"
    _, event = invitation(by_subject["Your request for Technique session expired without an answer"])
    assert str(event["UID"]) == f"booking-{expiring.id}@coach" and event["SEQUENCE"] == 1
    # The coach's tentative copy of the expired request is withdrawn too.
    to_maria = [m for m in mails(mailbox, world.maria) if "expired" in subject(m)]
    assert str(invitation(only(to_maria))[0]["METHOD"]) == "CANCEL"


def test_reminders_carry_the_invitation_and_the_athletes_links(world, mailbox):
    drop_in = make_offering(world.maria, title="Drop-in", auto_confirm=True, location="Court 3",
                            meeting_url="https://meet.example.com/drop-in")
    made = world.request(world.ana, starts_at=world.slot(3, offering=drop_in), offering=drop_in)
    world.run()
    mailbox.clear()
    world.do(booking.run_due, world.org.id, now=made.starts_at - timedelta(hours=24))
    world.run()

    reminder = only(mails(mailbox, world.ana))
    assert subject(reminder) == f"Reminder: Drop-in tomorrow · {local(made.starts_at, BERLIN)} (Europe/Berlin)"
    assert "Join: https://meet.example.com/drop-in" in body(reminder) and "Where: Court 3" in body(reminder)
    cal, event = invitation(reminder)
    assert str(cal["METHOD"]) == "REQUEST" and str(event["STATUS"]) == "CONFIRMED"
    assert str(event["LOCATION"]) == "https://meet.example.com/drop-in"
    assert {"Cancel", "Reschedule", "View the booking"} <= set(links(reminder))
    assert "/b/" not in body(only(mails(mailbox, world.maria)))


# --- add-to-calendar links ------------------------------------------------------------------------

def test_the_google_and_outlook_links_carry_the_bookings_times(world, mailbox):
    requested = world.request(world.ana, note="Serve & volley")
    world.run()
    found = links(only(mails(mailbox, world.maria)))

    google = urlsplit(found["Add to Google Calendar"])
    assert (google.scheme, google.netloc, google.path) == ("https", "calendar.google.com", "/calendar/render")
    q = parse_qs(google.query)
    start, end = requested.starts_at.astimezone(UTC), requested.ends_at.astimezone(UTC)
    assert q["action"] == ["TEMPLATE"] and q["text"] == ["Requested: Technique session with Ana Alves"]
    assert q["dates"] == [f"{start:%Y%m%dT%H%M%SZ}/{end:%Y%m%dT%H%M%SZ}"]
    assert q["location"] == ["Court 1"] and "Note: Serve & volley" in q["details"][0]

    outlook = urlsplit(found["Add to Outlook"])
    assert (outlook.netloc, outlook.path) == ("outlook.live.com", "/calendar/0/deeplink/compose")
    q = parse_qs(outlook.query)
    assert q["rru"] == ["addevent"] and q["subject"] == ["Requested: Technique session with Ana Alves"]
    assert q["startdt"] == [f"{start:%Y-%m-%dT%H:%M:%SZ}"] and q["enddt"] == [f"{end:%Y-%m-%dT%H:%M:%SZ}"]


def test_add_to_calendar_links_keep_odd_characters_intact():
    appointment = ics.Appointment(
        uid="booking-1@coach", sequence=0, starts_at=datetime(2026, 3, 29, 0, 30, tzinfo=UTC),
        ends_at=datetime(2026, 3, 29, 1, 30, tzinfo=UTC), summary="Q&A #1 / 50% = fun?",
        description="Line one\nLine two: é", location="Hall 2, Room #5", url="https://example.com/b/x?y=1&z=2")
    q = parse_qs(urlsplit(ics.google_link(appointment)).query)
    assert q["text"] == ["Q&A #1 / 50% = fun?"] and q["location"] == ["Hall 2, Room #5"]
    assert q["details"] == ["Line one\nLine two: é\nhttps://example.com/b/x?y=1&z=2"]
    assert q["dates"] == ["20260329T003000Z/20260329T013000Z"]
    q = parse_qs(urlsplit(ics.outlook_link(appointment)).query)
    assert q["subject"] == ["Q&A #1 / 50% = fun?"] and q["startdt"] == ["2026-03-29T00:30:00Z"]


# --- preferences and other organizations ---------------------------------------------------------

def test_a_member_who_chose_the_app_only_gets_no_email_and_no_links_are_issued(world, mailbox):
    world.prefer(world.maria, "booking_requested", "in_app")
    world.prefer(world.ana, "booking_requested", "in_app")
    requested = world.request(world.ana)
    world.run()

    assert mails(mailbox, world.maria) == [] and mails(mailbox, world.ana) == []
    assert only(world.notes(world.maria)).title.startswith("Ana Alves requested Technique session · ")
    world.act()
    assert db.session.scalar(select(func.count()).select_from(BookingLink)) == 0

    world.do(booking.transition, requested, "confirm", world.maria)  # booking_confirmed is still emailed
    world.run()
    assert subject(only(mails(mailbox, world.ana))).startswith("Maria Santos confirmed Technique session · ")


def test_a_daily_digest_lists_the_booking_without_an_invitation(world, mailbox):
    world.prefer(world.maria, "booking_requested", "email", "daily")
    world.request(world.ana)
    world.run()
    assert mails(mailbox, world.maria) == []

    world.do(service.send_due_emails, world.org.id, now=datetime.now(UTC) + timedelta(days=1, hours=1))
    world.run()
    digest = only(mails(mailbox, world.maria))
    assert subject(digest) == "Your day on River Club: 1 update"
    assert "Ana Alves requested Technique session" in body(digest)
    assert [p for p in digest.walk() if p.get_content_type() == "text/calendar"] == []


def test_the_other_organizations_people_get_nothing_and_its_bookings_stay_its_own(world, mailbox):
    zed = make_user("zed@example.com", "Zed Stranger")
    hill = make_org(zed, slug="hill", name="Hill Club")
    tenancy.activate(hill.id)
    hugo = add_member(hill, make_user("hugo@example.com", "Hugo Hill"), "coach")
    yan = add_member(hill, make_user("yan@example.com", "Yan Young"))
    open_every_day(hugo, tz="Europe/Berlin")
    hill_offering = make_offering(hugo, title="Hill climbing")
    tenancy.activate(hill.id)
    day = (datetime.now(UTC) + timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
    slot = booking.available_slots(hill_offering, day, day + timedelta(days=1))[0].starts_at
    hill_booking = booking.request_booking(hill_offering, yan, slot, "", yan)
    db.session.commit()
    hill_uid = hill_booking.uid

    world.request(world.ana)
    world.run()
    river = [m for m in mailbox.messages if "river" in body(m).lower() or "River Club" in body(m)]
    assert {m["To"] for m in river} == {"maria@example.com", "ana@example.com"}
    for message in river:
        assert "Hill" not in subject(message) and "Hill climbing" not in body(message)
        assert str(invitation(message)[1]["UID"]) != hill_uid
    hill_mail = [m for m in mailbox.messages if m not in river]
    assert {m["To"] for m in hill_mail} == {"hugo@example.com", "yan@example.com"}
    for message in hill_mail:
        assert "Technique session" not in body(message) and "Ana" not in body(message)


# --- odd input ------------------------------------------------------------------------------------

def test_emails_delivered_late_still_state_their_own_version(world, mailbox):
    requested = world.request(world.ana)
    world.do(booking.transition, requested, "confirm", world.maria)
    world.run()  # both events consumed after both changes

    to_ana = mails(mailbox, world.ana)
    assert [str(invitation(m)[1]["STATUS"]) for m in to_ana] == ["TENTATIVE", "CONFIRMED"]
    assert [invitation(m)[1]["SEQUENCE"] for m in to_ana] == [0, 1]


def test_a_note_with_markup_is_text_and_an_unknown_zone_reads_as_utc(world, mailbox):
    world.act()
    world.maria.user.timezone = "Mars/Olympus_Mons"
    db.session.commit()
    requested = world.request(world.ana, note='<script>alert("x")</script> & <b>serve</b>')
    world.run()

    to_maria = only(mails(mailbox, world.maria))
    assert subject(to_maria).endswith(f"· {local(requested.starts_at, UTC)} (UTC)")
    assert 'Note: <script>alert("x")</script> & <b>serve</b>' in body(to_maria)
    html = to_maria.get_body(preferencelist=("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html and "&amp; &lt;b&gt;serve&lt;/b&gt;" in html
    _, event = invitation(to_maria)
    assert '<script>alert("x")</script>' in str(event["DESCRIPTION"])  # a calendar shows it as text


def test_a_session_booked_by_an_admin_emails_both_people_and_not_the_admin(world, mailbox):
    drop_in = make_offering(world.maria, title="Drop-in", auto_confirm=True)
    made = world.request(world.ana, starts_at=world.slot(offering=drop_in), actor=world.admin, offering=drop_in)
    world.run()

    to_ana = only(mails(mailbox, world.ana))
    assert subject(to_ana).startswith("Ada Admin booked Drop-in for you · ")
    assert {"View the booking", "Cancel", "Reschedule"} <= set(links(to_ana))
    _, event = invitation(to_ana)
    assert str(event["STATUS"]) == "CONFIRMED" and str(event["UID"]) == f"booking-{made.id}@coach"
    assert subject(only(mails(mailbox, world.maria))).startswith("Ana Alves booked Drop-in · ")
    assert mails(mailbox, world.admin) == []


def test_the_one_click_unsubscribe_of_a_booking_email_stops_that_kind_only(world, mailbox, client):
    world.request(world.ana)
    world.run()
    to_maria = only(mails(mailbox, world.maria))
    path = urlsplit(to_maria["List-Unsubscribe"][1:-1]).path
    assert path in body(to_maria)
    response = client.post(path, data="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert world.preference_rows(world.maria) == {"booking_requested": ("in_app", "immediate")}

    world.request(world.ana, starts_at=world.slot(4))
    world.run()
    assert len(mails(mailbox, world.maria)) == 1  # told in the app only now
    assert len(world.notes(world.maria, "booking_requested")) == 2
