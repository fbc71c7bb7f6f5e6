"""The signaling of a session's room: what a room socket may say, who is in the room, and delivery to the
room's sockets in every web process.

Browsers in a room build a WebRTC mesh; the server only passes their offers, answers and ICE candidates
between them. A frame is parsed and checked here (:func:`parse`: a JSON object of a known type whose fields
have the right types and sizes), re-serialised from what was checked (a frame is never relayed as it came),
and published on the organization's chat channel (:mod:`coach.rooms.relay`); each process's chat hub hands
room events to :func:`_on_room_event`, which writes them to the room's sockets that process holds.

Who is in a room, across processes, is a Redis hash per room (:class:`Roster`): peer id -> member, name, role,
media state, last seen and the socket holding it. Joining checks the room's size and the peer id's owner in
one script, so two last seats are not given twice.
"""
from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from coach.chat import hub as chat_hub
from coach.ids import parse_uuid
from coach.platform.queues import redis_conn
from coach.rooms import relay

log = logging.getLogger(__name__)

# --- the protocol ----------------------------------------------------------------------------------

CLIENT_TYPES = ("join", "offer", "answer", "candidate", "state", "ping", "leave", "end")
# A candidate line is a few hundred bytes; its other fields are short.
MAX_CANDIDATE = 1024
MAX_MID = 64
MAX_UFRAG = 256
# SDP (RFC 8866): "v=0" first, then one "<letter>=<value>" per line, lines ending CRLF (or LF, as some
# browsers write them); no other control characters.
SDP_RE = re.compile(r"v=0\r?\n(?:[a-z]=[^\x00-\x08\x0a-\x1f\x7f]*\r?\n)*(?:[a-z]=[^\x00-\x08\x0a-\x1f\x7f]*)?")

UNREADABLE = "The call could not read that message. Reload the page if this goes on."


class SignalError(Exception):
    """A frame refused: the socket gets ``{"type": "error", "code": code, "message": message}`` and stays."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def frame(self) -> dict:
        return {"type": "error", "code": self.code, "message": self.message}


def _peer_id(value, code: str = "bad_peer") -> str:
    ident = parse_uuid(value) if isinstance(value, str) else None
    if ident is None:
        raise SignalError(code, "That is not a peer id of this room.")
    return str(ident)


def _sdp(value, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit or SDP_RE.fullmatch(value) is None:
        raise SignalError("bad_sdp", "That session description is not valid SDP.")
    return value


def _candidate(value) -> dict | None:
    """An ``RTCIceCandidateInit`` (or null: the end of candidates) with only its four known fields."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SignalError("bad_candidate", "That ICE candidate is not valid.")
    line, mid, index, ufrag = (value.get(k) for k in ("candidate", "sdpMid", "sdpMLineIndex", "usernameFragment"))
    if not isinstance(line, str) or len(line) > MAX_CANDIDATE \
            or any(ord(c) < 0x20 or ord(c) == 0x7f for c in line) \
            or not (mid is None or (isinstance(mid, str) and len(mid) <= MAX_MID)) \
            or not (index is None or (type(index) is int and 0 <= index <= 65535)) \
            or not (ufrag is None or (isinstance(ufrag, str) and len(ufrag) <= MAX_UFRAG)):
        raise SignalError("bad_candidate", "That ICE candidate is not valid.")
    return {"candidate": line, "sdpMid": mid, "sdpMLineIndex": index, "usernameFragment": ufrag}


def parse(frame, max_sdp: int) -> dict:
    """A client frame checked and re-built from its known fields only; raises :class:`SignalError`.

    Relayed frames keep their ``to`` (a canonical peer id) for the server; everything else in the result is
    what the addressee receives (with ``from`` added)."""
    if not isinstance(frame, str):
        raise SignalError("unreadable", UNREADABLE)
    try:
        data = json.loads(frame)
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested past the stack
        raise SignalError("unreadable", UNREADABLE) from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise SignalError("unreadable", UNREADABLE)
    kind = data["type"]
    if kind not in CLIENT_TYPES:
        raise SignalError("unknown_type", "The call does not know that kind of message.")
    if kind == "join":
        return {"type": kind, "peer": _peer_id(data.get("peer"))}
    if kind in ("offer", "answer"):
        return {"type": kind, "to": _peer_id(data.get("to"), "unknown_peer"), "sdp": _sdp(data.get("sdp"), max_sdp)}
    if kind == "candidate":
        if "candidate" not in data:
            raise SignalError("bad_candidate", "That ICE candidate is not valid.")
        return {"type": kind, "to": _peer_id(data.get("to"), "unknown_peer"),
                "candidate": _candidate(data["candidate"])}
    if kind == "state":
        flags = {k: data.get(k) for k in ("audio", "video", "screen")}
        if not all(isinstance(v, bool) for v in flags.values()):
            raise SignalError("bad_state", "A media state is three true/false flags: audio, video and screen.")
        return {"type": kind, **flags}
    return {"type": kind}


