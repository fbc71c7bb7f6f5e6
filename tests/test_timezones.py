"""Time zones right from the first click: the zone suggested from the browser's language, the searchable picker
(what it accepts and what it refuses), the zone saved at sign-up, invitation, organization creation and in the
profile; the week calendar's ``?tz=`` switcher and the 12/24-hour clock remembered per member."""
from __future__ import annotations

import html
import re
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from coach import clock, tenancy
from coach.accounts.service import update_profile
from coach.extensions import db
from coach.orgs.models import ATHLETE, COACH
from coach.timezones import (
    EMPTY,
    UNKNOWN,
    UnknownTimezone,
    clock_time,
    offset_label,
    parse_timezone,
    suggest_from_accept_language,
)
from tests.booking_support import BookingWorld, make_offering, open_every_day
from tests.conftest import Auth, csrf_from
from tests.factories import PASSWORD, add_member, make_org, make_user
from tests.test_orgs import invite

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
HX = {"HX-Request": "true"}
SLOT_RE = re.compile(r'<a class="slot" href="([^"]+)"\s+data-start="([^"]+)">([^<]+?)(?: <small>|</a>)')


def text(response) -> str:
    return response.get_data(as_text=True)


def logged_in(app, email: str):
    browser = app.test_client()
    assert Auth(browser).login(email).status_code == 303
    return browser


def zone_box(page: str, name: str = "timezone") -> dict[str, str]:
    """The picker's text box: its attributes."""
    match = re.search(rf'<input ([^>]*\bname="{name}"[^>]*)>', page)
    assert match, f"no {name} box"
    return {k: html.unescape(v) for k, v in re.findall(r'([\w-]+)="([^"]*)"', match.group(1))}


def slots(page: str) -> list[tuple[str, str]]:
    """(UTC start, label) of every slot link of a week."""
    return [(start, label) for _href, start, label in SLOT_RE.findall(page)]


# --- the suggestion from Accept-Language ---------------------------------------------------------------

@pytest.mark.parametrize("header, zone", [
    ("en-GB", "Europe/London"),
    ("de-DE", "Europe/Berlin"),
    ("de-DE,de;q=0.9,en;q=0.8", "Europe/Berlin"),
    ("en-US,en;q=0.9", "America/New_York"),  # a country of many zones: the one most people live in
    ("pt-BR", "America/Sao_Paulo"),
    ("fr-CA;q=0.5, ja-JP", "Asia/Tokyo"),  # the preferred one, not the first written
    ("zh-Hant-TW", "Asia/Taipei"),
    ("en_AU", "Australia/Sydney"),
    ("de", None),  # a language without a region says nothing about where one is
    ("de,en-US;q=0.7", None),  # nor does the second choice of someone who reads German first
    ("es-419", None),  # Latin America: a region of many countries
    ("en-ZZ", None),
    ("*", None),
    ("", None),
    (None, None),
    (";;;,q=,,=", None),
    ("\x00\xff-GB", None),
    ("en-GB;q=abc", None),
    ("x" * 5000, None),
])
def test_accept_language_suggests_the_zone_of_the_preferred_languages_region(header, zone):
    assert suggest_from_accept_language(header) == zone


# --- the picker's parsing ------------------------------------------------------------------------------

@pytest.mark.parametrize("typed, zone", [
    ("Europe/Berlin", "Europe/Berlin"),
    ("europe/berlin", "Europe/Berlin"),
    ("EUROPE/BERLIN", "Europe/Berlin"),
    ("berlin", "Europe/Berlin"),  # a city alone, when one zone has it
    ("  Berlin ", "Europe/Berlin"),
    ("America/New York", "America/New_York"),  # spaces for underscores
    ("new york", "America/New_York"),
    ("Europe/Berlin (UTC+01:00)", "Europe/Berlin"),  # the picker's label, offset and all
    ("utc", "UTC"),
    ("Kyiv", "Europe/Kyiv"),
])
def test_the_picker_reads_a_zone_in_any_case_with_spaces_or_a_city_alone(typed, zone):
    assert parse_timezone(typed) == zone


