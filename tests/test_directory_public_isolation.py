"""The public directory shows listed organizations only (issue 22): a crawl of every public directory page.

River Academy is listed, Hill Club is not (tests/directory_support.py). Starting from searches (words, a typo, a
prefix, the unlisted coach's own words, every facet, every sort), the crawl follows every link under /coaches
that the pages give (cards, facets, next pages, profiles, reviews "More", free times to book) as an anonymous
visitor and as a signed-in athlete of River. No page ever shows Hill's name, its coach's name, handle, headline or
bio, or any of Hill's ids; every address of Hill's coach (and her handle under River's address, Maria's under
Hill's) is a 404. The crawl asserts it reached every GET route of the public blueprint, so a new page is not
skipped silently.

Then River's admin unlists River on the settings page (a plain POST, as the browser sends it): at once (before any
job runs) every River coach's public address is a 404 and no search shows them; listing again and delivering the
events brings them back.
"""
from __future__ import annotations

import html
import re
from collections import deque
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from werkzeug.exceptions import HTTPException

from coach import clock, tenancy
from coach.directory import public as listed
from coach.directory import reviews
from coach.extensions import db
from tests.conftest import Auth
from tests.crawl_support import _echo_forms
from tests.directory_support import DirectoryWorld
from tests.fuzz_support import forms_in

RIVER_HANDLES = ("maria-santos", "jon-berg")
LINK_RE = re.compile(r'(?:href|hx-get|action)="(/coaches[^"]*)"')
MAX_PAGES = 120  # every search, facet and sort of two coaches, their profiles, reviews and free times
# Searches a visitor might type: words, a typo, a prefix, stop words only, the unlisted coach's own words (a
# typo of her name: her name itself would be echoed back in the search box), and tsquery syntax.
QUERIES = ("", "valorant aim coach", "valorrant", "tenn", "the and of", "yarra youngg", "aim hill",
           "Valorant aim coach (hill)", "hill club", 'aim & !coach | "(x)":*')
FACETS = ({"discipline": "valorant"}, {"skill": "aim"}, {"lang": "en"}, {"lang": "de"}, {"rating": "4"},
          {"verified": "1"}, {"week": "1"}, {"mode": "online"}, {"mode": "in_person"}, {"price": "1"},
          {"sort": "rating"}, {"sort": "price"}, {"sort": "soonest"}, {"sort": "relevance", "q": "aim"})


@pytest.fixture()
def world(ctx, app, monkeypatch):
    monkeypatch.setitem(app.config, "RATELIMIT_DIRECTORY_SEARCH", "off")  # hundreds of searches in a minute
    monkeypatch.setitem(app.config, "DIRECTORY_PAGE_SIZE", 1)  # next-page links with two coaches
    w = DirectoryWorld()
    # Reviews of Maria's: more than a page of them (her profile's reviews and their "More").
    tenancy.activate(w.org.id)
    reviews.write_review(w.ended, w.ana, 5, "Sharp drills, clear feedback.")
    for days in range(2, 9):
        athlete = (w.ana, w.ben)[days % 2]
        ended = w.write_booking(w.maria, w.aim, athlete, clock.now().replace(microsecond=0) - timedelta(days=days),
                                "ended")
        reviews.write_review(ended, athlete, 3 + days % 3, f"Session {days}: good routine for warm-ups.")
    db.session.commit()
    w.publish()
    tenancy.activate(w.hill.id)
    yara_slot = listed.next_slots(w.yara_offering, clock.now())
    w.yara_start = yara_slot[0].starts_at if yara_slot else clock.now() + timedelta(days=1)
    # Hill's ids and words, read while its rows are loaded.
    w.hill_needles = ["Hill Club", "Yara Young", "yara-young", "(hill)", "Aim, aim, aim", "Zed Stranger",
                      "/coaches/hill", *(str(x) for x in (w.hill.id, w.yara.id, w.zed.id, w.yara_profile.id,
                                                          w.yara_offering.id))]
    w.yara_offering_id, w.yara_start_text = str(w.yara_offering.id), w.yara_start.strftime('%Y-%m-%dT%H:%M:%SZ')
    w.hill_id = str(w.hill.id)
    w.hill_paths = [f"/coaches/hill/yara-young{suffix}" for suffix in ("", "/reviews", "/photo")]
    w.hill_paths.append(f"/coaches/hill/yara-young/book?offering={w.yara_offering.id}"
                        f"&start={w.yara_start.strftime('%Y-%m-%dT%H:%M:%SZ')}")
    w.hill_paths += ["/coaches/river/yara-young", "/coaches/river/yara-young/reviews", "/coaches/hill/maria-santos",
                     f"/coaches/river/maria-santos/book?offering={w.yara_offering.id}"
                     f"&start={w.yara_start.strftime('%Y-%m-%dT%H:%M:%SZ')}"]
    tenancy.activate(w.org.id)
    w.river_admin_email = "ada@example.com"
    db.session.commit()
    return w


