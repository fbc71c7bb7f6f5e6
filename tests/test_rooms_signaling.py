"""The room's signaling socket over a real server: who may open it, what it relays and to whom, the checks on
every frame, the limits, and the attendance it keeps.

Sockets are real WebSocket clients of ``live_server`` sending the session cookie and an ``Origin`` as the room
page does (tests/rooms_sockets.py); frames are the JSON the page's script sends.
"""
from __future__ import annotations

import json
import threading
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pytest
from redis import Redis
from simple_websocket import ConnectionClosed
from simple_websocket import ConnectionError as HandshakeRefused
from sqlalchemy import select, update
from werkzeug.serving import make_server

from coach import clock, tenancy
from coach.booking import lifecycle
from coach.booking.models import Booking
from coach.extensions import db
from coach.orgs import service as orgs
from coach.orgs.models import Membership
from coach.platform.models import OutboxEvent
from coach.rooms import attendance_jobs, ice
from coach.rooms.models import RoomAttendance
from coach.rooms.signaling import FrameRate, SignalError, parse
from tests.chat_support import Sockets as ChatSockets
from tests.conftest import csrf_from
from tests.outbox_support import other_app
from tests.room_support import RoomWorld
from tests.rooms_sockets import RoomSockets

SDP = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"


@pytest.fixture()
def world(ctx):
    world = RoomWorld()
    world.other_club()
    return world


@pytest.fixture()
def rooms(live_server, world):
    opened = RoomSockets(live_server)
    yield opened
    opened.close_all()


def test_joining_is_welcomed_with_the_others_and_they_are_told(world, rooms):
    maria = rooms.join("maria@example.com", world.one.id)
    assert maria.welcome["peer"] == maria.peer and maria.welcome["peers"] == []
    assert maria.welcome["max"] == 6 and maria.welcome["ice_servers"] == []

    ana = rooms.join("ana@example.com", world.one.id)
    assert ana.welcome["peers"] == [{"peer": maria.peer, "member": str(world.maria.id), "name": "Maria Santos",
                                     "role": "coach", "state": None}]
    joined = maria.wait_for("joined")
    assert joined == {"type": "joined", "peer": ana.peer, "member": str(world.ana.id), "name": "Ana Alves",
                      "role": "athlete"}

    ana.send(type="leave")
    assert maria.wait_for("left") == {"type": "left", "peer": ana.peer, "reason": "leave"}
    assert ana.wait_closed().reason == 1000


def test_offers_answers_and_candidates_reach_only_their_addressee(world, rooms):
    maria = rooms.join("maria@example.com", world.group.id)
    ana = rooms.join("ana@example.com", world.group.id)
    ben = rooms.join("ben@example.com", world.group.id)
    assert {p["peer"] for p in ben.welcome["peers"]} == {maria.peer, ana.peer}

    ben.send(type="offer", to=maria.peer, sdp=SDP)
    assert maria.wait_for("offer") == {"type": "offer", "sdp": SDP, "from": ben.peer}
    maria.send(type="answer", to=ben.peer, sdp=SDP)
    assert ben.wait_for("answer") == {"type": "answer", "sdp": SDP, "from": maria.peer}
    candidate = {"candidate": "candidate:1 1 udp 2122260223 10.0.0.2 50000 typ host", "sdpMid": "0",
                 "sdpMLineIndex": 0, "usernameFragment": "abcd", "extra": "dropped"}
    ben.send(type="candidate", to=maria.peer, candidate=candidate)
    ben.send(type="candidate", to=maria.peer, candidate=None)
    got = maria.wait_for("candidate")
    assert got == {"type": "candidate", "from": ben.peer,
                   "candidate": {k: v for k, v in candidate.items() if k != "extra"}}
    assert maria.wait_for("candidate")["candidate"] is None

    assert [f["type"] for f in ana.sync()] == ["joined"]  # Ben's arrival, and nothing addressed to others


