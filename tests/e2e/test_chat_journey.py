"""Chat in Chromium: a coach and an athlete write to each other live (typing, "Seen", presence),
edit and delete in place; a dropped connection loses nothing; the nav badge counts what is unread;
and the pages work without JavaScript.

Each person has a browser context of their own. Screenshots go to ``$COACH_SCREENSHOTS``
(``/tmp`` when unset) as ``chat-*.png``.
"""
from __future__ import annotations

import json
import re
import socket
import time
from datetime import datetime, timedelta, timezone

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from coach.chat import realtime, service
from coach.chat.hub import hub_for
from coach.extensions import db
from coach.orgs.models import Membership
from tests.e2e.test_booking_journey import open_org
from tests.e2e.test_journeys import watch_csp
from tests.factories import add_member, make_org, make_user, media_row
from tests.e2e import screenshots

pytestmark = pytest.mark.e2e

SLUG = "river"
# The machine may be busy with other tests: waits are generous, and no test asserts a duration.
LIVE = 20_000


snap = screenshots("chat")


class Club:
    """River Club: Ada Admin, Carla Coach, Sam Lee (athlete), and Carla's conversation with Sam."""

    def __init__(self):
        ada = make_user("ada@example.com", "Ada Admin")
        self.org = make_org(ada, slug=SLUG, name="River Club")
        self.carla = add_member(self.org, make_user("carla@example.com", "Carla Coach"), "coach")
        self.sam = add_member(self.org, make_user("sam@example.com", "Sam Lee"), "athlete")
        self.ada = db.session.scalar(select(Membership).where(Membership.tenant_id == self.org.id,
                                                              Membership.user_id == ada.id))
        self.conversation = service.direct_with(self.org, self.carla, self.sam)
        db.session.commit()
        self.conversation_id = str(self.conversation.id)

    def path(self) -> str:
        return f"/o/{SLUG}/chat/{self.conversation_id}"

    def write(self, conversation, author: Membership, body: str, when: datetime) -> None:
        service.send(conversation, author, body, now=when)
        db.session.commit()


@pytest.fixture()
def club(ctx):
    return Club()


def pump(page: Page, condition, what: str, timeout: float = LIVE / 1000) -> None:
    """Wait until ``condition()`` holds, letting Playwright deliver its events meanwhile."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        page.wait_for_timeout(100)


class Person:
    """One person in a browser context of their own, logged in; what their page sent over its sockets."""

    def __init__(self, browser, live_server: str, email: str):
        self.live_server = live_server
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.csp = watch_csp(self.page)
        self.sockets = 0
        self.frames: list[dict] = []
        self.page.on("websocket", self._opened)
        open_org(self.page, live_server, SLUG, email)

    def _opened(self, ws) -> None:
        self.sockets += 1
        ws.on("framesent", lambda payload: self.frames.append(json.loads(payload)))

    def resumes(self, conversation_id: str) -> int:
        """How many times the page told the server it shows the conversation (``view`` frames)."""
        return sum(1 for f in self.frames if f.get("type") == "view"
                   and any(c.get("conversation") == conversation_id for c in f.get("conversations", ())))

    def views(self) -> list[list[str]]:
        """The conversations each ``view`` frame said the page shows, in order."""
        return [[c["conversation"] for c in f["conversations"]] for f in self.frames if f.get("type") == "view"]

    def wait_resumed(self, conversation_id: str, more_than: int = 0) -> None:
        """Until the page's socket is open and has told the server how far the conversation goes."""
        pump(self.page, lambda: self.resumes(conversation_id) > more_than, "the page to resume over its socket")

    def open_conversation(self, club: Club) -> None:
        self.page.goto(self.live_server + club.path())
        self.wait_resumed(club.conversation_id)

    def messages(self):
        return self.page.locator("article[id^=msg-]")

    def bodies(self) -> list[str]:
        return self.messages().evaluate_all(
            "els => els.map(e => (e.querySelector('.message-body, .muted:not(time)') || e).textContent)")

    def say(self, text: str) -> None:
        """Type into the composer and press Enter; the composer empties once the message is back."""
        box = self.page.get_by_label("Message")
        box.fill(text)
        box.press("Enter")
        expect(box).to_have_value("", timeout=LIVE)

    def close(self) -> None:
        self.context.close()


