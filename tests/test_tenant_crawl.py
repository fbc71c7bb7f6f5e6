"""Cross-tenant route crawl (issue 15, section 2): every rule of the URL map, requested by an admin, a coach
and an athlete of one organization (A) with the slug, ids and tokens of another (B), must show nothing of B
and change nothing of B.

B is seeded through the services with a random marker in every name, title, text and address (its name
carries it too). For each rule and each of A's roles the crawl requests every URL of
:func:`tests.crawl_support.variants` (B's slug and A's slug; each of B's ids of the parameter's kind, an id of
another kind; B's real tokens under A's slug; A's own ids with B's ids in the form), with every method the
rule accepts: GET (also once with B's ids in the query string), POST with A's valid CSRF token and a
plausible form naming B's rows (and a JSON body for the views that read one), PUT with a body. It fails on
a response that shows B's marker, name, slug or id (the echo of the requested URL aside), a 5xx, a refused
CSRF token or a lost session (the crawl would silently test nothing), and on any change to B's rows
(counts and checksums of every tenant table, its organization row, its people's accounts and emails, its
stored files, its failed job), checked after each rule. All failures are collected into one message.

Account-level rows (issue 18) are crawled the same way: B's people have a session, a passkey, an account
export and an email change waiting, and A's people must get a 404 for B's session, passkey and export ids
outside any organization (see ``_expected``); everything under /platform is a 404 for them and for anonymous
visitors; B's organization export under A's slug is a 404. A is branded (an accent colour and a logo): its
public stylesheet and logo serve A's branding only, and nothing of it answers under B's slug.

A rule that cannot be requested must be listed in ``EXCLUDED`` with its reason; the crawl asserts that
the rules it did not request are exactly those, so a new route is never skipped silently. The chat
socket is also opened for real (a WebSocket handshake on the live server) in its own test, and so is a
session room's signaling socket (issue 20).
"""
from __future__ import annotations

import base64
import inspect
import itertools
import os
import re
import secrets
import time
import uuid
from collections import Counter
from types import SimpleNamespace

import pytest
from simple_websocket import Client
from simple_websocket import ConnectionError as HandshakeRefused

from tests.chat_support import Sockets, is_error
from tests.conftest import Auth
from tests.crawl_support import (
    ACCOUNT_KINDS,
    REFUSED_KINDS,
    ROLES,
    Snapshot,
    form_data,
    json_body,
    kind_of,
    leaks,
    query_with_other_ids,
    seed_world,
    variants,
)
from tests.media_support import local_media  # noqa: F401  (fixture)
from tests.rooms_sockets import RoomSockets

# Rules the crawl does not request, with the reason. It must stay exactly the set of unrequested rules.
EXCLUDED: dict[str, str] = {}

# Endpoints that end or replace the crawling session (or try to): crawled last, and everyone logs in again.
SESSION_ENDPOINTS = ("accounts.", "orgs.invitation")
# Rules that destroy what later rules would look at (A's own rows): crawled after the others.
DESTRUCTIVE = re.compile(r"delete|remove|revoke|archive|discard|leave|cancel|disconnect|<action>|/role$|/end$")
REMOVES_MEMBERS = {"admin.remove_member"}
CSRF_REFUSED = "sent without its security token"
UNLIMITED = "100000 per minute"
CSRF_HEADER_RE = re.compile(r'"X-CSRFToken": "([^"]+)"')
HOME_ACCENT = "#0b4fa8"  # A's branding (B has none)


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _key(rule) -> str:
    return f"{rule.endpoint} {rule.rule}"


@pytest.fixture()
def unlimited(app, monkeypatch):
    """Rate limits out of the way: thousands of requests from one address in a minute are the point here."""
    for name in list(app.config):
        if name.startswith("RATELIMIT_") and isinstance(app.config[name], str):
            monkeypatch.setitem(app.config, name, UNLIMITED)
    monkeypatch.setitem(app.config, "CHAT_MESSAGES_PER_10S", 1000)


