"""The public search's kept answers (coach.directory.search_cache) and kept cards: a search asked again within
the period is answered from Valkey after one statement checks the coaches it shows, and is the same page; a coach
unlisted, removed or changed since is never shown from a kept answer; an organization's own search is never kept.

The world is tests/directory_support.py's: River Academy (listed) with Maria (Valorant) and Jon (tennis); Hill
Club (not listed).
"""
from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import update

from coach import tenancy
from coach.directory import projection, search_cache
from coach.directory.models import CoachProfile
from coach.extensions import db
from coach.governance.settings import save_settings
from coach.platform.queues import redis_conn
from tests.conftest import Auth
from tests.directory_support import DirectoryWorld
from tests.querycount import statements_for

HX = {"HX-Request": "true"}


@pytest.fixture()
def world(ctx, job_runner):
    world = DirectoryWorld()
    world.publish()
    # The projection's consumers of the world's events run now, not between a test's two searches (a refresh
    # that changes a listing gives it a new version, and a kept answer is then rightly searched again).
    with job_runner.paused():
        job_runner.drain()
    return world


@pytest.fixture()
def kept(app, monkeypatch):
    """Answers kept for five minutes (the tests' default keeps none)."""
    monkeypatch.setitem(app.config, "DIRECTORY_RESULTS_CACHE_SECONDS", 300)
    monkeypatch.setitem(app.config, "DIRECTORY_FACET_CACHE_SECONDS", 300)


def visitor(app, address: str = "203.0.113.9"):
    browser = app.test_client()
    browser.environ_base["REMOTE_ADDR"] = address
    return browser


def results_region(page: str) -> str:
    """The #results region of a page or a fragment (the page around it holds a per-request nonce)."""
    start = page.index('<div id="results"')
    return page[start:page.index("</form>", start)] if "</form>" in page[start:] else page[start:]


def kept_keys() -> list:
    return list(redis_conn().scan_iter(match=search_cache.KEY_PREFIX + "*"))


def test_a_search_asked_again_is_the_same_page_for_one_statement(app, world, kept):
    browser = visitor(app)
    cases = [("/coaches?q=valorant+aim&lang=en", {}), ("/coaches?sort=price", HX), ("/coaches", {})]
    for path, headers in cases:
        first = browser.get(path, headers=headers)
        again = browser.get(path, headers=headers)
        assert first.status_code == again.status_code == 200
        assert results_region(again.get_data(as_text=True)) == results_region(first.get_data(as_text=True))
        assert again.headers.get("HX-Push-Url") == first.headers.get("HX-Push-Url")
    fragment = browser.get("/coaches?sort=price", headers=HX).get_data(as_text=True)
    assert "<html" not in fragment and 'hx-swap-oob="innerHTML">2 coaches found' in fragment
    page = html.unescape(browser.get("/coaches?q=valorant+aim&lang=en").get_data(as_text=True))
    assert "Maria Santos" in page and 'value="valorant aim"' in page and "1 coach found" in page
    assert len(kept_keys()) == 3
    # Kept: only the check of the shown coaches reaches PostgreSQL (a search is 3 or more statements).
    assert statements_for(app, browser, "/coaches?q=valorant+aim&lang=en") == 1
    assert statements_for(app, browser, "/coaches?q=valorant+aim&lang=en&lang=es") >= 3  # another search


def test_unlisting_removes_the_coach_from_a_kept_answer_at_once(app, world, kept):
    browser = visitor(app)
    assert "Maria Santos" in browser.get("/coaches?q=valorant").get_data(as_text=True)
    assert "Maria Santos" in browser.get("/coaches").get_data(as_text=True)
    tenancy.activate(world.org.id)
    save_settings(world.org, {"listed_publicly": False}, world.admin)
    db.session.commit()
    for path in ("/coaches?q=valorant", "/coaches"):
        page = browser.get(path).get_data(as_text=True)
        assert "Maria Santos" not in page and "River Academy" not in page, path


def test_a_coach_changed_since_is_shown_as_they_are_now(app, world, kept):
    browser = visitor(app)
    assert "Valorant aim coach" in html.unescape(browser.get("/coaches?q=valorant").get_data(as_text=True))
    tenancy.activate(world.org.id)
    db.session.execute(update(CoachProfile).where(CoachProfile.coach_membership_id == world.maria.id)
                       .values(headline="Valorant aim and crosshair placement"))
    projection.refresh_org(world.org.id)
    db.session.commit()
    page = html.unescape(browser.get("/coaches?q=valorant").get_data(as_text=True))
    assert "Valorant aim and crosshair placement" in page  # the card too: its cache is keyed by the version