class FrameRate:
    """How fast one socket sends: a sliding window of the last 10 seconds, in memory (a socket is one
    process's). Over ``limit`` frames are refused; at three times the limit the socket is a flood."""

    OK, SLOW, FLOOD = "ok", "slow", "flood"

    def __init__(self, limit: int, window: float = 10.0, flood_factor: int = 3):
        self.limit, self.window = limit, window
        self.flood = limit * flood_factor
        self._times: deque[float] = deque()

    def hit(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        times = self._times
        while times and times[0] <= now - self.window:
            times.popleft()
        times.append(now)
        if len(times) > self.flood:
            return self.FLOOD
        return self.SLOW if len(times) > self.limit else self.OK


# --- who is in a room, across processes --------------------------------------------------------------

# A peer not seen for this long has gone (its process died, say): it is not listed, and its seat is free.
STALE_SECONDS = 45
# The roster disappears this long after its last sign of life (an open socket refreshes it).
ROSTER_TTL_SECONDS = 120

# KEYS[1] the roster; ARGV: peer, entry (JSON), now, stale before, max peers (this one included), ttl.
# Returns {status, others...}: status "ok" (new), "again" (the peer was there: a reconnect), "full", "taken".
_ENTER = """
local now, before, max = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local entry = cjson.decode(ARGV[2])
local all = redis.call('HGETALL', KEYS[1])
local others, live, status = {}, 0, 'ok'
for i = 1, #all, 2 do
  local ok, value = pcall(cjson.decode, all[i + 1])
  if not ok or type(value) ~= 'table' or (tonumber(value.seen) or 0) < before then
    redis.call('HDEL', KEYS[1], all[i])
  elseif all[i] == ARGV[1] then
    if value.member ~= entry.member then return {'taken'} end
    status = 'again'
  else
    live = live + 1
    table.insert(others, all[i + 1])
  end
end
if live >= max then return {'full'} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[6]))
local out = {status}
for _, v in ipairs(others) do table.insert(out, v) end
return out
"""
# KEYS[1] the roster; ARGV: peer, socket, now, state (JSON or ""), ttl. 1 if the socket still holds the peer (and
# the entry is refreshed), 0 if the peer is not there, 2 if another socket holds it.
_TOUCH = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local value = cjson.decode(raw)
if value.socket ~= ARGV[2] then return 2 end
value.seen = tonumber(ARGV[3])
if ARGV[4] ~= '' then value.state = cjson.decode(ARGV[4]) end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(value))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
return 1
"""
# KEYS[1] the roster; ARGV: peer, socket. 1 if the socket held the peer (and no longer does).
_LEAVE = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
if cjson.decode(raw).socket ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
"""


class RoomFull(Exception):
    pass


class PeerTaken(Exception):
    pass


def _public(entry: dict) -> dict:
    return {"peer": entry["peer"], "member": entry["member"], "name": entry["name"], "role": entry["role"],
            "state": entry.get("state")}


class Roster:
    """One room's peers in Redis (``coach:room:<tenant>:<session>``). Raises ``RedisError`` when Redis is away."""

    def __init__(self, tenant_id: uuid.UUID, session_id: uuid.UUID):
        self.key = f"coach:room:{tenant_id}:{session_id}"

    def enter(self, peer: str, socket: str, member: str, name: str, role: str, max_peers: int) -> tuple[bool, list]:
        """Take a seat for ``peer``: (whether it was there already, the others as ``welcome`` lists them).
        Raises :class:`RoomFull` or :class:`PeerTaken`."""
        now = time.time()
        entry = {"peer": peer, "member": member, "name": name, "role": role, "state": None, "seen": now,
                 "socket": socket}
        result = redis_conn().eval(_ENTER, 1, self.key, peer, json.dumps(entry), now, now - STALE_SECONDS,
                                   max_peers, ROSTER_TTL_SECONDS)
        status = result[0].decode() if isinstance(result[0], bytes) else result[0]
        if status == "full":
            raise RoomFull()
        if status == "taken":
            raise PeerTaken()
        others = sorted((_public(json.loads(raw)) for raw in result[1:]), key=lambda e: e["peer"])
        return status == "again", others

    def touch(self, peer: str, socket: str, state: dict | None = None) -> bool | None:
        """Refresh ``peer``'s entry (and its media ``state``): True; None when the peer is not in the roster (Redis
        lost it, say); False when another socket (a reconnect's) holds it."""
        held = redis_conn().eval(_TOUCH, 1, self.key, peer, socket, time.time(),
                                 json.dumps(state) if state is not None else "", ROSTER_TTL_SECONDS)
        return None if held == 0 else held == 1

    def relay_to(self, peer: str, channel: str, data: str) -> bool:
        """Publish ``data`` for ``peer`` if the peer is in the room: one round trip for both. (Published either
        way: for a peer not in the room no socket takes it.)"""
        pipe = redis_conn().pipeline(transaction=False)
        pipe.hexists(self.key, peer)
        pipe.publish(channel, data)
        present, _ = pipe.execute()
        return bool(present)

    def leave(self, peer: str, socket: str) -> bool:
        return bool(redis_conn().eval(_LEAVE, 1, self.key, peer, socket))


