"""Media: upload intents and their finalizing, the quota, processing results, viewing rights,
deletion, and timestamped review comments on videos.

Services never commit; the caller commits once. Bytes never pass through here: the browser
sends them straight to object storage with the part URLs :func:`upload_plan` signs, and
the worker (:mod:`coach.media.jobs`) makes the renditions.

An item's life: ``uploading`` → ``processing`` (the object is complete and its first bytes
match its type) → ``ready`` or ``failed``; any of them → ``deleting`` → gone (a job removes
the stored objects, then the row). ``counted_bytes`` is what the organization's quota counts
for the item at each step: the declared size while uploading (so parallel uploads cannot
overshoot), the stored bytes afterwards, nothing once it failed (its objects are removed).

Who may do what: the owner and the organization's admins manage an item (rename, delete).
Viewing: the owner; the organization's coaches and admins; everyone in the organization when
its audience is ``organization``; and whoever can read a post it is attached to.
"""
from __future__ import annotations

import logging
import math
import re
import time
import unicodedata
import uuid
from functools import lru_cache
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import ColumnElement, and_, event as orm_event, func, or_, select, text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session, defaultload

from coach import clock
from coach.errors import DomainError
from coach.extensions import db
from coach.ids import parse_uuid
from coach.media import processing
from coach.media.events import MEDIA_DELETED, MEDIA_READY, MEDIA_REVIEW_COMMENTED, MEDIA_UPLOADED
from coach.media.models import AUDIENCES, MediaComment, MediaItem
from coach.media.storage import StorageError, get_storage
from coach.media.storage.base import MAX_PART_NUMBER, MAX_PART_SIZE, MIN_PART_SIZE
from coach.orgs.models import ADMIN, COACH, Membership, Organization
from coach.platform import audit
from coach.platform.outbox import emit
from coach.platform.pagination import Page, newest_first
from coach.platform.queues import redis_conn

log = logging.getLogger(__name__)
TITLE_MAX = 200
FILENAME_MAX = 255
COMMENT_MAX = 2000
LIBRARY_PAGE = 24
USAGE_TTL = 60  # seconds the room used, as pages show it, is kept in Redis (forgotten when an item changes)
_USAGE_CHANGES = "coach.media.usage_changes"
SIGNED_URLS = 8192  # links kept signed in a process (~300 bytes each), one per object and period
RENDITIONS = ("thumb", "large", "playback", "poster")
STAFF_ROLES = (COACH, ADMIN)  # who sees every item of the organization
LABELS = {"image/jpeg": "JPEG image", "image/png": "PNG image", "image/webp": "WebP image",
          "video/mp4": "MP4 video", "video/quicktime": "MOV video", "video/webm": "WebM video",
          "application/pdf": "PDF document"}


class MediaError(DomainError):
    """A request that cannot be carried out; the message is safe to show. HTTP 422 unless ``status`` says."""

    status = 422


class NotAllowed(MediaError):
    status = 403


class QuotaExceeded(MediaError):
    status = 413


class BadMoment(MediaError):
    """The moment of a review comment is unreadable or past the end of the video."""


class NotYet(MediaError):
    """The request is early (finalize before every part arrived): try again later."""

    status = 409


def _cfg(name: str):
    return current_app.config[name]


# --- loading and rights ----------------------------------------------------------------------------

def get_item(org: Organization, media_id) -> MediaItem | None:
    media_id = parse_uuid(media_id)
    if media_id is None:
        return None
    return db.session.scalar(select(MediaItem).where(MediaItem.tenant_id == org.id, MediaItem.id == media_id))


def can_manage(item: MediaItem, member: Membership) -> bool:
    return item.owner_membership_id == member.id or member.role == ADMIN


def can_view(item: MediaItem, member: Membership) -> bool:
    if item.status == "deleting":
        return False
    if item.status in ("uploading", "failed"):
        return can_manage(item, member)  # nothing to show anyone else yet (or ever)
    if (item.owner_membership_id == member.id or member.role in STAFF_ROLES
            or item.audience == "organization"):
        return True
    if not _VIEW_GRANTS:
        return False
    return db.session.scalar(select(or_(*(grant(member, item.id) for grant in _VIEW_GRANTS)))) or False


# Domains that attach media to their own rows (spaces' posts, chat's messages) say who may see an item
# through them: each rule gives an SQL EXISTS for (member, media id). They register when imported, so
# media, the lower domain, never imports them.
_VIEW_GRANTS: list[Callable[[Membership, uuid.UUID], ColumnElement[bool]]] = []


def grants_view(rule: Callable[[Membership, uuid.UUID], ColumnElement[bool]]):
    """Register ``rule(member, media_id)``: an EXISTS that lets ``member`` see the item (decorator)."""
    if rule not in _VIEW_GRANTS:
        _VIEW_GRANTS.append(rule)
    return rule


# --- quota ----------------------------------------------------------------------------------------

@dataclass
class Usage:
    used: int
    quota: int

    @property
    def free(self) -> int:
        return max(0, self.quota - self.used)

    @property
    def percent(self) -> int:
        return min(100, round(100 * self.used / self.quota)) if self.quota else 100


def quota_of(org: Organization) -> int:
    return org.media_quota_bytes if org.media_quota_bytes is not None else _cfg("MEDIA_QUOTA_BYTES")