@pytest.fixture()
def people(browser, live_server, club):
    """Open people of the club by email, each logged in in a browser of their own (closed after the test)."""
    opened: list[Person] = []

    def open_person(email: str) -> Person:
        opened.append(Person(browser, live_server, email))
        return opened[-1]

    yield open_person
    for person in opened:
        person.close()


def drop_connections(app, member_id) -> None:
    """Cut a member's sockets at the server, as a lost network does: no closing handshake, so the
    browser sees an abnormal closure (1006) and htmx's ws extension reconnects on its own.

    Chromium's offline emulation alone (``context.set_offline``) does not close an open WebSocket:
    it only holds its frames until the context is online again.
    """
    hub = hub_for(app)
    for conn in hub.connections_of(member_id):
        server_ws = conn._send.__self__  # the simple_websocket.Server whose send the connection holds
        server_ws.sock.shutdown(socket.SHUT_RDWR)
    deadline = time.monotonic() + LIVE / 1000
    while hub.connections_of(member_id):
        assert time.monotonic() < deadline, "the server kept the cut connection"
        time.sleep(0.05)


# --- journeys ------------------------------------------------------------------------------------

def test_coach_and_athlete_write_live_see_typing_seen_presence_and_edit_and_delete(people, club):
    coach, athlete = people("carla@example.com"), people("sam@example.com")
    cid = club.conversation_id

    # The coach finds the conversation in the chat list; the athlete opens it by its address.
    coach.page.get_by_role("navigation", name="Main").get_by_role("link", name="Chat").click()
    expect(coach.page.get_by_role("heading", name="Chat", exact=True)).to_be_visible()
    coach.page.get_by_role("link", name="Sam Lee").click()
    expect(coach.page.get_by_role("heading", name="Sam Lee")).to_be_visible()
    coach.wait_resumed(cid)
    athlete.open_conversation(club)
    expect(athlete.page.get_by_role("heading", name="Carla Coach")).to_be_visible()
    expect(athlete.page.get_by_text("No messages yet. Say hello.")).to_be_visible()
    athlete.page.evaluate("window.__marker = 'still the same page'")

    # Presence: while the athlete is connected, the coach's dot for them is green.
    expect(coach.page.locator(f"#presence-{club.sam.id}")).to_have_class(re.compile(r"\bpresence-online\b"),
                                                                         timeout=LIVE)

    # The coach types "Hello" and presses Enter: the athlete sees it without a reload.
    box = coach.page.get_by_label("Message")
    box.press_sequentially("Hello", delay=20)
    box.press("Enter")
    expect(athlete.messages()).to_have_count(1, timeout=LIVE)
    hello = athlete.messages().first
    expect(hello).to_contain_text("Carla Coach")
    expect(hello.locator(".message-body")).to_have_text("Hello")
    expect(athlete.page.get_by_text("No messages yet. Say hello.")).to_have_count(0)
    assert athlete.page.evaluate("window.__marker") == "still the same page"
    hello_id = hello.get_attribute("id")

    # The coach's composer is empty, the message shows once, as theirs, and the athlete (who has
    # the conversation open and visible) has seen it.
    expect(box).to_have_value("", timeout=LIVE)
    receipt = coach.page.locator(f"#receipt-{cid}")
    expect(receipt).to_have_text("Seen", timeout=LIVE)
    expect(receipt).to_be_visible()
    expect(coach.messages()).to_have_count(1)
    expect(coach.messages().first).to_have_class(re.compile(r"\bmine\b"))
    expect(coach.messages().first.locator(".message-meta strong")).to_have_text("You")

    # The athlete types: the coach sees who is typing, and it goes away after a few seconds.
    reply = athlete.page.get_by_label("Message")
    reply.press_sequentially("On my way", delay=30)
    typing = coach.page.locator(f"#typing-{cid}")
    expect(typing).to_have_text("Sam Lee is typing…", timeout=LIVE)
    expect(typing).to_have_text("", timeout=LIVE)

    # Shift+Enter starts a new line, Enter sends. "Seen" is about the coach's newest message: it
    # goes when the newest message is the athlete's.
    reply.press("Shift+Enter")
    reply.press_sequentially("Bring the balls?", delay=10)
    reply.press("Enter")
    expect(coach.messages()).to_have_count(2, timeout=LIVE)
    expect(coach.messages().last).to_contain_text("Sam Lee")
    assert coach.messages().last.locator(".message-body").text_content() == "On my way\nBring the balls?"
    expect(reply).to_have_value("", timeout=LIVE)
    expect(receipt).to_be_hidden()
    coach.say("Yes, both baskets")
    expect(athlete.messages()).to_have_count(3, timeout=LIVE)
    expect(receipt).to_have_text("Seen", timeout=LIVE)
    assert coach.bodies() == athlete.bodies() == ["Hello", "On my way\nBring the balls?", "Yes, both baskets"]
    snap(coach.page, "conversation-coach")
    snap(athlete.page, "conversation-athlete")

    # Within ten minutes the coach edits "Hello": the athlete's copy changes in place.
    coach.page.locator(f"#{hello_id}").get_by_role("link", name="Edit").click()
    expect(coach.page.get_by_role("heading", name="Edit message")).to_be_visible()
    expect(coach.page.get_by_label("Message")).to_have_value("Hello")
    coach.page.get_by_label("Message").fill("Hello Sam, court 3 at six")
    coach.page.get_by_role("button", name="Save").click()
    expect(coach.page.get_by_role("heading", name="Sam Lee")).to_be_visible()
    expect(coach.page.locator(f"#{hello_id} .message-body")).to_have_text("Hello Sam, court 3 at six")
    edited = athlete.page.locator(f"#{hello_id}")
    expect(edited.locator(".message-body")).to_have_text("Hello Sam, court 3 at six", timeout=LIVE)
    expect(edited).to_contain_text("(edited)")
    expect(athlete.messages()).to_have_count(3)

    # The coach deletes it (after confirming): a tombstone stays in its place, on both sides.
    coach.page.once("dialog", lambda dialog: dialog.accept())
    coach.page.locator(f"#{hello_id}").get_by_role("button", name="Delete").click()
    tombstone = coach.page.locator(f"#{hello_id}")
    expect(tombstone).to_contain_text("Message deleted.")
    expect(tombstone.get_by_role("link", name="Edit")).to_have_count(0)
    expect(tombstone.get_by_role("button", name="Delete")).to_have_count(0)
    gone = athlete.page.locator(f"#{hello_id}")
    expect(gone).to_contain_text("Message deleted.", timeout=LIVE)
    expect(gone.locator(".message-body")).to_have_count(0)
    expect(athlete.page.get_by_text("Hello Sam, court 3 at six")).to_have_count(0)
    expect(athlete.messages()).to_have_count(3)
    assert athlete.page.evaluate("window.__marker") == "still the same page"
    snap(athlete.page, "deleted")

    assert coach.csp == [] and athlete.csp == []


