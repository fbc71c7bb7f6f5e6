"""The room's signaling socket: ``/o/<slug>/sessions/<session_id>/room/socket`` (endpoint ``rooms.socket``).

The handshake is refused (403) unless it comes from the app's own pages, from a signed-in member who may enter
the room now (:func:`coach.rooms.access.check`). After it, every frame is checked again in its own short
transaction: a booking cancelled, a room ended or a window closed while the socket is open is told
``{"type": "closed", "reason": ...}`` on the next frame, and the socket closes (1008).

The protocol (JSON text frames) is in :mod:`coach.rooms.signaling` and docs/ARCHITECTURE.md. Frames go out
through Redis (:mod:`coach.rooms.relay`), so the two ends of a call may sit in different processes.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid

from flask import abort, current_app, g, request
from flask_login import current_user
from redis.exceptions import RedisError
from simple_websocket import ConnectionClosed
from sqlalchemy.exc import SQLAlchemyError

from coach import clock, tenancy
from coach.blueprints.rooms import bp
from coach.blueprints.sockets import decline_extensions, same_origin
from coach.chat.hub import Connection, hub_for
from coach.errors import DomainError
from coach.extensions import db, sock
from coach.orgs.models import Membership
from coach.rooms import access, attendance, ice, relay, service
from coach.rooms.access import AFTER, BEFORE, CANCELLED, RoomAccess
from coach.rooms.signaling import (
    FrameRate,
    LocalPeer,
    PeerTaken,
    RoomFull,
    Roster,
    SignalError,
    local_rooms,
    parse,
)

log = logging.getLogger(__name__)

# The receive loop wakes this often when nothing comes: simple-websocket wakes a waiting receive() for a frame
# over the size limit before it marks the socket closed, so the wait would otherwise last its whole timeout
# before the others are told "left".
POLL_SECONDS = 5
# The stay and the roster entry are refreshed by the page's ping (every 15 s; the stay's last_seen_at at most every
# SEEN_EVERY_SECONDS), and by the socket itself when no ping came for IDLE_SECONDS (an open socket is a page still
# there). Relayed frames refresh nothing: a burst of candidates writes nothing to PostgreSQL.
SEEN_EVERY_SECONDS = 10
IDLE_SECONDS = 20
# A socket's access check stands this long for the frames that follow, unless the room's window closes or who may
# be in the room changes meanwhile (a booking leaving it is published as a recheck; an end of the room, a session or
# a membership closes the socket at once). Checking PostgreSQL for each of a burst of candidates cost more than
# the rest of the relay together, and under load a pool timeout loses the frame (bench signaling).
RECHECK_SECONDS = 5.0
UNAVAILABLE = "The call's relay is unavailable for a moment. Try again in a few seconds."


def refusal(room: RoomAccess | None) -> str:
    """Why a member may not be in the room (now), in words for the page."""
    if room is None:
        return "This session is not available."
    if room.state == CANCELLED:
        return "This session was cancelled."
    if room.role is None:
        return "You are not booked on this session."
    if room.state == BEFORE:
        return "The room is not open yet."
    if room.state == AFTER:
        return "The session has ended." if room.ended_at is not None else "The room has closed."
    return "You cannot be in this room now."


@bp.before_request
def _guard_socket():
    if request.endpoint != "rooms.socket":
        return None
    if not same_origin(request.headers.get("Origin")):
        abort(403, "This connection must come from the app's own pages.")
    if not current_user.is_authenticated or g.get("membership") is None:
        abort(403)
    room = access.check(g.org.id, (request.view_args or {}).get("session_id"), g.membership.id)
    if room is None or not room.may_enter:
        abort(403, refusal(room))
    g.room_access = room
    decline_extensions()
    return None


@sock.route("/<session_id>/room/socket", bp=bp)
def socket(ws, session_id: str):
    """One room page's signaling channel."""
    # First: the server options' limit is chat's (16 KiB); an SDP with audio, video and a screen can pass it.
    ws.max_message_size = current_app.config["ROOM_MAX_FRAME_BYTES"]
    app = current_app._get_current_object()
    member = g.membership
    room_socket = RoomSocket(app, ws, g.org.id, g.room_access, member.id, member.user.display_name,
                             current_user.auth_session_id)
    db.session.remove()  # hold no connection while the socket is idle
    room_socket.run()