def usage(org: Organization) -> Usage:
    used = db.session.scalar(select(func.coalesce(func.sum(MediaItem.counted_bytes), 0))
                             .where(MediaItem.tenant_id == org.id))
    return Usage(int(used), quota_of(org))


def shown_usage(org: Organization) -> Usage:
    """:func:`usage` as pages show it, kept in Redis for up to :data:`USAGE_TTL` seconds: summing every item of
    the organization on each view made the library's cost grow with the organization (~15 ms at 20,000 items).

    A transaction that changes items adds the change of their ``counted_bytes`` to the kept sum once it has
    committed (so the next page shows it, and needs no sum of its own); when the change cannot be told (a value
    set without the old one loaded, a savepoint rolled back), the kept sum is forgotten instead. The quota check
    itself still sums, under its lock. Redis away means summing in the database.
    """
    key = _usage_key(org.id)
    try:
        kept = redis_conn().get(key)
    except RedisError:
        kept = None
    if kept is not None:
        return Usage(int(kept), quota_of(org))
    found = usage(org)
    try:
        redis_conn().set(key, found.used, ex=USAGE_TTL)
    except RedisError:
        log.warning("could not keep the media usage of %s in Redis", org.id)
    return found


def _usage_key(tenant_id) -> str:
    return f"coach:media-usage:{tenant_id}"


# Adds to a kept sum only while it is kept: a sum that expired meanwhile is summed again by the next page.
_ADD_IF_KEPT = "if redis.call('exists', KEYS[1]) == 1 then return redis.call('incrby', KEYS[1], ARGV[1]) end"
_UNKNOWN = object()


def _bytes_change(obj: MediaItem, session) -> int | object:
    """How much ``obj`` changes its organization's counted bytes in this flush, or :data:`_UNKNOWN`."""
    if obj in session.new:
        return obj.counted_bytes or 0
    history = sa_inspect(obj).attrs.counted_bytes.history
    if obj in session.deleted:
        before = history.deleted or history.unchanged
        return -(before[0] or 0) if before else _UNKNOWN
    if not history.has_changes():
        return 0
    if not history.deleted:  # set without the old value loaded
        return _UNKNOWN
    return (history.added[0] or 0) - (history.deleted[0] or 0)


@orm_event.listens_for(Session, "after_flush")
def _note_usage_changes(session, flush_context) -> None:
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, MediaItem):
            change = _bytes_change(obj, session)
            if change != 0:
                noted = session.info.setdefault(_USAGE_CHANGES, {})
                known = noted.get(obj.tenant_id, 0)
                noted[obj.tenant_id] = _UNKNOWN if _UNKNOWN in (known, change) else known + change


@orm_event.listens_for(Session, "after_soft_rollback")
def _distrust_usage_changes(session, previous_transaction) -> None:
    # A rolled-back savepoint may have flushed changes that are noted but never committed.
    noted = session.info.get(_USAGE_CHANGES)
    if noted:
        for tenant_id in noted:
            noted[tenant_id] = _UNKNOWN


@orm_event.listens_for(Session, "after_commit")
def _apply_usage_changes(session) -> None:
    """Once the transaction has committed, add its changes to the kept sums (or forget a sum whose change is
    unknown). Applied before the commit, a page could sum the old rows meanwhile and keep them."""
    if session.in_nested_transaction():
        return
    noted = session.info.pop(_USAGE_CHANGES, None)
    if not noted:
        return
    try:
        with redis_conn().pipeline(transaction=False) as pipe:
            for tenant_id, change in noted.items():
                if change is _UNKNOWN:
                    pipe.delete(_usage_key(tenant_id))
                else:
                    pipe.eval(_ADD_IF_KEPT, 1, _usage_key(tenant_id), change)
            pipe.execute()
    except RedisError:
        log.warning("could not update the media usage of %s in Redis: it may be %s s old", list(noted), USAGE_TTL)


@orm_event.listens_for(Session, "after_transaction_end")
def _forget_noted_usage_changes(session, transaction) -> None:
    if transaction.parent is None:
        session.info.pop(_USAGE_CHANGES, None)  # rolled back (a commit has used and emptied it)


def _lock_quota(org: Organization) -> None:
    # One organization's quota checks run one at a time, so two uploads cannot both take the last bytes.
    db.session.execute(text("SELECT pg_advisory_xact_lock(hashtext('media-quota'), hashtext(:tid))"),
                       {"tid": str(org.id)})


def human_size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}".replace(".0 ", " ")
        n /= 1024
    return f"{n} TB"  # pragma: no cover


# --- starting and finishing an upload -------------------------------------------------------------

