"""Spaces pages as people use them: the list, feeds, posting, reactions, comments, flags and moderation.

Every page is requested as a full page (no JavaScript) and, where htmx swaps part of it, as a
fragment (``HX-Request``): a fragment has no ``<html``. Rows are checked through the owner
connection, so "nothing was written" means nothing reached PostgreSQL.
"""
from __future__ import annotations

import base64
import difflib
import html
import re
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from urllib.parse import quote

import pytest

from coach import tenancy
from coach.extensions import db
from coach.media import service as media_service
from coach.media.models import MediaItem
from coach.orgs.service import membership_for
from coach.spaces import service
from tests.conftest import Auth, csrf_from
from tests.querycount import statements_for
from tests.factories import add_member, make_org, make_user

UTC = timezone.utc
HX = {"HX-Request": "true"}
POST_ID_RE = re.compile(r'<article class="card post[^"]*" id="post-([0-9a-f-]{36})"')


# --- the world -------------------------------------------------------------------------------------

class SpacesWorld:
    """River Club: Ada Admin; Maria Santos (coach) hosts the open space "Tennis", where the athletes
    Sam Lee, Bea Berg, Cal Cruz and Dee Diaz are members; Otto Outside is an athlete in no space."""

    def __init__(self):
        ada = make_user("ada@example.com", "Ada Admin")
        self.org = make_org(ada, slug="river", name="River Club")
        tenancy.activate(self.org.id)
        self.admin = membership_for(self.org, ada)
        self.maria = add_member(self.org, make_user("maria@example.com", "Maria Santos"), "coach")
        self.sam = add_member(self.org, make_user("sam@example.com", "Sam Lee"), "athlete")
        self.bea = add_member(self.org, make_user("bea@example.com", "Bea Berg"), "athlete")
        self.cal = add_member(self.org, make_user("cal@example.com", "Cal Cruz"), "athlete")
        self.dee = add_member(self.org, make_user("dee@example.com", "Dee Diaz"), "athlete")
        self.otto = add_member(self.org, make_user("otto@example.com", "Otto Outside"), "athlete")
        tenancy.activate(self.org.id)
        self.tennis = service.create_space(self.org, self.maria, "Tennis", "Serve and volley", "open")
        for member in (self.sam, self.bea, self.cal, self.dee):
            service.join(self.tennis, member)
        db.session.commit()

    def space(self, name: str, visibility: str = "open", host=None, members=()):
        tenancy.activate(self.org.id)
        space = service.create_space(self.org, host or self.maria, name, "", visibility)
        for member in members:
            service.add_member(space, host or self.maria, member)
        db.session.commit()
        return space

    def write(self, author, body: str, space=None, when: datetime | None = None):
        """A post made through the service (mentions link to "#")."""
        tenancy.activate(self.org.id)
        post = service.create_post(space or self.tennis, author, body, now=when)
        db.session.commit()
        return post

    def comment(self, author, post, body: str, parent=None):
        tenancy.activate(self.org.id)
        made = service.add_comment(post, author, body, parent)
        db.session.commit()
        return made

    def react(self, member, post, kind: str = "like"):
        tenancy.activate(self.org.id)
        service.toggle_reaction(post, member, kind)
        db.session.commit()

    def flag(self, member, target, reason: str = "Spam"):
        tenancy.activate(self.org.id)
        hidden = service.flag(target, member, reason)
        db.session.commit()
        return hidden


class OtherClub:
    """Hill Club: Zed Stranger (admin) and a post with a comment in its own space (their ids)."""

    def __init__(self, world: SpacesWorld):
        zed = make_user("zed@example.com", "Zed Stranger")
        org = make_org(zed, slug="hill", name="Hill Club")
        tenancy.activate(org.id)
        admin = membership_for(org, zed)
        space = service.create_space(org, admin, "Hill talk", "", "open")
        post = service.create_post(space, admin, "Hill news")
        comment = service.add_comment(post, admin, "Hill comment")
        self.space_id, self.post_id, self.comment_id = space.id, post.id, comment.id
        db.session.commit()
        tenancy.activate(world.org.id)  # the test goes on in River Club


@pytest.fixture()
def world(ctx):
    return SpacesWorld()


def logged_in(app, email: str):
    """A client of its own, logged in as ``email`` (a second browser)."""
    browser = app.test_client()
    assert Auth(browser).login(email).status_code == 303
    return browser


@pytest.fixture()
def sam(app, world):
    return logged_in(app, "sam@example.com")


@pytest.fixture()
def bea(app, world):
    return logged_in(app, "bea@example.com")


@pytest.fixture()
def maria(app, world):
    return logged_in(app, "maria@example.com")


@pytest.fixture()
def ada(app, world):
    return logged_in(app, "ada@example.com")


# --- helpers ---------------------------------------------------------------------------------------

def text(response) -> str:
    return response.get_data(as_text=True)


def token(browser, slug: str = "river") -> str:
    """The CSRF token every page carries for htmx (``hx-headers`` on ``<body>``)."""
    page = text(browser.get(f"/o/{slug}/spaces"))
    return re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)


def post(browser, path: str, headers: dict | None = None, slug: str = "river", **data):
    """POST a form to ``/o/<slug><path>`` with a valid CSRF token."""
    return browser.post(f"/o/{slug}{path}", data={"csrf_token": token(browser, slug), **data},
                        headers=headers or {})


def post_ids(page: str) -> list[str]:
    """The posts of a page, in the order a reader sees them."""
    return POST_ID_RE.findall(page)


def older_link(page: str) -> str | None:
    match = re.search(r'<a class="button" href="([^"]+)">Older posts</a>', page)
    return html.unescape(match.group(1)) if match else None


def flashes(page: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(r'<p class="flash flash-\w+">([^<]*)</p>', page)]


def act_for(owner_db, org) -> None:
    """Let the owner connection see one organization's rows (RLS is forced for the owner too)."""
    owner_db.execute("SELECT set_config('app.tenant_id', %s, false)", (str(org.id),))