@pytest.mark.parametrize("reported, zone", [
    ("Asia/Calcutta", "Asia/Kolkata"),  # what Chromium reports in India
    ("Europe/Kiev", "Europe/Kyiv"),
    ("Asia/Saigon", "Asia/Ho_Chi_Minh"),
    ("America/Buenos_Aires", "America/Argentina/Buenos_Aires"),
    ("US/Eastern", "America/New_York"),
    ("calcutta", "Asia/Kolkata"),
    ("Etc/UTC", "UTC"),
    ("GMT", "UTC"),
    ("Etc/Zulu", "UTC"),
    ("Asia/Kolkata", "Asia/Kolkata"),
    ("Europe/Oslo", "Europe/Oslo"),  # tzdata links it to Berlin (same clocks), but it is Norway's own zone
    ("Europe/Stockholm", "Europe/Stockholm"),
    ("Europe/Amsterdam", "Europe/Amsterdam"),
])
def test_an_old_name_of_a_zone_is_kept_under_its_current_name(reported, zone):
    assert parse_timezone(reported) == zone


def test_the_pickers_list_marks_old_names_with_the_current_one_for_the_browsers_zone(client):
    """timezone.js fills the browser's zone; an old name's option says which name to fill instead."""
    page = text(client.get("/signup"))
    assert re.search(r'<option value="Asia/Calcutta" data-current="Asia/Kolkata">', page)
    assert re.search(r'<option value="Europe/Kiev" data-current="Europe/Kyiv">', page)
    assert re.search(r'<option value="Europe/Oslo">', page)  # a country's own zone is no old name
    assert re.search(r'<option value="Asia/Kolkata">', page)


@pytest.mark.parametrize("typed, message", [
    ("", EMPTY),
    ("   ", EMPTY),
    (None, EMPTY),
    ("Mars/Olympus_Mons", UNKNOWN),
    ("Berlin, Germany", UNKNOWN),
    ("x" * 10_000, UNKNOWN),
    ("Europe/Berlin\x00", UNKNOWN),
])
def test_the_picker_refuses_what_names_no_zone(typed, message):
    with pytest.raises(UnknownTimezone) as refused:
        parse_timezone(typed)
    assert str(refused.value) == message


def test_an_ambiguous_city_names_the_zones_to_choose_from():
    with pytest.raises(UnknownTimezone) as refused:
        parse_timezone("indianapolis")
    assert str(refused.value) == ("Several time zones are called indianapolis: America/Indiana/Indianapolis, "
                                  "America/Indianapolis. Choose one.")


@pytest.mark.parametrize("hour, minute, twelve, twenty_four", [
    (14, 30, "2:30 pm", "14:30"), (0, 5, "12:05 am", "00:05"), (12, 0, "12:00 pm", "12:00"),
    (9, 0, "9:00 am", "09:00"), (23, 59, "11:59 pm", "23:59"),
])
def test_clock_times_on_a_12_and_a_24_hour_clock(hour, minute, twelve, twenty_four):
    at = datetime(2026, 12, 7, hour, minute, tzinfo=UTC)
    assert (clock_time(at, 12), clock_time(at, 24)) == (twelve, twenty_four)


# --- sign-up -------------------------------------------------------------------------------------------

def test_sign_up_suggests_the_zone_of_the_browsers_language_region_without_javascript(client):
    page = text(client.get("/signup", headers={"Accept-Language": "en-GB,en;q=0.9"}))

    box = zone_box(page)
    assert box["value"] == "Europe/London" and box["data-tz-preset"] == "Europe/London"
    assert box["list"] == "timezone-zones"
    assert "Suggested from your browser&#39;s language" in page
    # The searchable list: every zone labelled with its offset today, no 400-option select.
    assert f'<option value="Europe/Berlin">Europe/Berlin ({offset_label("Europe/Berlin")})</option>' in page
    assert '<datalist id="timezone-zones">' in page and '<select' not in page.split('id="signup-form"')[1]


@pytest.mark.parametrize("header", ["de", "", ";;;garbage,,", "x" * 3000])
def test_sign_up_without_a_region_keeps_utc_and_says_so(client, header):
    page = text(client.get("/signup", headers={"Accept-Language": header}))
    assert zone_box(page)["value"] == "UTC"
    assert "Times will show in UTC. Choose your zone." in page


