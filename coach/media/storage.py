"""Where media bytes live: one protocol, two backends.

``S3Storage`` talks to S3 (or any S3-compatible store); browsers upload parts and fetch
objects with presigned URLs, so large bytes never pass through the app. ``LocalStorage``
keeps objects on disk for development and small installs and signs URLs to the app's own
``/storage`` routes (coach.blueprints.storage), which behave like S3's: multipart uploads
with per-part size limits, signed expiring GETs with Range support.

Keys are built by the media service (``<tenant_id>/<media_id>/original``); this layer only
checks that a key is a plain relative path, so no backend can be walked out of its root.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from flask import current_app

MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB  # S3's minimum for every part but the last
MAX_PART_SIZE = 5 * 1024 * MiB  # S3's maximum part size
MAX_PART_NUMBER = 10_000
MAX_KEY_LENGTH = 500
MAX_URL_TTL = 7 * 24 * 3600  # SigV4 presigned URLs live at most a week
CHUNK = 256 * 1024  # streaming buffer: big enough to be fast, small enough to never matter for memory
EXTENSION_KEY = "coach.media.storage"
LIFECYCLE_RULE_ID = "coach-abort-incomplete-uploads"

_UPLOAD_ID_RE = re.compile(r"[A-Za-z0-9_-]{16,128}")
_PART_FILE_RE = re.compile(r"(\d{1,5})\.([0-9a-f]{32})")


class StorageError(Exception):
    """A storage backend could not do what was asked; the message is meant for an operator."""


class UploadNotFound(StorageError):
    """The multipart upload does not exist (never started, completed or aborted)."""


class PartTooLarge(StorageError):
    """More bytes arrived for a part than its signed size allows."""


class PartIncomplete(StorageError):
    """Fewer bytes arrived for a part than its signed size announced."""


@dataclass(frozen=True)
class Part:
    """One uploaded part of a multipart upload; ``etag`` is quoted, as S3 reports it."""

    number: int
    size: int
    etag: str


class Storage(Protocol):
    """What the media service needs from a place that keeps bytes."""

    name: str

    def create_upload(self, key: str, content_type: str) -> str: ...

    def part_url(self, key: str, upload_id: str, number: int, size: int, expires: int) -> str: ...

    def list_parts(self, key: str, upload_id: str) -> list[Part]: ...

    def complete_upload(self, key: str, upload_id: str, parts: list[Part]) -> int: ...

    def abort_upload(self, key: str, upload_id: str) -> None: ...

    def size_of(self, key: str) -> int | None: ...

    def read_head(self, key: str, length: int = 512) -> bytes: ...

    def download(self, key: str, path: Path) -> None: ...

    def upload_file(self, path: Path, key: str, content_type: str) -> None: ...

    def delete(self, keys: list[str]) -> None: ...

    def get_url(self, key: str, expires: int, content_type: str | None = None,
                filename: str | None = None, download: bool = False) -> str: ...

    def browser_origin(self) -> str | None: ...


# -- checks shared by both backends ----------------------------------------------------------------

def validate_key(key: str) -> str:
    """Return ``key`` if it is a plain relative path, else raise StorageError.

    Refused: empty, longer than MAX_KEY_LENGTH, a leading ``/``, backslashes, control
    characters, empty segments (``a//b``, a trailing ``/``) and segments that start with a dot
    (``.``, ``..``, hidden names), so a key can never leave the backend's root.
    """
    if not isinstance(key, str) or not key:
        raise StorageError("Storage key is empty.")
    if len(key) > MAX_KEY_LENGTH:
        raise StorageError(f"Storage key is longer than {MAX_KEY_LENGTH} characters.")
    if key.startswith("/") or "\\" in key or any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        raise StorageError(f"Storage key {key!r} is not a plain relative path.")
    for segment in key.split("/"):
        if not segment or segment.startswith("."):
            raise StorageError(f"Storage key {key!r} has an empty segment or one starting with '.'.")
    return key


def _check_part(number: int, size: int) -> None:
    if not 1 <= number <= MAX_PART_NUMBER:
        raise StorageError(f"Part number {number} is outside 1..{MAX_PART_NUMBER}.")
    if not 1 <= size <= MAX_PART_SIZE:
        raise StorageError(f"Part size {size} is outside 1..{MAX_PART_SIZE} bytes.")


def _check_expires(expires: int) -> None:
    if not 1 <= expires <= MAX_URL_TTL:
        raise StorageError(f"URL lifetime {expires}s is outside 1..{MAX_URL_TTL} seconds.")


def _check_content_type(content_type: str) -> None:
    if not content_type or len(content_type) > 255 or any(ord(ch) < 32 or ord(ch) > 126 for ch in content_type):
        raise StorageError(f"Content type {content_type!r} is not a plain MIME type.")


def _check_order(parts: list[Part]) -> None:
    """Parts of a completion must be non-empty and strictly ascending (S3 refuses anything else)."""
    if not parts:
        raise StorageError("An upload cannot be completed without parts.")
    numbers = [part.number for part in parts]
    if any(b <= a for a, b in zip(numbers, numbers[1:])):
        raise StorageError(f"Parts must be listed in ascending order without repeats, got {numbers}.")


def _same_etag(a: str, b: str) -> bool:
    return a.strip('"') == b.strip('"')


def content_disposition(filename: str | None, download: bool) -> str:
    """``inline``/``attachment`` with the filename in a form every browser reads (RFC 6266).

    The plain ``filename`` is an ASCII stand-in; ``filename*`` carries the real UTF-8 name.
    """
    kind = "attachment" if download else "inline"
    if not filename:
        return kind
    cleaned = "".join(ch for ch in filename if ch.isprintable() and ch not in '/\\"')[:200].strip() or "file"
    fallback = cleaned.encode("ascii", "replace").decode("ascii").replace("?", "_")
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{urllib.parse.quote(cleaned, safe='')}"


# -- local disk ------------------------------------------------------------------------------------

def _disk_errors(method):
    """A full disk or a broken folder is a storage failure (503), not a bug (500)."""
    @functools.wraps(method)
    def wrapped(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except OSError as exc:
            raise StorageError(f"Local media storage failed: {exc.strerror or exc}") from exc

    return wrapped


class LocalStorage:
    """Objects in ``<root>/objects/<key>``, upload parts in ``<root>/uploads/<upload_id>/``.

    Each part is stored as ``<number>.<md5 hex>`` so its ETag can never disagree with its bytes;
    every write goes to a temporary file first and is moved into place with ``os.replace``.

    :param root: the folder that holds everything (MEDIA_LOCAL_ROOT).
    :param secret_key: the app's SECRET_KEY; the URL signing key is derived from it.
    :param url_prefix: where the storage blueprint is mounted.
    :param min_part_size: the smallest part allowed before the last one; S3's 5 MiB by
        default so an upload that works here works in production too.
    :param clock: the time source for URL expiry (Unix seconds).
    """

    name = "local"

    def __init__(self, root: Path | str, secret_key: str | bytes, url_prefix: str = "/storage",
                 min_part_size: int = MIN_PART_SIZE, clock: Callable[[], float] = time.time) -> None:
        self.root = Path(root)
        secret = secret_key.encode() if isinstance(secret_key, str) else secret_key
        # A key of its own, so a signed storage URL can never double as a session cookie or CSRF token.
        self._signing_key = hmac.new(secret, b"coach.media.local-storage-urls.v1", hashlib.sha256).digest()
        self.url_prefix = url_prefix.rstrip("/")
        self.min_part_size = min_part_size
        self.clock = clock

    # folders

    @property
    def objects_dir(self) -> Path:
        return self.root / "objects"

    @property
    def uploads_dir(self) -> Path:
        return self.root / "uploads"

    def ensure_folders(self) -> list[Path]:
        """Create the object and upload folders; return the ones that were missing."""
        created = [path for path in (self.objects_dir, self.uploads_dir) if not path.is_dir()]
        for path in created:
            path.mkdir(parents=True, exist_ok=True)
        return created

    def object_path(self, key: str) -> Path:
        return self.objects_dir / validate_key(key)

    def _upload_dir(self, upload_id: str) -> Path | None:
        """The upload's folder if the id is well-formed and the upload exists."""
        if not isinstance(upload_id, str) or not _UPLOAD_ID_RE.fullmatch(upload_id):
            return None
        folder = self.uploads_dir / upload_id
        return folder if (folder / "upload.json").is_file() else None

    def _upload_folder_for(self, key: str, upload_id: str) -> Path:
        """The folder of the upload of ``key``; UploadNotFound when it does not exist or is another key's."""
        folder = self._upload_dir(upload_id)
        if folder is None:
            raise UploadNotFound(f"Upload {upload_id!r} does not exist (completed, aborted or never started).")
        try:
            meta = json.loads((folder / "upload.json").read_text())
        except (OSError, ValueError) as exc:
            raise UploadNotFound(f"Upload {upload_id!r} has no readable metadata.") from exc
        if meta.get("key") != key:
            raise UploadNotFound(f"Upload {upload_id!r} belongs to another key than {key!r}.")
        return folder

    # signing

    def _sign(self, *fields: object) -> str:
        # JSON keeps the fields apart unambiguously: no value can be shifted into its neighbour.
        message = json.dumps(fields, separators=(",", ":"), ensure_ascii=True).encode()
        digest = hmac.new(self._signing_key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def _signature_ok(self, signature: str, expires_at: int, *fields: object) -> bool:
        if expires_at < self.clock():
            return False
        return hmac.compare_digest(self._sign(*fields, expires_at).encode(), signature.encode())

    def seconds_left(self, expires_at: int) -> int:
        """Whole seconds until ``expires_at`` (a Unix time), never negative."""
        return max(0, math.floor(expires_at - self.clock()))

    def part_signature_ok(self, key: str, upload_id: str, number: int, size: int, expires_at: int,
                          signature: str) -> bool:
        """True when a part URL was signed by us for exactly this key, upload, part and size, and is unexpired."""
        return self._signature_ok(signature, expires_at, "PUT", key, upload_id, number, size)

    def object_signature_ok(self, key: str, expires_at: int, content_type: str, filename: str,
                            download: bool, signature: str) -> bool:
        """True when an object URL was signed by us for exactly these response settings, and is unexpired."""
        return self._signature_ok(signature, expires_at, "GET", key, content_type, filename, download)

    # multipart uploads

    @_disk_errors
    def create_upload(self, key: str, content_type: str) -> str:
        validate_key(key)
        _check_content_type(content_type)
        upload_id = secrets.token_urlsafe(24)
        folder = self.uploads_dir / upload_id
        folder.mkdir(parents=True)
        meta = {"key": key, "content_type": content_type, "created_at": int(time.time())}
        _write_atomically(folder / "upload.json", json.dumps(meta).encode())
        return upload_id

    def part_url(self, key: str, upload_id: str, number: int, size: int, expires: int) -> str:
        validate_key(key)
        _check_part(number, size)
        _check_expires(expires)
        expires_at = int(self.clock()) + expires
        query = urllib.parse.urlencode({
            "key": key, "size": size, "exp": expires_at,
            "sig": self._sign("PUT", key, upload_id, number, size, expires_at),
        })
        return f"{self.url_prefix}/parts/{urllib.parse.quote(upload_id, safe='')}/{number}?{query}"

    @_disk_errors
    def receive_part(self, key: str, upload_id: str, number: int, size: int, stream: IO[bytes]) -> Part:
        """Store the bytes of one part from ``stream``, replacing an earlier upload of that part.

        Streams in chunks; nothing is kept when the body is longer (PartTooLarge) or shorter
        (PartIncomplete) than ``size``, or when reading fails.
        """
        validate_key(key)
        _check_part(number, size)
        folder = self._upload_folder_for(key, upload_id)
        fd, temp_name = tempfile.mkstemp(dir=folder, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out:
                received, md5 = _copy_limited(stream, out, size)
            if received > size:
                raise PartTooLarge(f"Part {number} of upload {upload_id!r} is larger than {size} bytes.")
            if received < size:
                raise PartIncomplete(f"Part {number} of upload {upload_id!r} ended after {received} of {size} bytes.")
            final = folder / f"{number}.{md5}"
            os.replace(temp_name, final)
            # Like S3, a part uploaded again replaces the earlier one.
            for old in folder.glob(f"{number}.*"):
                if old != final:
                    old.unlink(missing_ok=True)
        finally:
            Path(temp_name).unlink(missing_ok=True)
        return Part(number=number, size=size, etag=f'"{md5}"')

    @_disk_errors
    def list_parts(self, key: str, upload_id: str) -> list[Part]:
        validate_key(key)
        try:
            folder = self._upload_folder_for(key, upload_id)
        except UploadNotFound:
            return []
        return [part for part, _ in self._parts_on_disk(folder).values()]

    def _parts_on_disk(self, folder: Path) -> dict[int, tuple[Part, Path]]:
        """Stored parts by number, ascending; the newest file wins if a re-upload is mid-way."""
        found: dict[int, tuple[Part, Path, float]] = {}
        for path in folder.iterdir():
            match = _PART_FILE_RE.fullmatch(path.name)
            if not match:
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:  # replaced while we looked
                continue
            number = int(match.group(1))
            if number in found and found[number][2] >= stat.st_mtime:
                continue
            found[number] = (Part(number, stat.st_size, f'"{match.group(2)}"'), path, stat.st_mtime)
        return {n: (found[n][0], found[n][1]) for n in sorted(found)}

    @_disk_errors
    def complete_upload(self, key: str, upload_id: str, parts: list[Part]) -> int:
        validate_key(key)
        _check_order(parts)
        folder = self._upload_folder_for(key, upload_id)
        stored = self._parts_on_disk(folder)
        sources = [self._checked_part(stored, part, is_last=i == len(parts) - 1) for i, part in enumerate(parts)]
        target = self.object_path(key)
        # Joining a 500 MB upload takes seconds of disk I/O, which does not yield to gevent: run it
        # in a thread, so the web worker's other requests go on meanwhile.
        size = _off_the_event_loop(lambda: _write_atomically_from(target, _concatenated(sources)))
        shutil.rmtree(folder, ignore_errors=True)
        return size

    def _checked_part(self, stored: dict[int, tuple[Part, Path]], wanted: Part, is_last: bool) -> Path:
        if wanted.number not in stored:
            raise StorageError(f"Part {wanted.number} was never uploaded.")
        part, path = stored[wanted.number]
        if not _same_etag(part.etag, wanted.etag):
            raise StorageError(f"Part {wanted.number} has ETag {part.etag}, not {wanted.etag}: it was replaced "
                               "or corrupted.")
        if not is_last and part.size < self.min_part_size:
            raise StorageError(f"Part {wanted.number} is {part.size} bytes; every part but the last must be at "
                               f"least {self.min_part_size} bytes.")
        return path

    @_disk_errors
    def abort_upload(self, key: str, upload_id: str) -> None:
        validate_key(key)
        folder = self._upload_dir(upload_id)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def remove_stale_uploads(self, max_age_seconds: int) -> int:
        """Delete uploads started more than ``max_age_seconds`` ago (what S3's lifecycle rule does).

        The media sweep aborts the uploads it knows about; this catches the ones whose database
        row never committed. Returns how many were removed.
        """
        cutoff = time.time() - max_age_seconds
        removed = 0
        if not self.uploads_dir.is_dir():
            return 0
        for folder in self.uploads_dir.iterdir():
            try:
                started = (folder / "upload.json").stat().st_mtime
            except (FileNotFoundError, NotADirectoryError):
                started = folder.lstat().st_mtime  # a folder whose metadata never got written
            if started < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed

    # objects

    @_disk_errors
    def size_of(self, key: str) -> int | None:
        try:
            return self.object_path(key).stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            return None

    @_disk_errors
    def read_head(self, key: str, length: int = 512) -> bytes:
        with self._open(key) as source:
            return source.read(max(length, 0))

    @_disk_errors
    def download(self, key: str, path: Path) -> None:
        with self._open(key) as source:
            _write_atomically_from(Path(path), _chunks(source))

    @_disk_errors
    def upload_file(self, path: Path, key: str, content_type: str) -> None:
        _check_content_type(content_type)
        target = self.object_path(key)
        try:
            with open(path, "rb") as source:
                _write_atomically_from(target, _chunks(source))
        except FileNotFoundError as exc:
            raise StorageError(f"Cannot store {key!r}: the file {path} does not exist.") from exc

    @_disk_errors
    def delete(self, keys: list[str]) -> None:
        for key in keys:
            path = self.object_path(key)
            try:
                path.unlink()
            except (FileNotFoundError, NotADirectoryError):
                continue
            self._prune_empty_folders(path.parent)

    def _prune_empty_folders(self, folder: Path) -> None:
        # Tenants and media come and go; their empty folders should not pile up forever.
        while folder != self.objects_dir and self.objects_dir in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    @contextmanager
    def _open(self, key: str) -> Iterator[IO[bytes]]:
        try:
            source = open(self.object_path(key), "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise StorageError(f"Object {key!r} does not exist in local storage ({self.objects_dir}).") from exc
        with source:
            yield source

    def get_url(self, key: str, expires: int, content_type: str | None = None,
                filename: str | None = None, download: bool = False) -> str:
        validate_key(key)
        _check_expires(expires)
        if content_type:
            _check_content_type(content_type)
        expires_at = int(self.clock()) + expires
        ct, fn, dl = content_type or "", filename or "", bool(download)
        args = {"exp": expires_at, "ct": ct, "fn": fn, "dl": int(dl),
                "sig": self._sign("GET", key, ct, fn, dl, expires_at)}
        query = urllib.parse.urlencode({k: v for k, v in args.items() if v != ""})
        return f"{self.url_prefix}/objects/{urllib.parse.quote(key, safe='/')}?{query}"

    def browser_origin(self) -> str | None:
        return None  # same origin as the app


def _off_the_event_loop(work: Callable[[], int]) -> int:
    """Run blocking file work in gevent's thread pool under a gevent server, directly otherwise."""
    try:
        from gevent import get_hub, monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        return work()
    if not monkey.is_module_patched("socket"):
        return work()
    return get_hub().threadpool.apply(work)


def _copy_limited(stream: IO[bytes], out: IO[bytes], size: int) -> tuple[int, str]:
    """Copy at most ``size + 1`` bytes (enough to notice an oversize body); return the count and md5."""
    md5 = hashlib.md5(usedforsecurity=False)
    received = 0
    while received <= size:
        chunk = stream.read(min(CHUNK, size + 1 - received))
        if not chunk:
            break
        received += len(chunk)
        md5.update(chunk)
        out.write(chunk)
    return received, md5.hexdigest()


def _chunks(source: IO[bytes]) -> Iterator[bytes]:
    while chunk := source.read(CHUNK):
        yield chunk


def _concatenated(paths: list[Path]) -> Iterator[bytes]:
    for path in paths:
        with open(path, "rb") as source:
            yield from _chunks(source)


def _write_atomically(target: Path, data: bytes) -> None:
    _write_atomically_from(target, iter([data]))


def _write_atomically_from(target: Path, chunks: Iterator[bytes]) -> int:
    """Write ``chunks`` to a temporary file beside ``target`` and move it into place; return the size.

    Readers see either the old file or the complete new one, never a half-written file.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise StorageError(f"Cannot create the folder for {target}: a file is in the way.") from exc
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
                size += len(chunk)
        os.replace(temp_name, target)
    except IsADirectoryError as exc:
        raise StorageError(f"Cannot write {target}: a folder of that name exists.") from exc
    finally:
        Path(temp_name).unlink(missing_ok=True)
    return size


# -- S3 --------------------------------------------------------------------------------------------

def _s3_client(region: str, endpoint_url: str | None, path_style: bool):
    import boto3
    from botocore.config import Config

    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path" if path_style else "virtual"},
        # Only the checksums S3 requires: presigned part URLs must not demand a checksum header the
        # browser cannot send, and S3-compatible stores (MinIO, R2, moto) reject some of the new defaults.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
    )
    return boto3.client("s3", region_name=region, endpoint_url=endpoint_url or None, config=config)


_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class S3Storage:
    """Objects in an S3 bucket; credentials come from boto3's usual chain (environment, profile, role).

    :param bucket: the bucket name (S3_BUCKET).
    :param region: the bucket's region (S3_REGION).
    :param endpoint_url: an S3-compatible endpoint the app talks to (MinIO, R2, moto); path-style
        addressing is used with it.
    :param public_endpoint_url: the endpoint browsers reach, when it differs from ``endpoint_url``
        (a proxy in front of MinIO); presigned URLs are signed for that host so their signature holds.
    """

    name = "s3"

    def __init__(self, bucket: str, region: str = "us-east-1", endpoint_url: str | None = None,
                 public_endpoint_url: str | None = None) -> None:
        if not bucket:
            raise StorageError("S3_BUCKET must be set when MEDIA_BACKEND=s3.")
        self.bucket = bucket
        self.region = region
        self.endpoint_url = endpoint_url or None
        self.client = _s3_client(region, self.endpoint_url, path_style=bool(self.endpoint_url))
        public = public_endpoint_url or self.endpoint_url
        # Without a custom endpoint, presign against the regional host: the global one answers
        # buckets outside us-east-1 with a redirect that breaks the signature.
        self._public_endpoint = public or f"https://s3.{region}.amazonaws.com"
        self._presigner = _s3_client(region, self._public_endpoint, path_style=bool(public))
        self._public_path_style = bool(public)

    @contextmanager
    def _failures(self, action: str, key: str = "") -> Iterator[None]:
        """Turn boto3's many exception types into one StorageError an operator can act on."""
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise StorageError(f"S3 could not {action} {key!r} in bucket {self.bucket!r}: "
                               f"{error.get('Code', '?')} {error.get('Message', '')}".rstrip()) from exc
        except (BotoCoreError, Boto3Error) as exc:
            raise StorageError(f"S3 could not {action} {key!r} in bucket {self.bucket!r}: {exc}") from exc

    def _presign(self, operation: str, params: dict, expires: int) -> str:
        with self._failures(f"sign a {operation} URL for", params.get("Key", "")):
            return self._presigner.generate_presigned_url(operation, Params={"Bucket": self.bucket, **params},
                                                          ExpiresIn=expires)

    # setup (flask media storage-setup)

    def ensure_bucket(self) -> bool:
        """Create the bucket if it does not exist; True when it was created."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
            return False
        except ClientError as exc:
            if _error_code(exc) not in _MISSING_CODES | {"NoSuchBucket"}:
                raise StorageError(f"S3 bucket {self.bucket!r} is not reachable: {exc}") from exc
        params: dict = {"Bucket": self.bucket}
        if self.region != "us-east-1":  # us-east-1 refuses an explicit location constraint
            params["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        with self._failures("create the bucket"):
            self.client.create_bucket(**params)
        return True

    def set_cors(self, origins: list[str]) -> dict:
        """Let the app's pages PUT parts and read ETags in the browser; return the rule set."""
        rule = {"AllowedOrigins": list(origins), "AllowedMethods": ["PUT", "GET", "HEAD"],
                "AllowedHeaders": ["*"], "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 3600}
        with self._failures("set CORS on the bucket"):
            self.client.put_bucket_cors(Bucket=self.bucket, CORSConfiguration={"CORSRules": [rule]})
        return rule

    def abort_incomplete_uploads_after(self, days: int) -> None:
        """Add (or update) a lifecycle rule that aborts multipart uploads left unfinished for ``days``.

        Other lifecycle rules on the bucket are kept: only the rule with our id is replaced.
        """
        from botocore.exceptions import ClientError

        try:
            rules = self.client.get_bucket_lifecycle_configuration(Bucket=self.bucket).get("Rules", [])
        except ClientError as exc:
            if _error_code(exc) != "NoSuchLifecycleConfiguration":
                with self._failures("read the lifecycle rules of the bucket"):
                    raise
            rules = []
        ours = {"ID": LIFECYCLE_RULE_ID, "Status": "Enabled", "Filter": {"Prefix": ""},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": days}}
        rules = [rule for rule in rules if rule.get("ID") != LIFECYCLE_RULE_ID] + [ours]
        with self._failures("set the lifecycle rules of the bucket"):
            self.client.put_bucket_lifecycle_configuration(Bucket=self.bucket,
                                                           LifecycleConfiguration={"Rules": rules})

    # multipart uploads

    def create_upload(self, key: str, content_type: str) -> str:
        validate_key(key)
        _check_content_type(content_type)
        with self._failures("start an upload of", key):
            response = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, ContentType=content_type)
        return response["UploadId"]

    def part_url(self, key: str, upload_id: str, number: int, size: int, expires: int) -> str:
        validate_key(key)
        _check_part(number, size)
        _check_expires(expires)
        # ContentLength is signed: S3 refuses a body of any other size, so a part cannot outgrow its slot.
        return self._presign("upload_part", {"Key": key, "UploadId": upload_id, "PartNumber": number,
                                             "ContentLength": size}, expires)

    def list_parts(self, key: str, upload_id: str) -> list[Part]:
        from botocore.exceptions import ClientError

        validate_key(key)
        parts: list[Part] = []
        pages = self.client.get_paginator("list_parts").paginate(Bucket=self.bucket, Key=key, UploadId=upload_id)
        try:
            for page in pages:
                parts.extend(Part(p["PartNumber"], p["Size"], p["ETag"]) for p in page.get("Parts", []))
        except ClientError as exc:
            if _error_code(exc) == "NoSuchUpload":
                return []
            with self._failures("list the parts of", key):
                raise
        return sorted(parts, key=lambda part: part.number)

    def complete_upload(self, key: str, upload_id: str, parts: list[Part]) -> int:
        validate_key(key)
        _check_order(parts)
        listed = [{"PartNumber": part.number, "ETag": part.etag} for part in parts]
        with self._failures("complete the upload of", key):
            self.client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                  MultipartUpload={"Parts": listed})
        size = self.size_of(key)
        if size is None:
            raise StorageError(f"S3 reported the upload of {key!r} complete but the object is missing.")
        return size

    def abort_upload(self, key: str, upload_id: str) -> None:
        from botocore.exceptions import ClientError

        validate_key(key)
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if _error_code(exc) in {"NoSuchUpload", *_MISSING_CODES}:
                return
            with self._failures("abort the upload of", key):
                raise

    # objects

    def size_of(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        validate_key(key)
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            if _error_code(exc) in _MISSING_CODES:
                return None
            with self._failures("look up", key):
                raise

    def read_head(self, key: str, length: int = 512) -> bytes:
        from botocore.exceptions import ClientError

        validate_key(key)
        if length <= 0:
            return b""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{length - 1}")
        except ClientError as exc:
            if _error_code(exc) == "InvalidRange":  # an empty object has no byte 0
                return b""
            with self._failures("read", key):
                raise
        with self._failures("read", key):
            return response["Body"].read(length)

    def download(self, key: str, path: Path) -> None:
        validate_key(key)
        # download_file streams to a temporary name beside ``path`` and renames it when done.
        with self._failures("download", key):
            self.client.download_file(self.bucket, key, str(path))

    def upload_file(self, path: Path, key: str, content_type: str) -> None:
        validate_key(key)
        _check_content_type(content_type)
        if not Path(path).is_file():
            raise StorageError(f"Cannot store {key!r}: the file {path} does not exist.")
        with self._failures("upload", key):
            self.client.upload_file(str(path), self.bucket, key, ExtraArgs={"ContentType": content_type})

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            validate_key(key)
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = keys[start:start + 1000]
            with self._failures("delete", ", ".join(batch[:3]) + (" …" if len(batch) > 3 else "")):
                response = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                raise StorageError(f"S3 could not delete {len(errors)} of {len(batch)} objects in bucket "
                                   f"{self.bucket!r}, e.g. {first.get('Key')!r}: {first.get('Code')} "
                                   f"{first.get('Message', '')}".rstrip())

    def get_url(self, key: str, expires: int, content_type: str | None = None,
                filename: str | None = None, download: bool = False) -> str:
        validate_key(key)
        _check_expires(expires)
        params: dict = {"Key": key, "ResponseContentDisposition": content_disposition(filename, download)}
        if content_type:
            _check_content_type(content_type)
            params["ResponseContentType"] = content_type
        return self._presign("get_object", params, expires)

    def browser_origin(self) -> str | None:
        parts = urllib.parse.urlsplit(self._public_endpoint)
        host = parts.netloc if self._public_path_style else f"{self.bucket}.{parts.netloc}"
        return f"{parts.scheme}://{host}"


# -- the app's backend -----------------------------------------------------------------------------

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
