"""Chat as members use it: the plain pages (no JavaScript), and the live socket over a real server.

Pages are requested with the test client as a browser without JavaScript would. Sockets are real
WebSocket clients of ``live_server`` sending the session cookie and an ``Origin``, with frames as
``static/js/chat.js`` sends them; what they receive is the HTML htmx would swap in.
"""
from __future__ import annotations

import html
import json
import re
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from simple_websocket import ConnectionError as HandshakeRefused

from coach.chat import realtime, service
from coach.chat.hub import hub_for
from coach.extensions import db
from coach.spaces import service as spaces
from tests.chat_support import (LIVE_WAIT, cookie_header, errors_in, has, has_seq, is_error, messages_in, post_message,
                                seqs_in, stored, unread_badge, wait_following)
from tests.chat_support import sockets, world  # noqa: F401 (fixtures)
from tests.conftest import Auth, _free_port, csrf_from
from tests.factories import add_member, make_user
from tests.querycount import statements_for

UTC = timezone.utc
SEQ_RE = re.compile(r'<article class="message[^"]*" id="msg-[0-9a-f-]{36}" data-seq="(\d+)"')


def logged_in(app, email: str):
    """A test client of its own, logged in as ``email`` (a browser without JavaScript)."""
    browser = app.test_client()
    assert Auth(browser).login(email).status_code == 303
    return browser


def text(response) -> str:
    return response.get_data(as_text=True)


def page_seqs(page: str) -> list[int]:
    return [int(s) for s in SEQ_RE.findall(page)]


def unread_on_index(page: str, conversation_id) -> str | None:
    """The per-conversation badge on the chat index: its number, or None when it is hidden."""
    match = re.search(rf'<span id="unread-{conversation_id}" class="badge badge-new"( hidden)?>(\d+)</span>', page)
    assert match, f"no badge for {conversation_id}"
    return None if match.group(1) else match.group(2)


def follow(app, sock, member, conversation, after: int = 0) -> None:
    """The page shows ``conversation`` up to ``after`` (chat.js's ``resume``); returns once the server follows it."""
    sock.send(type="resume", conversation=str(conversation.id), after=after)
    wait_following(app, member.id, conversation.id, after)


def send(sock, conversation, body: str, client_id=None) -> None:
    sock.send(type="send", conversation=str(conversation.id), body=body,
              **({"client_id": str(client_id)} if client_id else {}))


def view(sock, *shown) -> None:
    """The page shows these ``(conversation, after)`` and nothing else (chat.js's ``view``, after each page change)."""
    sock.send(type="view", conversations=[{"conversation": str(c.id), "after": after} for c, after in shown])


def wait_not_following(app, member_id, conversation_id, timeout: float = LIVE_WAIT) -> None:
    hub = hub_for(app)
    deadline = time.monotonic() + timeout
    while any(c.member_id == member_id for c in hub.followers(conversation_id)):
        assert time.monotonic() < deadline, "the socket still follows the conversation"
        time.sleep(0.01)


def composer_client_id(page: str) -> str:
    match = re.search(r'<input type="hidden" name="client_id" value="([0-9a-f-]{36})" data-client-id>', page)
    assert match, "no client id in the composer"
    return match.group(1)


def receipt(page: str, conversation_id) -> str:
    """What the page's receipt under the conversation says ("" or "Seen")."""
    match = re.search(rf'<p id="receipt-{conversation_id}" class="receipt muted">([^<]*)</p>', page)
    assert match, "no receipt on the page"
    return match.group(1)


# --- pages -----------------------------------------------------------------------------------------

def test_chat_index_lists_my_conversations_most_recent_first_with_unread_badges(app, world):
    with_ben, with_cleo = world.direct(world.ana, world.ben), world.direct(world.ana, world.cleo)
    channel = world.channel()
    now = datetime.now(UTC)
    world.say(with_cleo, world.ana, "Hi Cleo", now=now - timedelta(minutes=3))
    world.say(channel, world.maria, "Practice at six", now=now - timedelta(minutes=2))
    world.say(with_ben, world.ben, "Hi Ana", "Are you there?", now=now - timedelta(minutes=1))

    page = text(logged_in(app, "ana@example.com").get("/o/river/chat"))
    titles = re.findall(r"<strong>([^<]+)</strong></a>", page)
    assert [html.unescape(t) for t in titles] == ["Ben Brown", "# Tennis", "Cleo Cruz"]
    assert unread_on_index(page, with_ben.id) == "2"
    assert unread_on_index(page, channel.id) == "1"
    assert unread_on_index(page, with_cleo.id) is None  # the last message there is mine


def test_opening_a_conversation_marks_it_read(app, world):
    with_ben = world.direct(world.ana, world.ben)
    world.say(with_ben, world.ben, "Hi Ana", "Are you there?")
    ana = logged_in(app, "ana@example.com")
    page = text(ana.get(f"/o/river/chat/{with_ben.id}"))
    assert "Hi Ana" in page and "Are you there?" in page
    assert unread_on_index(text(ana.get("/o/river/chat")), with_ben.id) is None
    assert service.unread_total(world.org, world.ana) == 0
    assert service.unread_total(world.org, world.ben) == 0  # his own messages


def test_a_message_sent_without_javascript_is_on_the_page_after_the_redirect(app, world):
    with_ben = world.direct(world.ana, world.ben)
    ana = logged_in(app, "ana@example.com")
    url = f"/o/river/chat/{with_ben.id}"
    response = ana.post(f"{url}/messages", data={"csrf_token": csrf_from(text(ana.get(url))),
                                                 "body": "  See you at the court  "})
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"{url}#composer")
    assert "See you at the court" in text(ana.get(url))
    assert stored(with_ben.id) == [(1, "See you at the court")]
    ben_page = text(logged_in(app, "ben@example.com").get(url))
    assert "Ana Alves" in ben_page and "See you at the court" in ben_page


def test_media_sent_without_javascript_shows_in_the_message_and_opens_for_the_other_member(app, world):
    with_ben = world.direct(world.ana, world.ben)
    clip, other = world.media(world.ana, "Serve drill"), world.media(world.ana, "Old match")
    ana = logged_in(app, "ana@example.com")
    url = f"/o/river/chat/{with_ben.id}"
    page = text(ana.get(url))
    assert "Attach media (2 of yours)" in page and f'name="attachments" value="{clip.id}"' in page
    response = ana.post(f"{url}/messages", data={"csrf_token": csrf_from(page), "body": "",
                                                 "attachments": [str(clip.id)]})
    assert response.status_code == 303
    ben = logged_in(app, "ben@example.com")
    ben_page = text(ben.get(url))
    assert f'href="/o/river/media/{clip.id}"' in ben_page and "Serve drill" in ben_page
    assert "Old match" not in ben_page  # Ben has no media of his own to attach, and Ana's other clip is hers
    assert ben.get(f"/o/river/media/{clip.id}").status_code == 200
    assert ben.get(f"/o/river/media/{other.id}").status_code in (403, 404)
    assert logged_in(app, "cleo@example.com").get(f"/o/river/media/{clip.id}").status_code in (403, 404)