@pytest.fixture()
def worlds(app, job_runner, mailbox, local_media, stack, tmp_path, unlimited):  # noqa: F811
    """A (Home Club, the crawlers) and B (its name, people and texts carry the marker)."""
    marker = f"ZZB-MARKER-{secrets.token_hex(5)}"
    owner = _plain(stack.owner_url)
    home = seed_world(app, job_runner, mailbox, tmp_path, slug=f"home-{secrets.token_hex(3)}", name="Home Club",
                      label="Home", owner_url=owner, accent=HOME_ACCENT,
                      listed=True)  # issue 22: A's coach has a public profile; B is never listed
    other = seed_world(app, job_runner, mailbox, tmp_path, slug=f"zzbslug-{secrets.token_hex(4)}",
                       name=f"{marker} Club", label=marker, owner_url=owner)
    return home, other, marker, owner


class Member:
    """A logged-in test client of one of A's members, with the CSRF token of a page of A."""

    def __init__(self, app, email: str, home_slug: str):
        self.app, self.email, self.home_slug = app, email, home_slug
        self.login()

    def login(self) -> None:
        self.client = self.app.test_client()
        response = Auth(self.client).login(self.email)
        assert response.status_code == 303, f"{self.email} could not log in ({response.status_code})"
        page = self.client.get(f"/o/{self.home_slug}/")
        assert page.status_code == 200, page.status_code
        self.csrf = CSRF_HEADER_RE.search(page.get_data(as_text=True)).group(1)


def _reads_json(app, endpoint: str) -> bool:
    view = inspect.unwrap(app.view_functions[endpoint])
    source = inspect.getsource(view)
    return "get_json" in source or "is_json" in source


def _order(rule) -> tuple:
    """Session-changing rules last, destructive ones before them, removing A's spare member last of those:
    A's own rows then live as long as possible for the variants that act on them."""
    destructive = bool(DESTRUCTIVE.search(rule.rule))
    return (rule.endpoint.startswith(SESSION_ENDPOINTS), destructive, rule.endpoint in REMOVES_MEMBERS, rule.rule)


def _text_of(response) -> str:
    """Headers (the session cookie aside: signed, not shown) and body, as one text to search."""
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items() if k.lower() != "set-cookie")
    return headers + "\n\n" + response.get_data().decode("utf-8", "replace")


def _requests_for(method: str, path: str, extras: set[str], member: Member, other, json_too: bool,
                  serial) -> list[tuple[str, str, dict]]:
    """``(path, note, client.open arguments)`` of one method on one URL."""
    if method == "GET":
        found = [(path, "", {})]
        if "htmx" in extras:
            found.append((path, "htmx", {"headers": {"HX-Request": "true"}}))
        if "query" in extras:
            found.append((f"{path}?{query_with_other_ids(other)}", "B ids in the query", {}))
        return found
    if method == "PUT":
        return [(f"{path}?{query_with_other_ids(other)}", "", {
            "data": b"crawl part", "headers": {"Content-Type": "application/octet-stream"}})]
    headers = {"X-CSRFToken": member.csrf}
    found = [(path, "", {"data": form_data(other, member.csrf, next(serial)), "headers": headers})]
    if json_too:
        found.append((path, "JSON", {"json": json_body(other), "headers": headers}))
    return found


def _expected(rule, what: str, role: str) -> set[int] | None:
    """The statuses an answer must have where the crawl knows them (issue 18), else ``None``.

    - Everything under /platform is a 404 for anyone who is not a platform admin (none of the crawlers is).
    - A WebSocket's rule refuses the crawl's plain GET (no handshake): 400, 403 or 404, never a page.
    - Outside an organization, another person's row (B's session, passkey, account export), or an id of
      another kind, is a 404 (a download link without its token is refused first: 403).
    - An organization's export of B under A's slug is a 404 for A's admins (403 for the other roles, who
      may not see the privacy page at all).
    """
    if rule.rule.startswith("/platform"):
        return {404}
    if rule.websocket:
        # A socket's rule: the crawl's plain GET is no handshake. A session room's is refused by Werkzeug's router
        # (400, WebsocketMismatch) before any organization or view runs; the chat socket answers 404. The handshakes
        # themselves are made for real in test_chat_socket_of_another_organization and
        # test_room_socket_of_another_organization.
        return {400, 403, 404}
    kinds = {kind_of(rule.endpoint, p) for p in rule.arguments if p != "slug"}
    if "slug" not in rule.arguments and kinds & ACCOUNT_KINDS:
        return {403, 404} if rule.endpoint.endswith("export_download") else {404}
    if "org_export" in kinds and what.startswith("A slug, B ids"):
        return {404} if role == "admin" and not rule.endpoint.endswith("export_download") else {403, 404}
    if rule.endpoint.startswith("booking_links."):  # a forged, tampered or guessed no-login link (issue 19)
        return {404}
    if kinds & REFUSED_KINDS and not what.startswith("A slug, A's own ids"):
        return {403, 404}
    return None


