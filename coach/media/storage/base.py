"""What both storage backends share: the protocol, its errors and limits, and the checks on what they are given.

Apart from ``__init__`` so the backends can import it without importing the package that imports them.
"""
from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB  # S3's minimum for every part but the last
MAX_PART_SIZE = 5 * 1024 * MiB  # S3's maximum part size
MAX_PART_NUMBER = 10_000
MAX_KEY_LENGTH = 500
MAX_URL_TTL = 7 * 24 * 3600  # SigV4 presigned URLs live at most a week


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

    def read_chunks(self, key: str) -> Iterator[bytes]: ...

    def upload_stream(self, chunks: Iterable[bytes], key: str, content_type: str) -> int: ...

    def delete(self, keys: list[str]) -> None: ...

    def delete_prefix(self, prefix: str) -> int: ...

    def get_url(self, key: str, expires: int, content_type: str | None = None,
                filename: str | None = None, download: bool = False) -> str: ...

    def browser_origin(self) -> str | None: ...


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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
    if key.startswith("/") or "\\" in key or _CONTROL.search(key):
        raise StorageError(f"Storage key {key!r} is not a plain relative path.")
    for segment in key.split("/"):
        if not segment or segment.startswith("."):
            raise StorageError(f"Storage key {key!r} has an empty segment or one starting with '.'.")
    return key


def check_part(number: int, size: int) -> None:
    if not 1 <= number <= MAX_PART_NUMBER:
        raise StorageError(f"Part number {number} is outside 1..{MAX_PART_NUMBER}.")
    if not 1 <= size <= MAX_PART_SIZE:
        raise StorageError(f"Part size {size} is outside 1..{MAX_PART_SIZE} bytes.")


def check_expires(expires: int) -> None:
    if not 1 <= expires <= MAX_URL_TTL:
        raise StorageError(f"URL lifetime {expires}s is outside 1..{MAX_URL_TTL} seconds.")


def check_content_type(content_type: str) -> None:
    if not content_type or len(content_type) > 255 or any(ord(ch) < 32 or ord(ch) > 126 for ch in content_type):
        raise StorageError(f"Content type {content_type!r} is not a plain MIME type.")


def check_order(parts: list[Part]) -> None:
    """Parts of a completion must be non-empty and strictly ascending (S3 refuses anything else)."""
    if not parts:
        raise StorageError("An upload cannot be completed without parts.")
    numbers = [part.number for part in parts]
    if any(b <= a for a, b in zip(numbers, numbers[1:])):
        raise StorageError(f"Parts must be listed in ascending order without repeats, got {numbers}.")


def same_etag(a: str, b: str) -> bool:
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
