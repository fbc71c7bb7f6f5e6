"""Spaces: membership of spaces, posts, comments, reactions, mentions, flags and moderation, feeds.

Services never commit; the caller commits once. Content is rendered to sanitised
HTML when it is written (:mod:`coach.spaces.markdown`), and the source is kept
beside it for editing.

Who may do what:

- read: every member of the organization in open and announcement spaces; members of
  the space (and admins) in private ones;
- post: members of the space who are not suspended there; in an announcement space only
  its hosts and the organization's coaches and admins;
- comment and react: members of the space who are not suspended;
- flag: whoever can read the content, except its author; be told of a mention: whoever can read the post;
- moderate (pin, delete others' content, restore, remove, suspend, read edit history):
  hosts of the space and the organization's admins.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from functools import cache
from datetime import datetime, timedelta

from sqlalchemy import (ARRAY, and_, any_, bindparam, delete, exists, false, func, null, or_, select, true, tuple_,
                        union_all, update)
from sqlalchemy.exc import IntegrityError

from coach import clock
from coach.accounts.models import User
from coach.dbutil import insert_or_raise
from coach.errors import DomainError
from coach.extensions import db
from coach.ids import parse_uuid as _uuid
from coach.media import service as media_service
from coach.media.models import MediaItem
from coach.orgs.models import ADMIN, COACH, SPACE_CREATORS, Membership, Organization
from coach.platform import audit
from coach.platform.outbox import emit
from coach.platform.pagination import decode_cursor, encode_cursor
from coach.spaces import markdown
from coach.spaces.events import SPACE_COMMENTED, SPACE_MENTIONED, SPACE_POST_CREATED
from coach.spaces.models import (
    HOST,
    MEMBER,
    REACTIONS,
    SPACE_ROLES,
    VISIBILITIES,
    Comment,
    Flag,
    Post,
    PostAttachment,
    PostMention,
    PostRevision,
    Reaction,
    Space,
    SpaceMember,
)

POST_MAX = 20_000
COMMENT_MAX = 5_000
PAGE_SIZE = 20
PINNED_MAX = 10
HIDE_AFTER_FLAGS = 3
# Who creates spaces, and posts in announcement spaces without being their host.
LEADERS = (COACH, ADMIN)


class SpaceError(DomainError):
    """A request that cannot be carried out; the message is safe to show. HTTP 422 unless ``status`` says."""

    status = 422


class NotAllowed(SpaceError):
    status = 403


def handle_of(display_name: str) -> str:
    """The ``@handle`` of a member: their name, lower case, words joined by dots ("Maria Santos" → maria.santos)."""
    return re.sub(r"[\W_]+", ".", display_name.lower()).strip(".")


# SQL twin of handle_of, for finding mentioned members without loading everyone.
_HANDLE_SQL = func.btrim(func.regexp_replace(func.lower(User.display_name), "[^[:alnum:]]+", ".", "g"), ".")


# --- loaders -----------------------------------------------------------------------------------------

def get_space(org: Organization, space_id) -> Space | None:
    sid = _uuid(space_id)
    return db.session.scalar(select(Space).where(Space.tenant_id == org.id, Space.id == sid)) if sid else None


def get_post(org: Organization, post_id) -> Post | None:
    pid = _uuid(post_id)
    return db.session.scalar(select(Post).where(Post.tenant_id == org.id, Post.id == pid)) if pid else None


def get_comment(org: Organization, comment_id) -> Comment | None:
    cid = _uuid(comment_id)
    return db.session.scalar(select(Comment).where(Comment.tenant_id == org.id, Comment.id == cid)) if cid else None


def space_membership(space: Space, member: Membership) -> SpaceMember | None:
    return db.session.scalar(select(SpaceMember).where(
        SpaceMember.tenant_id == space.tenant_id, SpaceMember.space_id == space.id,
        SpaceMember.membership_id == member.id))


# --- permissions -------------------------------------------------------------------------------------

@dataclass
class Access:
    """What one member may do in one space."""

    read: bool
    joined: bool
    host: bool
    post: bool
    comment: bool
    suspended_until: datetime | None = None
    seen_at: datetime | None = None  # when I last opened the space (joined members; from space_with_access only)


def access(space: Space, member: Membership, sm: SpaceMember | None = None, now: datetime | None = None) -> Access:
    sm = sm if sm is not None else space_membership(space, member)
    return _access(space, member, sm.role if sm else None, sm.suspended_until if sm else None, now)


def _access(space: Space, member: Membership, role: str | None, suspended_until: datetime | None,
            now: datetime | None = None) -> Access:
    """:func:`access` from the member's role in the space (``None``: not joined) and suspension."""
    now = now or clock.now()
    admin = member.role == ADMIN
    joined = role is not None
    host = admin or role == HOST
    read = space.visibility != "private" or joined or admin
    suspended = joined and suspended_until is not None and suspended_until > now
    may_write = joined and not suspended
    post = may_write and (space.visibility != "announcement" or host or member.role in LEADERS)
    return Access(read=read, joined=joined, host=host, post=post, comment=may_write,
                  suspended_until=suspended_until if suspended else None)


# The outer join of a space to the member's row in it (for the loaders below, built once).
_MY_SPACE_MEMBERSHIP = and_(SpaceMember.tenant_id == Space.tenant_id, SpaceMember.space_id == Space.id,
                            SpaceMember.membership_id == bindparam("member_id"))