def _problems(response, rule, method: str, path: str, other, marker: str, what: str = "",
              role: str = "") -> list[str]:
    """What is wrong with one answer: B shown, a server error, an unexpected status where the crawl knows
    the right one, or a crawl that stopped testing anything."""
    problems = leaks(_text_of(response), path, other, marker)
    if response.status_code >= 500:
        problems.append("server error")
    expected = _expected(rule, what, role)
    if expected and response.status_code not in expected and response.status_code < 500:
        problems.append(f"expected {'/'.join(map(str, sorted(expected)))}")
    body = response.get_data(as_text=True) if response.mimetype.startswith("text/") else ""
    if method != "GET" and response.status_code == 400 and CSRF_REFUSED in body:
        problems.append("the crawl's CSRF token was refused: the POST tested nothing")
    if response.headers.get("Location", "").startswith("/login") and not rule.endpoint.startswith("accounts."):
        problems.append("sent to log in: the crawl lost its session")
    return problems


def _extras(urls) -> dict[int, set[str]]:
    """The first URL under each slug is also asked for as htmx; the first under A's slug also with B's ids in
    the query string (once per rule: the query is the same for every URL)."""
    firsts = {p: next((i for i, v in enumerate(urls) if v.what.startswith(p)), 0) for p in ("B slug", "A slug")}
    extras: dict[int, set[str]] = {}
    for index in firsts.values():
        extras.setdefault(index, set()).add("htmx")
    extras.setdefault(firsts["A slug"], set()).add("query")
    return extras


def test_no_route_shows_or_changes_another_organization(app, worlds, job_runner):
    home, other, marker, owner = worlds
    started = time.monotonic()

    # The detector is meaningful: B's own people see B's marker, name and slug on B's pages.
    b_admin = Member(app, other.emails["admin"], other.slug)
    for path in (f"/o/{other.slug}/", f"/o/{other.slug}/feed", f"/o/{other.slug}/media",
                 f"/o/{other.slug}/admin/members", f"/o/{other.slug}/admin/audit"):
        shown = b_admin.client.get(path)
        assert shown.status_code == 200 and leaks(_text_of(shown), "/", other, marker), \
            f"B's admin should see B's marked rows on {path}"

    members = {role: Member(app, home.emails[role], home.slug) for role in ROLES}
    # Before the crawl's own POSTs change A's branding, sessions and exports.
    account_level = _account_and_branding_checks(app, home, other, marker, members, b_admin)
    account_level += _manage_link_checks(app, home, other, marker, members)
    snapshot = Snapshot(app, owner, other)
    with job_runner.paused():
        baseline = snapshot.take()
    failures: list[str] = list(account_level)
    exercised: set[str] = set()
    statuses: Counter = Counter()
    variant_count = 0
    serial = itertools.count(1)

    for rule in sorted((r for r in app.url_map.iter_rules() if r.endpoint != "static"), key=_order):
        if _key(rule) in EXCLUDED:
            continue
        with app.app_context():  # signing tokens needs the app's secret
            urls = variants(rule, home, other)
        variant_count += len(urls)
        extras = _extras(urls)
        methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
        json_too = "POST" in methods and _reads_json(app, rule.endpoint)
        made = []
        for role, member in members.items():
            for index, variant in enumerate(urls):
                for method in methods:
                    for path, note, arguments in _requests_for(method, variant.path, extras.get(index, set()),
                                                               member, other, json_too, serial):
                        where = f"{role} {method} {path}  [{variant.what}{', ' + note if note else ''}]"
                        made.append(where)
                        try:
                            response = member.client.open(path, method=method, **arguments)
                        except Exception as exc:  # the client re-raised: the app did not answer at all
                            failures.append(f"{where} → exception {exc!r}")
                            continue
                        statuses[response.status_code] += 1
                        failures += [f"{where} → {response.status_code}: {problem}"
                                     for problem in _problems(response, rule, method, path, other, marker,
                                                              variant.what, role)]
        exercised.add(_key(rule))
        with job_runner.paused():  # what the rule's requests set in motion has happened before B is read
            job_runner.drain(30)
            after = snapshot.take()
        changed = Snapshot.changes(baseline, after)
        if changed:
            failures.append(f"B's rows changed while crawling {_key(rule)}: {'; '.join(changed)} "
                            f"(requests: {made[:6]}{' …' if len(made) > 6 else ''})")
            baseline = after
        if rule.endpoint.startswith(SESSION_ENDPOINTS) and "POST" in methods:
            for member in members.values():
                member.login()

    # Every rule was requested, or is excluded with a reason.
    everything = {_key(r) for r in app.url_map.iter_rules() if r.endpoint != "static"}
    assert everything - exercised == set(EXCLUDED), (
        f"rules neither crawled nor excluded: {sorted(everything - exercised - set(EXCLUDED))}; "
        f"excluded but missing or crawled: {sorted(set(EXCLUDED) - (everything - exercised))}")

    summary = (f"crawled {len(exercised)} rules × {len(members)} roles, {variant_count} URL variants, "
               f"{sum(statuses.values())} answers in {time.monotonic() - started:.0f} s; "
               f"statuses {dict(sorted(statuses.items()))}")
    print(summary)
    assert not failures, f"{summary}\n{len(failures)} failures:\n" + "\n".join(failures)


