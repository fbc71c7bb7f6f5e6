"""Notifications: recording them by each member's preferences, reading them, and their emails.

Consumers of outbox events (:mod:`coach.notifications.jobs`) call :func:`notify`. A
notification is one row per member and thing (``dedupe_key``): a redelivered event, or the
same mention announced twice, adds nothing. Its email follows the member's preference for
the kind: none, right away (queued in the same transaction), a little later for chat
messages (skipped if the member read the conversation meanwhile), or in a daily digest.
The emails carry a signed one-click unsubscribe link for their kind (RFC 8058 headers).

Plain functions: no request or session; the caller commits.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from flask import current_app, g, has_app_context
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from coach import clock
from coach.chat import realtime
from coach.chat import service as chat
from coach.errors import DomainError
from coach.extensions import db
from coach.ids import parse_uuid
from coach.notifications.models import CHANNELS, KINDS, TIMINGS, Notification, NotificationPreference
from coach.orgs.models import Membership, Organization
from coach.platform.jobs import after_commit
from coach.platform.mail import queue_email
from coach.platform.pagination import Page, newest_first

PAGE_SIZE = 30
DIGEST_HOUR = 8  # the daily digest goes out at 08:00 in the member's time zone
TITLE_MAX, BODY_MAX = 200, 300
UNSUBSCRIBE_SALT = "notification-unsubscribe"


class UnknownKind(DomainError):
    """A notification kind that does not exist (a forged form or link)."""


class BadPreference(DomainError):
    """A channel or timing that is not one of the choices."""


# --- preferences ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Preference:
    kind: str
    channel: str
    timing: str

    @property
    def label(self) -> str:
        return KINDS[self.kind].label

    @property
    def group(self) -> str:
        return KINDS[self.kind].group


def preferences_for(member: Membership) -> dict[str, Preference]:
    """Every kind, with the member's choice or the default, in the page's order."""
    rows = {p.kind: p for p in db.session.scalars(select(NotificationPreference).where(
        NotificationPreference.tenant_id == member.tenant_id, NotificationPreference.membership_id == member.id))}
    prefs = {}
    for name, kind in KINDS.items():
        row = rows.get(name)
        prefs[name] = Preference(name, row.channel, row.email_timing) if row else Preference(name, kind.channel,
                                                                                           kind.timing)
    return prefs


def _preference(member_id: uuid.UUID, tenant_id: uuid.UUID, kind: str) -> Preference:
    row = db.session.scalar(select(NotificationPreference).where(
        NotificationPreference.tenant_id == tenant_id, NotificationPreference.membership_id == member_id,
        NotificationPreference.kind == kind))
    default = KINDS[kind]
    return Preference(kind, row.channel, row.email_timing) if row else Preference(kind, default.channel, default.timing)


def set_preference(member: Membership, kind: str, channel: str, timing: str | None = None) -> Preference:
    """Record ``member``'s choice for ``kind`` (upsert); the timing kept when not given."""
    if kind not in KINDS:
        raise UnknownKind(kind)
    if channel not in CHANNELS:
        raise BadPreference(f"Choose how to be told about “{KINDS[kind].label}”.")
    if timing is None:
        timing = _preference(member.id, member.tenant_id, kind).timing
    if timing not in TIMINGS:
        raise BadPreference(f"Choose when to be emailed about “{KINDS[kind].label}”.")
    stmt = pg_insert(NotificationPreference).values(
        id=uuid.uuid4(), tenant_id=member.tenant_id, membership_id=member.id, kind=kind, channel=channel,
        email_timing=timing, updated_at=clock.now())
    db.session.execute(stmt.on_conflict_do_update(
        index_elements=[NotificationPreference.tenant_id, NotificationPreference.membership_id,
                        NotificationPreference.kind],
        set_={"channel": channel, "email_timing": timing, "updated_at": stmt.excluded.updated_at}))
    return Preference(kind, channel, timing)


def set_preferences(member: Membership, choices: dict[str, tuple[str, str]]) -> None:
    """Several kinds at once, all or none (every kind checked before anything is written)."""
    for kind, (channel, timing) in choices.items():
        if kind not in KINDS:
            raise UnknownKind(kind)
        if channel not in CHANNELS or timing not in TIMINGS:
            raise BadPreference(f"Choose one of the offered settings for “{KINDS[kind].label}”.")
    for kind, (channel, timing) in choices.items():
        set_preference(member, kind, channel, timing)


# --- recording -------------------------------------------------------------------------------------

def path_for(endpoint: str, **values) -> str:
    """A URL path of the app, outside any request (workers)."""
    return current_app.url_map.bind("localhost").build(endpoint, values)