_SPACE_WITH_ACCESS = (select(Space, SpaceMember.role, SpaceMember.suspended_until, SpaceMember.last_seen_at)
                      .outerjoin(SpaceMember, _MY_SPACE_MEMBERSHIP)
                      .where(Space.tenant_id == bindparam("tenant_id"), Space.id == bindparam("id")))
_POST_WITH_ACCESS = (select(Post, Space, SpaceMember.role, SpaceMember.suspended_until)
                     .join(Space, and_(Space.tenant_id == Post.tenant_id, Space.id == Post.space_id))
                     .outerjoin(SpaceMember, _MY_SPACE_MEMBERSHIP)
                     .where(Post.tenant_id == bindparam("tenant_id"), Post.id == bindparam("id")))


def space_with_access(org: Organization, member: Membership, space_id) -> tuple[Space, Access] | None:
    """The space and what ``member`` may do in it, in one query; ``None`` if there is no such space."""
    sid = _uuid(space_id)
    if sid is None:
        return None
    row = db.session.execute(_SPACE_WITH_ACCESS, {"tenant_id": org.id, "id": sid, "member_id": member.id}).first()
    if row is None:
        return None
    acc = _access(row[0], member, row[1], row[2])
    acc.seen_at = row[3]
    return row[0], acc


def post_with_access(org: Organization, member: Membership, post_id) -> tuple[Post, Space, Access] | None:
    """The post (with its author), its space and what ``member`` may do there, in one query."""
    pid = _uuid(post_id)
    if pid is None:
        return None
    row = db.session.execute(_POST_WITH_ACCESS, {"tenant_id": org.id, "id": pid, "member_id": member.id}).first()
    return (row[0], row[1], _access(row[1], member, row[2], row[3])) if row else None


def _require(allowed: bool, message: str) -> None:
    if not allowed:
        raise NotAllowed(message)


def _no_nul(*values: str | None) -> None:
    """PostgreSQL cannot store NUL characters: refuse them rather than fail in the database."""
    if any(value and "\x00" in value for value in values):
        raise SpaceError("The text contains a character that is not allowed.")


# --- spaces ------------------------------------------------------------------------------------------

_CREATORS_MESSAGE = {"admins": "Only admins create spaces in this organization.",
                     "leaders": "Only coaches and admins create spaces in this organization."}


def may_create_spaces(org: Organization, member: Membership) -> bool:
    """Whether ``member`` may create spaces: the organization's setting says who (``SPACE_CREATORS``)."""
    return member.role in SPACE_CREATORS.get(org.space_creation, LEADERS)


def create_space(org: Organization, creator: Membership, name: str, description: str, visibility: str) -> Space:
    """A new space; its creator is its first host. Who may create one is the organization's setting."""
    _require(may_create_spaces(org, creator), _CREATORS_MESSAGE.get(org.space_creation, "You may not create spaces."))
    _no_nul(name, description)
    name = (name or "").strip()
    if not 1 <= len(name) <= 80:
        raise SpaceError("A space name has 1 to 80 characters.")
    if visibility not in VISIBILITIES:
        raise SpaceError("Choose open, private or announcements.")
    space = Space(tenant_id=org.id, name=name, description=(description or "").strip()[:500],
                  visibility=visibility, created_by_membership_id=creator.id)
    insert_or_raise(space, SpaceError("A space with this name exists already."))
    db.session.add(SpaceMember(tenant_id=org.id, space_id=space.id, membership_id=creator.id, role=HOST))
    db.session.flush()
    audit.record("space.created", actor=creator.user, target_type="space", target_id=space.id,
                 details={"name": name, "visibility": visibility})
    return space


@dataclass
class SpaceSummary:
    space: Space
    joined: bool
    role: str | None
    new_posts: int


def spaces_for(org: Organization, member: Membership) -> list[SpaceSummary]:
    """Spaces the member can see, with how many posts by others arrived since their last visit (one query)."""
    return [SpaceSummary(space, role is not None, role, n if role is not None else 0)
            for space, role, n in db.session.execute(_spaces_statement(member.role == ADMIN),
                                                     {"tenant_id": org.id, "member_id": member.id})]


@cache
def _spaces_statement(admin: bool):
    """:func:`spaces_for`'s statement, built once for admins (who see private spaces) and once for the others."""
    sm = select(SpaceMember).where(SpaceMember.tenant_id == bindparam("tenant_id"),
                                   SpaceMember.membership_id == bindparam("member_id")).subquery()
    new_posts = (select(func.count()).select_from(Post).where(
        Post.tenant_id == bindparam("tenant_id"), Post.space_id == Space.id, Post.created_at > sm.c.last_seen_at,
        Post.author_membership_id != bindparam("member_id"), Post.deleted_at.is_(None), Post.hidden_at.is_(None),
        Post.removed_at.is_(None)).correlate(Space, sm).scalar_subquery())
    query = (select(Space, sm.c.role, func.coalesce(new_posts, 0))
             .outerjoin(sm, sm.c.space_id == Space.id)
             .where(Space.tenant_id == bindparam("tenant_id"))
             .order_by(sm.c.role.is_(None), func.lower(Space.name)))
    return query if admin else query.where(or_(Space.visibility != "private", sm.c.id.isnot(None)))


def join(space: Space, member: Membership) -> SpaceMember:
    """Join an open or announcement space (private ones are by invitation of a host)."""
    _require(space.visibility != "private", "This space is private: a host adds members.")
    return _add(space, member, MEMBER)


