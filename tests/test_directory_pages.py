"""The directory's search pages as visitors and members use them: the public /coaches (no login, over the
projection) and an organization's own /o/<slug>/coaches (members, through RLS).

Every page is read as a full page (no JavaScript) and as the htmx fragment (``HX-Request``: no ``<html``). The
world is tests/directory_support.py's: River Academy (listed) with Maria (Valorant, English and Spanish) and Jon
(tennis, German); Hill Club (not listed) with Yara, a Valorant coach who must never appear in public.
"""
from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from coach import tenancy
from tests.conftest import Auth
from tests.directory_support import DirectoryWorld
from tests.querycount import statements_for

HX = {"HX-Request": "true"}


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def links(page: str, label: str) -> list[str]:
    """The hrefs of the links whose text is ``label``."""
    return [html.unescape(href) for href in re.findall(rf'<a [^>]*href="([^"]+)"[^>]*>\s*{re.escape(label)}\s*</a>',
                                                       page)]


def visitor(app, address: str = "203.0.113.7"):
    """A browser with no account, on an address of its own (the search's limit counts per address)."""
    browser = app.test_client()
    browser.environ_base["REMOTE_ADDR"] = address
    return browser


def logged_in(app, email: str):
    browser = app.test_client()
    assert Auth(browser).login(email).status_code == 303
    return browser


@pytest.fixture()
def world(ctx):
    world = DirectoryWorld()
    world.publish()
    return world


# --- the public directory, without JavaScript -------------------------------------------------------------

def test_visitor_without_account_sees_listed_coaches_as_cards(app, world):
    response = visitor(app).get("/coaches")

    page = text(response)
    assert response.status_code == 200 and "<html" in page
    assert "Log in" in page and "Sign up" in page  # the visitor's navigation
    assert "Maria Santos" in page and "Jon Berg" in page
    assert "Valorant aim coach for ranked climbers" in page and "River Academy" in page
    assert "Verified" in page  # Maria's badge
    assert "€45" in page and "€80" in page  # prices through the money formatting
    assert "English, Spanish" in page and "German" in page
    assert "In person, Berlin" in page and "Online" in page
    assert "/coaches/river/maria-santos" in page  # the card opens the public profile
    assert 'type="search" name="q"' in response.get_data(as_text=True)
    assert "Yara Young" not in page


def test_facets_show_live_counts_and_a_language_filter_works_by_plain_get(app, world):
    browser = visitor(app)
    landing = text(browser.get("/coaches"))
    assert re.search(r"English</span> <span class=\"facet-count\">\(1\)", landing)
    assert re.search(r"German</span> <span class=\"facet-count\">\(1\)", landing)

    response = browser.get("/coaches?lang=de")

    page = text(response)
    assert response.status_code == 200
    assert "Jon Berg" in page and "Maria Santos" not in page
    assert re.search(r'name="lang" value="de" checked', page)  # the box stays ticked
    # The chip removes the filter again.
    chip = [href for href in re.findall(r'<a class="chip" href="([^"]+)"', page)]
    assert chip and "lang" not in parse_qs(urlsplit(html.unescape(chip[0])).query)
    assert "Maria Santos" in text(browser.get(html.unescape(chip[0])))


def test_unknown_facet_values_are_a_notice_not_an_error(app, world):
    response = visitor(app).get("/coaches?lang=xx&rating=banana&sort=sideways&price=-1")

    assert response.status_code == 200
    assert "directory-notice" in response.get_data(as_text=True)
    assert "Maria Santos" in text(response)


def test_results_come_in_keyset_pages_with_next_and_first_page_links(app, world, monkeypatch):
    monkeypatch.setitem(app.config, "DIRECTORY_PAGE_SIZE", 1)
    browser = visitor(app)

    first = text(browser.get("/coaches?sort=price"))
    assert "Maria Santos" in first and "Jon Berg" not in first  # €45 before €80
    assert not links(first, "First page")
    (next_url,) = links(first, "Next page")
    assert parse_qs(urlsplit(next_url).query)["sort"] == ["price"]

    second = text(browser.get(next_url))
    assert "Jon Berg" in second and "Maria Santos" not in second
    assert not links(second, "Next page")
    (back,) = links(second, "First page")
    assert "cursor" not in back and "Maria Santos" in text(browser.get(back))


def test_a_tampered_page_link_is_a_400_with_a_way_to_start_again(app, world):
    browser = visitor(app)

    response = browser.get("/coaches?q=valorant&cursor=not-a-real-cursor")

    page = text(response)
    assert response.status_code == 400 and "<html" in page
    (again,) = links(page, "Start the search again")
    assert parse_qs(urlsplit(again).query) == {"q": ["valorant"]}
    fragment = browser.get("/coaches?q=valorant&cursor=not-a-real-cursor", headers=HX)
    assert fragment.status_code == 400 and "<html" not in text(fragment)
    assert "Start the search again" in text(fragment)


def test_a_misspelt_query_is_corrected_and_offers_the_original(app, world):
    page = text(visitor(app).get("/coaches?q=valorrant+aim"))

    assert "Showing results for" in page and "Maria Santos" in page
    (original,) = links(page, "valorrant aim")
    assert parse_qs(urlsplit(original).query)["exact"] == ["1"]


def test_a_link_stuffed_with_bad_values_gets_a_few_notices(app, world):
    stuffed = "&".join(f"lang=zz{i}" for i in range(300))

    response = visitor(app).get(f"/coaches?{stuffed}")

    page = text(response)
    assert response.status_code == 200 and "Maria Santos" in page
    assert page.count('class="notice directory-notice"') == 6 and "295 more values were ignored." in page