def test_media_state_goes_to_everyone_else(world, rooms):
    maria = rooms.join("maria@example.com", world.group.id)
    ana = rooms.join("ana@example.com", world.group.id)
    ana.send(type="state", audio=False, video=True, screen=True)
    assert maria.wait_for("state") == {"type": "state", "from": ana.peer, "audio": False, "video": True,
                                       "screen": True}
    assert ana.received("state") == [] and not [f for f in ana.sync() if f["type"] == "state"]
    ben = rooms.join("ben@example.com", world.group.id)
    listed = {p["peer"]: p["state"] for p in ben.welcome["peers"]}
    assert listed[ana.peer] == {"audio": False, "video": True, "screen": True}


def test_peers_in_two_processes_reach_each_other_through_redis(world, rooms, app):
    """A second app with its own hub (its own Redis subscription and its own room sockets) on its own port stands for
    a second web process: what one peer sends reaches the other only through Redis."""
    with other_app(app) as second, _serve(second) as second_url:
        maria = rooms.join("maria@example.com", world.one.id)
        there = RoomSockets(rooms.base_url, server_url=second_url, browsers=rooms.browsers)
        ana = there.join("ana@example.com", world.one.id)
        rooms.opened.append(ana)  # closed with the others after the test
        assert ana.welcome["peers"][0]["peer"] == maria.peer
        assert maria.wait_for("joined")["peer"] == ana.peer
        ana.send(type="offer", to=maria.peer, sdp=SDP)
        assert maria.wait_for("offer") == {"type": "offer", "sdp": SDP, "from": ana.peer}
        maria.send(type="answer", to=ana.peer, sdp=SDP)
        assert ana.wait_for("answer") == {"type": "answer", "sdp": SDP, "from": maria.peer}

        # Ana's page reconnects, this time to the first process: her old socket in the second one is closed
        # quietly, and Maria hears she is back, not that she left.
        back = rooms.join("ana@example.com", world.one.id, peer=ana.peer)
        assert ana.wait_closed().reason == 1000
        assert maria.wait_for("joined")["peer"] == ana.peer
        assert maria.sync() == []
        back.send(type="candidate", to=maria.peer, candidate=None)
        assert maria.wait_for("candidate")["from"] == ana.peer