def _account_and_branding_checks(app, home, other, marker: str, members: dict, b_admin: Member) -> list[str]:
    """Issue 18, what the crawl's variants cannot say on their own: B's real export links under A's people,
    /platform for anonymous visitors, the dashboard, and the public branding routes (by slug, on purpose:
    emails show the logo) serving only their own organization's branding."""
    from coach.accounts.models import AccountExport
    from coach.extensions import db
    from coach.privacy import exports

    failures: list[str] = []
    tokens = {id(m.client): m.csrf for m in members.values()}

    def expect(client, method: str, path: str, statuses: set[int], who: str):
        response = client.open(path, method=method, headers={"X-CSRFToken": tokens.get(id(client), "")})
        if response.status_code not in statuses:
            failures.append(f"{who} {method} {path} → {response.status_code}, expected {sorted(statuses)}")
        failures.extend(f"{who} {method} {path} → {response.status_code}: {problem}"
                        for problem in leaks(_text_of(response), path, other, marker))
        return response

    with app.test_request_context():  # B's real links, as their emails carry them
        account_export = db.session.get(AccountExport, uuid.UUID(other.first("account_export")))
        account_token = exports.link_token(exports.ACCOUNT, account_export)
        org_token = exports.link_token(exports.ORGANIZATION,
                                       SimpleNamespace(id=other.first("org_export"), expires_at=None))
        db.session.remove()

    anonymous = app.test_client()
    for path, method in (("/platform", "GET"), ("/platform/", "GET"), (f"/platform/jobs/{other.first('job')}/retry", "POST"),
                         (f"/platform/jobs/{other.first('job')}/delete", "POST"), ("/platform/nothing", "GET")):
        expect(anonymous, method, path, {404}, "anonymous")
    for role, member in members.items():
        client = member.client
        # B's real export links (signed for B's exports) opened by A's people.
        expect(client, "GET", f"/account/privacy/exports/{other.first('account_export')}/download?token={account_token}",
               {404}, role)
        expect(client, "GET", f"/account/privacy/exports/{other.first('account_export')}/status", {404}, role)
        expect(client, "GET", f"/o/{home.slug}/privacy/exports/{other.first('org_export')}/download?token={org_token}",
               {404} if role == "admin" else {403, 404}, role)
        expect(client, "GET", f"/o/{other.slug}/privacy/exports/{other.first('org_export')}/download?token={org_token}",
               {403, 404}, role)
        # B's session and passkey, named by A's people.
        expect(client, "POST", f"/account/sessions/{other.first('session')}/revoke", {404}, role)
        expect(client, "POST", f"/account/passkeys/{other.first('passkey')}/rename", {404}, role)
        expect(client, "POST", f"/account/passkeys/{other.first('passkey')}/remove", {404}, role)
        expect(client, "GET", "/platform/", {404}, role)
        # Their own pages still open (the crawl is not testing refusals only).
        for path in ("/account/security", "/account/sessions", "/account/privacy", "/account/passkeys"):
            expect(client, "GET", path, {200}, role)
        page = expect(client, "GET", "/account/sessions", {200}, role)
        if other.first("session") in page.get_data(as_text=True):
            failures.append(f"{role}: A's sessions page names B's session")
    admin = members["admin"].client
    expect(admin, "GET", f"/o/{home.slug}/admin/dashboard", {200}, "admin")  # B's texts: see leaks()
    for role in ("coach", "athlete"):
        expect(members[role].client, "GET", f"/o/{home.slug}/admin/dashboard", {403}, role)

    # Branding: A's stylesheet and logo by A's slug, for anyone; nothing of A's under B's slug.
    version = home.branding_version
    css = expect(anonymous, "GET", f"/o/{home.slug}/admin/brand-{version}.css", {200}, "anonymous")
    if HOME_ACCENT not in css.get_data(as_text=True).lower():
        failures.append(f"A's stylesheet has not A's accent {HOME_ACCENT}")
    logo = expect(anonymous, "GET", f"/o/{home.slug}/admin/logo-{version}.png", {200}, "anonymous")
    if logo.mimetype != "image/png" or not logo.get_data().startswith(b"\x89PNG"):
        failures.append(f"A's logo is not a PNG: {logo.mimetype}")
    for v in sorted({version, version - 1, 1, 0}):
        for client, who in ((anonymous, "anonymous"), (admin, "admin")):
            # B has no branding: no stylesheet of any version (a 404 tells nobody whether B's address exists).
            css = expect(client, "GET", f"/o/{other.slug}/admin/brand-{v}.css", {404}, who)
            if HOME_ACCENT in css.get_data(as_text=True).lower():
                failures.append(f"B's stylesheet brand-{v}.css carries A's accent")
            expect(client, "GET", f"/o/{other.slug}/admin/logo-{v}.png", {404}, who)
    a_page = admin.get(f"/o/{home.slug}/").get_data(as_text=True)
    if f"/o/{home.slug}/admin/brand-{version}.css" not in a_page:
        failures.append("A's pages do not link A's stylesheet (the check below would test nothing)")
    for path in (f"/o/{other.slug}/", f"/o/{other.slug}/admin/members", f"/o/{other.slug}/admin/dashboard"):
        text = b_admin.client.get(path).get_data(as_text=True)
        if f"/o/{home.slug}/admin/" in text or HOME_ACCENT in text.lower():
            failures.append(f"B's page {path} links A's branding")
    return failures


