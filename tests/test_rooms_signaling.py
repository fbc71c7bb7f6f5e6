"""The room's signaling socket over a real server: who may open it, what it relays and to whom, the checks on
every frame, the limits, and the attendance it keeps.

Sockets are real WebSocket clients of ``live_server`` sending the session cookie and an ``Origin`` as the room
page does (tests/rooms_sockets.py); frames are the JSON the page's script sends.
"""
from __future__ import annotations

import pytest

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
    assert maria.wait_for("left") == {"type": "left", "peer": ana.peer}
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
