"""Media jobs: make the renditions of an upload, remove deleted media, sweep what was left behind.

``media.uploaded`` and ``media.deleted`` events only enqueue the real work on the ``media``
queue (one job id per item, so a redelivered event does not queue it twice); the work runs
outside the event's transaction because a transcode can take minutes. Each job is
idempotent: it acts only on an item still in the state it expects.
"""
from __future__ import annotations

import logging
import tempfile
import uuid
from pathlib import Path

from flask import current_app, g
from rq import Retry, get_current_job

from coach import tenancy
from coach.extensions import db
from coach.media import processing, service
from coach.media.events import MEDIA_DELETED, MEDIA_UPLOADED
from coach.media.models import MediaItem
from coach.media.storage import get_storage
from coach.orgs.models import Organization
from coach.platform.jobs import consumer, each_tenant, get_app
from coach.platform.periodic import periodic
from coach.platform.queues import queue

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
GAVE_UP = "We could not process this file. Please try uploading it again."


def _enqueue(func, tenant_id, media_id, job_id: str, timeout: int) -> None:
    queue("media").enqueue(func, str(tenant_id), str(media_id), job_id=job_id, job_timeout=timeout,
                           retry=Retry(max=MAX_ATTEMPTS - 1, interval=[0, 300]), result_ttl=3600,
                           failure_ttl=7 * 86400, description=f"{func.__name__} {media_id}")


def enqueue_processing(tenant_id, media_id) -> None:
    _enqueue(process_media, tenant_id, media_id, f"media-process-{media_id}", 3600)


def enqueue_purge(tenant_id, media_id) -> None:
    _enqueue(purge_media, tenant_id, media_id, f"media-purge-{media_id}", 600)


@consumer(MEDIA_UPLOADED)
def _uploaded(payload: dict) -> None:
    enqueue_processing(g.tenant_id, payload["media_id"])


@consumer(MEDIA_DELETED)
def _deleted(payload: dict) -> None:
    enqueue_purge(g.tenant_id, payload["media_id"])


def process_media(tenant_id: str, media_id: str) -> str:
    """RQ entry point: make the item's renditions and mark it ready, or failed with a reason."""
    app = get_app()
    with app.app_context(), tenancy.acting_for(uuid.UUID(tenant_id)):
        item = _claim(media_id)
        if item is None:
            return "skipped"
        attempt = item.processing_attempts
        try:
            with tempfile.TemporaryDirectory(prefix="coach-media-") as tmp:
                outcome = _render(item, Path(tmp))
        except processing.ProcessingError as exc:
            _finish_failed(media_id, str(exc))
            return "failed"
        except Exception:
            db.session.rollback()
            if attempt >= MAX_ATTEMPTS:
                log.exception("media %s failed on its last attempt", media_id)
                _finish_failed(media_id, GAVE_UP)
                return "failed"
            raise  # RQ retries
        return outcome


def _claim(media_id: str) -> MediaItem | None:
    """Count the attempt in its own commit, so an item that kills the worker is not retried forever."""
    item = db.session.get(MediaItem, uuid.UUID(media_id))
    if item is None or item.status != "processing":
        db.session.rollback()
        return None
    item.processing_attempts += 1
    db.session.commit()
    if item.processing_attempts > MAX_ATTEMPTS:
        _finish_failed(media_id, GAVE_UP)
        return None
    return item


def _render(item: MediaItem, tmp: Path) -> str:
    storage = get_storage()
    source = tmp / "source"
    storage.download(item.original_key, source)
    media_id, kind = item.id, item.kind
    prefix = item.original_key.rsplit("/", 1)[0]
    db.session.rollback()  # hold no transaction during the heavy part (nothing of the item is read after)
    uploads: list[tuple[str, Path, str]] = []
    width = height = duration = None
    if kind == "image":
        result = processing.process_image(source, tmp)
        width, height = result.width, result.height
        uploads = [("thumb", result.thumb, "image/webp"), ("large", result.large, "image/webp")]
    elif kind == "video":
        job = get_current_job()
        result = processing.process_video(source, tmp, timeout=(job.timeout if job and job.timeout else 3600) - 60)
        width, height, duration = result.info.width, result.info.height, result.info.duration_ms
        uploads = [("playback", result.playback, "video/mp4"), ("poster", result.poster, "image/jpeg"),
                   ("thumb", result.thumb, "image/webp")]
    keys = {}
    derived = 0
    for name, path, content_type in uploads:
        key = f"{prefix}/{name}"
        storage.upload_file(path, key, content_type)
        keys[name] = key
        derived += path.stat().st_size
    item = db.session.get(MediaItem, media_id)
    if item is None or not service.record_renditions(item, keys, derived, width=width, height=height,
                                                    duration_ms=duration):
        db.session.rollback()
        if keys:
            storage.delete(list(keys.values()))  # deleted meanwhile: leave nothing behind
        return "skipped"
    db.session.commit()
    return "ready"


def _finish_failed(media_id: str, reason: str) -> None:
    db.session.rollback()
    item = db.session.get(MediaItem, uuid.UUID(media_id))
    if item is not None:
        service.fail_processing(item, reason)
    db.session.commit()


def purge_media(tenant_id: str, media_id: str) -> str:
    """RQ entry point: remove a deleted item's objects, then its row."""
    app = get_app()
    with app.app_context(), tenancy.acting_for(uuid.UUID(tenant_id)):
        item = db.session.get(MediaItem, uuid.UUID(media_id))
        if item is None or item.status != "deleting":
            db.session.rollback()
            return "skipped"
        service.purge(item)
        db.session.commit()
        return "purged"


@periodic(every=600, name="sweep_media")
def sweep_all() -> int:
    """Abandoned uploads (aborted, room released), processing that never finished, deletions to redo:
    every organization with such work, one transaction each; then the local backend's upload folders
    that no row knows about (S3 has a lifecycle rule for those)."""
    done = 0
    for tenant_id in service.due_tenants():
        db.session.rollback()
        with tenancy.acting_for(tenant_id):
            try:
                org = db.session.get(Organization, tenant_id)
                done += service.abandon_stale_uploads(org)
                stuck = service.stuck(org)
                db.session.commit()
                for media_id in stuck["processing"]:
                    enqueue_processing(tenant_id, media_id)
                for media_id in stuck["deleting"]:
                    enqueue_purge(tenant_id, media_id)
                done += len(stuck["processing"]) + len(stuck["deleting"])
            except Exception:
                db.session.rollback()
                log.exception("media sweep failed for organization %s", tenant_id)
    db.session.commit()
    storage = get_storage()
    if hasattr(storage, "remove_stale_uploads"):
        # Twice the upload lifetime: rows expire first and are aborted above with their accounting.
        done += storage.remove_stale_uploads(2 * 3600 * current_app.config["MEDIA_UPLOAD_TTL_HOURS"])
    return done


@periodic(every=3600, name="sweep_media_retention")
def sweep_retention() -> int:
    """Media past its ``expires_at`` (recordings after the organization's retention, unless kept): deleted
    through the normal path, so their objects are removed and their room given back."""
    return each_tenant(service.expired_tenants(), _delete_expired, "media retention sweep")


def _delete_expired(tenant_id: uuid.UUID) -> int:
    return service.delete_expired(db.session.get(Organization, tenant_id))