def _manage_link_checks(app, home, other, marker: str, members: dict) -> list[str]:
    """Issue 19's no-login booking links, what the variants (forged, tampered and guessed tokens: 404) cannot say
    alone: B's real view link shows B's booking (the detector works on these pages), A's real links show A's
    booking and nothing of B, to anyone and to A's signed-in people alike."""
    failures: list[str] = []
    anonymous = app.test_client()
    b_page = anonymous.get(f"/b/{other.tokens['manage_view']}")
    if b_page.status_code != 200 or not leaks(_text_of(b_page), "/", other, marker):
        failures.append(f"B's view link should show B's booking ({b_page.status_code}): the check tests nothing")
    for who, client in (("anonymous", anonymous), *((role, m.client) for role, m in members.items())):
        for path in (f"/b/{home.tokens['manage_view']}", f"/b/{home.tokens['manage_cancel']}/cancel"):
            response = client.get(path)
            if response.status_code != 200 or "Home technique" not in response.get_data(as_text=True):
                failures.append(f"{who} GET {path} → {response.status_code}: A's link should show A's booking")
            failures += [f"{who} GET {path} → {response.status_code}: {problem}"
                         for problem in leaks(_text_of(response), path, other, marker)]
    return failures


# --- the chat socket, opened for real -------------------------------------------------------------