def test_someone_elses_media_without_javascript_comes_back_with_a_reason(app, world):
    with_ben = world.direct(world.ana, world.ben)
    bens = world.media(world.ben)
    ana = logged_in(app, "ana@example.com")
    url = f"/o/river/chat/{with_ben.id}"
    response = ana.post(f"{url}/messages", data={"csrf_token": csrf_from(text(ana.get(url))), "body": "Look",
                                                 "attachments": [str(bens.id)]})
    assert response.status_code == 422
    assert "Attach your own media only." in text(response) and "Look" in text(response)
    assert stored(with_ben.id) == []


def test_an_empty_message_without_javascript_comes_back_with_a_reason(app, world):
    with_ben = world.direct(world.ana, world.ben)
    ana = logged_in(app, "ana@example.com")
    url = f"/o/river/chat/{with_ben.id}"
    response = ana.post(f"{url}/messages", data={"csrf_token": csrf_from(text(ana.get(url))), "body": "   "})
    assert response.status_code == 422
    assert "Write a message first." in text(response)
    assert stored(with_ben.id) == []


def test_a_conversation_of_others_is_not_found(app, world):
    with_ben = world.direct(world.ana, world.ben)
    message, = world.say(with_ben, world.ana, "Just us")
    cleo = logged_in(app, "cleo@example.com")
    url = f"/o/river/chat/{with_ben.id}"
    assert cleo.get(url).status_code == 404
    token = csrf_from(text(cleo.get("/o/river/chat")))
    assert cleo.post(f"{url}/messages", data={"csrf_token": token, "body": "Let me in"}).status_code == 404
    assert cleo.get(f"{url}/messages/{message.id}/edit").status_code == 404
    assert stored(with_ben.id) == [(1, "Just us")]


def test_another_organizations_conversation_and_chat_are_not_found(app, world):
    hill = world.other_club()
    ana = logged_in(app, "ana@example.com")
    assert ana.get(f"/o/river/chat/{hill.conversation_id}").status_code == 404
    assert ana.get("/o/hill/chat").status_code == 404
    assert ana.get(f"/o/hill/chat/{hill.conversation_id}").status_code == 404
    assert ana.get("/o/river/chat/not-a-conversation").status_code == 404
    token = csrf_from(text(ana.get("/o/river/chat")))
    assert ana.post("/o/river/chat/direct", data={"csrf_token": token, "member": str(hill.yan.id)}).status_code == 404


def test_starting_a_conversation_opens_the_one_we_already_have(app, world):
    ana = logged_in(app, "ana@example.com")
    token = csrf_from(text(ana.get("/o/river/chat")))
    first = ana.post("/o/river/chat/direct", data={"csrf_token": token, "member": str(world.ben.id)})
    again = ana.post("/o/river/chat/direct", data={"csrf_token": token, "member": str(world.ben.id)})
    assert first.status_code == again.status_code == 303
    assert first.headers["Location"] == again.headers["Location"]
    assert "Ben Brown" in text(ana.get(first.headers["Location"]))
    myself = ana.post("/o/river/chat/direct", data={"csrf_token": token, "member": str(world.ana.id)})
    assert myself.status_code == 422
    assert "someone other than yourself" in text(myself)


def people_listed(page: str) -> dict[str, str]:
    """The members the chat index offers to write to: name -> membership id (from each one's "open" form)."""
    return {html.unescape(name): member for member, name in re.findall(
        r'<input type="hidden" name="member" value="([0-9a-f-]{36})"><button class="link" type="submit">([^<]+)</button>',
        page)}


def test_write_to_finds_members_by_name_and_opens_the_conversation_without_javascript(app, world):
    world.other_club()  # Hill Club's Yan must not be found from River Club
    ana = logged_in(app, "ana@example.com")
    page = text(ana.get("/o/river/chat"))
    assert set(people_listed(page)) == {"Ada Admin", "Maria Santos"}  # before a search: coaches and admins
    assert '<select' not in page
    assert set(people_listed(text(ana.get("/o/river/chat?q=BEN")))) == {"Ben Brown"}
    assert set(people_listed(text(ana.get("/o/river/chat?q=an")))) == {"Maria Santos"}  # never myself (Ana)
    nobody = text(ana.get("/o/river/chat?q=Yan"))  # Hill Club's: not to be found from River Club
    assert people_listed(nobody) == {} and "Nobody here is named “Yan”" in nobody
    found = text(ana.get("/o/river/chat?q=cleo"))
    opened = ana.post("/o/river/chat/direct", data={"csrf_token": csrf_from(found),
                                                    "member": people_listed(found)["Cleo Cruz"]})
    assert opened.status_code == 303
    assert "Cleo Cruz" in text(ana.get(opened.headers["Location"]))


def test_write_to_as_you_type_answers_with_the_list_only_and_stays_short(app, world):
    world.act()
    for n in range(25):
        add_member(world.org, make_user(f"runner{n}@example.com", f"Runner {n:02d}"))
    db.session.commit()
    ana = logged_in(app, "ana@example.com")
    response = ana.get("/o/river/chat?q=runner", headers={"HX-Request": "true", "HX-Target": "members"})
    fragment = text(response)
    assert response.status_code == 200 and "<html" not in fragment and 'id="members"' in fragment
    assert list(people_listed(fragment)) == [f"Runner {n:02d}" for n in range(20)]  # by name, at most 20
    assert "More members match" in fragment
    assert "More members match" not in text(ana.get("/o/river/chat?q=runner 2"))


def test_write_to_refuses_a_search_it_cannot_read_with_a_reason(app, world):
    ana = logged_in(app, "ana@example.com")
    long = ana.get("/o/river/chat?q=" + "a" * 101)
    assert long.status_code == 422 and "at most 100 characters" in text(long)
    nul = ana.get("/o/river/chat?q=b%00n")
    assert nul.status_code == 422 and "NUL" in text(nul)


def test_a_space_channel_opens_for_members_of_the_space_only(app, world):
    ana = logged_in(app, "ana@example.com")
    response = ana.get(f"/o/river/chat/spaces/{world.tennis.id}")
    assert response.status_code == 303
    assert "# Tennis" in text(ana.get(response.headers["Location"]))
    cleo = logged_in(app, "cleo@example.com")
    assert cleo.get(f"/o/river/chat/spaces/{world.tennis.id}").status_code == 404
    assert cleo.get(response.headers["Location"]).status_code == 404


def test_a_member_suspended_from_the_space_reads_its_channel_without_a_composer(app, world):
    channel = world.channel()
    world.say(channel, world.maria, "Practice at six")
    world.suspend(world.ben, datetime.now(UTC) + timedelta(days=1))
    page = text(logged_in(app, "ben@example.com").get(f"/o/river/chat/{channel.id}"))
    assert "Practice at six" in page
    assert "can read this channel but not write" in page
    assert 'id="composer"' not in page