@pytest.mark.parametrize("query", ["a" * 10_000, "aim & | ! ( ) : *", '"valorant', "'; DROP TABLE reviews; --",
                                   "the and of", "%00\x01valorant", "tenn"])
def test_hostile_or_odd_queries_answer_a_page_never_a_500(app, world, query):
    browser = visitor(app)

    for headers in ({}, HX):
        response = browser.get("/coaches", query_string={"q": query}, headers=headers)
        assert response.status_code == 200, (query, response.status_code)
        assert "Yara Young" not in text(response)


def test_the_unlisted_clubs_coach_never_appears_in_public(app, world):
    browser = visitor(app)

    for query in ("", "valorant", "yara", "yara young", "hill", "aim", "valorant aim coach (hill)"):
        page = text(browser.get("/coaches", query_string={"q": query}))
        assert "Yara" not in page and "Hill Club" not in page and "/coaches/hill/" not in page


@pytest.mark.parametrize("who", ["visitor", "member"])
def test_a_page_of_cards_is_a_fixed_number_of_statements(app, world, monkeypatch, who):
    browser = visitor(app) if who == "visitor" else logged_in(app, "ana@example.com")
    path = "/coaches?sort=price" if who == "visitor" else "/o/river/coaches?sort=price"
    statements_for(app, browser, path)  # warm up: first-request work (and the facet counts' cache) is not the page's

    monkeypatch.setitem(app.config, "DIRECTORY_PAGE_SIZE", 1)
    one = statements_for(app, browser, path)
    monkeypatch.setitem(app.config, "DIRECTORY_PAGE_SIZE", 3)
    three = statements_for(app, browser, path)

    assert one == three


# --- htmx active search -----------------------------------------------------------------------------------

def test_htmx_gets_the_results_fragment_and_history_restore_gets_the_page(app, world):
    browser = visitor(app)

    fragment = browser.get("/coaches?q=tennis", headers=HX)
    restored = browser.get("/coaches?q=tennis", headers={**HX, "HX-History-Restore-Request": "true"})
    boosted = browser.get("/coaches?q=tennis", headers={**HX, "HX-Boosted": "true"})

    body = text(fragment)
    assert fragment.status_code == 200 and "<html" not in body
    assert body.lstrip().startswith('<div id="results"')
    assert "Jon Berg" in body and "Maria Santos" not in body
    assert 'hx-swap-oob="innerHTML"' in body and "1 coach" in body  # the live count, out of band
    assert "HX-Request" in fragment.headers["Vary"]
    # The address bar gets the search's clean address, not every empty field of the form.
    assert browser.get("/coaches?q=tennis&sort=&price=&lang=de", headers=HX).headers["HX-Push-Url"] == \
        "/coaches?q=tennis&lang=de"
    for whole in (restored, boosted):
        assert whole.status_code == 200 and "<html" in text(whole) and "Jon Berg" in text(whole)


def test_the_page_wires_active_search_without_inline_script(app, world):
    raw = visitor(app).get("/coaches").get_data(as_text=True)

    box = re.search(r'<input id="directory-q"[^>]*>', raw, re.S).group(0)
    assert 'hx-get="/coaches"' in box and 'hx-push-url="true"' in box and 'hx-target="#results"' in box
    assert 'input changed delay:300ms, search' in box and 'hx-include="#directory-search"' in box
    assert 'aria-live="polite"' in raw
    assert '<form id="directory-search"' in raw and 'method="get"' in raw
    assert "<script>" not in raw and "style=" not in raw


# --- limits -------------------------------------------------------------------------------------------------

def test_public_search_is_rate_limited_per_address_unless_turned_off(app, world, monkeypatch):
    monkeypatch.setitem(app.config, "RATELIMIT_DIRECTORY_SEARCH", "2 per minute")
    browser, other = visitor(app, "198.51.100.20"), visitor(app, "198.51.100.21")

    assert [browser.get("/coaches").status_code for _ in range(2)] == [200, 200]
    refused = browser.get("/coaches")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert other.get("/coaches").status_code == 200

    monkeypatch.setitem(app.config, "RATELIMIT_DIRECTORY_SEARCH", "off")
    assert browser.get("/coaches").status_code == 200


# --- an organization's own search ---------------------------------------------------------------------------

def test_members_search_their_own_unlisted_clubs_coaches(app, world):
    tenancy.activate(world.hill.id)  # Yara's row is Hill's (the world leaves River's tenant set)
    yara_id = world.yara.id
    zed = logged_in(app, "zed@example.com")

    response = zed.get("/o/hill/coaches?q=aim")

    page = text(response)
    assert response.status_code == 200
    assert "Yara Young" in page and "Maria Santos" not in page
    assert f"/o/hill/coaches/{yara_id}/profile" in page and f"/o/hill/coaches/{yara_id}\"" in page  # her profile and offerings in the club
    assert "<html" not in text(zed.get("/o/hill/coaches?q=aim", headers=HX))


def test_members_of_another_club_get_404_and_visitors_are_sent_to_log_in(app, world):
    ana = logged_in(app, "ana@example.com")

    assert ana.get("/o/hill/coaches").status_code == 404
    assert ana.get("/o/river/coaches").status_code == 200
    anonymous = visitor(app).get("/o/hill/coaches")
    assert anonymous.status_code in (302, 303) and "/login" in anonymous.headers["Location"]


def test_the_booking_page_links_to_the_coach_search(app, world):
    ana = logged_in(app, "ana@example.com")

    page = text(ana.get("/o/river/book"))

    assert links(page, "Search coaches") == ["/o/river/coaches"]
    found = text(ana.get("/o/river/coaches?lang=de"))
    assert "Jon Berg" in found and "Maria Santos" not in found and "Kim Lee" not in found