WS_KEY = base64.b64encode(os.urandom(16)).decode()


def test_chat_socket_of_another_organization(app, worlds, live_server, job_runner):
    """The socket refuses B's slug (and its refusal says nothing of B); A's socket, asked about B's
    conversations and sent B's media, answers with errors, shows nothing of B and changes nothing of B."""
    home, other, marker, owner = worlds
    sockets = Sockets(app, live_server)
    snapshot = Snapshot(app, owner, other)
    with job_runner.paused():
        baseline = snapshot.take()
    failures: list[str] = []
    b_conversations = other.ids["conversation"]
    home_channel = home.ids["conversation"][1]  # the space's channel: every role of A is in the space
    try:
        for role in ROLES:
            email = home.emails[role]
            browser = sockets.browser(email)
            # The handshake as an HTTP exchange: its answer (status and page) for B's slug.
            url = f"{live_server}/o/{other.slug}/chat/socket"
            answer = browser.get(url, headers={"Origin": live_server, "Connection": "Upgrade", "Upgrade": "websocket",
                                               "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": WS_KEY},
                                 timeout=10, allow_redirects=False)
            text = "\n".join(f"{k}: {v}" for k, v in answer.headers.items() if k.lower() != "set-cookie")
            for problem in leaks(text + "\n" + answer.text, url.removeprefix(live_server), other, marker):
                failures.append(f"{role} handshake {url} → {answer.status_code}: {problem}")
            if answer.status_code not in (403, 404):
                failures.append(f"{role} handshake {url} → {answer.status_code}, expected 403 or 404")
            # A real WebSocket client is refused too.
            try:
                Client.connect(sockets.url(other.slug), headers={
                    "Cookie": "; ".join(f"{c.name}={c.value}" for c in browser.cookies), "Origin": live_server}).close()
                failures.append(f"{role}: the socket of B's slug opened")
            except HandshakeRefused as refused:
                if refused.status_code not in (403, 404):
                    failures.append(f"{role}: socket of B's slug refused with {refused.status_code}")

            # A's own socket, asked about B's rows.
            sock = sockets.open(email, slug=home.slug)
            asks = [dict(type="resume", conversation=b_conversations[0], after=0),
                    dict(type="view", conversations=[{"conversation": c, "after": 0} for c in b_conversations]),
                    dict(type="send", conversation=b_conversations[0], body="crawl", client_id=str(uuid.uuid4())),
                    dict(type="typing", conversation=b_conversations[1]),
                    dict(type="read", conversation=b_conversations[1], seq=1)]
            for ask in asks:
                sock.send(**ask)
                try:
                    sock.wait_for(is_error, what=f"an error for {ask['type']} of B's conversation")
                except AssertionError as exc:
                    failures.append(f"{role} socket {ask}: {exc}")
            sock.send(type="send", conversation=home_channel, body="crawl with B's media",
                      client_id=str(uuid.uuid4()), attachments=other.ids["media"])
            sock.send(type="crawl-barrier")
            sock.wait_for(lambda f: "Unknown request." in f, what="the barrier's error")
            for frame in sock.frames:
                for problem in leaks(frame, "", other, marker):
                    failures.append(f"{role} socket frame: {problem}")
            sock.close()
    finally:
        sockets.close_all()
    with job_runner.paused():
        job_runner.drain(30)
        changed = Snapshot.changes(baseline, snapshot.take())
    assert not changed, f"B's rows changed through the socket: {changed}"
    assert not failures, "\n".join(failures)


# --- the room socket (issue 20), opened for real ------------------------------------------------------

ROOM_SDP = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"