def clean_filename(name: str) -> str:
    """The file's base name, without paths, control characters or surrounding spaces."""
    name = unicodedata.normalize("NFC", name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip().strip(".")
    if len(name) <= FILENAME_MAX:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or len(extension) > 10:
        return name[:FILENAME_MAX]
    return stem[:FILENAME_MAX - len(extension) - 1].rstrip() + "." + extension  # keep the type's extension


def _a(label: str) -> str:
    return ("an " if label[0] in "AEIMO" else "a ") + label  # an MP4 video, a JPEG image


def _check_type(filename: str, content_type: str) -> str:
    content_type = (content_type or "").split(";")[0].strip().lower()
    if content_type not in processing.ALLOWED:
        kinds = ", ".join(sorted({label.split()[0] for label in LABELS.values()}))
        raise MediaError(f"This type of file cannot be uploaded. Allowed: {kinds}.")
    if not filename.lower().endswith(processing.EXTENSIONS[content_type]):
        raise MediaError(f"The file name should end in {' or '.join(processing.EXTENSIONS[content_type])} "
                         f"for {_a(LABELS[content_type])}.")
    return content_type


def _new_item(org: Organization, owner: Membership, filename: str, size, content_type: str, audience: str,
              title: str | None, now: datetime) -> MediaItem:
    """Check name, type, size and room; add the item (``uploading``, counted at its size)."""
    filename = clean_filename(filename)
    if not filename:
        raise MediaError("The file needs a name.")
    content_type = _check_type(filename, content_type)
    try:
        size = int(size)
    except (TypeError, ValueError, OverflowError):  # OverflowError: JSON's Infinity
        raise MediaError("The file size is missing.") from None
    if size <= 0:
        raise MediaError("The file is empty.")
    if size > _cfg("MEDIA_MAX_BYTES"):
        raise QuotaExceeded(f"Files can be up to {human_size(_cfg('MEDIA_MAX_BYTES'))}; "
                            f"this one is {human_size(size)}.")
    if audience not in AUDIENCES:
        raise MediaError("Choose who can see the file.")
    title = (title or "").strip() or (filename.rsplit(".", 1)[0] or filename)[:TITLE_MAX].strip()
    if len(title) > TITLE_MAX or "\x00" in title:
        raise MediaError(f"Titles can be up to {TITLE_MAX} characters.")
    _lock_quota(org)
    room = usage(org)
    if size > room.free:
        raise QuotaExceeded(f"Not enough room: {human_size(room.free)} of {human_size(room.quota)} left, "
                            f"the file needs {human_size(size)}. Delete older media or ask an admin.")
    part_bytes = max(_cfg("MEDIA_PART_BYTES"), math.ceil(size / 10_000))
    item = MediaItem(id=uuid.uuid4(), tenant_id=org.id, owner_membership_id=owner.id, audience=audience,
                     kind=processing.ALLOWED[content_type], title=title, filename=filename,
                     content_type=content_type, status="uploading", declared_bytes=size, counted_bytes=size,
                     part_bytes=part_bytes, part_count=math.ceil(size / part_bytes), derived_keys={},
                     upload_expires_at=now + timedelta(hours=_cfg("MEDIA_UPLOAD_TTL_HOURS")), created_at=now)
    item.original_key = f"{org.id}/{item.id}/original"
    db.session.add(item)
    db.session.flush()
    return item


def start_upload(org: Organization, owner: Membership, filename: str, size, content_type: str,
                 audience: str = "staff", title: str | None = None, now: datetime | None = None) -> MediaItem:
    """Check type, size and quota, create the item and its multipart upload.

    :param size: the size the browser declares; every part must match it exactly.
    :raises QuotaExceeded: when the organization's room (in-flight uploads counted) is too small.
    """
    item = _new_item(org, owner, filename, size, content_type, audience, title, now or clock.now())
    # If the transaction fails after this, the upload is orphaned in storage: the storage setup
    # gives S3 a lifecycle rule that aborts incomplete uploads, and the local sweep clears them.
    item.upload_id = get_storage().create_upload(item.original_key, item.content_type)
    db.session.flush()
    return item


def import_file(org: Organization, owner: Membership, path: Path, content_type: str, audience: str = "organization",
                title: str | None = None, now: datetime | None = None) -> MediaItem:
    """Store a file already on this machine (demo data, an operator's import) and hand it to processing,
    under the same checks as an upload."""
    now = now or clock.now()
    item = _new_item(org, owner, path.name, path.stat().st_size, content_type, audience, title, now)
    with path.open("rb") as f:
        head = f.read(512)
    if not processing.matches(item.content_type, head):
        raise MediaError(f"This file is not {_a(LABELS[item.content_type])}, whatever its name says.")
    get_storage().upload_file(path, item.original_key, item.content_type)
    item.status, item.size_bytes, item.uploaded_at = "processing", item.declared_bytes, now
    db.session.flush()
    emit(MEDIA_UPLOADED, {"media_id": str(item.id)})
    return item


def part_size(item: MediaItem, number: int) -> int:
    if number < item.part_count:
        return item.part_bytes
    return item.declared_bytes - item.part_bytes * (item.part_count - 1)


def upload_plan(item: MediaItem) -> dict:
    """What the browser needs to send (or resume sending) the file: every part's URL and size,
    and the parts storage already has in full."""
    if item.status != "uploading":
        raise NotYet("This upload is finished.") if item.status != "failed" else MediaError(item.failure_reason)
    _not_open(item)
    storage = get_storage()
    expires = max(_cfg("MEDIA_URL_TTL_SECONDS"), 3600)  # a slow connection needs time for many parts
    done = {p.number for p in storage.list_parts(item.original_key, item.upload_id)
            if p.size == part_size(item, p.number)}
    parts = [{"number": n, "size": part_size(item, n),
              "url": storage.part_url(item.original_key, item.upload_id, n, part_size(item, n), expires)}
             for n in range(1, item.part_count + 1)]
    return {"media_id": str(item.id), "part_bytes": item.part_bytes, "part_count": item.part_count,
            "size": item.declared_bytes, "parts": parts, "done": sorted(done)}


def _not_open(item: MediaItem) -> None:
    """An open-ended upload (a recording being made) is sent and finished by its own routes, not a file's."""
    if item.origin == "recording":
        raise NotYet("This recording is still being made in its session's room; it is finished when it stops.")


def _lock(item: MediaItem) -> MediaItem:
    """Re-read the item's row with a lock (not its owner's: the owner joins from the nullable side)."""
    return db.session.scalars(select(MediaItem).where(MediaItem.tenant_id == item.tenant_id, MediaItem.id == item.id)
                              .with_for_update(of=MediaItem).execution_options(populate_existing=True)).one()


def finalize(item: MediaItem, actor: Membership, now: datetime | None = None) -> MediaItem:
    """Complete the upload once every part is there, check the bytes are what was declared,
    and hand the item to the worker.

    A finalize that comes twice finds the item past ``uploading`` and changes nothing.
    :raises NotYet: a part is missing (the upload stays open, the browser sends it and retries).
    """
    _require(item.owner_membership_id == actor.id, "Only the person uploading finishes the upload.")
    item = _lock(item)
    if item.status != "uploading":
        return item
    _not_open(item)
    now = now or clock.now()
    storage = get_storage()
    parts = {p.number: p for p in storage.list_parts(item.original_key, item.upload_id)}
    for number in range(1, item.part_count + 1):
        part = parts.get(number)
        if part is None:
            raise NotYet(f"Part {number} of {item.part_count} has not arrived yet.")
        if part.size != part_size(item, number):
            return _fail(item, "The file sent does not match the size given when the upload started. "
                               "Please upload it again.", now)
    if len(parts) != item.part_count:
        return _fail(item, "More data arrived than the file's size. Please upload it again.", now)
    try:
        size = storage.complete_upload(item.original_key, item.upload_id,
                                       [parts[n] for n in range(1, item.part_count + 1)])
    except StorageError:
        log.exception("completing the upload of media %s failed", item.id)
        return _fail(item, "Storage could not put the file together. Please upload it again.", now)
    item.upload_id = None
    if size != item.declared_bytes:
        return _fail(item, "The file sent does not match the size given when the upload started. "
                           "Please upload it again.", now)
    if not processing.matches(item.content_type, storage.read_head(item.original_key, 512)):
        return _fail(item, f"This file is not {_a(LABELS[item.content_type])}, whatever its name says.", now)
    item.status = "processing"
    item.size_bytes = size
    item.counted_bytes = size
    item.uploaded_at = now
    db.session.flush()
    emit(MEDIA_UPLOADED, {"media_id": str(item.id)})
    return item


def _fail(item: MediaItem, reason: str, now: datetime) -> MediaItem:
    """Mark the item failed and give its bytes back: its stored objects go now."""
    storage = get_storage()
    if item.upload_id:
        storage.abort_upload(item.original_key, item.upload_id)
    # Also the renditions' usual places: a run that stored some and then gave up never recorded them.
    prefix = item.original_key.rsplit("/", 1)[0]
    storage.delete(sorted({item.original_key, *item.derived_keys.values(), *(f"{prefix}/{n}" for n in RENDITIONS)}))
    item.status = "failed"
    item.failure_reason = reason[:300]
    item.upload_id = None
    item.derived_keys = {}
    item.derived_bytes = 0
    item.counted_bytes = 0
    db.session.flush()
    return item


def fail_processing(item: MediaItem, reason: str, now: datetime | None = None) -> MediaItem:
    """The worker could not make the renditions (unreadable file, gave up after retries)."""
    item = _lock(item)
    if item.status != "processing":
        return item
    return _fail(item, reason, now or clock.now())


def record_renditions(item: MediaItem, keys: dict[str, str], derived_bytes: int, *, width: int | None,
                      height: int | None, duration_ms: int | None = None, now: datetime | None = None) -> bool:
    """The worker stored the renditions: the item is ready. ``False`` if it was no longer processing
    (deleted meanwhile, or another run finished first) — the caller then removes what it stored."""
    item = _lock(item)
    if item.status != "processing":
        return False
    item.derived_keys = keys
    item.derived_bytes = derived_bytes
    item.counted_bytes = (item.size_bytes or 0) + derived_bytes
    item.width, item.height, item.duration_ms = width, height, duration_ms
    item.status = "ready"
    item.ready_at = now or clock.now()
    db.session.flush()
    emit(MEDIA_READY, {"media_id": str(item.id)})
    return True


def _require(allowed: bool, message: str) -> None:
    if not allowed:
        raise NotAllowed(message)


# --- changing and deleting ------------------------------------------------------------------------

def update_details(item: MediaItem, actor: Membership, title: str, audience: str) -> MediaItem:
    _require(can_manage(item, actor), "Only the owner or an admin changes this.")
    title = (title or "").strip()
    if not title or len(title) > TITLE_MAX or "\x00" in title:
        raise MediaError(f"Give a title of 1 to {TITLE_MAX} characters.")
    if audience not in AUDIENCES:
        raise MediaError("Choose who can see the file.")
    item.title, item.audience = title, audience
    db.session.flush()
    return item


def delete_item(item: MediaItem, actor: Membership, now: datetime | None = None) -> None:
    """Take the item away at once; a job removes its objects and then the row (quota released)."""
    _require(can_manage(item, actor), "Only the owner or an admin deletes this.")
    item = _lock(item)
    if item.status == "deleting":
        return
    item.status = "deleting"
    item.deleted_at = now or clock.now()
    db.session.flush()
    if actor.id != item.owner_membership_id:
        audit.record("media.deleted", actor=actor.user, target_type="media", target_id=item.id,
                     details={"title": item.title, "owner": item.owner.user.email if item.owner else None})
    emit(MEDIA_DELETED, {"media_id": str(item.id)})


def purge(item: MediaItem) -> None:
    """Remove a deleting item's stored objects, then the row (attachments and comments go with it)."""
    item = _lock(item)
    if item.status != "deleting":
        return
    storage = get_storage()
    if item.upload_id:
        storage.abort_upload(item.original_key, item.upload_id)
    storage.delete([item.original_key, *item.derived_keys.values()])
    db.session.delete(item)
    db.session.flush()


def abandon_stale_uploads(org: Organization, now: datetime | None = None) -> int:
    """Uploads nobody finished in time: abort them and release their room."""
    now = now or clock.now()
    stale = list(db.session.scalars(select(MediaItem).where(
        MediaItem.tenant_id == org.id, MediaItem.status == "uploading", MediaItem.upload_expires_at <= now)
        .with_for_update(skip_locked=True, of=MediaItem)))
    for item in stale:
        _fail(item, "The upload was not finished in time.", now)
    return len(stale)


def due_tenants(now: datetime | None = None, stuck: timedelta = timedelta(hours=2)) -> list[uuid.UUID]:
    """Organizations with abandoned uploads, stuck processing or deletions to finish (a definer function)."""
    return list(db.session.scalars(text("SELECT media_due_tenants(:now, :stuck)"),
                                   {"now": now or clock.now(), "stuck": stuck}))


def stuck(org: Organization, now: datetime | None = None, after: timedelta = timedelta(hours=2)) -> dict:
    """Items the sweep should hand to the worker again: processing too long, deleting not finished."""
    now = now or clock.now()
    processing_ids = list(db.session.scalars(select(MediaItem.id).where(
        MediaItem.tenant_id == org.id, MediaItem.status == "processing", MediaItem.uploaded_at <= now - after)))
    deleting_ids = list(db.session.scalars(select(MediaItem.id).where(
        MediaItem.tenant_id == org.id, MediaItem.status == "deleting",
        MediaItem.deleted_at <= now - timedelta(minutes=5))))
    return {"processing": processing_ids, "deleting": deleting_ids}


# --- open-ended uploads (a call recorded while it goes on) -----------------------------------------
#
# A recording's size is known only when it stops, so its upload is open-ended: the browser asks for one part
# at a time, in order, sends it, and says it is stored; stop completes the upload with the parts as they came
# (sizes vary, the last is smaller). While open, ``part_count`` is the number of the part coming next (the
# stored ones are 1 .. part_count - 1), ``size_bytes`` their total, and ``declared_bytes`` (= ``counted_bytes``,
# what the quota counts) that total plus the part signed but not yet stored.

class OutOfOrder(MediaError):
    """A part asked for or reported out of turn, or an upload that has finished."""

    status = 409


def open_part_floor() -> int:
    """The smallest part storage takes before the last one (S3: 5 MiB; the local backend as configured)."""
    return getattr(get_storage(), "min_part_size", MIN_PART_SIZE)


def open_part_ceiling() -> int:
    """The largest part one request may ask for: four of the usual size (a slow recorder's backlog)."""
    return min(MAX_PART_SIZE, max(4 * _cfg("MEDIA_PART_BYTES"), MIN_PART_SIZE))


def start_open_upload(org: Organization, owner: Membership, filename: str, content_type: str, *, title: str,
                      audience: str = "staff", origin: str = "recording", now: datetime | None = None) -> MediaItem:
    """An upload whose size is not known yet; the room of its first part is taken from the quota now.

    :raises QuotaExceeded: not even one part fits.
    """
    item = _new_item(org, owner, filename, _cfg("MEDIA_PART_BYTES"), content_type, audience, title,
                     now or clock.now())
    item.origin = origin
    item.part_count = 1
    item.upload_id = get_storage().create_upload(item.original_key, item.content_type)
    db.session.flush()
    return item


def _open(item: MediaItem) -> MediaItem:
    item = _lock(item)
    if item.status != "uploading" or item.upload_id is None:
        raise OutOfOrder("The recording has stopped.")
    return item


def _whole(value, what: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise MediaError(f"The {what} is missing.") from None
    if isinstance(value, float) and value != number:
        raise MediaError(f"The {what} must be a whole number.")
    return number


def open_part_url(item: MediaItem, number, size, now: datetime | None = None) -> dict:
    """Sign part ``number`` of ``size`` bytes: the next part in order (or the same one again until it is
    stored), its room checked under the quota lock and added to the item's counted bytes.

    :raises OutOfOrder: not the next part, an earlier part was too small to be followed, or the upload is over.
    :raises QuotaExceeded: the organization's room or the largest file size would be passed.
    """
    number, size = _whole(number, "part number"), _whole(size, "part size")
    item = _open(item)
    following = item.part_count
    if number < following:
        raise OutOfOrder(f"Part {number} is already stored: part {following} comes next.")
    if number > following:
        raise OutOfOrder(f"Parts go in order: part {following} comes next, not part {number}.")
    if number >= MAX_PART_NUMBER:
        raise QuotaExceeded("This recording has as many parts as a file can have: stop it and start another.")
    if size < 1:
        raise MediaError("A part cannot be empty.")
    if size > open_part_ceiling():
        raise MediaError(f"A part can be up to {human_size(open_part_ceiling())}; this one is {human_size(size)}.")
    storage = get_storage()
    if number > 1:
        floor = open_part_floor()
        before = {p.number: p for p in storage.list_parts(item.original_key, item.upload_id)}.get(number - 1)
        if before is not None and before.size < floor:
            raise OutOfOrder(f"Only the last part may be smaller than {human_size(floor)}, and part {number - 1} "
                             f"was {human_size(before.size)}: stop the recording.")
    total = (item.size_bytes or 0) + size
    if total > _cfg("MEDIA_MAX_BYTES"):
        raise QuotaExceeded(f"A file can be up to {human_size(_cfg('MEDIA_MAX_BYTES'))}: stop this recording "
                            "(what was sent is kept) and start another.")
    growth = total - item.counted_bytes
    if growth > 0:
        org = db.session.get(Organization, item.tenant_id)
        _lock_quota(org)
        room = usage(org)
        if growth > room.free:
            raise QuotaExceeded(f"Not enough room to go on: {human_size(room.free)} of {human_size(room.quota)} "
                                "left. Stop the recording (what was sent is kept), or delete older media.")
    now = now or clock.now()
    item.declared_bytes = item.counted_bytes = total
    item.upload_expires_at = now + timedelta(hours=_cfg("MEDIA_UPLOAD_TTL_HOURS"))
    db.session.flush()
    expires = max(_cfg("MEDIA_URL_TTL_SECONDS"), 3600)
    return {"number": number, "size": size,
            "url": storage.part_url(item.original_key, item.upload_id, number, size, expires)}


def confirm_open_part(item: MediaItem, number, now: datetime | None = None) -> MediaItem:
    """The browser says part ``number`` is stored: check storage has it whole, and count it.

    Saying it again changes nothing. :raises NotYet: storage does not have it (yet, or whole).
    """
    number = _whole(number, "part number")
    item = _open(item)
    if number < item.part_count:
        return item
    if number > item.part_count:
        raise OutOfOrder(f"Parts go in order: part {item.part_count} comes next, not part {number}.")
    expected = item.declared_bytes - (item.size_bytes or 0)
    stored = {p.number: p for p in get_storage().list_parts(item.original_key, item.upload_id)}.get(number)
    if stored is None or stored.size != expected:
        raise NotYet(f"Part {number} has not arrived in storage whole: send it again.")
    item.size_bytes = (item.size_bytes or 0) + stored.size
    item.declared_bytes = item.counted_bytes = item.size_bytes
    item.part_count = number + 1
    item.upload_expires_at = (now or clock.now()) + timedelta(hours=_cfg("MEDIA_UPLOAD_TTL_HOURS"))
    db.session.flush()
    return item


def open_parts_stored(item: MediaItem) -> int:
    """How many parts of an open upload are stored and counted."""
    return item.part_count - 1 if item.status == "uploading" else item.part_count


def finish_open_upload(item: MediaItem, now: datetime | None = None) -> MediaItem:
    """Complete an open upload with the parts stored, in order, and hand it to processing like any upload.

    Also the part signed last when storage has it whole though nobody said so (the browser that stored it
    crashed or was stopped before it could). Nothing stored: the item is deleted (the normal deletion path).
    Finishing twice changes nothing.
    """
    item = _lock(item)
    if item.status != "uploading":
        return item
    now = now or clock.now()
    storage = get_storage()
    stored = {p.number: p for p in storage.list_parts(item.original_key, item.upload_id)}
    parts: list = []
    floor = open_part_floor()
    in_flight = item.declared_bytes - (item.size_bytes or 0)
    for number in range(1, item.part_count + 1):
        part = stored.get(number)
        if part is None or (number == item.part_count and part.size != in_flight):
            break
        parts.append(part)
        if part.size < floor:  # only a last part may be this small
            break
    if not parts:
        item.status = "deleting"
        item.deleted_at = now
        item.failure_reason = "Nothing was recorded."
        db.session.flush()
        emit(MEDIA_DELETED, {"media_id": str(item.id)})
        return item
    try:
        size = storage.complete_upload(item.original_key, item.upload_id, parts)
    except StorageError:
        log.exception("completing the open upload of media %s failed", item.id)
        return _fail(item, "Storage could not put the recording together.", now)
    item.upload_id = None
    if not processing.matches(item.content_type, storage.read_head(item.original_key, 512)):
        return _fail(item, f"This recording is not {_a(LABELS[item.content_type])}.", now)
    item.status = "processing"
    item.size_bytes = item.declared_bytes = item.counted_bytes = size
    item.part_count = len(parts)
    item.uploaded_at = now
    db.session.flush()
    emit(MEDIA_UPLOADED, {"media_id": str(item.id)})
    return item


# --- retention ------------------------------------------------------------------------------------

def keep(item: MediaItem, actor: Membership) -> MediaItem:
    """Keep an item the retention sweep would delete (its owner or an admin; audited)."""
    _require(can_manage(item, actor), "Only the owner or an admin keeps this.")
    item = _lock(item)
    if item.expires_at is None or item.status == "deleting":
        return item
    audit.record("media.kept", actor=actor.user, target_type="media", target_id=item.id,
                 details={"title": item.title, "was_due": item.expires_at.isoformat()})
    item.expires_at = None
    db.session.flush()
    return item


def expired_tenants(now: datetime | None = None) -> list[uuid.UUID]:
    """Organizations with media past its ``expires_at`` (a definer function: the sweep runs for all)."""
    return list(db.session.scalars(text("SELECT * FROM media_expired_tenants(:now)"), {"now": now or clock.now()}))


def delete_expired(org: Organization, now: datetime | None = None) -> int:
    """Delete the organization's items past their ``expires_at`` through the normal deletion path (a job
    removes their objects, then the rows; the room is given back)."""
    now = now or clock.now()
    due = list(db.session.scalars(select(MediaItem).where(
        MediaItem.tenant_id == org.id, MediaItem.expires_at.is_not(None), MediaItem.expires_at <= now,
        MediaItem.status != "deleting").with_for_update(skip_locked=True, of=MediaItem)))
    for item in due:
        item.status = "deleting"
        item.deleted_at = now
        audit.record("media.expired", target_type="media", target_id=item.id, actor_label="retention",
                     details={"title": item.title, "expires_at": item.expires_at.isoformat()})
    db.session.flush()
    for item in due:
        emit(MEDIA_DELETED, {"media_id": str(item.id)})
    return len(due)


# --- lists ----------------------------------------------------------------------------------------

def library(org: Organization, member: Membership, mine_only: bool = False, after: str | None = None,
            size: int = LIBRARY_PAGE) -> Page[MediaItem]:
    """Media the member may see, newest first, a page at a time (``after``: the previous page's cursor).

    Needs the storage its tiles link to (a misconfigured one fails here, whether or not a tile has a thumbnail).
    """
    get_storage()
    # A tile names its owner; the owner's organization (joined with every membership) is this one, and
    # each join more is planned again on every request.
    query = select(MediaItem).options(defaultload(MediaItem.owner).lazyload(Membership.organization)).where(
        MediaItem.tenant_id == org.id, MediaItem.status != "deleting")
    if mine_only:
        query = query.where(MediaItem.owner_membership_id == member.id)
    elif member.role not in STAFF_ROLES:
        query = query.where(or_(MediaItem.owner_membership_id == member.id,
                                and_(MediaItem.audience == "organization",
                                     MediaItem.status.in_(("ready", "processing")))))
    return newest_first(query, MediaItem.created_at, MediaItem.id, after, size)


def attachable(org: Organization, member: Membership, limit: int = 12) -> list[MediaItem]:
    """The member's own recent media that can go with a post or a message."""
    return list(db.session.scalars(select(MediaItem).where(
        MediaItem.tenant_id == org.id, MediaItem.owner_membership_id == member.id,
        MediaItem.status.in_(("ready", "processing"))).order_by(MediaItem.created_at.desc()).limit(limit)))


def for_attachment(org: Organization, member: Membership, ids: list[str], limit: int = 10) -> list[MediaItem]:
    """The member's items with these ids, in the given order; anything else is refused."""
    wanted: list[uuid.UUID] = []
    for raw in ids:
        ident = parse_uuid(raw)
        if ident is None:
            raise MediaError("One of the attachments is not a media item.")
        if ident not in wanted:
            wanted.append(ident)
    if len(wanted) > limit:
        raise MediaError(f"Attach up to {limit} items at a time.")
    if not wanted:
        return []
    found = {i.id: i for i in db.session.scalars(select(MediaItem).where(
        MediaItem.tenant_id == org.id, MediaItem.id.in_(wanted)))}
    items = []
    for ident in wanted:
        item = found.get(ident)
        if item is None or item.owner_membership_id != member.id:
            raise MediaError("Attach your own media only.")
        if item.status not in ("ready", "processing"):
            raise MediaError(f"“{item.title}” cannot be attached: it is {item.status}.")
        items.append(item)
    return items


# --- URLs -----------------------------------------------------------------------------------------

def url_ttl(item: MediaItem) -> int:
    """Long enough to watch the whole video once, short enough to be useless when shared later."""
    return max(_cfg("MEDIA_URL_TTL_SECONDS"), 2 * (item.duration_ms or 0) // 1000 + 300)


def urls(item: MediaItem) -> dict[str, str]:
    """Signed, short-lived URLs of the item's renditions (and the original, for its download)."""
    if item.status not in ("ready", "processing"):
        return {}
    storage, expires_at = get_storage(), _link_expiry(item)
    found = {}
    types = {"thumb": "image/webp", "large": "image/webp", "poster": "image/jpeg", "playback": "video/mp4"}
    for name, key in item.derived_keys.items():
        found[name] = _signed_url(storage, key, expires_at, types.get(name))
    found["original"] = _signed_url(storage, item.original_key, expires_at, item.content_type, item.filename,
                                    item.kind != "pdf")
    return found


def thumb_url(item: MediaItem) -> str | None:
    """The signed URL of the item's thumbnail alone (what a library tile shows), or ``None`` without one.

    The same URL :func:`urls` gives for it (one signature instead of one per rendition).
    """
    key = item.derived_keys.get("thumb") if item.status in ("ready", "processing") else None
    if not key:
        return None
    return _signed_url(get_storage(), key, _link_expiry(item), "image/webp")


def _link_expiry(item: MediaItem) -> int:
    """When the item's links expire (a Unix time): at the end of the next whole period, not "now + ttl", so the
    URLs stay the same for a while and browsers can keep thumbnails between pages."""
    ttl = url_ttl(item)
    return (int(time.time()) // ttl + 2) * ttl


@lru_cache(maxsize=SIGNED_URLS)
def _signed_url(storage, key: str, expires_at: int, content_type: str | None, filename: str | None = None,
                download: bool = False) -> str:
    """An object's link until ``expires_at``, signed once per object and period in this process: every page of
    the period links the same URL (S3's presigned URLs carry their signing time, so each signing would differ
    and the browser would fetch the object again), and a page of tiles costs no signing after the first."""
    return storage.get_url(key, max(1, expires_at - int(time.time())), content_type=content_type,
                           filename=filename, download=download)


# --- review comments ------------------------------------------------------------------------------

def parse_moment(value) -> int | None:
    """Milliseconds from "83.4" (seconds), "1:23", "1:02:03"; ``None`` if unreadable."""
    value = str(value or "").strip()
    if re.fullmatch(r"\d{1,6}(\.\d{1,3})?", value):
        return round(float(value) * 1000)
    match = re.fullmatch(r"(?:(\d{1,3}):)?(\d{1,3}):(\d{2})(\.\d{1,3})?", value)
    if not match:
        return None
    hours, minutes, seconds, fraction = match.groups()
    if int(seconds) > 59 or (hours and int(minutes) > 59):
        return None
    total = int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)
    return total * 1000 + round(float(fraction or 0) * 1000)


def add_review_comment(item: MediaItem, author: Membership, at_ms: int | None, body: str,
                       parent: MediaComment | None = None, now: datetime | None = None) -> MediaComment:
    """Comment on a moment of a ready video, or reply to a comment (replies share its moment)."""
    _require(can_view(item, author), "You cannot see this video.")
    if item.kind != "video" or item.status != "ready":
        raise MediaError("Comments at a moment are for videos that are ready to play.")
    body = (body or "").strip()
    if not body:
        raise MediaError("Write a comment first.")
    if len(body) > COMMENT_MAX or "\x00" in body:
        raise MediaError(f"Comments can be up to {COMMENT_MAX} characters.")
    if parent is not None:
        if parent.media_id != item.id or parent.tenant_id != item.tenant_id:
            raise MediaError("Reply to a comment on this video.")
        if parent.parent_id is not None:
            parent = db.session.get(MediaComment, parent.parent_id)
        at_ms = parent.at_ms
    if at_ms is None or at_ms < 0:
        raise BadMoment("Give the moment as minutes:seconds, like 1:23.")
    if item.duration_ms is not None and at_ms > item.duration_ms:
        raise BadMoment(f"The video is only {item.duration_label} long.")
    comment = MediaComment(tenant_id=item.tenant_id, media_id=item.id, parent_id=parent.id if parent else None,
                           author_membership_id=author.id, at_ms=at_ms, body=body, created_at=now or clock.now())
    db.session.add(comment)
    db.session.flush()
    emit(MEDIA_REVIEW_COMMENTED, {"media_id": str(item.id), "comment_id": str(comment.id),
                                    "owner_membership_id": str(item.owner_membership_id or ""),
                                    "author_membership_id": str(author.id)})
    return comment


def get_review_comment(item: MediaItem, comment_id) -> MediaComment | None:
    comment_id = parse_uuid(comment_id)
    if comment_id is None:
        return None
    return db.session.scalar(select(MediaComment).where(
        MediaComment.tenant_id == item.tenant_id, MediaComment.media_id == item.id, MediaComment.id == comment_id))


def review_comments(item: MediaItem) -> list[tuple[MediaComment, list[MediaComment]]]:
    """Top-level comments by moment, each with its replies oldest first (one query)."""
    rows = list(db.session.scalars(select(MediaComment).where(
        MediaComment.tenant_id == item.tenant_id, MediaComment.media_id == item.id)
        .order_by(MediaComment.at_ms, MediaComment.created_at, MediaComment.id)))
    replies: dict[uuid.UUID, list[MediaComment]] = {}
    for row in rows:
        if row.parent_id is not None:
            replies.setdefault(row.parent_id, []).append(row)
    for group in replies.values():
        group.sort(key=lambda c: (c.created_at, c.id))
    return [(row, replies.get(row.id, [])) for row in rows if row.parent_id is None]


def delete_review_comment(comment: MediaComment, actor: Membership, now: datetime | None = None) -> None:
    item = db.session.get(MediaItem, comment.media_id)
    _require(comment.author_membership_id == actor.id or can_manage(item, actor),
             "Only the author, the video's owner or an admin deletes a comment.")
    if comment.deleted_at is None:
        comment.deleted_at = now or clock.now()
        db.session.flush()