def admit(space: Space, member: Membership) -> SpaceMember:
    """Make ``member`` a member of ``space`` on the system's authority (a paid plan's access), private or not;
    an existing membership is kept as it is."""
    return _add(space, member, MEMBER)


def _add(space: Space, member: Membership, role: str) -> SpaceMember:
    existing = space_membership(space, member)
    if existing is not None:
        return existing
    sm = SpaceMember(tenant_id=space.tenant_id, space_id=space.id, membership_id=member.id, role=role)
    try:
        with db.session.begin_nested():
            db.session.add(sm)
            db.session.flush()
    except IntegrityError:
        return space_membership(space, member)
    return sm


def _keep_a_host(space: Space, sm: SpaceMember, message: str) -> None:
    """Refuse to take away the last host of ``space`` (``sm`` is about to stop being one)."""
    if sm.role == HOST:
        hosts = db.session.scalar(select(func.count()).select_from(SpaceMember).where(
            SpaceMember.tenant_id == space.tenant_id, SpaceMember.space_id == space.id, SpaceMember.role == HOST))
        if hosts <= 1:
            raise SpaceError(message)


def leave(space: Space, member: Membership) -> None:
    sm = space_membership(space, member)
    if sm is None:
        return
    _keep_a_host(space, sm, "You are the only host: make someone else host before you leave.")
    db.session.delete(sm)
    db.session.flush()


def add_member(space: Space, actor: Membership, member: Membership, role: str = MEMBER) -> SpaceMember:
    """A host adds (invites) an organization member, e.g. to a private space."""
    _require(access(space, actor).host, "Only hosts add members.")
    if member.tenant_id != space.tenant_id:
        raise SpaceError("Only members of this organization can join its spaces.")
    if role not in SPACE_ROLES:
        raise SpaceError("Choose host or member.")
    sm = _add(space, member, role)
    if role != HOST:
        _keep_a_host(space, sm, "This is the only host: make someone else host first.")
    sm.role = role
    db.session.flush()
    audit.record("space.member_added", actor=actor.user, target_type="space", target_id=space.id,
                 details={"member": member.user.email, "role": role})
    return sm


def remove_member(space: Space, actor: Membership, member: Membership) -> None:
    _require(access(space, actor).host, "Only hosts remove members.")
    sm = space_membership(space, member)
    if sm is None:
        raise SpaceError("Not a member of this space.")
    _keep_a_host(space, sm, "This is the only host: make someone else host first.")
    db.session.delete(sm)
    db.session.flush()
    audit.record("space.member_removed", actor=actor.user, target_type="space", target_id=space.id,
                 details={"member": member.user.email})


def members_of(space: Space) -> list[SpaceMember]:
    return list(db.session.scalars(select(SpaceMember).join(Membership, and_(
        Membership.tenant_id == SpaceMember.tenant_id, Membership.id == SpaceMember.membership_id))
        .join(User, User.id == Membership.user_id)
        .where(SpaceMember.tenant_id == space.tenant_id, SpaceMember.space_id == space.id)
        .order_by(SpaceMember.role, func.lower(User.display_name)).limit(1000)))


def saw_news(acc: Access, page: FeedPage) -> bool:
    """Whether opening a space's first ``page`` shows its joined reader posts newer than their last visit, so
    the "N new" of the spaces list must restart from now (:func:`mark_seen`). When its newest post is older
    than the last visit, no visible post arrived since and marking would change no count: no write."""
    newest = max((p.created_at for p in page.pinned + page.posts), default=None)
    return acc.joined and newest is not None and (acc.seen_at is None or newest > acc.seen_at)


def mark_seen(space: Space, member: Membership, now: datetime | None = None) -> None:
    db.session.execute(update(SpaceMember).where(
        SpaceMember.tenant_id == space.tenant_id, SpaceMember.space_id == space.id,
        SpaceMember.membership_id == member.id).values(last_seen_at=now or clock.now()))


def suspend(space: Space, actor: Membership, member: Membership, until: datetime, reason: str = "") -> None:
    """Suspend ``member`` from posting and commenting in ``space`` until ``until`` (they can still read)."""
    _require(access(space, actor).host, "Only hosts suspend members.")
    if member.id == actor.id:
        raise SpaceError("You cannot suspend yourself.")
    sm = space_membership(space, member)
    if sm is None:
        raise SpaceError("Not a member of this space.")
    sm.suspended_until = until
    db.session.flush()
    audit.record("space.member_suspended", actor=actor.user, target_type="space", target_id=space.id,
                 details={"member": member.user.email, "until": until.isoformat(), "reason": reason[:200]})


# --- mentions ----------------------------------------------------------------------------------------

def find_mentioned(org: Organization, source: str) -> dict[str, list[Membership]]:
    """Members of the organization named by ``@handle`` in ``source`` (handle → members)."""
    handles = markdown.mentioned_handles(source)
    if not handles:
        return {}
    found: dict[str, list[Membership]] = {}
    for membership, handle in db.session.execute(
            select(Membership, _HANDLE_SQL).join(Membership.user)
            .where(Membership.tenant_id == org.id, _HANDLE_SQL.in_(list(handles)[:50]))):
        found.setdefault(handle, []).append(membership)
    return found