def test_sign_up_saves_the_zone_the_browser_posted(client, owner_db, mailbox):
    page = text(client.get("/signup", headers={"Accept-Language": "en-GB"}))
    # timezone.js put the browser's own zone in the box.
    response = client.post("/signup", data={"csrf_token": csrf_from(page), "display_name": "Grace Hopper",
                                            "email": "grace@example.com", "password": PASSWORD,
                                            "timezone": "America/New_York"})
    assert response.status_code == 303
    assert owner_db.execute("SELECT timezone FROM pending_signups WHERE email = 'grace@example.com'"
                            ).fetchone()[0] == "America/New_York"
    # Chromium in India reports the zone's old name: the account gets the current one.
    client.post("/signup", data={"csrf_token": csrf_from(page), "display_name": "Anil Kumar",
                                 "email": "anil@example.com", "password": PASSWORD, "timezone": "Asia/Calcutta"})
    assert owner_db.execute("SELECT timezone FROM pending_signups WHERE email = 'anil@example.com'"
                            ).fetchone()[0] == "Asia/Kolkata"


def test_sign_up_takes_a_city_typed_in_any_case(client, owner_db, mailbox):
    page = text(client.get("/signup"))
    response = client.post("/signup", data={"csrf_token": csrf_from(page), "display_name": "Grace Hopper",
                                            "email": "grace@example.com", "password": PASSWORD,
                                            "timezone": "  sao paulo "})
    assert response.status_code == 303
    assert owner_db.execute("SELECT timezone FROM pending_signups").fetchone()[0] == "America/Sao_Paulo"


@pytest.mark.parametrize("typed, message", [
    ("x" * 10_000, "know that time zone. Try a city, like Europe/Paris."),
    ("", "Choose a time zone, like Europe/Paris."),
    ("Indianapolis", "Several time zones are called Indianapolis: America/Indiana/Indianapolis, "
                     "America/Indianapolis. Choose one."),
    ("Atlantis", "know that time zone. Try a city, like Europe/Paris."),
])
def test_sign_up_refuses_an_unknown_zone_with_a_message_and_keeps_nothing(client, owner_db, typed, message):
    page = text(client.get("/signup"))
    response = client.post("/signup", data={"csrf_token": csrf_from(page), "display_name": "Grace Hopper",
                                            "email": "grace@example.com", "password": PASSWORD,
                                            "timezone": typed}, headers=HX)
    assert response.status_code == 422
    assert message in text(response) and "<html" not in text(response)
    assert zone_box(text(response)).get("data-tz-preset") is None  # what was typed is the person's choice
    assert owner_db.execute("SELECT count(*) FROM pending_signups").fetchone()[0] == 0


# --- invitation sign-up, organization creation, profile ----------------------------------------------

@pytest.fixture()
def club(ctx):
    return make_org(make_user("ada@example.com", "Ada Admin"), slug="harbour", name="Harbour Rowing")


def test_invitation_sign_up_suggests_a_zone_and_saves_the_one_chosen(app, client, club, owner_db, mailbox):
    link = invite(app, mailbox, "harbour", "nina@example.com")
    page = text(client.get(link, headers={"Accept-Language": "de-DE,de;q=0.9"}))
    assert zone_box(page)["value"] == "Europe/Berlin"
    assert zone_box(page)["data-tz-preset"] == "Europe/Berlin"

    response = client.post(link + "/signup", data={"csrf_token": csrf_from(page), "display_name": "Nina",
                                                   "password": PASSWORD, "timezone": "oslo"})
    assert response.status_code == 303
    assert owner_db.execute("SELECT timezone FROM users WHERE email = 'nina@example.com'").fetchone()[0] == \
        "Europe/Oslo"


def test_invitation_sign_up_with_an_unknown_zone_says_so_and_joins_no_one(app, client, club, owner_db, mailbox):
    link = invite(app, mailbox, "harbour", "nina@example.com")
    page = text(client.get(link))
    assert "Times will show in UTC. Choose your zone." in page
    response = client.post(link + "/signup", data={"csrf_token": csrf_from(page), "display_name": "Nina",
                                                   "password": PASSWORD, "timezone": "Middle/Earth"})
    assert response.status_code == 422
    assert "Try a city, like Europe/Paris." in text(response)
    assert owner_db.execute("SELECT count(*) FROM users WHERE email = 'nina@example.com'").fetchone()[0] == 0


