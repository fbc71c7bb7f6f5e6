"""Chat test support: a world of two clubs, stored messages read back, and real WebSockets.

The sockets are ``simple_websocket`` clients of the ``live_server`` (the app on a real port),
logged in through the ``/login`` form with ``requests`` and sending the cookie and an ``Origin``
as a browser does. Every wait is bounded: a frame is waited for until a predicate holds or a few
seconds pass, and absence is shown with a marker frame that must come after, never by sleeping.
"""
from __future__ import annotations

import json
import re
import time
import uuid
from datetime import datetime

import pytest
import requests
import simple_websocket
from simple_websocket import ConnectionClosed
from sqlalchemy import select

from coach import tenancy
from coach.chat import service
from coach.chat.hub import hub_for
from coach.chat.models import Conversation, Message
from coach.extensions import db
from coach.orgs.service import membership_for
from coach.spaces import service as spaces
from tests.conftest import csrf_from
from tests.factories import PASSWORD, add_member, make_org, make_user, media_row


class Client(simple_websocket.Client):
    """simple_websocket's client without its race at the handshake: a frame that reaches the client in the same
    read as the handshake's answer (the server's greeting, sent at once; on a loaded machine the two arrive
    together) stayed in wsproto's buffer until the next read, which may never come, and the test waited out its
    timeout for a frame the server had sent. It is handed over before the reader thread starts."""

    def handshake(self):
        super().handshake()
        self._handle_events()
        self.connected = True  # a close among those frames is found by the reader thread, as any later close


# How long a test waits for a frame, a close or a follow that should come: generous, since CI's two cores run
# two test processes with their browsers and servers; a wait ends as soon as what it waits for arrives.
LIVE_WAIT = 20.0
ARTICLE_RE = re.compile(r'<article class="message[^"]*" id="msg-([0-9a-f-]{36})" data-seq="(\d+)"')
STREAM_RE = re.compile(r'<div hx-swap-oob="beforeend:#messages-([0-9a-f-]{36})">(.*?)</div>\s*$', re.S)
ERROR_RE = re.compile(r'<p id="chat-error"[^>]*>([^<]*)</p>')
UNREAD_RE = re.compile(r'<span id="chat-unread"[^>]*>(\d+)<')


# --- the world -------------------------------------------------------------------------------------

class ChatWorld:
    """River Club (slug ``river``): Ada Admin; Maria Santos (coach) hosts the open space "Tennis",
    where Ana Alves and Ben Brown are members; Cleo Cruz is a member in no space.

    Hill Club (slug ``hill``, made by :meth:`other_club`): Zed Stranger (admin) and Yan Young, who
    have a direct conversation with one message.
    """

    def __init__(self):
        ada = make_user("ada@example.com", "Ada Admin")
        self.org = make_org(ada, slug="river", name="River Club")
        tenancy.activate(self.org.id)
        self.admin = membership_for(self.org, ada)
        self.maria = add_member(self.org, make_user("maria@example.com", "Maria Santos"), "coach")
        self.ana = add_member(self.org, make_user("ana@example.com", "Ana Alves"))
        self.ben = add_member(self.org, make_user("ben@example.com", "Ben Brown"))
        self.cleo = add_member(self.org, make_user("cleo@example.com", "Cleo Cruz"))
        tenancy.activate(self.org.id)
        self.tennis = spaces.create_space(self.org, self.maria, "Tennis", "", "open")
        for member in (self.ana, self.ben):
            spaces.join(self.tennis, member)
        db.session.commit()

    def other_club(self) -> "OtherClub":
        club = OtherClub()
        self.act()  # the test goes on in River Club
        return club

    def act(self) -> None:
        tenancy.activate(self.org.id)

    def direct(self, a, b) -> Conversation:
        self.act()
        conversation = service.direct_with(self.org, a, b)
        db.session.commit()
        return conversation

    def channel(self) -> Conversation:
        self.act()
        conversation = service.space_channel(self.tennis)
        db.session.commit()
        return conversation

    def say(self, conversation, author, *bodies: str, now: datetime | None = None) -> list[Message]:
        """Messages stored through the service and committed (no push: nobody publishes them)."""
        self.act()
        made = [service.send(conversation, author, body, now=now) for body in bodies]
        db.session.commit()
        return made

    def media(self, owner, title: str = "Serve drill", status: str = "ready"):
        """A video of ``owner``'s that only they and the staff may see until it is shared (the row only:
        these tests are about who sees it, not storage)."""
        self.act()
        item = media_row(self.org.id, owner, title, status)
        db.session.commit()
        self.act()
        return item

    def suspend(self, member, until: datetime) -> None:
        self.act()
        spaces.suspend(self.tennis, self.maria, member, until)
        db.session.commit()


