"""Consumers that turn outbox events into notifications, and the sweep of emails due.

Each consumer works out who is told (never the person who acted), writes in their words
what happened and where to look, and calls :func:`coach.notifications.service.notify`,
which applies each member's preferences. Once the event's transaction has committed, the
members' open pages are told their count changed (Redis, then each web process's hub).
"""
from __future__ import annotations

import logging
import uuid

from flask import g
from sqlalchemy import select

from coach.booking.events import (BOOKING_CANCELLED, BOOKING_CONFIRMED, BOOKING_DECLINED, BOOKING_EXPIRED,
                                  BOOKING_REMINDER, BOOKING_REQUESTED)
from coach.booking import waitlist
from coach.booking.models import Booking
from coach.chat import realtime
from coach.chat.events import CHAT_MESSAGE
from coach.chat.models import Conversation, ConversationRead, Message
from coach.extensions import db
from coach.media import service as media
from coach.media.events import MEDIA_READY, MEDIA_REVIEW_COMMENTED
from coach.media.models import MediaComment, MediaItem
# chat_hooks connects notifications to chat's signal and badge registry when the factory loads this module.
from coach.notifications import chat_hooks  # noqa: F401
from coach.notifications import payments as payment_notices  # noqa: F401 - registers its consumers
from coach.notifications import waitlist as waitlist_notices  # noqa: F401 - the same
from coach.notifications import series as series_notices  # noqa: F401 - the same
from coach.notifications import rooms as room_notices  # noqa: F401 - the same
from coach.notifications import reviews as review_notices  # noqa: F401 - the same
from coach.notifications import (  # noqa: F401 - the same
    progress_habits, progress_programs, progress_records, progress_reports)
from coach.notifications import booking_mail, service
from coach.orgs.models import Membership, Organization
from coach.platform.jobs import consumer, each_tenant
from coach.platform.periodic import periodic
from coach.spaces import markdown
from coach.spaces import service as spaces
from coach.spaces.events import SPACE_COMMENTED, SPACE_MENTIONED
from coach.spaces.models import Comment, Post, Space, SpaceMember

log = logging.getLogger(__name__)


def _member(value) -> Membership | None:
    ident = uuid.UUID(value) if value else None
    return db.session.get(Membership, ident) if ident else None


def _org() -> Organization:
    return db.session.get(Organization, g.tenant_id)


def _name(member: Membership | None) -> str:
    return member.user.display_name if member is not None else "Someone"


# --- chat ------------------------------------------------------------------------------------------

@consumer(CHAT_MESSAGE)
def message_while_offline(payload: dict) -> None:
    """Members of the conversation who are offline and have not read it yet."""
    message = db.session.get(Message, uuid.UUID(payload["message_id"]))
    conversation = db.session.get(Conversation, uuid.UUID(payload["conversation_id"]))
    if message is None or conversation is None or message.deleted_at is not None:
        return
    author = _member(payload.get("author_membership_id"))
    org = _org()
    if conversation.kind == "direct":
        candidates = [m for m in (conversation.member_low_id, conversation.member_high_id)
                      if m is not None and m != message.author_membership_id]
        kind = "message"
    else:
        candidates = [m for m in db.session.scalars(select(SpaceMember.membership_id).where(
            SpaceMember.tenant_id == conversation.tenant_id, SpaceMember.space_id == conversation.space_id))
            if m != message.author_membership_id]
        kind = "channel_message"
    if not candidates:
        return
    presence = realtime.presence_of(conversation.tenant_id, candidates)
    # Unknown (Redis away) counts as offline: a message nobody can be told about live is worth an email.
    offline = [m for m in candidates if presence[m] in ("offline", "unknown")]
    if not offline:
        return
    read = dict(db.session.execute(select(ConversationRead.membership_id, ConversationRead.last_read_seq).where(
        ConversationRead.tenant_id == conversation.tenant_id, ConversationRead.conversation_id == conversation.id,
        ConversationRead.membership_id.in_(offline))).all())
    url = service.path_for("chat.conversation", slug=org.slug, conversation_id=conversation.id)
    space = db.session.get(Space, conversation.space_id) if conversation.space_id else None
    for member_id in offline:
        if read.get(member_id, 0) >= message.seq:
            continue
        member = db.session.get(Membership, member_id)
        if member is None:
            continue
        where = f"# {space.name}" if space else None
        title = f"{_name(author)} wrote in {where}" if where else f"{_name(author)} sent you a message"
        n = service.notify_message(member, kind, conversation.id, message.id, title=title, url=url,
                                   body=message.body, actor_id=message.author_membership_id)
        if n is not None and n.count > 1:
            n.title = (f"{n.count} new messages in {where}" if where
                       else f"{n.count} new messages from {_name(author)}")
    service.announce()