def test_the_author_edits_a_message_within_ten_minutes_and_it_shows_edited(app, world):
    with_ben = world.direct(world.ana, world.ben)
    message, = world.say(with_ben, world.ana, "See you at 5", now=datetime.now(UTC) - timedelta(minutes=9))
    ana = logged_in(app, "ana@example.com")
    edit_url = f"/o/river/chat/{with_ben.id}/messages/{message.id}/edit"
    form = text(ana.get(edit_url))
    assert "See you at 5" in form
    response = ana.post(edit_url, data={"csrf_token": csrf_from(form), "body": "See you at 6"})
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"#msg-{message.id}")
    page = text(logged_in(app, "ben@example.com").get(f"/o/river/chat/{with_ben.id}"))
    assert "See you at 6" in page and "(edited)" in page and "See you at 5" not in page


def test_the_edit_page_is_forbidden_after_ten_minutes(app, world):
    with_ben = world.direct(world.ana, world.ben)
    message, = world.say(with_ben, world.ana, "Old news", now=datetime.now(UTC) - timedelta(minutes=11))
    ana = logged_in(app, "ana@example.com")
    edit_url = f"/o/river/chat/{with_ben.id}/messages/{message.id}/edit"
    assert ana.get(edit_url).status_code == 403
    token = csrf_from(text(ana.get(f"/o/river/chat/{with_ben.id}")))
    assert ana.post(edit_url, data={"csrf_token": token, "body": "New news"}).status_code == 403
    assert stored(with_ben.id) == [(1, "Old news")]
    assert logged_in(app, "ben@example.com").get(edit_url).status_code == 403  # and never for others


def test_a_deleted_message_says_so_in_its_place(app, world):
    with_ben = world.direct(world.ana, world.ben)
    first, secret = world.say(with_ben, world.ana, "Hello", "my PIN is 1234")
    url = f"/o/river/chat/{with_ben.id}"
    ben = logged_in(app, "ben@example.com")
    token = csrf_from(text(ben.get(url)))
    assert ben.post(f"{url}/messages/{secret.id}/delete", data={"csrf_token": token}).status_code == 403
    ana = logged_in(app, "ana@example.com")
    token = csrf_from(text(ana.get(url)))
    response = ana.post(f"{url}/messages/{secret.id}/delete", data={"csrf_token": token})
    assert response.status_code == 303
    page = text(ben.get(url))
    assert "Message deleted." in page and "1234" not in page
    assert page_seqs(page) == [1, 2]


def test_a_message_already_shown_shows_its_edit_its_authors_new_name_and_its_deletion(app, world):
    """Pages render each message once per version: a page seen before a change must show the change."""
    with_ben = world.direct(world.ana, world.ben)
    message, = world.say(with_ben, world.ana, "See you at 5", now=datetime.now(UTC) - timedelta(minutes=5))
    url = f"/o/river/chat/{with_ben.id}"
    ana, ben = logged_in(app, "ana@example.com"), logged_in(app, "ben@example.com")
    assert "See you at 5" in text(ben.get(url)) and "See you at 5" in text(ana.get(url))

    edit_url = f"{url}/messages/{message.id}/edit"
    assert ana.post(edit_url, data={"csrf_token": csrf_from(text(ana.get(edit_url))),
                                    "body": "See you at 6"}).status_code == 303
    for page in (text(ben.get(url)), text(ana.get(url))):
        assert "See you at 6" in page and "(edited)" in page and "See you at 5" not in page
    assert "Ana Alves" in text(ben.get(url))

    world.act()
    world.ana.user.display_name = "Ana Costa"
    db.session.commit()
    page = text(ben.get(url))
    assert "<strong>Ana Costa</strong>" in page and "Ana Alves" not in page

    assert ana.post(f"{url}/messages/{message.id}/delete",
                    data={"csrf_token": csrf_from(text(ana.get(url)))}).status_code == 303
    for page in (text(ben.get(url)), text(ana.get(url))):
        assert "Message deleted." in page and "See you at 6" not in page


def test_my_messages_carry_my_sessions_token_and_times_show_in_each_readers_zone(app, world):
    """What differs between readers of one message (whose it is, their session, their time zone) is theirs."""
    with_ben = world.direct(world.ana, world.ben)
    sent_at = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    message, = world.say(with_ben, world.ana, "Late one", now=sent_at)
    world.act()
    world.ben.user.timezone = "Asia/Tokyo"  # Ana stays in Europe/Berlin
    db.session.commit()
    url = f"/o/river/chat/{with_ben.id}"
    delete_form = re.compile(rf'action="{url}/messages/{message.id}/delete"[^>]*>'
                             r'<input type="hidden" name="csrf_token" value="([^"]+)">')
    tokens = []
    for browser in (logged_in(app, "ana@example.com"), logged_in(app, "ana@example.com")):  # two sessions of Ana's
        page = text(browser.get(url))
        token = delete_form.search(page)
        assert token and token.group(1) == csrf_from(page)  # the page's own token, not a cached one
        assert "<strong>You</strong>" in page and "2 Mar 00:30" in page  # Berlin
        tokens.append(token.group(1))
    assert tokens[0] != tokens[1]
    page = text(logged_in(app, "ben@example.com").get(url))
    assert "<strong>Ana Alves</strong>" in page and "2 Mar 08:30" in page  # Tokyo
    assert "/delete" not in page and "/edit" not in page  # not his to change


def test_history_shows_older_messages_page_by_page(app, world):
    with_ben = world.direct(world.ana, world.ben)
    world.say(with_ben, world.ben, *[f"message {n}" for n in range(1, 61)])
    ana = logged_in(app, "ana@example.com")
    page = text(ana.get(f"/o/river/chat/{with_ben.id}"))
    assert page_seqs(page) == list(range(11, 61))
    older = re.search(r'<a href="([^"]+)">Older messages</a>', page)
    assert older and html.unescape(older.group(1)).endswith(f"/o/river/chat/{with_ben.id}?before=11")
    older_page = text(ana.get(html.unescape(older.group(1))))
    assert page_seqs(older_page) == list(range(1, 11))
    assert "message 1<" in older_page
    assert "Older messages" not in older_page and "Newest messages" in older_page


def test_the_chat_pages_are_a_fixed_number_of_queries(app, world):
    with_ben = world.direct(world.ana, world.ben)

    def add(n_from, n_to):
        for n in range(n_from, n_to):
            world.say(with_ben, world.ana if n % 2 else world.ben, f"message {n}")

    add(0, 10)
    ana = logged_in(app, "ana@example.com")
    url = f"/o/river/chat/{with_ben.id}"
    statements_for(app, ana, url)  # warm up: first-request work is not the page's
    with_10 = statements_for(app, ana, url)
    add(10, 50)
    with_50 = statements_for(app, ana, url)
    assert len(page_seqs(text(ana.get(url)))) == 50
    assert with_50 == with_10, (with_10, with_50)

    world.say(world.channel(), world.maria, "hi all")  # a direct conversation and a channel...
    index_with_2 = statements_for(app, ana, "/o/river/chat")
    world.say(world.direct(world.ana, world.cleo), world.cleo, "hi")  # ...and two more of each kind
    world.say(world.direct(world.ana, world.maria), world.maria, "hi Ana")
    world.act()
    other_space = spaces.create_space(world.org, world.maria, "Padel", "", "open")
    spaces.join(other_space, world.ana)
    db.session.commit()
    world.say(service.space_channel(other_space), world.maria, "padel tonight")
    assert statements_for(app, ana, "/o/river/chat") == index_with_2


