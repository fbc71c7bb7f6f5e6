"""A session room in Chromium with fake cameras and microphones: the coach and the athlete see each other
(frames decoded, from getStats through room.js's read-only ``window.coachRoom`` hook), the athlete shares the
screen and the coach receives it at full resolution without a renegotiation, the athlete's connection drops
and comes back and the call recovers in place; outsiders are refused at the page and at the socket; without
JavaScript the page says what to do instead.

Screenshots go to ``$COACH_SCREENSHOTS`` (``/tmp`` when unset) as ``room-*.png``.
"""
from __future__ import annotations

import json
import re
import time

import pytest
from playwright.sync_api import Page, expect

from tests.e2e import both_widths, screenshots
from tests.e2e.test_booking_journey import open_org
from tests.e2e.test_journeys import log_in, watch_csp
from tests.room_support import RoomWorld

pytestmark = pytest.mark.e2e

# The machine may be busy with other tests: waits are generous, and no test asserts a duration.
LIVE = 30.0
PASSWORD = "correct-horse-battery"
CAMERA_SIZE = (640, 480)  # Chromium's fake camera at room.js's VGA request
SCREEN_SIZE = (1280, 720)  # Chromium's fake screen for getDisplayMedia

snap = screenshots("room")

SOCKET_TAP = """(() => {
  const Native = window.WebSocket;
  const sockets = [];
  window.__sockets = sockets;
  window.WebSocket = class extends Native {
    constructor(...args) { super(...args); sockets.push(this); }
  };
})();"""

# The test's own handle on the page's peer connections, to force ICE restarts (a path cannot be broken on one
# machine's loopback).
CONNECTION_TAP = """(() => {
  const Native = window.RTCPeerConnection;
  const connections = [];
  window.__connections = connections;
  window.RTCPeerConnection = class extends Native {
    constructor(...args) { super(...args); connections.push(this); }
  };
})();"""

UFRAGS = """() => window.__connections.filter(pc => pc.connectionState !== 'closed')
  .map(pc => (/a=ice-ufrag:(\\S+)/.exec(pc.localDescription ? pc.localDescription.sdp : '') || [])[1])"""


@pytest.fixture()
def world(ctx):
    world = RoomWorld()
    world.other_club()
    return world


def wait_until(page: Page, condition, what: str, timeout: float = LIVE):
    """Poll ``condition()`` until it returns something truthy (returned), letting the page run meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        page.wait_for_timeout(200)


class Participant:
    """One person in a browser context of their own (camera and microphone granted), logged in; the frames
    their page sent over the room socket."""

    def __init__(self, browser, live_server: str, email: str, init_script: str | None = None):
        self.live_server = live_server
        self.context = browser.new_context(permissions=["camera", "microphone"])
        self.context.add_init_script(CONNECTION_TAP)
        if init_script:
            self.context.add_init_script(init_script)
        # Chromium's offline emulation stops new connections but leaves an open WebSocket alone, so the test
        # keeps a list of the page's sockets to cut them as a real network drop would.
        self.context.add_init_script(SOCKET_TAP)
        self.page = self.context.new_page()
        self.csp = watch_csp(self.page)
        self.sent: list[dict] = []
        self.page.on("websocket", self._opened)
        open_org(self.page, live_server, "river", email)

    def _opened(self, ws) -> None:
        if "/room/socket" in ws.url:
            ws.on("framesent", lambda payload: self.sent.append(json.loads(payload)))

    def offers(self) -> int:
        return sum(1 for frame in self.sent if frame.get("type") == "offer")

    def enter(self, path: str) -> None:
        self.page.goto(self.live_server + path)
        expect(self.page.locator("[data-call]")).to_be_visible()

    def peers(self) -> list[dict]:
        return self.page.evaluate("() => window.coachRoom.peers()")

    def only_peer(self) -> dict:
        peers = self.peers()
        assert len(peers) == 1, peers
        return peers[0]

    def stats(self) -> dict | None:
        """What this page receives from its one other participant."""
        return self.page.evaluate(
            "async () => { const p = window.coachRoom.peers(); return p.length === 1 ? "
            "await window.coachRoom.stats(p[0].peer) : null; }")

    def connected_to(self, name: str) -> dict:
        return wait_until(self.page, lambda: next((p for p in self.peers() if p["name"] == name
                                                   and p["connection"] == "connected"), None),
                          f"{name}'s connection on this page")

    def frames_growing(self, size: tuple[int, int] | None = None) -> dict:
        """Until the other person's video decodes here (frames > 0, more than a moment ago, at ``size``)."""
        first = wait_until(self.page, lambda: (s := self.stats()) and s["framesDecoded"] > 0 and s, "frames decoded")

        def more():
            s = self.stats()
            if not s or s["framesDecoded"] <= first["framesDecoded"]:
                return None
            if size and (s["width"], s["height"]) != size:
                return None
            return s
        return wait_until(self.page, more, f"frames still being decoded{' at %dx%d' % size if size else ''}")

    def go_offline(self) -> None:
        """The network drops: no new connections, and the room socket breaks."""
        self.context.set_offline(True)
        self.page.evaluate("() => window.__sockets.filter(s => s.url.includes('/room/socket') && s.readyState === 1)"
                           ".forEach(s => s.close(4000, 'network drop'))")

    def status(self) -> str:
        return self.page.locator("[data-call-status]").inner_text()


