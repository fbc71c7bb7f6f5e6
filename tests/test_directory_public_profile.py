"""A listed coach's public profile (/coaches/<org>/<handle>) and the start of booking from it.

What a visitor sees is what the coach published, nothing of the organization's private rows (emails, meeting
links, places); an unlisted organization's coach and a coach who opted out are the same 404 as an unknown address;
a free time leads to signing up, joining or the organization's booking form, and a taken one says so.
"""
from __future__ import annotations

import re
from datetime import timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest

from coach import clock, tenancy
from coach.booking.models import Offering
from coach.directory import public as listed
from coach.directory import reviews
from coach.extensions import db
from tests.conftest import csrf_from
from tests.directory_support import DirectoryWorld
from tests.factories import PASSWORD, make_user, media_row
from tests.querycount import statements_for

MARIA = "/coaches/river/maria-santos"
SLOT_LINK = re.compile(r'href="(/coaches/river/maria-santos/book\?[^"]+)"')


@pytest.fixture()
def world(ctx):
    world = DirectoryWorld()
    world.publish()
    return world


def log_in(client, email: str):
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"csrf_token": token, "email": email, "password": PASSWORD})
    assert response.status_code == 303, response.get_data(as_text=True)[:500]


def utc(value) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def first_slot(world, offering=None):
    tenancy.activate(world.org.id)
    now = clock.now()
    return listed.next_slots(offering or world.aim, now)[0].starts_at


def book_path(world, start, offering=None) -> str:
    return f"{MARIA}/book?offering={(offering or world.aim).id}&start={utc(start)}"


# --- the profile ---------------------------------------------------------------------------------------------

def test_profile_shows_what_the_coach_published_and_nothing_private(client, world):
    response = client.get(MARIA)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    for shown in ("Maria Santos", "Valorant aim coach for ranked climbers", "crosshair placement", "Verified",
                  "Aim review", "€45.00", "60 min", "Online", "River Academy", "Valorant", "Aim", "Controller",
                  "English", "Spanish", "6 years", "Times are in <strong>UTC</strong>"):
        assert shown in html, shown
    # The organization's private rows stay private: the coach's email, the meeting link, other members.
    for hidden in ("maria@example.com", "meet.example.com", "Ana Alves", "ada@example.com"):
        assert hidden not in html, hidden
    # Found by search engines under one address, with a description.
    assert '<link rel="canonical" href="http://localhost/coaches/river/maria-santos">' in html
    assert '<meta name="description" content="Valorant aim coach for ranked climbers — Maria Santos coaches with' in html
    assert '<meta property="og:title" content="Maria Santos — Valorant aim coach for ranked climbers">' in html


def test_profile_lists_the_next_free_times_each_linking_to_its_booking(client, world):
    html = client.get(MARIA).get_data(as_text=True)
    links = SLOT_LINK.findall(html)
    assert 1 <= len(links) <= listed.SLOTS_SHOWN
    first = parse_qs(urlsplit(links[0].replace("&amp;", "&")).query)
    assert first["offering"] == [str(world.aim.id)]
    assert first["start"] == [utc(first_slot(world))]


def test_profile_shows_times_in_the_visitors_zone_and_says_which(client, world):
    html = client.get(f"{MARIA}?tz=Europe/Berlin").get_data(as_text=True)
    assert "Times are in <strong>Europe/Berlin</strong>" in html
    start = first_slot(world)
    assert start.astimezone(listed.booking.zone("Europe/Berlin")).strftime("%H:%M") in html
    # A zone that is none is said, and UTC is used.
    html = client.get(f"{MARIA}?tz=Atlantis").get_data(as_text=True)
    assert "Times are in UTC." in html and "Times are in <strong>UTC</strong>" in html


def test_signed_in_visitor_sees_times_in_their_own_zone(client, world):
    make_user("lee@example.com", "Lee Tokyo", tz="Asia/Tokyo")
    log_in(client, "lee@example.com")
    html = client.get(MARIA).get_data(as_text=True)
    assert "Times are in <strong>Asia/Tokyo</strong> (your time zone)" in html


def test_unlisted_organizations_coach_is_the_same_404_as_an_unknown_address(client, world):
    unknown = client.get("/coaches/river/nobody-here")
    hill = client.get("/coaches/hill/yara-young")
    assert unknown.status_code == hill.status_code == 404
    assert "Yara" not in hill.get_data(as_text=True) and "Hill Club" not in hill.get_data(as_text=True)
    assert client.get("/coaches/hill/yara-young/photo").status_code == 404
    tenancy.activate(world.hill.id)
    yara_offering = world.yara_offering.id
    assert client.get(f"/coaches/hill/yara-young/book?offering={yara_offering}"
                      f"&start={utc(clock.now() + timedelta(days=2))}").status_code == 404


def test_a_coach_who_opted_out_is_404_at_once_even_before_the_projection_catches_up(client, world):
    tenancy.activate(world.org.id)
    world.maria_profile.listed = False
    db.session.commit()
    assert client.get(MARIA).status_code == 404
    world.publish()  # the projection removes the listing too
    assert client.get(MARIA).status_code == 404
    assert client.get("/coaches/river/jon-berg").status_code == 200


