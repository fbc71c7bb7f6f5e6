"""The room page of a session in each of its states (open, before, after, ended, cancelled) for its coach, its
athletes, other members and other organizations; ending a room; attendance; the booking page's way into the room;
the notice an athlete gets when the coach is in the room."""
from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from coach import clock, tenancy
from coach.accounts.models import User
from coach.extensions import db
from coach.notifications.models import Notification
from coach.platform.models import AuditEvent, OutboxEvent
from coach.rooms import access, attendance, service
from coach.rooms.models import RoomAttendance, SessionRoom
from tests.room_rows import seed_room_rows
from tests.room_support import RoomWorld
from tests.test_booking_views import HX, logged_in, text

CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
BOOSTED = {"HX-Request": "true", "HX-Boosted": "true"}


@pytest.fixture()
def world(ctx):
    world = RoomWorld()
    world.other_club()
    tenancy.activate(world.org.id)
    return world


def browser_of(app, member):
    return logged_in(app, member.user.email)


def end_room(browser, world, session):
    """Press "End the session for everyone" on the room page (its form's CSRF token)."""
    page = text(browser.get(world.room_path(session)))
    match = CSRF_RE.search(page)
    csrf = match.group(1) if match else ""
    return browser.post(f"{world.room_path(session)}/end", data={"csrf_token": csrf})


def stay(world, session, member, joined_ago: int, left_ago: int | None = None, seen_ago: int | None = None):
    """A stay of ``member`` in the room (minutes ago), as the signaling socket writes it."""
    now = clock.now()
    tenancy.activate(world.org.id)
    row = RoomAttendance(tenant_id=world.org.id, session_id=session.id, membership_id=member.id, peer_id=uuid.uuid4(),
                         joined_at=now - timedelta(minutes=joined_ago),
                         last_seen_at=now - timedelta(minutes=left_ago if left_ago is not None else (seen_ago or 0)),
                         left_at=now - timedelta(minutes=left_ago) if left_ago is not None else None)
    db.session.add(row)
    db.session.commit()
    return row


# --- the open room -----------------------------------------------------------------------------------

def test_the_coach_and_the_athlete_get_the_call_page_with_its_contract(app, world):
    for member, role in ((world.maria, "coach"), (world.ana, "athlete")):
        response = browser_of(app, member).get(world.room_path(world.one))
        page = text(response)
        assert response.status_code == 200
        assert 'id="room"' in page and "data-room" in page
        assert f'data-session="{world.one.id}"' in page and f'data-member="{member.id}"' in page
        assert f'data-role="{role}"' in page and 'data-max="6"' in page
        assert f'data-socket="{world.room_path(world.one)}/socket"' in page
        assert f'data-name="{member.user.display_name}"' in page
        assert ("End the session for everyone" in page) == (role == "coach")
        assert response.headers["Permissions-Policy"] == (
            "camera=(self), microphone=(self), display-capture=(self), geolocation=(), payment=()")
        assert response.headers["Cache-Control"] == "no-store"


def test_without_javascript_or_webrtc_the_page_offers_the_meeting_link(app, world):
    page = text(browser_of(app, world.ana).get(world.room_path(world.one)))
    noscript = page[page.index("<noscript>"):page.index("</noscript>")]
    assert "This call needs JavaScript" in noscript and 'href="https://meet.example.com/maria"' in noscript
    unsupported = page[page.index("data-room-unsupported"):]
    unsupported = unsupported[:unsupported.index("</div>")]
    assert "hidden" in unsupported and "Use the meeting link instead" in unsupported
    # The group offering has no link: the page says which browsers work instead.
    group = text(browser_of(app, world.ben).get(world.room_path(world.group)))
    assert "current version of Chrome, Firefox or Safari" in group and "meet.example.com" not in group


def test_only_the_room_page_allows_the_camera(app, world):
    browser = browser_of(app, world.ana)
    booking = world.bookings[world.one.id][0]
    other = browser.get(f"/o/river/bookings/{booking.id}")
    assert other.headers["Permissions-Policy"].startswith("camera=()")


