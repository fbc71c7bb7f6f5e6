"""The organization's home: a shell that answers "what now?" with blocks, per role, each its own fragment.

Each block is requested as htmx does (``HX-Request``: a fragment, no ``<html``) and as a plain link (a page).
A second organization with its own sessions, invitations and posts is seeded: none of it may show.
"""
from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from coach import tenancy
from coach.booking import service as booking
from coach.chat import service as chat
from coach.extensions import db
from coach.orgs import service as orgs
from coach.orgs.models import ATHLETE, COACH
from coach.spaces import service as spaces
from tests.booking_support import BookingWorld
from tests.conftest import Auth, csrf_from
from tests.factories import PASSWORD, add_member, make_user

HX = {"HX-Request": "true"}
ATHLETE_BLOCKS = ("sessions", "today", "messages", "spaces", "reviews")
COACH_BLOCKS = ("schedule", "requests", "attention", "spaces")
ADMIN_BLOCKS = ("schedule", "requests", "members", "moderation", "spaces", "storage")


def text(response) -> str:
    return response.get_data(as_text=True)


class HomeWorld:
    """Two organizations (see :class:`BookingWorld`): the one whose homes are opened (``a``) and another
    (``b``) whose rows must never show there, each with a coach (Berlin hours), an athlete and an admin."""

    def __init__(self, app):
        self.app = app
        self.a, self.b = BookingWorld(), BookingWorld(title="Rival drills")
        self.slug_a, self.slug_b = self.a.org.slug, self.b.org.slug
        self._browsers: dict = {}

    def act(self) -> None:
        """Act for organization A again (a request through the app leaves its own settings behind)."""
        tenancy.activate(self.a.org.id)

    def browser(self, member):
        self.act()
        if member.id not in self._browsers:
            key, email = member.id, member.user.email
            client = self.app.test_client()
            assert Auth(client).login(email).status_code == 303
            self._browsers[key] = client
            self.act()
        return self._browsers[member.id]

    def get(self, member, path: str, **kwargs):
        browser = self.browser(member)
        response = browser.get(path, **kwargs)
        self.act()
        return response

    def block(self, member, name: str) -> str:
        response = self.get(member, f"/o/{self.slug_a}/home/{name}", headers=HX)
        assert response.status_code == 200, (name, response.status_code)
        body = text(response)
        assert "<html" not in body  # a fragment: the block alone
        return body

    def book(self, world=None, days_ahead: int = 2, athlete=None):
        world = world or self.a
        tenancy.activate(world.org.id)
        made = booking.request_booking(world.offering, athlete or world.athlete,
                                       world.first_slot(days_ahead).starts_at, "", athlete or world.athlete)
        made_id = made.id
        db.session.commit()
        self.act()
        return SimpleNamespace(id=made_id)

    def admin_of(self, world):
        tenancy.activate(world.org.id)
        return orgs.membership_for(world.org, world.org_admin)


@pytest.fixture()
def world(app, ctx, quiet):
    made = HomeWorld(app)
    for w in (made.a, made.b):
        tenancy.activate(w.org.id)
        w.org_admin = orgs.members_with_role(w.org, "admin")[0].user
    made.act()
    return made


# --- the shell -------------------------------------------------------------------------------------------

def test_home_greets_the_member_in_their_zone_and_names_it(world):
    page = text(world.get(world.a.athlete, f"/o/{world.slug_a}/"))
    assert re.search(r"<h1>Good (morning|afternoon|evening), Arno</h1>", page)
    assert "Times in Europe/Berlin" in page
    assert "You are athlete here" in page


def test_each_role_gets_its_own_blocks(world):
    for member, names in ((world.a.athlete, ATHLETE_BLOCKS), (world.a.coach, COACH_BLOCKS)):
        page = text(world.get(member, f"/o/{world.slug_a}/"))
        shown = re.findall(r'hx-get="/o/[^/]+/home/([a-z]+)"', page)
        assert tuple(shown) == names, (member.role, shown)
    admin = world.admin_of(world.a)
    page = text(world.get(admin, f"/o/{world.slug_a}/"))
    assert tuple(re.findall(r'hx-get="/o/[^/]+/home/([a-z]+)"', page)) == ADMIN_BLOCKS


def test_without_javascript_every_block_is_a_link_to_its_page(world):
    page = text(world.get(world.a.athlete, f"/o/{world.slug_a}/"))
    slug = world.slug_a
    # The placeholders the page is served with (htmx fills them): each a heading and a link, never empty.
    for title, href in (("Next sessions", f"/o/{slug}/bookings"), ("Today", f"/o/{slug}/progress"),
                        ("Messages", f"/o/{slug}/chat"), ("New in your spaces", f"/o/{slug}/feed")):
        assert re.search(rf'<h2 id="home-[a-z]+-title">{title}</h2>\s*<p class="home-placeholder"><a href="{href}">', page), title


