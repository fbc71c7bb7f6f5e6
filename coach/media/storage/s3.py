"""The S3 backend (or any S3-compatible store: MinIO, R2): browsers upload parts and fetch objects
with presigned URLs, so large bytes never pass through the app.

boto3 takes a quarter of a second to import, so it is imported where a client is made: an app on
local storage never pays for it.
"""
from __future__ import annotations

import urllib.parse
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from coach.media.storage.base import (
    MIN_PART_SIZE,
    Part,
    StorageError,
    check_content_type,
    check_expires,
    check_order,
    check_part,
    content_disposition,
    validate_key,
)

LIFECYCLE_RULE_ID = "coach-abort-incomplete-uploads"
STREAM_CHUNK = 256 * 1024  # what read_chunks asks S3 for at a time

def _s3_client(region: str, endpoint_url: str | None, path_style: bool):
    import boto3  # see the module's docstring
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
        from boto3.exceptions import Boto3Error  # boto3 is loaded by now: a client exists

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
        check_content_type(content_type)
        with self._failures("start an upload of", key):
            response = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, ContentType=content_type)
        return response["UploadId"]

    def part_url(self, key: str, upload_id: str, number: int, size: int, expires: int) -> str:
        validate_key(key)
        check_part(number, size)
        check_expires(expires)
        # ContentLength is signed: S3 refuses a body of any other size, so a part cannot outgrow its slot.
        return self._presign("upload_part", {"Key": key, "UploadId": upload_id, "PartNumber": number,
                                             "ContentLength": size}, expires)

    def list_parts(self, key: str, upload_id: str) -> list[Part]:
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
        check_order(parts)
        listed = [{"PartNumber": part.number, "ETag": part.etag} for part in parts]
        with self._failures("complete the upload of", key):
            self.client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                  MultipartUpload={"Parts": listed})
        size = self.size_of(key)
        if size is None:
            raise StorageError(f"S3 reported the upload of {key!r} complete but the object is missing.")
        return size

    def abort_upload(self, key: str, upload_id: str) -> None:
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
        validate_key(key)
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            if _error_code(exc) in _MISSING_CODES:
                return None
            with self._failures("look up", key):
                raise

    def read_head(self, key: str, length: int = 512) -> bytes:
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
        check_content_type(content_type)
        if not Path(path).is_file():
            raise StorageError(f"Cannot store {key!r}: the file {path} does not exist.")
        with self._failures("upload", key):
            self.client.upload_file(str(path), self.bucket, key, ExtraArgs={"ContentType": content_type})

    def read_chunks(self, key: str) -> Iterator[bytes]:
        """The object's bytes, a chunk at a time, as S3 sends them (never the whole object in memory)."""
        validate_key(key)
        with self._failures("read", key):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        try:
            with self._failures("read", key):
                yield from body.iter_chunks(STREAM_CHUNK)
        finally:
            body.close()

    def upload_stream(self, chunks: Iterable[bytes], key: str, content_type: str,
                      part_size: int = MIN_PART_SIZE) -> int:
        """Store what ``chunks`` yields as ``key`` by a multipart upload, one part as soon as ``part_size``
        bytes have come; return the size. Each part is gathered in a temporary file, not in memory. If the
        iterator or S3 fails, the upload is aborted and nothing is stored."""
        validate_key(key)
        upload_id = self.create_upload(key, content_type)
        parts: list[Part] = []
        size = 0
        try:
            with tempfile.TemporaryFile(prefix="coach-part-") as spool:
                for chunk in chunks:
                    spool.write(chunk)
                    size += len(chunk)
                    if spool.tell() >= part_size:
                        parts.append(self._send_part(key, upload_id, len(parts) + 1, spool))
                if spool.tell() or not parts:  # the last part (an empty object is one empty part)
                    parts.append(self._send_part(key, upload_id, len(parts) + 1, spool))
            self.complete_upload(key, upload_id, parts)
        except BaseException:
            try:
                self.abort_upload(key, upload_id)
            except StorageError:
                pass  # the bucket's lifecycle rule aborts it later
            raise
        return size

    def _send_part(self, key: str, upload_id: str, number: int, spool) -> Part:
        length = spool.tell()
        spool.seek(0)
        with self._failures("upload a part of", key):
            response = self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                               Body=spool, ContentLength=length)
        spool.seek(0)
        spool.truncate()
        return Part(number, length, response["ETag"])

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

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with ``prefix`` (an organization's ``<id>/``); how many."""
        validate_key(prefix.rstrip("/"))
        keys: list[str] = []
        with self._failures("list", prefix):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(obj["Key"] for obj in page.get("Contents") or [])
        self.delete(keys)
        return len(keys)

    def get_url(self, key: str, expires: int, content_type: str | None = None,
                filename: str | None = None, download: bool = False) -> str:
        validate_key(key)
        check_expires(expires)
        params: dict = {"Key": key, "ResponseContentDisposition": content_disposition(filename, download)}
        if content_type:
            check_content_type(content_type)
            params["ResponseContentType"] = content_type
        return self._presign("get_object", params, expires)

    def browser_origin(self) -> str | None:
        parts = urllib.parse.urlsplit(self._public_endpoint)
        host = parts.netloc if self._public_path_style else f"{self.bucket}.{parts.netloc}"
        return f"{parts.scheme}://{host}"
