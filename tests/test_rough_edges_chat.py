"""Chat offline (issue 21), the server's part: a page back from a lost connection asks, with its ``view``, for
the presence of whom it shows (its dots were greyed while it could not know), and gets it at once. The page's
part (the status line, "Sending…", sent once) is the Chromium journey tests/e2e/test_chat_offline_journey.py.
"""
from __future__ import annotations


from tests.chat_support import has, is_error
from tests.chat_support import sockets, world  # noqa: F401 (fixtures)


def view(sock, conversation, presence: bool | None = None) -> None:
    frame = {"type": "view", "conversations": [{"conversation": str(conversation.id), "after": 0}]}
    if presence is not None:
        frame["presence"] = presence
    sock.send(**frame)


def test_a_page_that_asks_gets_the_presence_of_whom_it_shows(sockets, world):
    with_ben = world.direct(world.ana, world.ben)
    sockets.open("ben@example.com")  # Ben is online on some page
    ana = sockets.open("ana@example.com")

    view(ana, with_ben, presence=True)

    dot = ana.wait_for(has(f'id="presence-{world.ben.id}"'), what="Ben's presence")
    assert "presence-online" in dot and 'hx-swap-oob="true"' in dot


def test_presence_is_sent_only_to_a_page_that_asks(sockets, world):
    with_ben = world.direct(world.ana, world.ben)
    ana = sockets.open("ana@example.com")

    view(ana, with_ben)
    view(ana, with_ben, presence="yes")  # only true asks
    ana.send(type="marker")  # answered with an error, after both views
    ana.wait_for(is_error, what="the marker's answer")
    assert not [f for f in ana.frames if f"presence-{world.ben.id}" in f]

    view(ana, with_ben, presence=True)
    assert "presence-offline" in ana.wait_for(has(f'id="presence-{world.ben.id}"'), what="Ben's presence")
