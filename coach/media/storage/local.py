"""The local disk backend: objects in a folder, URLs signed for the app's own ``/storage`` routes.

For development and small installs. The routes (coach.blueprints.storage) behave like S3's:
multipart uploads with per-part size limits, signed expiring GETs with Range support, so an
upload that works here works in production too.
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
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from coach.media.storage.base import (
    MIN_PART_SIZE,
    Part,
    PartIncomplete,
    PartTooLarge,
    StorageError,
    UploadNotFound,
    check_content_type,
    check_expires,
    check_order,
    check_part,
    same_etag,
    validate_key,
)

CHUNK = 256 * 1024  # streaming buffer: big enough to be fast, small enough to never matter for memory

_UPLOAD_ID_RE = re.compile(r"[A-Za-z0-9_-]{16,128}")
_PART_FILE_RE = re.compile(r"(\d{1,5})\.([0-9a-f]{32})")


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
        check_content_type(content_type)
        upload_id = secrets.token_urlsafe(24)
        folder = self.uploads_dir / upload_id
        folder.mkdir(parents=True)
        meta = {"key": key, "content_type": content_type, "created_at": int(time.time())}
        _write_atomically(folder / "upload.json", json.dumps(meta).encode())
        return upload_id

    def part_url(self, key: str, upload_id: str, number: int, size: int, expires: int) -> str:
        validate_key(key)
        check_part(number, size)
        check_expires(expires)
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
        check_part(number, size)
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
        check_order(parts)
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
        if not same_etag(part.etag, wanted.etag):
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
        check_content_type(content_type)
        target = self.object_path(key)
        try:
            with open(path, "rb") as source:
                _write_atomically_from(target, _chunks(source))
        except FileNotFoundError as exc:
            raise StorageError(f"Cannot store {key!r}: the file {path} does not exist.") from exc

    def read_chunks(self, key: str) -> Iterator[bytes]:
        """The object's bytes, a chunk at a time (a generator: the file is open only while it is read)."""
        try:
            with self._open(key) as source:
                yield from _chunks(source)
        except OSError as exc:
            raise StorageError(f"Local media storage failed: {exc.strerror or exc}") from exc

    @_disk_errors
    def upload_stream(self, chunks: Iterable[bytes], key: str, content_type: str) -> int:
        """Store what ``chunks`` yields as ``key`` without holding it in memory; return its size. Nothing
        is stored if the iterator raises (the temporary file is removed)."""
        check_content_type(content_type)
        return _write_atomically_from(self.object_path(key), iter(chunks))

    @_disk_errors
    def delete(self, keys: list[str]) -> None:
        for key in keys:
            path = self.object_path(key)
            try:
                path.unlink()
            except (FileNotFoundError, NotADirectoryError):
                continue
            self._prune_empty_folders(path.parent)

    @_disk_errors
    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with ``prefix`` (a folder: ``<organization id>/``); how many."""
        folder = self.object_path(prefix.rstrip("/"))
        if not folder.is_dir():
            return 0
        files = [path for path in folder.rglob("*") if path.is_file()]
        self.delete([str(path.relative_to(self.objects_dir)) for path in files])
        shutil.rmtree(folder, ignore_errors=True)
        return len(files)

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
        check_expires(expires)
        if content_type:
            check_content_type(content_type)
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
