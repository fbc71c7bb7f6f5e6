"""One hub per web process: the open sockets, and one Redis subscription that feeds them.

A connection registers the conversations it follows. An event from Redis names committed
rows; the hub loads and renders them once (a message is rendered twice: as mine and as
theirs; :mod:`coach.chat.render` keeps each rendering for the next event and the next page),
frames the HTML for the wire once, and writes the same bytes to each interested connection. Connections keep, per
conversation, the last ``seq`` their page has: an event that skips ahead makes them replay
the gap from PostgreSQL first, and one they already have is dropped, so a page sees every
message once and in order, whatever pub/sub does. When the subscription is lost and comes
back, every connection replays from PostgreSQL.

A connection belongs to one signed-in session and one membership. When the session ends (log out,
revoked, a password change) or the membership does (removed from the organization, or left),
accounts and orgs send their signals; the receivers at the end of this module publish the end
once it is committed, and every process closes the sockets concerned at once.

Under gunicorn's gevent worker the threads here are greenlets; under the test server they
are threads (hence the locks).
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

from flask import Flask, g, render_template, url_for
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import String, cast, select
from wsproto.frame_protocol import FrameProtocol

from coach import tenancy
from coach.accounts.service import sessions_ended
from coach.chat import realtime, render, service
from coach.chat.models import Conversation
from coach.extensions import db
from coach.orgs.models import Membership, Organization
from coach.orgs.service import member_removed
from coach.spaces.models import SpaceMember

log = logging.getLogger(__name__)

# Up to this many member ids go in an IN list; more, and a space's members are read whole.
MEMBER_IDS_IN_LIST = 50
# A push to a thousand sockets takes a tenth of a second or more; under gevent nothing else in the
# process runs meanwhile (handshakes holding a database connection, Redis replies with a 2 s timeout),
# so the hub yields after this many sends.
YIELD_EVERY = 50
# Locks shared by members' presence updates (striped: one lock per member would have to be forgotten).
PRESENCE_LOCK_STRIPES = 64
# The event types that end connections, and the close code their sockets get (1008, policy
# violation: htmx's ws extension does not reconnect after it, as it would after 1006 or 1011).
SESSIONS_ENDED = "sessions_ended"
MEMBER_REMOVED = "member_removed"
CLOSE_ENDED = 1008


@dataclass(frozen=True)
class Badge:
    """A count in the nav that a higher layer keeps and the sockets keep current (notifications: the bell)."""

    count: Callable[[Membership], int]  # the member's count (called in an app context, tenant active)
    template: str  # renders ``count`` out of band (``oob`` is true)


_badges: dict[str, Badge] = {}
# Events of a higher layer's own type (rooms: signaling), handed to it as they are: ``handler(hub, event)``.
_handlers: dict[str, Callable[[Hub, dict], None]] = {}


def register_badge(event_type: str, count: Callable[[Membership], int], template: str) -> None:
    """Keep a higher layer's nav badge current on every open page, without chat knowing that layer.

    The badge is sent with chat's own badges (on connecting, and when unread counts change), and again
    to the members named by a published ``{"type": event_type, "tenant_id": ..., "member_ids": [...]}``.

    :param event_type: the ``type`` of the event that says the members' counts changed.
    """
    _badges[event_type] = Badge(count, template)


def register_handler(event_type: str, handler: Callable[[Hub, dict], None]) -> None:
    """Let a higher layer handle published events of its own ``type`` in every process, without chat knowing
    that layer: ``handler(hub, event)`` runs on the hub's listener (keep it quick: no database, a few sends).
    Events that end sessions and memberships still close that layer's sockets registered as connections."""
    _handlers[event_type] = handler


class Frame:
    """One HTML fragment for many sockets: framed for the wire once (a server's frames are not masked, so
    every socket gets the same bytes), not once per socket."""

    __slots__ = ("html", "_data")

    def __init__(self, html: str):
        self.html = html
        self._data: bytes | None = None

    @property
    def data(self) -> bytes:
        if self._data is None:
            self._data = bytes(FrameProtocol(client=False, extensions=[]).send_data(self.html, fin=True))
        return self._data


