"""Chat: my conversations, a conversation's history (plain pages and forms without JavaScript),
and the WebSocket that makes it live.

The socket (``/o/<slug>/chat/socket``) is opened by every page of an organization (htmx's ws
extension on ``<body>``): it carries new messages, typing, presence, read receipts and the
unread badge. Frames from the browser are JSON: the chat form as the ws extension sends it
(``type=send``, with the message's ``client_id``), and small control frames from
``static/js/chat.js`` (``view``: the conversations the page shows, after every page change;
``resume``, ``typing``, ``read``, ``ping``).
"""
from __future__ import annotations

import json
import time
import uuid

from flask import abort, current_app, g, render_template, request, url_for
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from simple_websocket import ConnectionClosed

from coach import tenancy
from coach.blueprints.chat import bp
from coach.blueprints.chat.forms import MemberSearchForm, MessageForm, StartForm
from coach.blueprints.forms import attempt, org_path
from coach.blueprints.sockets import same_origin
from coach.chat import realtime
from coach.chat import render as messages_html
from coach.chat import service
from coach.chat.hub import Connection, hub_for
from coach.chat.service import ChatError
from coach.extensions import db, sock
from coach.htmx import fragment_block, redirect_after_post, render
from coach.ids import parse_uuid
from coach.media import service as media_service
from coach.media.service import MediaError
from coach.orgs import service as orgs
from coach.orgs.models import Membership
from coach.spaces import service as spaces
from coach.tenancy import role_required

# --- loaders ---------------------------------------------------------------------------------------

def load_conversation(conversation_id: str):
    conversation = service.get_conversation(g.org, conversation_id)
    if conversation is None:
        abort(404)
    acc = service.access(conversation, g.membership)
    if not acc.read:
        abort(404)  # not yours: as if it did not exist
    return conversation, acc


def load_message(conversation, message_id: str):
    message = service.get_message(conversation, message_id)
    if message is None:
        abort(404)
    return message


def _announce(conversation, message, kind: str = "message") -> None:
    realtime.publish(conversation.tenant_id, {
        "type": kind, "tenant_id": str(conversation.tenant_id), "conversation_id": str(conversation.id),
        "message_id": str(message.id), "seq": message.seq})


def _title(conversation, acc) -> tuple[str, Membership | None]:
    if conversation.kind == "direct":
        other = db.session.get(Membership, conversation.other_member_id(g.membership.id))
        return (other.user.display_name if other else "Former member"), other
    return f"# {acc.space.name}", None


# --- pages -----------------------------------------------------------------------------------------

@bp.get("")
@role_required()
def index():
    """My conversations, most recent first, with what I have not read; find someone to write to (``?q=``)."""
    search = MemberSearchForm(request.args)
    status = 200 if search.validate() else 422
    found, more = service.members_to_write(g.org, g.membership, search.q.data if status == 200 else "")
    context = dict(org=g.org, search=search, found=found, more=more)
    if fragment_block("chat/index.html", "members"):  # htmx's active search: the list only
        return render("chat/index.html", "members", status=status, **context)
    summaries = service.conversations_for(g.org, g.membership)
    # Presence of the people my conversations are with (the dots the list shows), not of every member.
    presence, live = realtime.live_presence(g.org.id, [s.other.id for s in summaries if s.other is not None])
    return render("chat/index.html", status=status, summaries=summaries, presence=presence, live=live, **context)


@bp.post("/direct")
@role_required()
def start():
    """Open (or make) my direct conversation with a member."""
    form = StartForm()
    other = orgs.get_membership(g.org, _uuid_or_404(form.member.data))
    if other is None:
        abort(404)
    conversation = service.direct_with(g.org, g.membership, other)
    db.session.commit()
    return redirect_after_post(url_for("chat.conversation", conversation_id=conversation.id))


@bp.get("/spaces/<space_id>")
@role_required()
def space_channel(space_id: str):
    """A space's channel (members of the space only)."""
    space = spaces.get_space(g.org, space_id)
    if space is None or not spaces.access(space, g.membership).joined:
        abort(404)
    conversation = service.space_channel(space)
    db.session.commit()
    return redirect_after_post(url_for("chat.conversation", conversation_id=conversation.id))


def _uuid_or_404(value):
    ident = parse_uuid(value)
    if ident is None:
        abort(404)
    return ident


