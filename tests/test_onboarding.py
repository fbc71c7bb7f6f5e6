"""Getting started: the admin's checklist, the coach's and the athlete's walkthroughs. Each step turns done when
its real action happens (through the pages or the services), progress counts, hiding is per member, another
organization's rows never count, and the panel costs one statement."""
from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import event

from coach import clock, tenancy
from coach.booking import service as booking
from coach.cli import DEMO_PASSWORD
from coach.chat import service as chat
from coach.directory import profiles
from coach.extensions import db
from coach.governance import onboarding
from coach.governance import settings as org_settings
from coach.orgs import service as orgs
from coach.orgs.models import ADMIN, ATHLETE, COACH, SCHEDULER, Membership
from coach.orgs.service import membership_for
from coach.spaces import service as spaces
from tests.booking_support import make_offering, open_every_day
from tests.conftest import Auth
from tests.factories import PASSWORD, add_member, make_org, make_user

HX = {"HX-Request": "true"}
PANEL = "/o/harbour/onboarding"
TOKEN_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
KEY_RE = re.compile(r'name="idempotency_key" value="([^"]+)"')


class World:
    """Harbour Club (``harbour``, new): Ada (admin), Cleo (coach), Theo (athlete), Sid (scheduler). Busy Club
    (``busy``) next door has done everything, with Ada as its admin too: none of it may count at Harbour."""

    def __init__(self):
        ada = make_user("ada@example.com", "Ada Admin")
        self.org = make_org(ada, slug="harbour", name="Harbour Club")
        tenancy.activate(self.org.id)
        self.admin = membership_for(self.org, ada)
        self.coach = add_member(self.org, make_user("cleo@example.com", "Cleo Coach"), COACH)
        self.athlete = add_member(self.org, make_user("theo@example.com", "Theo Athlete"), ATHLETE)
        self.scheduler = add_member(self.org, make_user("sid@example.com", "Sid Scheduler"), SCHEDULER)
        cleo = self.coach.user
        self.busy = make_org(ada, slug="busy", name="Busy Club")
        tenancy.activate(self.busy.id)
        busy_admin = membership_for(self.busy, ada)
        busy_coach = add_member(self.busy, make_user("bo@example.com", "Bo Coach"), COACH)
        busy_athlete = add_member(self.busy, make_user("bea@example.com", "Bea Athlete"), ATHLETE)
        cleo_there = add_member(self.busy, cleo, COACH)  # Cleo coaches there too, set up already
        for coach in (busy_coach, cleo_there):
            open_every_day(coach, tz="Europe/Berlin")
            offering = make_offering(coach)
        write_profile(cleo_there)
        tenancy.activate(self.busy.id)
        space = spaces.create_space(self.busy, busy_admin, "Squad", "", "open")
        spaces.create_post(space, busy_admin, "Welcome!")
        org_settings.save_settings(self.busy, {"timezone": "Europe/Paris"}, busy_admin)
        db.session.commit()
        slot = first_slot(offering)
        booking.request_booking(offering, busy_athlete, slot, "", busy_athlete)
        db.session.commit()
        tenancy.activate(self.org.id)


def write_profile(coach, headline="Sprint coach", bio="Ten years of track."):
    tenancy.activate(coach.tenant_id)
    profile = profiles.ensure_profile(coach)
    profiles.save_profile(profile, {"headline": headline, "bio": bio, "online": "y"}, coach)
    db.session.commit()


def first_slot(offering):
    start = clock.now().replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=2)
    tenancy.activate(offering.tenant_id)
    slots = booking.available_slots(offering, start, start + timedelta(days=1))
    assert slots
    return slots[0].starts_at


@pytest.fixture()
def world(ctx):
    return World()


def browser(app, email: str, password: str = PASSWORD):
    client = app.test_client()
    assert Auth(client).login(email, password).status_code == 303
    return client


def text(response) -> str:
    return response.get_data(as_text=True)


def progress(page: str) -> tuple[int, int]:
    """What the panel says ("2 of 5 done"), checked against its <progress> element."""
    said = re.search(r"(\d) of (\d) done", page)
    meter = re.search(r'<progress id="onboarding-meter" max="(\d)" value="(\d)"', page)
    assert said and meter, "no progress shown"
    assert (said.group(1), said.group(2)) == (meter.group(2), meter.group(1))
    return int(said.group(1)), int(said.group(2))