class Connection:
    """One open socket of one member: what it follows and how far its page is."""

    def __init__(self, send: Callable[[str], None], tenant_id: uuid.UUID, member_id: uuid.UUID, tz: str = "UTC",
                 session_id: uuid.UUID | None = None, close: Callable[[int, str], None] | None = None,
                 write: Callable[[bytes], None] | None = None, hour_cycle: int = 24):
        """
        :param send: sends one text message.
        :param session_id: the signed-in session the socket was opened with (its end closes the socket).
        :param close: closes the socket with a code and a reason, from any thread.
        :param write: writes an already framed message (:class:`Frame`) to the socket as it is; without it,
            frames are sent with ``send``. Only for sockets without extensions (no compression): the bytes
            are the same for every socket.
        :param hour_cycle: the member's clock (12 or 24 hours), for the times in pushed messages.
        """
        self._send = send
        self._write = write
        self._close = close
        self.tenant_id = tenant_id
        self.member_id = member_id
        # Ids as text too: compared for every socket of every event, and str == str costs a fraction of
        # UUID == UUID (and ids read from the database as text cost a fraction of a thousand UUIDs made).
        self.tenant_key = str(tenant_id)
        self.member_key = str(member_id)
        self.session_id = session_id
        self.set_clock(tz, hour_cycle)
        self.last_seq: dict[uuid.UUID, int] = {}
        # Re-entrant: catch_up sends while holding it, so two deliveries reach the page in seq order.
        self.lock = threading.RLock()
        self.closed = False
        # What this page last said of its member ("online" while shown, "away" while hidden): the member
        # counts as online while any of their pages is (see Hub.presence_of).
        self.state = "online"
        # Members whose presence this page shows: the other side of each direct conversation it follows.
        self.watching: dict[uuid.UUID, uuid.UUID] = {}

    def set_clock(self, tz: str, hour_cycle: int) -> None:
        """Times in pushed messages are shown in the member's zone, on their clock (12 or 24 hours): the pair
        is what a rendering depends on besides the message (two readers in one zone on different clocks
        share no frame), set as one value so the hub never reads half of a change."""
        self.clock: tuple[str, int] = (tz or "UTC", hour_cycle if hour_cycle in (12, 24) else 24)

    @property
    def tz(self) -> str:
        return self.clock[0]

    @property
    def hour_cycle(self) -> int:
        return self.clock[1]

    def send(self, html: str | Frame) -> None:
        if self.closed or not html:
            return
        with self.lock:
            try:
                if isinstance(html, Frame):
                    if self._write is not None:
                        self._write(html.data)
                    else:
                        self._send(html.html)
                else:
                    self._send(html)
            except Exception:  # the socket went away between two messages
                self.closed = True

    def close(self, reason: str) -> None:
        """Close the socket now: nothing more is sent to it, and its handler stops."""
        if self.closed:
            return
        self.closed = True
        with self.lock:  # not in the middle of a frame
            if self._close is not None:
                try:
                    self._close(CLOSE_ENDED, reason)
                except Exception:  # already gone
                    pass