class _Closed(Exception):
    """The socket was closed while handling a frame: stop reading."""


class RoomSocket:
    """What one room socket may do, frame by frame (what reads or writes PostgreSQL does so in its own short
    transaction: no connection is held between frames or across Redis round trips)."""

    def __init__(self, app, ws, tenant_id: uuid.UUID, room: RoomAccess, member_id: uuid.UUID, name: str,
                 auth_session_id: uuid.UUID | None):
        self.app, self.ws = app, ws
        self.hub = hub_for(app)
        self.rooms = local_rooms(self.hub)
        self.tenant_id, self.session_id, self.member_id, self.name = tenant_id, room.session_id, member_id, name
        self.room = room
        self.config = app.config
        self.socket_id = uuid.uuid4().hex
        self.peer: str | None = None
        self.local: LocalPeer | None = None
        self.roster = Roster(tenant_id, room.session_id)
        self.rate = FrameRate(int(self.config["ROOM_FRAMES_PER_10S"]))
        self.lock = threading.Lock()  # one writer at a time: this handler and the hub's listener both send
        self.closed = False
        self.seen_at = time.monotonic()
        self.checked_at = time.monotonic()  # when self.room was last read: the handshake's reading, just now
        self.warned_at = 0.0
        # Registered with the chat hub (sends nothing: chat's pushes are HTML) so that a session's end or a
        # membership's removal closes this socket too.
        self.conn = Connection(lambda _html: None, tenant_id, member_id, session_id=auth_session_id,
                               close=self._closed_by_hub)

    # --- the socket ------------------------------------------------------------------------------------

    def send(self, message) -> None:
        """Send one frame (a dict, or JSON already made); nothing once closed."""
        if self.closed:
            return
        data = message if isinstance(message, str) else _json(message)
        with self.lock:
            try:
                self.ws.send(data)
            except (ConnectionClosed, OSError):
                self.closed = True

    def close(self, code: int, reason: str) -> None:
        """Close the socket (from any thread); the handler's loop stops."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            try:
                self.ws.close(reason=code, message=reason)
            except (ConnectionClosed, OSError):
                pass
        self.ws.event.set()  # wake receive()

    def _closed_by_hub(self, code: int, reason: str) -> None:
        self.send({"type": "closed", "reason": reason})
        self.close(code, reason)

    def run(self) -> None:
        self.hub.register(self.conn)
        try:
            while not self.closed:
                frame = self.ws.receive(timeout=POLL_SECONDS)
                if self.closed or not self.ws.connected and frame is None:
                    break
                if frame is not None:
                    self.handle(frame)
                elif time.monotonic() - self.seen_at >= IDLE_SECONDS:
                    self.idle()
        except (ConnectionClosed, _Closed):
            pass
        finally:
            self.finish()

    # --- frames ----------------------------------------------------------------------------------------

    def handle(self, frame) -> None:
        rate = self.rate.hit()
        if rate != FrameRate.OK:
            return self._too_fast(rate)
        try:
            message = parse(frame, int(self.config["ROOM_MAX_FRAME_BYTES"]))
        except SignalError as exc:
            return self.send(exc.frame())
        handler = getattr(self, f"on_{message['type']}")
        try:
            self._check()
            if message["type"] != "join" and self.peer is None:
                raise SignalError("not_joined", "Join the room first.")
            handler(message)
        except SignalError as exc:
            self.send(exc.frame())
        except _Closed:
            raise
        except (RedisError, SQLAlchemyError) as exc:  # Redis or PostgreSQL away, the pool exhausted: try again
            log.warning("a room frame (%s) was not handled: %s", message["type"], exc)
            self.send({"type": "error", "code": "unavailable", "message": UNAVAILABLE})
        except Exception:
            log.exception("a room frame (%s) failed", message["type"])
            self.send({"type": "error", "code": "unavailable", "message": UNAVAILABLE})
        finally:
            _end_transaction()
        return None

    def _too_fast(self, rate: str) -> None:
        if rate == FrameRate.FLOOD:
            self.send({"type": "error", "code": "too_fast", "message": "Too many messages: the connection is closed."})
            self.close(1008, "Too many messages.")
            raise _Closed()
        now = time.monotonic()
        if now - self.warned_at >= 1:  # one warning a second, not one per dropped frame
            self.warned_at = now
            self.send({"type": "error", "code": "too_fast",
                       "message": "Messages are coming too fast; some were dropped."})

    def _check(self, force: bool = False) -> RoomAccess:
        """The member may still be in the room, else ``closed`` and the socket ends. Read again (one statement)
        unless the last reading stands (:data:`RECHECK_SECONDS`); ``force``: read again."""
        now = time.monotonic()
        local = self.local
        if not force and not (local is not None and local.recheck) and now - self.checked_at < RECHECK_SECONDS \
                and clock.now() < self.room.closes_at:
            return self.room
        if local is not None:
            local.recheck = False
        tenancy.activate(self.tenant_id, self.member_id)
        try:
            room = access.check(self.tenant_id, self.session_id, self.member_id)
        finally:
            # The connection goes back to the pool at once: a relayed frame's Redis round trips must not hold
            # one (a burst of candidates on a hundred sockets would take the whole pool).
            _end_transaction()
        if room is None or not room.may_enter:
            reason = refusal(room)
            self.send({"type": "closed", "reason": reason})
            self.close(1008, reason)
            raise _Closed()
        self.room, self.checked_at = room, now
        return room

    def _publish(self, message: dict, to_peer: str | None = None) -> None:
        if not relay.publish(self.tenant_id, self.session_id, message, to_peer=to_peer, from_peer=self.peer):
            raise SignalError("unavailable", UNAVAILABLE)

    def on_join(self, message: dict) -> None:
        if self.peer is not None:
            raise SignalError("already_joined", "This connection has joined the room already.")
        peer, room, max_peers = message["peer"], self.room, int(self.config["ROOM_MAX_PARTICIPANTS"])
        # A process's first socket: the hub's subscription may still be starting, and the welcome promises that
        # what others send from now on arrives.
        self.hub.connected.wait(timeout=2)
        try:
            again, others = self.roster.enter(peer, self.socket_id, str(self.member_id), self.name, room.role,
                                              max_peers)
        except RoomFull:
            self.send({"type": "full"})
            self.close(1008, "The room is full.")
            raise _Closed() from None
        except PeerTaken:
            raise SignalError("peer_taken", "That peer id belongs to someone else in this room.") from None
        try:
            stay = attendance.join(self.tenant_id, self.session_id, self.member_id, uuid.UUID(peer), room.role,
                                   clock.now())
            if stay is None:
                raise SignalError("peer_taken", "That peer id belongs to someone else in this room.")
            db.session.commit()
        except BaseException:
            _end_transaction()
            self.roster.leave(peer, self.socket_id)
            raise
        _end_transaction()
        self.peer = peer
        self.local = LocalPeer(str(self.tenant_id), str(self.session_id), peer, self.socket_id, self.send,
                               self.close)
        old = self.rooms.add(self.local)
        if old is not None:  # the same page's previous socket, in this process
            old.replaced = True
            old.close(1000, "This room was opened again on another connection.")
        if again:  # ... or in another process
            self._publish({"type": "replaced", "socket": self.socket_id}, to_peer=peer)
        # Before the welcome: the newcomer's offers (after it) must not reach a peer before the news of it.
        self._publish({"type": "joined", "peer": peer, "member": str(self.member_id), "name": self.name,
                       "role": room.role})
        self.send({"type": "welcome", "peer": peer, "peers": others,
                   "ice_servers": ice.ice_servers(self.member_id), "max": max_peers})

    def _relay_to(self, message: dict) -> None:
        to = message.pop("to")
        if to == self.peer:
            raise SignalError("unknown_peer", "That peer is not in this room.")
        message["from"] = self.peer
        channel, data = relay.encoded(self.tenant_id, self.session_id, message, to_peer=to, from_peer=self.peer)
        if not self.roster.relay_to(to, channel, data):
            raise SignalError("unknown_peer", "That peer is not in this room.")

    on_offer = on_answer = on_candidate = _relay_to

    def on_state(self, message: dict) -> None:
        state = {k: message[k] for k in ("audio", "video", "screen")}
        self._touch(state)
        self._publish({"type": "state", "from": self.peer, **state})

    def on_ping(self, message: dict) -> None:
        self._seen()
        self.send({"type": "pong"})

    def on_leave(self, message: dict) -> None:
        self._leave("leave")
        self.close(1000, "You left the room.")
        raise _Closed()

    def on_end(self, message: dict) -> None:
        self._check(force=True)
        if not self.room.is_coach:
            raise SignalError("not_allowed", "Only the coach can end the session for everyone.")
        actor = db.session.get(Membership, self.member_id)
        try:
            service.end_room(self.room, actor)
        except DomainError as exc:
            raise SignalError("not_allowed", str(exc)) from None
        db.session.commit()  # publishes "ended": every socket of the room, here and elsewhere, is told and closed

    # --- liveness --------------------------------------------------------------------------------------

    def _seen(self) -> None:
        """Keep the roster entry (and, at most every 10 s, the stay) fresh; needs the tenant active."""
        if self.peer is None:
            return
        self._touch()
        now = time.monotonic()
        if now - self.seen_at >= SEEN_EVERY_SECONDS:
            self.seen_at = now
            attendance.seen(self.tenant_id, self.session_id, uuid.UUID(self.peer), clock.now())
            db.session.commit()

    def _touch(self, state: dict | None = None) -> None:
        """Refresh this peer's roster entry; put it back if the roster lost it (Redis restarted, say) while the
        socket lived, so newcomers see the peer and frames can be addressed to it."""
        if self.roster.touch(self.peer, self.socket_id, state) is None:
            try:
                self.roster.enter(self.peer, self.socket_id, str(self.member_id), self.name, self.room.role,
                                  int(self.config["ROOM_MAX_PARTICIPANTS"]))
                if state is not None:
                    self.roster.touch(self.peer, self.socket_id, state)
            except (RoomFull, PeerTaken):
                log.warning("a room socket's peer could not be put back in the roster")

    def idle(self) -> None:
        """Nothing came for a while: the socket is open, so the page is still there."""
        if self.peer is None:
            return
        try:
            tenancy.activate(self.tenant_id, self.member_id)
            self._seen()
        except (RedisError, SQLAlchemyError) as exc:
            log.warning("a room socket's stay was not refreshed: %s", exc)
        finally:
            _end_transaction()

    def _leave(self, reason: str = "lost") -> None:
        """End this socket's stay: others are told ``left`` (once, by whichever socket held the peer), with
        ``reason`` "leave" (the page left) or "lost" (the socket closed or was closed)."""
        peer, self.peer = self.peer, None
        if peer is None or (self.local is not None and self.local.replaced):
            return
        try:
            held = self.roster.leave(peer, self.socket_id)
        except RedisError:
            held = True  # cannot tell: the stay ends (a newer socket's ping re-opens nothing, its join did)
        if not held:
            return  # a newer socket of the same page holds the peer
        try:
            tenancy.activate(self.tenant_id, self.member_id)
            attendance.leave(self.tenant_id, self.session_id, uuid.UUID(peer), clock.now())
            db.session.commit()
        finally:  # the stay is written first (a page told "left" finds it ended), and the others are told anyway
            relay.publish(self.tenant_id, self.session_id, {"type": "left", "peer": peer, "reason": reason},
                          from_peer=peer)

    def finish(self) -> None:
        self.closed = True
        self.hub.unregister(self.conn)
        if self.local is not None:
            self.rooms.remove(self.local)
        try:
            self._leave()
        except Exception:
            log.exception("a room socket's stay could not be closed (the sweep will close it)")
        finally:
            _end_transaction()


def _end_transaction() -> None:
    """Roll back whatever is open (a frame's writes commit themselves) and give the connection back to the pool."""
    try:
        db.session.remove()
    except SQLAlchemyError:  # the connection broke: it is discarded
        pass


def _json(message: dict) -> str:
    return json.dumps(message, separators=(",", ":"))