# --- spaces ----------------------------------------------------------------------------------------

@consumer(SPACE_MENTIONED)
def mentioned(payload: dict) -> None:
    post = db.session.get(Post, uuid.UUID(payload["post_id"]))
    member = _member(payload["membership_id"])
    author = _member(payload.get("author_membership_id"))
    if post is None or member is None or not post.visible:
        return
    space = db.session.get(Space, post.space_id)
    comment_id = payload.get("comment_id")
    url = service.path_for("spaces.post", slug=_org().slug, post_id=post.id)
    where = f"a comment in {space.name}" if comment_id else space.name
    service.notify(member, "mention", dedupe_key=f"mention:{post.id}:{comment_id or 'post'}",
                   title=f"{_name(author)} mentioned you in {where}",
                   url=url + (f"#comment-{comment_id}" if comment_id else ""), body=payload.get("excerpt", ""),
                   actor_id=author.id if author else None, subject_id=post.id)
    service.announce()


@consumer(SPACE_COMMENTED)
def commented(payload: dict) -> None:
    """The post's author, and the author of the comment replied to."""
    post = db.session.get(Post, uuid.UUID(payload["post_id"]))
    comment = db.session.get(Comment, uuid.UUID(payload["comment_id"]))
    if post is None or comment is None or not post.visible or comment.deleted_at is not None:
        return
    author = _member(payload.get("author_membership_id"))
    space = db.session.get(Space, post.space_id)
    url = service.path_for("spaces.post", slug=_org().slug, post_id=post.id) + f"#comment-{comment.id}"
    body = markdown.plain_excerpt(comment.body_source, 200)
    told = set()
    if comment.parent_id is not None:
        parent = db.session.get(Comment, comment.parent_id)
        replied_to = _member(str(parent.author_membership_id)) if parent and parent.author_membership_id else None
        if replied_to is not None and _can_read(space, replied_to):
            service.notify(replied_to, "comment", dedupe_key=f"comment:{comment.id}",
                           title=f"{_name(author)} replied to your comment in {space.name}", url=url, body=body,
                           actor_id=comment.author_membership_id, subject_id=post.id)
            told.add(replied_to.id)
    owner = _member(str(post.author_membership_id)) if post.author_membership_id else None
    if owner is not None and owner.id not in told and _can_read(space, owner):
        service.notify(owner, "comment", dedupe_key=f"comment:{comment.id}",
                       title=f"{_name(author)} commented on your post in {space.name}", url=url, body=body,
                       actor_id=comment.author_membership_id, subject_id=post.id)
    service.announce()


def _can_read(space, member: Membership) -> bool:
    return spaces.access(space, member).read


# --- media -----------------------------------------------------------------------------------------

@consumer(MEDIA_READY)
def media_ready(payload: dict) -> None:
    item = db.session.get(MediaItem, uuid.UUID(payload["media_id"]))
    if item is None or not item.ready or item.owner_membership_id is None:
        return
    owner = db.session.get(Membership, item.owner_membership_id)
    service.notify(owner, "media_ready", dedupe_key=f"media_ready:{item.id}",
                   title=f"“{item.title}” is ready", body=f"{item.kind.capitalize()} processed: you can watch and "
                   "share it now." if item.kind == "video" else "Processed: you can share it now.",
                   url=service.path_for("media.item", slug=_org().slug, media_id=item.id), subject_id=item.id)
    service.announce()