def test_a_boosted_click_into_the_room_becomes_a_full_page_load(app, world):
    response = browser_of(app, world.ana).get(world.room_path(world.one), headers=BOOSTED)
    assert response.status_code == 200 and response.headers["HX-Redirect"] == world.room_path(world.one)
    assert "data-room" not in text(response)


# --- who may not enter -------------------------------------------------------------------------------

def test_members_who_are_not_in_the_session_are_refused_with_a_reason(app, world):
    for member in (world.cleo, world.admin, world.ben):
        response = browser_of(app, member).get(world.room_path(world.one))
        assert response.status_code == 403
        assert "This room is for the session&#39;s coach and athletes." in text(response) or \
            "This room is for the session's coach and athletes." in text(response)


def test_other_organizations_and_unknown_sessions_are_not_found(app, world):
    zed = browser_of(app, world.zed)
    assert zed.get(world.room_path(world.one)).status_code == 404  # not a member of River
    assert zed.get(f"/o/hill/sessions/{world.one.id}/room").status_code == 404  # River's session under Hill
    ana = browser_of(app, world.ana)
    assert ana.get(f"/o/river/sessions/{world.hill_session_id}/room").status_code == 404
    for bad in ("nope", uuid.uuid4()):
        assert ana.get(f"/o/river/sessions/{bad}/room").status_code == 404
    assert app.test_client().get(world.room_path(world.one)).status_code in (302, 303)  # anonymous: log in


# --- before, cancelled -------------------------------------------------------------------------------

def test_before_it_opens_the_page_says_when_in_the_members_zone_and_refreshes_itself(app, world):
    tenancy.activate(world.org.id)
    user = db.session.get(User, world.ana.user_id)
    user.timezone, user.hour_cycle = "America/New_York", 12
    db.session.commit()
    browser = browser_of(app, world.ana)
    response = browser.get(world.room_path(world.later))
    page = text(response)
    opens = access.check(world.org.id, world.later.id, world.ana.id).opens_at
    from zoneinfo import ZoneInfo
    local = opens.astimezone(ZoneInfo("America/New_York"))
    shown = local.strftime("%-I:%M") + (" am" if local.hour < 12 else " pm")
    assert response.status_code == 200 and "data-room" not in page
    assert f"The room opens at {shown} " in page and "(in 24 hours)" in page
    assert 'hx-trigger="every 30s"' in page and f'href="{world.room_path(world.later)}"' in page
    # The poll gets the waiting block alone while it is still early.
    fragment = browser.get(world.room_path(world.later), headers=HX)
    assert "<html" not in text(fragment) and 'id="room-before"' in text(fragment)


def test_the_poll_reloads_the_page_once_the_room_opens(app, world):
    response = browser_of(app, world.ben).get(world.room_path(world.group), headers=HX)
    assert response.headers["HX-Redirect"] == world.room_path(world.group)


def test_a_cancelled_session_says_so_to_its_athlete_and_is_refused_to_others(app, world):
    page = text(browser_of(app, world.ana).get(world.room_path(world.cancelled)))
    assert "This session was cancelled" in page and "data-room" not in page
    assert "This session was cancelled" in text(browser_of(app, world.maria).get(world.room_path(world.cancelled)))
    assert browser_of(app, world.cleo).get(world.room_path(world.cancelled)).status_code == 403


# --- ending a room, after --------------------------------------------------------------------------------

def test_the_coach_ends_the_room_for_everyone_once(app, world, job_runner):
    stay(world, world.one, world.ana, joined_ago=4)
    maria = browser_of(app, world.maria)
    with job_runner.paused():
        response = end_room(maria, world, world.one)
        assert response.status_code == 303 and response.headers["Location"].endswith(world.room_path(world.one))
        tenancy.activate(world.org.id)
        db.session.expire_all()
        events = db.session.scalars(select(OutboxEvent).where(OutboxEvent.topic == "room.ended")).all()
        assert [e.payload["ended_by"] for e in events] == [str(world.maria.id)]
    again = end_room(maria, world, world.one)
    assert again.status_code == 303  # twice is fine
    tenancy.activate(world.org.id)
    db.session.expire_all()
    room = db.session.scalars(select(SessionRoom).where(SessionRoom.session_id == world.one.id)).one()
    assert room.ended_at is not None and room.ended_by_membership_id == world.maria.id
    assert db.session.scalars(select(RoomAttendance.left_at)).all()[0] is not None  # Ana's stay ended with it
    assert [a.action for a in db.session.scalars(select(AuditEvent).where(AuditEvent.action == "room.ended"))] == [
        "room.ended"]
    assert access.check(world.org.id, world.one.id, world.ana.id).state == "after"
    page = text(browser_of(app, world.ana).get(world.room_path(world.one)))
    assert "This session has ended" in page and "Maria Santos ended the room at" in page and "data-room" not in page


