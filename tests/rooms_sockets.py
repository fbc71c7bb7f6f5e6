"""Room socket test support: members logged in through ``/login`` open a session room's signaling socket on the
``live_server`` as the room page does (cookie and ``Origin``), send JSON frames and wait for typed replies.

Every wait is bounded: a frame is waited for until one of the wanted type (and predicate) arrives or a few
seconds pass; absence is shown with a marker frame that must come after (a ``ping`` answered ``pong``), never by
sleeping. Used by the signaling tests and by the recording, journey and benchmark slices.
"""
from __future__ import annotations

import json
import time
import uuid

import requests
from simple_websocket import ConnectionClosed

from tests.chat_support import LIVE_WAIT, Client, cookie_header, login


class RoomSocket:
    """One open room socket: what it received (parsed), and waits for more."""

    def __init__(self, ws: Client, peer: str | None = None):
        self.ws = ws
        self.peer = peer or str(uuid.uuid4())
        self.frames: list[dict] = []
        self._read = 0
        self.welcome: dict | None = None

    def send(self, **frame) -> None:
        self.ws.send(json.dumps(frame))

    def send_raw(self, data) -> None:
        self.ws.send(data)

    def _pull(self, timeout: float) -> None:
        frame = self.ws.receive(timeout=timeout)
        if frame is not None:
            self.frames.append(json.loads(frame))

    def wait_for(self, kind: str, predicate=None, timeout: float = LIVE_WAIT) -> dict:
        """The next frame of type ``kind`` (after those already waited past) for which ``predicate`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            while self._read < len(self.frames):
                frame = self.frames[self._read]
                self._read += 1
                if frame.get("type") == kind and (predicate is None or predicate(frame)):
                    return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {kind!r} frame within {timeout} s; last frames: "
                                     f"{[str(f)[:160] for f in self.frames[-5:]]}")
            self._pull(min(remaining, 0.5))

    def join(self, peer: str | None = None) -> dict:
        """``join`` as this page's peer (or ``peer``); the ``welcome``."""
        if peer is not None:
            self.peer = peer
        self.send(type="join", peer=self.peer)
        self.welcome = self.wait_for("welcome")
        return self.welcome

    def sync(self) -> list[dict]:
        """A ``ping`` answered: every frame the server sent before the ``pong`` has arrived. The frames that came
        since the last wait (and before the pong)."""
        start = self._read
        self.send(type="ping")
        self.wait_for("pong")
        return [f for f in self.frames[start:self._read] if f.get("type") != "pong"]

    def received(self, kind: str) -> list[dict]:
        return [f for f in self.frames if f.get("type") == kind]

    def wait_closed(self, timeout: float = LIVE_WAIT) -> ConnectionClosed:
        """Wait until the server closes the socket; the close (``.reason`` is the code), frames kept."""
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


class RoomSockets:
    """Opens room sockets to the live server (logging members in once each) and closes them all after the test."""

    def __init__(self, base_url: str, server_url: str | None = None,
                 browsers: dict[str, requests.Session] | None = None):
        """
        :param base_url: the app's address (logging in, and the pages' ``Origin``).
        :param server_url: the server the sockets connect to, if another one (a second process of the same app).
        :param browsers: signed-in sessions to reuse (another :class:`RoomSockets`'s ``browsers``).
        """
        self.base_url = base_url
        self.server_url = server_url or base_url
        self.opened: list[RoomSocket] = []
        self.browsers: dict[str, requests.Session] = browsers if browsers is not None else {}

    def browser(self, email: str) -> requests.Session:
        if email not in self.browsers:
            self.browsers[email] = login(self.base_url, email)
        return self.browsers[email]

    def url(self, session_id, slug: str = "river") -> str:
        return self.server_url.replace("http://", "ws://", 1) + f"/o/{slug}/sessions/{session_id}/room/socket"

    def handshake(self, session_id, email: str | None = None, slug: str = "river",
                  origin: str | None = "same") -> Client:
        """The raw handshake; raises ``simple_websocket.ConnectionError`` (``.status_code``) when refused."""
        headers = {}
        if email is not None:
            headers["Cookie"] = cookie_header(self.browser(email))
        if origin == "same":
            headers["Origin"] = self.base_url
        elif origin is not None:
            headers["Origin"] = origin
        return Client.connect(self.url(session_id, slug), headers=headers)

    def open(self, email: str, session_id, slug: str = "river", peer: str | None = None) -> RoomSocket:
        """An open room socket (not joined yet)."""
        socket = RoomSocket(self.handshake(session_id, email, slug), peer)
        self.opened.append(socket)
        return socket

    def join(self, email: str, session_id, slug: str = "river", peer: str | None = None) -> RoomSocket:
        """An open room socket that has joined (its ``welcome`` in ``.welcome``)."""
        socket = self.open(email, session_id, slug, peer)
        socket.join()
        return socket

    def close_all(self) -> None:
        for socket in self.opened:
            socket.close()
        for browser in self.browsers.values():
            browser.close()