def test_a_new_organization_starts_in_its_creators_zone_and_takes_a_city(app, ctx, owner_db):
    make_user("mia@example.com", "Mia", tz="Asia/Tokyo")
    mia = logged_in(app, "mia@example.com")
    page = text(mia.get("/orgs/new", headers={"Accept-Language": "en-GB"}))
    assert zone_box(page)["value"] == "Asia/Tokyo"  # what Mia chose before beats her browser's language

    response = mia.post("/orgs/new", data={"csrf_token": csrf_from(page), "name": "Lisbon Lions",
                                           "slug": "lions", "timezone": "lisbon"})
    assert response.status_code == 303
    assert owner_db.execute("SELECT timezone FROM organizations WHERE slug = 'lions'").fetchone()[0] == \
        "Europe/Lisbon"


def test_a_creator_in_utc_gets_the_browsers_suggestion(app, ctx):
    make_user("mia@example.com", "Mia", tz="UTC")
    page = text(logged_in(app, "mia@example.com").get("/orgs/new", headers={"Accept-Language": "fr-FR"}))
    assert zone_box(page)["value"] == "Europe/Paris"


def test_the_profile_uses_the_same_picker(app, ctx, owner_db):
    make_user("ada@example.com", "Ada")
    ada = logged_in(app, "ada@example.com")
    page = text(ada.get("/profile"))
    assert zone_box(page)["value"] == "Europe/Berlin" and "data-tz-preset" not in zone_box(page)
    assert '<datalist id="timezone-zones">' in page

    saved = ada.post("/profile", data={"csrf_token": csrf_from(page), "display_name": "Ada",
                                       "timezone": "AMERICA/LOS ANGELES"})
    assert saved.status_code == 303
    assert owner_db.execute("SELECT timezone FROM users WHERE email = 'ada@example.com'").fetchone()[0] == \
        "America/Los_Angeles"


# --- the week calendar: ?tz= and the hour toggle ---------------------------------------------------------

def winter_monday() -> date:
    """A Monday in January: Berlin (UTC+1), London (UTC+0) and New York (UTC-5) on winter time."""
    january = date(clock.now().year + 1, 1, 12)
    return january - timedelta(days=january.weekday())


@pytest.fixture()
def world(ctx):
    return BookingWorld(horizon_days=730)


def calendar_path(world) -> str:
    return f"/o/{world.org.slug}/offerings/{world.offering.id}"


def test_tz_switches_the_times_shown_a_berlin_nine_oclock_is_eight_in_london(app, world):
    athlete = logged_in(app, world.athlete.user.email)
    monday = winter_monday()

    typed = athlete.get(f"{calendar_path(world)}?week={monday}&tz=europe/london")
    # The address names the zone as the page does (a link copied from the bar reads Europe/London).
    assert typed.status_code == 302
    assert typed.headers["Location"] == f"{calendar_path(world)}?week={monday}&tz=Europe/London"
    page = text(athlete.get(typed.headers["Location"]))

    assert "Times in <strong>Europe/London</strong> (GMT) · your time zone is Europe/Berlin" in page
    assert "the coach is in Europe/Berlin" in page
    first = next((start, label) for start, label in slots(page) if start.startswith(monday.isoformat()))
    assert first == (f"{monday}T08:00:00Z", "08:00")  # 09:00 in Berlin
    assert zone_box(page, "tz")["value"] == "Europe/London"
    # The week's links keep the zone: the next week and the slot's booking page.
    assert f"week={monday + timedelta(days=7)}&amp;tz=Europe/London" in page or \
        f"tz=Europe/London&amp;week={monday + timedelta(days=7)}" in page
    book_link = html.unescape(re.search(r'<a class="slot" href="([^"]+)"', page).group(1))
    assert "tz=Europe/London" in book_link
    book = text(athlete.get(book_link))
    assert re.search(r"08:00–09:00 GMT <span class=\"muted\">\(Europe/London\)</span>", book)
    assert "09:00–10:00 CET for Carla Coach (Europe/Berlin)" in book