def test_the_coach_sends_a_clip_from_her_media_and_the_athlete_sees_it_live(people, club):
    media_row(club.org.id, club.carla, "Serve drill")  # already processed; what matters here is the composer
    db.session.commit()
    coach, athlete = people("carla@example.com"), people("sam@example.com")
    coach.open_conversation(club)
    athlete.open_conversation(club)
    coach.wait_resumed(club.conversation_id)
    athlete.wait_resumed(club.conversation_id)

    coach.page.get_by_text("Attach media (1 of yours)").click()
    coach.page.get_by_label(re.compile("Serve drill")).check()
    coach.page.get_by_role("button", name="Send").click()  # no words: the clip says it

    message = athlete.messages().first
    expect(message.get_by_role("link", name=re.compile("Serve drill"))).to_be_visible(timeout=LIVE)
    expect(message).to_contain_text("Carla Coach")
    expect(coach.messages()).to_have_count(1, timeout=LIVE)
    expect(coach.page.get_by_label(re.compile("Serve drill"))).not_to_be_checked()  # ready for the next
    snap(athlete.page, "clip")
    athlete.page.get_by_role("link", name=re.compile("Serve drill")).click()
    expect(athlete.page.get_by_role("heading", name="Serve drill")).to_be_visible()
    assert coach.csp == [] and athlete.csp == []