def test_an_organization_that_stops_listing_takes_its_profiles_down(client, world):
    tenancy.activate(world.org.id)
    world.org.listed_publicly = False
    db.session.commit()
    assert client.get(MARIA).status_code == 404
    assert client.get("/coaches/river/jon-berg").status_code == 404


def test_photo_redirects_briefly_to_a_signed_thumbnail_and_is_404_without_one(client, world):
    assert client.get(f"{MARIA}/photo").status_code == 404
    tenancy.activate(world.org.id)
    item = media_row(world.org.id, world.maria, title="Portrait", audience="staff")
    item.kind, item.derived_keys = "image", {"thumb": f"{world.org.id}/portrait/thumb.webp"}
    db.session.flush()
    world.maria_profile.photo_media_id = item.id
    db.session.commit()
    response = client.get(f"{MARIA}/photo")
    assert response.status_code == 302
    assert "portrait/thumb.webp" in response.headers["Location"]
    assert response.headers["Cache-Control"] == "public, max-age=300"
    html = client.get(MARIA).get_data(as_text=True)
    assert 'class="profile-photo"' in html and 'alt="Maria Santos"' in html



def test_the_intro_video_plays_from_a_signed_url_with_its_poster(client, world):
    tenancy.activate(world.org.id)
    video = media_row(world.org.id, world.maria, title="Hello from Maria", audience="staff")
    video.derived_keys = {"playback": f"{world.org.id}/intro/playback.mp4", "poster": f"{world.org.id}/intro/poster.jpg"}
    draft = media_row(world.org.id, world.maria, title="Not ready", status="processing")
    db.session.flush()
    world.maria_profile.intro_media_id = video.id
    db.session.commit()
    html = client.get(MARIA).get_data(as_text=True)
    player = re.search(r"<video[^>]*>", html).group(0)
    assert "intro/playback.mp4" in player and "intro/poster.jpg" in player
    # A video not ready yet is not shown (nothing would play).
    world.maria_profile.intro_media_id = draft.id
    db.session.commit()
    assert "<video" not in client.get(MARIA).get_data(as_text=True)

# --- starting a booking ------------------------------------------------------------------------------------

def test_a_visitor_gets_the_sign_up_form_and_a_log_in_link_that_comes_back(client, world):
    start = first_slot(world)
    response = client.get(book_path(world, start))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Create your account to book" in html
    assert "Aim review with" in html and "€45.00" in html
    for label in ("Your name", "Email", "Password", "Time zone"):
        assert f">{label}</label>" in html, label
    login = re.search(r'href="(/login\?next=[^"]+)"', html).group(1).replace("&amp;", "&")
    assert parse_qs(urlsplit(login).query)["next"] == [book_path(world, start)]


def test_a_signed_in_non_member_is_offered_to_join_as_an_athlete(client, world):
    make_user("nia@example.com", "Nia New")
    log_in(client, "nia@example.com")
    html = client.get(book_path(world, first_slot(world))).get_data(as_text=True)
    assert "Join River Academy as an athlete to book" in html
    assert 'action="/coaches/river/maria-santos/join"' in html and 'name="idempotency_key"' in html


def test_a_member_athlete_goes_straight_to_the_organizations_booking_form(client, world):
    start = first_slot(world)
    log_in(client, "ana@example.com")
    response = client.get(book_path(world, start))
    assert response.status_code == 302
    assert response.headers["Location"] == f"/o/river/offerings/{world.aim.id}/book?start={utc(start)}"
    form = client.get(response.headers["Location"])
    assert form.status_code == 200 and "Book this time" in form.get_data(as_text=True)


def test_a_coach_of_the_organization_is_told_they_cannot_book_here(client, world):
    log_in(client, "kim@example.com")
    response = client.get(book_path(world, first_slot(world)))
    assert response.status_code == 200
    assert "You are a coach of River Academy" in response.get_data(as_text=True)


def test_unknown_foreign_or_archived_offerings_are_404(client, world):
    start = utc(first_slot(world))
    assert client.get(f"{MARIA}/book?offering=not-a-uuid&start={start}").status_code == 404
    assert client.get(f"{MARIA}/book?start={start}").status_code == 404
    # Jon's offering, asked for on Maria's page.
    assert client.get(f"{MARIA}/book?offering={world.serve.id}&start={start}").status_code == 404
    tenancy.activate(world.org.id)
    db.session.get(Offering, world.aim.id).active = False
    db.session.commit()
    assert client.get(f"{MARIA}/book?offering={world.aim.id}&start={start}").status_code == 404


@pytest.mark.parametrize("start", ["", "tomorrow", "2026-13-45T10:00:00Z", "2026-12-20T10:00:00",
                                   "99999-01-01T00:00:00Z", "%00", "'; DROP TABLE bookings; --"])
def test_an_unreadable_start_is_a_400_with_a_message(client, world, start):
    response = client.get(f"{MARIA}/book", query_string={"offering": str(world.aim.id), "start": start})
    assert response.status_code == 400
    assert "That time is not valid" in response.get_data(as_text=True)