class OtherClub:
    """Hill Club: its organization, Yan's membership and Zed and Yan's conversation (its id), all
    loaded and detached (River Club's RLS could not load them again)."""

    def __init__(self):
        zed = make_user("zed@example.com", "Zed Stranger")
        self.org = make_org(zed, slug="hill", name="Hill Club")
        tenancy.activate(self.org.id)
        zed_member = membership_for(self.org, zed)
        self.yan = add_member(self.org, make_user("yan@example.com", "Yan Young"))
        conversation = service.direct_with(self.org, zed_member, self.yan)
        service.send(conversation, zed_member, "Hill only")
        self.conversation_id = conversation.id
        db.session.commit()
        for row in (self.org, self.yan):
            db.session.refresh(row)
            db.session.expunge(row)


def stored(conversation_id) -> list[tuple[int, str]]:
    """``(seq, body)`` of every stored message of a conversation, as PostgreSQL has them now."""
    rows = db.session.execute(select(Message.seq, Message.body).where(
        Message.conversation_id == conversation_id).order_by(Message.seq)).all()
    db.session.rollback()  # hold no snapshot or lock past the look
    return [(seq, body) for seq, body in rows]


def last_seq(conversation_id) -> int:
    value = db.session.scalar(select(Conversation.last_seq).where(Conversation.id == conversation_id))
    db.session.rollback()
    return value


# --- frames ----------------------------------------------------------------------------------------

def messages_in(frames, conversation_id=None) -> list[tuple[str, int]]:
    """``(message id, seq)`` of every message appended by ``frames`` (to one conversation, if given), in order."""
    found = []
    for frame in frames:
        match = STREAM_RE.search(frame)
        if match is None:
            continue
        if conversation_id is not None and match.group(1) != str(conversation_id):
            continue
        found.extend((mid, int(seq)) for mid, seq in ARTICLE_RE.findall(match.group(2)))
    return found


def seqs_in(frames, conversation_id=None) -> list[int]:
    return [seq for _, seq in messages_in(frames, conversation_id)]


def errors_in(frames) -> list[str]:
    return [m for frame in frames for m in ERROR_RE.findall(frame)]


def has_seq(seq: int, conversation_id=None):
    return lambda frame: seq in seqs_in([frame], conversation_id)


def has(*needles: str):
    return lambda frame: all(n in frame for n in needles)


def is_error(frame: str) -> bool:
    return bool(ERROR_RE.search(frame))


def unread_badge(frame: str) -> int | None:
    """The nav badge's count in a frame (``None`` if the frame has none)."""
    match = UNREAD_RE.search(frame)
    return int(match.group(1)) if match else None


# --- HTTP and sockets ------------------------------------------------------------------------------

def login(base_url: str, email: str) -> requests.Session:
    """A browser-like session logged in through the form."""
    browser = requests.Session()
    token = csrf_from(browser.get(f"{base_url}/login", timeout=10).text)
    response = browser.post(f"{base_url}/login", data={"csrf_token": token, "email": email, "password": PASSWORD},
                            allow_redirects=False, timeout=10)
    assert response.status_code == 303, response.status_code
    return browser


def cookie_header(browser: requests.Session) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in browser.cookies)


def post_message(base_url: str, browser: requests.Session, slug: str, conversation_id, body: str):
    """Send a message as the page's form does without JavaScript (not following the redirect)."""
    page = browser.get(f"{base_url}/o/{slug}/chat/{conversation_id}", timeout=10)
    assert page.status_code == 200, page.status_code
    return browser.post(f"{base_url}/o/{slug}/chat/{conversation_id}/messages",
                        data={"csrf_token": csrf_from(page.text), "body": body}, allow_redirects=False, timeout=10)