def _clip(text: str, limit: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _pushed(member_id: uuid.UUID) -> None:
    """Remember to tell ``member_id``'s open pages their count changed (after the commit)."""
    if has_app_context():
        g.setdefault("_notified", set()).add(member_id)


def take_pushed() -> set[uuid.UUID]:
    return g.pop("_notified", set()) if has_app_context() else set()


def publish_counts(tenant_id: uuid.UUID, member_ids) -> None:
    """Every web process pushes the new notification count to these members' pages."""
    realtime.publish(tenant_id, {"type": "notify", "tenant_id": str(tenant_id),
                                 "member_ids": [str(m) for m in member_ids]})


def announce() -> None:
    """After the commit, push the counts of the members notified in this transaction (consumers call it last)."""
    members = take_pushed()
    if members:
        tenant_id = g.tenant_id
        after_commit(lambda: publish_counts(tenant_id, members))


@dataclass(frozen=True)
class OwnEmail:
    """A notification's email of its own (booking emails: their template, subject and invitation) instead of the
    generic ``notification`` one. The template gets the generic context (member, org, kind, unsubscribe_url,
    preferences_url) plus ``context``."""
    subject: str
    template: str
    context: dict = field(default_factory=dict)
    attachments: tuple[dict, ...] = ()


# Called only when an email is really sent right away (never for "in the app" or a digest): building one may
# write rows (a booking email's one-time links).
EmailBuilder = Callable[[Membership], OwnEmail]


def notify(member: Membership, kind: str, *, dedupe_key: str, title: str, url: str, body: str = "",
           actor_id: uuid.UUID | None = None, subject_id: uuid.UUID | None = None,
           now: datetime | None = None, email: EmailBuilder | None = None) -> Notification | None:
    """Tell ``member`` about something, as their preference for ``kind`` says; ``None`` when they
    chose "off" or were already told (same ``dedupe_key``).

    :param email: builds the email sent right away instead of the generic one (a digest still lists the
        notification by its title, without attachments).
    """
    if kind not in KINDS:
        raise UnknownKind(kind)
    if actor_id is not None and actor_id == member.id:
        return None  # nobody is told about what they did themselves
    now = now or clock.now()
    pref = _preference(member.id, member.tenant_id, kind)
    if pref.channel == "off":
        return None
    row_id = db.session.scalar(pg_insert(Notification).values(
        id=uuid.uuid4(), tenant_id=member.tenant_id, membership_id=member.id, kind=kind, dedupe_key=dedupe_key,
        subject_id=subject_id, actor_membership_id=actor_id, title=_clip(title, TITLE_MAX), body=_clip(body, BODY_MAX),
        url=url, created_at=now,
    ).on_conflict_do_nothing(constraint="uq_notifications_dedupe").returning(Notification.id))
    if row_id is None:
        return None
    notification = db.session.get(Notification, row_id)
    _plan_email(notification, member, pref, now, email)
    _pushed(member.id)
    return notification


def email_only(member: Membership, kind: str, email: EmailBuilder) -> bool:
    """An email without a notification: what ``member`` did themselves, when they want emails of ``kind`` right
    away (a booking's own invitation for whoever booked, cancelled or moved it). Whether one was queued."""
    if kind not in KINDS:
        raise UnknownKind(kind)
    pref = _preference(member.id, member.tenant_id, kind)
    if pref.channel != "email" or pref.timing != "immediate":
        return False
    _queue(member, kind, None, email(member))
    return True


def notify_message(member: Membership, kind: str, conversation_id: uuid.UUID, message_id: uuid.UUID, *,
                   title: str, url: str, body: str, actor_id: uuid.UUID | None, now: datetime | None = None
                   ) -> Notification | None:
    """A chat message: gathered with the unread notification of the same conversation, if there is
    one ("3 new messages"), so a burst of messages is one notification and at most one email."""
    now = now or clock.now()
    if actor_id is not None and actor_id == member.id:
        return None
    existing = db.session.scalar(select(Notification).where(
        Notification.tenant_id == member.tenant_id, Notification.membership_id == member.id,
        Notification.subject_id == conversation_id, Notification.kind == kind,
        Notification.read_at.is_(None)).with_for_update())
    if existing is None:
        return notify(member, kind, dedupe_key=f"message:{message_id}", title=title, url=url, body=body,
                      actor_id=actor_id, subject_id=conversation_id, now=now)
    if existing.dedupe_key == f"message:{message_id}":
        return None
    existing.count += 1
    existing.body = _clip(body, BODY_MAX)
    existing.actor_membership_id = actor_id
    existing.created_at = now  # the conversation comes back to the top of the list
    _pushed(member.id)
    return existing


def _plan_email(notification: Notification, member: Membership, pref: Preference, now: datetime,
                email: EmailBuilder | None = None) -> None:
    if pref.channel != "email":
        return
    if pref.timing == "daily":
        notification.email_state, notification.email_digest = "due", True
        notification.email_due_at = next_digest_at(member.user.timezone, now)
        return
    delay = current_app.config["NOTIFY_MESSAGE_EMAIL_DELAY_SECONDS"] if notification.kind in (
        "message", "channel_message") else 0
    if delay > 0:
        # Someone who comes back within minutes reads the message in the app: no email then.
        notification.email_state, notification.email_due_at = "due", now + timedelta(seconds=delay)
        return
    _send_one(notification, member, email)


def next_digest_at(tz: str, now: datetime) -> datetime:
    """The next 08:00 in ``tz`` after ``now``."""
    try:
        zone = ZoneInfo(tz or "UTC")
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    local = now.astimezone(zone)
    at = datetime.combine(local.date(), time(DIGEST_HOUR), tzinfo=zone)
    if at <= local:
        at = datetime.combine(local.date() + timedelta(days=1), time(DIGEST_HOUR), tzinfo=zone)
    return at.astimezone(timezone.utc)


# --- reading ---------------------------------------------------------------------------------------

# Built once: the bell's count runs on every page, and only its parameters change.
_UNREAD = select(func.count()).select_from(Notification).where(
    Notification.tenant_id == bindparam("tenant_id"), Notification.membership_id == bindparam("membership_id"),
    Notification.read_at.is_(None))


def unread_count(member: Membership) -> int:
    return db.session.scalar(_UNREAD, {"tenant_id": member.tenant_id, "membership_id": member.id}) or 0


@cache
def _nav_counts_statement():
    # Chat's unread total and the bell's count side by side: the navigation of every page reads both.
    return select(chat.unread_total_statement().scalar_subquery().label("chat"),
                  _UNREAD.scalar_subquery().label("notifications"))


def nav_counts(org: Organization, member: Membership) -> dict[str, int]:
    """The navigation's two badges in one statement: unread chat messages (as :func:`coach.chat.service.
    unread_total` counts them) and unread notifications (as :func:`unread_count`)."""
    row = db.session.execute(_nav_counts_statement(),
                             {"tenant_id": org.id, "member_id": member.id, "membership_id": member.id}).one()
    return {"chat": max(0, int(row.chat or 0)), "notifications": int(row.notifications or 0)}


def page(member: Membership, before: str | None = None, unread_only: bool = False) -> Page[Notification]:
    """Newest first, ``PAGE_SIZE`` at a time, after the cursor ``before`` (the last row of the page above)."""
    query = select(Notification).where(Notification.tenant_id == member.tenant_id,
                                       Notification.membership_id == member.id)
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    return newest_first(query, Notification.created_at, Notification.id, before, PAGE_SIZE)


def get(member: Membership, notification_id) -> Notification | None:
    ident = parse_uuid(notification_id)
    if ident is None:
        return None
    return db.session.scalar(select(Notification).where(
        Notification.tenant_id == member.tenant_id, Notification.membership_id == member.id,
        Notification.id == ident))


def mark_read(member: Membership, notification_ids=None, now: datetime | None = None) -> int:
    """Mark some (or, with ``None``, all) of ``member``'s notifications read; how many changed."""
    stmt = update(Notification).where(Notification.tenant_id == member.tenant_id,
                                      Notification.membership_id == member.id, Notification.read_at.is_(None))
    if notification_ids is not None:
        ids = [i for i in (parse_uuid(n) for n in notification_ids) if i is not None]
        if not ids:
            return 0
        stmt = stmt.where(Notification.id.in_(ids))
    changed = db.session.execute(stmt.values(read_at=now or clock.now())).rowcount
    if changed:
        _pushed(member.id)
    return changed


def read_subject(tenant_id: uuid.UUID, member_id: uuid.UUID, subject_id: uuid.UUID,
                 now: datetime | None = None) -> int:
    """The member saw the thing itself (read the conversation): its notifications are read too."""
    changed = db.session.execute(update(Notification).where(
        Notification.tenant_id == tenant_id, Notification.membership_id == member_id,
        Notification.subject_id == subject_id, Notification.read_at.is_(None))
        .values(read_at=now or clock.now())).rowcount
    if changed:
        _pushed(member_id)
    return changed


# --- email -----------------------------------------------------------------------------------------

def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=UNSUBSCRIBE_SALT)