@pytest.mark.parametrize("asked", ["tokyo", "asia/tokyo", "Asia/Tokyo"])
def test_the_switchers_pushed_address_names_the_zone_as_the_page_does(app, world, asked):
    athlete = logged_in(app, world.athlete.user.email)
    monday = winter_monday()
    swapped = athlete.get(calendar_path(world), headers={**HX, "HX-Target": "calendar"},
                          query_string={"week": monday.isoformat(), "tz": asked})
    assert swapped.status_code == 200 and "<html" not in text(swapped)
    assert "Times in <strong>Asia/Tokyo</strong>" in text(swapped)
    if asked == "Asia/Tokyo":  # already as the page names it: htmx pushes the address it asked for
        assert "HX-Push-Url" not in swapped.headers
    else:
        assert swapped.headers["HX-Push-Url"] == f"{calendar_path(world)}?week={monday}&tz=Asia/Tokyo"


def test_an_old_zone_name_in_the_address_becomes_its_current_one(app, world):
    athlete = logged_in(app, world.athlete.user.email)
    typed = athlete.get(calendar_path(world), query_string={"tz": "Asia/Calcutta"})
    assert typed.status_code == 302 and typed.headers["Location"] == f"{calendar_path(world)}?tz=Asia/Kolkata"
    page = text(athlete.get(typed.headers["Location"]))
    assert "Times in <strong>Asia/Kolkata</strong>" in page


def test_without_tz_the_week_is_in_the_members_zone_and_names_it(app, world):
    page = text(logged_in(app, world.athlete.user.email).get(f"{calendar_path(world)}?week={winter_monday()}"))
    assert "Times in <strong>Europe/Berlin</strong> (CET), your time zone." in page
    assert "the coach is in" not in page
    assert slots(page)[0][1] == "09:00"


@pytest.mark.parametrize("asked", ["Mars/Olympus", "indianapolis", "x" * 10_000, "%00", "Europe/Berlin\x01"])
def test_an_unknown_tz_shows_the_members_zone_with_a_notice(app, world, asked):
    athlete = logged_in(app, world.athlete.user.email)
    response = athlete.get(calendar_path(world), query_string={"week": winter_monday().isoformat(), "tz": asked})
    page = text(response)
    assert response.status_code == 200
    assert "Times are in your own zone, Europe/Berlin." in page
    assert "Times in <strong>Europe/Berlin</strong> (CET), your time zone." in page
    assert slots(page)[0][1] == "09:00"


def second_coach_at_half_past_two(world):
    """Otto Othercoach (Berlin, 14:30–15:30 daily) and his 60-minute offering: one slot a day at 14:30."""
    otto = add_member(world.org, make_user("otto@example.com", "Otto Othercoach"), COACH)
    open_every_day(otto, "14:30", "15:30", tz="Europe/Berlin")
    return make_offering(otto, title="Afternoon session", horizon_days=730)


def test_the_hour_toggle_persists_and_shows_half_past_two_as_2_30_pm(app, world, owner_db):
    offering = second_coach_at_half_past_two(world)
    athlete = logged_in(app, world.athlete.user.email)
    path = f"/o/{world.org.slug}/offerings/{offering.id}"
    monday = winter_monday()
    page = text(athlete.get(f"{path}?week={monday}"))
    assert {label for _, label in slots(page)} == {"14:30"}

    # Without JavaScript: a plain POST, back to the same week.
    toggled = athlete.post(f"{path}/clock", data={"csrf_token": csrf_from(page), "hour_cycle": "12",
                                                  "week": monday.isoformat()})
    assert toggled.status_code == 303
    assert toggled.headers["Location"] == f"{path}?week={monday}"
    assert owner_db.execute("SELECT hour_cycle FROM users WHERE id = %s",
                            (world.athlete.user.id,)).fetchone()[0] == 12
    page = text(athlete.get(toggled.headers["Location"]))
    assert {label for _, label in slots(page)} == {"2:30 pm"}
    assert "24-hour clock (14:30)" in page  # the way back

    # Remembered: another browser of the same member sees the 12-hour clock.
    again = logged_in(app, world.athlete.user.email)
    assert {label for _, label in slots(text(again.get(f"{path}?week={monday}")))} == {"2:30 pm"}

    # With htmx: the week in place, in the zone it showed.
    back = athlete.post(f"{path}/clock", headers={**HX, "HX-Target": "calendar"},
                        data={"csrf_token": csrf_from(page), "hour_cycle": "24", "week": monday.isoformat(),
                              "tz": "Europe/London"})
    assert back.status_code == 200 and "<html" not in text(back)
    assert '<section class="card calendar" id="calendar"' in text(back)
    assert {label for _, label in slots(text(back))} == {"13:30"}
    assert "Times in <strong>Europe/London</strong>" in text(back)


