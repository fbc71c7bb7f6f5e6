"""Messages pushed over the chat socket show their time on each reader's own clock (12 or 24 hours).

The hub renders a message once per kind of reader and writes the same frame to every socket of that kind: two
readers in one time zone on different clocks are two kinds, and a reader who changes their clock while their
socket stays open (boosted navigation keeps it) reads the next push on the new one.
"""
from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo


from coach.extensions import db
from coach.timezones import clock_time
from tests.chat_support import has_seq, post_message, wait_following
from tests.chat_support import sockets, world  # noqa: F401 (fixtures)
from tests.conftest import csrf_from

TIME_RE = re.compile(r'<time datetime="([^"]+)">([^<]*)</time>')


def shown_time(frame: str) -> tuple[datetime, str]:
    """The pushed message's instant and the time of day its ``<time>`` shows (after the date: "7 Dec 2:30 pm")."""
    match = TIME_RE.search(frame)
    assert match, frame[:300]
    day_and_time = match.group(2)
    return datetime.fromisoformat(match.group(1)), day_and_time.split(" ", 2)[2]


def set_clock(world, *members_and_cycles) -> None:
    world.act()
    for member, cycle in members_and_cycles:
        member.user.hour_cycle = cycle
    db.session.commit()


def test_two_readers_in_one_zone_each_get_a_push_on_their_own_clock(app, sockets, live_server, world):
    channel = world.channel()
    set_clock(world, (world.ana, 12), (world.ben, 24))  # both in Europe/Berlin
    ana, ben = sockets.open("ana@example.com"), sockets.open("ben@example.com")
    for sock, member in ((ana, world.ana), (ben, world.ben)):
        sock.send(type="resume", conversation=str(channel.id), after=0)
        wait_following(app, member.id, channel.id)

    sent = post_message(live_server, sockets.browser("maria@example.com"), "river", channel.id, "Court 3 is free")
    assert sent.status_code == 303

    to_ana = ana.wait_for(has_seq(1, channel.id), what="Maria's message on Ana's page")
    to_ben = ben.wait_for(has_seq(1, channel.id), what="Maria's message on Ben's page")
    at, on_ana = shown_time(to_ana)
    local = at.astimezone(ZoneInfo("Europe/Berlin"))
    assert on_ana == clock_time(local, 12) and on_ana.endswith(("am", "pm"))
    assert shown_time(to_ben) == (at, clock_time(local, 24))
    assert "Court 3 is free" in to_ana and "Court 3 is free" in to_ben


def test_an_open_socket_follows_its_members_new_clock_from_the_next_page(app, sockets, live_server, world):
    with_ben = world.direct(world.ana, world.ben)
    ana = sockets.open("ana@example.com")  # on the 24-hour clock, as everyone starts
    browser = sockets.browser("ana@example.com")
    profile = browser.get(f"{live_server}/profile", timeout=10)
    saved = browser.post(f"{live_server}/profile", timeout=10, allow_redirects=False, data={
        "csrf_token": csrf_from(profile.text), "display_name": "Ana Alves", "timezone": "Europe/Berlin",
        "hour_cycle": "12"})
    assert saved.status_code == 303
    # The next page she opens (boosted: the same socket) says what it shows.
    ana.send(type="view", conversations=[{"conversation": str(with_ben.id), "after": 0}])
    wait_following(app, world.ana.id, with_ben.id)

    sent = post_message(live_server, sockets.browser("ben@example.com"), "river", with_ben.id, "Running late")
    assert sent.status_code == 303

    at, shown = shown_time(ana.wait_for(has_seq(1, with_ben.id), what="Ben's message"))
    assert shown == clock_time(at.astimezone(ZoneInfo("Europe/Berlin")), 12)