def unsubscribe_token(member: Membership, kind: str) -> str:
    """A token for "no more emails of ``kind``" (or ``"digest"``: no more digests) for ``member``.

    It does not expire (an old email's link must still work) and does nothing but lower one
    preference, so it carries no more than the organization, the member and the kind.
    """
    return _serializer().dumps({"t": str(member.tenant_id), "m": str(member.id), "k": kind})


def read_unsubscribe_token(token: str) -> tuple[uuid.UUID, uuid.UUID, str] | None:
    """``(tenant_id, membership_id, kind)`` of a genuine token; ``None`` for anything else."""
    try:
        data = _serializer().loads(token)
    except BadSignature:
        return None
    if not isinstance(data, dict):
        return None
    tenant_id, member_id, kind = parse_uuid(data.get("t")), parse_uuid(data.get("m")), data.get("k")
    if tenant_id is None or member_id is None or not (kind in KINDS or kind == "digest"):
        return None
    return tenant_id, member_id, kind


def unsubscribe(member: Membership, kind: str) -> list[str]:
    """Stop the emails the token was for, keep the notifications in the app; the kinds changed."""
    prefs = preferences_for(member)
    if kind == "digest":
        kinds = [p.kind for p in prefs.values() if p.channel == "email" and p.timing == "daily"]
    else:
        kinds = [kind] if prefs[kind].channel == "email" else []
    for name in kinds:
        set_preference(member, name, "in_app")
    if kinds:
        # What was waiting to be emailed for those kinds stays in the app only.
        db.session.execute(update(Notification).where(
            Notification.tenant_id == member.tenant_id, Notification.membership_id == member.id,
            Notification.kind.in_(kinds), Notification.email_state == "due").values(
            email_state="skipped", email_due_at=None))
    return kinds