def test_the_booking_page_follows_the_members_clock_and_names_both_zones(app, world):
    offering = second_coach_at_half_past_two(world)
    tenancy.activate(world.org.id)
    update_profile(world.athlete.user, "Arno Athlete", "America/New_York")
    world.athlete.user.hour_cycle = 12
    db.session.commit()
    athlete = logged_in(app, world.athlete.user.email)
    monday = winter_monday()
    page = text(athlete.get(f"/o/{world.org.slug}/offerings/{offering.id}?week={monday}"))
    start = slots(page)[0]
    assert start[1] == "8:30 am"  # 14:30 in Berlin
    book = text(athlete.get(html.unescape(re.search(r'<a class="slot" href="([^"]+)"', page).group(1))))
    assert "8:30 am–9:30 am EST" in book
    assert "2:30 pm–3:30 pm CET for Otto Othercoach (Europe/Berlin)" in book


def test_a_bad_hour_cycle_is_refused_and_changes_nothing(app, world, owner_db):
    athlete = logged_in(app, world.athlete.user.email)
    page = text(athlete.get(calendar_path(world)))
    for value in ("13", "", "twelve", "1" * 5000):
        refused = athlete.post(f"{calendar_path(world)}/clock", data={"csrf_token": csrf_from(page),
                                                                     "hour_cycle": value})
        assert refused.status_code == 400
    missing_token = athlete.post(f"{calendar_path(world)}/clock", data={"hour_cycle": "12"})
    assert missing_token.status_code == 400
    assert owner_db.execute("SELECT hour_cycle FROM users WHERE id = %s",
                            (world.athlete.user.id,)).fetchone()[0] == 24


def test_the_toggle_and_tz_of_one_organizations_member_leave_another_organizations_alone(app, world, owner_db):
    mine, email = calendar_path(world), world.athlete.user.email
    other = BookingWorld(horizon_days=730)
    rita = make_user("rival@example.com", "Rita Rival")
    add_member(other.org, rita, ATHLETE)
    slug, theirs_path = world.org.slug, calendar_path(other)
    athlete = logged_in(app, email)
    page = text(athlete.get(mine))
    assert athlete.post(f"{mine}/clock", data={"csrf_token": csrf_from(page), "hour_cycle": "12"}).status_code == 303
    # Another organization's offering is not there for this member, to look at or to toggle from.
    assert athlete.get(f"/o/{slug}/offerings/{other.offering.id}").status_code == 404
    assert athlete.post(f"/o/{slug}/offerings/{other.offering.id}/clock",
                        data={"csrf_token": csrf_from(page), "hour_cycle": "24"}).status_code == 404
    assert athlete.get(theirs_path).status_code == 404

    theirs = text(logged_in(app, "rival@example.com").get(f"{theirs_path}?week={winter_monday()}"))
    assert slots(theirs)[0][1] == "09:00"  # still 24 hours, still Berlin
    assert "Times in <strong>Europe/Berlin</strong> (CET), your time zone." in theirs
    assert owner_db.execute("SELECT hour_cycle FROM users WHERE email = 'rival@example.com'").fetchone()[0] == 24


