"""Chat: direct conversations and space channels, messages numbered per conversation, read state.

Services never commit; the caller commits, then calls :func:`coach.chat.realtime.publish` so
web processes push the change to open sockets. The database is the record: a message is
stored before anyone is told of it, and a client that missed a push asks for everything
after the last ``seq`` it has (:func:`messages_after`).

Who may do what: a direct conversation is its two members'; a space's channel is for the
members of the space (joined, and not suspended to write). Authors edit their messages for
:data:`EDIT_WINDOW_MINUTES` and delete them at any time (a tombstone stays in the history).
"""
from __future__ import annotations

import uuid
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import cache
from datetime import datetime, timedelta
from typing import NamedTuple

from blinker import Namespace
from sqlalchemy import and_, bindparam, exists, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from coach import clock
from coach.chat.events import CHAT_MESSAGE
from coach.chat.models import BODY_MAX, EDIT_WINDOW_MINUTES, Conversation, ConversationRead, Message, MessageAttachment
from coach.dbutil import insert_or_raise
from coach.errors import DomainError
from coach.extensions import db
from coach.ids import parse_uuid
from coach.media import service as media_service
from coach.media.models import MediaItem
from coach.accounts.models import User
from coach.orgs.models import ADMIN, COACH, Membership, Organization
from coach.platform.outbox import emit
from coach.spaces import service as spaces_service
from coach.spaces.models import Space, SpaceMember

HISTORY_PAGE = 50
REPLAY_MAX = 500


class ChatError(DomainError):
    """A request that cannot be carried out; the message is safe to show. HTTP 422 unless ``status`` says."""

    status = 422


class NotAllowed(ChatError):
    status = 403


class NotYours(NotAllowed):
    """The conversation is not the member's to read at all (to a page: as if it did not exist)."""


_signals = Namespace()

# Sent by :func:`mark_read` when a member has read a conversation to its end, with ``member`` and ``now``
# (``None``: the clock's). For what a higher layer keeps about a conversation (notifications marks its
# "new messages" notification read): chat does not know who listens.
conversation_read = _signals.signal("conversation-read")


# --- conversations --------------------------------------------------------------------------------

def get_conversation(org: Organization, conversation_id) -> Conversation | None:
    conversation_id = parse_uuid(conversation_id)
    if conversation_id is None:
        return None
    return db.session.scalar(select(Conversation).where(Conversation.tenant_id == org.id,
                                                        Conversation.id == conversation_id))


@dataclass
class Access:
    read: bool
    write: bool
    # A channel's space, as loaded to decide (its page shows its name); not part of what the member may do.
    space: Space | None = field(default=None, compare=False)


def access(conversation: Conversation, member: Membership, now: datetime | None = None) -> Access:
    """What ``member`` may do in ``conversation``; nothing at all for strangers (their 404)."""
    if conversation.tenant_id != member.tenant_id:
        return Access(False, False)
    if conversation.kind == "direct":
        mine = member.id in (conversation.member_low_id, conversation.member_high_id)
        return Access(mine, mine)
    space = conversation.space
    if space is None:
        return Access(False, False)
    acc = spaces_service.access(space, member, now=now)
    return Access(acc.joined, acc.comment, space)


def direct_with(org: Organization, me: Membership, other: Membership) -> Conversation:
    """The one conversation between two members of the organization (made on first use)."""
    if other.tenant_id != org.id or me.tenant_id != org.id:
        raise NotAllowed("You can only write to members of this organization.")
    if other.id == me.id:
        raise ChatError("Choose someone other than yourself.")
    low, high = sorted((me.id, other.id))  # UUIDs order as PostgreSQL orders them (by their bytes)
    query = select(Conversation).where(Conversation.tenant_id == org.id, Conversation.member_low_id == low,
                                       Conversation.member_high_id == high)
    found = db.session.scalar(query)
    if found is not None:
        return found
    conversation = Conversation(id=uuid.uuid4(), tenant_id=org.id, kind="direct", member_low_id=low,
                                member_high_id=high, last_seq=0)
    try:
        insert_or_raise(conversation, LookupError())
    except LookupError:
        return db.session.scalar(query)  # the other side opened it at the same moment
    return conversation


def space_channel(space) -> Conversation:
    """The channel of a space (made on first use)."""
    query = select(Conversation).where(Conversation.tenant_id == space.tenant_id, Conversation.space_id == space.id)
    found = db.session.scalar(query)
    if found is not None:
        return found
    conversation = Conversation(id=uuid.uuid4(), tenant_id=space.tenant_id, kind="space", space_id=space.id,
                                last_seq=0)
    try:
        insert_or_raise(conversation, LookupError())
    except LookupError:
        return db.session.scalar(query)
    return conversation