@pytest.mark.allow_console("the test cuts the network and the socket: reconnects fail until it is back (Chromium "
                           "logs each, and htmx logs its wsError event)",
                           r"net::ERR_INTERNET_DISCONNECTED|^\[object Event\]$")
def test_a_dropped_connection_gets_every_missed_message_once_and_in_order(people, club, app):
    coach, athlete = people("carla@example.com"), people("sam@example.com")
    cid = club.conversation_id
    coach.open_conversation(club)
    athlete.open_conversation(club)
    athlete.page.evaluate("window.__marker = 'still the same page'")

    # The athlete's network goes away, and their connection with it.
    athlete.context.set_offline(True)
    drop_connections(app, club.sam.id)
    sockets, resumes = athlete.sockets, athlete.resumes(cid)

    # Meanwhile the coach sends twenty messages.
    sent = [f"Set {n} of 20" for n in range(1, 21)]
    for text in sent:
        coach.say(text)
    expect(coach.messages()).to_have_count(20)
    assert athlete.messages().count() == 0

    # The network is back: the page reconnects by itself and gets all twenty, once each, in order.
    athlete.context.set_offline(False)
    athlete.wait_resumed(cid, more_than=resumes)
    assert athlete.sockets > sockets
    expect(athlete.messages()).to_have_count(20, timeout=LIVE)
    assert athlete.bodies() == sent
    seqs = athlete.messages().evaluate_all("els => els.map(e => Number(e.dataset.seq))")
    assert seqs == list(range(1, 21))
    assert athlete.page.evaluate("window.__marker") == "still the same page"

    # Another drop and reconnect replays nothing twice; what is written next arrives once.
    drop_connections(app, club.sam.id)
    athlete.wait_resumed(cid, more_than=resumes + 1)
    athlete.say("Got all twenty")
    expect(athlete.messages()).to_have_count(21, timeout=LIVE)
    expect(coach.messages()).to_have_count(21, timeout=LIVE)
    assert athlete.bodies() == coach.bodies() == [*sent, "Got all twenty"]
    ids = athlete.messages().evaluate_all("els => els.map(e => e.id)")
    assert len(set(ids)) == 21
    snap(athlete.page, "reconnected")

    # While the socket is down, the composer posts the form as a page request instead. (The test
    # holds the reconnection back; the ws extension's own back-off is at most a few seconds here.)
    athlete.page.evaluate("htmx.config.wsReconnectDelay = () => 600000")
    drop_connections(app, club.sam.id)
    pump(athlete.page, lambda: athlete.page.evaluate(
        "document.body['htmx-internal-data'].webSocket.socket.readyState") == 3, "the socket to close")
    athlete.page.get_by_label("Message").fill("Sent as a form")
    with athlete.page.expect_response(lambda r: r.request.method == "POST") as posted:
        athlete.page.get_by_label("Message").press("Enter")
    assert posted.value.status == 303
    expect(athlete.messages().last.locator(".message-body")).to_have_text("Sent as a form")
    expect(athlete.messages()).to_have_count(22)
    expect(athlete.page.get_by_label("Message")).to_have_value("")
    assert athlete.page.evaluate("window.__marker") == "still the same page"  # a boosted request

    assert coach.csp == [] and athlete.csp == []