def test_a_block_followed_as_a_link_is_a_page(world):
    page = text(world.get(world.a.athlete, f"/o/{world.slug_a}/home/sessions"))
    assert "<html" in page and "Next sessions" in page and "← Home" in page


def test_a_block_of_another_role_is_not_found(world):
    browser = world.browser(world.a.athlete)
    assert browser.get(f"/o/{world.slug_a}/home/requests", headers=HX).status_code == 404
    assert browser.get(f"/o/{world.slug_a}/home/storage").status_code == 404
    assert browser.get(f"/o/{world.slug_a}/home/nonsense").status_code == 404


def test_another_organizations_blocks_are_not_found(world):
    browser = world.browser(world.a.athlete)
    assert browser.get(f"/o/{world.slug_b}/home/sessions", headers=HX).status_code == 404
    assert browser.get(f"/o/{world.slug_b}/").status_code == 404


# --- the athlete -----------------------------------------------------------------------------------------

def test_athlete_blocks_say_what_to_do_next_when_empty(world):
    me = world.a.athlete
    world.book(world.b)  # the other organization's athlete has a session: not ours
    sessions = world.block(me, "sessions")
    assert "No sessions booked." in sessions and f'href="/o/{world.slug_a}/book"' in sessions
    assert "All caught up." in world.block(me, "messages")
    assert "No reviews to write." in world.block(me, "reviews")
    assert "Join a space" in world.block(me, "spaces")
    today = world.block(me, "today")
    assert "Readiness check-in" in today  # not checked in yet today: that is the task left


def test_athletes_next_sessions_with_cancel_in_place(world):
    mine = world.book()
    world.book(world.b)
    block = world.block(world.a.athlete, "sessions")
    assert "Technique session" in block and "with Carla Coach" in block
    assert "Rival drills" not in block
    cancel = f"/o/{world.slug_a}/bookings/{mine.id}/cancel"
    assert f'hx-post="{cancel}"' in block and f'hx-target="#booking-{mine.id}"' in block
    # The booking's own action answers in place, and the block listens for the change it announces.
    browser = world.browser(world.a.athlete)
    answer = browser.post(cancel, data={"csrf_token": csrf_from(block)},
                          headers={**HX, "HX-Target": f"booking-{mine.id}"})
    assert answer.status_code == 200 and "Cancelled" in text(answer)
    assert "booking-changed" in answer.headers.get("HX-Trigger", "")
    shell = text(browser.get(f"/o/{world.slug_a}/"))
    assert re.search(r'id="home-sessions"[^>]*hx-trigger="load, booking-changed from:body', shell)
    assert "No sessions booked." in world.block(world.a.athlete, "sessions")


def test_athletes_unread_messages_and_new_posts(world):
    org, coach, me = world.a.org, world.a.coach, world.a.athlete
    tenancy.activate(org.id)
    conversation = chat.direct_with(org, coach, me)
    chat.send(conversation, coach, "See you on Saturday")
    chat.send(conversation, coach, "Bring water")
    space = spaces.create_space(org, coach, "Squad", "", "open")
    spaces.join(space, me)
    spaces.create_post(space, coach, "Saturday's **drills** are up")
    db.session.commit()
    messages = world.block(me, "messages")
    assert "Carla Coach" in messages and re.search(r'badge-new">2<', messages)
    posts = world.block(me, "spaces")
    assert "Saturday&#39;s drills are up" in posts and "Carla Coach in Squad" in posts


def test_athlete_is_asked_to_review_an_ended_session(world, owner_db):
    ended = world.book()
    owner_db.execute("SELECT set_config('app.tenant_id', %s, false)", (str(world.a.org.id),))
    owner_db.execute("UPDATE bookings SET status = 'ended' WHERE id = %s", (ended.id,))
    block = world.block(world.a.athlete, "reviews")
    assert "Technique session with Carla Coach" in block
    assert f'href="/o/{world.slug_a}/bookings/{ended.id}/review"' in block


# --- the coach -------------------------------------------------------------------------------------------