# --- the socket: who may open it ---------------------------------------------------------------------

def test_socket_from_a_foreign_or_missing_origin_is_refused(sockets, live_server):
    port = int(live_server.rsplit(":", 1)[1])
    for origin in ("https://evil.example", "null", f"http://127.0.0.1:{port + 1}",
                   f"http://127.0.0.1:{port}.evil.example", f"ftp://127.0.0.1:{port}", None):
        with pytest.raises(HandshakeRefused) as refused:
            sockets.handshake("river", "ana@example.com", origin=origin)
        assert refused.value.status_code == 403, origin
    sockets.open("ana@example.com").close()  # the same member from the app's own pages gets in


def test_the_socket_sends_uncompressed_frames_even_when_the_browser_offers_compression(sockets, live_server, world):
    import base64
    import os
    import socket as tcp
    from urllib.parse import urlsplit

    address = urlsplit(live_server)
    cookie = cookie_header(sockets.browser("ana@example.com"))
    with tcp.create_connection((address.hostname, address.port), timeout=5) as conn:
        conn.sendall((f"GET /o/river/chat/socket HTTP/1.1\r\nHost: {address.netloc}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                      f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                      f"Origin: {live_server}\r\nCookie: {cookie}\r\n"
                      "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            assert chunk, "the server closed the connection during the handshake"
            head += chunk
    status, _, headers = head.split(b"\r\n\r\n")[0].decode().partition("\r\n")
    assert " 101 " in status
    assert "sec-websocket-extensions" not in headers.lower()


def test_socket_is_refused_to_visitors_and_to_members_of_other_organizations(sockets, world):
    world.other_club()
    with pytest.raises(HandshakeRefused) as refused:
        sockets.handshake("river", None)  # not logged in
    assert refused.value.status_code == 403
    with pytest.raises(HandshakeRefused) as refused:
        sockets.handshake("hill", "ana@example.com")
    assert refused.value.status_code == 404  # as if the organization did not exist
    with pytest.raises(HandshakeRefused) as refused:
        sockets.handshake("river", "yan@example.com")
    assert refused.value.status_code == 404


# --- the socket: messages ----------------------------------------------------------------------------

def test_a_followed_conversation_gets_messages_live_and_the_sender_gets_its_own_once(app, sockets, world):
    with_ben = world.direct(world.ana, world.ben)
    ana, ben = sockets.open("ana@example.com"), sockets.open("ben@example.com")
    follow(app, ana, world.ana, with_ben)
    follow(app, ben, world.ben, with_ben)

    send(ben, with_ben, "Hello <b>Ana</b>")
    pushed = ana.wait_for(has_seq(1, with_ben.id), what="Ben's message")
    assert "Hello &lt;b&gt;Ana&lt;/b&gt;" in pushed and "<b>" not in pushed  # text, never markup
    assert "Ben Brown" in pushed and 'class="message mine' not in pushed
    own = ben.wait_for(has_seq(1, with_ben.id), what="Ben's own message")
    assert 'class="message mine' in own and "<strong>You</strong>" in own

    send(ana, with_ben, "Hi Ben")  # the marker: everything before it has arrived
    ben.wait_for(has_seq(2, with_ben.id))
    ana.wait_for(has_seq(2, with_ben.id))
    assert seqs_in(ben.frames, with_ben.id) == [1, 2]
    assert seqs_in(ana.frames, with_ben.id) == [1, 2]
    assert stored(with_ben.id) == [(1, "Hello <b>Ana</b>"), (2, "Hi Ben")]


def test_media_sent_over_the_socket_is_pushed_with_the_message(app, sockets, world):
    with_ben = world.direct(world.ana, world.ben)
    clip = world.media(world.ana, "Serve drill")
    ana, ben = sockets.open("ana@example.com"), sockets.open("ben@example.com")
    follow(app, ana, world.ana, with_ben)
    follow(app, ben, world.ben, with_ben)
    ana.send(type="send", conversation=str(with_ben.id), body="My serve", attachments=str(clip.id))
    pushed = ben.wait_for(has_seq(1, with_ben.id), what="Ana's message with her clip")
    assert f'href="/o/river/media/{clip.id}"' in pushed and "Serve drill" in pushed


def test_a_message_posted_without_javascript_is_pushed_to_open_pages(app, sockets, live_server, world):
    with_ben = world.direct(world.ana, world.ben)
    ana = sockets.open("ana@example.com")
    follow(app, ana, world.ana, with_ben)
    response = post_message(live_server, sockets.browser("ben@example.com"), "river", with_ben.id, "By form")
    assert response.status_code == 303
    assert "By form" in ana.wait_for(has_seq(1, with_ben.id))


def test_a_page_that_reconnects_gets_exactly_the_messages_it_missed_in_order(app, sockets, live_server, world,
                                                                             monkeypatch):
    monkeypatch.setitem(app.config, "CHAT_MESSAGES_PER_10S", 21)  # Ben's 20 and one more, within 10 s
    with_ben = world.direct(world.ana, world.ben)
    world.say(with_ben, world.ben, "before 1", "before 2")
    ana, ben = sockets.open("ana@example.com"), sockets.open("ben@example.com")
    follow(app, ana, world.ana, with_ben)
    follow(app, ben, world.ben, with_ben, after=2)
    ana.wait_for(has_seq(2, with_ben.id))
    had = max(seqs_in(ana.frames, with_ben.id))
    ana.close()  # the laptop lid closes

    for n in range(1, 21):  # over Ben's socket
        send(ben, with_ben, f"missed {n}")
    ben.wait_for(has_seq(22, with_ben.id), what="Ben's 20 messages stored")

    again = sockets.open("ana@example.com")
    again.send(type="resume", conversation=str(with_ben.id), after=had)
    again.wait_for(has_seq(22, with_ben.id), what="the replay")
    # A live one after the replay (by form, the way a page without its socket sends): nothing twice.
    browser = sockets.browser("ben@example.com")
    assert post_message(live_server, browser, "river", with_ben.id, "after").status_code == 303
    again.wait_for(has_seq(23, with_ben.id))
    replayed = messages_in(again.frames, with_ben.id)
    assert [seq for _, seq in replayed] == list(range(3, 24))
    assert len({mid for mid, _ in replayed}) == 21
    assert [b for _, b in stored(with_ben.id)][2:22] == [f"missed {n}" for n in range(1, 21)]


def test_a_resume_replays_from_where_the_page_says_and_nothing_comes_twice_unasked(app, sockets, world):
    with_ben = world.direct(world.ana, world.ben)
    ana, ben = sockets.open("ana@example.com"), sockets.open("ben@example.com")
    follow(app, ana, world.ana, with_ben)
    for body in ("one", "two", "three"):
        send(ana, with_ben, body)
    ana.wait_for(has_seq(3, with_ben.id))
    send(ben, with_ben, "four")
    ana.wait_for(has_seq(4, with_ben.id))
    assert seqs_in(ana.frames, with_ben.id) == [1, 2, 3, 4]  # my own, pushed and echoed: once each

    ana.send(type="resume", conversation=str(with_ben.id), after=2)  # a page that shows up to 2
    ana.wait_for(has_seq(4, with_ben.id), what="the replay of 3 and 4")
    send(ben, with_ben, "five")
    ana.wait_for(has_seq(5, with_ben.id))
    assert seqs_in(ana.frames, with_ben.id) == [1, 2, 3, 4, 3, 4, 5]


def test_a_page_that_sends_before_following_gets_its_message_not_the_history(app, sockets, world):
    with_ben = world.direct(world.ana, world.ben)
    world.say(with_ben, world.ben, "one", "two", "three")
    ana = sockets.open("ana@example.com")
    send(ana, with_ben, "four")
    ana.wait_for(has_seq(4, with_ben.id))
    send(ana, with_ben, "five")
    ana.wait_for(has_seq(5, with_ben.id))
    assert seqs_in(ana.frames, with_ben.id) == [4, 5]


def test_two_members_sending_at_once_both_see_every_message_once_in_order(app, sockets, world):
    with_ben = world.direct(world.ana, world.ben)
    ana, ben = sockets.open("ana@example.com"), sockets.open("ben@example.com")
    follow(app, ana, world.ana, with_ben)
    follow(app, ben, world.ben, with_ben)
    for n in range(10):  # both sockets' frames are handled at the same time by two server threads
        send(ana, with_ben, f"ana {n}")
        send(ben, with_ben, f"ben {n}")
    ana.wait_for(has_seq(20, with_ben.id), timeout=15)
    ben.wait_for(has_seq(20, with_ben.id), timeout=15)
    assert seqs_in(ana.frames, with_ben.id) == list(range(1, 21))
    assert seqs_in(ben.frames, with_ben.id) == list(range(1, 21))


def test_an_edit_and_a_delete_replace_the_message_on_open_pages(app, sockets, live_server, world):
    with_ben = world.direct(world.ana, world.ben)
    ben = sockets.open("ben@example.com")
    follow(app, ben, world.ben, with_ben)
    message, = world.say(with_ben, world.ana, "See you at 5")
    browser = sockets.browser("ana@example.com")
    base = f"{live_server}/o/river/chat/{with_ben.id}/messages/{message.id}"
    token = csrf_from(browser.get(f"{base}/edit", timeout=10).text)
    edited = browser.post(f"{base}/edit", data={"csrf_token": token, "body": "See you at 6"}, allow_redirects=False,
                          timeout=10)
    assert edited.status_code == 303
    frame = ben.wait_for(has(f'id="msg-{message.id}"', "See you at 6"), what="the edited message")
    assert 'hx-swap-oob="outerHTML"' in frame and "(edited)" in frame
    assert browser.post(f"{base}/delete", data={"csrf_token": token}, allow_redirects=False,
                        timeout=10).status_code == 303
    frame = ben.wait_for(has(f'id="msg-{message.id}"', "Message deleted."), what="the tombstone")
    assert "See you at 6" not in frame


def test_a_member_who_leaves_the_space_stops_getting_its_channel_live(app, sockets, world):
    channel = world.channel()
    ben, ana = sockets.open("ben@example.com"), sockets.open("ana@example.com")
    follow(app, ben, world.ben, channel)
    follow(app, ana, world.ana, channel)
    send(ana, channel, "before")
    ben.wait_for(has_seq(1, channel.id))
    world.act()
    spaces.leave(world.tennis, world.ben)
    db.session.commit()
    send(ana, channel, "after Ben left")
    ana.wait_for(has_seq(2, channel.id))  # published before Ana's own copy reaches her
    with_ben = world.direct(world.ana, world.ben)  # the marker: a direct message after that push went round
    send(ana, with_ben, "still there?")
    follow(app, ben, world.ben, with_ben)
    ben.wait_for(has_seq(1, with_ben.id), what="the direct message")
    assert seqs_in(ben.frames, channel.id) == [1]


def test_a_page_that_moves_on_stops_getting_the_conversation_and_counts_it_unread(app, sockets, world):
    with_ana = world.direct(world.ana, world.ben)
    ben, ana = sockets.open("ben@example.com"), sockets.open("ana@example.com")
    view(ben, (with_ana, 0))  # Ben's page shows the conversation
    wait_following(app, world.ben.id, with_ana.id)
    follow(app, ana, world.ana, with_ana)
    send(ana, with_ana, "one")
    ben.wait_for(has_seq(1, with_ana.id))
    ben.send(type="read", conversation=str(with_ana.id), seq=1)
    ben.wait_for(lambda f: unread_badge(f) == 0, what="the badge after reading")

    view(ben)  # a boosted navigation to a page without it: the same socket
    wait_not_following(app, world.ben.id, with_ana.id)
    ana.send(type="typing", conversation=str(with_ana.id))
    ana.send(type="ping", state="away")
    send(ana, with_ana, "two")
    frame = ben.wait_for(lambda f: unread_badge(f) == 1, what="the badge counting the message")
    assert re.search(rf'<span id="unread-{with_ana.id}" [^>]*>1</span>', frame)
    # The badge is pushed after the message would have been: neither it nor typing or presence came.
    assert seqs_in(ben.frames, with_ana.id) == [1]
    assert not [f for f in ben.frames if f"typing-{with_ana.id}" in f or f"presence-{world.ana.id}" in f]

    view(ben, (with_ana, 1))  # back on the conversation: what it lacks comes, then the live ones
    ben.wait_for(has_seq(2, with_ana.id), what="the replay")
    send(ana, with_ana, "three")
    ben.wait_for(has_seq(3, with_ana.id))
    assert seqs_in(ben.frames, with_ana.id) == [1, 2, 3]


def test_a_view_replaces_what_the_socket_followed(app, sockets, world):
    with_ben, with_cleo = world.direct(world.ana, world.ben), world.direct(world.ana, world.cleo)
    world.say(with_cleo, world.cleo, "c1")
    ana = sockets.open("ana@example.com")
    view(ana, (with_ben, 0), (with_cleo, 0))  # a page showing two conversations
    ana.wait_for(has_seq(1, with_cleo.id), what="the replay of Cleo's message")
    wait_following(app, world.ana.id, with_ben.id)
    view(ana, (with_cleo, 1))
    wait_not_following(app, world.ana.id, with_ben.id)
    wait_following(app, world.ana.id, with_cleo.id, after=1)
    assert [c.member_id for c in hub_for(app).followers(with_cleo.id)] == [world.ana.id]


def test_a_send_repeated_after_a_reconnect_is_stored_once(app, sockets, world):
    with_ben = world.direct(world.ana, world.ben)
    ben, ana = sockets.open("ben@example.com"), sockets.open("ana@example.com")
    follow(app, ben, world.ben, with_ben)
    follow(app, ana, world.ana, with_ben)
    client_id = uuid.uuid4()
    send(ana, with_ben, "Running late", client_id)
    echo = ana.wait_for(has_seq(1, with_ben.id))
    assert f'data-client-id="{client_id}"' in echo  # the page knows its message is back
    assert f'data-client-id="{client_id}"' not in ben.wait_for(has_seq(1, with_ben.id))  # only the author's copy
    ana.close()  # the connection went before the page saw the echo: the composer sends it again

    again = sockets.open("ana@example.com")
    send(again, with_ben, "Running late", client_id)
    assert f'data-client-id="{client_id}"' in again.wait_for(has_seq(1, with_ben.id), what="the stored message")
    send(again, with_ben, "Ten minutes", uuid.uuid4())
    again.wait_for(has_seq(2, with_ben.id))
    ben.wait_for(has_seq(2, with_ben.id))
    assert seqs_in(ben.frames, with_ben.id) == [1, 2]
    assert seqs_in(again.frames, with_ben.id) == [1, 2]
    assert stored(with_ben.id) == [(1, "Running late"), (2, "Ten minutes")]


def test_a_form_posted_twice_or_after_its_socket_send_stores_one_message(app, sockets, live_server, world):
    with_ben = world.direct(world.ana, world.ben)
    url = f"/o/river/chat/{with_ben.id}"
    browser = logged_in(app, "ana@example.com")
    page = text(browser.get(url))
    form = {"csrf_token": csrf_from(page), "body": "See you at six", "client_id": composer_client_id(page)}
    assert browser.post(f"{url}/messages", data=form).status_code == 303
    assert browser.post(f"{url}/messages", data=form).status_code == 303  # a double click, or Back and resend
    page = text(browser.get(url))
    assert page_seqs(page) == [1]
    assert composer_client_id(page) != form["client_id"]  # the next message gets an id of its own

    # Sent over the socket, then (the echo lost with the connection) posted by the form fallback.
    ana = sockets.open("ana@example.com")
    client_id = composer_client_id(page)
    send(ana, with_ben, "Court 3", client_id)
    ana.wait_for(has_seq(2, with_ben.id))
    form.update(body="Court 3", client_id=client_id)
    assert browser.post(f"{url}/messages", data=form).status_code == 303
    assert stored(with_ben.id) == [(1, "See you at six"), (2, "Court 3")]

    form["client_id"] = "not-an-id"
    refused = browser.post(f"{url}/messages", data=form)
    assert refused.status_code == 422 and "could not read that" in text(refused)
    assert stored(with_ben.id) == [(1, "See you at six"), (2, "Court 3")]


# --- the socket: Redis away --------------------------------------------------------------------------

@pytest.fixture()
def redis_away(app, quiet):
    """While active, the app's Redis URL points at a closed port (the hub keeps its own subscription)."""
    real = app.config["REDIS_URL"]

    class Switch:
        def __enter__(self):
            app.config["REDIS_URL"] = f"redis://127.0.0.1:{_free_port()}/0"

        def __exit__(self, *exc):
            app.config["REDIS_URL"] = real

    yield Switch()
    app.config["REDIS_URL"] = real


def test_a_message_sent_while_redis_is_away_is_stored_and_comes_on_the_next_resume(
        app, sockets, live_server, world, redis_away):
    with_ben = world.direct(world.ana, world.ben)
    ana, ben = sockets.open("ana@example.com"), sockets.open("ben@example.com")
    follow(app, ana, world.ana, with_ben)
    with redis_away:
        response = post_message(live_server, sockets.browser("ben@example.com"), "river", with_ben.id, "Lost push")
    assert response.status_code == 303  # the sender is not bothered
    assert stored(with_ben.id) == [(1, "Lost push")]
    ben.send(type="typing", conversation=str(with_ben.id))  # a marker that does go through Redis
    ana.wait_for(has(f'id="typing-{with_ben.id}"'), what="Ben's typing")
    assert seqs_in(ana.frames) == []  # the push was lost...
    ana.send(type="resume", conversation=str(with_ben.id), after=0)
    assert "Lost push" in ana.wait_for(has_seq(1, with_ben.id), what="the replay")  # ...not the message


def test_the_next_push_after_a_lost_one_brings_the_missed_message_first(
        app, sockets, live_server, world, redis_away):
    with_ben = world.direct(world.ana, world.ben)
    ana = sockets.open("ana@example.com")
    follow(app, ana, world.ana, with_ben)
    browser = sockets.browser("ben@example.com")
    with redis_away:
        assert post_message(live_server, browser, "river", with_ben.id, "Lost push").status_code == 303
    assert post_message(live_server, browser, "river", with_ben.id, "Next one").status_code == 303
    frame = ana.wait_for(has_seq(2, with_ben.id))
    assert seqs_in(ana.frames, with_ben.id) == [1, 2]
    assert frame.index("Lost push") < frame.index("Next one")


# --- the socket: bad frames --------------------------------------------------------------------------

def test_an_oversized_frame_closes_that_socket_only(app, sockets, live_server, world):
    with_ben = world.direct(world.ana, world.ben)
    tab1, tab2 = sockets.open("ana@example.com"), sockets.open("ana@example.com")
    follow(app, tab2, world.ana, with_ben)
    browser = sockets.browser("ben@example.com")

    send(tab1, with_ben, "x" * (17 * 1024))
    assert tab1.wait_closed().reason == 1009  # "message too big"
    assert post_message(live_server, browser, "river", with_ben.id, "still there?").status_code == 303
    assert "still there?" in tab2.wait_for(has_seq(1, with_ben.id))

    tab3 = sockets.open("ana@example.com")
    try:
        tab3.send_raw(json.dumps({"type": "send", "conversation": str(with_ben.id), "body": "y" * (1 << 20)}))
    except OSError:
        pass  # the server may hang up before the megabyte is through
    tab3.wait_closed()
    assert post_message(live_server, browser, "river", with_ben.id, "and now?").status_code == 303
    assert "and now?" in tab2.wait_for(has_seq(2, with_ben.id))
    assert stored(with_ben.id) == [(1, "still there?"), (2, "and now?")]


def test_bad_frames_get_an_error_and_the_socket_stays_open_with_nothing_stored(app, sockets, world):
    hill = world.other_club()
    with_ben, with_ana = world.direct(world.ana, world.ben), world.direct(world.cleo, world.ana)
    channel = world.channel()
    anas = world.media(world.ana)
    cleo = sockets.open("cleo@example.com")  # in no space
    unreadable, unavailable = "could not read that", "That conversation is not available."
    mine = str(with_ana.id)
    for frame, reason in [
        ("not json", unreadable),
        ("[1, 2]", unreadable),
        ('"send"', unreadable),
        ("[" * 5000 + "]" * 5000, unreadable),  # nested deeper than the parser goes
        ({"type": "explode"}, "Unknown request."),
        ({"type": ["send"]}, "Unknown request."),
        ({"type": "resume", "conversation": "garbage", "after": 0}, unavailable),
        ({"type": "resume", "conversation": str(hill.conversation_id), "after": 0}, unavailable),
        ({"type": "resume", "conversation": str(with_ben.id), "after": 0}, unavailable),  # not mine
        ({"type": "send", "conversation": str(with_ben.id), "body": "psst"}, unavailable),
        ({"type": "send", "conversation": str(channel.id), "body": "hi all"}, unavailable),  # not joined
        ({"type": "send", "conversation": str(hill.conversation_id), "body": "hi hill"}, unavailable),
        ({"type": "send", "conversation": mine}, "Write a message first."),
        ({"type": "send", "conversation": mine, "body": " \n "}, "Write a message first."),
        ({"type": "send", "conversation": mine, "body": "x" * 4001}, "up to 4,000 characters"),
        ({"type": "send", "conversation": mine, "body": "a\u0000b"}, "cannot be stored"),
        ({"type": "send", "conversation": mine, "body": {"html": "<b>hi</b>"}}, unreadable),
        ({"type": "resume", "conversation": mine, "after": "abc"}, unreadable),
        (f'{{"type": "resume", "conversation": "{mine}", "after": 1e999}}', unreadable),
        ({"type": "read", "conversation": mine, "seq": "x"}, unreadable),
        ({"type": "read", "conversation": mine, "seq": [1]}, unreadable),
        ({"type": "view"}, unreadable),
        ({"type": "view", "conversations": "all"}, unreadable),
        ({"type": "view", "conversations": [mine]}, unreadable),
        ({"type": "view", "conversations": [{"conversation": mine, "after": -1}] * 21}, unreadable),
        ({"type": "view", "conversations": [{"conversation": mine, "after": "x"}]}, unreadable),
        ({"type": "view", "conversations": [{"conversation": str(with_ben.id), "after": 0}]}, unavailable),
        ({"type": "view", "conversations": [{"conversation": str(hill.conversation_id), "after": 0}]}, unavailable),
        ({"type": "send", "conversation": mine, "body": "hi", "client_id": "not-an-id"}, unreadable),
        ({"type": "send", "conversation": mine, "body": "hi", "client_id": 7}, unreadable),
        ({"type": "send", "conversation": mine, "body": "hi", "attachments": [str(anas.id)]}, "your own media only"),
        ({"type": "send", "conversation": mine, "body": "hi", "attachments": ["garbage"]}, "not a media item"),
        ({"type": "send", "conversation": mine, "body": "hi", "attachments": {"id": str(anas.id)}}, unreadable),
        ({"type": "send", "conversation": mine, "body": "hi", "attachments": [7]}, unreadable),
    ]:
        cleo.send_raw(frame if isinstance(frame, str) else json.dumps(frame))
        error = cleo.wait_for(is_error, what=f"an error for {frame!r:.60}")
        assert reason in html.unescape(errors_in([error])[0]), (frame, error)

    send(cleo, with_ana, "still here")  # the socket is open and works
    cleo.wait_for(has_seq(1, with_ana.id))
    assert stored(with_ana.id) == [(1, "still here")]
    assert stored(with_ben.id) == [] and stored(channel.id) == []


def test_a_suspended_member_cannot_send_to_the_channel_over_the_socket(app, sockets, world):
    channel = world.channel()
    world.suspend(world.ben, datetime.now(UTC) + timedelta(days=1))
    ben = sockets.open("ben@example.com")
    send(ben, channel, "let me speak")
    assert "cannot write here" in ben.wait_for(is_error)
    assert stored(channel.id) == []


def test_sending_faster_than_the_limit_is_refused_for_the_extra_messages(app, sockets, world):
    with_ben = world.direct(world.ana, world.ben)
    limit = app.config["CHAT_MESSAGES_PER_10S"]
    ana = sockets.open("ana@example.com")
    follow(app, ana, world.ana, with_ben)
    for n in range(limit + 3):
        send(ana, with_ben, f"burst {n}")
    for _ in range(3):
        assert "very fast" in ana.wait_for(is_error, timeout=15)
    assert len(errors_in(ana.frames)) == 3
    assert seqs_in(ana.frames, with_ben.id) == list(range(1, limit + 1))
    assert [b for _, b in stored(with_ben.id)] == [f"burst {n}" for n in range(limit)]


def test_two_sockets_of_one_member_share_the_send_limit(app, sockets, world, monkeypatch):
    monkeypatch.setitem(app.config, "CHAT_MESSAGES_PER_10S", 4)
    with_ben = world.direct(world.ana, world.ben)
    tab1, tab2 = sockets.open("ana@example.com"), sockets.open("ana@example.com")
    follow(app, tab1, world.ana, with_ben)
    follow(app, tab2, world.ana, with_ben)
    send(tab1, with_ben, "one")
    send(tab1, with_ben, "two")
    tab1.wait_for(has_seq(2, with_ben.id))
    for n in range(3):
        send(tab2, with_ben, f"tab2 {n}")
    assert "very fast" in tab2.wait_for(is_error)
    assert len(errors_in(tab2.frames)) == 1 and errors_in(tab1.frames) == []
    assert [b for _, b in stored(with_ben.id)] == ["one", "two", "tab2 0", "tab2 1"]


def test_the_send_limit_counts_the_form_too(app, sockets, live_server, world, monkeypatch):
    monkeypatch.setitem(app.config, "CHAT_MESSAGES_PER_10S", 2)
    with_ben = world.direct(world.ana, world.ben)
    tab = sockets.open("ana@example.com")
    follow(app, tab, world.ana, with_ben)
    send(tab, with_ben, "by socket")
    tab.wait_for(has_seq(1, with_ben.id))
    browser = sockets.browser("ana@example.com")
    assert post_message(live_server, browser, "river", with_ben.id, "by form").status_code == 303
    refused = post_message(live_server, browser, "river", with_ben.id, "one too many")
    assert refused.status_code == 422 and "very fast" in refused.text
    assert [b for _, b in stored(with_ben.id)] == ["by socket", "by form"]


# --- the socket: typing, receipts, presence, badges ----------------------------------------------------

def test_typing_shows_to_the_other_member_once_per_two_seconds_and_not_to_myself(app, sockets, world):
    with_ben = world.direct(world.ana, world.ben)
    ana, ben = sockets.open("ana@example.com"), sockets.open("ben@example.com")
    follow(app, ana, world.ana, with_ben)
    follow(app, ben, world.ben, with_ben)
    typing = f'id="typing-{with_ben.id}"'

    ben.send(type="typing", conversation=str(with_ben.id))
    ben.send(type="typing", conversation=str(with_ben.id))
    send(ben, with_ben, "marker 1")
    ana.wait_for(has_seq(1, with_ben.id))
    shown = [f for f in ana.frames if typing in f]
    assert len(shown) == 1
    assert "Ben Brown is typing" in shown[0]

    ana.send(type="typing", conversation=str(with_ben.id))
    assert "Ana Alves is typing" in ben.wait_for(has(typing))
    send(ben, with_ben, "marker 2")  # published after Ana's typing went round
    ana.wait_for(has_seq(2, with_ben.id))
    assert len([f for f in ana.frames if typing in f]) == 1  # Ana never sees her own
    assert not [f for f in ben.frames if "Ben Brown is typing" in f]


def test_the_sender_sees_seen_when_the_other_member_reads(app, sockets, live_server, world):
    with_ben = world.direct(world.ana, world.ben)
    ana, ben = sockets.open("ana@example.com"), sockets.open("ben@example.com")
    follow(app, ana, world.ana, with_ben)
    send(ana, with_ben, "Did you read this?")
    ana.wait_for(has_seq(1, with_ben.id))
    ben.send(type="read", conversation=str(with_ben.id), seq=1)
    receipt = ana.wait_for(has(f'id="receipt-{with_ben.id}"'), what="the receipt")
    assert "Seen" in receipt
    page = sockets.browser("ana@example.com").get(f"{live_server}/o/river/chat/{with_ben.id}", timeout=10).text
    assert re.search(rf'<p id="receipt-{with_ben.id}" class="receipt muted">Seen</p>', page)


def test_seen_shows_without_javascript_only_under_my_newest_message_once_read(app, world):
    with_ben = world.direct(world.ana, world.ben)
    url = f"/o/river/chat/{with_ben.id}"
    ana, ben = logged_in(app, "ana@example.com"), logged_in(app, "ben@example.com")
    world.say(with_ben, world.ana, "Did you get the video?")
    assert receipt(text(ana.get(url)), with_ben.id) == ""  # Ben has not read it
    assert receipt(text(ben.get(url)), with_ben.id) == ""  # Ben reads it: the newest message is Ana's, not his
    assert receipt(text(ana.get(url)), with_ben.id) == "Seen"
    world.say(with_ben, world.ben, "Yes, watching now")
    assert receipt(text(ana.get(url)), with_ben.id) == ""  # the newest is Ben's (and Ana has now read it)
    assert receipt(text(ben.get(url)), with_ben.id) == "Seen"
    assert receipt(text(ben.get(f"{url}?before=2")), with_ben.id) == ""  # an older page says nothing of it


def test_members_see_each_other_come_online_and_go_away_on_their_conversation(app, sockets, world):
    with_ana = world.direct(world.ana, world.ben)
    ben = sockets.open("ben@example.com")
    follow(app, ben, world.ben, with_ana)  # Ben's page shows Ana's dot
    ana = sockets.open("ana@example.com")
    follow(app, ana, world.ana, with_ana)
    dot = f'id="presence-{world.ana.id}"'
    assert "presence-online" in ben.wait_for(has(dot), what="Ana coming online")
    ana.send(type="ping", state="away")
    assert "presence-away" in ben.wait_for(has(dot), what="Ana going away")
    ben.send(type="ping", state="away")  # the marker: published after Ana's own changes went round
    assert "presence-away" in ana.wait_for(has(f'id="presence-{world.ben.id}"'), what="Ben going away")
    assert not [f for f in ana.frames if dot in f]  # nobody is told about themselves


def test_a_member_stays_online_while_any_of_their_pages_is_shown(app, sockets, world):
    # Leaving a page says "away" as the page goes; that frame may come after the next page's "online".
    with_ana = world.direct(world.ana, world.ben)
    ben = sockets.open("ben@example.com")
    follow(app, ben, world.ben, with_ana)
    dot = f'id="presence-{world.ana.id}"'
    leaving = sockets.open("ana@example.com")
    assert "presence-online" in ben.wait_for(has(dot), what="Ana coming online")
    sockets.open("ana@example.com")  # the next page, shown
    hub = hub_for(app)
    deadline = time.monotonic() + LIVE_WAIT
    while len(hub.connections_of(world.ana.id)) < 2:
        assert time.monotonic() < deadline, "the server never took the second page"
        time.sleep(0.02)
    leaving.send(type="ping", state="away")  # the old page, hidden as it goes
    while not any(c.state == "away" for c in hub.connections_of(world.ana.id)):
        assert time.monotonic() < deadline, "the server never read the old page's ping"
        time.sleep(0.02)
    follow(app, leaving, world.ana, with_ana)  # so the marker below reaches Ana's old page
    ben.send(type="ping", state="away")  # the marker: Ana's change, had there been one, went round first
    leaving.wait_for(has(f'id="presence-{world.ben.id}"'), what="Ben going away")
    ana_dots = [f for f in ben.frames if dot in f]
    assert ana_dots and all("presence-online" in f for f in ana_dots)
    assert realtime.presence_of(world.org.id, [world.ana.id])[world.ana.id] == "online"


def test_presence_goes_only_to_pages_that_show_the_member(app, sockets, world):
    with_ana = world.direct(world.ana, world.ben)
    ben = sockets.open("ben@example.com")
    follow(app, ben, world.ben, with_ana)
    maria = sockets.open("maria@example.com")  # on another page: shows no dot of Ana's
    sockets.open("ana@example.com")
    # One hub event sends to every page that shows Ana: Ben's frame came, so Maria's would have too.
    ben.wait_for(has(f'id="presence-{world.ana.id}"'), what="Ana coming online")
    assert not [f for f in maria.frames if "presence-" in f]


def test_the_unread_badge_counts_up_on_other_pages_and_clears_on_reading(app, sockets, world):
    with_ben = world.direct(world.ana, world.ben)
    ben = sockets.open("ben@example.com")  # on some other page: not following the conversation
    assert unread_badge(ben.frames[0]) == 0
    ana = sockets.open("ana@example.com")
    send(ana, with_ben, "Ping")
    frame = ben.wait_for(lambda f: unread_badge(f) == 1, what="the badge at 1")
    assert re.search(rf'<span id="unread-{with_ben.id}" [^>]*>1</span>', frame)
    assert seqs_in(ben.frames) == []  # the message itself is for pages that show the conversation
    ben.send(type="read", conversation=str(with_ben.id), seq=1)
    frame = ben.wait_for(lambda f: unread_badge(f) == 0, what="the badge cleared")
    assert re.search(r'<span id="chat-unread" [^>]*hidden>', frame)
    db.session.rollback()
    assert service.unread_total(world.org, world.ben) == 0


def test_a_closed_socket_is_forgotten_by_the_hub(app, sockets, world):
    hub = hub_for(app)
    ana = sockets.open("ana@example.com")
    assert len(hub.connections_of(world.ana.id)) == 1
    ana.close()
    deadline = time.monotonic() + LIVE_WAIT
    while hub.connections_of(world.ana.id) and time.monotonic() < deadline:
        time.sleep(0.02)  # the server notices the close on its own thread
    assert hub.connections_of(world.ana.id) == []