def test_unread_badge_counts_new_messages_until_the_conversation_is_read(people, club):
    coach, athlete = people("carla@example.com"), people("sam@example.com")
    cid = club.conversation_id
    coach.open_conversation(club)

    # The athlete is on the organization's home; the socket says there is nothing unread.
    nav = athlete.page.get_by_role("navigation", name="Main")
    badge = nav.locator("#chat-unread")
    expect(badge).to_have_text("0 unread", timeout=LIVE)
    expect(badge).to_be_hidden()
    athlete.page.evaluate("window.__marker = 'home'")

    # The coach writes twice: the badge counts without a reload; the coach sees no "Seen".
    coach.say("Are you coming tonight?")
    expect(badge).to_be_visible(timeout=LIVE)
    expect(badge).to_have_text("1 unread")
    expect(coach.page.locator(f"#receipt-{cid}")).to_have_text("")
    coach.say("Court 3")
    expect(badge).to_have_text("2 unread", timeout=LIVE)
    assert athlete.page.evaluate("window.__marker") == "home"
    box = badge.bounding_box()
    link = nav.get_by_role("link", name=re.compile("^Chat")).bounding_box()
    assert box["y"] >= link["y"] - 1 and box["y"] + box["height"] <= link["y"] + link["height"] + 1
    snap(athlete.page, "badge")

    # On the chat list (a boosted navigation renders the nav again) the badge stays, and the
    # conversation shows its own count.
    nav.get_by_role("link", name=re.compile("^Chat")).click()
    expect(athlete.page.get_by_role("heading", name="Chat", exact=True)).to_be_visible()
    expect(badge).to_be_visible()
    expect(badge).to_have_text("2 unread")
    expect(athlete.page.locator(f"#unread-{cid}")).to_have_text("2")
    snap(athlete.page, "list")

    # Opening the conversation reads it: the badge goes, and the coach sees "Seen".
    athlete.page.get_by_role("link", name="Carla Coach").click()
    expect(athlete.page.get_by_role("heading", name="Carla Coach")).to_be_visible()
    expect(badge).to_be_hidden(timeout=LIVE)
    expect(coach.page.locator(f"#receipt-{cid}")).to_have_text("Seen", timeout=LIVE)
    assert athlete.page.evaluate("window.__marker") == "home"  # boosted all along

    assert coach.csp == [] and athlete.csp == []


def test_badge_counts_a_conversation_the_page_has_left(people, club):
    coach, athlete = people("carla@example.com"), people("sam@example.com")
    cid = club.conversation_id
    coach.open_conversation(club)
    athlete.open_conversation(club)
    athlete.page.evaluate("window.__marker = 'still the same page'")

    # The athlete goes from the conversation to the organization's home (a boosted navigation:
    # the same socket, which now says the page shows no conversation); the coach writes.
    nav = athlete.page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="River Club").click()
    expect(nav.get_by_role("link", name="Home")).to_have_attribute("aria-current", "page")
    pump(athlete.page, lambda: athlete.views()[-1:] == [[]], "the page to say it shows no conversation")
    coach.say("Still there?")
    badge = nav.locator("#chat-unread")
    expect(badge).to_have_text("1 unread", timeout=LIVE)
    expect(badge).to_be_visible()
    expect(coach.page.locator(f"#receipt-{cid}")).to_have_text("")  # nobody read it

    # Back on the conversation (boosted again): the message is there once, read, and the badge goes.
    nav.get_by_role("link", name=re.compile("^Chat")).click()
    expect(athlete.page.get_by_role("heading", name="Chat", exact=True)).to_be_visible()
    athlete.page.get_by_role("link", name="Carla Coach").click()
    expect(athlete.page.get_by_role("heading", name="Carla Coach")).to_be_visible()
    expect(athlete.page).to_have_url(re.compile(rf"/chat/{cid}$"))
    expect(athlete.messages()).to_have_count(1)
    expect(athlete.messages().first.locator(".message-body")).to_have_text("Still there?")
    expect(badge).to_be_hidden(timeout=LIVE)
    expect(coach.page.locator(f"#receipt-{cid}")).to_have_text("Seen", timeout=LIVE)
    coach.say("Good")
    expect(athlete.messages()).to_have_count(2, timeout=LIVE)
    assert athlete.page.evaluate("window.__marker") == "still the same page"
    assert coach.csp == [] and athlete.csp == []