@consumer(MEDIA_REVIEW_COMMENTED)
def review_commented(payload: dict) -> None:
    """The video's owner, and everyone else in the thread the comment belongs to."""
    item = db.session.get(MediaItem, uuid.UUID(payload["media_id"]))
    comment = db.session.get(MediaComment, uuid.UUID(payload["comment_id"]))
    if item is None or comment is None or item.status == "deleting" or comment.deleted_at is not None:
        return
    author = _member(payload.get("author_membership_id"))
    recipients: list[uuid.UUID] = []
    if item.owner_membership_id:
        recipients.append(item.owner_membership_id)
    if comment.parent_id is not None:
        thread = db.session.scalars(select(MediaComment.author_membership_id).where(
            MediaComment.tenant_id == item.tenant_id, MediaComment.media_id == item.id,
            (MediaComment.id == comment.parent_id) | (MediaComment.parent_id == comment.parent_id)))
        recipients += [m for m in thread if m is not None and m not in recipients]
    url = service.path_for("media.item", slug=_org().slug, media_id=item.id) + f"#review-{comment.id}"
    for member_id in recipients:
        member = db.session.get(Membership, member_id)
        if member is None or not media.can_view(item, member):
            continue
        whose = "your video" if member_id == item.owner_membership_id else f"“{item.title}”"
        service.notify(member, "review_comment", dedupe_key=f"review:{comment.id}",
                       title=f"{_name(author)} commented at {comment.at_label} on {whose}", url=url,
                       body=comment.body, actor_id=comment.author_membership_id, subject_id=item.id)
    service.announce()


# --- booking ---------------------------------------------------------------------------------------

def _when(booking, member: Membership) -> str:
    return booking_mail.short_when(booking.starts_at, member) + f" ({booking_mail.zone_of(member).key})"


# (who, kind, what happened in their words, email only): an email without a notification tells someone what they
# did themselves, or keeps their calendar right (their invitation) where the app has nothing new to say.
Plan = tuple[Membership, str, str, bool]


def _booking_plans(booking: Booking, before: str | None, after: str, actor: Membership | None,
                   previous: Booking | None) -> list[Plan]:
    coach, athlete = booking.coach, booking.athlete
    title = booking.offering.title
    actor_id = actor.id if actor else None
    by = _name(actor)
    with_coach, with_athlete = f"{title} with {coach.user.display_name}", f"{title} with {athlete.user.display_name}"
    athlete_kind = "booking_confirmed" if after == "confirmed" else "booking_requested"
    if previous is not None and after in ("requested", "confirmed"):  # a reschedule: one email per person
        return [(coach, "booking_requested", f"{by} moved {title}" if actor_id != coach.id
                 else f"You moved {with_athlete}", actor_id == coach.id),
                (athlete, athlete_kind, f"{by} moved {title}" if actor_id != athlete.id
                 else f"You moved {with_coach}", actor_id == athlete.id)]
    if before == "held" and after in ("expired", "cancelled"):
        # Nobody was told of the hold (the coach hears of a booking once it is paid). An athlete who gave it up
        # knows; one whose checkout ran out is told the time was released. A seat offered from a waitlist
        # (notifications/waitlist.py told of the offer) simply passes to the next in line.
        if after == "cancelled" or waitlist.offer_booking_ids([booking.id]):
            return []
        return [(athlete, "booking_declined", f"Your place for {title} was released: the payment was not "
                                              "completed in time", False)]
    if after == "requested":
        plans = [(coach, "booking_requested", f"{athlete.user.display_name} requested {title}", False)]
        if actor_id in (athlete.id, None):  # None: the athlete's payment settled it
            plans.append((athlete, "booking_requested", f"You requested {with_coach}", True))
        else:  # asked on the athlete's behalf
            plans.append((athlete, "booking_requested", f"{by} requested {title} for you", False))
        return plans
    if after == "confirmed" and before in (None, "held"):  # held: paid, so booked now
        plans = [(coach, "booking_requested", f"{athlete.user.display_name} booked {title}", False)]
        if before is None and actor_id != athlete.id:
            plans.append((athlete, "booking_confirmed", f"{by} booked {title} for you", False))
        else:
            plans.append((athlete, "booking_confirmed", f"You booked {with_coach}", True))
        return plans
    if after == "confirmed":
        return [(athlete, "booking_confirmed", f"{coach.user.display_name} confirmed {title}", False),
                (coach, "booking_requested", f"You confirmed {with_athlete}" if actor_id == coach.id
                 else f"{by} confirmed {with_athlete}", True)]
    if after == "declined":
        return [(athlete, "booking_declined", f"{coach.user.display_name} declined {title}", False),
                (coach, "booking_cancelled", f"You declined {with_athlete}" if actor_id == coach.id
                 else f"{by} declined {with_athlete}", True)]
    if after == "expired":
        return [(athlete, "booking_declined", f"Your request for {title} expired without an answer", False),
                (coach, "booking_cancelled", f"{athlete.user.display_name}'s request for {title} expired", True)]
    if after == "cancelled":
        what = f"{by} cancelled {title}" if actor else f"{title} was cancelled"
        return [(person, "booking_cancelled", f"You cancelled {theirs}" if person.id == actor_id else what,
                 person.id == actor_id)
                for person, theirs in ((coach, with_athlete), (athlete, with_coach))]
    return []


