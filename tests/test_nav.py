"""The header (issue 21): the five daily sections and "More" by role, ``aria-current`` on the page's section, the
account menu, the navigation kept on a member's error pages (and still no word of an organization to a
stranger), the favicon and the web app manifest."""
from __future__ import annotations

import copy
import io
import json

import lxml.html
import pytest
from PIL import Image

from sqlalchemy import select

from coach import tenancy
from coach.booking import service as booking_service
from coach.accounts.models import User
from coach.extensions import db
from coach.orgs.models import Membership
from tests.booking_support import BookingWorld, make_offering
from tests.conftest import Auth
from tests.factories import add_member, make_org, make_user


@pytest.fixture()
def club(ctx):
    """Harbour Rowing: Ada the admin, Carla a coach, Sam an athlete; Other Club with its own admin."""
    ada = make_user("ada@example.com", "Ada Admin")
    org = make_org(ada, slug="harbour", name="Harbour Rowing")
    add_member(org, make_user("carla@example.com", "Carla Coach"), "coach")
    add_member(org, make_user("sam@example.com", "Sam Sculler"), "athlete")
    make_org(make_user("olga@example.com", "Olga Other"), slug="other", name="Other Club")
    db.session.commit()
    return org


def as_user(app, email: str):
    browser = app.test_client()
    assert Auth(browser).login(email).status_code == 303
    return browser


def nav_of(response):
    tree = lxml.html.document_fromstring(response.get_data(as_text=True))
    found = tree.xpath('//nav[@aria-label="Main"]')
    return found[0] if found else None


def labels(elements) -> list[str]:
    """What each element shows (text under a ``hidden`` element, such as a badge at 0, is not shown)."""
    shown = []
    for element in elements:
        element = copy.deepcopy(element)
        for hidden in element.xpath(".//*[@hidden]"):
            hidden.drop_tree()
        shown.append(" ".join(element.text_content().split()))
    return shown


def tabs(nav) -> list[str]:
    return labels(nav.xpath('.//ul[@class="tabs"]/li/a'))


def more(nav) -> list[str]:
    return labels(nav.xpath('.//details[contains(@class, "menu-more")]//a'))


def current(nav) -> list[str]:
    return labels(nav.xpath('.//*[@aria-current="page"]'))


def test_an_admin_sees_five_sections_and_the_rest_under_more_with_home_marked(app, club):
    nav = nav_of(as_user(app, "ada@example.com").get("/o/harbour/"))
    assert tabs(nav) == ["Home", "Feed", "Chat", "Sessions", "Media"]
    assert more(nav) == ["Spaces", "Athletes", "Coaches", "Book a session", "Billing", "Dashboard", "Members",
                         "Settings", "Audit", "System"]
    assert current(nav) == ["Home"]
    coaches = nav.xpath('.//a[normalize-space()="Coaches"]')[0]
    assert coaches.get("href") == "/o/harbour/coaches"  # the member search, not the booking list


def test_an_athlete_has_no_admin_entries_and_a_sub_page_marks_its_section(app, club):
    sam = as_user(app, "sam@example.com")
    nav = nav_of(sam.get("/o/harbour/chat"))
    assert current(nav) == ["Chat"]
    assert more(nav) == ["Spaces", "Progress", "Coaches", "Book a session", "Billing"]
    # The spaces list is under More: the entry is marked, and the More summary shows it is open on a page of it.
    nav = nav_of(sam.get("/o/harbour/spaces"))
    assert current(nav) == ["Spaces"]
    assert "is-current" in nav.xpath('.//details[contains(@class, "menu-more")]/summary')[0].get("class")
    nav = nav_of(sam.get("/o/harbour/bookings"))
    assert current(nav) == ["Sessions"]


def test_a_coach_finds_schedule_and_profile_under_more(app, club):
    nav = nav_of(as_user(app, "carla@example.com").get("/o/harbour/schedule"))
    assert more(nav)[:3] == ["Spaces", "Schedule", "My profile"]
    assert current(nav) == ["Schedule"]
    assert "Book a session" not in more(nav)


def coach_of(org, email: str):
    tenancy.activate(org.id)
    return db.session.scalars(select(Membership).join(User, User.id == Membership.user_id)
                              .where(Membership.tenant_id == org.id, User.email == email)).one()