def mention_candidates(org: Organization, prefix: str, limit: int = 8) -> list[tuple[Membership, str]]:
    """Members whose handle or name starts with ``prefix`` (the autocomplete)."""
    prefix = prefix.strip().lstrip("@").lower()[:64]
    if not prefix:
        return []
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = db.session.execute(
        select(Membership, _HANDLE_SQL).join(Membership.user)
        .where(Membership.tenant_id == org.id, or_(_HANDLE_SQL.like(f"{escaped}%"),
                                                   func.lower(User.display_name).like(f"{escaped}%")))
        .order_by(func.lower(User.display_name)).limit(limit))
    return [(m, h) for m, h in rows]


def _render(org: Organization, source: str, mention_url) -> tuple[str, dict[str, list[Membership]]]:
    mentioned = find_mentioned(org, source)
    urls = {handle: mention_url(members[0]) for handle, members in mentioned.items()}
    return markdown.render(source, urls), mentioned


def _check_text(source: str, limit: int, what: str) -> str:
    source = (source or "").replace("\r\n", "\n")
    _no_nul(source)
    if not source.strip():
        raise SpaceError(f"Write something before you {what}.")
    if len(source) > limit:
        raise SpaceError(f"That is {len(source):,} characters; the most is {limit:,}.")
    return source


# --- posts -------------------------------------------------------------------------------------------

def create_post(space: Space, author: Membership, source: str, mention_url=lambda m: "#",
                now: datetime | None = None, attachments: list | None = None) -> Post:
    """Publish a post; mentioned members get a ``space.mentioned`` event each.

    :param mention_url: member → URL of their page, for the mention links.
    :param attachments: the author's media items to show with the post, in order
        (checked by :func:`coach.media.service.for_attachment`).
    """
    now = now or clock.now()
    _require(access(space, author, now=now).post, _why_not_post(space, author, now))
    source = _check_text(source, POST_MAX, "post")
    html, mentioned = _render(_org(space), source, mention_url)
    post = Post(tenant_id=space.tenant_id, space_id=space.id, author_membership_id=author.id, body_source=source,
                body_html=html, created_at=now)
    db.session.add(post)
    db.session.flush()
    space.last_post_at = now
    for position, item in enumerate(attachments or []):
        if item.owner_membership_id != author.id or item.tenant_id != post.tenant_id:
            raise NotAllowed("Attach your own media only.")
        db.session.add(PostAttachment(tenant_id=post.tenant_id, post_id=post.id, media_id=item.id,
                                      position=position))
    _record_mentions(post, author, mentioned)
    emit(SPACE_POST_CREATED, {"post_id": str(post.id), "space_id": str(space.id),
                                "author_membership_id": str(author.id)})
    return post


def _why_not_post(space: Space, member: Membership, now: datetime) -> str:
    acc = access(space, member, now=now)
    if not acc.joined:
        return "Join the space to post."
    if acc.suspended_until:
        return "You are suspended from posting in this space for now."
    return "Only hosts and coaches post in an announcement space."


def _org(space: Space) -> Organization:
    return db.session.get(Organization, space.tenant_id)


def _readers_among(space: Space, author: Membership, mentioned: dict[str, list[Membership]],
                   skip: set[uuid.UUID] = frozenset()) -> list[Membership]:
    """The mentioned members who may open the space's posts, without the author and ``skip``."""
    readers = None  # everyone in the organization reads open and announcement spaces
    if space.visibility == "private":
        readers = set(db.session.scalars(select(SpaceMember.membership_id).where(
            SpaceMember.tenant_id == space.tenant_id, SpaceMember.space_id == space.id,
            SpaceMember.membership_id.in_([m.id for ms in mentioned.values() for m in ms]))))
    found: dict[uuid.UUID, Membership] = {}
    for members in mentioned.values():
        for member in members:
            if member.id == author.id or member.id in skip or member.id in found:
                continue
            if readers is not None and member.id not in readers and member.role != ADMIN:
                continue  # they cannot open the post: no notification carrying its text
            found[member.id] = member
    return list(found.values())


def _record_mentions(post: Post, author: Membership, mentioned: dict[str, list[Membership]]) -> None:
    """Record and announce each newly mentioned reader of the post (an edit re-mentions no one)."""
    if not mentioned:
        return
    already = set(db.session.scalars(select(PostMention.membership_id).where(
        PostMention.tenant_id == post.tenant_id, PostMention.post_id == post.id)))
    members = _readers_among(db.session.get(Space, post.space_id), author, mentioned, already)
    excerpt = markdown.plain_excerpt(post.body_source) if members else ""
    for member in members:
        db.session.add(PostMention(tenant_id=post.tenant_id, post_id=post.id, membership_id=member.id))
        emit(SPACE_MENTIONED, {"post_id": str(post.id), "membership_id": str(member.id),
                                 "author_membership_id": str(author.id), "excerpt": excerpt})
    db.session.flush()


def edit_post(post: Post, editor: Membership, source: str, mention_url=lambda m: "#",
              now: datetime | None = None) -> Post:
    """The author changes their post; the previous text is kept as a revision."""
    _require(editor.id == post.author_membership_id, "Only the author edits a post.")
    _require(post.deleted_at is None and post.removed_at is None, "This post was deleted.")
    now = now or clock.now()
    space = db.session.get(Space, post.space_id)
    acc = access(space, editor, now=now)
    _require(acc.comment, "You are suspended from this space for now." if acc.joined
             else "Join the space to edit your post.")
    source = _check_text(source, POST_MAX, "save")
    if source == post.body_source:
        return post
    db.session.add(PostRevision(tenant_id=post.tenant_id, post_id=post.id, body_source=post.body_source,
                                body_html=post.body_html, edited_by_membership_id=editor.id, created_at=now))
    post.body_html, mentioned = _render(_org(space), source, mention_url)
    post.body_source = source
    post.edited_at = now
    db.session.flush()
    _record_mentions(post, editor, mentioned)
    return post