class ChatSocket:
    """One open chat socket: what it received, and waits for more."""

    def __init__(self, ws: Client):
        self.ws = ws
        self.frames: list[str] = []
        self._read = 0  # frames already looked at by wait_for

    def send(self, **frame) -> None:
        self.ws.send(json.dumps(frame, default=str))

    def send_raw(self, data) -> None:
        self.ws.send(data)

    def _pull(self, timeout: float) -> None:
        frame = self.ws.receive(timeout=timeout)
        if frame is not None:
            self.frames.append(frame if isinstance(frame, str) else frame.decode())

    def wait_for(self, predicate, timeout: float = LIVE_WAIT, what: str = "a matching frame") -> str:
        """The next frame (after those already waited past) for which ``predicate`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            while self._read < len(self.frames):
                frame = self.frames[self._read]
                self._read += 1
                if predicate(frame):
                    return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                tail = [f[:160] for f in self.frames[-5:]]
                raise AssertionError(f"no {what} within {timeout} s; last frames: {tail}")
            self._pull(min(remaining, 0.5))

    def wait_closed(self, timeout: float = LIVE_WAIT) -> ConnectionClosed:
        """Wait until the server closes the socket; the close (its ``reason`` is the code)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self._pull(min(deadline - time.monotonic(), 0.5))
            except ConnectionClosed as closed:
                return closed
        raise AssertionError(f"the socket stayed open for {timeout} s")

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:  # already closed by the server
            pass


class Sockets:
    """Opens sockets to the live server and closes them all after the test."""

    def __init__(self, app, base_url: str):
        self.app, self.base_url = app, base_url
        self.opened: list[ChatSocket] = []
        self.browsers: dict[str, requests.Session] = {}

    def browser(self, email: str) -> requests.Session:
        if email not in self.browsers:
            self.browsers[email] = login(self.base_url, email)
        return self.browsers[email]

    def url(self, slug: str) -> str:
        return self.base_url.replace("http://", "ws://", 1) + f"/o/{slug}/chat/socket"

    def handshake(self, slug: str = "river", email: str | None = None, origin: str | None = "same") -> Client:
        """The raw handshake; raises ``simple_websocket.ConnectionError`` (with ``status_code``) when refused."""
        headers = {}
        if email is not None:
            headers["Cookie"] = cookie_header(self.browser(email))
        if origin == "same":
            headers["Origin"] = self.base_url
        elif origin is not None:
            headers["Origin"] = origin
        return Client.connect(self.url(slug), headers=headers)

    def open(self, email: str, slug: str = "river") -> ChatSocket:
        """A socket as a page opens it; returns once the server greeted it (the unread badge),
        so the socket is registered with the hub and the hub listens to Redis."""
        sock = ChatSocket(self.handshake(slug, email))
        self.opened.append(sock)
        sock.wait_for(lambda f: unread_badge(f) is not None, what="greeting (unread badge)")
        assert hub_for(self.app).connected.wait(timeout=LIVE_WAIT), "the hub did not subscribe to Redis"
        return sock

    def close_all(self) -> None:
        for sock in self.opened:
            sock.close()
        for browser in self.browsers.values():
            browser.close()


def wait_following(app, member_id, conversation_id, after: int = 0, timeout: float = LIVE_WAIT) -> None:
    """Wait until one of the member's sockets follows the conversation (its ``resume`` was handled)."""
    hub = hub_for(app)
    conversation_id = uuid.UUID(str(conversation_id))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for conn in hub.followers(conversation_id):
            if conn.member_id == member_id and conn.last_seq.get(conversation_id, -1) >= after:
                return
        time.sleep(0.01)
    raise AssertionError("the socket does not follow the conversation")


# --- fixtures (imported by the chat test modules) --------------------------------------------------

@pytest.fixture()
def world(ctx):
    """River Club: its members and their conversations (ChatWorld)."""
    return ChatWorld()


@pytest.fixture()
def sockets(app, live_server, world):
    """Open test sockets to the live server; all closed after the test."""
    opened = Sockets(app, live_server)
    yield opened
    opened.close_all()