# --- this process's room sockets ---------------------------------------------------------------------

# Internal: a peer rejoined on a new socket; the process holding its old socket closes it quietly.
REPLACED = "replaced"
# Internal: who may be in the room may have changed (a booking left it): each socket checks again on its next frame.
RECHECK = "recheck"
ENDED = "ended"


@dataclass(eq=False)
class LocalPeer:
    """One room socket of this process, as delivery sees it."""

    tenant_key: str
    session_key: str
    peer: str
    socket: str  # this socket's own id (a reconnect's new socket has another)
    send: Callable[[str], None]  # sends one text frame (thread-safe)
    close: Callable[[int, str], None]  # closes the socket (from any thread)
    replaced: bool = False
    recheck: bool = False  # the socket's last access check no longer stands


class LocalRooms:
    """This process's room sockets by room and peer: delivery is a dict lookup, no database."""

    def __init__(self):
        self._lock = threading.Lock()
        self._rooms: dict[tuple[str, str], dict[str, LocalPeer]] = {}

    def add(self, peer: LocalPeer) -> LocalPeer | None:
        """Hold ``peer``'s socket; the socket it replaces (the same peer's previous one), if this process had it."""
        with self._lock:
            room = self._rooms.setdefault((peer.tenant_key, peer.session_key), {})
            old = room.get(peer.peer)
            room[peer.peer] = peer
        return old if old is not peer else None

    def remove(self, peer: LocalPeer) -> None:
        with self._lock:
            room = self._rooms.get((peer.tenant_key, peer.session_key))
            if room is not None and room.get(peer.peer) is peer:
                del room[peer.peer]
                if not room:
                    del self._rooms[(peer.tenant_key, peer.session_key)]

    def peers(self, tenant_key: str, session_key: str) -> list[LocalPeer]:
        with self._lock:
            return list(self._rooms.get((tenant_key, session_key), {}).values())

    def count(self) -> int:
        with self._lock:
            return sum(len(room) for room in self._rooms.values())

    def deliver(self, event: dict) -> None:
        """Write a published room event to this process's sockets of the room: to one peer, or to all but
        its sender. ``ended`` also closes them; ``replaced`` closes an old socket of a rejoined peer."""
        message = event.get("message") or {}
        to, sender = event.get("to"), event.get("from")
        with self._lock:
            room = self._rooms.get((event.get("tenant_id"), event.get("session_id")))
            if not room:
                return
            targets = [room[to]] if to in room else [] if to is not None else \
                [p for k, p in room.items() if k != sender]
        kind = message.get("type")
        if kind == RECHECK:
            for peer in targets:
                peer.recheck = True
            return
        if kind == REPLACED:
            for peer in targets:
                if peer.socket != message.get("socket"):
                    peer.replaced = True
                    peer.close(1000, "This room was opened again on another connection.")
            return
        data = json.dumps(message)
        for peer in targets:
            peer.send(data)
        if kind == ENDED:
            for peer in targets:
                peer.close(1000, "The session has ended.")


_locals: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_locals_lock = threading.Lock()


def local_rooms(hub: chat_hub.Hub) -> LocalRooms:
    """The room sockets of the process whose hub is ``hub``."""
    with _locals_lock:
        rooms = _locals.get(hub)
        if rooms is None:
            rooms = _locals[hub] = LocalRooms()
        return rooms


def _on_room_event(hub: chat_hub.Hub, event: dict) -> None:
    local_rooms(hub).deliver(event)


chat_hub.register_handler(relay.ROOM_EVENT, _on_room_event)