def browser(app, email: str | None):
    client = app.test_client()
    if email:
        assert Auth(client).login(email).status_code == 303, email
    return client


def hill_shown(text: str, url: str, needles: list[str]) -> list[str]:
    """The needles of Hill's ``text`` shows, the echo of the requested URL (a search box, a link to itself) aside."""
    low = text.lower()
    echoes = set(_echo_forms(url))
    for values in parse_qs(urlsplit(url).query).values():  # the search box shows what was typed
        echoes |= {form.lower() for v in values for form in (v, html.escape(v), html.escape(v, quote=False)) if v}
    for echo in sorted(echoes, key=len, reverse=True):
        low = low.replace(echo, " ")
    found = []
    for needle in needles:
        at = low.find(needle.lower())
        if at >= 0:
            found.append(f"{needle!r} …{low[max(0, at - 80):at + len(needle) + 40]!r}…")
    return found


def starts() -> list[str]:
    paths = ["/coaches"]
    paths += [f"/coaches?{urlencode({'q': q})}" for q in QUERIES if q]
    for facet in FACETS:
        paths.append(f"/coaches?{urlencode(facet)}")
        paths.append(f"/coaches?{urlencode({'q': 'valorant', **facet})}")
    # Maria's own pages, in case no search linked them (the crawl then says which route it missed).
    paths += ["/coaches/river/maria-santos", "/coaches/river/maria-santos/reviews?order=helpful",
              "/coaches/river/maria-santos/photo", "/coaches/river/jon-berg"]
    return paths


def endpoint_of(app, path: str) -> str | None:
    try:
        return app.url_map.bind("localhost").match(urlsplit(path).path, method="GET")[0]
    except HTTPException:
        return None


def crawl(app, client, needles: list[str], headers: dict | None = None) -> tuple[dict, list[str], set[str]]:
    """Every /coaches page reachable from :func:`starts` (breadth first, at most MAX_PAGES): the statuses per
    endpoint, what went wrong (a server error, Hill shown), and the paths requested."""
    seen, queue = set(), deque(starts())
    reached: dict[str, set[int]] = {}
    problems: list[str] = []
    while queue and len(seen) < MAX_PAGES:
        path = queue.popleft()
        if path in seen:
            continue
        seen.add(path)
        response = client.get(path, headers=headers or {})
        text = response.get_data(as_text=True) if response.mimetype.startswith("text/") else ""
        shown = "\n".join(f"{k}: {v}" for k, v in response.headers.items() if k.lower() != "set-cookie") + text
        reached.setdefault(endpoint_of(app, path) or "?", set()).add(response.status_code)
        if response.status_code >= 500:
            problems.append(f"GET {path} → {response.status_code}")
        problems += [f"GET {path} → {response.status_code} shows Hill: {n}" for n in hill_shown(shown, path, needles)]
        for link in LINK_RE.findall(text):
            link = html.unescape(link)
            if link not in seen:
                queue.append(link)
    return reached, problems, seen


def test_the_public_pages_never_show_an_unlisted_organization(app, world):
    public_gets = {r.endpoint for r in app.url_map.iter_rules()
                   if r.endpoint.startswith("directory_public.") and "GET" in r.methods}
    ana = browser(app, "ana@example.com")
    for who, client in (("anonymous", browser(app, None)), ("River's athlete", ana)):
        for headers in ({}, {"HX-Request": "true"}):
            reached, problems, seen = crawl(app, client, world.hill_needles, headers)
            assert not problems, f"{who}{' (htmx)' if headers else ''}:\n" + "\n".join(problems)
            ok = {e for e, statuses in reached.items() if statuses & {200, 302, 303}}
            # Photo: Maria has none (404); the route is still requested, and its answers checked above.
            assert public_gets - {"directory_public.photo"} <= ok, (who, sorted(public_gets - ok), reached)
            assert "directory_public.photo" in reached
            # The pages' own next links were followed: a second page of coaches and of Maria's reviews.
            assert any(p.startswith("/coaches?") and "cursor=" in p for p in seen), "no next page of coaches"
            assert any("/maria-santos/reviews?" in p and "cursor=" in p for p in seen), "no next page of reviews"
        # The crawl saw River's coaches (the detector looks at real pages), never Hill's.
        page = client.get("/coaches?q=valorant").get_data(as_text=True)
        assert "Maria Santos" in page and "/coaches/river/maria-santos" in page
        for path in world.hill_paths:
            response = client.get(path)
            assert response.status_code == 404, (who, path, response.status_code)
            assert not hill_shown(response.get_data(as_text=True), path, world.hill_needles[:-5]), (who, path)