def revisions(post: Post) -> list[PostRevision]:
    return list(db.session.scalars(select(PostRevision).where(
        PostRevision.tenant_id == post.tenant_id, PostRevision.post_id == post.id)
        .order_by(PostRevision.created_at.desc()).limit(100)))


def delete_post(post: Post, actor: Membership, now: datetime | None = None) -> None:
    """Soft delete, by the author, a host of the space or an admin."""
    space = db.session.get(Space, post.space_id)
    _require(actor.id == post.author_membership_id or access(space, actor).host,
             "Only the author, a host or an admin deletes a post.")
    if post.deleted_at is None:
        post.deleted_at = now or clock.now()
        db.session.flush()
        if actor.id != post.author_membership_id:
            audit.record("post.deleted", actor=actor.user, target_type="post", target_id=post.id,
                         details={"space": space.name, "author": post.author.user.email})


def set_pinned(post: Post, actor: Membership, pinned: bool, now: datetime | None = None) -> None:
    space = db.session.get(Space, post.space_id)
    _require(access(space, actor).host, "Only hosts pin posts.")
    post.pinned_at = (now or clock.now()) if pinned else None
    db.session.flush()


# --- comments and reactions --------------------------------------------------------------------------

def add_comment(post: Post, author: Membership, source: str, parent: Comment | None = None,
                mention_url=lambda m: "#", now: datetime | None = None) -> Comment:
    """Comment on a post, or reply to a top-level comment (one level of replies)."""
    space = db.session.get(Space, post.space_id)
    now = now or clock.now()
    acc = access(space, author, now=now)
    _require(acc.comment, "Join the space to comment." if not acc.joined else
             "You are suspended from commenting in this space for now.")
    _require(post.visible, "This post is not available.")
    if parent is not None:
        if parent.post_id != post.id or parent.tenant_id != post.tenant_id:
            raise SpaceError("Reply to a comment of this post.")
        if parent.parent_id is not None:
            parent = db.session.get(Comment, parent.parent_id)  # replies stay one level deep
    source = _check_text(source, COMMENT_MAX, "comment")
    html, mentioned = _render(_org(space), source, mention_url)
    comment = Comment(tenant_id=post.tenant_id, post_id=post.id, parent_id=parent.id if parent else None,
                      author_membership_id=author.id, body_source=source, body_html=html, created_at=now)
    db.session.add(comment)
    db.session.execute(update(Post).where(Post.id == post.id).values(comment_count=Post.comment_count + 1))
    db.session.flush()
    emit(SPACE_COMMENTED, {"post_id": str(post.id), "comment_id": str(comment.id),
                             "post_author_membership_id": str(post.author_membership_id),
                             "author_membership_id": str(author.id)})
    members = _readers_among(space, author, mentioned)
    excerpt = markdown.plain_excerpt(source) if members else ""
    for member in members:
        emit(SPACE_MENTIONED, {"post_id": str(post.id), "comment_id": str(comment.id),
                                 "membership_id": str(member.id), "author_membership_id": str(author.id),
                                 "excerpt": excerpt})
    return comment


def comments_of(post: Post) -> list[tuple[Comment, list[Comment]]]:
    """Top-level comments, oldest first, each with its replies (one query)."""
    rows = list(db.session.scalars(select(Comment).where(
        Comment.tenant_id == post.tenant_id, Comment.post_id == post.id).order_by(Comment.created_at, Comment.id)
        .limit(1000)))
    replies: dict[uuid.UUID, list[Comment]] = {}
    for c in rows:
        if c.parent_id:
            replies.setdefault(c.parent_id, []).append(c)
    return [(c, replies.get(c.id, [])) for c in rows if c.parent_id is None]


def delete_comment(comment: Comment, actor: Membership, now: datetime | None = None) -> None:
    post = db.session.get(Post, comment.post_id)
    space = db.session.get(Space, post.space_id)
    _require(actor.id == comment.author_membership_id or access(space, actor).host,
             "Only the author, a host or an admin deletes a comment.")
    if comment.deleted_at is None:
        comment.deleted_at = now or clock.now()
        if comment.removed_at is None:  # a removed comment was counted off already
            db.session.execute(update(Post).where(Post.id == post.id).values(
                comment_count=func.greatest(Post.comment_count - 1, 0)))
        db.session.flush()


def toggle_reaction(post: Post, member: Membership, kind: str) -> bool:
    """Add ``kind`` from ``member`` to ``post``, or take it back; returns whether it is now on."""
    if kind not in REACTIONS:
        raise SpaceError("Unknown reaction.")
    space = db.session.get(Space, post.space_id)
    _require(access(space, member).comment, "Join the space to react.")
    _require(post.visible, "This post is not available.")
    removed = db.session.execute(delete(Reaction).where(
        Reaction.tenant_id == post.tenant_id, Reaction.post_id == post.id, Reaction.membership_id == member.id,
        Reaction.kind == kind)).rowcount
    if removed:
        return False
    try:
        with db.session.begin_nested():
            db.session.add(Reaction(tenant_id=post.tenant_id, post_id=post.id, membership_id=member.id, kind=kind))
            db.session.flush()
    except IntegrityError:
        pass  # a double click raced us to it: it is on either way
    return True