def test_coach_and_athlete_see_each_other_share_a_screen_and_recover_from_a_drop(browser, live_server, world):
    path = world.room_path(world.one)
    maria = Participant(browser, live_server, "maria@example.com")
    ana = Participant(browser, live_server, "ana@example.com")

    maria.enter(path)
    expect(maria.page.locator("[data-call-status]")).to_have_text("Connected · waiting for the others to join",
                                                                  timeout=LIVE * 1000)
    # Ana comes in from her booking's page.
    ana.page.goto(f"{live_server}/o/river/bookings/{world.bookings[world.one.id][0].id}")
    ana.page.get_by_role("link", name="Join the room").click()
    expect(ana.page).to_have_url(live_server + path)
    expect(ana.page.locator("[data-call]")).to_be_visible()

    # Each receives the other's video: frames are decoded and keep coming.
    assert maria.connected_to("Ana Alves")["role"] == "athlete"
    assert ana.connected_to("Maria Santos")["role"] == "coach"
    camera = maria.frames_growing(CAMERA_SIZE)
    ana.frames_growing(CAMERA_SIZE)
    assert camera["bytesReceived"] > 0
    expect(maria.page.locator("[data-call-status]")).to_have_text("Connected · 2 people in the call")
    expect(ana.page.locator("[data-peer] [data-name]")).to_have_text("Maria Santos (coach)")
    # The quality label is in words (a busy test machine may make it fair or poor), its detail in numbers.
    quality = maria.page.locator("[data-tile][data-peer] [data-quality]")
    expect(quality).to_have_text(re.compile(r"^(Good|Fair|Poor) connection$"), timeout=LIVE * 1000)
    expect(quality).to_have_attribute("title", re.compile(r"Round trip \d+ ms · packet loss \d+\.\d% · "
                                                          r"\d+ frames a second · 640×480"))
    both_widths(snap, maria.page, "call-coach")

    # Mute: the coach's page says Ana is muted (the state travels over the socket; the track stays).
    ana.page.get_by_role("button", name="Mute").click()
    expect(ana.page.get_by_role("button", name="Unmute")).to_have_attribute("aria-pressed", "true")
    expect(maria.page.locator("[data-peer] [data-flag-audio]")).to_be_visible()
    ana.page.get_by_role("button", name="Unmute").click()
    expect(maria.page.locator("[data-peer] [data-flag-audio]")).to_be_hidden()

    # The athlete shares the screen: the coach receives the screen at its full resolution on the same
    # connection (the sender's track is replaced: no new offer from either side).
    offers = (maria.offers(), ana.offers())
    ana.page.get_by_role("button", name="Share screen").click()
    expect(ana.page.get_by_role("button", name="Stop sharing")).to_have_attribute("aria-pressed", "true")
    assert ana.page.evaluate("() => window.coachRoom.localVideoTrack().contentHint") == "detail"
    screen = maria.frames_growing(SCREEN_SIZE)
    assert screen["trackId"] == camera["trackId"]  # the same receiver: nothing was renegotiated
    expect(maria.page.get_by_text("Sharing screen")).to_be_visible()
    assert (maria.offers(), ana.offers()) == offers
    both_widths(snap, maria.page, "screen-coach")

    ana.page.get_by_role("button", name="Stop sharing").click()
    maria.frames_growing(CAMERA_SIZE)
    expect(maria.page.get_by_text("Sharing screen")).to_be_hidden()
    assert (maria.offers(), ana.offers()) == offers

    # The device pickers list the devices by name once permission was given; picking a camera replaces the
    # track on the same sender (no new offer) and the coach keeps receiving.
    ana.page.get_by_text("Camera and microphone").click()
    cameras = ana.page.get_by_label("Camera", exact=True)
    expect(cameras.locator("option").first).to_have_text(re.compile(r"fake", re.I))
    expect(ana.page.get_by_label("Microphone", exact=True).locator("option").first).not_to_have_text("")
    before = ana.page.evaluate("() => window.coachRoom.localVideoTrack().id")
    cameras.select_option(index=0)
    wait_until(ana.page, lambda: ana.page.evaluate("() => window.coachRoom.localVideoTrack().id") != before,
               "the new camera track")
    maria.frames_growing(CAMERA_SIZE)
    assert (maria.offers(), ana.offers()) == offers

    # The athlete's network drops: her page says it is reconnecting, and once back the call recovers in the
    # room (no reload: the page keeps its peer id) with video flowing both ways again.
    me = ana.page.evaluate("() => window.coachRoom.me()")
    ana.go_offline()
    expect(ana.page.locator("[data-call-status]")).to_have_text("Reconnecting…", timeout=LIVE * 1000)
    ana.context.set_offline(False)
    expect(ana.page.locator("[data-call-status]")).to_have_text("Connected · 2 people in the call",
                                                                timeout=LIVE * 1000)
    assert ana.page.evaluate("() => window.coachRoom.me()") == me
    ana.connected_to("Maria Santos")
    maria.connected_to("Ana Alves")
    maria.frames_growing(CAMERA_SIZE)
    ana.frames_growing(CAMERA_SIZE)
    both_widths(snap, ana.page, "call-athlete")

    # Leaving: the coach's page drops Ana's tile; she can rejoin without a reload.
    ana.page.get_by_role("button", name="Leave").click()
    expect(ana.page.locator("[data-call-left]")).to_contain_text("You left the call.")
    wait_until(maria.page, lambda: maria.peers() == [], "Ana's tile to go")
    assert ana.page.evaluate("() => window.coachRoom.localStream() === null || "
                             "window.coachRoom.localStream().getTracks().length === 0")
    ana.page.get_by_role("button", name="Rejoin").click()
    maria.connected_to("Ana Alves")
    maria.frames_growing()


    # A boosted click away from the room hangs up: the coach's page drops Ana, and her camera and microphone
    # are released (the tracks she was sending have ended).
    ana.page.evaluate("() => { window.__sending = window.coachRoom.localStream().getTracks(); }")
    ana.page.get_by_role("navigation", name="Main").get_by_role("link", name="Sessions").click()
    expect(ana.page.locator("#room")).to_have_count(0)
    wait_until(maria.page, lambda: maria.peers() == [], "Ana's tile to go after she navigated away")
    assert ana.page.evaluate("() => window.__sending.length === 2 && "
                             "window.__sending.every(t => t.readyState === 'ended')")

    assert maria.csp == [] and ana.csp == []
    maria.context.close()
    ana.context.close()