def test_the_booking_detail_names_the_zone_and_the_coachs_when_it_differs(app, world):
    tenancy.activate(world.org.id)
    slot = world.first_slot()
    from coach.booking import service
    booking = service.request_booking(world.offering, world.athlete, slot.starts_at, "", world.athlete)
    update_profile(world.athlete.user, "Arno Athlete", "Europe/London")
    db.session.commit()
    page = text(logged_in(app, world.athlete.user.email).get(f"/o/{world.org.slug}/bookings/{booking.id}"))
    london = slot.starts_at.astimezone(ZoneInfo("Europe/London")).strftime("%H:%M")
    berlin = slot.starts_at.astimezone(BERLIN).strftime("%H:%M")
    assert f"{london}–" in page and "(Europe/London)" in page
    assert f"{berlin}–" in page and "for the coach (Europe/Berlin)" in page


def test_the_profile_sets_the_clock_too(app, world, owner_db):
    offering = second_coach_at_half_past_two(world)
    athlete = logged_in(app, world.athlete.user.email)
    page = text(athlete.get("/profile"))
    assert re.search(r'<input checked id="hour_cycle-0" name="hour_cycle" type="radio" value="24">', page)

    refused = athlete.post("/profile", data={"csrf_token": csrf_from(page), "display_name": "Arno Athlete",
                                             "timezone": "Europe/Berlin", "hour_cycle": "13"})
    assert refused.status_code == 422 and "Not a valid choice" in text(refused)
    saved = athlete.post("/profile", data={"csrf_token": csrf_from(page), "display_name": "Arno Athlete",
                                           "timezone": "Europe/Berlin", "hour_cycle": "12"})
    assert saved.status_code == 303
    assert owner_db.execute("SELECT hour_cycle FROM users WHERE id = %s",
                            (world.athlete.user.id,)).fetchone()[0] == 12
    week = text(athlete.get(f"/o/{world.org.slug}/offerings/{offering.id}?week={winter_monday()}"))
    assert {label for _, label in slots(week)} == {"2:30 pm"}


def test_the_zone_switcher_swaps_the_week_in_place_for_htmx(app, world):
    athlete = logged_in(app, world.athlete.user.email)
    response = athlete.get(calendar_path(world), query_string={"week": winter_monday().isoformat(), "tz": "Tokyo"},
                           headers={**HX, "HX-Target": "calendar"})
    fragment = text(response)
    assert response.status_code == 200 and "<html" not in fragment
    assert fragment.lstrip().startswith('<section class="card calendar" id="calendar"')
    assert "Times in <strong>Asia/Tokyo</strong> (JST) · your time zone is Europe/Berlin" in fragment
    assert dict(slots(fragment))[f"{winter_monday()}T08:00:00Z"] == "17:00"  # 09:00 in Berlin


def test_a_week_swapped_in_place_does_not_carry_the_zone_list_again(app, world):
    """The switcher's ~520 zones come once with the page; paging, the switcher and the clock toggle swap
    #calendar and find the list still on the page (it sits outside the section)."""
    athlete = logged_in(app, world.athlete.user.email)
    monday = winter_monday()
    page = text(athlete.get(calendar_path(world), query_string={"week": monday.isoformat()}))
    assert page.count('<datalist id="week-tz-zones">') == 1
    assert zone_box(page, "tz")["list"] == "week-tz-zones"
    calendar_end = page.index("</section>", page.index('id="calendar"'))
    assert page.index('<datalist id="week-tz-zones">') > calendar_end  # not inside what htmx replaces
    assert '<option value="Asia/Tokyo">' in page

    paged = text(athlete.get(calendar_path(world), query_string={"week": (monday + timedelta(days=7)).isoformat()},
                             headers={**HX, "HX-Target": "calendar"}))
    clocked = text(athlete.post(f"{calendar_path(world)}/clock", headers={**HX, "HX-Target": "calendar"},
                                data={"csrf_token": csrf_from(page), "hour_cycle": "12",
                                      "week": monday.isoformat()}))
    for fragment in (paged, clocked):
        assert '<section class="card calendar" id="calendar"' in fragment
        assert "<datalist" not in fragment and "Asia/Tokyo" not in fragment
        assert zone_box(fragment, "tz")["list"] == "week-tz-zones"
        assert len(fragment) < len(page) - 20_000  # the zones were most of the week's weight