def test_room_socket_of_another_organization(app, worlds, live_server, job_runner):
    """B's open room refuses A's people at the handshake (B's slug, B's session under A's slug, B's ended room),
    and the refusal says nothing of B. In A's own open room, frames addressed to the peer of B's coach (who is in
    B's room now) are refused as an unknown peer and never reach B; a join of A's with that same peer id does not
    take B's place; A sees nothing of B and B's rows do not change."""
    home, other, marker, owner = worlds
    rooms = RoomSockets(live_server)
    snapshot = Snapshot(app, owner, other)
    failures: list[str] = []
    b_live, b_past = other.ids["room_session"]
    a_live = home.first("room_session")
    try:
        b_coach = rooms.join(other.emails["coach"], b_live, slug=other.slug)
        b_coach.sync()
        with job_runner.paused():  # B's coach is in B's room (a stay, the room's row, room.joined handled)
            job_runner.drain(30)
            baseline = snapshot.take()
        for role in ROLES:
            email = home.emails[role]
            browser = rooms.browser(email)
            for slug, session_id in ((other.slug, b_live), (home.slug, b_live), (home.slug, b_past)):
                url = f"{live_server}/o/{slug}/sessions/{session_id}/room/socket"
                answer = browser.get(url, headers={"Origin": live_server, "Connection": "Upgrade",
                                                   "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                                                   "Sec-WebSocket-Key": WS_KEY}, timeout=10, allow_redirects=False)
                text = "\n".join(f"{k}: {v}" for k, v in answer.headers.items() if k.lower() != "set-cookie")
                for problem in leaks(text + "\n" + answer.text, url.removeprefix(live_server), other, marker):
                    failures.append(f"{role} handshake {url} → {answer.status_code}: {problem}")
                if answer.status_code not in (403, 404):
                    failures.append(f"{role} handshake {url} → {answer.status_code}, expected 403 or 404")
                try:
                    rooms.handshake(session_id, email, slug).close()
                    failures.append(f"{role}: the room socket {url} opened")
                except HandshakeRefused as refused:
                    if refused.status_code not in (403, 404):
                        failures.append(f"{role}: room socket {url} refused with {refused.status_code}")

        # A's coach and athlete in A's own room, addressing B's coach.
        a_coach = rooms.join(home.emails["coach"], a_live, slug=home.slug)
        a_athlete = rooms.join(home.emails["athlete"], a_live, slug=home.slug)
        for sock in (a_coach, a_athlete):
            if any(peer["peer"] == b_coach.peer for peer in sock.welcome["peers"]):
                failures.append("A's welcome lists B's coach")
            for ask in (dict(type="offer", to=b_coach.peer, sdp=ROOM_SDP),
                        dict(type="answer", to=b_coach.peer, sdp=ROOM_SDP),
                        dict(type="candidate", to=b_coach.peer, candidate=None)):
                sock.send(**ask)
                try:
                    error = sock.wait_for("error")
                    if error.get("code") != "unknown_peer":
                        failures.append(f"{ask['type']} to B's peer: {error}")
                except AssertionError as exc:
                    failures.append(f"{ask['type']} to B's peer: {exc}")
            sock.send(type="state", audio=True, video=False, screen=True)
        # B's coach's peer id, claimed in A's room by another socket of A's athlete.
        taker = rooms.open(home.emails["athlete"], a_live, slug=home.slug, peer=b_coach.peer)
        taker.send(type="join", peer=b_coach.peer)
        taker.sync()
        try:
            seen = b_coach.sync()
            if seen:
                failures.append(f"B's coach received frames from A's room: {seen}")
        except Exception as exc:  # closed: A's join with B's peer id took B's place
            failures.append(f"B's coach's socket stopped working after A's room used B's peer id: {exc!r}")
        for sock in (a_coach, a_athlete, taker):
            for frame in sock.frames:
                failures += [f"A's room socket frame: {problem}" for problem in leaks(str(frame), "", other, marker)]
        with job_runner.paused():  # before B's coach leaves (which ends the stay)
            job_runner.drain(30)
            changed = Snapshot.changes(baseline, snapshot.take())
    finally:
        rooms.close_all()
    # B's coach's own pings move the stay's last sign of life: what A could change there is the stays' count.
    changed = [c for c in changed if not (c.startswith("room_attendance:") and c.endswith("(rows changed)"))]
    assert not changed, f"B's rows changed through the room socket: {changed}"
    assert not failures, "\n".join(failures)