def socket_refused(page: Page, url: str) -> bool:
    """Whether a WebSocket opened from ``page`` to ``url`` closes without ever opening."""
    return page.evaluate("""url => new Promise(resolve => {
        const ws = new WebSocket(url.replace(/^http/, 'ws'));
        let opened = false;
        ws.onopen = () => { opened = true; ws.send(JSON.stringify({type: 'join', peer: crypto.randomUUID()})); };
        ws.onmessage = () => { resolve(false); ws.close(); };
        ws.onclose = () => resolve(!opened);
        setTimeout(() => resolve(false), 15000);
    })""", url)


@pytest.mark.allow_console("the test opens the room's socket where it must be refused (Chromium logs the refused "
                           "handshake)", r"Error during WebSocket handshake: Unexpected response code: 40[34]$")
def test_an_uninvited_member_and_another_clubs_member_are_refused_at_the_page_and_the_socket(browser, live_server,
                                                                                                 world):
    path = world.room_path(world.one)
    socket = f"{live_server}{path}/socket"

    cleo = browser.new_context(permissions=["camera", "microphone"])
    page = cleo.new_page()
    csp = watch_csp(page)
    open_org(page, live_server, "river", "cleo@example.com")
    response = page.goto(live_server + path)
    assert response.status == 403
    expect(page.get_by_text("This room is for the session's coach and athletes.")).to_be_visible()
    expect(page.locator("[data-call]")).to_have_count(0)
    assert socket_refused(page, socket)
    assert csp == []
    cleo.close()

    zed = browser.new_context()
    page = zed.new_page()
    open_org(page, live_server, "hill", "zed@example.com")
    response = page.goto(live_server + path)
    assert response.status == 404
    assert socket_refused(page, socket)
    zed.close()