def test_the_sessions_list_and_the_booking_follow_the_members_clock(app, world):
    offering = second_coach_at_half_past_two(world)
    tenancy.activate(world.org.id)
    from coach.booking import service
    monday = winter_monday()
    starts_at = datetime(monday.year, monday.month, monday.day, 14, 30, tzinfo=BERLIN).astimezone(UTC)
    booking = service.request_booking(offering, world.athlete, starts_at, "", world.athlete)
    world.athlete.user.hour_cycle = 12
    db.session.commit()
    athlete = logged_in(app, world.athlete.user.email)
    sessions = text(athlete.get(f"/o/{world.org.slug}/bookings"))
    assert f"{monday.strftime('%a %-d %b')}, 2:30 pm–3:30 pm" in sessions
    detail = text(athlete.get(f"/o/{world.org.slug}/bookings/{booking.id}"))
    assert "2:30 pm–3:30 pm CET" in detail and f"{monday.strftime('%a %-d %b')}, 2:30 pm–3:30 pm" in detail

    # The coach reads the same booking on a 24-hour clock.
    otto = logged_in(app, "otto@example.com")
    assert f"{monday.strftime('%a %-d %b')}, 14:30–15:30" in text(otto.get(f"/o/{world.org.slug}/bookings"))


# --- the schedule and its hours on the coach's clock -------------------------------------------------------

def test_the_schedule_lists_hours_and_time_off_on_the_coachs_12_hour_clock_and_reads_them_typed_that_way(app, world):
    tenancy.activate(world.org.id)
    world.coach.user.hour_cycle = 12
    db.session.commit()
    coach = logged_in(app, world.coach.user.email)
    path = f"/o/{world.org.slug}/coaches/{world.coach.id}/schedule"
    page = text(coach.get(path))
    assert page.count("<span>9:00 am–5:00 pm</span>") == 7
    assert "For example 9am-12pm, 2pm-6pm" in page

    day = (clock.now().astimezone(BERLIN) + timedelta(days=9)).date()
    token = csrf_from(page)
    split = coach.post(f"{path}/overrides", headers={**HX, "HX-Target": "overrides"},
                       data={"csrf_token": token, "on_date": day.isoformat(), "hours": "9am-12pm, 1:30 PM-midnight"})
    assert split.status_code == 200
    assert "9:00 am–12:00 pm, 1:30 pm–midnight" in text(split)
    late = coach.post(f"{path}/rules", headers={**HX, "HX-Target": "hours"},
                      data={"csrf_token": token, "weekday": "0", "start": "18:00", "end": "00:00"})
    monday = text(late)[text(late).index("Monday"):text(late).index("Tuesday")]
    assert "5:00 pm" in monday and "6:00 pm–midnight" in monday

    off = coach.post(f"{path}/time-off", headers={**HX, "HX-Target": "time_off"},
                     data={"csrf_token": token, "starts": f"{day}T14:00", "ends": f"{day}T15:30", "reason": "Dentist"})
    zone = datetime(day.year, day.month, day.day, 12, tzinfo=BERLIN).strftime("%Z")
    assert f"{day.strftime('%a %-d %b')} 2:00 pm – {day.strftime('%a %-d %b')} 3:30 pm {zone} · Dentist" in text(off)

    # A coach on a 24-hour clock reads the same hours as before.
    tenancy.activate(world.org.id)
    world.coach.user.hour_cycle = 24
    db.session.commit()
    page = text(coach.get(path))
    assert page.count("<span>09:00–17:00</span>") == 7 and "18:00–24:00" in page
    assert "09:00–12:00, 13:30–24:00" in page and "For example 09:00-12:00, 14:00-18:00" in page


@pytest.mark.parametrize("typed, minutes", [
    ("09:30", 570), ("9:30", 570), ("24:00", 1440), ("9am", 540), ("9:30 pm", 1290), ("12 p.m.", 720),
    ("12am", 0), ("12:15 AM", 15), ("midnight", 0), ("noon", 720), ("13pm", None), ("0am", None), ("9 pm pm", None),
    ("nine", None), ("25:00", None),
])
def test_a_time_is_read_on_either_clock(typed, minutes):
    from coach.blueprints.booking.forms import parse_time
    assert parse_time(typed) == minutes