def test_the_unlisted_coach_cannot_be_joined_or_signed_up_for(app, world, owner_db):
    """The public POSTs (a visitor's sign-up on the booking page, a signed-in person's join) for Hill's coach are
    404s that write nothing: no pending sign-up, no membership of Hill."""
    start = world.yara_start_text
    book = f"/coaches/hill/yara-young/book?offering={world.yara_offering_id}&start={start}"
    visitor = browser(app, None)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                      visitor.get("/signup").get_data(as_text=True)).group(1)
    answer = visitor.post(book, data={"csrf_token": token, "display_name": "Vic Visitor", "email": "vic@example.com",
                                      "password": "another-horse-battery-staple", "timezone": "UTC"})
    assert answer.status_code == 404
    ben = browser(app, "ben@example.com")
    page = ben.get("/coaches/river/maria-santos").get_data(as_text=True)
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    joined = ben.post("/coaches/hill/yara-young/join", data={"csrf_token": token, "offering": world.yara_offering_id,
                                                             "start": start, "idempotency_key": "a" * 32})
    assert joined.status_code == 404
    assert owner_db.execute("SELECT count(*) FROM pending_signups").fetchone()[0] == 0
    owner_db.execute("SELECT set_config('app.tenant_id', %s, false)", (world.hill_id,))
    assert owner_db.execute("SELECT count(*) FROM memberships").fetchone()[0] == 2  # Zed and Yara


def settings_form(client, slug: str) -> tuple[str, dict]:
    """The settings form as its page renders it: every field with its value (unticked boxes left out)."""
    path = f"/o/{slug}/admin/settings"
    page = client.get(path)
    assert page.status_code == 200
    form = next(f for f in forms_in(path, page.get_data(as_text=True))
                if f.method == "post" and "listed_publicly" in f.names())
    data: dict[str, str] = {}
    for f in form.fields:
        if f.kind in ("checkbox", "radio", "button") and not f.value:
            continue
        data.setdefault(f.name, f.value)
    return form.action, data


def river_shown(client) -> list[str]:
    """Where River's coaches still show: their pages answering, a search naming them."""
    found = []
    for handle in RIVER_HANDLES:
        for suffix in ("", "/reviews", "/photo"):
            status = client.get(f"/coaches/river/{handle}{suffix}").status_code
            if status != 404:
                found.append(f"/coaches/river/{handle}{suffix} → {status}")
    for q in ("", "valorant", "tennis serve", "maria", "river academy"):
        for headers in ({}, {"HX-Request": "true"}):
            text = client.get(f"/coaches?{urlencode({'q': q})}", headers=headers).get_data(as_text=True)
            found += [f"search {q!r} shows {name}" for name in ("Maria Santos", "Jon Berg", *RIVER_HANDLES)
                      if name in text]
    return found


def test_unlisting_on_the_settings_page_takes_every_coach_out_at_once_and_listing_brings_them_back(
        app, world, job_runner):
    ada = browser(app, world.river_admin_email)
    visitor, ana = browser(app, None), browser(app, "ana@example.com")
    assert len(river_shown(visitor)) > 10, "River's coaches should be public before (the check tests nothing)"
    with job_runner.paused():  # "at once": before any consumer of the change runs
        action, data = settings_form(ada, "river")
        assert data.get("listed_publicly") == "y"
        data.pop("listed_publicly")
        saved = ada.post(action, data=data)
        assert saved.status_code == 303, saved.get_data(as_text=True)[:2000]
        for who, client in (("visitor", visitor), ("River's athlete", ana)):
            assert river_shown(client) == [], who
    job_runner.drain()
    assert river_shown(visitor) == [], "a consumer brought an unlisted organization back"

    action, data = settings_form(ada, "river")
    assert "listed_publicly" not in data
    assert ada.post(action, data={**data, "listed_publicly": "y"}).status_code == 303
    job_runner.drain()
    page = visitor.get("/coaches?q=valorant").get_data(as_text=True)
    assert "Maria Santos" in page and "/coaches/river/maria-santos" in page
    for handle in RIVER_HANDLES:
        assert visitor.get(f"/coaches/river/{handle}").status_code == 200, handle
    # Hill stayed out all along.
    assert not hill_shown(visitor.get("/coaches").get_data(as_text=True), "/coaches", world.hill_needles)