def rows(owner_db, org, sql: str, *params) -> list[dict]:
    act_for(owner_db, org)
    cur = owner_db.execute(sql, params)
    names = [c.name for c in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def posts_in_db(owner_db, org) -> list[dict]:
    return rows(owner_db, org, "SELECT id, body_source, body_html, author_membership_id, edited_at, pinned_at, "
                               "deleted_at, hidden_at, removed_at, flag_count FROM posts ORDER BY created_at")


def reaction_button(page: str, post_id, kind: str) -> str:
    """The reaction button of ``kind`` inside a post's reaction bar."""
    bar = re.search(rf'<div class="reactions" id="reactions-{post_id}">(.*?)</div>', page, re.S).group(1)
    return re.search(rf'<button [^>]*title="{kind}">.*?</button>', bar, re.S).group(0)


class ProseElements(HTMLParser):
    """Every element (tag and attributes) inside the ``.prose`` body of one post, as a browser builds it."""

    def __init__(self, post_id):
        super().__init__()
        self.post_id = f"post-{post_id}"
        self.in_post = self.prose_depth = 0
        self.elements: list[tuple[str, dict]] = []
        self.texts: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "article" and attrs.get("id") == self.post_id:
            self.in_post = 1
            return
        if self.in_post and self.prose_depth:
            self.elements.append((tag, attrs))
            if tag not in ("br", "hr"):
                self.prose_depth += 1
        elif self.in_post and tag == "div" and "prose" in (attrs.get("class") or "").split():
            self.prose_depth = 1

    def handle_endtag(self, tag):
        if self.prose_depth:
            self.prose_depth -= 1
            if not self.prose_depth:
                self.in_post = 0

    def handle_data(self, data):
        if self.prose_depth:
            self.texts.append(data)


def prose_of(page: str, post_id) -> ProseElements:
    parser = ProseElements(post_id)
    parser.feed(page)
    return parser


def minutes(n: int) -> datetime:
    """A fixed time ``n`` minutes after a moment an hour ago (so every post is in the past)."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1) + timedelta(minutes=n)


# --- the list of spaces ----------------------------------------------------------------------------

def test_space_list_shows_open_spaces_and_my_private_ones_but_not_others_private_ones(world, sam, bea, ada, maria):
    world.space("Coaches corner", "private", members=[world.bea])
    world.space("Announcements", "announcement")

    sams = text(sam.get("/o/river/spaces"))
    beas = text(bea.get("/o/river/spaces"))
    adas = text(ada.get("/o/river/spaces"))

    assert "<strong>Tennis</strong>" in sams and "<strong>Announcements</strong>" in sams
    assert "Coaches corner" not in sams
    assert "<strong>Coaches corner</strong>" in beas
    assert "<strong>Coaches corner</strong>" in adas  # admins see every space
    assert "not joined" in sams  # Announcements: Sam has not joined it
    assert "New space" not in sams and "New space" in text(maria.get("/o/river/spaces"))


def test_space_list_counts_posts_by_others_since_my_last_visit_and_clears_after_i_open_the_space(world, sam):
    assert "new</span>" not in text(sam.get("/o/river/spaces"))
    world.write(world.maria, "One")
    world.write(world.bea, "Two")
    world.write(world.sam, "My own does not count")

    listing = text(sam.get("/o/river/spaces"))
    assert '<span class="badge badge-new">2 new</span>' in listing

    assert sam.get(f"/o/river/spaces/{world.tennis.id}").status_code == 200
    assert "new</span>" not in text(sam.get("/o/river/spaces"))
    world.write(world.cal, "Three")
    assert '<span class="badge badge-new">1 new</span>' in text(sam.get("/o/river/spaces"))


def test_opening_a_space_with_nothing_new_since_my_last_visit_writes_nothing(world, sam, owner_db):
    def last_seen():
        return rows(owner_db, world.org, "SELECT last_seen_at FROM space_members WHERE membership_id = %s",
                    world.sam.id)[0]["last_seen_at"]

    world.write(world.bea, "News")
    space_url = f"/o/river/spaces/{world.tennis.id}"
    assert sam.get(space_url).status_code == 200
    seen = last_seen()
    assert sam.get(space_url).status_code == 200
    assert last_seen() == seen  # nothing arrived: no write, and no count changes

    world.write(world.bea, "More news")
    assert '<span class="badge badge-new">1 new</span>' in text(sam.get("/o/river/spaces"))
    assert sam.get(space_url).status_code == 200
    assert last_seen() > seen and "new</span>" not in text(sam.get("/o/river/spaces"))


# --- creating, joining and leaving spaces ----------------------------------------------------------

def test_coach_creates_a_space_and_lands_in_it_as_its_host(world, maria, owner_db):
    form = maria.get("/o/river/spaces/new")
    assert form.status_code == 200 and "Create space" in text(form)

    response = maria.post("/o/river/spaces/new", data={"csrf_token": csrf_from(text(form)), "name": "Padel",
                                                       "description": "Four walls", "visibility": "private"})

    assert response.status_code == 303
    space = rows(owner_db, world.org, "SELECT id, name, visibility FROM spaces WHERE name = 'Padel'")[0]
    assert response.headers["Location"] == f"/o/river/spaces/{space['id']}"
    assert space["visibility"] == "private"
    page = text(maria.get(response.headers["Location"]))
    assert "<h1>Padel" in page and "Private" in page and "Four walls" in page
    assert ">Moderation</a>" in page  # the host's link
    assert "Write a post" in page


def test_athlete_cannot_create_a_space(world, sam, owner_db):
    assert sam.get("/o/river/spaces/new").status_code == 403
    response = post(sam, "/spaces/new", name="Mine", visibility="open")
    assert response.status_code == 403
    assert rows(owner_db, world.org, "SELECT id FROM spaces WHERE name = 'Mine'") == []


def test_duplicate_space_name_is_refused_with_a_message_whatever_its_case(world, maria, owner_db):
    response = post(maria, "/spaces/new", name="tennis", visibility="open")

    assert response.status_code == 422
    assert "A space with this name exists already." in text(response)
    assert "<html" in text(response)
    assert len(rows(owner_db, world.org, "SELECT id FROM spaces")) == 1

    fragment = post(maria, "/spaces/new", headers=HX, name="TENNIS", visibility="open")
    assert fragment.status_code == 422
    assert "<html" not in text(fragment) and 'id="space-form"' in text(fragment)
    assert "A space with this name exists already." in text(fragment)


def test_space_without_a_name_is_refused_with_a_message(world, maria):
    response = post(maria, "/spaces/new", name="   ", visibility="open")
    assert response.status_code == 422
    assert "Give the space a name." in text(response)


def test_member_joins_an_open_space_then_leaves_it(world, app, owner_db):
    otto = logged_in(app, "otto@example.com")
    space_url = f"/o/river/spaces/{world.tennis.id}"
    page = text(otto.get(space_url))
    assert ">Join</button>" in page and "Join the space to post and comment." in page

    joined = post(otto, f"/spaces/{world.tennis.id}/join")
    assert joined.status_code == 303 and joined.headers["Location"] == space_url
    page = text(otto.get(space_url))
    assert "You joined Tennis." in flashes(page)
    assert ">Leave</button>" in page and "Write a post" in page

    left = post(otto, f"/spaces/{world.tennis.id}/leave")
    assert left.status_code == 303
    page = text(otto.get(space_url))
    assert "You left Tennis." in flashes(page) and ">Join</button>" in page
    assert rows(owner_db, world.org, "SELECT id FROM space_members WHERE membership_id = %s", world.otto.id) == []


def test_only_host_cannot_leave_their_space(world, maria):
    response = post(maria, f"/spaces/{world.tennis.id}/leave")
    assert response.status_code == 422
    assert "You are the only host" in text(response)


def test_private_space_is_not_found_for_a_non_member(world, sam, bea, ada):
    corner = world.space("Coaches corner", "private", members=[world.bea])
    secret = world.write(world.bea, "Secret plans", space=corner)

    for path in (f"/o/river/spaces/{corner.id}", f"/o/river/posts/{secret.id}",
                 f"/o/river/spaces/{corner.id}/members", f"/o/river/posts/{secret.id}/flag"):
        response = sam.get(path)
        assert response.status_code == 404, path
        assert "Secret plans" not in text(response)
    assert post(sam, f"/spaces/{corner.id}/join").status_code == 404
    assert post(sam, f"/posts/{secret.id}/react/like").status_code == 404
    assert "Secret plans" not in text(sam.get("/o/river/feed"))

    assert "Secret plans" in text(bea.get(f"/o/river/spaces/{corner.id}"))
    assert "Secret plans" in text(ada.get(f"/o/river/posts/{secret.id}"))


def test_host_adds_a_member_to_a_private_space_who_then_sees_it(world, maria, sam):
    corner = world.space("Coaches corner", "private")
    assert sam.get(f"/o/river/spaces/{corner.id}").status_code == 404

    members_url = f"/o/river/spaces/{corner.id}/members"
    added = post(maria, f"/spaces/{corner.id}/members", member=str(world.sam.id), role="member")

    assert added.status_code == 303 and added.headers["Location"] == members_url
    assert "Sam Lee added." in flashes(text(maria.get(members_url)))
    assert sam.get(f"/o/river/spaces/{corner.id}").status_code == 200
    assert "<strong>Coaches corner</strong>" in text(sam.get("/o/river/spaces"))
    members = sam.get(members_url)
    assert members.status_code == 200 and "Sam Lee" in text(members) and "Maria Santos" in text(members)
    assert "Add someone" not in text(members) and ">Suspend</button>" not in text(members)
    assert post(sam, f"/spaces/{corner.id}/members", member=str(world.bea.id), role="member").status_code == 403


def test_announcement_space_is_read_and_commented_by_athletes_but_only_hosts_and_coaches_post(world, sam, maria):
    news = world.space("News", "announcement", members=[world.sam])
    assert post(maria, f"/spaces/{news.id}/posts", body="Season starts Monday").status_code == 303

    page = text(sam.get(f"/o/river/spaces/{news.id}"))
    assert "Season starts Monday" in page
    assert "Only hosts and coaches post here; you can read, react and comment." in page
    assert "Write a post" not in page
    refused = post(sam, f"/spaces/{news.id}/posts", body="Can I?")
    assert refused.status_code == 403
    announcement = post_ids(page)[0]
    assert post(sam, f"/posts/{announcement}/comments", body="Great!").status_code == 303


# --- posting -------------------------------------------------------------------------------------

def test_member_posts_markdown_and_sees_it_in_the_space(world, sam, owner_db):
    response = post(sam, f"/spaces/{world.tennis.id}/posts", body="Hello **team**, _see_ you at 6")

    assert response.status_code == 303
    assert response.headers["Location"] == f"/o/river/spaces/{world.tennis.id}"
    page = text(sam.get(response.headers["Location"]))
    assert "Posted." in flashes(page)
    assert "<p>Hello <strong>team</strong>, <em>see</em> you at 6</p>" in page
    assert [p["body_source"] for p in posts_in_db(owner_db, world.org)] == ["Hello **team**, _see_ you at 6"]


def test_post_by_htmx_redirects_the_whole_page(world, sam):
    response = post(sam, f"/spaces/{world.tennis.id}/posts", headers=HX, body="From htmx")
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == f"/o/river/spaces/{world.tennis.id}"


@pytest.mark.parametrize("body", ["", "   \n  "])
def test_empty_post_is_refused_with_a_message_and_nothing_is_written(world, sam, owner_db, body):
    response = post(sam, f"/spaces/{world.tennis.id}/posts", body=body)
    assert response.status_code == 422
    assert "<html" in text(response)
    assert "Write something before you post." in text(response)

    fragment = post(sam, f"/spaces/{world.tennis.id}/posts", headers=HX, body=body)
    assert fragment.status_code == 422
    assert "<html" not in text(fragment)
    assert text(fragment).lstrip().startswith('<section class="card composer" id="composer">')
    assert "Write something before you post." in text(fragment)
    assert posts_in_db(owner_db, world.org) == []


def test_post_of_20001_characters_is_refused_and_20000_is_accepted(world, sam, owner_db):
    too_long = post(sam, f"/spaces/{world.tennis.id}/posts", body="a" * 20_001)
    assert too_long.status_code == 422
    assert "A post has at most 20,000 characters." in text(too_long)
    assert posts_in_db(owner_db, world.org) == []

    assert post(sam, f"/spaces/{world.tennis.id}/posts", body="a" * 20_000).status_code == 303
    assert len(posts_in_db(owner_db, world.org)[0]["body_source"]) == 20_000


INJECTION = "\n\n".join([
    "<script>alert('boom')</script>",
    '<a href="/o/river/spaces" hx-get="/o/river/spaces/new" hx-trigger="load">htmx</a>',
    '<p onclick="alert(1)" style="color: red">styled</p>',
    '<img src="x" onerror="alert(2)">',
    "[click me](javascript:alert(3))",
    '[a link](https://example.com "a title")',
    "<div data-hx-post=\"/x\">data</div>",
])
FORBIDDEN_ATTRIBUTE = re.compile(r"^(on|hx-|data-|style$)", re.I)


def test_script_htmx_event_and_style_injection_is_stored_as_written_and_shown_sanitised(world, sam, bea, owner_db):
    assert post(sam, f"/spaces/{world.tennis.id}/posts", body=INJECTION).status_code == 303
    stored = posts_in_db(owner_db, world.org)[0]
    assert stored["body_source"] == INJECTION

    for page in (text(bea.get(f"/o/river/spaces/{world.tennis.id}")), text(bea.get(f"/o/river/posts/{stored['id']}")),
                 text(bea.get("/o/river/feed"))):
        body = prose_of(page, stored["id"])
        assert body.elements, "the post body should be on the page"
        for tag, attrs in body.elements:
            assert tag not in ("script", "img", "iframe", "style", "div"), tag
            assert not [name for name in attrs if FORBIDDEN_ATTRIBUTE.match(name)], (tag, attrs)
            assert not (attrs.get("href") or "").lower().startswith("javascript:")
        shown = "".join(body.texts)
        assert "<script>alert('boom')</script>" in shown  # shown as the text it was, not run
        assert ("a", {"href": "https://example.com", "title": "a title", "rel": "nofollow noopener"}) in body.elements
    assert "<script>alert" not in page


def test_mention_of_a_member_becomes_a_link_and_of_someone_outside_the_org_stays_text(world, sam, ctx):
    OtherClub(world)
    body = "Thanks @maria.santos and @otto.outside, not @zed.stranger"
    assert post(sam, f"/spaces/{world.tennis.id}/posts", body=body).status_code == 303

    page = text(sam.get(f"/o/river/spaces/{world.tennis.id}"))
    assert f'<a class="mention" href="/o/river/coaches/{world.maria.id}" rel="nofollow noopener">@maria.santos</a>' \
        in page
    assert re.search(r'<a class="mention" href="[^"]+" rel="nofollow noopener">@otto.outside</a>', page)
    assert "not @zed.stranger</p>" in page


# --- feeds -----------------------------------------------------------------------------------------

def test_home_feed_shows_my_spaces_newest_first_and_names_their_space(world, sam):
    fitness = world.space("Fitness", members=[world.sam])
    chess = world.space("Chess")  # Sam has not joined it
    first = world.write(world.maria, "First", when=minutes(1))
    second = world.write(world.maria, "Second", space=fitness, when=minutes(2))
    world.write(world.maria, "Elsewhere", space=chess, when=minutes(3))
    third = world.write(world.bea, "Third", when=minutes(4))

    page = text(sam.get("/o/river/feed"))

    assert post_ids(page) == [str(third.id), str(second.id), str(first.id)]
    assert "Elsewhere" not in page
    assert f'in <a href="/o/river/spaces/{fitness.id}">Fitness</a>' in page


def test_space_feed_shows_pinned_posts_first_then_newest_first(world, sam, maria):
    old = world.write(world.bea, "Old but important", when=minutes(1))
    middle = world.write(world.cal, "Middle", when=minutes(2))
    new = world.write(world.sam, "New", when=minutes(3))
    space_url = f"/o/river/spaces/{world.tennis.id}"
    assert post_ids(text(sam.get(space_url))) == [str(new.id), str(middle.id), str(old.id)]

    pinned = post(maria, f"/posts/{old.id}/pin")
    assert pinned.status_code == 303
    page = text(sam.get(space_url))
    assert post_ids(page) == [str(old.id), str(new.id), str(middle.id)]
    assert '<span class="badge">pinned</span>' in page
    assert "Pinned to the top." in flashes(text(maria.get(space_url)))

    assert post(maria, f"/posts/{old.id}/unpin").status_code == 303
    assert post_ids(text(sam.get(space_url))) == [str(new.id), str(middle.id), str(old.id)]


def test_only_hosts_pin_posts(world, sam, owner_db):
    target = world.write(world.bea, "Pin me")
    response = post(sam, f"/posts/{target.id}/pin")
    assert response.status_code == 403
    assert "Only hosts pin posts." in text(response)
    assert posts_in_db(owner_db, world.org)[0]["pinned_at"] is None


@pytest.fixture()
def many_posts(world):
    """45 posts in Tennis, one a minute, newest last."""
    return [world.write((world.maria, world.bea, world.cal)[i % 3], f"Post number {i}", when=minutes(i))
            for i in range(45)]


def test_first_page_has_20_newest_posts_and_an_older_posts_loader_revealed_on_scroll(world, sam, many_posts):
    page = text(sam.get(f"/o/river/spaces/{world.tennis.id}"))

    newest = [str(p.id) for p in reversed(many_posts)]
    assert post_ids(page) == newest[:20]
    href = older_link(page)
    assert href.startswith(f"/o/river/spaces/{world.tennis.id}?after=")
    loader = re.search(r'<div class="more" ([^>]*)>', page).group(1)
    assert f'hx-get="{html.escape(href)}"' in loader
    assert 'hx-trigger="revealed"' in loader and 'hx-swap="outerHTML"' in loader


def test_older_posts_by_htmx_is_a_fragment_of_the_next_20_without_duplicates(world, sam, many_posts):
    newest = [str(p.id) for p in reversed(many_posts)]
    first = text(sam.get(f"/o/river/spaces/{world.tennis.id}"))

    second = sam.get(older_link(first), headers=HX)
    assert second.status_code == 200
    assert "HX-Request" in second.headers["Vary"]
    fragment = text(second)
    assert "<html" not in fragment and "Write a post" not in fragment
    assert post_ids(fragment) == newest[20:40]
    assert not set(post_ids(fragment)) & set(post_ids(first))

    third = text(sam.get(older_link(fragment), headers=HX))
    assert post_ids(third) == newest[40:]
    assert older_link(third) is None and 'hx-trigger="revealed"' not in third


def test_older_posts_link_works_as_a_full_page_without_javascript(world, sam, many_posts):
    newest = [str(p.id) for p in reversed(many_posts)]
    first = text(sam.get(f"/o/river/spaces/{world.tennis.id}"))

    response = sam.get(older_link(first))
    page = text(response)
    assert response.status_code == 200
    assert "<html" in page and "<h1>Tennis" in page
    assert "← Newest posts" in page
    assert post_ids(page) == newest[20:40]
    assert older_link(page) is not None

    home = text(sam.get("/o/river/feed"))
    assert post_ids(home) == newest[:20]
    assert post_ids(text(sam.get(older_link(home)))) == newest[20:40]


def test_keyset_pages_neither_skip_nor_repeat_posts_written_in_the_same_instant(world, sam):
    same = minutes(5)
    made = {str(world.write(world.bea, f"Twin {i}", when=same).id) for i in range(25)}

    first = text(sam.get(f"/o/river/spaces/{world.tennis.id}"))
    rest = text(sam.get(older_link(first), headers=HX))

    assert len(post_ids(first)) == 20 and len(post_ids(rest)) == 5
    assert set(post_ids(first)) | set(post_ids(rest)) == made


def test_refused_post_page_still_leads_to_older_posts(world, sam, many_posts):
    newest = [str(p.id) for p in reversed(many_posts)]
    refused = text(post(sam, f"/spaces/{world.tennis.id}/posts", body=""))

    href = older_link(refused)
    assert href.startswith(f"/o/river/spaces/{world.tennis.id}?after=")  # not the POST-only URL it came from
    response = sam.get(href)
    assert response.status_code == 200 and post_ids(text(response)) == newest[20:40]


@pytest.mark.parametrize("after", [
    "not-a-cursor",
    "%%%",
    base64.urlsafe_b64encode(b"yesterday|nobody").decode(),
    base64.urlsafe_b64encode(b"2026-01-01T00:00:00|4f1c1d9e-0000-0000-0000-000000000000").decode(),  # no zone
    "A" * 500,
])
def test_malformed_after_is_treated_as_the_first_page(world, sam, many_posts, after):
    newest = [str(p.id) for p in reversed(many_posts)]
    for headers in ({}, HX):
        response = sam.get(f"/o/river/spaces/{world.tennis.id}?after={quote(after)}", headers=headers)
        assert response.status_code == 200
        assert post_ids(text(response)) == newest[:20]
    assert post_ids(text(sam.get(f"/o/river/feed?after={quote(after)}"))) == newest[:20]


def test_feed_pages_cost_the_same_number_of_queries_for_5_or_20_posts(quiet, app, world, sam):
    authors = [world.maria, world.sam, world.bea, world.cal, world.dee]
    readers = [world.sam, world.bea, world.cal]

    def add(start: int, count: int) -> None:
        for i in range(start, start + count):
            made = world.write(authors[i % len(authors)], f"Post {i} by someone", when=minutes(i))
            world.react(readers[i % len(readers)], made, "like")
            world.react(readers[(i + 1) % len(readers)], made, "celebrate")
            world.comment(readers[i % len(readers)], made, f"Comment {i}")

    space_url = f"/o/river/spaces/{world.tennis.id}"
    add(0, 5)
    tenancy.activate(world.org.id)
    service.set_pinned(world.write(world.maria, "Pinned rules", when=minutes(0)), world.maria, True)
    db.session.commit()
    statements_for(app, sam, space_url)  # warm up: first-request work is not the page's

    space_with_5 = statements_for(app, sam, space_url)
    home_with_5 = statements_for(app, sam, "/o/river/feed")
    add(5, 15)
    space_with_20 = statements_for(app, sam, space_url)
    home_with_20 = statements_for(app, sam, "/o/river/feed")

    assert len(post_ids(text(sam.get(space_url)))) == 21  # 20 and the pinned one
    assert space_with_20 == space_with_5
    assert home_with_20 == home_with_5
    # Two of them are media: the page's attachments, and my own media the composer offers to attach;
    # two are the nav's badges (unread chat messages and notifications).
    assert space_with_5 <= 18, space_with_5


# --- reactions -----------------------------------------------------------------------------------

def test_reaction_toggles_in_place_by_htmx_with_aria_pressed(world, sam):
    target = world.write(world.bea, "React to me")

    on = post(sam, f"/posts/{target.id}/react/like", headers=HX)
    fragment = text(on)
    assert on.status_code == 200
    assert "<html" not in fragment
    assert fragment.lstrip().startswith(f'<div class="reactions" id="reactions-{target.id}">')
    like = reaction_button(fragment, target.id, "like")
    assert 'aria-pressed="true"' in like and "<span>1</span>" in like
    assert 'aria-pressed="false"' in reaction_button(fragment, target.id, "funny")

    off = text(post(sam, f"/posts/{target.id}/react/like", headers=HX))
    like = reaction_button(off, target.id, "like")
    assert 'aria-pressed="false"' in like and "<span>" not in like


def test_reaction_counts_everyone_and_presses_only_mine(world, sam, bea):
    target = world.write(world.maria, "Count us")
    world.react(world.cal, target, "like")
    world.react(world.dee, target, "celebrate")

    assert post(bea, f"/posts/{target.id}/react/like").status_code == 303
    page = text(bea.get(f"/o/river/spaces/{world.tennis.id}"))
    assert "<span>2</span>" in reaction_button(page, target.id, "like")
    assert 'aria-pressed="true"' in reaction_button(page, target.id, "like")
    assert 'aria-pressed="false"' in reaction_button(page, target.id, "celebrate")
    assert "<span>1</span>" in reaction_button(page, target.id, "celebrate")
    assert 'aria-pressed="false"' in reaction_button(text(sam.get(f"/o/river/posts/{target.id}")), target.id, "like")


def test_reaction_without_javascript_goes_back_to_the_page_it_came_from(world, sam, owner_db):
    target = world.write(world.bea, "Plain form")
    page = text(sam.get(f"/o/river/spaces/{world.tennis.id}"))
    back = f"/o/river/spaces/{world.tennis.id}#post-{target.id}"
    assert f'name="next" value="{back}"' in page

    response = post(sam, f"/posts/{target.id}/react/support", next=back)
    assert response.status_code == 303 and response.headers["Location"] == back
    assert rows(owner_db, world.org, "SELECT kind FROM reactions") == [{"kind": "support"}]

    elsewhere = post(sam, f"/posts/{target.id}/react/support", next="https://evil.example/")
    assert elsewhere.headers["Location"] == f"/o/river/posts/{target.id}"


def test_unknown_reaction_is_refused_and_nothing_is_written(world, sam, owner_db):
    target = world.write(world.bea, "Hmm")
    response = post(sam, f"/posts/{target.id}/react/angry", headers=HX)
    assert 400 <= response.status_code < 500
    assert "<html" not in text(response)
    assert rows(owner_db, world.org, "SELECT id FROM reactions") == []


def test_non_member_cannot_react_in_an_open_space(world, app, owner_db):
    target = world.write(world.bea, "Members only")
    otto = logged_in(app, "otto@example.com")
    assert post(otto, f"/posts/{target.id}/react/like").status_code == 403
    assert rows(owner_db, world.org, "SELECT id FROM reactions") == []


# --- comments --------------------------------------------------------------------------------------

def test_comment_and_one_level_of_replies(world, sam, bea, app, owner_db):
    target = world.write(world.maria, "Discuss")

    commented = post(sam, f"/posts/{target.id}/comments", body="Great **serve**")
    assert commented.status_code == 303
    top = rows(owner_db, world.org, "SELECT id FROM comments")[0]["id"]
    assert commented.headers["Location"] == f"/o/river/posts/{target.id}#comment-{top}"

    assert post(bea, f"/posts/{target.id}/comments", body="Agreed", parent=str(top)).status_code == 303
    reply = rows(owner_db, world.org, "SELECT id FROM comments WHERE body_source = 'Agreed'")[0]["id"]
    cal = logged_in(app, "cal@example.com")
    assert post(cal, f"/posts/{target.id}/comments", body="Me too", parent=str(reply)).status_code == 303

    parents = {r["body_source"]: r["parent_id"]
               for r in rows(owner_db, world.org, "SELECT body_source, parent_id FROM comments")}
    assert parents == {"Great **serve**": None, "Agreed": top, "Me too": top}  # replies stay one level deep
    page = text(sam.get(f"/o/river/posts/{target.id}"))
    assert "<p>Great <strong>serve</strong></p>" in page
    assert page.count('<div class="replies">') == 1
    assert page.index("Great <strong>serve</strong>") < page.index('<div class="replies">') < page.index("Agreed") \
        < page.index("Me too")
    assert page.count("<summary>Reply</summary>") == 1  # only the top-level comment takes replies
    assert "3 comments" in text(sam.get(f"/o/river/spaces/{world.tennis.id}"))


def test_comment_by_htmx_loads_the_post_again_at_the_new_comment(world, sam, owner_db):
    target = world.write(world.maria, "Discuss")

    response = post(sam, f"/posts/{target.id}/comments", headers=HX, body="From htmx")

    made = rows(owner_db, world.org, "SELECT id FROM comments")[0]["id"]
    assert response.status_code == 204
    # Not HX-Redirect: a location differing only in its #fragment would scroll, not reload.
    assert response.headers["HX-Location"] == f"/o/river/posts/{target.id}#comment-{made}"
    assert "HX-Redirect" not in response.headers
    assert "comments-changed" in response.headers["HX-Trigger"]


def test_empty_comment_is_refused_with_a_message_and_the_post_keeps_its_comments(world, sam):
    target = world.write(world.maria, "Discuss")
    world.comment(world.bea, target, "An earlier comment")

    response = post(sam, f"/posts/{target.id}/comments", body="  ")
    page = text(response)
    assert response.status_code == 422
    assert "Write something before you comment." in page
    assert "An earlier comment" in page and "No comments yet." not in page

    fragment = post(sam, f"/posts/{target.id}/comments", headers=HX, body="")
    assert fragment.status_code == 422
    assert "<html" not in text(fragment) and text(fragment).lstrip().startswith('<div id="comment-form">')


def test_reply_to_a_comment_of_another_post_is_refused(world, sam, owner_db):
    one = world.write(world.maria, "One")
    two = world.write(world.maria, "Two")
    elsewhere = world.comment(world.bea, two, "On two")
    response = post(sam, f"/posts/{one.id}/comments", body="Crossed", parent=str(elsewhere.id))
    assert response.status_code == 422
    assert "Reply to a comment of this post." in text(response)
    assert len(rows(owner_db, world.org, "SELECT id FROM comments")) == 1


def test_comment_is_deleted_by_its_author_or_a_host_but_not_by_others(world, sam, bea, maria):
    target = world.write(world.maria, "Discuss")
    sams = world.comment(world.sam, target, "Sam's comment")
    beas = world.comment(world.bea, target, "Bea's comment")

    assert post(bea, f"/comments/{sams.id}/delete").status_code == 403
    assert post(sam, f"/comments/{sams.id}/delete").status_code == 303
    assert post(maria, f"/comments/{beas.id}/delete").status_code == 303
    page = text(sam.get(f"/o/river/posts/{target.id}"))
    assert "Sam's comment" not in page and "Bea's comment" not in page
    assert page.count('<p class="muted">Comment deleted.</p>') == 2


# --- editing and deleting posts --------------------------------------------------------------------

def test_author_edits_a_post_and_hosts_see_the_earlier_version(world, sam, maria, owner_db):
    target = world.write(world.sam, "First draft")

    form = sam.get(f"/o/river/posts/{target.id}/edit")
    assert form.status_code == 200 and "First draft</textarea>" in text(form)
    saved = sam.post(f"/o/river/posts/{target.id}/edit", data={"csrf_token": csrf_from(text(form)),
                                                                "body": "Second **draft**"})
    assert saved.status_code == 303 and saved.headers["Location"] == f"/o/river/posts/{target.id}"

    own = text(sam.get(saved.headers["Location"]))
    assert "<strong>draft</strong>" in own and "(edited)" in own and "Saved." in flashes(own)
    assert "Earlier versions" not in own
    hosts = text(maria.get(f"/o/river/posts/{target.id}"))
    assert "Earlier versions (1)" in hosts and "<p>First draft</p>" in hosts
    assert posts_in_db(owner_db, world.org)[0]["body_source"] == "Second **draft**"


def test_only_the_author_edits_a_post(world, bea, maria, owner_db):
    target = world.write(world.sam, "Mine")
    assert bea.get(f"/o/river/posts/{target.id}/edit").status_code == 403
    assert post(bea, f"/posts/{target.id}/edit", body="Hijacked").status_code == 403
    assert post(maria, f"/posts/{target.id}/edit", body="Hosts neither").status_code == 403
    assert posts_in_db(owner_db, world.org)[0]["body_source"] == "Mine"
    assert ">Edit</a>" not in text(bea.get(f"/o/river/posts/{target.id}"))


def test_edit_to_empty_is_refused_with_a_message(world, sam):
    target = world.write(world.sam, "Mine")
    response = post(sam, f"/posts/{target.id}/edit", headers=HX, body="")
    assert response.status_code == 422
    assert "<html" not in text(response) and "Write something before you post." in text(response)


def test_author_or_host_deletes_a_post_but_other_members_cannot(world, sam, bea, maria, app):
    sams = world.write(world.sam, "Sam's post")
    beas = world.write(world.bea, "Bea's post")
    cal = logged_in(app, "cal@example.com")
    space_url = f"/o/river/spaces/{world.tennis.id}"

    refused = post(cal, f"/posts/{beas.id}/delete")
    assert refused.status_code == 403
    assert "Only the author, a host or an admin deletes a post." in text(refused)

    assert post(sam, f"/posts/{sams.id}/delete").status_code == 303
    assert post(maria, f"/posts/{beas.id}/delete").status_code == 303
    page = text(bea.get(space_url))
    assert post_ids(page) == [] and "No posts yet." in page
    assert bea.get(f"/o/river/posts/{sams.id}").status_code == 404
    assert "Deleted." in text(maria.get(f"/o/river/posts/{sams.id}"))  # hosts still see what it was


# --- flags and moderation --------------------------------------------------------------------------

def test_flagging_my_own_post_is_refused_with_a_message(world, sam, owner_db):
    mine = world.write(world.sam, "Mine")
    assert ">Flag</a>" not in text(sam.get(f"/o/river/posts/{mine.id}"))
    response = post(sam, f"/posts/{mine.id}/flag", reason="Oops")
    assert response.status_code == 422
    assert "You cannot flag what you wrote yourself." in text(response)
    assert rows(owner_db, world.org, "SELECT id FROM flags") == []


def test_flagging_twice_is_refused_and_a_reason_is_required(world, bea):
    target = world.write(world.sam, "Questionable")
    page = text(bea.get(f"/o/river/posts/{target.id}/flag"))
    assert "Flag this post" in page and "Questionable" in page

    first = post(bea, f"/posts/{target.id}/flag", reason="Off topic")
    assert first.status_code == 303 and first.headers["Location"] == f"/o/river/posts/{target.id}"
    assert "Thank you: the hosts will review it." in flashes(text(bea.get(first.headers["Location"])))

    again = post(bea, f"/posts/{target.id}/flag", headers=HX, reason="Still off topic")
    assert again.status_code == 422
    assert "<html" not in text(again) and "You have flagged this already" in text(again)
    empty = post(bea, f"/posts/{target.id}/flag", reason="")
    assert empty.status_code == 422 and "Say what is wrong with it." in text(empty)


def test_third_flag_hides_the_post_from_the_feed_but_hosts_still_see_it(world, app, sam, maria, ada):
    target = world.write(world.sam, "Rude words")
    world.flag(world.bea, target, "Rude")
    world.flag(world.cal, target, "Very rude")
    dee = logged_in(app, "dee@example.com")
    space_url = f"/o/river/spaces/{world.tennis.id}"

    third = post(dee, f"/posts/{target.id}/flag", reason="Rude to me")

    assert third.status_code == 303
    landing = dee.get(third.headers["Location"])
    assert landing.status_code == 200  # not the hidden post's 404
    assert "Thank you: the hosts will review it. It is hidden until then." in flashes(text(landing))
    for browser in (sam, dee, maria):
        assert str(target.id) not in post_ids(text(browser.get(space_url)))
        assert str(target.id) not in post_ids(text(browser.get("/o/river/feed")))
    assert dee.get(f"/o/river/posts/{target.id}").status_code == 404
    host_view = maria.get(f"/o/river/posts/{target.id}")
    assert host_view.status_code == 200
    assert "Hidden after flags, waiting for review. Only hosts see it." in text(host_view)

    for moderator in (maria, ada):
        queue = text(moderator.get("/o/river/moderation"))
        item = re.search(rf'<section class="card moderation-item" id="post-{target.id}">(.*?)</section>', queue,
                         re.S).group(1)
        assert "Post by <strong>Sam Lee</strong> in Tennis" in item and "3 flags" in item
        assert '<span class="badge">hidden</span>' in item
        assert "“Rude”" in item and "“Very rude”" in item and "“Rude to me”" in item
    assert "Nothing to review." in text(dee.get("/o/river/moderation"))
    assert f"/members/{world.sam.id}/suspend" in text(maria.get("/o/river/moderation"))  # suspend the author from here


def test_moderation_offers_no_suspend_form_for_my_own_flagged_post(world, bea, maria):
    mine = world.write(world.maria, "Host's own post")
    world.flag(world.bea, mine, "Wrong time")
    queue = text(maria.get("/o/river/moderation"))
    assert "“Wrong time”" in queue
    assert "Suspend author for" not in queue
    refused = post(maria, f"/spaces/{world.tennis.id}/members/{world.maria.id}/suspend", days="3")
    assert refused.status_code == 422 and "You cannot suspend yourself." in text(refused)


def test_moderation_lists_flagged_comments_too(world, bea, maria):
    target = world.write(world.maria, "Fine post")
    rude = world.comment(world.sam, target, "Rude comment")
    assert post(bea, f"/comments/{rude.id}/flag", reason="Insulting").status_code == 303
    queue = text(maria.get("/o/river/moderation"))
    assert f'id="comment-{rude.id}"' in queue and "Comment by <strong>Sam Lee</strong>" in queue
    assert "“Insulting”" in queue


def test_host_restores_a_hidden_post_and_it_returns_to_the_feed(world, sam, maria, owner_db):
    target = world.write(world.sam, "Actually fine")
    for member in (world.bea, world.cal, world.dee):
        world.flag(member, target)

    restored = post(maria, f"/moderation/posts/{target.id}/restore")

    assert restored.status_code == 303 and restored.headers["Location"] == "/o/river/moderation"
    queue = text(maria.get("/o/river/moderation"))
    assert "Restored." in flashes(queue) and "Nothing to review." in queue
    assert str(target.id) in post_ids(text(sam.get(f"/o/river/spaces/{world.tennis.id}")))
    assert all(r["resolved_at"] for r in rows(owner_db, world.org, "SELECT resolved_at FROM flags"))


def test_restored_post_is_hidden_again_only_after_three_new_flags(world, app, maria, owner_db):
    target = world.write(world.sam, "Borderline")
    for member in (world.bea, world.cal, world.dee):
        world.flag(member, target)
    assert post(maria, f"/moderation/posts/{target.id}/restore").status_code == 303

    otto = logged_in(app, "otto@example.com")  # reads the open space without joining it
    assert post(otto, f"/posts/{target.id}/flag", reason="I disagree").status_code == 303

    assert posts_in_db(owner_db, world.org)[0]["hidden_at"] is None
    assert str(target.id) in post_ids(text(otto.get(f"/o/river/spaces/{world.tennis.id}")))
    assert re.search(r"· 1 flag\s", text(maria.get("/o/river/moderation")))


def test_host_removes_a_flagged_post_for_everyone(world, sam, bea, maria):
    target = world.write(world.sam, "Spam spam")
    world.flag(world.bea, target, "Spam")

    assert post(maria, f"/moderation/posts/{target.id}/remove").status_code == 303

    assert "Nothing to review." in text(maria.get("/o/river/moderation"))
    assert str(target.id) not in post_ids(text(bea.get(f"/o/river/spaces/{world.tennis.id}")))
    assert sam.get(f"/o/river/posts/{target.id}").status_code == 404
    assert "Removed by a moderator." in text(maria.get(f"/o/river/posts/{target.id}"))


def test_members_cannot_moderate(world, bea, owner_db):
    target = world.write(world.sam, "Spam spam")
    world.flag(world.cal, target)
    assert post(bea, f"/moderation/posts/{target.id}/remove").status_code == 403
    assert post(bea, f"/moderation/posts/{target.id}/restore").status_code == 403
    assert posts_in_db(owner_db, world.org)[0]["removed_at"] is None


def test_suspended_author_can_read_but_not_post_or_comment(world, sam, maria, owner_db):
    target = world.write(world.bea, "Hello")
    queue_form = {"days": "3", "next": "/o/river/moderation"}

    suspended = post(maria, f"/spaces/{world.tennis.id}/members/{world.sam.id}/suspend", **queue_form)

    assert suspended.status_code == 303 and suspended.headers["Location"] == "/o/river/moderation"
    page = text(sam.get(f"/o/river/spaces/{world.tennis.id}"))
    assert "You are suspended from posting here until" in page and "You can still read." in page
    assert "Write a post" not in page and str(target.id) in post_ids(page)
    refused = post(sam, f"/spaces/{world.tennis.id}/posts", body="Let me in")
    assert refused.status_code == 403
    assert "You are suspended from posting here until" in text(refused)
    assert post(sam, f"/posts/{target.id}/comments", body="Me neither").status_code == 403
    assert [p["body_source"] for p in posts_in_db(owner_db, world.org)] == ["Hello"]
    assert rows(owner_db, world.org, "SELECT id FROM comments") == []
    members = text(maria.get(f"/o/river/spaces/{world.tennis.id}/members"))
    assert "suspended until" in members


def test_suspension_needs_a_host_and_1_to_365_days(world, sam, maria):
    assert post(sam, f"/spaces/{world.tennis.id}/members/{world.bea.id}/suspend", days="3").status_code == 403
    response = post(maria, f"/spaces/{world.tennis.id}/members/{world.bea.id}/suspend", days="0")
    assert response.status_code == 422 and "Suspend for 1 to 365 days." in text(response)


# --- other organizations ---------------------------------------------------------------------------

def test_another_organizations_post_is_not_found(world, sam, maria):
    hill = OtherClub(world)
    space_id, post_id, comment_id = hill.space_id, hill.post_id, hill.comment_id
    for path in (f"/o/river/posts/{post_id}", f"/o/river/spaces/{space_id}", f"/o/river/posts/{post_id}/flag",
                 f"/o/hill/posts/{post_id}", "/o/hill/feed"):
        assert sam.get(path).status_code == 404, path
    assert post(sam, f"/posts/{post_id}/react/like").status_code == 404
    assert post(sam, f"/posts/{post_id}/comments", body="Hello?").status_code == 404
    assert post(sam, f"/comments/{comment_id}/delete").status_code == 404
    assert post(maria, f"/moderation/posts/{post_id}/remove").status_code == 404
    assert post(maria, f"/moderation/comments/{comment_id}/restore").status_code == 404


def test_unreadable_ids_are_not_found(world, sam):
    for path in ("/o/river/posts/not-a-uuid", "/o/river/spaces/123", "/o/river/comments/x/flag"):
        assert sam.get(path).status_code == 404, path


# --- new posts while I read ------------------------------------------------------------------------

def poller(page: str) -> str:
    return html.unescape(re.search(r'<div id="new-posts" hx-get="([^"]+)" hx-trigger="every 30s, posts-changed from:body"',
                                   page).group(1))


def test_new_posts_poll_is_204_until_someone_else_posts_then_shows_a_bar(world, sam):
    space_url = f"/o/river/spaces/{world.tennis.id}"
    space_poll = poller(text(sam.get(space_url)))
    home_poll = poller(text(sam.get("/o/river/feed")))
    assert sam.get(space_poll, headers=HX).status_code == 204

    world.write(world.sam, "My own post", when=datetime.now(UTC) + timedelta(seconds=1))
    assert sam.get(space_poll, headers=HX).status_code == 204
    assert sam.get(home_poll, headers=HX).status_code == 204

    world.write(world.bea, "Bea's news", when=datetime.now(UTC) + timedelta(seconds=1))
    world.write(world.cal, "Cal's news", when=datetime.now(UTC) + timedelta(seconds=1))
    bar = sam.get(space_poll, headers=HX)
    assert bar.status_code == 200 and "<html" not in text(bar)
    assert text(bar) == f'<a class="new-posts" href="{space_url}">2 new posts · show</a>'
    assert text(sam.get(home_poll, headers=HX)) == '<a class="new-posts" href="/o/river/feed">2 new posts · show</a>'


@pytest.mark.parametrize("since", ["", "yesterday", "2026-01-01T00:00:00", "2026-13-01T00:00:00+00:00"])
def test_new_posts_poll_with_an_unreadable_since_is_400(world, sam, since):
    response = sam.get(f"/o/river/spaces/{world.tennis.id}/new-posts?since={quote(since)}", headers=HX)
    assert response.status_code == 400
    assert "<html" not in text(response)


# --- mentions while I type -------------------------------------------------------------------------

def test_mention_suggestions_list_members_whose_handle_starts_with_what_i_typed(world, sam, ctx):
    OtherClub(world)
    url = f"/o/river/spaces/{world.tennis.id}/mentions"

    response = sam.get(f"{url}?body={quote('Great rally @ma')}", headers=HX)
    fragment = text(response)
    assert response.status_code == 200 and "<html" not in fragment
    assert "<code>@maria.santos</code> Maria Santos" in fragment
    assert "Sam Lee" not in fragment

    assert text(sam.get(f"{url}?body={quote('@zed')}", headers=HX)).strip() == ""  # another organization
    assert text(sam.get(f"{url}?body={quote('no mention here')}", headers=HX)).strip() == ""
    assert text(sam.get(f"{url}?body={quote('mail me@ma')}", headers=HX)).strip() == ""


# --- forms without their token ---------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/spaces/{space}/posts", "/posts/{post}/react/like", "/posts/{post}/comments",
                                  "/spaces/{space}/join", "/posts/{post}/flag", "/spaces/new"])
def test_form_without_csrf_token_is_400_and_writes_nothing(world, maria, owner_db, path):
    target = world.write(world.bea, "Target")
    url = "/o/river" + path.format(space=world.tennis.id, post=target.id)

    response = maria.post(url, data={"body": "Hi", "reason": "x", "name": "New", "visibility": "open"})

    assert response.status_code == 400
    assert "Your form expired or was sent without its security token." in text(response)
    assert len(posts_in_db(owner_db, world.org)) == 1
    assert rows(owner_db, world.org, "SELECT id FROM reactions UNION ALL SELECT id FROM comments "
                                     "UNION ALL SELECT id FROM flags") == []


# --- rendered once, shown fresh ----------------------------------------------------------------------
# A post's article and its reaction bar are rendered once and cached (coach/blueprints/spaces/fragments.py).
# What a reader would notice if a cached one outlived the write that changed it, or reached the wrong reader.

KEY_RE = re.compile(r'name="idempotency_key" value="([^"]+)"')


def article(page: str, post_id) -> str:
    return re.search(rf'<article class="card post[^"]*" id="post-{post_id}">.*?</article>', page, re.S).group(0)


def reaction_bar(page: str, post_id) -> str:
    return re.search(rf'<div class="reactions" id="reactions-{post_id}">.*?</div>', page, re.S).group(0)


def pages_showing(world, target, *browsers) -> list:
    return [(browser, path) for browser in browsers
            for path in ("/o/river/feed", f"/o/river/spaces/{world.tennis.id}", f"/o/river/posts/{target.id}")]


def test_an_edit_shows_at_once_on_every_page_that_showed_the_post(world, sam, bea):
    target = world.write(world.sam, "First **draft**")
    seen = pages_showing(world, target, sam, bea)
    for browser, path in seen:
        assert "First <strong>draft</strong>" in article(text(browser.get(path)), target.id)

    assert post(sam, f"/posts/{target.id}/edit", body="Final _version_").status_code == 303
    for browser, path in seen:
        shown = article(text(browser.get(path)), target.id)
        assert "Final <em>version</em>" in shown and "draft" not in shown and "(edited)" in shown


def test_a_deleted_post_leaves_every_page_that_showed_it(world, sam, bea):
    target, kept = world.write(world.sam, "Soon gone"), world.write(world.bea, "Staying")
    for browser, path in pages_showing(world, target, sam, bea)[:2]:
        assert str(target.id) in post_ids(text(browser.get(path)))

    assert post(sam, f"/posts/{target.id}/delete").status_code == 303
    for path in ("/o/river/feed", f"/o/river/spaces/{world.tennis.id}"):
        assert post_ids(text(bea.get(path))) == [str(kept.id)]
    assert bea.get(f"/o/river/posts/{target.id}").status_code == 404


def test_a_new_name_a_comment_and_a_pin_show_on_posts_already_shown(world, sam, bea):
    target = world.write(world.sam, "Named")
    space_url = f"/o/river/spaces/{world.tennis.id}"
    before = article(text(bea.get(space_url)), target.id)
    assert "<strong>Sam Lee</strong>" in before and "0 comments" in before and "pinned" not in before

    tenancy.activate(world.org.id)
    world.sam.user.display_name = "Samuel Lee"
    db.session.commit()
    world.comment(world.bea, target, "Nice")
    tenancy.activate(world.org.id)
    service.set_pinned(target, world.maria, True)
    db.session.commit()

    after = article(text(bea.get(space_url)), target.id)
    assert "<strong>Samuel Lee</strong>" in after and "1 comment<" in after and '<span class="badge">pinned</span>' in after
    assert "<strong>Samuel Lee</strong>" in article(text(bea.get("/o/river/feed")), target.id)


def test_an_attachment_that_finishes_processing_or_is_deleted_shows_as_it_is_now(world, bea):
    tenancy.activate(world.org.id)
    key = f"{world.org.id}/{world.sam.id}/clip"
    item = MediaItem(tenant_id=world.org.id, owner_membership_id=world.sam.id, audience="organization",
                     kind="image", title="Serve", filename="serve.jpg", content_type="image/jpeg",
                     status="processing", declared_bytes=1000, size_bytes=1000, counted_bytes=1000, part_bytes=1000,
                     part_count=1, original_key=f"{key}/original", derived_keys={},
                     upload_expires_at=datetime.now(UTC), uploaded_at=datetime.now(UTC))
    db.session.add(item)
    db.session.flush()
    target = service.create_post(world.tennis, world.sam, "Look at this serve", attachments=[item])
    db.session.commit()
    space_url = f"/o/river/spaces/{world.tennis.id}"
    assert "(processing)" in article(text(bea.get(space_url)), target.id)

    tenancy.activate(world.org.id)
    assert media_service.record_renditions(db.session.get(MediaItem, item.id), {"large": f"{key}/large.webp"},
                                           100, width=640, height=480)
    db.session.commit()
    ready = article(text(bea.get(space_url)), target.id)
    assert "(processing)" not in ready and 'width="640" height="480"' in ready and "large.webp" in ready

    tenancy.activate(world.org.id)
    media_service.delete_item(db.session.get(MediaItem, item.id), world.sam)
    db.session.commit()
    gone = article(text(bea.get(space_url)), target.id)
    assert "attachment" not in gone and "Look at this serve" in gone


def test_each_reader_sees_times_in_their_own_zone(world, sam, bea):
    target = world.write(world.maria, "Training at noon", when=datetime(2026, 7, 1, 10, 0, tzinfo=UTC))
    tenancy.activate(world.org.id)
    world.bea.user.timezone = "America/New_York"
    db.session.commit()
    space_url = f"/o/river/spaces/{world.tennis.id}"
    assert ">1 Jul 12:00</time>" in article(text(sam.get(space_url)), target.id)  # Berlin, summer
    assert ">1 Jul 06:00</time>" in article(text(bea.get(space_url)), target.id)  # New York, summer
    assert ">1 Jul 12:00</time>" in article(text(sam.get(space_url)), target.id)


def test_a_reader_who_may_not_react_gets_counts_not_forms_after_members_were_shown_forms(world, app, sam):
    target = world.write(world.bea, "Open to read")
    world.react(world.cal, target, "like")
    space_url = f"/o/river/spaces/{world.tennis.id}"
    assert "<form" in reaction_bar(text(sam.get(space_url)), target.id)

    otto = logged_in(app, "otto@example.com")  # not in the space: reads an open space, does not react
    bar = reaction_bar(text(otto.get(space_url)), target.id)
    assert "<form" not in bar and "csrf_token" not in bar and "<span>1</span>" in bar


def test_my_pressed_reactions_stay_mine_when_others_open_the_same_post(world, sam, bea):
    target = world.write(world.maria, "React")
    assert post(bea, f"/posts/{target.id}/react/funny").status_code == 303
    for _ in range(2):  # the second time from the cache
        assert 'aria-pressed="true"' in reaction_button(text(bea.get("/o/river/feed")), target.id, "funny")
        assert 'aria-pressed="false"' in reaction_button(text(sam.get("/o/river/feed")), target.id, "funny")
        assert "<span>1</span>" in reaction_button(text(sam.get("/o/river/feed")), target.id, "funny")


def test_every_reaction_form_has_a_key_of_its_own_and_new_ones_on_every_load(world, sam):
    made = [world.write(world.bea, f"Post {i}", when=minutes(i)) for i in range(3)]
    space_url = f"/o/river/spaces/{world.tennis.id}"
    first, second = (text(sam.get(space_url)) for _ in range(2))
    keys = [KEY_RE.findall(reaction_bar(page, p.id)) for page in (first, second) for p in made]
    flat = [k for bar in keys for k in bar]
    assert all(len(bar) == 5 for bar in keys)
    assert len(set(flat)) == len(flat) == 30


def test_a_reaction_form_posted_as_the_page_wrote_it_works_without_javascript(world, sam, owner_db):
    target = world.write(world.bea, "Plain browser")
    page = text(sam.get("/o/river/feed"))
    form = re.search(r'<form method="post" action="([^"]+/react/celebrate)"[^>]*>(.*?)</form>',
                     reaction_bar(page, target.id), re.S)
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form.group(2)))
    assert set(fields) == {"csrf_token", "idempotency_key", "next"}
    response = sam.post(html.unescape(form.group(1)), data={k: html.unescape(v) for k, v in fields.items()})
    assert response.status_code == 303 and response.headers["Location"] == f"/o/river/feed#post-{target.id}"
    assert rows(owner_db, world.org, "SELECT kind FROM reactions") == [{"kind": "celebrate"}]


def test_older_posts_are_the_same_articles_as_a_fragment_and_as_a_page(world, sam, many_posts):
    first = text(sam.get("/o/river/feed"))
    older = older_link(first)

    def articles(page: str) -> list[str]:
        # Keys are new on every load, the page's own path is where a plain form comes back to, and the CSRF token
        # is signed anew with the time on every request (two requests a second apart differ there).
        found = re.findall(r'<article class="card post.*?</article>', page, re.S)
        return [re.sub(r'name="(next|csrf_token)" value="[^"]*"', "", KEY_RE.sub("", a)) for a in found]

    fragment, full = text(sam.get(older, headers=HX)), text(sam.get(older))
    assert "<html" not in fragment and "<html" in full
    for one, other in zip(articles(fragment), articles(full)):
        # The first difference, line by line (an intermittent one on a loaded machine must be readable in CI's log).
        assert one == other, "\n".join(difflib.unified_diff(one.splitlines(), other.splitlines(), "fragment", "page",
                                                             lineterm=""))
    assert len(articles(fragment)) == len(articles(full)) == 20
