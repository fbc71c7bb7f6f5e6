"""``signaling``: setting up 200 two-person video rooms through the room socket (issue 20), on the production server.

Seeded with bulk SQL on the benchmark's own PostgreSQL: ``--orgs`` organizations (default 4) holding ``--rooms``
(default 200) open 1:1 sessions between them, each with its own coach and athlete (a confirmed booking; the
session started five minutes ago and lasts an hour, so its room is open), one offering per coach. Every
participant is signed in as ``bench chat`` does it (:func:`bench.chat._session_cookies`: the first through
``POST /login``, the others by the login view's own ``start_session`` in this process, the same cookie).

Served by ``gunicorn --config gunicorn.conf.py wsgi:app`` (the Procfile's command, gevent workers,
``WEB_CONCURRENCY`` = 2 processes). Clients: one asyncio RFC 6455 client per participant in this process
(:class:`bench.chat.Socket`: ``Origin`` and cookie like a browser, ``permessage-deflate`` offered), speaking the
room protocol of ``docs/ARCHITECTURE.md`` (``GET /o/<slug>/sessions/<id>/room/socket``):

1. **Coaches arrive.** Every coach opens their room's socket and sends ``join`` (25 handshakes at a time) and
   waits for its ``welcome``. Then every socket sends a ``ping`` (as the page does every 15 s) and waits for its
   ``pong``.
2. **Setup** (measured). The rooms start one after the other, spread evenly over ``--stagger`` seconds: the
   athlete opens the socket and sends ``join``; on its ``welcome`` it sends an ``offer`` (a Chrome-like SDP of
   ~5-6 KB, audio + video, starting ``v=0``) to every peer listed, then six ICE ``candidate`` frames; the coach,
   on the ``offer``, sends an ``answer`` (~4 KB) and six candidates. A room's **setup time** runs from the
   athlete's ``join`` until both have everything addressed to them (athlete: ``welcome``, the answer, six
   candidates; coach: ``joined``, the offer, six candidates). The athlete's handshake is timed apart.
3. **ICE restart** (measured, for CPU per frame). Every room again, spread the same way: the athlete sends a
   new offer and six candidates, the coach answers with six: 14 relayed frames a room, no handshake, no
   join. The server's CPU over this stage divided by the frames relayed is ``cpu_ms_per_frame``.
4. Everyone sends ``leave`` and closes.

Relayed frames (``offer``, ``answer``, ``candidate``) are counted as sent and as received by their addressee
with the right ``from``; **lost** = sent - received once ``--drain`` seconds (default 30) have passed after the
last room started, over both measured stages (a room not set up by then counts as ``inf`` in the setup
percentiles, which are over all rooms); a frame from anyone but the room's other participant counts as
misrouted. Sockets per gunicorn worker are counted from ``/proc`` (each worker's fds against the established
TCP connections to the port), once all sockets are open; the app role's PostgreSQL connections are sampled from
``pg_stat_activity`` during each measured stage (:class:`ConnectionWatch`). CPU from ``/proc``: the gunicorn process tree,
PostgreSQL, Valkey, this process (the clients) and ``others`` (what none of them used: other programs on a
shared machine). In the same run, the bare route (``bench.baseline_app``, ``GET /``, same gunicorn settings,
16 clients, ``BENCH_SECONDS``) gives ``bare_cpu_ms_per_req``: gunicorn CPU per request.

Last line: ``rooms=... setup_p50_ms=... setup_p95_ms=... lost=... frames=... cpu_ms_per_frame=...
bare_cpu_ms_per_req=...`` (frames = relayed frames sent over both measured stages; CPU per frame and per
bare request: the gunicorn workers only). Target: setup p95 < 200 ms, lost 0. A longer ``--stagger`` is a lower
arrival rate; at a low rate the sockets' idle refreshes (every 20 s each) weigh more in the CPU per frame.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import random
import secrets
import threading
import time
import uuid
import zlib
from datetime import datetime, timedelta, timezone

from bench import chat, harness

TARGET_SETUP_P95_MS = 200.0
CANDIDATES = 6
RELAYED = ("offer", "answer", "candidate")
HANDSHAKES_AT_ONCE = 25
BARE_CLIENTS = 16


# --- what a browser sends -----------------------------------------------------------------------------


def _fingerprint(rng: random.Random) -> str:
    return ":".join(f"{rng.randrange(256):02X}" for _ in range(32))


def _ice(rng: random.Random) -> tuple[str, str]:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"
    return "".join(rng.choice(alphabet) for _ in range(4)), "".join(rng.choice(alphabet) for _ in range(24))


# Chrome's video codecs in its offer: (payload type, rtx payload type, rtpmap, fmtp or "").
VIDEO_CODECS = [
    (96, 97, "VP8/90000", ""),
    (98, 99, "VP9/90000", "profile-id=0"),
    (100, 101, "VP9/90000", "profile-id=2"),
    (102, 103, "H264/90000", "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f"),
    (104, 105, "H264/90000", "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f"),
    (106, 107, "H264/90000", "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"),
    (108, 109, "H264/90000", "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f"),
    (127, 125, "H264/90000", "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f"),
    (39, 40, "AV1/90000", "level-idx=5;profile=0;tier=0"),
    (45, 46, "AV1/90000", "level-idx=5;profile=1;tier=0"),
]
AUDIO_EXTMAPS = ["urn:ietf:params:rtp-hdrext:ssrc-audio-level", "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
                 "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
                 "urn:ietf:params:rtp-hdrext:sdes:mid"]
VIDEO_EXTMAPS = ["urn:ietf:params:rtp-hdrext:toffset", "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
                 "urn:3gpp:video-orientation",
                 "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
                 "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay",
                 "http://www.webrtc.org/experiments/rtp-hdrext/video-content-type",
                 "http://www.webrtc.org/experiments/rtp-hdrext/video-timing",
                 "http://www.webrtc.org/experiments/rtp-hdrext/color-space", "urn:ietf:params:rtp-hdrext:sdes:mid",
                 "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
                 "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"]


def session_description(rng: random.Random, answer: bool, ufrag: str, pwd: str) -> str:
    """A Chrome-like SDP with one audio and one video section: an offer lists ten video codecs (~5.5 KB), an
    answer the six it accepts (~4 KB)."""
    stream, audio_track, video_track = (str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(3))
    cname = base64.b64encode(rng.randbytes(12)).decode()
    fingerprint = _fingerprint(rng)
    lines = ["v=0", f"o=- {rng.getrandbits(62)} 2 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0 1",
             "a=extmap-allow-mixed", f"a=msid-semantic: WMS {stream}"]

    def common(mid: str) -> list[str]:
        return ["c=IN IP4 0.0.0.0", "a=rtcp:9 IN IP4 0.0.0.0", f"a=ice-ufrag:{ufrag}", f"a=ice-pwd:{pwd}",
                "a=ice-options:trickle", f"a=fingerprint:sha-256 {fingerprint}",
                f"a=setup:{'active' if answer else 'actpass'}", f"a=mid:{mid}"]

    audio_pts = [111, 63, 9, 0, 8, 13, 110, 126]
    lines += [f"m=audio 9 UDP/TLS/RTP/SAVPF {' '.join(map(str, audio_pts))}", *common("0")]
    lines += [f"a=extmap:{n} {uri}" for n, uri in enumerate(AUDIO_EXTMAPS, 1)]
    audio_ssrc = rng.getrandbits(32)
    lines += ["a=sendrecv", f"a=msid:{stream} {audio_track}", "a=rtcp-mux", "a=rtpmap:111 opus/48000/2",
              "a=rtcp-fb:111 transport-cc", "a=fmtp:111 minptime=10;useinbandfec=1", "a=rtpmap:63 red/48000/2",
              "a=fmtp:63 111/111", "a=rtpmap:9 G722/8000", "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000",
              "a=rtpmap:13 CN/8000", "a=rtpmap:110 telephone-event/48000", "a=rtpmap:126 telephone-event/8000",
              f"a=ssrc:{audio_ssrc} cname:{cname}", f"a=ssrc:{audio_ssrc} msid:{stream} {audio_track}"]
    codecs = VIDEO_CODECS[:6] if answer else VIDEO_CODECS
    video_pts = [pt for codec in codecs for pt in codec[:2]] + [114, 115, 116]
    lines += [f"m=video 9 UDP/TLS/RTP/SAVPF {' '.join(map(str, video_pts))}", *common("1")]
    lines += [f"a=extmap:{n} {uri}" for n, uri in enumerate(VIDEO_EXTMAPS, 2)]
    lines += ["a=sendrecv", f"a=msid:{stream} {video_track}", "a=rtcp-mux", "a=rtcp-rsize"]
    for pt, rtx, rtpmap, fmtp in codecs:
        lines += [f"a=rtpmap:{pt} {rtpmap}", f"a=rtcp-fb:{pt} goog-remb", f"a=rtcp-fb:{pt} transport-cc",
                  f"a=rtcp-fb:{pt} ccm fir", f"a=rtcp-fb:{pt} nack", f"a=rtcp-fb:{pt} nack pli"]
        if fmtp:
            lines.append(f"a=fmtp:{pt} {fmtp}")
        lines += [f"a=rtpmap:{rtx} rtx/90000", f"a=fmtp:{rtx} apt={pt}"]
    lines += ["a=rtpmap:114 red/90000", "a=rtpmap:115 rtx/90000", "a=fmtp:115 apt=114",
              "a=rtpmap:116 ulpfec/90000"]
    video_ssrc, rtx_ssrc = rng.getrandbits(32), rng.getrandbits(32)
    lines += [f"a=ssrc-group:FID {video_ssrc} {rtx_ssrc}"]
    for ssrc in (video_ssrc, rtx_ssrc):
        lines += [f"a=ssrc:{ssrc} cname:{cname}", f"a=ssrc:{ssrc} msid:{stream} {video_track}"]
    return "\r\n".join(lines) + "\r\n"


def ice_candidates(rng: random.Random, ufrag: str) -> list[dict]:
    """Six candidates as RTCIceCandidate.toJSON() gives them: host UDP and TCP (IPv4, IPv6), server-reflexive,
    relayed through TURN."""
    host4, host6 = f"192.168.{rng.randrange(256)}.{rng.randrange(1, 255)}", \
        f"2001:db8:{rng.randrange(65536):x}::{rng.randrange(65536):x}"
    public, relay = f"203.0.113.{rng.randrange(1, 255)}", f"198.51.100.{rng.randrange(1, 255)}"
    ports = [rng.randrange(30000, 65000) for _ in range(6)]
    lines = [
        f"candidate:{rng.getrandbits(32)} 1 udp 2122260223 {host4} {ports[0]} typ host generation 0",
        f"candidate:{rng.getrandbits(32)} 1 udp 2122197247 {host6} {ports[1]} typ host generation 0",
        f"candidate:{rng.getrandbits(32)} 1 tcp 1518280447 {host4} 9 typ host tcptype active generation 0",
        f"candidate:{rng.getrandbits(32)} 1 tcp 1518217471 {host6} 9 typ host tcptype active generation 0",
        f"candidate:{rng.getrandbits(32)} 1 udp 1686052607 {public} {ports[4]} typ srflx raddr {host4} "
        f"rport {ports[0]} generation 0",
        f"candidate:{rng.getrandbits(32)} 1 udp 41885439 {relay} {ports[5]} typ relay raddr {public} "
        f"rport {ports[4]} generation 0",
    ]
    return [{"candidate": f"{line} ufrag {ufrag} network-id {n + 1}", "sdpMid": "0", "sdpMLineIndex": 0,
             "usernameFragment": ufrag} for n, line in enumerate(lines[:CANDIDATES])]


# --- the clients ----------------------------------------------------------------------------------------


class Peer(chat.Socket):
    """One participant's room socket; every text frame goes to its :class:`Room`."""

    def __init__(self, index: int, port: int, cookie: str, path: str, role: str, room: Room):
        super().__init__(index, port, cookie, deflate=True)
        self.path, self.role, self.room = path, role, room
        self.peer_id = str(uuid.uuid4())  # the page makes one per load
        self.other: Peer | None = None
        self.task: asyncio.Task | None = None
        self.welcome = asyncio.Event()
        self.pong = asyncio.Event()
        self.kinds: dict[str, int] = {}
        self.error_codes: dict[str, int] = {}

    async def open(self, timeout: float) -> None:
        """The handshake of :meth:`bench.chat.Socket.open`, to this room's socket."""
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(harness.HOST, self.port, limit=1 << 20), timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {self.path} HTTP/1.1", f"Host: {harness.HOST}:{self.port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
                 f"Origin: http://{harness.HOST}:{self.port}", f"User-Agent: {chat.USER_AGENT}",
                 f"Cookie: {self.cookie}", "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = (await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)).decode("latin-1")
        status = head.split(" ", 2)[1] if " " in head else "?"
        if status != "101":
            self.writer.close()  # nothing more may go down an HTTP connection that was refused
            self.reader = self.writer = None
            raise ConnectionError(f"handshake answered {status}")
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "sec-websocket-accept" and value.strip() != accept.decode():
                raise ConnectionError("handshake answered a wrong Sec-WebSocket-Accept")
            if name == "sec-websocket-extensions" and "permessage-deflate" in value:
                for param in (p.strip() for p in value.split(";")[1:]):
                    if param.startswith("server_max_window_bits="):
                        self.inflate_bits = int(param.split("=", 1)[1])
                    elif param == "server_no_context_takeover":
                        self.inflate_reset = True
                self.inflater = zlib.decompressobj(-self.inflate_bits)
        self.task = asyncio.get_running_loop().create_task(self.read_forever())

    def send(self, message: dict) -> None:
        if self.writer is None or self.closed is not None:
            return
        if message["type"] in RELAYED:
            self.room.sent[self.room.stage] = self.room.sent.get(self.room.stage, 0) + 1
        self.send_json(message)

    def on_text(self, text: str, now: float) -> None:
        try:
            data = json.loads(text)
            kind = data["type"]
        except (ValueError, KeyError, TypeError):
            kind, data = "unreadable", {}
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if kind == "error":
            code = str(data.get("code"))
            self.error_codes[code] = self.error_codes.get(code, 0) + 1
        elif kind == "pong":
            self.pong.set()
        self.room.on_frame(self, kind, data, now)


class Room:
    """A coach and an athlete, and what each stage expects each of them to receive."""

    def __init__(self, n: int, port: int, slug: str, session_id: str, coach_cookie: str, athlete_cookie: str):
        path = f"/o/{slug}/sessions/{session_id}/room/socket"
        self.n = n
        self.rng = random.Random(n)
        self.coach = Peer(2 * n, port, coach_cookie, path, "coach", self)
        self.athlete = Peer(2 * n + 1, port, athlete_cookie, path, "athlete", self)
        self.coach.other, self.athlete.other = self.athlete, self.coach
        self.stage = "arrive"
        self.sent: dict[str, int] = {}
        self.received: dict[str, int] = {}
        self.misrouted = self.duplicates = 0
        self.got: dict[tuple[str, str], set] = {}  # (stage, role) -> the kinds expected that arrived
        self.candidates: dict[tuple[str, str], set] = {}  # (stage, role) -> the candidate lines that arrived
        self.last: dict[str, float] = {}  # stage -> the latest arrival of an expected frame
        self.started: dict[str, float] = {}  # stage -> when its clock started (the join; the restart's offer)
        self.handshake_ms: float | None = None
        self.done: dict[str, asyncio.Event] = {"setup": asyncio.Event(), "restart": asyncio.Event()}
        self.failure: str | None = None

    def expected(self, role: str) -> set:
        """What ``role`` must receive in the current stage besides six candidates."""
        first = {"setup": {"athlete": "welcome", "coach": "joined"}}.get(self.stage, {}).get(role)
        relayed = "answer" if role == "athlete" else "offer"
        return ({first} if first else set()) | {relayed}

    def _negotiate(self, sender: Peer, to: str, kind: str) -> None:
        """``sender`` sends its description (an offer or the answer) and its six candidates to ``to``."""
        ufrag, pwd = _ice(self.rng)
        sender.send({"type": kind, "to": to, "sdp": session_description(self.rng, kind == "answer", ufrag, pwd)})
        for candidate in ice_candidates(self.rng, ufrag):
            sender.send({"type": "candidate", "to": to, "candidate": candidate})

    def on_frame(self, peer: Peer, kind: str, data: dict, now: float) -> None:
        stage = self.stage
        if kind in RELAYED:
            if data.get("from") != peer.other.peer_id:
                self.misrouted += 1
                return
            self.received[stage] = self.received.get(stage, 0) + 1
        if stage not in self.done:
            if kind == "welcome":
                peer.welcome.set()
            return
        key = None
        if kind == "welcome" and peer.role == "athlete":
            key = "welcome"
            peer.welcome.set()
            for other in data.get("peers") or []:  # the newcomer offers to everyone already in
                self._negotiate(peer, other.get("peer"), "offer")
        elif kind == "joined" and peer.role == "coach" and data.get("peer") == peer.other.peer_id:
            key = "joined"
        elif kind == "offer" and peer.role == "coach":
            key = "offer"
            self._negotiate(peer, data["from"], "answer")
        elif kind == "answer" and peer.role == "athlete":
            key = "answer"
        elif kind == "candidate":
            candidate = data.get("candidate")
            text = candidate.get("candidate") if isinstance(candidate, dict) else None
            seen = self.candidates.setdefault((stage, peer.role), set())
            if text in seen:
                self.duplicates += 1
                return
            seen.add(text)
            self.last[stage] = now
        if key is not None:
            self.got.setdefault((stage, peer.role), set()).add(key)
            self.last[stage] = now
        if all(self.expected(role) <= self.got.get((stage, role), set())
               and len(self.candidates.get((stage, role), ())) >= CANDIDATES for role in ("coach", "athlete")):
            self.done[stage].set()

    def setup_ms(self, stage: str) -> float | None:
        if not self.done[stage].is_set():
            return None
        return (self.last[stage] - self.started[stage]) * 1000

    def close(self) -> None:
        for peer in (self.coach, self.athlete):
            if peer.writer is not None and peer.closed is None:
                try:
                    peer.send_json({"type": "leave"})
                except (ConnectionError, OSError, RuntimeError):
                    pass
            peer.close()
            if peer.task is not None:
                peer.task.cancel()


class ConnectionWatch:
    """The app role's PostgreSQL connections, sampled from ``pg_stat_activity`` every half second in a thread: how
    many were open, running a statement, or idle inside a transaction (holding a pooled connection while the
    worker does something else), at most, and the oldest such transaction."""

    QUERY = """
        SELECT count(*), count(*) FILTER (WHERE state = 'active'),
               count(*) FILTER (WHERE state LIKE 'idle in transaction%%'),
               coalesce(max(extract(epoch FROM now() - xact_start)) FILTER (WHERE state LIKE 'idle in transaction%%'), 0)
          FROM pg_stat_activity WHERE usename = current_user AND pid <> pg_backend_pid()"""

    def __init__(self, conninfo: str):
        self.conninfo = conninfo
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.peak = {"open": 0, "active": 0, "idle_in_transaction": 0, "oldest_idle_transaction_s": 0.0}

    def start(self) -> None:
        self._stop.clear()
        self.peak = dict.fromkeys(self.peak, 0)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            while not self._stop.is_set():
                row = conn.execute(self.QUERY).fetchone()
                for key, value in zip(self.peak, row):
                    self.peak[key] = max(self.peak[key], float(value) if key.endswith("_s") else int(value))
                self._stop.wait(0.5)

    def stop(self) -> dict:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        return dict(self.peak)


async def _ping_all(rooms: list[Room], timeout: float) -> int:
    """Every open socket sends the page's ``ping``; how many got their ``pong`` in time."""
    peers = [p for r in rooms for p in (r.coach, r.athlete) if p.writer is not None and p.closed is None]
    for peer in peers:
        peer.pong.clear()
        peer.send_json({"type": "ping"})

    async def one(peer: Peer) -> bool:
        try:
            await asyncio.wait_for(peer.pong.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    return sum(await asyncio.gather(*(one(p) for p in peers)))


async def _arrive(rooms: list[Room], timeout: float) -> dict:
    gate = asyncio.Semaphore(HANDSHAKES_AT_ONCE)
    failures: dict[str, int] = {}

    async def one(room: Room) -> None:
        try:
            async with gate:
                await room.coach.open(timeout)
                room.coach.send_json({"type": "join", "peer": room.coach.peer_id})
                await asyncio.wait_for(room.coach.welcome.wait(), timeout)
        except (OSError, ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
            reason = f"{type(exc).__name__}: {exc}"[:100]
            room.failure = f"coach: {reason}"
            failures[reason] = failures.get(reason, 0) + 1

    started = time.monotonic()
    await asyncio.gather(*(one(r) for r in rooms))
    return {"seconds": time.monotonic() - started, "failures": failures}


async def _stage(stage: str, rooms: list[Room], stagger: float, drain: float, timeout: float, meter,
                 watch: ConnectionWatch) -> dict:
    """Start the rooms' ``stage`` evenly over ``stagger`` seconds; wait for all (at most ``drain`` s after the
    last start). The meter runs from just before the first start to the last room done."""
    live = [r for r in rooms if r.failure is None]
    failures: dict[str, int] = {}
    for r in live:
        r.stage = stage

    async def setup(room: Room, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        t = time.time()
        try:
            await room.athlete.open(timeout)
        except (OSError, ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
            reason = f"{type(exc).__name__}: {exc}"[:100]
            room.failure = f"athlete: {reason}"
            failures[reason] = failures.get(reason, 0) + 1
            return
        room.started[stage] = time.time()
        room.handshake_ms = (room.started[stage] - t) * 1000
        room.athlete.send({"type": "join", "peer": room.athlete.peer_id})

    async def restart(room: Room, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        room.started[stage] = time.time()
        room._negotiate(room.athlete, room.coach.peer_id, "offer")

    begin = time.monotonic() + 0.5
    starts = [begin + stagger * i / max(1, len(live)) for i in range(len(live))]
    meter.start()
    watch.start()
    cpu_before = time.process_time()
    wall0 = time.monotonic()
    await asyncio.gather(*((setup if stage == "setup" else restart)(r, at) for r, at in zip(live, starts)))
    deadline = begin + stagger + drain
    for room in live:
        if room.failure is None:
            try:
                await asyncio.wait_for(room.done[stage].wait(), max(0.01, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                pass
    elapsed = time.monotonic() - wall0
    cpu = meter.stop()
    return {"cpu": cpu, "seconds": elapsed, "client_cpu_s": time.process_time() - cpu_before, "failures": failures,
            "connections": watch.stop()}


async def _drive(rooms: list[Room], opts, meter, watch: ConnectionWatch, count_sockets) -> dict:
    timeout = 30.0
    harness.say(f"coaches arrive: {len(rooms)} sockets open and join, {HANDSHAKES_AT_ONCE} handshakes at a time")
    arrive = await _arrive(rooms, timeout)
    pongs_arrive = await _ping_all(rooms, timeout)
    harness.say(f"{len(rooms) - sum(arrive['failures'].values())} coaches in after {arrive['seconds']:.1f} s; "
                f"pongs {pongs_arrive}; setup: athletes join over {opts.stagger:g} s")
    setup = await _stage("setup", rooms, opts.stagger, opts.drain, timeout, meter, watch)
    per_worker = count_sockets()
    pongs = await _ping_all(rooms, timeout)
    harness.say(f"setup done in {setup['seconds']:.1f} s; sockets per worker {per_worker}; pongs {pongs}; "
                f"ICE restart in every room over {opts.stagger:g} s")
    restart = await _stage("restart", rooms, opts.stagger, opts.drain, timeout, meter, watch)
    for room in rooms:
        room.close()
    await asyncio.sleep(0.5)
    return {"arrive": arrive, "setup": setup, "restart": restart, "per_worker": per_worker,
            "pongs": (pongs_arrive, pongs)}


# --- seeding ----------------------------------------------------------------------------------------------


def _seed(app, rooms: int, orgs: int) -> dict:
    """``orgs`` organizations with ``rooms`` open 1:1 sessions between them (a coach and an athlete each, a
    confirmed booking), in bulk; every account shares its organization owner's password hash."""
    from sqlalchemy import insert

    from coach import tenancy
    from coach.accounts.models import User
    from coach.accounts.service import create_user
    from coach.booking.models import Booking, CoachingSession, Offering
    from coach.extensions import db
    from coach.orgs.models import Membership
    from coach.orgs.service import create_organization

    password = secrets.token_urlsafe(12)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    starts, ends = now - timedelta(minutes=5), now + timedelta(minutes=55)
    seeded: list[dict] = []
    emails: list[str] = []
    with app.app_context():
        for o in range(orgs):
            mine = range(o * rooms // orgs, (o + 1) * rooms // orgs)
            slug = f"bench-rooms-{o + 1}"
            owner = create_user(f"admin@{slug}.example", password, f"Rooms Admin {o + 1}", "Europe/Berlin")
            org = create_organization(owner, f"Bench Rooms {o + 1}", slug, "Europe/Berlin")
            tenancy.activate(org.id)
            users, members, offerings, sessions, bookings = [], [], [], [], []
            for n in mine:
                pair = []
                for role in ("coach", "athlete"):
                    user = {"id": uuid.uuid4(), "email": f"{role}{n:03d}@{slug}.example",
                            "password_hash": owner.password_hash, "display_name": f"{role.title()} {n:03d}",
                            "timezone": "Europe/Berlin"}
                    users.append(user)
                    members.append({"id": uuid.uuid4(), "tenant_id": org.id, "user_id": user["id"], "role": role})
                    pair.append((user["email"], members[-1]["id"]))
                (coach_email, coach_id), (athlete_email, athlete_id) = pair
                offering_id, session_id = uuid.uuid4(), uuid.uuid4()
                offerings.append({"id": offering_id, "tenant_id": org.id, "coach_membership_id": coach_id,
                                  "title": "Video review", "duration_minutes": 60, "min_notice_minutes": 0})
                sessions.append({"id": session_id, "tenant_id": org.id, "coach_membership_id": coach_id,
                                 "offering_id": offering_id, "starts_at": starts, "ends_at": ends, "busy_from": starts,
                                 "busy_until": ends, "capacity": 1, "live_seats": 1})
                bookings.append({"id": uuid.uuid4(), "tenant_id": org.id, "session_id": session_id,
                                 "offering_id": offering_id, "coach_membership_id": coach_id,
                                 "athlete_membership_id": athlete_id, "booked_by_membership_id": athlete_id,
                                 "starts_at": starts, "ends_at": ends, "status": "confirmed",
                                 "confirmed_at": now - timedelta(days=1), "status_changed_at": now - timedelta(days=1)})
                seeded.append({"n": n, "slug": slug, "session_id": str(session_id), "coach": coach_email,
                               "athlete": athlete_email})
                emails += [coach_email, athlete_email]
            db.session.execute(insert(User), users)
            db.session.execute(insert(Membership), members)
            db.session.execute(insert(Offering), offerings)
            db.session.execute(insert(CoachingSession), sessions)
            db.session.execute(insert(Booking), bookings)
            db.session.commit()
    return {"rooms": seeded, "emails": emails, "password": password}


# --- the benchmark -------------------------------------------------------------------------------------


def _options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench signaling")
    parser.add_argument("--rooms", type=int, default=harness.env_int("BENCH_SIGNALING_ROOMS", 200))
    parser.add_argument("--orgs", type=int, default=4, help="organizations the rooms are spread over")
    parser.add_argument("--stagger", type=float, default=5.0, help="seconds over which the rooms start")
    parser.add_argument("--drain", type=float, default=30.0,
                        help="the longest wait after the last room started; what has not arrived then is lost")
    opts = parser.parse_args(argv or [])
    if opts.rooms < 1 or not 1 <= opts.orgs <= opts.rooms or opts.stagger < 0:
        parser.error("need rooms >= 1, 1 <= orgs <= rooms, stagger >= 0")
    return opts


def _cpu_ms(stage: dict, trees: tuple[str, ...]) -> float:
    return sum(stage["cpu"]["cores"].get(k, 0.0) for k in trees) * stage["seconds"] * 1000


def run(argv: list[str] | None = None) -> str:
    opts = _options(argv)
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()
    print(f"# bench signaling  ({today}; {os.cpu_count()} cores, load average {load[0]:.1f}/{load[1]:.1f}/"
          f"{load[2]:.1f}; WEB_CONCURRENCY={os.environ.get('WEB_CONCURRENCY', '2')}; {opts.rooms} rooms in "
          f"{opts.orgs} organizations, started over {opts.stagger:g} s)", flush=True)
    with harness.running_stack() as bench:
        os.environ.update({k: bench.env[k] for k in ("RATELIMIT_ENABLED", "SESSION_COOKIE_SECURE")})
        app = harness.make_app()
        harness.say(f"seeding {opts.rooms} open 1:1 sessions in {opts.orgs} organizations")
        t = time.perf_counter()
        seed = _seed(app, opts.rooms, opts.orgs)
        seed_seconds = time.perf_counter() - t

        web = bench.start_gunicorn("web", "wsgi:app", ready_path="/health/ready")
        harness.say(f"signing {len(seed['emails'])} participants in (the first through POST /login)")
        t = time.perf_counter()
        cookies = dict(zip(seed["emails"], chat._session_cookies(app, seed["emails"], seed["password"], web.port)))
        login_seconds = time.perf_counter() - t

        master = web.process.pid
        meter = harness.CpuMeter({"gunicorn": master, **bench.service_pids()})
        rooms = [Room(r["n"], web.port, r["slug"], r["session_id"], cookies[r["coach"]], cookies[r["athlete"]])
                 for r in seed["rooms"]]
        result = asyncio.run(_drive(rooms, opts, meter, ConnectionWatch(bench.app_conninfo()),
                                    lambda: chat._sockets_per_worker(web.port, chat._workers(master))))
        harness.stop_process(web.process)
        bench.servers.remove(web)
        log_problems = chat._log_problems(web.log_path)

        harness.say(f"the bare route: GET / of bench.baseline_app, {BARE_CLIENTS} clients")
        baseline = bench.start_gunicorn("baseline", "bench.baseline_app:app", ready_path="/")
        bare = harness.run_load(port=baseline.port, path="/", clients=BARE_CLIENTS,
                                meter={"server": baseline.process.pid})
        bare_cpu = harness.cpu_ms_per_request([bare], trees=("server",))

    # --- report ---
    # A room not set up (a refused handshake, a frame lost) counts as never: percentiles are over all rooms.
    setup_ms = sorted(v for r in rooms if (v := r.setup_ms("setup")) is not None)
    restart_ms = sorted(v for r in rooms if (v := r.setup_ms("restart")) is not None)
    never = [float("inf")] * (opts.rooms - len(setup_ms))
    setup_all, restart_all = setup_ms + never, restart_ms + [float("inf")] * (opts.rooms - len(restart_ms))
    handshake_ms = sorted(r.handshake_ms for r in rooms if r.handshake_ms is not None)
    sent = {s: sum(r.sent.get(s, 0) for r in rooms) for s in ("setup", "restart")}
    received = {s: sum(r.received.get(s, 0) for r in rooms) for s in ("setup", "restart")}
    lost = {s: sent[s] - received[s] for s in sent}
    frames, lost_all = sum(sent.values()), sum(lost.values())
    print()
    print(f"{opts.rooms} rooms (coach + athlete), seeded in {seed_seconds:.1f} s, {len(seed['emails'])} participants "
          f"signed in in {login_seconds:.1f} s; coaches in after {result['arrive']['seconds']:.1f} s "
          f"({HANDSHAKES_AT_ONCE} handshakes at a time); sockets per gunicorn worker once all were open: "
          f"{'/'.join(map(str, result['per_worker']))}; pongs {result['pongs'][0]} before setup, "
          f"{result['pongs'][1]} before the ICE restart")
    print()
    rows = []
    for name, label, values in (("setup", "setup (athlete's join -> both have all)", setup_ms),
                                ("restart", "ICE restart (offer -> both have all)", restart_ms)):
        everyone = setup_all if name == "setup" else restart_all
        rows.append([label, f"{len(values)}/{opts.rooms}", sent[name], received[name], lost[name],
                     harness.percentile(everyone, 50), harness.percentile(everyone, 95),
                     harness.percentile(everyone, 99), values[-1] if values else float("nan")])
    rows.append(["athlete's handshake (before the join)", f"{len(handshake_ms)}/{opts.rooms}", "", "", "",
                 harness.percentile(handshake_ms, 50), harness.percentile(handshake_ms, 95),
                 harness.percentile(handshake_ms, 99), handshake_ms[-1] if handshake_ms else float("nan")])
    harness.print_table(["stage", "rooms done", "relayed sent", "received", "lost", "p50 ms", "p95 ms", "p99 ms",
                         "max ms (done)"], rows)
    print("percentiles over all rooms: a room not done within the drain counts as inf")
    print()
    rows = []
    for name in ("setup", "restart"):
        stage = result[name]
        c = stage["cpu"]
        gunicorn_ms = _cpu_ms(stage, ("gunicorn",))
        total_ms = _cpu_ms(stage, ("gunicorn", "postgres", "valkey"))
        rows.append([name, f"{stage['seconds']:.1f}", "/".join(f"{s:.2f}" for s in c["processes"]["gunicorn"][:3]),
                     f"{c['cores'].get('postgres', 0.0):.2f}", f"{c['cores'].get('valkey', 0.0):.2f}",
                     f"{stage['client_cpu_s'] / stage['seconds']:.2f}", f"{c['others']:.2f}", f"{c['machine']:.2f}",
                     gunicorn_ms / max(1, sent[name]), total_ms / max(1, sent[name]),
                     gunicorn_ms / max(1, len(setup_ms if name == 'setup' else restart_ms))])
    harness.print_table(["stage (CPU, cores)", "seconds", "gunicorn (busiest)", "postgres", "valkey", "clients",
                         "others", "machine", "gunicorn ms/frame", "+pg+valkey ms/frame", "gunicorn ms/room"], rows)
    print(f"bare route GET / (bench.baseline_app, same gunicorn settings, {BARE_CLIENTS} clients, "
          f"{bare['seconds']:g} s): {bare['req_per_s']:,.0f} req/s, p95 {bare['p95_ms']:.1f} ms, "
          f"gunicorn {bare_cpu:.2f} CPU ms/req, others {bare['cpu']['others']:.2f} cores")
    for name in ("setup", "restart"):
        peak = result[name]["connections"]
        print(f"{name}: the app's PostgreSQL connections (pg_stat_activity every 0.5 s) at most {peak['open']} open, "
              f"{peak['active']} running a statement, {peak['idle_in_transaction']} idle in a transaction (the oldest "
              f"{peak['oldest_idle_transaction_s']:.1f} s); the pools allow {os.environ.get('WEB_CONCURRENCY', '2')} x "
              f"(DB_POOL_SIZE + DB_MAX_OVERFLOW)")
    print("ms/frame: CPU over the stage / relayed frames sent in it (setup also pays the athletes' handshakes and "
          "joins); 'clients' is this process; 'others' is CPU no process of this benchmark used.")
    misrouted = sum(r.misrouted for r in rooms)
    duplicates = sum(r.duplicates for r in rooms)
    kinds: dict[str, int] = {}
    errors: dict[str, int] = {}
    closed: dict[str, int] = {}
    for r in rooms:
        for p in (r.coach, r.athlete):
            for k, v in p.kinds.items():
                kinds[k] = kinds.get(k, 0) + v
            for k, v in p.error_codes.items():
                errors[k] = errors.get(k, 0) + v
            if p.closed and not p.closed.startswith("connection lost (CancelledError"):
                closed[p.closed] = closed.get(p.closed, 0) + 1
    failures = [r.failure for r in rooms if r.failure]
    print(f"\nframes received by kind: {dict(sorted(kinds.items()))}; misrouted {misrouted}, duplicates {duplicates}")
    if errors:
        print(f"error frames by code: {errors}")
    if failures:
        print(f"rooms that failed to start ({len(failures)}): {sorted(set(failures))[:5]}")
    if closed:
        print(f"sockets closed: {closed}")
    for line in log_problems:
        print(f"server log: {line[:200]}")
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} ({os.cpu_count()} cores)")
    p95 = harness.percentile(setup_all, 95)
    met = "met" if p95 < TARGET_SETUP_P95_MS and lost_all == 0 and len(setup_ms) == opts.rooms else "MISSED"
    print(f"\nsetup p95 {p95:.1f} ms (target < {TARGET_SETUP_P95_MS:.0f}), lost {lost_all} (target 0), "
          f"{len(setup_ms)}/{opts.rooms} rooms set up: {met}")
    restart_gunicorn = _cpu_ms(result["restart"], ("gunicorn",))
    return harness.key_values(rooms=opts.rooms, setup_p50_ms=harness.percentile(setup_all, 50), setup_p95_ms=p95,
                              lost=lost_all, frames=frames,
                              cpu_ms_per_frame=restart_gunicorn / max(1, sent["restart"]),
                              bare_cpu_ms_per_req=bare_cpu)


if __name__ == "__main__":
    print(run(__import__("sys").argv[1:]))