def _before() -> int | None:
    """The page's ``?before=`` message number; a number past a bigint (a tampered link) reads as the newest page."""
    before = request.args.get("before", type=int)
    return before if before and 0 < before < 2 ** 63 else None


def _page_context(conversation, acc, form=None, reads: dict | None = None) -> dict:
    before = _before()
    rows = service.history_rows(conversation, before_seq=before)
    title, other = _title(conversation, acc)
    if reads is None:
        reads = service.reads_of(conversation, [g.membership.id, other.id if other is not None else None])
    # "Seen" speaks of my newest message: only when the newest message is mine and they read up to it.
    newest = rows[-1] if rows and not before else None
    seen = (other is not None and newest is not None and newest.author_id == g.membership.id
            and reads.get(other.id, 0) >= newest.seq)
    presence, live = realtime.live_presence(g.org.id, [other.id] if other is not None else [])
    # Each message's markup is cached by its version; links come from the conversation's URL, not url_for per message.
    articles = messages_html.articles(
        rows, base=url_for("chat.conversation", conversation_id=conversation.id), mine_id=g.membership.id,
        tz=current_user.timezone or "UTC", hour_cycle=current_user.hour_cycle or 24, csrf=generate_csrf(),
        attachments=service.attachments_of(g.org.id, [r.id for r in rows if r.has_media]))
    return dict(org=g.org, conversation=conversation, acc=acc, messages=rows, articles=articles, title=title,
                other=other, form=form or MessageForm(formdata=None), before=before, seen=seen,
                presence=presence, live=live,
                attachable=media_service.attachable(g.org, g.membership) if acc.write else [])


@bp.get("/<conversation_id>")
@role_required()
def conversation(conversation_id: str):
    """The newest messages (older ones page by ``?before=``), and the form to write."""
    conversation, acc = load_conversation(conversation_id)
    if _before() is not None or not conversation.last_seq:
        return render("chat/conversation.html", **_page_context(conversation, acc))
    # Read to the end, in this transaction: the page (its unread badge too) shows it read; committed after
    # rendering, so nothing loaded is expired and read again.
    reads, moved = service.read_to_end(conversation, g.membership, conversation.other_member_id(g.membership.id))
    response = render("chat/conversation.html", **_page_context(conversation, acc, reads=reads))
    announced = (conversation.tenant_id, conversation.id, conversation.last_seq, conversation.kind, g.membership.id)
    db.session.commit()  # (expires what the page loaded: read before it)
    if moved:
        _announce_read(*announced)
    return response


def _announce_read(tenant_id, conversation_id, last_seq: int, kind: str, member_id) -> None:
    """My other pages clear the conversation's badge; in a direct conversation the other member sees "Seen"."""
    realtime.publish(tenant_id, {
        "type": "read", "tenant_id": str(tenant_id), "conversation_id": str(conversation_id),
        "member_id": str(member_id), "seq": last_seq, "last_seq": last_seq, "direct": kind == "direct"})


@bp.post("/<conversation_id>/messages")
@role_required()
def send(conversation_id: str):
    """Send a message (the form without JavaScript; with it, the socket carries the form)."""
    conversation, acc = load_conversation(conversation_id)
    form = MessageForm()
    sent = form.validate_on_submit() and attempt(form, _send_form, conversation, form)
    if sent:
        db.session.commit()
        _announce(conversation, sent.value)
        # A composer on another page of the organization (a session room's panel) comes back to that page.
        back = request.form.get("next")
        return redirect_after_post(back if org_path(back, g.org.slug) else
                                   url_for("chat.conversation", conversation_id=conversation.id) + "#composer")
    return render("chat/conversation.html", "composer", status=422, **_page_context(conversation, acc, form))


def _send_form(conversation, form: MessageForm):
    if not realtime.allow_send(g.org.id, g.membership.id):  # the socket's limit: one budget per member
        raise ChatError(TOO_FAST)
    attachments = media_service.for_attachment(g.org, g.membership, request.form.getlist("attachments"))
    return service.send(conversation, g.membership, form.body.data, attachments=attachments,
                        client_id=parse_uuid(form.client_id.data))