def test_an_organizations_own_search_is_never_kept(app, world, kept):
    member = app.test_client()
    Auth(member).login("ana@example.com")
    for _ in range(2):
        page = member.get("/o/river/coaches?q=jon").get_data(as_text=True)
        assert "Jon Berg" in page
    assert kept_keys() == []


def test_the_zone_of_a_signed_in_viewer_is_not_given_to_a_visitor(app, world, kept):
    from coach.accounts.models import User

    user = db.session.scalar(db.select(User).where(User.email == "ana@example.com"))
    user.timezone = "Pacific/Auckland"
    db.session.commit()
    member = app.test_client()
    Auth(member).login("ana@example.com")
    theirs = member.get("/coaches?q=valorant").get_data(as_text=True)
    mine = visitor(app).get("/coaches?q=valorant").get_data(as_text=True)
    zones = lambda page: set(re.findall(r"<time [^>]*>[^<]*?([A-Z]{2,5}|[+-]\d{2})</time>", page))  # noqa: E731
    assert zones(theirs) and zones(mine) and zones(theirs) != zones(mine)
    assert len(kept_keys()) == 2


def test_the_12_hour_clock_of_a_signed_in_viewer_is_not_given_to_a_visitor(app, world, kept):
    """Same zone (UTC), other clocks: the member's kept answer and kept cards are theirs, the visitor's on 24 hours."""
    from coach.accounts.models import User

    user = db.session.scalar(db.select(User).where(User.email == "ana@example.com"))
    user.timezone, user.hour_cycle = "UTC", 12
    db.session.commit()
    member = app.test_client()
    Auth(member).login("ana@example.com")
    times = lambda page: re.findall(r"<time [^>]*>([^<]*)</time>", page)  # noqa: E731
    for first, second in ((member, visitor(app)), (visitor(app, "203.0.113.10"), member)):
        for key in kept_keys():
            redis_conn().delete(key)
        before = times(first.get("/coaches?q=valorant").get_data(as_text=True))
        after = times(second.get("/coaches?q=valorant").get_data(as_text=True))
        theirs, mine = (before, after) if first is member else (after, before)
        assert theirs and all(re.search(r"\d(:\d\d)? ?[ap]m", t) for t in theirs), theirs
        assert mine and not any(re.search(r"[ap]m", t) for t in mine), mine
        assert len(kept_keys()) == 2


def test_a_broken_page_link_is_not_kept(app, world, kept):
    browser = visitor(app)
    assert browser.get("/coaches?cursor=garbage").status_code == 400
    assert browser.get("/coaches?cursor=garbage").status_code == 400
    assert kept_keys() == []


def test_an_answer_kept_by_an_older_deploy_is_not_shown(app, world, kept, monkeypatch):
    browser = visitor(app)
    path = "/coaches?q=valorant"
    assert "Maria Santos" in browser.get(path).get_data(as_text=True)
    assert statements_for(app, browser, path) == 1  # kept
    # A deploy whose templates or static build differ: the answer the old code rendered is not found.
    monkeypatch.setattr(search_cache, "code_version", lambda: "next-deploy")
    assert statements_for(app, browser, path) >= 3
    assert "Maria Santos" in browser.get(path).get_data(as_text=True)
    assert len(kept_keys()) == 2
    assert statements_for(app, browser, path) == 1  # the new deploy keeps its own


def test_the_code_version_follows_the_templates_and_the_static_manifest(app, tmp_path):
    from jinja2 import DictLoader, Environment

    templates = {name: f"{{# {name} #}}" for name in search_cache.RENDERING_TEMPLATES}
    (tmp_path / "cache_manifest.json").write_text('{"css/app.css": "css/app-1.css"}')

    def version():
        return search_cache._rendering_version(str(tmp_path), app.root_path,
                                                  Environment(loader=DictLoader(dict(templates))))

    first = version()
    assert version() == first  # the same code: the same keys
    templates["directory/_card.html"] += "<p>a new line on every card</p>"
    changed_card = version()
    (tmp_path / "cache_manifest.json").write_text('{"css/app.css": "css/app-2.css"}')
    assert len({first, changed_card, version()}) == 3
    with app.test_request_context():
        assert search_cache.code_version() == search_cache.code_version()