def test_an_athlete_cannot_end_the_room(app, world):
    ana = browser_of(app, world.ana)
    response = end_room(ana, world, world.one)
    assert response.status_code == 403
    tenancy.activate(world.org.id)
    assert access.check(world.org.id, world.one.id, world.ana.id).state == "open"
    assert browser_of(app, world.cleo).post(f"{world.room_path(world.one)}/end").status_code in (400, 403)


def test_the_after_page_shows_who_attended_and_for_how_long(app, world):
    stay(world, world.one, world.ana, joined_ago=50, left_ago=30)  # 20 min
    stay(world, world.one, world.ana, joined_ago=25, left_ago=5)   # 20 min
    stay(world, world.one, world.ana, joined_ago=24, left_ago=6)   # a second tab: inside the stay above
    stay(world, world.one, world.maria, joined_ago=55, left_ago=1)  # 54 min
    tenancy.activate(world.org.id)
    summary = service.attendance_summary(world.org.id, world.one.id)
    assert summary[world.ana.id].minutes == 40 and summary[world.ana.id].stays == 3
    assert summary[world.maria.id].minutes == 54
    ana_access = access.check(world.org.id, world.one.id, world.ana.id)
    later = ana_access.closes_at + timedelta(minutes=1)
    assert access.check(world.org.id, world.one.id, world.ana.id, now=later).state == "after"
    tenancy.activate(world.org.id)
    service.end_room(access.check(world.org.id, world.one.id, world.maria.id), world.maria)
    db.session.commit()
    page = text(browser_of(app, world.ana).get(world.room_path(world.one)))
    assert re.search(r"Ana Alves</strong>:\s+attended 40 min", page)
    assert re.search(r"Maria Santos</strong> \(coach\):\s+attended 54 min", page)


def test_an_open_stay_counts_to_now_and_a_vanished_one_to_its_last_ping(world):
    stay(world, world.one, world.ana, joined_ago=10)  # pinging now
    stay(world, world.one, world.maria, joined_ago=10, seen_ago=6)  # the browser vanished six minutes ago
    tenancy.activate(world.org.id)
    summary = service.attendance_summary(world.org.id, world.one.id)
    assert summary[world.ana.id].minutes == 10 and summary[world.ana.id].in_room
    assert summary[world.maria.id].minutes == 4 and not summary[world.maria.id].in_room


# --- the booking page ----------------------------------------------------------------------------------

def booking_page(app, member, world, session):
    booking = world.bookings[session.id][0]
    return text(browser_of(app, member).get(f"/o/river/bookings/{booking.id}"))


def test_the_booking_page_leads_into_the_open_room_and_says_when_it_opens(app, world):
    for member in (world.ana, world.maria):
        page = booking_page(app, member, world, world.one)
        assert f'href="{world.room_path(world.one)}" hx-boost="false">Join the room</a>' in page
    later = booking_page(app, world.ana, world, world.later)
    assert "Join the room" not in later and "The room opens at" in later and "10 minutes before the start" in later
    assert "Room</dt>" not in booking_page(app, world.ana, world, world.cancelled)  # cancelled: no room
    assert "Room</dt>" not in booking_page(app, world.admin, world, world.one)  # staff who is not in it


def test_after_the_session_the_booking_page_says_who_attended(app, world):
    stay(world, world.one, world.ana, joined_ago=30, left_ago=2)
    stay(world, world.one, world.maria, joined_ago=31, left_ago=1)
    tenancy.activate(world.org.id)
    service.end_room(access.check(world.org.id, world.one.id, world.maria.id), world.maria)
    db.session.commit()
    page = booking_page(app, world.ana, world, world.one)
    assert "Maria Santos attended 30 min; Ana Alves attended 28 min." in page
    assert f'href="{world.room_path(world.one)}">What happened in the room</a>' in page and "Join the room" not in page


