"""Signing out a device from the sessions page closes that device's open chat sockets at once, and only its own.

Real WebSockets of ``live_server`` (see ``tests/test_session_sockets.py``): two sessions of one member, the second
with a chat page open; the first revokes the second from /account/sessions.
"""
from __future__ import annotations

import re

from tests.chat_support import login

# The live chat world and its sockets are test_session_sockets.py's own fixtures (River Club, Ana's sockets).
from tests.test_session_sockets import POLICY_CLOSE, open_socket, post_form, sockets, world  # noqa: F401


def revoke_path(html: str) -> str:
    paths = re.findall(r'action="(/account/sessions/[0-9a-f-]{36}/revoke)"', html)
    assert len(paths) == 1, paths
    return paths[0]


def test_signing_out_a_device_closes_its_chat_socket_and_no_other(app, sockets, live_server, world):
    laptop, phone = login(live_server, "ana@example.com"), login(live_server, "ana@example.com")
    laptop_tab = open_socket(sockets, laptop)
    phone_tab = open_socket(sockets, phone)
    listing = laptop.get(f"{live_server}/account/sessions", timeout=10).text

    revoked = post_form(live_server, laptop, revoke_path(listing), "/account/sessions")

    assert revoked.status_code == 303
    assert phone_tab.wait_closed().reason == POLICY_CLOSE
    # The phone's next page asks it to log in; the laptop goes on.
    assert "/login" in phone.get(f"{live_server}/account/sessions", allow_redirects=False, timeout=10
                                 ).headers["Location"]
    assert laptop.get(f"{live_server}/account/sessions", allow_redirects=False, timeout=10).status_code == 200
    assert laptop_tab.ws.connected


def test_sign_out_everywhere_else_closes_the_other_sessions_sockets(app, sockets, live_server, world):
    laptop, phone = login(live_server, "ana@example.com"), login(live_server, "ana@example.com")
    phone_tab = open_socket(sockets, phone)

    done = post_form(live_server, laptop, "/account/sessions/revoke-others", "/account/security")

    assert done.status_code == 303
    assert phone_tab.wait_closed().reason == POLICY_CLOSE
    open_socket(sockets, laptop)  # this session goes on, sockets included