def done_steps(page: str) -> list[str]:
    return re.findall(r'class="onboarding-step is-done">.*?<strong>([^<]+)</strong>', page, re.S)


def post_form(client, page: str, action: str, **headers):
    """Send the form of ``page`` posting to ``action`` as the page has it (its CSRF token and key)."""
    form = re.search(rf'<form method="post" action="{re.escape(action)}".*?</form>', page, re.S)
    assert form, f"no form posting to {action}"
    token, key = TOKEN_RE.search(form.group(0)).group(1), KEY_RE.search(form.group(0)).group(1)
    return client.post(action, data={"csrf_token": token, "idempotency_key": key}, headers=headers)


# --- the admin's checklist -------------------------------------------------------------------------------

def test_admin_checklist_counts_each_step_as_it_is_really_taken(app, world):
    """Ada opens Fresh Club: Busy Club, which she also runs, has done everything, and none of it counts."""
    fresh = make_org(world.admin.user, slug="fresh", name="Fresh Club")
    panel = "/o/fresh/onboarding"
    ada = browser(app, "ada@example.com")
    page = text(ada.get(panel))
    assert progress(page) == (0, 5)
    assert "Set up Fresh Club" in page and done_steps(page) == []

    members = text(ada.get("/o/fresh/admin/members"))
    invited = ada.post("/o/fresh/admin/invitations", data={
        "csrf_token": TOKEN_RE.search(members).group(1), "email": "new.coach@example.com", "role": "coach"})
    assert invited.status_code == 303
    page = text(ada.get(panel))
    assert progress(page) == (1, 5) and done_steps(page) == ["Invite your coaches"]

    confirmed = post_form(ada, page, "/o/fresh/onboarding/confirm/timezone", **HX)
    assert confirmed.status_code == 200 and "<html" not in text(confirmed)
    assert progress(text(confirmed)) == (2, 5)  # the panel, swapped in place

    tenancy.activate(fresh.id)
    admin = membership_for(fresh, world.admin.user)
    coach = add_member(fresh, role=COACH)
    open_every_day(coach)
    tenancy.activate(fresh.id)
    space = spaces.create_space(fresh, admin, "Team", "", "open")
    db.session.commit()
    page = text(ada.get(panel))
    assert progress(page) == (4, 5)
    spaces.create_post(space, admin, "Hello everyone")
    db.session.commit()
    page = text(ada.get(panel))
    assert progress(page) == (5, 5) and "You're all set" in page and "Hide this checklist" in page


def test_an_invitation_to_an_athlete_does_not_count_as_inviting_coaches_but_a_joined_coach_does(ctx):
    ada = make_user("ada@example.com")
    org = make_org(ada, slug="solo")
    admin = membership_for(org, ada)
    orgs.invite(org, admin, "athlete@example.com", ATHLETE)
    db.session.commit()
    assert not onboarding.checklist(org, admin, ada).steps[0].done
    add_member(org, role=COACH)
    tenancy.activate(org.id)
    assert onboarding.checklist(org, admin, ada).steps[0].done


def test_saving_the_settings_page_confirms_the_time_zone(ctx, world):
    assert not onboarding.checklist(world.org, world.admin, world.admin.user).steps[1].done
    org_settings.save_settings(world.org, {"timezone": "Europe/Berlin"}, world.admin)  # kept as it was
    db.session.commit()
    assert onboarding.checklist(world.org, world.admin, world.admin.user).steps[1].done


def test_only_an_admin_confirms_the_time_zone(app, world):
    cleo = browser(app, "cleo@example.com")
    page = text(cleo.get("/o/harbour/profile"))
    refused = cleo.post("/o/harbour/onboarding/confirm/timezone",
                        data={"csrf_token": TOKEN_RE.search(page).group(1)})
    assert refused.status_code == 403
    tenancy.activate(world.org.id)
    db.session.refresh(world.org)
    assert world.org.timezone_confirmed_at is None


def test_a_confirm_without_its_csrf_token_is_refused(app, world):
    ada = browser(app, "ada@example.com")
    assert ada.post("/o/harbour/onboarding/confirm/timezone").status_code == 400
    assert ada.post("/o/harbour/onboarding/confirm/nonsense").status_code == 404


# --- hiding --------------------------------------------------------------------------------------------