class Hub:
    def __init__(self, app: Flask):
        self.app = app
        self._lock = threading.Lock()
        self._by_conversation: dict[uuid.UUID, set[Connection]] = defaultdict(set)
        self._by_member: dict[uuid.UUID, set[Connection]] = defaultdict(set)
        self._listener: threading.Thread | None = None
        self.connected = threading.Event()
        # One member's presence is worked out and stored by one socket at a time (see presence_turn).
        self._presence_locks = [threading.RLock() for _ in range(PRESENCE_LOCK_STRIPES)]

    # --- registry --------------------------------------------------------------------------------

    def register(self, conn: Connection) -> None:
        self._ensure_listening()
        with self._lock:
            self._by_member[conn.member_id].add(conn)

    def follow(self, conn: Connection, conversation_id: uuid.UUID, seq: int,
               watch: uuid.UUID | None = None) -> None:
        """``conn``'s page shows ``conversation_id`` up to ``seq`` (and ``watch``'s presence)."""
        with conn.lock:
            conn.last_seq[conversation_id] = max(seq, conn.last_seq.get(conversation_id, 0))
            if watch is not None:
                conn.watching[conversation_id] = watch
        with self._lock:
            self._by_conversation[conversation_id].add(conn)

    def unfollow(self, conn: Connection, conversation_id: uuid.UUID) -> None:
        """``conn``'s page no longer shows ``conversation_id``: no more of its messages, typing or
        presence go there, and its new messages count in the page's unread badge instead."""
        with conn.lock:
            conn.last_seq.pop(conversation_id, None)
            conn.watching.pop(conversation_id, None)
        with self._lock:
            followers = self._by_conversation.get(conversation_id)
            if followers is not None:
                followers.discard(conn)
                if not followers:
                    del self._by_conversation[conversation_id]

    def unregister(self, conn: Connection) -> None:
        conn.closed = True
        with self._lock:
            self._by_member[conn.member_id].discard(conn)
            if not self._by_member[conn.member_id]:
                del self._by_member[conn.member_id]
            for conversation_id in list(conn.last_seq):
                followers = self._by_conversation.get(conversation_id)
                if followers is not None:
                    followers.discard(conn)
                    if not followers:
                        del self._by_conversation[conversation_id]

    def followers(self, conversation_id: uuid.UUID) -> list[Connection]:
        with self._lock:
            return list(self._by_conversation.get(conversation_id, ()))

    def connections_of(self, member_id: uuid.UUID) -> list[Connection]:
        with self._lock:
            return list(self._by_member.get(member_id, ()))

    def presence_of(self, member_id: uuid.UUID, state: str) -> str:
        """The member's state as this process sees it, after one of their pages said ``state``: online
        while any of their open pages here is. (A page being left says "away" as it goes, and that
        frame can arrive after the next page's "online": the member must not look away meanwhile.)"""
        if state == "online":
            return state
        with self._lock:
            pages = list(self._by_member.get(member_id, ()))
        return "online" if any(c.state == "online" and not c.closed for c in pages) else state

    def presence_turn(self, member_id: uuid.UUID) -> threading.RLock:
        """Held while a socket of ``member_id`` works out what their presence is, stores it and tells the
        others. Without it two of their sockets race: the page being left computes "away" before the next
        page registers, the next page stores "online" (unchanged, so untold), and the late "away" is stored
        and published last; the member looks away while their page is shown, until their next change."""
        return self._presence_locks[hash(member_id) % PRESENCE_LOCK_STRIPES]

    def count(self) -> int:
        with self._lock:
            return sum(len(c) for c in self._by_member.values())

    # --- the subscription ------------------------------------------------------------------------

    def _ensure_listening(self) -> None:
        with self._lock:
            if self._listener is not None and self._listener.is_alive():
                return
            self._listener = threading.Thread(target=self._listen, name="chat-hub", daemon=True)
            self._listener.start()

    def _listen(self) -> None:
        pause = 0.5
        first = True
        while True:
            try:
                # A connection of its own with no read timeout: the subscription waits for events.
                client = Redis.from_url(self.app.config["REDIS_URL"], socket_timeout=None,
                                        socket_connect_timeout=2, health_check_interval=30)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.psubscribe(f"{realtime.CHANNEL_PREFIX}*")
                self.connected.set()
                if not first:
                    self._resync_all()  # events may have gone by while we were away
                first, pause = False, 0.5
                for raw in pubsub.listen():
                    if raw.get("type") == "pmessage":
                        self._dispatch_safely(raw["data"])
            except RedisError:
                self.connected.clear()
                log.warning("chat hub lost Redis; retrying in %.1f s", pause)
                time.sleep(pause)
                pause = min(pause * 2, 10)

    def _dispatch_safely(self, data) -> None:
        try:
            self.dispatch(json.loads(data))
        except Exception:
            log.exception("chat hub could not handle an event")
            db.session.remove()

    # --- events ----------------------------------------------------------------------------------

    def dispatch(self, event: dict) -> None:
        kind = event.get("type")
        if kind == SESSIONS_ENDED:
            self.end_sessions({uuid.UUID(s) for s in event.get("session_ids") or ()})
            return
        tenant_id = uuid.UUID(event["tenant_id"])
        if kind == MEMBER_REMOVED:
            self.end_member(tenant_id, uuid.UUID(event["member_id"]))
            return
        if kind in ("message", "changed"):
            conversation_id = uuid.UUID(event["conversation_id"])
            tenant_key = str(tenant_id)
            followers = [c for c in self.followers(conversation_id) if c.tenant_key == tenant_key]
            if followers or (kind == "message" and self.count()):
                with self.rendering(tenant_id):
                    self._deliver(conversation_id, followers, event)
        elif kind == "typing":
            self._typing(tenant_id, event)
        elif kind == "read":
            self._read(tenant_id, event)
        elif kind == "presence":
            self._presence(tenant_id, event)
        elif kind == "posts":
            self._posts(tenant_id, event)
        elif kind in _badges:
            self._badge(tenant_id, _badges[kind], event)
        elif kind in _handlers:
            _handlers[kind](self, event)

    def end_sessions(self, session_ids: set[uuid.UUID]) -> int:
        """Close this process's sockets of sessions that ended; how many."""
        with self._lock:
            conns = [c for cs in self._by_member.values() for c in cs if c.session_id in session_ids]
        for conn in conns:
            conn.close("Your session has ended.")
        return len(conns)

    def end_member(self, tenant_id: uuid.UUID, member_id: uuid.UUID) -> int:
        """Close this process's sockets of a membership that ended: not one more event of the
        organization reaches them. How many."""
        conns = [c for c in self.connections_of(member_id) if c.tenant_id == tenant_id]
        for conn in conns:
            conn.close("You are no longer a member of this organization.")
        return len(conns)

    @contextmanager
    def rendering(self, tenant_id: uuid.UUID):
        """A request-like context for one organization, outside any request: templates build their
        URLs (relative to APP_BASE_URL) and read the organization's rows."""
        with self.app.test_request_context("/", base_url=self.app.config["APP_BASE_URL"]):
            try:
                tenancy.activate(tenant_id)
                g.org = db.session.get(Organization, tenant_id)
                yield
            finally:
                db.session.remove()

    def _deliver(self, conversation_id: uuid.UUID, followers: list[Connection], event: dict) -> None:
        conversation = db.session.get(Conversation, conversation_id)
        if conversation is None:
            return
        if conversation.kind == "space" and followers:
            # Access was checked when the page followed the channel: someone who has left the space (or
            # was removed) since must not go on reading it.
            if len(followers) <= MEMBER_IDS_IN_LIST:
                members = space_members_among(conversation.tenant_id, conversation.space_id,
                                              {c.member_id for c in followers})
                followers = [c for c in followers if c.member_id in members]
            else:
                keys = space_member_keys(conversation.tenant_id, conversation.space_id)
                followers = [c for c in followers if c.member_key in keys]
        if event["type"] == "changed":
            seq = int(event["seq"])
            rows = service.rows_after(conversation, seq - 1, upto=seq)
            if rows:
                frames: dict = {}  # one rendering per (theirs or not, time zone and clock), whoever follows
                for conn in followers:
                    mine = conn.member_id if conn.member_id == rows[0].author_id else None
                    clock = conn.clock  # (zone, hours): read once, a view frame may set it meanwhile
                    if (mine, clock) not in frames:
                        frames[(mine, clock)] = Frame(render_messages(conversation, rows, mine, oob="outerHTML",
                                                                      tz=clock[0], hour_cycle=clock[1]))
                    conn.send(frames[(mine, clock)])
            return
        seq = int(event["seq"])
        # A thousand followers share a handful of renderings (mine or not, time zone and clock), each framed once.
        cache: dict = {}
        # Nearly every page has everything before this message: it gets this message's frame, with no more
        # than a look at its position (catch_up's general way costs several times as much per socket).
        rows = service.rows_after(conversation, seq - 1, upto=seq)
        cache[("rows", seq - 1, seq)] = (rows, seq, {m.author_id for m in rows}) if rows else ([], 0, set())
        author_key = str(rows[0].author_id) if rows else None
        for n, conn in enumerate(followers, 1):
            if n % YIELD_EVERY == 0:
                time.sleep(0)  # let the process's other sockets run between sends (see YIELD_EVERY)
            with conn.lock:
                if rows and conn.last_seq.get(conversation_id) == seq - 1:
                    mine = conn.member_id if conn.member_key == author_key else None
                    clock = conn.clock
                    key = ("frame", seq - 1, seq, mine, clock)
                    frame = cache.get(key)
                    if frame is None:  # the first of its kind only
                        frame = cache[key] = Frame(render_messages(conversation, rows, mine, oob="beforeend",
                                                                   tz=clock[0], hour_cycle=clock[1]))
                    conn.last_seq[conversation_id] = seq
                    conn.send(frame)
                    continue
            self.catch_up(conn, conversation, upto=seq, cache=cache)  # behind by more than one, or ahead
        self._update_badges(conversation)

    def _update_badges(self, conversation: Conversation) -> None:
        """Members of the conversation with the app open elsewhere: their unread counts went up."""
        tenant_id, conversation_id = conversation.tenant_id, conversation.id  # read once, not per connection
        tenant_key = str(tenant_id)
        with self._lock:
            # Connections hash by identity (no UUID hashed per connection of the process).
            following = self._by_conversation.get(conversation_id, set())
            elsewhere = [c for cs in self._by_member.values() for c in cs
                         if c not in following and c.tenant_key == tenant_key]
        if conversation.kind == "direct":
            members = {conversation.member_low_id, conversation.member_high_id}
        elif elsewhere:
            members = space_members_among(tenant_id, conversation.space_id, {c.member_id for c in elsewhere})
        else:
            return
        for conn in elsewhere:
            if conn.member_id in members:
                self.send_unread(conn)

    def catch_up(self, conn: Connection, conversation: Conversation, upto: int | None = None,
                 cache: dict | None = None) -> None:
        """Send ``conn`` every message after what its page has (up to ``upto``), oldest first, once.

        :param cache: what the connections of one event share, keyed by what differs between readers
            (which messages, whether one is theirs, their time zone and clock): the rows read, and each rendering
            framed once.
        """
        cache = {} if cache is None else cache
        conversation_id = conversation.id  # an ORM attribute: read once, not per follower
        for _ in range(10):  # another delivery can overtake this one only so often
            with conn.lock:
                have = conn.last_seq.get(conversation_id)
            if have is None:
                return  # the page stopped showing the conversation meanwhile (unfollow)
            if upto is not None and upto <= have:
                return
            key = ("rows", have, upto)
            if key not in cache:
                rows = service.rows_after(conversation, have, upto=upto)
                # The rows, the newest seq and their authors: what each follower needs, worked out once.
                cache[key] = (rows, rows[-1].seq if rows else 0, {m.author_id for m in rows})
            missing, newest, authors = cache[key]
            if not missing:
                return
            mine = conn.member_id if conn.member_id in authors else None
            clock = conn.clock
            frame_key = ("frame", have, newest, mine, clock)
            if frame_key not in cache:
                cache[frame_key] = Frame(render_messages(conversation, missing, mine, oob="beforeend",
                                                         tz=clock[0], hour_cycle=clock[1]))
            with conn.lock:
                if conn.last_seq.get(conversation_id) != have:
                    # Another delivery overtook this one: it may have sent fewer (its rows were read
                    # before ours committed), so start again from where it left the page.
                    continue
                conn.last_seq[conversation_id] = newest
                conn.send(cache[frame_key])  # under the lock: a later delivery cannot reach the page first
            return

    def _resync_all(self) -> None:
        with self._lock:
            by_conversation = {k: list(v) for k, v in self._by_conversation.items()}
        for conversation_id, conns in by_conversation.items():
            for tenant_id in {c.tenant_id for c in conns}:
                with self.rendering(tenant_id):
                    conversation = db.session.get(Conversation, conversation_id)
                    if conversation is not None:
                        for conn in conns:
                            if conn.tenant_id == tenant_id:
                                self.catch_up(conn, conversation)

    def _typing(self, tenant_id: uuid.UUID, event: dict) -> None:
        conversation_id = uuid.UUID(event["conversation_id"])
        who = uuid.UUID(event["member_id"])
        html = None
        for conn in self.followers(conversation_id):
            if conn.tenant_id == tenant_id and conn.member_id != who:
                if html is None:
                    with self.app.app_context():
                        html = render_template("chat/_typing.html", conversation_id=conversation_id,
                                               name=event.get("name", "Someone"))
                conn.send(html)

    def _read(self, tenant_id: uuid.UUID, event: dict) -> None:
        """A member read up to a seq: their other tabs clear the badge; in a direct conversation
        the other member sees "Seen"."""
        conversation_id = uuid.UUID(event["conversation_id"])
        reader = uuid.UUID(event["member_id"])
        # Who in this process is concerned, before any query: in a space's channel only the reader's own
        # pages are (and they may all be in another process).
        others = [c for c in self.followers(conversation_id) if c.tenant_id == tenant_id and c.member_id != reader] \
            if event.get("direct") else []
        own = [c for c in self.connections_of(reader) if c.tenant_id == tenant_id]
        if not others and not own:
            return
        with self.rendering(tenant_id):
            for conn in others:
                conn.send(render_template("chat/_receipt.html", conversation_id=conversation_id,
                                          seen=int(event["seq"]) >= int(event["last_seq"]), oob=True))
            for conn in own:
                self.send_unread(conn)

    def _presence(self, tenant_id: uuid.UUID, event: dict) -> None:
        member_id = event["member_id"]
        state = event["state"]
        html = None
        # Only pages that show this member's dot: telling every page of the organization about every
        # member made presence grow with the square of the people online (500,000 frames for 1,000).
        # (A copy of each page's watched members: follow() may add to them meanwhile.)
        watched = uuid.UUID(member_id)
        with self._lock:
            conns = [c for cs in self._by_member.values() for c in cs
                     if c.tenant_id == tenant_id and watched in list(c.watching.values())]
        for n, conn in enumerate(conns, 1):
            if str(conn.member_id) == member_id:
                continue
            if html is None:
                with self.app.app_context():
                    html = render_template("chat/_presence.html", member_id=member_id, state=state)
            conn.send(html)
            if n % YIELD_EVERY == 0:
                time.sleep(0)

    def _posts(self, tenant_id: uuid.UUID, event: dict) -> None:
        """Someone posted in a space: its members' open pages ask their "new posts" bar at once."""
        with self._lock:
            conns = [c for cs in self._by_member.values() for c in cs
                     if c.tenant_id == tenant_id and str(c.member_id) != event.get("author_id")]
        if not conns:
            return
        with self.rendering(tenant_id):
            members = set(db.session.scalars(select(SpaceMember.membership_id).where(
                SpaceMember.tenant_id == tenant_id, SpaceMember.space_id == uuid.UUID(event["space_id"]),
                SpaceMember.membership_id.in_({c.member_id for c in conns}))))
            html = render_template("chat/_signal.html", name="posts-changed")
        for conn in conns:
            if conn.member_id in members:
                conn.send(html)

    def _badge(self, tenant_id: uuid.UUID, badge: Badge, event: dict) -> None:
        """Members' counts changed (notified, or read): their pages show the new count."""
        wanted = set(event.get("member_ids") or ())
        with self._lock:
            conns = [c for cs in self._by_member.values() for c in cs
                     if c.tenant_id == tenant_id and str(c.member_id) in wanted]
        if not conns:
            return
        counts: dict[uuid.UUID, int] = {}
        with self.rendering(tenant_id):
            for conn in conns:
                if conn.member_id not in counts:
                    member = db.session.get(Membership, conn.member_id)
                    if member is None:
                        continue
                    counts[conn.member_id] = badge.count(member)
                # With the count, a "notified" signal: parts of the page that show what changed (the home
                # page's sessions and requests) ask again.
                conn.send(render_template(badge.template, count=counts[conn.member_id], oob=True)
                          + render_template("chat/_signal.html", name="notified"))

    def send_unread(self, conn: Connection) -> None:
        """The nav badges (chat's and those registered) and the per-conversation counts of ``conn``'s
        member (needs an app context)."""
        member = db.session.get(Membership, conn.member_id)
        org = db.session.get(Organization, conn.tenant_id)
        if member is None or org is None:
            return
        summaries = service.conversations_for(org, member)
        conn.send(render_template("chat/_unread.html", summaries=summaries, total=sum(s.unread for s in summaries),
                                  badges=[(b.template, b.count(member)) for b in _badges.values()]))