class HeldSocket:
    """A page's sockets, connected to the server, whose frames to it wait until ``release``: the page is
    drawn and its socket open, but the server does not yet know what the page shows."""

    def __init__(self, page: Page):
        self.released = False
        self.held: list[tuple[object, str]] = []
        page.route_web_socket(re.compile(r"/socket$"), self._route)

    def _route(self, ws) -> None:
        server = ws.connect_to_server()

        def from_page(message) -> None:
            if self.released:
                server.send(message)
            else:
                self.held.append((server, message))
        ws.on_message(from_page)

    def holds_a_view(self) -> bool:
        return any('"view"' in str(message) for _, message in self.held)

    def release(self) -> None:
        self.released = True
        for server, message in self.held:
            server.send(message)
        self.held.clear()


def test_someone_coming_online_before_the_page_follows_the_conversation_still_shows(people, club):
    """Presence travels only on changes. The coach's page draws Sam's dot as it renders, and its socket
    tells the server what the page shows a moment later; Sam coming online in between reaches no page of
    hers, so the page asks for what is true now when it says what it shows."""
    coach = people("carla@example.com")
    gate = HeldSocket(coach.page)
    coach.page.goto(coach.live_server + club.path())
    pump(coach.page, gate.holds_a_view, "the page's view frame")
    dot = coach.page.locator(f"#presence-{club.sam.id}")
    expect(dot).to_have_class(re.compile(r"\bpresence-offline\b"))  # Sam was not online when it rendered

    athlete = people("sam@example.com")  # on the organization's home: its socket says Sam is online
    pump(coach.page, lambda: realtime.presence_of(club.org.id, [club.sam.id])[club.sam.id] == "online",
         "Sam's socket to say he is online")
    expect(dot).to_have_class(re.compile(r"\bpresence-offline\b"))  # the change went by the coach's page

    gate.release()
    expect(dot).to_have_class(re.compile(r"\bpresence-online\b"), timeout=LIVE)
    assert coach.csp == [] and athlete.csp == []


@pytest.fixture()
def no_js_page(browser):
    context = browser.new_context(java_script_enabled=False)
    yield context.new_page()
    context.close()