def _unsubscribe_url(member: Membership, kind: str) -> str:
    return current_app.config["APP_BASE_URL"] + path_for("notification_links.unsubscribe",
                                                         token=unsubscribe_token(member, kind))


def _headers(url: str) -> dict:
    return {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def _send_one(notification: Notification, member: Membership, email: EmailBuilder | None = None) -> None:
    own = email(member) if email is not None else OwnEmail(notification.title, "notification")
    _queue(member, notification.kind, notification, own)
    notification.email_state, notification.email_due_at = "sent", None


def _queue(member: Membership, kind: str, notification: Notification | None, own: OwnEmail) -> None:
    org = db.session.get(Organization, member.tenant_id)
    url = _unsubscribe_url(member, kind)
    queue_email(member.user.email, own.subject, own.template, headers=_headers(url),
                attachments=list(own.attachments) or None, member=member, org=org, notification=notification,
                kind=KINDS[kind], unsubscribe_url=url, preferences_url=_preferences_url(org), **own.context)


def _preferences_url(org: Organization) -> str:
    return current_app.config["APP_BASE_URL"] + path_for("notifications.preferences", slug=org.slug)


def send_due_emails(tenant_id: uuid.UUID, now: datetime | None = None) -> int:
    """Emails of one organization whose time has come: delayed ones (unless read meanwhile or no
    longer wanted) and daily digests (one email per member). Returns the emails queued."""
    now = now or clock.now()
    due = list(db.session.scalars(select(Notification).where(
        Notification.tenant_id == tenant_id, Notification.email_state == "due", Notification.email_due_at <= now)
        .order_by(Notification.membership_id, Notification.created_at).with_for_update(skip_locked=True)))
    by_member: dict[uuid.UUID, list[Notification]] = {}
    for n in due:
        by_member.setdefault(n.membership_id, []).append(n)
    sent = 0
    for member_id, rows in by_member.items():
        member = db.session.get(Membership, member_id)
        prefs = preferences_for(member)
        digest = []
        for n in rows:
            wanted = n.read_at is None and prefs[n.kind].channel == "email"
            if not wanted:
                n.email_state, n.email_due_at = "skipped", None
            elif n.email_digest:
                digest.append(n)
            else:
                _send_one(n, member)
                sent += 1
        if digest:
            _send_digest(member, digest)
            sent += 1
    return sent


def _send_digest(member: Membership, rows: list[Notification]) -> None:
    org = db.session.get(Organization, member.tenant_id)
    url = _unsubscribe_url(member, "digest")
    subject = f"Your day on {org.name}: {len(rows)} update{'s' if len(rows) != 1 else ''}"
    queue_email(member.user.email, subject, "digest", headers=_headers(url), member=member, org=org,
                notifications=rows, kinds=KINDS, unsubscribe_url=url, preferences_url=_preferences_url(org))
    for n in rows:
        n.email_state, n.email_due_at = "sent", None


def due_tenants(now: datetime | None = None) -> list[uuid.UUID]:
    """Organizations with notification emails due (through a narrow definer function)."""
    return list(db.session.scalars(text("SELECT notifications_due_tenants(:now)"), {"now": now or clock.now()}))