def test_without_javascript_the_room_says_the_call_needs_it_and_offers_the_meeting_link(browser, live_server, world):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{live_server}/login?next={world.room_path(world.one)}")
    log_in(page, "ana@example.com", PASSWORD)
    expect(page.get_by_role("heading", name="Video review: the room")).to_be_visible()
    # Playwright's text and role queries skip <noscript>, which this page renders: read its text and link.
    fallback = page.locator("#room noscript")
    assert "This call needs JavaScript" in fallback.text_content()
    assert fallback.locator("a").get_attribute("href") == "https://meet.example.com/maria"
    expect(page.locator("[data-call]")).to_be_hidden()  # no dead buttons
    expect(page.get_by_role("button", name="Share screen")).to_be_hidden()
    both_widths(snap, page, "no-js")
    context.close()


def test_a_group_call_is_a_mesh_each_sees_every_other(browser, live_server, world):
    path = world.room_path(world.group)
    people = [Participant(browser, live_server, email) for email in
              ("maria@example.com", "ana@example.com", "ben@example.com")]
    for person in people:
        person.enter(path)
    names = {"Maria Santos", "Ana Alves", "Ben Brown"}
    for person in people:
        expect(person.page.locator("[data-call-status]")).to_have_text("Connected · 3 people in the call",
                                                                       timeout=LIVE * 1000)
        others = wait_until(person.page, lambda p=person: len(
            connected := [x for x in p.peers() if x["connection"] == "connected"]) == 2 and connected,
            "two connected peers")
        assert {x["name"] for x in others} < names
        for other in others:
            wait_until(person.page, lambda p=person, o=other: (s := p.page.evaluate(
                "id => window.coachRoom.stats(id)", o["peer"])) and s["framesDecoded"] > 0,
                f"{other['name']}'s frames")
    both_widths(snap, people[0].page, "group-coach")

    # Everyone restarts ICE on every connection at once: the offers collide ("glare") and perfect negotiation
    # settles them on the same connections (no new one is made), with new ICE credentials and video still
    # flowing everywhere.
    before = [person.page.evaluate(UFRAGS) for person in people]
    made = [person.page.evaluate("() => window.__connections.length") for person in people]
    for person in people:
        person.page.evaluate("() => window.__connections.filter(pc => pc.connectionState === 'connected')"
                             ".forEach(pc => pc.restartIce())")
    for person, old in zip(people, before):
        wait_until(person.page, lambda p=person, o=old: (now := p.page.evaluate(UFRAGS)) and len(now) == 2 and all(
            u not in o for u in now) and p.page.evaluate(
            "() => window.__connections.filter(pc => pc.connectionState !== 'closed')"
            ".every(pc => pc.signalingState === 'stable' && pc.connectionState === 'connected')"),
            "new ICE credentials on both connections, settled")
    assert [person.page.evaluate("() => window.__connections.length") for person in people] == made
    for person in people:
        for other in person.peers():
            first = person.page.evaluate("id => window.coachRoom.stats(id)", other["peer"])
            wait_until(person.page, lambda p=person, o=other, f=first: p.page.evaluate(
                "id => window.coachRoom.stats(id)", o["peer"])["framesDecoded"] > f["framesDecoded"],
                f"{other['name']}'s frames after the restart")
    assert all(person.csp == [] for person in people)
    for person in people:
        person.context.close()