@consumer(BOOKING_REQUESTED, BOOKING_CONFIRMED, BOOKING_DECLINED, BOOKING_EXPIRED, BOOKING_CANCELLED)
def booking_changed(payload: dict) -> None:
    """Whoever of the coach and the athlete did not make the change, in the app and by email as they chose; the
    one who made it gets its email only (their calendar's invitation). A reschedule is one "moved" email each."""
    if payload.get("series_batch"):
        return  # one of a recurring series' action: notifications/series.py tells each person once
    booking = db.session.get(Booking, uuid.UUID(payload["booking_id"]))
    if booking is None:
        return
    before, after = payload.get("from"), payload.get("to")
    if after == "cancelled" and payload.get("reason") == "rescheduled":
        return  # the new booking's event tells of the move
    actor = _member(payload.get("actor_membership_id"))
    previous_id = payload.get("rescheduled_from_id") or (
        str(booking.rescheduled_from_id) if booking.rescheduled_from_id and before == "held" else None)
    previous = db.session.get(Booking, uuid.UUID(previous_id)) if previous_id else None
    if previous is not None and actor is None:
        actor = booking.athlete  # a move paid for: the payment settled it, the athlete made it
    change = booking_mail.Change(None if before == "held" and after == "expired" else after,
                                 payload.get("calendar_sequence", booking.calendar_sequence), previous)
    url = service.path_for("booking.detail", slug=_org().slug, booking_id=booking.id)
    for person, kind, what, email_only in _booking_plans(booking, before, after, actor, previous):
        if person is None:
            continue
        email = booking_mail.builder(booking, change, what)
        if email_only:
            service.email_only(person, kind, email)
            continue
        title = (f"{what} from {_when(previous, person)} to {_when(booking, person)}" if previous is not None
                 else f"{what} · {_when(booking, person)}")
        service.notify(person, kind, dedupe_key=f"booking:{booking.id}:{after}", title=title, url=url,
                       body=booking.note if kind == "booking_requested" else "",
                       actor_id=actor.id if actor else None, subject_id=booking.id, email=email)
    service.announce()


@consumer(BOOKING_REMINDER)
def booking_reminder(payload: dict) -> None:
    booking = db.session.get(Booking, uuid.UUID(payload["booking_id"]))
    if booking is None or booking.status != "confirmed":
        return
    which = payload.get("which", "24h")
    when = "tomorrow" if which == "24h" else "in one hour"
    url = service.path_for("booking.detail", slug=_org().slug, booking_id=booking.id)
    offering = booking.offering
    change = booking_mail.Change("confirmed", booking.calendar_sequence, reminder=when)
    for person, other in ((booking.athlete, booking.coach), (booking.coach, booking.athlete)):
        details = [f"{offering.title} with {other.user.display_name} starts {when}: {_when(booking, person)}."]
        if offering.location:
            details.append(f"Where: {offering.location}.")
        if offering.meeting_url:
            details.append(f"Join: {offering.meeting_url}")
        title = f"Reminder: {offering.title} {when}"
        service.notify(person, "booking_reminder", dedupe_key=f"reminder:{booking.id}:{which}",
                       title=title, url=url, body=" ".join(details), subject_id=booking.id,
                       email=booking_mail.builder(booking, change, title))
    service.announce()


# --- the email sweep ---------------------------------------------------------------------------------

@periodic(every=60, name="send_notification_emails")
def sweep_all() -> int:
    """Every organization with notification emails due, one transaction each."""
    return each_tenant(service.due_tenants(), service.send_due_emails, "notification email sweep")