# --- the coach in the room calls the athletes in -----------------------------------------------------------

def notices(world, member, org=None) -> list[Notification]:
    tenancy.activate((org or world.org).id)
    db.session.expire_all()
    return list(db.session.scalars(select(Notification).where(Notification.membership_id == member.id,
                                                              Notification.kind == "room_open")))


def join(world, session, member, role, org=None):
    """A stay started as the signaling socket starts it (room.joined emitted for a new stay)."""
    tenant_id = (org or world.org).id
    tenancy.activate(tenant_id)
    attendance.join(tenant_id, session.id, member.id, uuid.uuid4(), role, clock.now())
    db.session.commit()


def test_when_the_coach_enters_each_athlete_not_there_yet_is_called_in_once(world, job_runner):
    with job_runner.paused():
        join(world, world.group, world.ana, "athlete")  # Ana is in already
        join(world, world.group, world.maria, "coach")
        job_runner.drain()
    assert notices(world, world.ana) == []
    [called] = notices(world, world.ben)
    assert called.title == "Maria Santos is in the room: join now" and called.url == world.room_path(world.group)
    assert "Group clinic" in called.body
    assert notices(world, world.cleo) == [] and notices(world, world.maria) == []
    with job_runner.paused():
        join(world, world.group, world.maria, "coach")  # back after a drop, in a new tab: nobody is told twice
        join(world, world.group, world.ben, "athlete")
        job_runner.drain()
    assert len(notices(world, world.ben)) == 1 and notices(world, world.ana) == []


def test_an_athlete_entering_calls_nobody_and_other_clubs_hear_nothing(world, job_runner):
    with job_runner.paused():
        join(world, world.one, world.ana, "athlete")
        join(world, world.hill_session, world.yara, "coach", org=world.hill)
        job_runner.drain()
    assert notices(world, world.maria) == []
    assert len(notices(world, world.zed, world.hill)) == 1  # Hill's coach calls Hill's athlete
    assert [n.membership_id for n in notices(world, world.ana)] == []  # and nobody of River


def test_the_after_page_links_the_recording_and_the_booking(app, world):
    tenancy.activate(world.org.id)
    booking = world.bookings[world.one.id][0]
    seed_room_rows(world.org, world.maria, world.ana, booking)
    db.session.commit()
    page = text(browser_of(app, world.ana).get(world.room_path(world.one)))
    assert "This session has ended" in page and "Session recording</a>" in page
    assert re.search(r"Ana Alves</strong>:\s+attended 10 min", page)
    assert f'href="/o/river/bookings/{booking.id}">Your booking</a>' in page
    coach_page = text(browser_of(app, world.maria).get(world.room_path(world.one)))
    assert f'href="/o/river/bookings/{booking.id}">Booking of Ana Alves</a>' in coach_page


def test_the_sessions_list_offers_join_the_room_while_it_is_open(app, world):
    ana_page = text(browser_of(app, world.ana).get("/o/river/bookings"))
    one, later = world.bookings[world.one.id][0], world.bookings[world.later.id][0]
    join_one = f'href="/o/river/sessions/booking/{one.id}/room" hx-boost="false">Join the room</a>'
    assert join_one in ana_page and f"/sessions/booking/{later.id}/room" not in ana_page
    assert join_one in text(browser_of(app, world.maria).get("/o/river/bookings"))
    followed = browser_of(app, world.ana).get(f"/o/river/sessions/booking/{one.id}/room")
    assert followed.status_code == 303 and followed.headers["Location"].endswith(world.room_path(world.one))
    assert browser_of(app, world.cleo).get(f"/o/river/sessions/booking/{one.id}/room").status_code == 404
    assert browser_of(app, world.zed).get(f"/o/hill/sessions/booking/{one.id}/room").status_code == 404
    # The booking's own page has its own "Join the room" line; its row does not repeat it.
    detail = text(browser_of(app, world.ana).get(f"/o/river/bookings/{one.id}"))
    assert detail.count("Join the room</a>") == 1