NO_CAMERA = """(() => {
  if (!navigator.mediaDevices) return;  // about:blank, before the first page, has none
  const real = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = c => c && c.video
    ? Promise.reject(new DOMException('Requested device not found', 'NotFoundError')) : real(c);
})();"""


def test_without_a_camera_the_athlete_joins_with_her_microphone_until_the_coach_ends_the_session(browser, live_server, world):
    path = world.room_path(world.one)
    maria = Participant(browser, live_server, "maria@example.com")
    ana = Participant(browser, live_server, "ana@example.com", init_script=NO_CAMERA)
    maria.enter(path)
    ana.enter(path)
    expect(ana.page.locator("[data-call-notice]")).to_have_text(
        "Your camera is not available (none was found): you are in the call with your microphone only.")
    ana.frames_growing(CAMERA_SIZE)
    maria.connected_to("Ana Alves")
    expect(maria.page.locator("[data-peer] [data-flag-video]")).to_be_visible()  # "Camera off" on her tile
    expect(maria.page.locator("[data-peer]")).to_contain_text("Ana Alves")

    # The coach ends the session for everyone: Ana's page stops the call and says why; reloading shows the end.
    maria.page.get_by_role("button", name="End the session for everyone").click()
    expect(maria.page.get_by_role("heading", name="This session has ended")).to_be_visible()
    stopped = ana.page.locator("[data-call-stopped]")
    expect(stopped).to_contain_text("Maria Santos ended the session for everyone.", timeout=LIVE * 1000)
    expect(ana.page.locator("[data-call]")).to_be_hidden()
    stopped.get_by_role("link", name="Reload the page").click()
    expect(ana.page.get_by_role("heading", name="This session has ended")).to_be_visible()
    assert maria.csp == [] and ana.csp == []
    maria.context.close()
    ana.context.close()


def test_a_browser_without_webrtc_is_told_so_and_offered_the_meeting_link(browser, live_server, world):
    context = browser.new_context()
    context.add_init_script("delete window.RTCPeerConnection;")
    page = context.new_page()
    csp = watch_csp(page)
    open_org(page, live_server, "river", "ana@example.com")
    page.goto(live_server + world.room_path(world.one))
    unsupported = page.locator("[data-room-unsupported]")
    expect(unsupported).to_contain_text("Your browser cannot join video calls here.")
    expect(unsupported.get_by_role("link", name="https://meet.example.com/maria")).to_be_visible()
    expect(page.locator("[data-call]")).to_be_hidden()
    assert csp == []
    context.close()
