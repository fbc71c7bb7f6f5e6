"""Ending a session or a membership ends its live sockets at once, in every process.

Real WebSockets of ``live_server`` (see ``tests/chat_support.py``): a page's socket closes when
its session is logged out (and only that session's), when a password change ends the other
sessions, and when the member is removed from the organization. The ends travel through Redis
pub/sub after the commit, as they would between gunicorn processes.
"""
from __future__ import annotations

import pytest

from coach.chat.hub import hub_for
from coach.extensions import db
from coach.orgs.service import remove_member
from tests.chat_support import ChatSocket, Client, cookie_header, has_seq, login, post_message, unread_badge
from tests.chat_support import sockets, world  # noqa: F401 (fixtures)
from tests.conftest import Auth, csrf_from
from tests.factories import PASSWORD

POLICY_CLOSE = 1008


def open_socket(sockets, browser) -> ChatSocket:
    """A socket as a page of ``browser`` (a session of its own) opens it."""
    sock = ChatSocket(Client.connect(sockets.url("river"), headers={"Cookie": cookie_header(browser),
                                                                     "Origin": sockets.base_url}))
    sockets.opened.append(sock)
    sock.wait_for(lambda f: unread_badge(f) is not None, what="greeting (unread badge)")
    assert hub_for(sockets.app).connected.wait(timeout=5)
    return sock


def post_form(base_url: str, browser, path: str, form_page: str, **data):
    token = csrf_from(browser.get(f"{base_url}{form_page}", timeout=10).text)
    return browser.post(f"{base_url}{path}", data={"csrf_token": token, **data}, allow_redirects=False, timeout=10)


def follow(sock, conversation) -> None:
    sock.send(type="resume", conversation=str(conversation.id), after=0)


def test_logging_out_closes_that_sessions_sockets_and_no_others(app, sockets, live_server, world):
    with_ben = world.direct(world.ana, world.ben)
    laptop, phone = login(live_server, "ana@example.com"), login(live_server, "ana@example.com")
    laptop_tab1, laptop_tab2 = open_socket(sockets, laptop), open_socket(sockets, laptop)
    phone_tab = open_socket(sockets, phone)
    follow(phone_tab, with_ben)

    assert post_form(live_server, laptop, "/logout", "/profile").status_code == 303

    assert laptop_tab1.wait_closed().reason == POLICY_CLOSE
    assert laptop_tab2.wait_closed().reason == POLICY_CLOSE
    # The phone's session goes on: its socket still carries the conversation.
    assert post_message(live_server, sockets.browser("ben@example.com"), "river", with_ben.id, "Still here?"
                        ).status_code == 303
    assert "Still here?" in phone_tab.wait_for(has_seq(1, with_ben.id))


def test_a_copied_cookie_opens_no_socket_after_logout(app, sockets, live_server, world):
    laptop = login(live_server, "ana@example.com")
    copied = cookie_header(laptop)
    assert post_form(live_server, laptop, "/logout", "/profile").status_code == 303
    with pytest.raises(Exception) as refused:
        Client.connect(sockets.url("river"), headers={"Cookie": copied, "Origin": live_server})
    assert getattr(refused.value, "status_code", None) == 403


def test_a_password_change_closes_the_other_sessions_sockets(app, sockets, live_server, world):
    laptop, phone = login(live_server, "ana@example.com"), login(live_server, "ana@example.com")
    phone_tab = open_socket(sockets, phone)

    changed = post_form(live_server, laptop, "/profile/password", "/profile", current_password=PASSWORD,
                        password="a-brand-new-passphrase", confirm="a-brand-new-passphrase")

    assert changed.status_code == 303
    assert phone_tab.wait_closed().reason == POLICY_CLOSE
    open_socket(sockets, laptop)  # the one who changed it goes on, on a fresh session


def test_a_removed_member_stops_getting_the_organizations_events_at_once(app, sockets, live_server, world):
    with_ana = world.direct(world.maria, world.ana)
    ana, maria = sockets.open("ana@example.com"), sockets.open("maria@example.com")
    follow(ana, with_ana)
    follow(maria, with_ana)
    maria.send(type="send", conversation=str(with_ana.id), body="Before")
    ana.wait_for(has_seq(1, with_ana.id))

    admin = app.test_client()
    Auth(admin).login("ada@example.com")
    members_page = admin.get("/o/river/admin/members").get_data(as_text=True)
    removed = admin.post(f"/o/river/admin/members/{world.ana.id}/remove", data={"csrf_token": csrf_from(members_page)})
    assert removed.status_code == 303

    assert ana.wait_closed().reason == POLICY_CLOSE
    maria.send(type="send", conversation=str(with_ana.id), body="After")
    maria.wait_for(has_seq(2, with_ana.id))
    assert "After" not in "".join(ana.frames)


def test_a_removal_rolled_back_closes_nothing(app, sockets, live_server, world):
    ana = sockets.open("ana@example.com")
    world.act()
    remove_member(world.org, world.ana, world.admin.user)
    db.session.rollback()
    world.act()
    # A marker that goes round after anything the removal could have published.
    with_ben = world.direct(world.ana, world.ben)
    follow(ana, with_ben)
    assert post_message(live_server, sockets.browser("ben@example.com"), "river", with_ben.id, "Marker"
                        ).status_code == 303
    assert "Marker" in ana.wait_for(has_seq(1, with_ben.id))