def more_is_current(nav) -> bool:
    summary = nav.xpath('.//details[contains(@class, "menu-more")]/summary')[0]
    return summary.get("aria-current") == "true" and "is-current" in summary.get("class")


def test_the_schedules_pages_mark_schedule_whichever_address_they_came_by(app, club):
    """The calendars, an offering's form and planning a series hang off the Schedule, as do both its addresses."""
    carla = coach_of(club, "carla@example.com")
    coach_id = str(carla.id)
    browser = as_user(app, "carla@example.com")
    offering = make_offering(carla, title="Sculling basics")
    for path in ("/o/harbour/schedule", f"/o/harbour/coaches/{coach_id}/schedule", "/o/harbour/calendars",
                 f"/o/harbour/coaches/{coach_id}/calendars", f"/o/harbour/coaches/{coach_id}/offerings/new",
                 f"/o/harbour/offerings/{offering.id}/edit", f"/o/harbour/offerings/{offering.id}/series"):
        response = browser.get(path)
        assert response.status_code == 200, path
        nav = nav_of(response)
        assert current(nav) == ["Schedule"], path
        assert more_is_current(nav), path
    # An admin looking after the coach's schedule has no Schedule entry: More is still the open section.
    nav = nav_of(as_user(app, "ada@example.com").get(f"/o/harbour/coaches/{coach_id}/calendars"))
    assert current(nav) == [] and more_is_current(nav)


def test_the_directorys_pages_mark_where_they_are_reached_from(app, club):
    carla = coach_of(club, "carla@example.com")
    cora = add_member(club, make_user("cora@example.com", "Cora Cox"), "coach")
    browser = as_user(app, "carla@example.com")
    for path in (f"/o/harbour/coaches/{carla.id}/profile", f"/o/harbour/coaches/{carla.id}/reviews", "/o/harbour/profile"):
        assert current(nav_of(browser.get(path))) == ["My profile"], path
    for path in (f"/o/harbour/coaches/{cora.id}/profile", f"/o/harbour/coaches/{cora.id}/reviews"):
        assert current(nav_of(browser.get(path))) == ["Coaches"], path
    admin = as_user(app, "ada@example.com")
    nav = nav_of(admin.get("/o/harbour/admin/taxonomy"))
    assert current(nav) == ["Settings"] and more_is_current(nav)
    assert current(nav_of(admin.get(f"/o/harbour/coaches/{cora.id}/profile/edit"))) == ["Coaches"]
    # The reviews' queue is reached from the posts' moderation page, which is the Feed's.
    assert current(nav_of(admin.get("/o/harbour/moderation/reviews"))) == ["Feed"]
    assert current(nav_of(admin.get("/o/harbour/moderation"))) == ["Feed"]


def test_an_offerings_week_continues_book_a_session_unless_it_moves_a_booking(app, ctx):
    world = BookingWorld()
    tenancy.activate(world.org.id)
    booking = booking_service.request_booking(world.offering, world.athlete, world.first_slot(3).starts_at, "",
                                              world.athlete)
    db.session.commit()
    athlete = as_user(app, world.athlete.user.email)
    base = f"/o/{world.org.slug}"
    for path in (f"{base}/book", f"{base}/coaches/{world.coach.id}", f"{base}/offerings/{world.offering.id}"):
        nav = nav_of(athlete.get(path))
        assert current(nav) == ["Book a session"] and more_is_current(nav), path
    # Moving a booking starts from the booking (Sessions), and its week stays there.
    nav = nav_of(athlete.get(f"{base}/offerings/{world.offering.id}?reschedule={booking.id}"))
    assert current(nav) == ["Sessions"] and not more_is_current(nav)
    assert current(nav_of(athlete.get(f"{base}/bookings/{booking.id}"))) == ["Sessions"]


