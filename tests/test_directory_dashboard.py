"""The admin dashboard's moderation and directory cards: flagged reviews count in what waits for a moderator,
the coaches listed / opted out / without a profile, the way to the taxonomy editor; another organization's flags
and coaches never count; the page's statements stay fixed however many coaches and flags there are. And the
navigation's one link per role to the directory's pages: visitors find coaches, members their organization's
coaches, a coach their profile."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from coach import clock, tenancy
from coach.directory import profiles, reviews
from coach.extensions import db
from coach.governance import dashboard
from coach.orgs.models import COACH
from coach.spaces import service as spaces
from tests.conftest import Auth
from tests.directory_support import DirectoryWorld
from tests.factories import add_member, make_user
from tests.querycount import statements_for

DASHBOARD = "/o/river/admin/dashboard"


@pytest.fixture()
def world(ctx):
    w = DirectoryWorld()
    tenancy.activate(w.org.id)
    w.review = reviews.write_review(w.ended, w.ana, 2, "Late and distracted.")
    reviews.flag(w.review, w.ben, "Not what happened: the session started on time.")
    space = spaces.create_space(w.org, w.maria, "Aim lab", "", "open")
    spaces.join(space, w.ben)
    post = spaces.create_post(space, w.maria, "Daily aim routine in the comments.")
    spaces.flag(post, w.ben, "Advertising")
    # Hill has a flagged review too: never counted in River's queue.
    tenancy.activate(w.hill.id)
    hill_athlete = add_member(w.hill, make_user("hugo@example.com", "Hugo Hill"))
    hill_session = w.write_booking(w.yara, w.yara_offering, hill_athlete,
                                   clock.now().replace(microsecond=0) - timedelta(days=1), "ended")
    hill_review = reviews.write_review(hill_session, hill_athlete, 1, "Hill review")
    reviews.flag(hill_review, w.zed, "Hill flag")
    db.session.commit()
    w.publish()
    return w


def _admin(app, email: str = "ada@example.com"):
    browser = app.test_client()
    assert Auth(browser).login(email).status_code == 303
    return browser


def _card(html: str, name: str) -> str:
    return html.split(f'id="{name}"', 1)[1].split("</section>", 1)[0]


def test_the_moderation_card_counts_flagged_reviews_and_posts_and_links_both_queues(app, world):
    html = _admin(app).get(DASHBOARD).get_data(as_text=True)
    card = _card(html, "moderation-card")
    assert re.search(r'<span class="stat-n">2</span> <span class="stat-l">items wait for a moderator', card)
    assert "Posts and comments</a>: 1 flagged" in card and "Reviews</a>: 1 flagged" in card
    assert 'href="/o/river/moderation"' in card and 'href="/o/river/moderation/reviews"' in card
    # Hiding the review resolves its flags: the number drops at once (not kept for a minute like the charts).
    tenancy.activate(world.org.id)
    reviews.hide(world.review, world.admin, "Disputed; hidden until we talk to both.")
    db.session.commit()
    card = _card(_admin(app).get(DASHBOARD).get_data(as_text=True), "moderation-card")
    assert '<span class="stat-n">1</span> <span class="stat-l">item waits' in card and "Reviews</a>: 0 flagged" in card


def test_the_directory_card_counts_listed_opted_out_and_profileless_coaches(app, world):
    w = world
    browser = _admin(app)
    card = _card(browser.get(DASHBOARD).get_data(as_text=True), "directory-card")
    # Maria and Jon are listed; Kim has no profile.
    assert "<strong>2 of 3</strong> coaches are listed" in card
    assert "0 opted out" in card and "1 without a profile yet" in card
    assert 'href="/o/river/admin/taxonomy"' in card
    tenancy.activate(w.org.id)
    profiles.set_listed(w.jon_profile, False, w.jon)
    db.session.commit()
    w.publish()
    card = _card(browser.get(DASHBOARD).get_data(as_text=True), "directory-card")
    assert "<strong>1 of 3</strong> coaches are listed" in card and "1 opted out" in card
    # Hill does not list its coaches: its admin is told where to change that; River's numbers are not Hill's.
    hill = _card(_admin(app, "zed@example.com").get("/o/hill/admin/dashboard").get_data(as_text=True),
                 "directory-card")
    assert "does not list its coaches publicly" in hill and 'href="/o/hill/admin/settings"' in hill
    assert "0 opted out" in hill and "0 without a profile yet" in hill


def test_the_cards_add_no_statement_whatever_the_number_of_coaches_and_flags(app, world):
    w = world
    browser = _admin(app)
    browser.get(DASHBOARD)  # warm
    dashboard.forget(w.org.id)
    before = statements_for(app, browser, DASHBOARD)
    with app.test_request_context():
        tenancy.activate(w.org.id)
        for n in range(4):
            coach = add_member(w.org, make_user(f"extra{n}@example.com", f"Extra Coach{n}"), COACH)
            tenancy.activate(w.org.id)
            profile = profiles.ensure_profile(coach)
            profile.headline = f"Extra coach {n}"
            reader = add_member(w.org, make_user(f"reader{n}@example.com", f"Reader {n}"))
            tenancy.activate(w.org.id)
            reviews.flag(w.review, reader, f"flag {n}")
        db.session.commit()
    dashboard.forget(w.org.id)
    assert statements_for(app, browser, DASHBOARD) == before


def _nav(html: str) -> str:
    return html.split('aria-label="Main"', 1)[1].split("</nav>", 1)[0]


def test_each_role_finds_the_directory_from_the_navigation(app, world):
    visitor = _nav(app.test_client().get("/login").get_data(as_text=True))
    assert 'href="/coaches">' in visitor and "<span>Find a coach</span></a>" in visitor
    athlete = _admin(app, "ana@example.com")
    home = _nav(athlete.get("/o/river/").get_data(as_text=True))
    # Under "More": the organization's coach search, and the booking list.
    assert '<a href="/o/river/coaches">Coaches</a>' in home and '<a href="/o/river/book">Book a session</a>' in home
    assert "Find a coach" not in home and "My profile" not in home
    # Outside an organization a signed-in person may look for a coach too.
    assert '<a class="nav-link" href="/coaches">Find a coach</a>' in _nav(athlete.get("/profile").get_data(as_text=True))
    coach = _nav(_admin(app, "maria@example.com").get("/o/river/").get_data(as_text=True))
    assert '<a href="/o/river/profile">My profile</a>' in coach and ">Book a session</a>" not in coach
    # Each link opens its page.
    assert app.test_client().get("/coaches").status_code == 200
    assert athlete.get("/o/river/book").status_code == 200
    assert _admin(app, "maria@example.com").get("/o/river/profile").status_code == 200