def test_a_start_in_the_past_is_a_400_saying_so(client, world):
    response = client.get(book_path(world, clock.now() - timedelta(hours=3)))
    assert response.status_code == 400
    assert "That time has passed" in response.get_data(as_text=True)


def test_a_taken_time_says_so_and_offers_the_next_free_ones(client, world):
    start = first_slot(world)
    world.write_booking(world.maria, world.aim, world.ben, start, "confirmed")
    db.session.commit()
    response = client.get(book_path(world, start))
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "This time is no longer free" in html and "Choose another" in html
    assert "Create your account" not in html  # never a form that would fail
    offered = [parse_qs(urlsplit(link.replace("&amp;", "&")).query)["start"][0] for link in SLOT_LINK.findall(html)]
    assert offered and utc(start) not in offered
    # A time that never was free (the middle of the night in Berlin) is taken too.
    night = start.replace(hour=1, minute=7) + timedelta(days=1)
    assert client.get(book_path(world, night)).status_code == 409


# --- reviews ------------------------------------------------------------------------------------------------

def review(world, stars: int, body: str, hours_ago: int):
    """Ana's (or Ben's) review of a session with Maria that ended ``hours_ago`` hours ago."""
    athlete = world.ana if hours_ago % 2 else world.ben
    start = clock.now().replace(microsecond=0) - timedelta(hours=hours_ago + 1)
    booking = world.write_booking(world.maria, world.aim, athlete, start, "ended")
    return reviews.write_review(booking, athlete, stars, body)


def test_visible_reviews_are_shown_and_hidden_ones_are_not(client, world):
    tenancy.activate(world.org.id)
    kept = reviews.write_review(world.ended, world.ana, 5, "Fixed my crosshair in one hour.")
    hidden = review(world, 1, "Rude words that a moderator hid.", 30)
    reviews.reply(kept, world.maria, "Thanks Ana, see you next week!")
    reviews.hide(hidden, world.admin, "Abusive")
    db.session.commit()
    html = client.get(MARIA).get_data(as_text=True)
    assert "Fixed my crosshair in one hour." in html and "Thanks Ana, see you next week!" in html
    assert "Ana A." in html and "Ana Alves" not in html  # a visitor sees a first name and an initial
    assert "Rude words" not in html
    assert "5.0" in html and "1 review" in html  # the hidden review left the counts too
    assert 'role="img"' in html  # the rating chart


def test_more_reviews_come_a_page_at_a_time(client, world):
    tenancy.activate(world.org.id)
    for n in range(7):
        review(world, 4, f"Session number {n} was useful.", 10 + n)
        db.session.commit()  # one after the other: each is newer than the one before
    html = client.get(MARIA).get_data(as_text=True)
    shown = [n for n in range(7) if f"Session number {n} was useful." in html]
    assert shown == [2, 3, 4, 5, 6]  # the newest five
    more = re.search(r'href="(/coaches/river/maria-santos/reviews\?[^"]+)"', html).group(1).replace("&amp;", "&")
    fragment = client.get(more, headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    rest = fragment.get_data(as_text=True)
    assert "<html" not in rest
    assert "Session number 1 was useful." in rest and "Session number 0 was useful." in rest
    assert "Session number 2 was useful." not in rest
    # Without JavaScript the same link opens the profile at that page.
    page = client.get(more).get_data(as_text=True)
    assert "<html" in page and "Session number 0 was useful." in page and "Book Maria" in page


def test_an_in_person_offering_says_so_without_giving_the_place(client, world):
    html = client.get("/coaches/river/jon-berg").get_data(as_text=True)
    assert "Serve clinic" in html and "€80.00" in html and "In person" in html
    assert "Court 3" not in html and "jon@example.com" not in html


# --- bad input and cost -------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/coaches/river/" + "m" * 10_000,
    "/coaches/" + "r" * 10_000 + "/maria-santos",
    "/coaches/river/maria-santos'; DROP TABLE users; --",
    "/coaches/river/maria-santos/book?offering=" + "f" * 10_000 + "&start=2030-01-01T10:00:00Z",
    "/coaches/river/MARIA-SANTOS",
])
def test_odd_addresses_are_404_not_errors(client, world, path):
    assert client.get(path).status_code == 404


def test_odd_query_values_are_answered_not_errors(client, world):
    assert client.get(f"{MARIA}?tz={'x' * 10_000}").status_code == 200
    assert client.get(f"{MARIA}?cursor={'%00' * 50}&order=%27%29%3B").status_code == 200
    response = client.get(f"{MARIA}/book", query_string={"offering": str(world.aim.id), "start": "1" * 10_000})
    assert response.status_code == 400


def test_the_profile_costs_the_same_statements_however_many_reviews(app, client, world):
    tenancy.activate(world.org.id)
    review(world, 5, "First.", 10)
    db.session.commit()
    few = statements_for(app, client, MARIA)
    for n in range(6):
        review(world, 4, f"More {n}.", 20 + n)
        db.session.commit()
    assert statements_for(app, client, MARIA) == few