@dataclass
class Summary:
    """A conversation in my list: what to call it, how much I have not read."""

    conversation: Conversation
    title: str
    unread: int
    other: Membership | None = None


def conversations_for(org: Organization, member: Membership) -> list[Summary]:
    """My direct conversations and my spaces' channels, most recent first, with unread counts
    (a fixed number of queries)."""
    my_spaces = select(SpaceMember.space_id).where(SpaceMember.tenant_id == org.id,
                                                   SpaceMember.membership_id == member.id)
    rows = db.session.execute(
        select(Conversation, ConversationRead.last_read_seq)
        .outerjoin(ConversationRead, and_(ConversationRead.tenant_id == Conversation.tenant_id,
                                          ConversationRead.conversation_id == Conversation.id,
                                          ConversationRead.membership_id == member.id))
        .where(Conversation.tenant_id == org.id, or_(
            Conversation.member_low_id == member.id, Conversation.member_high_id == member.id,
            Conversation.space_id.in_(my_spaces)))
        .order_by(Conversation.last_message_at.desc().nulls_last(), Conversation.created_at.desc())).all()
    others = {c.other_member_id(member.id) for c, _ in rows if c.kind == "direct"}
    people = {m.id: m for m in db.session.scalars(select(Membership).where(
        Membership.tenant_id == org.id, Membership.id.in_(others)))} if others else {}
    found = []
    for conversation, read_seq in rows:
        unread = max(0, conversation.last_seq - (read_seq or 0))
        if conversation.kind == "direct":
            other = people.get(conversation.other_member_id(member.id))
            found.append(Summary(conversation, other.user.display_name if other else "Former member", unread, other))
        else:
            space = conversation.space
            found.append(Summary(conversation, f"# {space.name}" if space else "Space", unread))
    return found


@cache
def unread_total_statement():
    # Built once: the nav badge is on every page, and building the statement cost more than running it.
    # Parameters ``tenant_id`` and ``member_id``; notifications runs it beside the bell's count (one statement
    # for the navigation's two badges).
    member_id, tenant_id = bindparam("member_id"), bindparam("tenant_id")
    my_spaces = select(SpaceMember.space_id).where(SpaceMember.tenant_id == tenant_id,
                                                   SpaceMember.membership_id == member_id)
    return (
        select(func.coalesce(func.sum(Conversation.last_seq - func.coalesce(ConversationRead.last_read_seq, 0)), 0))
        .select_from(Conversation)
        .outerjoin(ConversationRead, and_(ConversationRead.tenant_id == Conversation.tenant_id,
                                          ConversationRead.conversation_id == Conversation.id,
                                          ConversationRead.membership_id == member_id))
        .where(Conversation.tenant_id == tenant_id, or_(
            Conversation.member_low_id == member_id, Conversation.member_high_id == member_id,
            Conversation.space_id.in_(my_spaces))))


MEMBER_RESULTS = 20


class Writable(NamedTuple):
    """A member I may open a conversation with, as the chat index lists them."""

    id: uuid.UUID
    name: str
    role: str


def members_to_write(org: Organization, me: Membership, query: str = "",
                     limit: int = MEMBER_RESULTS) -> tuple[list[Writable], bool]:
    """Members of the organization but me whose name contains ``query`` (any case), by name; with no query, its
    coaches and admins. At most ``limit``, and whether there are more (one query whatever its size: the list
    of everyone grew with the organization, 366 KB at 5,000 members).
    """
    query = " ".join((query or "").split())[:100]
    statement = (select(Membership.id, User.display_name, Membership.role).join(User, User.id == Membership.user_id)
                 .where(Membership.tenant_id == org.id, Membership.id != me.id))
    if query:
        statement = statement.where(func.lower(User.display_name).contains(query.lower(), autoescape=True))
    else:
        statement = statement.where(Membership.role.in_((ADMIN, COACH)))
    rows = db.session.execute(statement.order_by(func.lower(User.display_name), Membership.id).limit(limit + 1)).all()
    return [Writable(*row) for row in rows[:limit]], len(rows) > limit


def unread_total(org: Organization, member: Membership) -> int:
    """Unread messages over all my conversations (the nav badge), in one query."""
    total = db.session.scalar(unread_total_statement(), {"tenant_id": org.id, "member_id": member.id})
    return max(0, int(total or 0))