def space_members_among(tenant_id: uuid.UUID, space_id: uuid.UUID, member_ids: set[uuid.UUID]) -> set[uuid.UUID]:
    """Which of ``member_ids`` are members of the space (needs an app context).

    A few ids go in an ``IN`` list; for many, the space's members are read whole: a thousand bound
    parameters cost more to compile, send and plan than a thousand rows cost to read.
    """
    query = select(SpaceMember.membership_id).where(SpaceMember.tenant_id == tenant_id,
                                                    SpaceMember.space_id == space_id)
    if len(member_ids) <= MEMBER_IDS_IN_LIST:
        return set(db.session.scalars(query.where(SpaceMember.membership_id.in_(member_ids))))
    return member_ids.intersection(db.session.scalars(query))


def space_member_keys(tenant_id: uuid.UUID, space_id: uuid.UUID) -> set[str]:
    """The ids of a space's members as text (needs an app context): for checking many connections at once."""
    return set(db.session.scalars(select(cast(SpaceMember.membership_id, String)).where(
        SpaceMember.tenant_id == tenant_id, SpaceMember.space_id == space_id)))


def render_messages(conversation: Conversation, rows: list[service.MessageRow], mine_id: uuid.UUID | None, oob: str,
                    tz: str = "UTC", hour_cycle: int = 24) -> str:
    """Messages as out-of-band swaps: appended to their conversation's list, or replacing themselves (needs
    :meth:`Hub.rendering`'s context: links are the organization's).

    :param mine_id: the reader, if some of the messages are theirs (styled and offered as theirs).
    :param tz: the reader's time zone, for the times shown.
    :param hour_cycle: the reader's clock (12 or 24 hours).
    """
    attachments = service.attachments_of(conversation.tenant_id, [m.id for m in rows if m.has_media])
    articles = render.articles(rows, base=url_for("chat.conversation", conversation_id=conversation.id),
                               mine_id=mine_id, tz=tz, hour_cycle=hour_cycle, attachments=attachments,
                               oob_each=oob != "beforeend")
    return render_template("chat/_stream.html", conversation_id=conversation.id, articles=articles, oob=oob)


@sessions_ended.connect
def _close_ended_sessions(_sender, session_ids=(), **_) -> None:
    realtime.publish_after_commit(None, {"type": SESSIONS_ENDED, "session_ids": [str(s) for s in session_ids]})


@member_removed.connect
def _close_removed_member(org, membership=None, **_) -> None:
    realtime.publish_after_commit(org.id, {"type": MEMBER_REMOVED, "tenant_id": str(org.id),
                                           "member_id": str(membership.id)})


_hubs: dict[int, Hub] = {}
_hubs_lock = threading.Lock()


def hub_for(app: Flask) -> Hub:
    """This process's hub for ``app`` (made on first use)."""
    with _hubs_lock:
        hub = _hubs.get(id(app))
        if hub is None:
            hub = _hubs[id(app)] = Hub(app)
        return hub