def test_chat_works_without_javascript(no_js_page, live_server, club):
    page = no_js_page
    start = datetime.now(timezone.utc) - timedelta(hours=3)
    for n in range(1, 61):
        club.write(club.conversation, club.carla, f"Drill note {n}", start + timedelta(minutes=n))
    with_ada = service.direct_with(club.org, club.ada, club.sam)
    db.session.commit()
    club.write(with_ada, club.ada, "Welcome to River Club!", start + timedelta(minutes=90))
    club.write(with_ada, club.ada, "Your membership card is ready.", start + timedelta(minutes=91))

    # The list: most recent first, each with what is unread.
    open_org(page, live_server, SLUG, "sam@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Chat").click()
    expect(page.get_by_role("heading", name="Chat", exact=True)).to_be_visible()
    rows = page.locator(".conversation-list li")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("Ada Admin")
    expect(rows.nth(0).locator(".badge")).to_have_text("2")
    expect(rows.nth(1)).to_contain_text("Carla Coach")
    expect(rows.nth(1).locator(".badge")).to_have_text("60")
    snap(page, "list-nojs")

    # A conversation shows its newest fifty; "Older messages" pages back.
    page.get_by_role("link", name="Carla Coach").click()
    expect(page.get_by_role("heading", name="Carla Coach")).to_be_visible()
    messages = page.locator("article[id^=msg-]")
    expect(messages).to_have_count(50)
    expect(messages.first.locator(".message-body")).to_have_text("Drill note 11")
    expect(messages.last.locator(".message-body")).to_have_text("Drill note 60")
    page.get_by_role("link", name="Older messages").click()
    expect(page).to_have_url(re.compile(rf"/o/{SLUG}/chat/{club.conversation_id}\?before=11$"))
    expect(messages).to_have_count(10)
    expect(messages.first.locator(".message-body")).to_have_text("Drill note 1")
    expect(messages.last.locator(".message-body")).to_have_text("Drill note 10")
    expect(page.get_by_role("link", name="Older messages")).to_have_count(0)
    page.get_by_role("link", name="Newest messages →").click()
    expect(messages).to_have_count(50)

    # The form posts and redirects; the page shows the message, as the athlete's.
    page.get_by_label("Message").fill("Thanks, see you Monday")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Send").click()
    assert posted.value.status == 303
    expect(page).to_have_url(re.compile(rf"/o/{SLUG}/chat/{club.conversation_id}#composer$"))
    mine = messages.last
    expect(mine.locator(".message-body")).to_have_text("Thanks, see you Monday")
    expect(mine).to_have_class(re.compile(r"\bmine\b"))
    expect(mine).to_be_in_viewport()  # nothing scrolls the list without JavaScript: the page does
    expect(page.get_by_label("Message")).to_have_value("")
    snap(page, "nojs")

    # An empty message is refused with a reason.
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("alert").filter(has_text="Write a message first.")).to_be_visible()

    # Deleting posts a form too (no confirmation without JavaScript): a tombstone stays.
    page.goto(f"{live_server}/o/{SLUG}/chat/{club.conversation_id}")
    with page.expect_response(lambda r: r.request.method == "POST") as deleted:
        messages.last.get_by_role("button", name="Delete").click()
    assert deleted.value.status == 303
    expect(messages.last).to_contain_text("Message deleted.")
    expect(page.get_by_text("Thanks, see you Monday")).to_have_count(0)

    # "Write to" finds a member by name (a GET form) and opens the conversation with them (the one that exists).
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Chat").click()
    expect(rows.filter(has_text="Carla Coach").locator(".badge")).to_be_hidden()  # read when opened
    expect(rows.filter(has_text="Ada Admin").locator(".badge")).to_have_text("2")
    page.get_by_label("Write to").fill("ada")
    page.get_by_role("button", name="Find").click()
    expect(page).to_have_url(re.compile(rf"/o/{SLUG}/chat\?q=ada$"))
    expect(page.get_by_text("Members named “ada”")).to_be_visible()
    page.get_by_role("button", name="Ada Admin").click()
    expect(page.get_by_role("heading", name="Ada Admin")).to_be_visible()
    expect(page).to_have_url(re.compile(rf"/o/{SLUG}/chat/{with_ada.id}$"))
    expect(messages).to_have_count(2)
    expect(messages.last.locator(".message-body")).to_have_text("Your membership card is ready.")


def test_write_to_lists_members_as_the_name_is_typed(people, club):
    coach = people("carla@example.com")
    page = coach.page
    page.goto(f"{coach.live_server}/o/{SLUG}/chat")
    found = page.locator("#members")
    expect(found.get_by_role("button", name="Ada Admin")).to_be_visible()  # before typing: coaches and admins
    expect(found.get_by_role("button", name="Sam Lee")).to_have_count(0)
    page.evaluate("window.__marker = 'index'")
    page.get_by_label("Write to").fill("sam")
    expect(found.get_by_role("button", name="Sam Lee")).to_be_visible(timeout=LIVE)
    expect(found.get_by_role("button", name="Ada Admin")).to_have_count(0)
    assert page.evaluate("window.__marker") == "index"  # the list was swapped in place: no page load
    found.get_by_role("button", name="Sam Lee").click()
    expect(page.get_by_role("heading", name="Sam Lee")).to_be_visible()
    assert coach.csp == []