def test_hiding_the_checklist_hides_it_for_that_member_only(app, world):
    other = make_user("otto@example.com", "Otto Admin")
    add_member(world.org, other, ADMIN)
    ada, otto = browser(app, "ada@example.com"), browser(app, "otto@example.com")
    page = text(ada.get(PANEL))
    hidden = post_form(ada, page, "/o/harbour/onboarding/dismiss", **HX)
    assert hidden.status_code == 200 and "Checklist hidden" in text(hidden)
    assert text(ada.get(PANEL, headers=HX)).strip() == ""  # the home page's slot is gone for Ada
    page = text(ada.get(PANEL))  # the page of its own keeps the steps, without the Hide button
    assert "You hid this checklist" in page and progress(page) == (1, 5) and "Hide this checklist" not in page
    assert "Invite your coaches" in text(otto.get(PANEL, headers=HX))  # Otto still has his


def test_hiding_without_javascript_goes_back_home_with_a_message(app, world):
    ada = browser(app, "ada@example.com")
    hidden = post_form(ada, text(ada.get(PANEL)), "/o/harbour/onboarding/dismiss")
    assert hidden.status_code == 303 and hidden.headers["Location"].endswith("/o/harbour/")
    assert "Checklist hidden" in text(ada.get("/o/harbour/"))


def test_the_fragment_has_no_layout_and_the_page_has_one(app, world):
    ada = browser(app, "ada@example.com")
    fragment, page = text(ada.get(PANEL, headers=HX)), text(ada.get(PANEL))
    assert "<html" not in fragment and 'id="onboarding"' in fragment
    assert "<html" in page and "<h1>Getting started</h1>" in page


# --- the coach's walkthrough -----------------------------------------------------------------------------

def test_coach_walkthrough_profile_hours_and_first_offering(app, world):
    cleo = browser(app, "cleo@example.com")
    page = text(cleo.get(PANEL))
    assert progress(page) == (0, 3) and "Get ready to coach" in page  # set up at Busy Club: not here
    write_profile(world.coach, headline="Rowing coach", bio="")
    assert progress(text(cleo.get(PANEL))) == (0, 3)  # a headline without a bio is half a profile
    write_profile(world.coach)
    assert done_steps(text(cleo.get(PANEL))) == ["Introduce yourself on your coach profile"]
    open_every_day(world.coach)
    assert progress(text(cleo.get(PANEL))) == (2, 3)
    make_offering(world.coach)
    assert progress(text(cleo.get(PANEL))) == (3, 3)


# --- the athlete's walkthrough ---------------------------------------------------------------------------

def test_athlete_walkthrough_profile_coach_and_first_booking(app, world):
    theo = browser(app, "theo@example.com")
    page = text(theo.get(PANEL))
    assert progress(page) == (0, 3) and "Theo Athlete" in page and "Europe/Berlin" in page
    assert 'href="/o/harbour/coaches"' in page and 'href="/coaches/"' in page or 'href="/coaches"' in page
    confirmed = post_form(theo, page, "/o/harbour/onboarding/confirm/profile")
    assert confirmed.status_code == 303
    assert done_steps(text(theo.get(PANEL))) == ["Check your name and time zone"]

    tenancy.activate(world.org.id)
    conversation = chat.direct_with(world.org, world.athlete, world.coach)
    chat.send(conversation, world.athlete, "Hi Cleo, do you coach beginners?")
    db.session.commit()
    assert progress(text(theo.get(PANEL))) == (2, 3)

    open_every_day(world.coach)
    offering = make_offering(world.coach)
    booking.request_booking(offering, world.athlete, first_slot(offering), "", world.athlete)
    db.session.commit()
    assert progress(text(theo.get(PANEL))) == (3, 3)


def test_saving_the_profile_page_counts_as_checking_it(app, world):
    theo = browser(app, "theo@example.com")
    page = text(theo.get("/profile"))
    saved = theo.post("/profile", data={"csrf_token": TOKEN_RE.search(page).group(1),
                                        "display_name": "Theo A.", "timezone": "Europe/Lisbon"})
    assert saved.status_code == 303
    page = text(theo.get(PANEL))
    assert done_steps(page) == ["Check your name and time zone"] and "Theo A." in page


def test_a_scheduler_has_no_checklist(app, world):
    sid = browser(app, "sid@example.com")
    assert text(sid.get(PANEL, headers=HX)).strip() == ""
    assert "nothing to set up for your role" in text(sid.get(PANEL))


# --- when it shows, and what it costs -----------------------------------------------------------------