# Built once; ``= ANY(array)`` rather than ``IN (...)``: one statement text whatever the page's length.
_REACTIONS = (select(Reaction.post_id, Reaction.kind, func.count(),
                     func.bool_or(Reaction.membership_id == bindparam("member_id")))
              .where(Reaction.tenant_id == bindparam("tenant_id"),
                     Reaction.post_id == any_(bindparam("post_ids", type_=ARRAY(Reaction.post_id.type))))
              .group_by(Reaction.post_id, Reaction.kind))


def reaction_summary(tenant_id: uuid.UUID, post_ids: list[uuid.UUID], member: Membership
                     ) -> tuple[dict[uuid.UUID, dict[str, int]], dict[uuid.UUID, set[str]]]:
    """Counts per post and kind, and the member's own reactions, for a page of posts (one query)."""
    counts: dict[uuid.UUID, dict[str, int]] = {pid: {} for pid in post_ids}
    mine: dict[uuid.UUID, set[str]] = {pid: set() for pid in post_ids}
    if not post_ids:
        return counts, mine
    for post_id, kind, n, my_own in db.session.execute(_REACTIONS, {"tenant_id": tenant_id, "post_ids": post_ids,
                                                                     "member_id": member.id}):
        counts[post_id][kind] = n
        if my_own:
            mine[post_id].add(kind)
    return counts, mine


# --- flags and moderation ----------------------------------------------------------------------------

def flag(target: Post | Comment, member: Membership, reason: str, now: datetime | None = None) -> bool:
    """Flag a post or comment; the third flag hides it pending review. Returns whether it is now hidden."""
    reason = (reason or "").strip()
    _no_nul(reason)
    if not reason:
        raise SpaceError("Say what is wrong with it.")
    if len(reason) > 500:
        raise SpaceError("A reason has at most 500 characters.")
    if target.author_membership_id == member.id:
        raise SpaceError("You cannot flag what you wrote yourself.")
    _require(access(_space_of(target), member).read, "This post is not available.")
    is_post = isinstance(target, Post)
    row = Flag(tenant_id=target.tenant_id, post_id=target.id if is_post else None,
               comment_id=None if is_post else target.id, membership_id=member.id, reason=reason)
    insert_or_raise(row, SpaceError("You have flagged this already; the hosts will look at it."))
    model = Post if is_post else Comment
    count = db.session.execute(update(model).where(model.id == target.id)
                               .values(flag_count=model.flag_count + 1).returning(model.flag_count)).scalar_one()
    hidden = False
    if count >= HIDE_AFTER_FLAGS:
        hidden = bool(db.session.execute(update(model).where(model.id == target.id, model.hidden_at.is_(None))
                                         .values(hidden_at=now or clock.now())).rowcount)
        if hidden:
            audit.record(f"{'post' if is_post else 'comment'}.hidden_by_flags", actor_label="system",
                         target_type="post" if is_post else "comment", target_id=target.id,
                         details={"flags": count})
    db.session.refresh(target)
    return hidden


@dataclass
class QueueItem:
    target: Post | Comment
    kind: str  # "post" or "comment"
    space: Space
    flags: list[Flag] = field(default_factory=list)


def moderation_queue(org: Organization, moderator: Membership) -> list[QueueItem]:
    """Flagged or hidden content, not yet resolved, in spaces the moderator hosts (all of them for admins)."""
    hosted = select(SpaceMember.space_id).where(SpaceMember.tenant_id == org.id,
                                                 SpaceMember.membership_id == moderator.id,
                                                 SpaceMember.role == HOST)
    open_flags = list(db.session.scalars(select(Flag).where(Flag.tenant_id == org.id, Flag.resolved_at.is_(None))
                                         .order_by(Flag.created_at).limit(500)))
    post_ids = {f.post_id for f in open_flags if f.post_id}
    comment_ids = {f.comment_id for f in open_flags if f.comment_id}
    posts = {p.id: p for p in db.session.scalars(select(Post).where(Post.tenant_id == org.id,
                                                                     Post.id.in_(post_ids)))} if post_ids else {}
    comments = {c.id: c for c in db.session.scalars(select(Comment).where(
        Comment.tenant_id == org.id, Comment.id.in_(comment_ids)))} if comment_ids else {}
    parent_posts = {c.post_id for c in comments.values()} - set(posts)
    if parent_posts:
        posts.update({p.id: p for p in db.session.scalars(select(Post).where(Post.tenant_id == org.id,
                                                                             Post.id.in_(parent_posts)))})
    space_ids = {p.space_id for p in posts.values()}
    if moderator.role != ADMIN:
        space_ids &= set(db.session.scalars(hosted))
    spaces = {s.id: s for s in db.session.scalars(select(Space).where(Space.tenant_id == org.id,
                                                                       Space.id.in_(space_ids)))} if space_ids else {}
    items: dict[tuple[str, uuid.UUID], QueueItem] = {}
    for f in open_flags:
        target = posts.get(f.post_id) if f.post_id else comments.get(f.comment_id)
        if target is None:
            continue
        space_id = target.space_id if f.post_id else posts[target.post_id].space_id
        if space_id not in spaces:
            continue
        key = ("post" if f.post_id else "comment", target.id)
        item = items.setdefault(key, QueueItem(target, key[0], spaces[space_id]))
        item.flags.append(f)
    return sorted(items.values(), key=lambda i: (i.target.hidden_at is None, i.flags[0].created_at))