def test_the_account_menu_holds_profile_security_switching_and_log_out(app, club):
    nav = nav_of(as_user(app, "sam@example.com").get("/o/harbour/"))
    menu = nav.xpath('.//details[contains(@class, "menu-account")]')[0]
    summary = menu.xpath("./summary")[0]
    assert "SS" in summary.text_content() and "Sam Sculler" in summary.text_content()  # initials avatar + name
    assert labels(menu.xpath(".//a")) == ["Profile", "Security", "Notification settings", "Getting started",
                                         "Switch organization"]
    assert menu.xpath('.//form[@method="post"]//button[normalize-space()="Log out"]')
    assert "Platform" not in labels(menu.xpath(".//a"))
    # The bell stays in the bar, outside every menu.
    assert nav.xpath('./a[contains(@class, "bell")]//*[@id="notify-count"]')


def test_a_visitor_sees_find_a_coach_log_in_and_sign_up(client, ctx):
    nav = nav_of(client.get("/login"))
    assert labels(nav.xpath("./a"))[1:] == ["Find a coach", "Log in", "Sign up"]


# A fixed id (no such space): xdist's workers must collect the same test names.
@pytest.mark.parametrize("path", ["/o/harbour/no-such-page", "/o/harbour/spaces/0c0ffee0-0000-4000-8000-000000000404"])
def test_a_members_404_inside_the_org_keeps_its_navigation(app, club, path):
    response = as_user(app, "sam@example.com").get(path)
    assert response.status_code == 404
    nav = nav_of(response)
    assert tabs(nav) == ["Home", "Feed", "Chat", "Sessions", "Media"]
    assert "Harbour Rowing" in nav.text_content()
    back = lxml.html.document_fromstring(response.get_data(as_text=True)).xpath('//*[@id="error"]//a')[0]
    assert (back.text_content(), back.get("href")) == ("Back to Harbour Rowing", "/o/harbour/")


def test_a_members_403_keeps_the_navigation(app, club):
    response = as_user(app, "sam@example.com").get("/o/harbour/admin/members")
    assert response.status_code == 403
    assert tabs(nav_of(response)) == ["Home", "Feed", "Chat", "Sessions", "Media"]


@pytest.mark.parametrize("path", ["/o/harbour/", "/o/harbour/no-such-page"])
def test_a_strangers_404_names_no_organization(app, club, path):
    response = as_user(app, "olga@example.com").get(path)
    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert "Harbour Rowing" not in page
    assert tabs(nav_of(response)) == []
    assert "Go to the start page" in page


def test_the_manifest_names_the_app_and_its_icons_are_served_at_their_sizes(client, ctx):
    page = client.get("/login").get_data(as_text=True)
    head = lxml.html.document_fromstring(page).xpath("//head")[0]
    assert head.xpath('./link[@rel="icon"][@type="image/svg+xml"]')
    assert head.xpath('./link[@rel="apple-touch-icon"]')
    assert sorted(m.get("media") for m in head.xpath('./meta[@name="theme-color"]')) == [
        "(prefers-color-scheme: dark)", "(prefers-color-scheme: light)"]
    manifest_url = head.xpath('./link[@rel="manifest"]')[0].get("href")
    response = client.get(manifest_url)
    assert response.status_code == 200
    assert response.mimetype == "application/manifest+json"
    manifest = json.loads(response.get_data(as_text=True))
    assert (manifest["name"], manifest["start_url"], manifest["display"]) == ("Coach", "/", "standalone")
    assert manifest["theme_color"].startswith("#") and manifest["background_color"].startswith("#")
    purposes = set()
    for icon in manifest["icons"]:
        served = client.get(icon["src"])
        assert served.status_code == 200, icon["src"]
        width, height = Image.open(io.BytesIO(served.get_data())).size
        assert f"{width}x{height}" == icon["sizes"]
        purposes.add(icon["purpose"])
        served.close()
    assert {"192x192", "512x512"} <= {icon["sizes"] for icon in manifest["icons"]}
    assert purposes == {"any", "maskable"}
    svg = client.get(head.xpath('./link[@rel="icon"][@type="image/svg+xml"]')[0].get("href"))
    assert svg.status_code == 200 and b"<svg" in svg.get_data()


def test_favicon_ico_at_the_root_leads_to_an_icon(client, ctx):
    response = client.get("/favicon.ico", follow_redirects=True)
    assert response.status_code == 200
    assert Image.open(io.BytesIO(response.get_data())).format == "ICO"