# --- messages -------------------------------------------------------------------------------------

def _check_body(body: str, media: bool = False) -> str:
    body = (body or "").strip()
    if not body and not media:
        raise ChatError("Write a message first.")
    if len(body) > BODY_MAX:
        raise ChatError(f"Messages can be up to {BODY_MAX:,} characters.")
    if "\x00" in body:
        raise ChatError("The message contains a character that cannot be stored.")
    return body


def send(conversation: Conversation, author: Membership, body: str, attachments: list | None = None,
         now: datetime | None = None, client_id: uuid.UUID | None = None) -> Message:
    """Store a message with the conversation's next number; the author has read up to it.

    The number comes from an ``UPDATE ... RETURNING`` on the conversation's row, so concurrent
    senders are ordered by its lock and numbers have no gaps.

    :param client_id: the id the sender's page gave this message. A send repeated with it (after a
        reconnect, a double submit) returns the message already stored: no second number, no
        second event.
    """
    now = now or clock.now()
    acc = access(conversation, author, now)
    if not acc.read:
        raise NotYours("This conversation is not yours.")
    if not acc.write:
        raise NotAllowed("You cannot write here.")
    body = _check_body(body, media=bool(attachments))  # a photo or a clip may go without words
    try:
        # Only with a client id: a send repeated with it (or two sends of one page racing each other) meets
        # uq_messages_client_id, and its number is given back with the savepoint. (Not looked up first: a
        # repeat is rare, and the lookup cost every message a statement.)
        with db.session.begin_nested() if client_id is not None else nullcontext():
            seq = db.session.execute(
                update(Conversation).where(Conversation.tenant_id == conversation.tenant_id,
                                           Conversation.id == conversation.id)
                .values(last_seq=Conversation.last_seq + 1, last_message_at=now)
                .returning(Conversation.last_seq)).scalar_one()
            message = Message(id=uuid.uuid4(), tenant_id=conversation.tenant_id, conversation_id=conversation.id,
                              seq=seq, author_membership_id=author.id, body=body, created_at=now,
                              client_id=client_id)
            db.session.add(message)
            db.session.flush()
    except IntegrityError as exc:
        existing = _sent_with(conversation, author, client_id) if _is_client_id_clash(exc) else None
        if existing is None:
            raise
        db.session.expire(conversation, ["last_seq", "last_message_at"])  # the update was rolled back
        return existing
    for position, item in enumerate(attachments or []):
        if item.owner_membership_id != author.id or item.tenant_id != message.tenant_id:
            raise NotAllowed("Attach your own media only.")
        db.session.add(MessageAttachment(tenant_id=message.tenant_id, message_id=message.id, media_id=item.id,
                                         position=position))
    mark_read(conversation, author, seq, now)
    # What the UPDATE wrote, without reading it back (set as loaded: nothing more to flush).
    set_committed_value(conversation, "last_seq", seq)
    set_committed_value(conversation, "last_message_at", now)
    emit(CHAT_MESSAGE, {"conversation_id": str(conversation.id), "message_id": str(message.id),
                          "seq": seq, "author_membership_id": str(author.id)})
    return message


def _sent_with(conversation: Conversation, author: Membership, client_id: uuid.UUID) -> Message | None:
    return db.session.scalar(select(Message).where(Message.tenant_id == conversation.tenant_id,
                                                   Message.conversation_id == conversation.id,
                                                   Message.author_membership_id == author.id,
                                                   Message.client_id == client_id))


def _is_client_id_clash(exc: IntegrityError) -> bool:
    diag = getattr(exc.orig, "diag", None)
    return getattr(exc.orig, "sqlstate", None) == "23505" and getattr(diag, "constraint_name", None) == \
        "uq_messages_client_id"


def get_message(conversation: Conversation, message_id) -> Message | None:
    message_id = parse_uuid(message_id)
    if message_id is None:
        return None
    return db.session.scalar(select(Message).where(Message.tenant_id == conversation.tenant_id,
                                                   Message.conversation_id == conversation.id,
                                                   Message.id == message_id))


def can_edit(message: Message, member: Membership, now: datetime | None = None) -> bool:
    return (message.author_membership_id == member.id and message.deleted_at is None
            and (now or clock.now()) - message.created_at <= timedelta(minutes=EDIT_WINDOW_MINUTES))


