"""Every main page is a fixed number of SQL statements, however much it shows (issue 23, section 6).

Each test opens one page as the member who opens it day to day, with the page's data at one size
and then doubled (posts with reactions, comments and attachments; members and coaches; bookings;
messages; conversations; notifications; media; spaces), and asserts that the number of statements
is the same at both sizes and is the number written here:

* the two sizes differ: the page sends a query per row (an N+1). Load the rows in one query.
* both sizes agree on another number: a query was added to (or removed from) every request of the
  page. If that is deliberate, write the new number here and say why in the commit.

The count is of one request through the app in this process (``tests/querycount.py``: SQLAlchemy's
``before_cursor_execute`` on the test's thread), after one request to warm up (first-request work,
such as loading the session user's row into a fresh identity map, is not the page's). It includes
the floor every page pays (one statement for the session's user, the organization, the membership and
the ``set_config`` of the tenant settings; the nav's two badges in one statement) and the statements
``SAVEPOINT``/``RELEASE`` SQLAlchemy sends.
"""
from __future__ import annotations

import re
import threading
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event

from coach.booking import service as booking
from coach.chat import service as chat
from coach.chat.models import MessageAttachment
from coach.extensions import db
from coach.media.models import MediaItem
from coach.notifications import service as notifications
from coach.orgs.models import ATHLETE, COACH
from coach.spaces import service as spaces
from tests.booking_support import make_offering, next_monday, open_every_day
from tests.chat_support import ChatWorld
from tests.conftest import Auth
from tests.factories import add_member, make_user
from tests.querycount import statements_for

UTC = timezone.utc
POST_RE = re.compile(r'<article class="card post[^"]*" id="post-[0-9a-f-]{36}"')
MESSAGE_RE = re.compile(r'<article class="message[^"]*" id="msg-[0-9a-f-]{36}"')
TILE_RE = re.compile(r'class="media-tile card" href="[^"]+" id="media-[0-9a-f-]{36}"')
NOTIFICATION_RE = re.compile(r'<li class="notification[^"]*" id="notification-')
BOOKING_RE = re.compile(r'class="booking status-')
SPACE_LINK_RE = re.compile(r'<a href="/o/river/spaces/[0-9a-f-]{36}"><strong>')
COMMENT_RE = re.compile(r'<div class="comment" id="comment-')

# The statements each page sends (one request, warmed up). Written from a run on 2026-12-06; see the
# module's docstring before changing one.
EXPECTED = {
    "home": 3,
    # Issue 21: the home page's blocks, each on its own (the floor included: a block alone is one statement).
    "home_sessions": 3, "home_today": 5, "home_reviews": 3, "home_messages": 4, "home_spaces": 5,
    "home_requests": 3, "home_schedule": 3, "home_attention": 4,
    "week_calendar": 4,
    "home_feed": 5,
    "space": 7,
    "post": 6,
    "chat_direct": 9,
    "chat_channel": 9,
    "chat_index": 5,
    "sessions_coach": 3,
    "sessions_athlete": 4,  # issue 19: the athlete's places in waitlists, one statement (waitlist.places_of)
    "media_library": 3,
    "notifications": 3,
    "spaces_index": 3,
    "coaches": 3,
}