def _space_of(target: Post | Comment) -> Space:
    post = target if isinstance(target, Post) else db.session.get(Post, target.post_id)
    return db.session.get(Space, post.space_id)


def _resolve_flags(target: Post | Comment, now: datetime) -> None:
    column = Flag.post_id if isinstance(target, Post) else Flag.comment_id
    db.session.execute(update(Flag).where(Flag.tenant_id == target.tenant_id, column == target.id,
                                          Flag.resolved_at.is_(None)).values(resolved_at=now))


def restore(target: Post | Comment, moderator: Membership, now: datetime | None = None) -> None:
    """The content is fine: show it again and close its flags."""
    now = now or clock.now()
    _require(access(_space_of(target), moderator).host, "Only hosts and admins moderate.")
    if isinstance(target, Comment) and target.removed_at is not None and target.deleted_at is None:
        db.session.execute(update(Post).where(Post.id == target.post_id).values(
            comment_count=Post.comment_count + 1))
    target.hidden_at = None
    target.removed_at = None
    target.flag_count = 0  # the flags are answered: only new ones count towards hiding it again
    _resolve_flags(target, now)
    db.session.flush()
    kind = "post" if isinstance(target, Post) else "comment"
    audit.record(f"{kind}.restored", actor=moderator.user, target_type=kind, target_id=target.id)


def remove(target: Post | Comment, moderator: Membership, now: datetime | None = None) -> None:
    """The content breaks the rules: remove it for everyone and close its flags."""
    now = now or clock.now()
    _require(access(_space_of(target), moderator).host, "Only hosts and admins moderate.")
    target.removed_at = now
    _resolve_flags(target, now)
    if isinstance(target, Comment) and target.deleted_at is None:
        db.session.execute(update(Post).where(Post.id == target.post_id).values(
            comment_count=func.greatest(Post.comment_count - 1, 0)))
    db.session.flush()
    kind = "post" if isinstance(target, Post) else "comment"
    audit.record(f"{kind}.removed", actor=moderator.user, target_type=kind, target_id=target.id,
                 details={"author": target.author.user.email})


# --- feeds -------------------------------------------------------------------------------------------

@dataclass
class FeedPage:
    """One page of a feed. ``posts`` and ``pinned`` are rows of :data:`FEED_COLUMNS`: what a post in a feed
    shows (with its author's and its space's names), not whole posts."""

    posts: list
    pinned: list
    counts: dict[uuid.UUID, dict[str, int]]
    mine: dict[uuid.UUID, set[str]]
    spaces: dict[uuid.UUID, str]  # the spaces of the posts shown: id → name
    next_cursor: str | None
    attachments: dict[uuid.UUID, list] = field(default_factory=dict)


# What a post in a feed shows, nothing else (no source text, no moderation columns) and no ORM objects:
# hydrating each post with its author's membership and user was most of a feed's query work.
FEED_COLUMNS = (Post.id, Post.space_id, Post.author_membership_id, Post.body_html, Post.created_at, Post.edited_at,
                Post.pinned_at, Post.comment_count, User.display_name.label("author_name"),
                Space.name.label("space_name"))


def _visible():
    return and_(Post.deleted_at.is_(None), Post.hidden_at.is_(None), Post.removed_at.is_(None))


def _feed_rows(home: bool):
    """A feed's rows: the posts with their authors' names and, on the home feed, their spaces' names (a space's
    own page knows its space: one join fewer to plan)."""
    space_name = Space.name.label("space_name") if home else null().label("space_name")
    query = (select(*FEED_COLUMNS[:-1], space_name).select_from(Post)
             .join(Membership, and_(Membership.tenant_id == Post.tenant_id, Membership.id == Post.author_membership_id))
             .join(User, User.id == Membership.user_id))
    if home:
        query = query.join(Space, and_(Space.tenant_id == Post.tenant_id, Space.id == Post.space_id))
    return query.where(Post.tenant_id == bindparam("tenant_id"), _visible())