@contextmanager
def _serve(application):
    server = make_server("127.0.0.1", 0, application, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


# --- who may open the socket ---------------------------------------------------------------------------------

def refused(rooms, session_id, email=None, slug="river", origin="same") -> int:
    try:
        rooms.handshake(session_id, email, slug, origin).close()
    except HandshakeRefused as exc:
        return exc.status_code
    raise AssertionError("the handshake was accepted")


def test_the_handshake_is_refused_to_everyone_who_may_not_be_in_the_room(world, rooms):
    assert refused(rooms, world.one.id, "ana@example.com", origin="https://evil.example") == 403
    assert refused(rooms, world.one.id, "ana@example.com", origin=None) == 403
    assert refused(rooms, world.one.id) == 403  # anonymous
    assert refused(rooms, world.one.id, "cleo@example.com") == 403  # a member booked on nothing
    assert refused(rooms, world.one.id, "ada@example.com") == 403  # the admin is not a participant either
    assert refused(rooms, world.one.id, "ben@example.com") == 403  # booked on the group session, not this one
    assert refused(rooms, world.later.id, "ana@example.com") == 403  # not open yet
    assert refused(rooms, world.cancelled.id, "ana@example.com") == 403
    assert refused(rooms, "not-a-session", "ana@example.com") == 403
    # Another organization's member: River's URLs answer 404 to them before any socket rule, as every org URL does.
    assert refused(rooms, world.one.id, "zed@example.com") == 404
    # Hill's own room, with River's session id: not theirs either.
    assert refused(rooms, world.one.id, "zed@example.com", slug="hill") == 403
    zed = rooms.join("zed@example.com", world.hill_session_id, slug="hill")  # their own room works
    assert zed.welcome["peers"] == []


def test_a_booking_cancelled_while_connected_closes_the_socket_on_its_next_frame(world, rooms, quiet):
    maria = rooms.join("maria@example.com", world.one.id)
    ana = rooms.join("ana@example.com", world.one.id)
    maria.wait_for("joined")
    ana.sync()  # a frame just checked: the next one must not trust it
    tenancy.activate(world.org.id)
    booking = db.session.get(Booking, world.bookings[world.one.id][0].id)
    lifecycle.transition(booking, "cancel", None)
    db.session.commit()
    quiet.drain()  # booking.cancelled's consumers, the room's among them

    ana.send(type="ping")
    assert ana.wait_for("closed") == {"type": "closed", "reason": "This session was cancelled."}
    assert ana.wait_closed().reason == 1008
    assert maria.wait_for("left") == {"type": "left", "peer": ana.peer, "reason": "lost"}
    maria.send(type="ping")
    assert maria.wait_for("closed")["reason"] == "This session was cancelled."


def test_the_coach_ends_the_room_for_everyone_and_nobody_gets_back_in(world, rooms):
    maria = rooms.join("maria@example.com", world.group.id)
    ana = rooms.join("ana@example.com", world.group.id)
    ben = rooms.join("ben@example.com", world.group.id)
    ana.send(type="end")
    assert ana.wait_for("error")["code"] == "not_allowed"
    assert ana.sync() == [] and ben.sync() == []  # still in the call

    maria.send(type="end")
    for socket in (maria, ana, ben):
        assert socket.wait_for("ended") == {"type": "ended", "by": "Maria Santos"}
        assert socket.wait_closed().reason == 1000
    assert refused(rooms, world.group.id, "ana@example.com") == 403
    assert refused(rooms, world.group.id, "maria@example.com") == 403


def test_logging_out_closes_the_room_socket(world, rooms):
    ana = rooms.join("ana@example.com", world.one.id)
    browser = rooms.browser("ana@example.com")
    page = browser.get(f"{rooms.base_url}/profile", timeout=10)
    response = browser.post(f"{rooms.base_url}/logout", data={"csrf_token": csrf_from(page.text)},
                            allow_redirects=False, timeout=10)
    assert response.status_code == 303
    assert ana.wait_for("closed") == {"type": "closed", "reason": "Your session has ended."}
    assert ana.wait_closed().reason == 1008


def test_a_member_removed_from_the_organization_is_closed_at_once(world, rooms):
    maria = rooms.join("maria@example.com", world.group.id)
    ben = rooms.join("ben@example.com", world.group.id)
    tenancy.activate(world.org.id)
    orgs.remove_member(world.org, db.session.get(Membership, world.ben.id))
    db.session.commit()
    assert ben.wait_for("closed") == {"type": "closed", "reason": "You are no longer a member of this organization."}
    assert ben.wait_closed().reason == 1008
    assert maria.wait_for("left") == {"type": "left", "peer": ben.peer, "reason": "lost"}


# --- bad input -------------------------------------------------------------------------------------------------

def test_bad_frames_are_refused_and_the_socket_keeps_working(world, rooms):
    maria = rooms.join("maria@example.com", world.one.id)
    ana = rooms.open("ana@example.com", world.one.id)
    ana.send(type="offer", to=maria.peer, sdp=SDP)
    assert ana.wait_for("error")["code"] == "not_joined"
    ana.join()
    stranger = str(uuid.uuid4())
    cases = [
        ("{not json", "unreadable"),
        ("[1, 2]", "unreadable"),
        ("[" * 50_000, "unreadable"),
        (json.dumps({"type": 5}), "unreadable"),
        (json.dumps({"type": "shout", "to": maria.peer}), "unknown_type"),
        (json.dumps({"type": "offer", "to": maria.peer, "sdp": "hello"}), "bad_sdp"),
        (json.dumps({"type": "offer", "to": maria.peer, "sdp": "v=0\r\nno equals sign\r\n"}), "bad_sdp"),
        (json.dumps({"type": "offer", "to": maria.peer, "sdp": "v=0\r\na=x\x00y\r\n"}), "bad_sdp"),
        (json.dumps({"type": "answer", "to": maria.peer, "sdp": 42}), "bad_sdp"),
        (json.dumps({"type": "offer", "to": stranger, "sdp": SDP}), "unknown_peer"),
        (json.dumps({"type": "offer", "to": ana.peer, "sdp": SDP}), "unknown_peer"),
        (json.dumps({"type": "offer", "to": 5, "sdp": SDP}), "unknown_peer"),
        (json.dumps({"type": "candidate", "to": maria.peer}), "bad_candidate"),
        (json.dumps({"type": "candidate", "to": maria.peer, "candidate": "a=candidate"}), "bad_candidate"),
        (json.dumps({"type": "candidate", "to": maria.peer, "candidate": {"candidate": "x" * 1025}}), "bad_candidate"),
        (json.dumps({"type": "candidate", "to": maria.peer,
                     "candidate": {"candidate": "c", "sdpMLineIndex": True}}), "bad_candidate"),
        (json.dumps({"type": "state", "audio": "yes", "video": True, "screen": False}), "bad_state"),
        (json.dumps({"type": "join", "peer": str(uuid.uuid4())}), "already_joined"),
        (b"\x00\x01binary", "unreadable"),
    ]
    for frame, code in cases:
        ana.send_raw(frame)
        error = ana.wait_for("error")
        assert error["code"] == code, (frame[:60], error)
        assert error["message"]
    assert [f["type"] for f in maria.sync()] == ["joined"]  # nothing bad was relayed
    ana.send(type="offer", to=maria.peer, sdp=SDP)  # and the socket still works
    assert maria.wait_for("offer")["from"] == ana.peer


def test_a_peer_id_is_its_members_own(world, rooms):
    ana = rooms.join("ana@example.com", world.group.id)
    ben = rooms.open("ben@example.com", world.group.id)
    ben.send(type="join", peer=ana.peer)
    assert ben.wait_for("error")["code"] == "peer_taken"
    ben.join()  # with a peer id of its own
    assert ana.wait_for("joined")["peer"] == ben.peer


def test_an_oversize_frame_closes_only_that_socket(world, rooms, app):
    maria = rooms.join("maria@example.com", world.one.id)
    ana = rooms.join("ana@example.com", world.one.id)
    big_sdp = SDP + "a=x-padding:" + "p" * 40_000 + "\r\n"  # past chat's 16 KiB, within the room's 64 KiB
    ana.send(type="offer", to=maria.peer, sdp=big_sdp)
    assert maria.wait_for("offer")["sdp"] == big_sdp

    ana.send(type="offer", to=maria.peer, sdp=SDP + "a=x-padding:" + "p" * app.config["ROOM_MAX_FRAME_BYTES"])
    assert ana.wait_closed().reason == 1009
    assert maria.wait_for("left")["peer"] == ana.peer
    assert maria.sync() == []  # Maria's socket is fine


def test_the_chat_socket_still_refuses_frames_over_its_own_limit(world, app, live_server):
    chat = ChatSockets(app, live_server)
    try:
        socket = chat.open("ana@example.com")
        socket.send_raw(json.dumps({"type": "typing", "pad": "x" * 17 * 1024}))
        assert socket.wait_closed().reason == 1009
    finally:
        chat.close_all()


def test_a_candidate_flood_is_throttled_then_closed_and_the_room_stays_up(world, rooms, app):
    maria = rooms.join("maria@example.com", world.group.id)
    ana = rooms.join("ana@example.com", world.group.id)
    ben = rooms.join("ben@example.com", world.group.id)
    limit = app.config["ROOM_FRAMES_PER_10S"]
    frame = json.dumps({"type": "candidate", "to": maria.peer,
                        "candidate": {"candidate": "candidate:1 1 udp 1 10.0.0.9 9 typ host", "sdpMid": "0",
                                      "sdpMLineIndex": 0}})
    try:
        for _ in range(limit * 3 + 50):
            ana.send_raw(frame)
    except ConnectionClosed:
        pass  # the server closed it while the flood was still being written
    assert ana.wait_closed(timeout=30).reason == 1008
    assert any(f["code"] == "too_fast" for f in ana.received("error"))
    maria.wait_for("left", lambda f: f["peer"] == ana.peer)
    relayed = maria.received("candidate")
    assert 0 < len(relayed) <= limit - 1  # the join counted too; the rest were dropped
    ben.send(type="offer", to=maria.peer, sdp=SDP)  # the others go on
    assert maria.wait_for("offer")["from"] == ben.peer


def test_the_seventh_peer_is_told_the_room_is_full(world, rooms):
    tabs = [rooms.join(email, world.group.id) for email in
            ("maria@example.com", "ana@example.com", "ben@example.com") * 2]  # second tabs count too
    assert len({t.peer for t in tabs}) == 6
    seventh = rooms.open("ben@example.com", world.group.id)
    seventh.send(type="join", peer=str(uuid.uuid4()))
    assert seventh.wait_for("full") == {"type": "full"}
    assert seventh.wait_closed().reason == 1008
    tabs[-1].send(type="leave")
    tabs[0].wait_for("left", lambda f: f["peer"] == tabs[-1].peer)
    assert len(rooms.join("ben@example.com", world.group.id).welcome["peers"]) == 5  # a seat came free


def test_a_roster_lost_by_redis_is_rebuilt_by_the_open_sockets(world, rooms, app):
    maria = rooms.join("maria@example.com", world.group.id)
    ana = rooms.join("ana@example.com", world.group.id)
    Redis.from_url(app.config["REDIS_URL"]).delete(f"coach:room:{world.org.id}:{world.group.id}")  # a restart, say
    ana.send(type="state", audio=True, video=False, screen=False)
    maria.sync()  # their next frames put them back
    ana.sync()
    ben = rooms.join("ben@example.com", world.group.id)
    assert {p["peer"]: p["state"] for p in ben.welcome["peers"]} == {
        maria.peer: None, ana.peer: {"audio": True, "video": False, "screen": False}}
    ben.send(type="offer", to=ana.peer, sdp=SDP)
    assert ana.wait_for("offer")["from"] == ben.peer


# --- attendance ------------------------------------------------------------------------------------------------

def stays(world, session_id) -> list[RoomAttendance]:
    tenancy.activate(world.org.id)
    rows = list(db.session.scalars(select(RoomAttendance).where(RoomAttendance.session_id == session_id)
                                   .order_by(RoomAttendance.joined_at)))
    for row in rows:
        db.session.expunge(row)
    db.session.rollback()
    return rows


def joined_events(world) -> list[dict]:
    tenancy.activate(world.org.id)
    payloads = list(db.session.scalars(select(OutboxEvent.payload).where(OutboxEvent.topic == "room.joined")))
    db.session.rollback()
    return payloads


def test_a_stay_runs_from_join_to_leave_and_a_reconnect_is_the_same_stay(world, rooms, quiet):
    maria = rooms.join("maria@example.com", world.one.id)
    ana = rooms.join("ana@example.com", world.one.id)
    maria.wait_for("joined")
    (coach_stay, athlete_stay) = stays(world, world.one.id)
    assert (athlete_stay.membership_id, str(athlete_stay.peer_id), athlete_stay.left_at) == \
        (world.ana.id, ana.peer, None)
    assert coach_stay.membership_id == world.maria.id

    # The page's socket drops and comes back with the same peer id: the new socket replaces the old quietly.
    again = rooms.join("ana@example.com", world.one.id, peer=ana.peer)
    assert ana.wait_closed().reason == 1000
    assert maria.wait_for("joined")["peer"] == ana.peer
    assert [f["type"] for f in maria.sync()] == []  # no "left" for the replaced socket
    assert again.welcome["peers"][0]["peer"] == maria.peer
    assert [(s.membership_id, s.left_at) for s in stays(world, world.one.id)] == \
        [(world.maria.id, None), (world.ana.id, None)]

    again.send(type="leave")
    maria.wait_for("left")
    (_, athlete_stay) = stays(world, world.one.id)
    assert athlete_stay.left_at is not None and athlete_stay.left_at >= athlete_stay.joined_at

    back = rooms.join("ana@example.com", world.one.id, peer=ana.peer)  # the same page rejoins after leaving
    assert back.welcome["peers"][0]["peer"] == maria.peer
    assert [s.left_at for s in stays(world, world.one.id)] == [None, None]
    events = joined_events(world)
    assert sorted((e["membership_id"], e["role"]) for e in events) == \
        sorted([(str(world.maria.id), "coach"), (str(world.ana.id), "athlete")])  # one per stay
    assert {e["session_id"] for e in events} == {str(world.one.id)}


def test_the_sweep_closes_stays_whose_browser_vanished_at_their_last_sign_of_life(world, rooms):
    session_id = world.one.id
    ana = rooms.join("ana@example.com", world.one.id)
    maria = rooms.join("maria@example.com", world.one.id)
    ana.sync()
    maria.sync()
    long_ago = clock.now() - timedelta(minutes=5)
    tenancy.activate(world.org.id)
    db.session.execute(update(RoomAttendance).where(RoomAttendance.membership_id == world.ana.id)
                       .values(joined_at=long_ago - timedelta(minutes=1), last_seen_at=long_ago))
    db.session.commit()
    hill_joined = clock.now() - timedelta(minutes=3)
    tenancy.activate(world.hill.id)
    db.session.add(RoomAttendance(tenant_id=world.hill.id, session_id=world.hill_session_id,
                                  membership_id=world.zed.id, peer_id=uuid.uuid4(), joined_at=hill_joined,
                                  last_seen_at=hill_joined))
    db.session.commit()

    assert attendance_jobs.sweep_attendance() == 2
    by_member = {s.membership_id: s for s in stays(world, session_id)}
    assert by_member[world.ana.id].left_at == long_ago
    assert by_member[world.maria.id].left_at is None  # seen just now
    tenancy.activate(world.hill.id)
    assert db.session.scalar(select(RoomAttendance.left_at).where(RoomAttendance.membership_id == world.zed.id)) \
        == hill_joined
    db.session.rollback()


# --- ICE servers -------------------------------------------------------------------------------------------------

MEMBER = uuid.UUID("7d3c1c5e-2f4b-4a8e-9c1d-3b6e2a9f0c11")


def test_ice_servers_are_stun_and_turn_with_a_short_lived_credential(app, ctx, monkeypatch):
    assert ice.ice_servers(MEMBER) == []  # nothing configured: host candidates only
    monkeypatch.setitem(app.config, "ROOM_STUN_URLS", ("stun:stun.example.com:3478",))
    monkeypatch.setitem(app.config, "ROOM_TURN_URLS", ("turn:turn.example.com:3478?transport=udp",
                                                       "turns:turn.example.com:5349?transport=tcp"))
    assert ice.ice_servers(MEMBER) == [{"urls": ["stun:stun.example.com:3478"]}]  # TURN without its secret: not offered
    monkeypatch.setitem(app.config, "ROOM_TURN_SECRET", "north-wind-secret")
    monkeypatch.setitem(app.config, "ROOM_TURN_TTL_SECONDS", 3600)
    now = datetime(2023, 11, 15, 3, 13, 20, tzinfo=timezone.utc)  # 1700018000
    stun, turn = ice.ice_servers(MEMBER, now)
    assert stun == {"urls": ["stun:stun.example.com:3478"]}
    # As coturn computes it for use-auth-secret (checked with: printf %s "$user" | openssl dgst -sha1 -hmac ...).
    assert turn == {"urls": ["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349?transport=tcp"],
                    "username": f"1700021600:{MEMBER}", "credential": "ALTKvHhf0SAd6fJMtPkhRmSWiZ4="}


# --- the protocol's pieces -----------------------------------------------------------------------------------------

def test_frames_are_rebuilt_from_their_checked_fields_only():
    peer = str(uuid.uuid4())
    lf_sdp = "v=0\no=- 1 2 IN IP4 127.0.0.1\ns=-\n"  # LF-only lines, as some browsers write them
    assert parse(json.dumps({"type": "offer", "to": peer.upper(), "sdp": lf_sdp, "from": "forged", "x": 1}), 65536) \
        == {"type": "offer", "to": peer, "sdp": lf_sdp}
    assert parse(json.dumps({"type": "leave", "peer": peer}), 65536) == {"type": "leave"}
    with pytest.raises(SignalError) as refused_sdp:
        parse(json.dumps({"type": "answer", "to": peer, "sdp": SDP}), len(SDP) - 1)
    assert refused_sdp.value.code == "bad_sdp"


def test_the_frame_rate_is_a_sliding_window_with_a_flood_mark():
    rate = FrameRate(3, window=10)
    assert [rate.hit(t) for t in (0, 1, 2, 3)] == ["ok", "ok", "ok", "slow"]
    assert [rate.hit(4) for _ in range(5)] == ["slow"] * 5  # 9 in 10 s: dropped
    assert rate.hit(4) == "flood"  # past three times the limit
    assert rate.hit(30) == "ok"  # the window moved on