def edit(message: Message, editor: Membership, body: str, now: datetime | None = None) -> Message:
    now = now or clock.now()
    if message.author_membership_id != editor.id:
        raise NotAllowed("Only the author edits a message.")
    if message.deleted_at is not None:
        raise ChatError("This message was deleted.")
    if not can_edit(message, editor, now):
        raise ChatError(f"Messages can be edited for {EDIT_WINDOW_MINUTES} minutes after sending.")
    has_media = db.session.scalar(select(exists().where(MessageAttachment.tenant_id == message.tenant_id,
                                                        MessageAttachment.message_id == message.id)))
    body = _check_body(body, media=bool(has_media))
    if body != message.body:
        message.body, message.edited_at = body, now
        db.session.flush()
    return message


def delete(message: Message, actor: Membership, now: datetime | None = None) -> Message:
    """Leave a tombstone: the text is gone, the place in the conversation stays."""
    if message.author_membership_id != actor.id:
        raise NotAllowed("Only the author deletes a message.")
    if message.deleted_at is None:
        message.deleted_at, message.body = now or clock.now(), ""
        db.session.flush()
    return message


def history(conversation: Conversation, before_seq: int | None = None, limit: int = HISTORY_PAGE) -> list[Message]:
    """A page of messages, oldest first: the newest ones, or the ones before ``before_seq``."""
    query = select(Message).where(Message.tenant_id == conversation.tenant_id,
                                  Message.conversation_id == conversation.id)
    if before_seq is not None:
        query = query.where(Message.seq < before_seq)
    rows = list(db.session.scalars(query.order_by(Message.seq.desc()).limit(limit)))
    rows.reverse()
    return rows


def messages_after(conversation: Conversation, seq: int, limit: int = REPLAY_MAX) -> list[Message]:
    """What a client that has everything up to ``seq`` is missing, oldest first."""
    return list(db.session.scalars(select(Message).where(
        Message.tenant_id == conversation.tenant_id, Message.conversation_id == conversation.id,
        Message.seq > seq).order_by(Message.seq).limit(limit)))


class MessageRow(NamedTuple):
    """A message as pages and pushes show it: plain values, read with its author's name in one query (no ORM
    objects: hydrating a page of 50 messages with their authors' memberships and users cost more than showing
    them). Equal rows show the same, so a row is also its rendering's cache key (:mod:`coach.chat.render`)."""

    id: uuid.UUID
    seq: int
    client_id: uuid.UUID | None
    body: str
    created_at: datetime
    edited_at: datetime | None
    deleted_at: datetime | None
    author_id: uuid.UUID | None
    author_name: str | None  # None: the author has left the organization
    has_media: bool  # attachments stored (whether they can be shown is read with them)


@cache
def _message_rows_statement(before: bool, after: bool, upto: bool):
    """The rows of one conversation, newest first or (``after``) oldest first; built once per shape."""
    attached = exists().where(MessageAttachment.tenant_id == Message.tenant_id,
                              MessageAttachment.message_id == Message.id)
    query = (select(Message.id, Message.seq, Message.client_id, Message.body, Message.created_at, Message.edited_at,
                    Message.deleted_at, Message.author_membership_id, User.display_name, attached)
             .outerjoin(Membership, and_(Membership.tenant_id == Message.tenant_id,
                                         Membership.id == Message.author_membership_id))
             .outerjoin(User, User.id == Membership.user_id)
             .where(Message.tenant_id == bindparam("tenant_id"),
                    Message.conversation_id == bindparam("conversation_id")))
    if before:
        query = query.where(Message.seq < bindparam("before"))
    if after:
        query = query.where(Message.seq > bindparam("after"))
    if upto:
        query = query.where(Message.seq <= bindparam("upto"))
    return query.order_by(Message.seq if after else Message.seq.desc()).limit(bindparam("limit"))


def history_rows(conversation: Conversation, before_seq: int | None = None,
                 limit: int = HISTORY_PAGE) -> list[MessageRow]:
    """:func:`history` as :class:`MessageRow` values (one query)."""
    rows = [MessageRow(*row) for row in db.session.execute(
        _message_rows_statement(before_seq is not None, False, False),
        {"tenant_id": conversation.tenant_id, "conversation_id": conversation.id, "before": before_seq,
         "limit": limit})]
    rows.reverse()
    return rows