def test_an_old_hand_with_every_step_done_sees_nothing_but_a_newcomer_sees_all_set(ctx, world):
    write_profile(world.coach)
    open_every_day(world.coach)
    make_offering(world.coach)
    tenancy.activate(world.org.id)
    found = onboarding.shown(world.org, world.coach, world.coach.user)
    assert found is not None and found.complete
    world.coach.created_at = world.coach.created_at - onboarding.ALL_SET_SHOWN - timedelta(days=1)
    db.session.commit()
    assert onboarding.shown(world.org, world.coach, world.coach.user) is None
    # An old hand with a step still open sees it.
    assert onboarding.shown(world.org, world.athlete, world.athlete.user) is not None


def statements(call) -> int:
    """Statements this thread sends during ``call`` (the background job runner's, on its own thread, are not
    the checklist's: a fresh-clone run once counted its outbox claim here)."""
    seen = []
    me = threading.get_ident()

    def count(*_):
        if threading.get_ident() == me:
            seen.append(1)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        call()
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    return len(seen)


def test_the_panel_costs_one_statement_and_none_once_hidden(ctx, world):
    tenancy.activate(world.org.id)
    for member in (world.admin, world.coach, world.athlete, world.scheduler):
        onboarding.shown(world.org, member, member.user)  # loads what the commits expired (a request has it)
    for member in (world.admin, world.coach, world.athlete):
        assert statements(lambda m=member: onboarding.shown(world.org, m, m.user)) == 1, member.role
    assert statements(lambda: onboarding.shown(world.org, world.scheduler, world.scheduler.user)) == 0
    onboarding.dismiss(world.admin)
    db.session.commit()
    tenancy.activate(world.org.id)
    admin = db.session.get(Membership, world.admin.id)
    onboarding.shown(world.org, admin, admin.user)
    assert statements(lambda: onboarding.shown(world.org, admin, admin.user)) == 0


# --- on the home page, and twice-clicked buttons --------------------------------------------------------

def test_the_home_page_shows_the_checklist_without_javascript_until_hidden(app, world):
    ada = browser(app, "ada@example.com")
    home = text(ada.get("/o/harbour/"))  # a plain request: what a browser without JavaScript gets
    assert '<section id="onboarding"' in home and progress(home) == (1, 5)
    assert 'action="/o/harbour/onboarding/dismiss"' in home
    post_form(ada, home, "/o/harbour/onboarding/dismiss")
    assert '<section id="onboarding"' not in text(ada.get("/o/harbour/"))
    theo = browser(app, "theo@example.com")
    assert "Check your name and time zone" in text(theo.get("/o/harbour/"))
    sid = browser(app, "sid@example.com")
    assert '<section id="onboarding"' not in text(sid.get("/o/harbour/"))


def test_a_double_clicked_looks_right_confirms_once_and_answers_the_same(app, world, owner_db):
    ada = browser(app, "ada@example.com")
    page = text(ada.get(PANEL))
    first = post_form(ada, page, "/o/harbour/onboarding/confirm/timezone", **HX)
    second = post_form(ada, page, "/o/harbour/onboarding/confirm/timezone", **HX)
    assert first.status_code == second.status_code == 200
    assert second.headers.get("Idempotent-Replayed") == "true" and second.get_data() == first.get_data()
    owner_db.execute("SELECT set_config('app.tenant_id', %s, false)", (str(world.org.id),))
    assert owner_db.execute("SELECT count(*) FROM audit_events WHERE action = 'org.timezone_confirmed'"
                            ).fetchone()[0] == 1


def test_the_demo_members_see_sensible_first_steps(app, quiet):
    """``flask seed-demo``: Northside's admin has one step left (the time zone), Maria (coach) is all set, Sam
    (athlete) has booked and is asked to check his name and zone."""
    assert app.test_cli_runner().invoke(args=["seed-demo"]).exit_code == 0
    admin, maria, sam = (browser(app, f"{who}@northside.example", DEMO_PASSWORD) for who in ("admin", "maria.coach", "sam"))
    page = text(admin.get("/o/northside/"))
    assert progress(page) == (4, 5) and 'class="onboarding-step is-next"' in page
    assert "Check the organization&#39;s time zone" in page.split('is-next')[1][:400]
    page = text(maria.get("/o/northside/"))
    assert "You're all set" in page and progress(page) == (3, 3) and "onboarding-steps" not in page
    page = text(sam.get("/o/northside/"))
    assert progress(page) == (2, 3) and "Check your name and time zone" in page