@cache
def _feed_statement(home: bool, after: bool):
    """A feed page's posts, built once per shape (only the parameters change, so SQLAlchemy reuses the compiled
    statement): the home feed's from the spaces I joined, or a space's; older than a cursor or the newest. On a
    space's first page its pinned posts come in the same statement, marked ``lead``.

    Shaped for PostgreSQL's planner, which plans every statement of every request again (psycopg's prepared
    statements do not outlive the request's rollback): my spaces as an array (an init plan, not one more
    relation in the join search) and the pinned posts as their own ordered, limited branch took planning from
    ~1.7 ms to ~0.7 ms each (``EXPLAIN (ANALYZE, SUMMARY)``, 2026-12-06)."""
    query = _feed_rows(home)
    if home:
        query = query.where(Post.space_id == any_(func.array(select(SpaceMember.space_id).where(
            SpaceMember.tenant_id == bindparam("tenant_id"), SpaceMember.membership_id == bindparam("member_id"))
            .scalar_subquery())))
    else:
        query = query.where(Post.space_id == bindparam("space_id"))
    if after:
        query = query.where(tuple_(Post.created_at, Post.id) < tuple_(
            bindparam("after_at", type_=Post.created_at.type), bindparam("after_id", type_=Post.id.type)))
    if not home:
        # The pinned posts lead the first page and are left out of the list on every page.
        top_pinned = (select(Post.id).where(Post.tenant_id == bindparam("tenant_id"),
                                            Post.space_id == bindparam("space_id"), _visible(),
                                            Post.pinned_at.isnot(None))
                      .order_by(Post.pinned_at.desc(), Post.id.desc()).limit(PINNED_MAX))
        query = query.where(Post.id.notin_(top_pinned))
    query = query.order_by(Post.created_at.desc(), Post.id.desc()).limit(bindparam("limit"))
    if home or after:
        return query
    pinned = (_feed_rows(False).where(Post.space_id == bindparam("space_id"), Post.pinned_at.isnot(None))
              .order_by(Post.pinned_at.desc(), Post.id.desc()).limit(PINNED_MAX))
    return union_all(pinned.add_columns(true().label("lead")), query.add_columns(false().label("lead")))


def feed_page(org: Organization, member: Membership, space: Space | None = None, after: str | None = None,
              limit: int = PAGE_SIZE) -> FeedPage:
    """One page of a feed, newest first: a space's (pinned posts first on its first page) or the home feed.

    Three queries whatever the page holds: the posts with their authors' and spaces' names (on a space's first
    page its pinned posts too, in the same statement), the reactions (counts and mine), the attachments.
    Keyset pagination in the cursor format of :mod:`coach.platform.pagination`.
    """
    position = decode_cursor(after)  # a malformed cursor reads as the first page
    params = {"tenant_id": org.id, "member_id": member.id, "space_id": space.id if space else None,
              "limit": limit + 1}
    if position is not None:
        params["after_at"], params["after_id"] = position
    found = list(db.session.execute(_feed_statement(space is None, position is not None), params))
    if space is None or position is not None:
        rows, pinned = found, []
    else:
        pinned = sorted((r for r in found if r.lead), key=lambda r: (r.pinned_at, r.id), reverse=True)
        rows = sorted((r for r in found if not r.lead), key=lambda r: (r.created_at, r.id), reverse=True)
    more = len(rows) > limit
    posts = rows[:limit]
    cursor = encode_cursor(posts[-1].created_at, posts[-1].id) if more and posts else None
    shown = pinned + posts
    ids = [p.id for p in shown]
    counts, mine = reaction_summary(org.id, ids, member)
    spaces = {space.id: space.name} if space is not None else {p.space_id: p.space_name for p in shown}
    return FeedPage(posts, pinned, counts, mine, spaces, cursor, attachments_of(org.id, ids))


def newer_posts(org: Organization, member: Membership, since: datetime, space: Space | None = None) -> int:
    """How many visible posts by others arrived after ``since`` (the "N new posts" bar)."""
    query = select(func.count()).select_from(Post).where(
        Post.tenant_id == org.id, _visible(), Post.created_at > since, Post.author_membership_id != member.id)
    if space is not None:
        query = query.where(Post.space_id == space.id)
    else:
        query = query.where(exists().where(SpaceMember.tenant_id == org.id, SpaceMember.space_id == Post.space_id,
                                           SpaceMember.membership_id == member.id))
    return db.session.scalar(query) or 0


def suspension_period(days: int) -> timedelta:
    if not 1 <= days <= 365:
        raise SpaceError("Suspend for 1 to 365 days.")
    return timedelta(days=days)


# --- media attached to posts -------------------------------------------------------------------------

@media_service.grants_view
def _readable_attachment(member: Membership, media_id):
    """EXISTS: the item is attached to a visible post in a space ``member`` may read."""
    member_of_space = exists().where(SpaceMember.tenant_id == Space.tenant_id, SpaceMember.space_id == Space.id,
                                     SpaceMember.membership_id == member.id)
    return exists().where(
        PostAttachment.tenant_id == member.tenant_id, PostAttachment.media_id == media_id,
        Post.tenant_id == PostAttachment.tenant_id, Post.id == PostAttachment.post_id,
        Post.deleted_at.is_(None), Post.hidden_at.is_(None), Post.removed_at.is_(None),
        Space.tenant_id == Post.tenant_id, Space.id == Post.space_id,
        or_(Space.visibility != "private", member_of_space))


_ATTACHMENTS = (select(PostAttachment.post_id, MediaItem).join(MediaItem, and_(
    MediaItem.tenant_id == PostAttachment.tenant_id, MediaItem.id == PostAttachment.media_id)).where(
    PostAttachment.tenant_id == bindparam("tenant_id"),
    PostAttachment.post_id == any_(bindparam("post_ids", type_=ARRAY(PostAttachment.post_id.type))),
    MediaItem.status.in_(("ready", "processing")))
    .order_by(PostAttachment.post_id, PostAttachment.position))


def attachments_of(tenant_id: uuid.UUID, post_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[MediaItem]]:
    """Each post's attached media that can be shown, in order (one query for a page of posts)."""
    if not post_ids:
        return {}
    rows = db.session.execute(_ATTACHMENTS, {"tenant_id": tenant_id, "post_ids": post_ids})
    found: dict[uuid.UUID, list[MediaItem]] = {}
    for post_id, item in rows:
        found.setdefault(post_id, []).append(item)
    return found