def rows_after(conversation: Conversation, seq: int, upto: int | None = None,
               limit: int = REPLAY_MAX) -> list[MessageRow]:
    """:func:`messages_after` as :class:`MessageRow` values (one query), up to ``upto`` if given."""
    return [MessageRow(*row) for row in db.session.execute(
        _message_rows_statement(False, True, upto is not None),
        {"tenant_id": conversation.tenant_id, "conversation_id": conversation.id, "after": seq, "upto": upto,
         "limit": limit})]


def attachments_of(tenant_id: uuid.UUID, message_ids: list[uuid.UUID]) -> dict[uuid.UUID, list]:
    """Each message's attached media that can be shown, in order (one query)."""
    if not message_ids:
        return {}
    rows = db.session.execute(select(MessageAttachment.message_id, MediaItem).join(MediaItem, and_(
        MediaItem.tenant_id == MessageAttachment.tenant_id, MediaItem.id == MessageAttachment.media_id)).where(
        MessageAttachment.tenant_id == tenant_id, MessageAttachment.message_id.in_(message_ids),
        MediaItem.status.in_(("ready", "processing"))).order_by(MessageAttachment.message_id,
                                                                MessageAttachment.position))
    found: dict[uuid.UUID, list] = {}
    for message_id, item in rows:
        found.setdefault(message_id, []).append(item)
    return found


# --- reading --------------------------------------------------------------------------------------

def _read_upsert(*returning):
    """The bind parameters and the upsert that moves a member's read position forwards to ``seq`` (never
    backwards), bounded by the newest seq as the database has it (the object's may be stale, and an empty
    conversation read "up to 50" must not hide its first 50 messages), returning ``returning`` as CTE ``moved``;
    with the scalar subquery of the newest seq."""
    tenant_id, conversation_id, member_id = bindparam("tenant_id"), bindparam("conversation_id"), bindparam("member_id")
    newest = select(Conversation.last_seq).where(Conversation.tenant_id == tenant_id,
                                                 Conversation.id == conversation_id).scalar_subquery()
    upsert = pg_insert(ConversationRead).values(
        id=bindparam("id"), tenant_id=tenant_id, conversation_id=conversation_id, membership_id=member_id,
        last_read_seq=func.least(bindparam("seq"), newest), read_at=bindparam("now"))
    upsert = upsert.on_conflict_do_update(
        index_elements=[ConversationRead.tenant_id, ConversationRead.conversation_id, ConversationRead.membership_id],
        set_={"last_read_seq": upsert.excluded.last_read_seq, "read_at": upsert.excluded.read_at},
        where=ConversationRead.last_read_seq < upsert.excluded.last_read_seq,
    ).returning(*returning)
    return (tenant_id, conversation_id, member_id), newest, upsert.cte("moved")


@cache
def _mark_read_statement():
    (tenant_id, conversation_id, member_id), newest, moved = _read_upsert(ConversationRead.last_read_seq)
    # The seq in force: the one just written, else the one there was (the subquery sees the rows as they were
    # before this statement); and the newest.
    before = select(ConversationRead.last_read_seq).where(
        ConversationRead.tenant_id == tenant_id, ConversationRead.conversation_id == conversation_id,
        ConversationRead.membership_id == member_id).scalar_subquery()
    return select(func.coalesce(select(moved.c.last_read_seq).scalar_subquery(), before, 0), newest)


def mark_read(conversation: Conversation, member: Membership, seq: int, now: datetime | None = None) -> int:
    """``member`` has read up to ``seq`` (never backwards, never past the newest); the seq in force (one
    statement)."""
    now = now or clock.now()
    seq_now, latest = db.session.execute(_mark_read_statement(), {
        "id": uuid.uuid4(), "tenant_id": conversation.tenant_id, "conversation_id": conversation.id,
        "member_id": member.id, "seq": max(0, int(seq)), "now": now}).one()
    if seq_now and seq_now >= (latest or 0):
        # Only when read to the end: whoever keeps "new messages" about the conversation may then forget
        # them (reading the first of three messages leaves the other two to be told about).
        conversation_read.send(conversation, member=member, now=now)
    return seq_now


@cache
def _read_to_end_statement():
    (tenant_id, conversation_id, member_id), _, moved = _read_upsert(ConversationRead.membership_id,
                                                                     ConversationRead.last_read_seq)
    # The plain SELECT sees the rows as they were before the upsert (one snapshot): the moved row is told apart.
    return select(moved.c.membership_id, moved.c.last_read_seq, literal(True)).union_all(
        select(ConversationRead.membership_id, ConversationRead.last_read_seq, literal(False)).where(
            ConversationRead.tenant_id == tenant_id, ConversationRead.conversation_id == conversation_id,
            ConversationRead.membership_id.in_([member_id, bindparam("other_id")])))