def text(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


# --- the world -------------------------------------------------------------------------------------

class PageWorld(ChatWorld):
    """River Club (see :class:`tests.chat_support.ChatWorld`): Ada Admin; Maria Santos (coach) hosts
    the open space "Tennis" with the athletes Ana Alves and Ben Brown in it; Cleo Cruz. Maria has
    Berlin hours 09–17 every day and offers a one-to-one "Technique session" and a group "Clinic".
    Ana is the athlete whose pages are opened; Maria the coach. ``grow_*`` add one step of a page's
    data; a test calls one twice, counting after each call."""

    def __init__(self, app):
        super().__init__()
        self.app = app
        open_every_day(self.maria, tz="Europe/Berlin")
        self.offering = make_offering(self.maria, title="Technique session")
        self.clinic = make_offering(self.maria, title="Clinic", capacity=8, duration_minutes=90)
        self.act()
        self.padel = spaces.create_space(self.org, self.maria, "Padel", "", "open")
        spaces.join(self.padel, self.ana)
        db.session.commit()
        self.week = next_monday() + timedelta(days=7)  # the week the calendar shows: bookings go there
        self._n = 0
        self._browsers: dict = {}

    def browser(self, member):
        """A logged-in test client for ``member`` (one per person, kept)."""
        if member.id not in self._browsers:
            client = self.app.test_client()
            assert Auth(client).login(member.user.email).status_code == 303
            self._browsers[member.id] = client
            self.act()
        return self._browsers[member.id]

    def count(self, member, path: str) -> int:
        self.act()
        return statements_for(self.app, self.browser(member), path)

    def page(self, member, path: str) -> str:
        self.act()
        return text(self.browser(member).get(path))

    def url(self, path: str = "") -> str:
        return f"/o/{self.org.slug}{path}"

    def seq(self) -> int:
        self._n += 1
        return self._n

    # people and things

    def member(self, role: str = ATHLETE):
        n = self.seq()
        made = add_member(self.org, make_user(f"{role}{n}@example.com", f"{role.title()} {n:03d}"), role)
        self.act()
        return made

    def media(self, owner, audience: str = "organization", kind: str = "image") -> MediaItem:
        """A processed item's row (no file in storage: the pages only sign URLs for it)."""
        self.act()
        key = f"{self.org.id}/{uuid.uuid4()}"
        derived = {"thumb": f"{key}/thumb.webp", "large": f"{key}/large.webp"} if kind == "image" else \
            {"poster": f"{key}/poster.jpg", "thumb": f"{key}/thumb.webp", "playback": f"{key}/playback.mp4"}
        item = MediaItem(tenant_id=self.org.id, owner_membership_id=owner.id, audience=audience, kind=kind,
                         title=f"Item {self.seq()}", filename="clip.mp4" if kind == "video" else "photo.jpg",
                         content_type="video/mp4" if kind == "video" else "image/jpeg", status="ready",
                         declared_bytes=1000, size_bytes=1000, counted_bytes=1000, part_bytes=1000, part_count=1,
                         original_key=f"{key}/original", derived_keys=derived, width=640, height=480,
                         duration_ms=12_000 if kind == "video" else None,
                         upload_expires_at=datetime.now(UTC), uploaded_at=datetime.now(UTC),
                         ready_at=datetime.now(UTC))
        db.session.add(item)
        db.session.commit()
        self.act()
        return item

    def slot(self, offering, day: int, index: int):
        """The ``index``-th free start of ``offering`` on day ``day`` (0 = Monday) of the measured week."""
        self.act()
        start = datetime.combine(self.week + timedelta(days=day), datetime.min.time(), UTC)
        free = booking.available_slots(offering, start, start + timedelta(days=1))
        assert len(free) > index, "the world should offer slots"
        return free[index].starts_at

    # growing a page's data by one step

    def grow_people(self, n: int) -> None:
        """``n`` coaches (each with an offering) and ``n`` athletes."""
        for _ in range(n):
            coach = self.member(COACH)
            make_offering(coach, title="Serve clinic")
            self.member(ATHLETE)
        self.act()

    def grow_posts(self, n: int) -> None:
        """``n`` posts in Tennis and ``n`` in Padel, each with reactions (one of them Ana's), a comment
        and an attached photo; one pinned post in Tennis per step."""
        for space in (self.tennis, self.padel):
            authors = [m for m in (self.maria, self.ben, self.ana) if spaces.access(space, m).post]
            for i in range(n):
                k = self.seq()
                author = authors[k % len(authors)]
                photo = self.media(author)
                self.act()
                post = spaces.create_post(space, author, f"Post {k}: **drills** and a [link](https://example.org)",
                                          now=datetime.now(UTC) - timedelta(minutes=500 - k),
                                          attachments=[photo])
                for reader, kind in ((self.ana, "like"), (self.ben, "celebrate"), (self.maria, "support")):
                    if reader is not author and spaces.access(space, reader).comment:
                        spaces.toggle_reaction(post, reader, kind)
                commenter = next(p for p in (self.maria, self.ana, self.ben)
                                 if p is not author and spaces.access(space, p).comment)
                spaces.add_comment(post, commenter, f"Comment {k}")
                if space is self.tennis and i == 0:
                    spaces.set_pinned(post, self.maria, True)
                db.session.commit()
        self.act()

    def grow_comments(self, post, n: int) -> None:
        """``n`` comments on ``post``, each with a reply, and ``n`` reactions."""
        people = [self.ben, self.maria]
        for _ in range(n):
            k = self.seq()
            self.act()
            top = spaces.add_comment(post, people[k % 2], f"Comment {k}")
            spaces.add_comment(post, self.ana, f"Reply {k}", parent=top)
            reactor = self.member(ATHLETE)
            spaces.join(self.tennis, reactor)
            spaces.toggle_reaction(post, reactor, "like")
            db.session.commit()
        self.act()

    def grow_messages(self, conversation, n: int) -> None:
        """``n`` messages from each side (for a channel: from Ben and Maria), every other one with a photo."""
        others = [self.ben] if conversation.kind == "direct" else [self.ben, self.maria]
        for i in range(n):
            for author in [self.ana, *others]:
                k = self.seq()
                photo = self.media(author) if i % 2 == 0 else None
                self.act()
                message = chat.send(conversation, author, f"message {k}", attachments=[photo] if photo else None)
                if photo is not None:
                    assert db.session.query(MessageAttachment).filter_by(message_id=message.id).count() == 1
                db.session.commit()
        self.act()

    def grow_conversations(self, n: int) -> None:
        """``n`` direct conversations of Ana's with new members, and ``n`` new spaces' channels she is in,
        each with a message."""
        for _ in range(n):
            other = self.member(ATHLETE)
            direct = chat.direct_with(self.org, self.ana, other)
            chat.send(direct, other, "hello Ana")
            space = spaces.create_space(self.org, self.maria, f"Group {self.seq()}", "", "open")
            spaces.join(space, self.ana)
            chat.send(chat.space_channel(space), self.maria, "welcome")
            db.session.commit()
        self.act()

    def grow_bookings(self, n: int) -> None:
        """``n`` one-to-one bookings with Maria by new athletes (requested, confirmed, cancelled in turn)
        and ``n`` places of Ana's in the measured week (one-to-ones and clinics)."""
        for _ in range(n):
            k = self.seq()
            athlete = self.member(ATHLETE)
            made = booking.request_booking(self.offering, athlete, self.slot(self.offering, k % 7, 0), "", athlete)
            if k % 3 == 1:
                booking.transition(made, "confirm", self.maria)
            elif k % 3 == 2:
                booking.transition(made, "cancel", athlete)
            db.session.commit()
            self.act()
            offering = self.offering if k % 2 else self.clinic
            mine = booking.request_booking(offering, self.ana, self.slot(offering, (k + 3) % 7, 1), "", self.ana)
            if k % 2:
                booking.transition(mine, "confirm", self.maria)
            db.session.commit()
        self.act()

    def grow_media(self, n: int) -> None:
        """``n`` of Ana's items, ``n`` shared with everyone by Maria, ``n`` staff-only ones (not Ana's to see)."""
        for i in range(n):
            self.media(self.ana, "staff", "image" if i % 2 else "video")
            self.media(self.maria, "organization", "video" if i % 2 else "image")
            self.media(self.maria, "staff")

    def grow_notifications(self, n: int) -> None:
        """``n`` notifications of three kinds for Ana, half of them read."""
        kinds = ("comment", "mention", "booking_confirmed")
        for i in range(n):
            for kind in kinds:
                k = self.seq()
                made = notifications.notify(self.ana, kind, dedupe_key=f"test:{k}", title=f"Note {k}",
                                            url=self.url("/feed"), body=f"About thing {k}", actor_id=self.maria.id,
                                            subject_id=uuid.uuid4())
                if i % 2:
                    made.read_at = datetime.now(UTC)
            db.session.commit()
        self.act()

    def grow_spaces(self, n: int) -> None:
        """``n`` open spaces with a post each: Ana joins every other one; one private space she is not in."""
        for i in range(n):
            space = spaces.create_space(self.org, self.maria, f"Space {self.seq()}", "About it", "open")
            if i % 2:
                spaces.join(space, self.ana)
            spaces.create_post(space, self.maria, "Hello space")
            spaces.create_space(self.org, self.maria, f"Private {self.seq()}", "", "private")
            db.session.commit()
        self.act()


@pytest.fixture()
def world(app, ctx, quiet):
    """The world, with the background relay and worker standing still: events stay in the outbox, so no
    job adds rows (notifications) while a page is counted."""
    made = PageWorld(app)
    made.act()
    return made


def same_at_both_sizes(world, name: str, member, path: str, grow, shown) -> tuple[int, int]:
    """Count ``path`` after one step of ``grow`` and after two; both counts must be ``EXPECTED[name]``.
    Returns what ``shown(html)`` found on the page at each size."""
    grow()
    world.count(member, path)  # warm up: first-request work is not the page's
    small = world.count(member, path)
    small_statements = statements(world, member, path)
    small_shown = shown(world.page(member, path))
    grow()
    large = world.count(member, path)
    large_shown = shown(world.page(member, path))
    assert small == large, f"{name}: {small} statements with one step of data, {large} with two (an N+1?); " \
        f"repeated: {repeated(world, member, path, small_statements)}"
    assert large == EXPECTED[name], f"{name}: {large} statements, expected {EXPECTED[name]}"
    return small_shown, large_shown


def statements(world, member, path: str) -> list[str]:
    """The statements of one request (for the message of a failing test: what repeats)."""
    me, seen = threading.get_ident(), []

    def grab(conn, cursor, statement, parameters, context, executemany):
        if threading.get_ident() == me:
            seen.append(" ".join(statement.split())[:300])

    engine = db.engine
    event.listen(engine, "before_cursor_execute", grab)
    try:
        world.page(member, path)
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    return seen


def repeated(world, member, path: str, before: list[str]) -> list[str]:
    """The statements sent more often now than in ``before``."""
    more = Counter(statements(world, member, path)) - Counter(before)
    return [f"{n}x more: {statement}" for statement, n in more.items()]


def doubles(sizes: tuple[int, int], at_first: int | None = None) -> None:
    """The page showed twice as much at the second size (and ``at_first`` rows at the first)."""
    assert sizes[0] > 0 and sizes[1] == 2 * sizes[0], sizes
    if at_first is not None:
        assert sizes[0] == at_first, sizes


# --- the pages ---------------------------------------------------------------------------------------

def test_organization_home(world):
    # Issue 21: the page is a shell (a greeting and the blocks' placeholders); each block loads on its own.
    small, large = same_at_both_sizes(world, "home", world.ana, world.url("/"), lambda: world.grow_bookings(2),
                                      lambda page: page.count('class="card home-block"'))
    assert small == large == 5, (small, large)


@pytest.mark.parametrize(("block", "who", "grow"), [
    ("sessions", "ana", "grow_bookings"), ("today", "ana", "grow_bookings"), ("reviews", "ana", "grow_bookings"),
    ("messages", "ana", "grow_conversations"), ("spaces", "ana", "grow_posts"),
    ("requests", "maria", "grow_bookings"), ("schedule", "maria", "grow_bookings"),
    ("attention", "maria", "grow_conversations")])
def test_home_blocks(world, block, who, grow):
    # Each block of the home page (followed as a link: with the page's floor) is a handful of statements,
    # whatever it has to choose from; it shows a few rows and links to the whole list.
    same_at_both_sizes(world, f"home_{block}", getattr(world, who), world.url(f"/home/{block}"),
                       lambda: getattr(world, grow)(2), lambda page: 0)


def test_week_calendar(world):
    # Each step books times of the measured week: fewer free slots show.
    path = world.url(f"/offerings/{world.offering.id}?week={world.week.isoformat()}")
    small, large = same_at_both_sizes(world, "week_calendar", world.ana, path, lambda: world.grow_bookings(3),
                                      lambda page: page.count('class="slot"'))
    assert small > large > 0, (small, large)


def test_home_feed(world):
    doubles(same_at_both_sizes(world, "home_feed", world.ana, world.url("/feed"), lambda: world.grow_posts(4),
                               lambda page: len(POST_RE.findall(page))), 8)


def test_space_page(world):
    doubles(same_at_both_sizes(world, "space", world.ana, world.url(f"/spaces/{world.tennis.id}"),
                               lambda: world.grow_posts(4), lambda page: len(POST_RE.findall(page))), 4)


def test_post_page(world):
    photo = world.media(world.maria)
    post = spaces.create_post(world.tennis, world.maria, "The plan for Saturday", attachments=[photo])
    db.session.commit()
    doubles(same_at_both_sizes(world, "post", world.ana, world.url(f"/posts/{post.id}"),
                               lambda: world.grow_comments(post, 3), lambda page: len(COMMENT_RE.findall(page))), 6)


def test_chat_direct_conversation(world):
    direct = world.direct(world.ana, world.ben)
    doubles(same_at_both_sizes(world, "chat_direct", world.ana, world.url(f"/chat/{direct.id}"),
                               lambda: world.grow_messages(direct, 4), lambda page: len(MESSAGE_RE.findall(page))), 8)


def test_chat_space_channel(world):
    channel = world.channel()
    doubles(same_at_both_sizes(world, "chat_channel", world.ana, world.url(f"/chat/{channel.id}"),
                               lambda: world.grow_messages(channel, 3), lambda page: len(MESSAGE_RE.findall(page))),
            9)


def test_chat_index(world):
    doubles(same_at_both_sizes(world, "chat_index", world.ana, world.url("/chat"),
                               lambda: world.grow_conversations(3), lambda page: page.count('<span id="unread-')), 6)


def test_sessions_page_as_coach(world):
    doubles(same_at_both_sizes(world, "sessions_coach", world.maria, world.url("/bookings"),
                               lambda: world.grow_bookings(3), lambda page: len(BOOKING_RE.findall(page))))


def test_sessions_page_as_athlete(world):
    doubles(same_at_both_sizes(world, "sessions_athlete", world.ana, world.url("/bookings"),
                               lambda: world.grow_bookings(3), lambda page: len(BOOKING_RE.findall(page))), 3)


def test_media_library(world):
    doubles(same_at_both_sizes(world, "media_library", world.ana, world.url("/media"), lambda: world.grow_media(4),
                               lambda page: len(TILE_RE.findall(page))), 8)


def test_notifications_page(world):
    doubles(same_at_both_sizes(world, "notifications", world.ana, world.url("/notifications"),
                               lambda: world.grow_notifications(3), lambda page: len(NOTIFICATION_RE.findall(page))),
            9)


def test_spaces_index(world):
    # Tennis and Padel, then two open spaces per step (the private ones are not Ana's to see).
    doubles(same_at_both_sizes(world, "spaces_index", world.ana, world.url("/spaces"), lambda: world.grow_spaces(2),
                               lambda page: len(SPACE_LINK_RE.findall(page)) - 2), 2)


def test_coaches_page(world):
    doubles(same_at_both_sizes(world, "coaches", world.ana, world.url("/book"), lambda: world.grow_people(2),
                               lambda page: page.count("/coaches/") - 1), 2)