def test_coach_accepts_a_request_in_place_from_home(world):
    waiting = world.book(days_ahead=1)  # tomorrow in Berlin
    world.book(world.b, days_ahead=1)
    coach = world.browser(world.a.coach)
    block = world.block(world.a.coach, "requests")
    assert "Technique session" in block and "with Arno Athlete" in block and "Rival drills" not in block
    accept = f"/o/{world.slug_a}/bookings/{waiting.id}/confirm"
    assert f'hx-post="{accept}"' in block
    answer = coach.post(accept, data={"csrf_token": csrf_from(block)},
                        headers={**HX, "HX-Target": f"booking-{waiting.id}"})
    assert answer.status_code == 200 and "<html" not in text(answer)
    assert f'id="booking-{waiting.id}"' in text(answer) and "Confirmed" in text(answer)
    assert "No requests waiting." in world.block(world.a.coach, "requests")
    schedule = world.block(world.a.coach, "schedule")
    assert re.search(r"Tomorrow</h3>\s*<ul class=\"bookings\">", schedule) and "with Arno Athlete" in schedule
    assert "No sessions today." in schedule


def test_coach_empty_home_points_at_opening_hours(world):
    schedule = world.block(world.a.coach, "schedule")
    assert "Open more hours" in schedule and f"/coaches/{world.a.coach.id}/schedule" in schedule
    assert "No requests waiting." in world.block(world.a.coach, "requests")
    assert "All caught up" in world.block(world.a.coach, "attention")


def test_coach_sees_athletes_waiting_on_an_answer(world):
    org = world.a.org
    tenancy.activate(org.id)
    chat.send(chat.direct_with(org, world.a.athlete, world.a.coach), world.a.athlete, "Can we move Friday?")
    other_coach = add_member(org, make_user("otto@example.com", "Otto Other"), COACH)
    chat.send(chat.direct_with(org, other_coach, world.a.coach), other_coach, "Coffee?")
    db.session.commit()
    block = world.block(world.a.coach, "attention")
    assert "Arno Athlete" in block and "Otto Other" not in block  # athletes only


# --- admin and scheduler ---------------------------------------------------------------------------------

def test_admin_sees_the_whole_organizations_requests_and_what_waits_on_them(world):
    second = add_member(world.a.org, make_user("bea@example.com", "Bea Athlete"), ATHLETE)
    world.book()
    world.book(world.b)
    admin = world.admin_of(world.a)
    tenancy.activate(world.a.org.id)
    orgs.invite(world.a.org, admin, "newcoach@example.com", COACH)
    orgs.invite(world.b.org, world.admin_of(world.b), "rival@example.com", COACH)
    db.session.commit()
    requests = world.block(admin, "requests")
    assert "Arno Athlete with Carla Coach" in requests and "Rival drills" not in requests
    assert second.user.display_name not in requests  # Bea booked nothing
    members = world.block(admin, "members")
    assert "newcoach@example.com" in members and "rival@example.com" not in members
    assert "1 invitation open" in members
    assert "Nothing reported." in world.block(admin, "moderation")
    assert re.search(r"0 bytes of [\d.]+ [KMG]B used \(0%\)", world.block(admin, "storage"))


def test_scheduler_sees_the_organizations_sessions_but_not_admin_blocks(world):
    world.book(days_ahead=1)
    scheduler = world.browser(world.a.scheduler)
    page = text(scheduler.get(f"/o/{world.slug_a}/"))
    assert "Requests waiting" in page and "Members waiting" not in page
    assert "Arno Athlete with Carla Coach" in world.block(world.a.scheduler, "requests")
    assert scheduler.get(f"/o/{world.slug_a}/home/members", headers=HX).status_code == 404


# --- landing after login ---------------------------------------------------------------------------------

def test_a_member_of_one_organization_lands_on_its_home(app, world):
    response = Auth(app.test_client()).login(world.a.athlete.user.email)
    assert response.status_code == 303 and response.headers["Location"] == f"/o/{world.slug_a}/"


def test_a_member_of_several_lands_on_the_picker_then_the_last_used(app, world):
    email = world.a.athlete.user.email
    add_member(world.b.org, world.a.athlete.user, ATHLETE)
    browser = app.test_client()
    response = Auth(browser).login(email)
    assert response.headers["Location"] == "/orgs"
    assert browser.get(f"/o/{world.slug_b}/").status_code == 200
    assert browser.get("/").headers["Location"] == f"/o/{world.slug_b}/"


def test_login_still_follows_next(app, world):
    browser = app.test_client()
    csrf = csrf_from(text(browser.get("/login")))
    response = browser.post(f"/login?next=/o/{world.slug_a}/chat", data={
        "csrf_token": csrf, "email": world.a.athlete.user.email, "password": PASSWORD})
    assert response.status_code == 303 and response.headers["Location"] == f"/o/{world.slug_a}/chat"