@bp.route("/<conversation_id>/messages/<message_id>/edit", methods=["GET", "POST"])
@role_required()
def edit(conversation_id: str, message_id: str):
    """Change my message within ten minutes of sending it."""
    conversation, acc = load_conversation(conversation_id)
    message = load_message(conversation, message_id)
    form = MessageForm(obj=message) if request.method == "GET" else MessageForm()
    if request.method == "POST" and form.validate_on_submit() and attempt(form, service.edit, message, g.membership,
                                                                          form.body.data):
        db.session.commit()
        _announce(conversation, message, "changed")
        return redirect_after_post(url_for("chat.conversation", conversation_id=conversation.id) + f"#msg-{message.id}")
    if not service.can_edit(message, g.membership):
        abort(403, "Messages can be edited by their author for ten minutes.")
    return render("chat/edit.html", "form", status=422 if form.errors else 200, org=g.org,
                  conversation=conversation, message=message, form=form)


@bp.post("/<conversation_id>/messages/<message_id>/delete")
@role_required()
def delete(conversation_id: str, message_id: str):
    """Delete my message: "message deleted" stays in its place."""
    conversation, acc = load_conversation(conversation_id)
    message = load_message(conversation, message_id)
    service.delete(message, g.membership)
    db.session.commit()
    _announce(conversation, message, "changed")
    return redirect_after_post(url_for("chat.conversation", conversation_id=conversation.id) + f"#msg-{message.id}")


# --- the socket ------------------------------------------------------------------------------------

@bp.before_request
def _guard_socket():
    if request.endpoint != "chat.socket":
        return None
    if not same_origin(request.headers.get("Origin")):
        abort(403, "This connection must come from the app's own pages.")
    if not current_user.is_authenticated or g.get("membership") is None:
        abort(403)
    # No permessage-deflate, whatever the browser offers: simple-websocket would then compress every
    # frame once per socket (a message to 1,000 sockets, 1,000 compressions) and keep a compressor of
    # about 100 KB per socket, to save a few hundred bytes of small HTML fragments.
    request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
    return None


@sock.route("/socket", bp=bp)
def socket(ws):
    """The live channel of one page: replay, new messages, typing, presence, receipts, badges."""
    app = current_app._get_current_object()
    hub = hub_for(app)
    org, member = g.org, g.membership
    conn = Connection(ws.send, org.id, member.id, member.user.timezone or "UTC",
                      session_id=current_user.auth_session_id, close=_closer(ws), write=_writer(ws),
                      hour_cycle=member.user.hour_cycle or 24)
    hub.register(conn)
    session = _SocketSession(app, hub, conn, org.id, member.id, member.user.display_name)
    db.session.remove()  # hold no connection while the socket is idle
    try:
        session.hello()
        db.session.remove()  # the greeting's queries must not pin a pooled connection to an idle socket
        while True:
            frame = ws.receive(timeout=20)
            if frame is None:
                session.heartbeat()
                continue
            session.handle(frame)
    except ConnectionClosed:
        pass
    finally:
        hub.unregister(conn)
        with hub.presence_turn(conn.member_id):
            if not hub.connections_of(conn.member_id):
                # This process held the member's last socket: show them offline now, not in a minute
                # (a socket on another process puts them back with its next heartbeat).
                realtime.clear_presence(conn.tenant_id, conn.member_id)
                realtime.publish(conn.tenant_id, {"type": "presence", "tenant_id": str(conn.tenant_id),
                                                  "member_id": str(conn.member_id), "state": "offline"})
            elif conn.state == "online":
                session.heartbeat("away")  # their other pages here may all be hidden: online only if one is not
        db.session.remove()


def _writer(ws):
    """Write a message framed once for every socket (the hub's pushes) to ``ws`` as it is: the same bytes
    ``ws.send`` would make, since ``_guard_socket`` declines every extension, without framing them again
    for each of a thousand sockets."""
    def write(data: bytes) -> None:
        if not ws.connected:
            raise ConnectionClosed(ws.close_reason, ws.close_message)
        ws.sock.sendall(data)
    return write


def _closer(ws):
    """Close ``ws`` from another thread (the hub's, when the session or the membership ends)."""
    def close(code: int, reason: str) -> None:
        try:
            ws.close(reason=code, message=reason)
        except ConnectionClosed:
            pass
        # The handler may be waiting in receive() for up to 20 s: wake it, and it finds the socket closed.
        ws.event.set()
    return close


UNREADABLE = "The app could not read that. Reload the page if this goes on."
TOO_FAST = "You are sending messages very fast. Wait a few seconds."
UNAVAILABLE = "That conversation is not available."
# A page shows one conversation today; a few more (a side panel, say) are fine, hundreds are not.
VIEW_MAX = 20