def read_to_end(conversation: Conversation, member: Membership, other_id: uuid.UUID | None = None,
                now: datetime | None = None) -> tuple[dict[uuid.UUID, int], bool]:
    """``member`` has read ``conversation`` up to its newest message as loaded (:func:`mark_read`, for a page
    that shows it), in one statement that also says how far ``other_id`` has read.

    :returns: ``{member id: seq read}`` for both, and whether ``member``'s position moved (something was new).
    """
    now = now or clock.now()
    rows = db.session.execute(_read_to_end_statement(), {
        "id": uuid.uuid4(), "tenant_id": conversation.tenant_id, "conversation_id": conversation.id,
        "member_id": member.id, "other_id": other_id, "seq": conversation.last_seq, "now": now}).all()
    reads = {m: 0 for m in (member.id, other_id) if m is not None}
    changed = False
    for member_id, seq, is_new in sorted(rows, key=lambda r: r[2]):  # the moved row last: it wins
        reads[member_id] = seq or 0
        changed = changed or is_new
    if reads[member.id] >= conversation.last_seq:
        conversation_read.send(conversation, member=member, now=now)  # as mark_read does
    return reads, changed


def reads_of(conversation: Conversation, member_ids) -> dict[uuid.UUID, int]:
    """How far each of ``member_ids`` has read ``conversation`` (0: not at all), in one query."""
    member_ids = [m for m in member_ids if m is not None]
    found = dict(db.session.execute(select(ConversationRead.membership_id, ConversationRead.last_read_seq).where(
        ConversationRead.tenant_id == conversation.tenant_id, ConversationRead.conversation_id == conversation.id,
        ConversationRead.membership_id.in_(member_ids))).all()) if member_ids else {}
    return {m: found.get(m) or 0 for m in member_ids}


def direct_unread(org: Organization, member: Membership, other_ids) -> dict[uuid.UUID, tuple[uuid.UUID, int]]:
    """``member``'s direct conversations with each of ``other_ids`` that exist, and what ``member`` has not read in
    each: ``{other's membership id: (conversation id, unread)}`` (one statement; a session room's athlete tabs)."""
    others = list(other_ids)
    if not others:
        return {}
    rows = db.session.execute(
        select(Conversation.id, Conversation.member_low_id, Conversation.member_high_id, Conversation.last_seq,
               ConversationRead.last_read_seq)
        .outerjoin(ConversationRead, and_(ConversationRead.tenant_id == Conversation.tenant_id,
                                          ConversationRead.conversation_id == Conversation.id,
                                          ConversationRead.membership_id == member.id))
        .where(Conversation.tenant_id == org.id, Conversation.kind == "direct", or_(
            and_(Conversation.member_low_id == member.id, Conversation.member_high_id.in_(others)),
            and_(Conversation.member_high_id == member.id, Conversation.member_low_id.in_(others)))))
    return {(high if low == member.id else low): (conversation_id, max(0, last_seq - (read or 0)))
            for conversation_id, low, high, last_seq, read in rows}


def read_seq(conversation: Conversation, member_id: uuid.UUID) -> int:
    return db.session.scalar(select(ConversationRead.last_read_seq).where(
        ConversationRead.tenant_id == conversation.tenant_id, ConversationRead.conversation_id == conversation.id,
        ConversationRead.membership_id == member_id)) or 0


# --- media attached to messages ----------------------------------------------------------------------

@media_service.grants_view
def _attached_to_my_messages(member: Membership, media_id):
    """EXISTS: the item goes with a message (not deleted) of a conversation ``member`` is in: one of
    the two of a direct conversation, or a member of the space whose channel it is."""
    in_channel = exists().where(SpaceMember.tenant_id == Conversation.tenant_id,
                                SpaceMember.space_id == Conversation.space_id,
                                SpaceMember.membership_id == member.id)
    return exists().where(
        MessageAttachment.tenant_id == member.tenant_id, MessageAttachment.media_id == media_id,
        Message.tenant_id == MessageAttachment.tenant_id, Message.id == MessageAttachment.message_id,
        Message.deleted_at.is_(None),
        Conversation.tenant_id == Message.tenant_id, Conversation.id == Message.conversation_id,
        or_(Conversation.member_low_id == member.id, Conversation.member_high_id == member.id, in_channel))
