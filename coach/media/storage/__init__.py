"""Where media bytes live: one protocol (:mod:`.base`), two backends, and the app's choice between them.

``S3Storage`` (:mod:`.s3`) talks to S3 or an S3-compatible store through presigned URLs;
``LocalStorage`` (:mod:`.local`) keeps objects on disk and signs URLs to the app's own ``/storage``
routes (coach.blueprints.storage), which behave like S3's.

Keys are built by the media service (``<tenant_id>/<media_id>/original``); this layer only
checks that a key is a plain relative path, so no backend can be walked out of its root.
"""
from __future__ import annotations

from pathlib import Path

from flask import current_app

from coach.media.storage.base import (
    MAX_KEY_LENGTH,
    MAX_PART_NUMBER,
    MAX_PART_SIZE,
    MAX_URL_TTL,
    MIN_PART_SIZE,
    MiB,
    Part,
    PartIncomplete,
    PartTooLarge,
    Storage,
    StorageError,
    UploadNotFound,
    content_disposition,
    validate_key,
)
from coach.media.storage.local import LocalStorage
from coach.media.storage.s3 import LIFECYCLE_RULE_ID, S3Storage

__all__ = [
    "LIFECYCLE_RULE_ID", "MAX_KEY_LENGTH", "MAX_PART_NUMBER", "MAX_PART_SIZE", "MAX_URL_TTL", "MIN_PART_SIZE", "MiB",
    "LocalStorage", "Part", "PartIncomplete", "PartTooLarge", "S3Storage", "Storage", "StorageError",
    "UploadNotFound", "build_storage", "content_disposition", "get_storage", "validate_key",
]

EXTENSION_KEY = "coach.media.storage"


def _settings(config) -> tuple:
    return (config.get("MEDIA_BACKEND", "local"), config.get("MEDIA_LOCAL_ROOT"), config.get("SECRET_KEY"),
            config.get("S3_BUCKET"), config.get("S3_REGION"), config.get("S3_ENDPOINT_URL"),
            config.get("S3_PUBLIC_ENDPOINT_URL"), config.get("MEDIA_PART_BYTES"))


def build_storage(config) -> Storage:
    """A backend for the given Flask config mapping (MEDIA_BACKEND, MEDIA_LOCAL_ROOT, S3_*)."""
    backend = config.get("MEDIA_BACKEND", "local")
    if backend == "local":
        if not config.get("MEDIA_LOCAL_ROOT"):
            raise StorageError("MEDIA_LOCAL_ROOT must be set when MEDIA_BACKEND=local.")
        # S3's 5 MiB floor, unless the app was told to cut smaller parts (tests, a slow-link demo):
        # the service sizes the parts, this only refuses sizes the service never hands out.
        min_part = min(MIN_PART_SIZE, config.get("MEDIA_PART_BYTES") or MIN_PART_SIZE)
        return LocalStorage(Path(config["MEDIA_LOCAL_ROOT"]), config["SECRET_KEY"], min_part_size=min_part)
    if backend == "s3":
        if (config.get("MEDIA_PART_BYTES") or MIN_PART_SIZE) < MIN_PART_SIZE:
            raise StorageError("MEDIA_PART_BYTES must be at least 5 MiB with S3 (its smallest part).")
        return S3Storage(config.get("S3_BUCKET", ""), config.get("S3_REGION") or "us-east-1",
                         config.get("S3_ENDPOINT_URL") or None, config.get("S3_PUBLIC_ENDPOINT_URL") or None)
    raise StorageError(f"MEDIA_BACKEND must be 'local' or 's3', not {backend!r}.")


def get_storage() -> Storage:
    """The current app's storage backend, built once from its config and kept in ``app.extensions``.

    It is rebuilt when the media settings change (tests point one app at a temporary folder
    or at a moto server), so a cached backend never outlives the config it was made from.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    settings = _settings(app.config)
    cached = app.extensions.get(EXTENSION_KEY)
    if cached is not None and cached[0] == settings:
        return cached[1]
    storage = build_storage(app.config)
    app.extensions[EXTENSION_KEY] = (settings, storage)
    return storage