def _seq(value) -> int:
    """A message number from a frame (``after``, ``seq``): a whole number, at least 0, within a bigint."""
    try:
        seq = max(0, int(value or 0))
    except (TypeError, ValueError, OverflowError):  # OverflowError: JSON's 1e999 is infinity
        raise ChatError(UNREADABLE) from None
    if seq >= 2 ** 63:
        raise ChatError(UNREADABLE)
    return seq


class _SocketSession:
    """What one socket may do, frame by frame; each frame runs in its own short transaction."""

    def __init__(self, app, hub, conn: Connection, tenant_id: uuid.UUID, member_id: uuid.UUID, name: str):
        self.app, self.hub, self.conn = app, hub, conn
        self.tenant_id, self.member_id, self.name = tenant_id, member_id, name
        self.typing_at = 0.0
        self.state = "online"

    def _member(self) -> Membership:
        tenancy.activate(self.tenant_id, self.member_id)
        member = db.session.get(Membership, self.member_id)
        if member is None:
            raise ConnectionClosed(1008, "no longer a member")
        return member

    def hello(self) -> None:
        self.heartbeat()
        self.hub.send_unread(self.conn)

    def heartbeat(self, state: str | None = None) -> None:
        with self.hub.presence_turn(self.member_id):  # worked out, stored and told as one step
            self.state = self.conn.state = state if state in realtime.STATES else self.state
            shown = self.hub.presence_of(self.member_id, self.state)
            previous = realtime.set_presence(self.tenant_id, self.member_id, shown)
            if previous != shown:
                realtime.publish(self.tenant_id, {"type": "presence", "tenant_id": str(self.tenant_id),
                                                  "member_id": str(self.member_id), "state": shown})

    def error(self, message: str) -> None:
        self.conn.send(render_template("chat/_error.html", message=message))

    def handle(self, frame) -> None:
        try:
            data = json.loads(frame)
        except (TypeError, ValueError, RecursionError):  # RecursionError: "[[[[..." nested past the stack
            return self.error(UNREADABLE)
        if not isinstance(data, dict):
            return self.error(UNREADABLE)
        kind = data.get("type")
        handler = {"send": self.send, "view": self.view, "resume": self.resume, "typing": self.typing,
                   "read": self.read, "ping": self.ping}.get(kind) if isinstance(kind, str) else None
        if handler is None:
            return self.error("Unknown request.")
        try:
            handler(data)
            db.session.commit()
        except ChatError as exc:
            db.session.rollback()
            self.error(str(exc))
        finally:
            db.session.remove()

    def _conversation(self, data: dict, member: Membership):
        conversation = service.get_conversation(member.organization, data.get("conversation"))
        if conversation is None or not service.access(conversation, member).read:
            raise ChatError(UNAVAILABLE)
        return conversation

    def send(self, data: dict) -> None:
        # Per member, in Redis: a second tab (or process) does not double what one member may send.
        if not realtime.allow_send(self.tenant_id, self.member_id):
            raise ChatError(TOO_FAST)
        member = self._member()
        # What the member may do here is the service's to check (once): a conversation that is not theirs
        # reads as unavailable, as for every other frame.
        conversation = service.get_conversation(member.organization, data.get("conversation"))
        if conversation is None:
            raise ChatError(UNAVAILABLE)
        body = data.get("body") or ""
        if not isinstance(body, str):
            raise ChatError(UNREADABLE)
        client_id = data.get("client_id")
        if client_id is not None:
            client_id = parse_uuid(client_id) if isinstance(client_id, str) else None
            if client_id is None:
                raise ChatError(UNREADABLE)
        ids = data.get("attachments") or []
        ids = [ids] if isinstance(ids, str) else ids  # one checked box comes as a string, several as a list
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ChatError(UNREADABLE)
        try:
            attachments = media_service.for_attachment(member.organization, member, ids)
        except MediaError as exc:
            raise ChatError(str(exc)) from None
        # A repeated client id (sent again after a reconnect) gets the stored message back: announcing
        # it again only tells pages what they have or will fetch, so it is not worth telling apart.
        try:
            message = service.send(conversation, member, body, attachments=attachments, client_id=client_id)
        except service.NotYours:
            raise ChatError(UNAVAILABLE) from None
        # Kept as loaded: the commit would expire them, and reading them back costs two statements.
        db.session.expunge(message)
        db.session.expunge(conversation)
        db.session.commit()
        _announce(conversation, message)
        # The sender's own page gets it at once, Redis or not (the hub's copy is then dropped as known).
        # A page that did not follow the conversation gets its message, not the conversation's history.
        if conversation.id not in self.conn.last_seq:
            self.hub.follow(self.conn, conversation.id, message.seq - 1)
        self.hub.catch_up(self.conn, conversation)

    def view(self, data: dict) -> None:
        """The page (after a navigation, or on a new socket) shows these conversations, each up to its
        ``after``, and no others: follow them, and stop following the rest, whose messages then count
        in the page's unread badge. ``{"type": "view", "conversations": [{"conversation": id,
        "after": seq}, ...]}``; an empty list for a page without a conversation. With ``"presence": true`` the
        presence of the members the page shows comes too: chat.js asks with every view, since presence
        travels only on changes, and a change between the page's render (or a lost connection) and this
        frame reached no socket of the page."""
        items = data.get("conversations")
        if not isinstance(items, list) or len(items) > VIEW_MAX or not all(isinstance(i, dict) for i in items):
            raise ChatError(UNREADABLE)
        wanted = [(item.get("conversation"), _seq(item.get("after"))) for item in items]
        member = self._member()
        # The page may follow a change of zone or clock (the profile's form, the week's toggle) the socket
        # outlived: its pushes show times as the page does (the user row comes with the membership).
        self.conn.set_clock(member.user.timezone or "UTC", member.user.hour_cycle or 24)
        shown, unavailable = {}, False
        for conversation_id, after in wanted:
            conversation = service.get_conversation(member.organization, conversation_id)
            if conversation is None or not service.access(conversation, member).read:
                unavailable = True  # left the space meanwhile, say: the page shows it, the socket does not
                continue
            shown[conversation.id] = (conversation, after)
        with self.conn.lock:
            followed = list(self.conn.last_seq)
        for conversation_id in followed:
            if conversation_id not in shown:
                self.hub.unfollow(self.conn, conversation_id)
        for conversation, after in shown.values():
            self._show(conversation, after, member)
        if data.get("presence") is True:
            # What is true now, for dots drawn before the socket followed them (at render, or before a
            # lost connection greyed them): the changes meanwhile did not reach this page.
            # Read and sent holding the page's lock: a change published after the read waits for it and
            # lands after it, so an older state never overwrites a newer one on the page.
            watched = [w for c, _ in shown.values() if (w := c.other_member_id(member.id)) is not None]
            with self.conn.lock:
                for member_id, state in realtime.presence_of(self.tenant_id, watched).items():
                    self.conn.send(render_template("chat/_presence.html", member_id=member_id, state=state))
        if unavailable:
            raise ChatError(UNAVAILABLE)

    def resume(self, data: dict) -> None:
        """The page shows this conversation up to ``after``: send what it lacks, then follow it."""
        member = self._member()
        self._show(self._conversation(data, member), _seq(data.get("after")), member)

    def _show(self, conversation, after: int, member: Membership) -> None:
        # The page's position first, then the hub's push: a push in between would send what the page has.
        with self.conn.lock:
            self.conn.last_seq[conversation.id] = after
        self.hub.follow(self.conn, conversation.id, after, watch=conversation.other_member_id(member.id))
        self.hub.catch_up(self.conn, conversation)

    def typing(self, data: dict) -> None:
        now = time.monotonic()
        if now - self.typing_at < 2:
            return  # at most one typing signal per two seconds
        self.typing_at = now
        member = self._member()
        conversation = self._conversation(data, member)
        realtime.publish(self.tenant_id, {"type": "typing", "tenant_id": str(self.tenant_id),
                                          "conversation_id": str(conversation.id),
                                          "member_id": str(self.member_id), "name": self.name})

    def read(self, data: dict) -> None:
        member = self._member()
        conversation = self._conversation(data, member)
        in_force = service.mark_read(conversation, member, _seq(data.get("seq")))
        db.session.commit()
        realtime.publish(self.tenant_id, {
            "type": "read", "tenant_id": str(self.tenant_id), "conversation_id": str(conversation.id),
            "member_id": str(self.member_id), "seq": in_force, "last_seq": conversation.last_seq,
            "direct": conversation.kind == "direct"})

    def ping(self, data: dict) -> None:
        self.heartbeat(data.get("state"))

