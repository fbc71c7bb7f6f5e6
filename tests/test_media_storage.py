"""Media storage: the S3 backend against moto over real HTTP, the local backend and its signed routes.

Both backends are driven the way the app drives them: the browser PUTs parts to signed URLs
and fetches objects with signed GETs; the worker downloads and uploads whole files.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import time
import urllib.parse
from datetime import datetime, timezone

import pytest
import requests

from coach.media import service as media_service
from coach.media.models import MediaItem
from coach.media.storage import LocalStorage, Part, S3Storage, StorageError, get_storage
from tests.media_support import (  # noqa: F401  (fixtures)
    MiB,
    REGION,
    aws_credentials,
    local_media,
    moto_server,
    new_bucket_name,
    put_bytes,
    query_of,
    s3_media,
    s3_storage,
)

KEY = "tenant-1/media-1/original"
TTL = 600
BAD_KEYS = ["../escape", "tenant/../../escape", "/etc/passwd", "a//b", "a/b/", "a\\b", "a/./b", ".hidden/x",
            "", "x" * 501, "a\nb"]


def three_parts() -> list[bytes]:
    """Two full 5 MiB parts (S3's minimum for all but the last) and a short last one."""
    return [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(1234)]


def quoted_md5(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


# -- S3 (moto server over HTTP) ----------------------------------------------------------------------

def test_s3_upload_from_browser_parts_to_download(s3_storage: S3Storage):
    chunks = three_parts()
    whole = b"".join(chunks)
    upload_id = s3_storage.create_upload(KEY, "video/mp4")

    etags = []
    for number, chunk in enumerate(chunks, start=1):
        answer = put_bytes(s3_storage.part_url(KEY, upload_id, number, len(chunk), TTL), chunk)
        assert answer.status_code == 200
        etags.append(answer.headers["ETag"])

    parts = s3_storage.list_parts(KEY, upload_id)
    assert parts == [Part(n, len(c), e) for n, (c, e) in enumerate(zip(chunks, etags), start=1)]
    assert s3_storage.complete_upload(KEY, upload_id, parts) == len(whole)
    assert s3_storage.size_of(KEY) == len(whole)
    assert s3_storage.list_parts(KEY, upload_id) == []  # the upload is gone once complete

    url = s3_storage.get_url(KEY, TTL, content_type="video/mp4")
    full = requests.get(url, timeout=30)
    assert full.status_code == 200 and full.content == whole
    assert full.headers["Content-Type"] == "video/mp4"
    ranged = requests.get(url, headers={"Range": "bytes=5242870-5242889"}, timeout=30)
    assert ranged.status_code == 206
    assert ranged.content == whole[5242870:5242890]
    assert ranged.headers["Content-Range"] == f"bytes 5242870-5242889/{len(whole)}"


def test_s3_part_url_is_signed_for_its_expiry_and_exact_size(s3_storage: S3Storage):
    upload_id = s3_storage.create_upload(KEY, "video/mp4")
    url = s3_storage.part_url(KEY, upload_id, 2, 8 * MiB, 900)
    args = query_of(url)
    assert url.startswith(f"{s3_storage.endpoint_url}/{s3_storage.bucket}/{KEY}?")
    assert args["X-Amz-Expires"] == "900"
    assert args["partNumber"] == "2" and args["uploadId"] == upload_id
    # S3 then refuses a body of any other length: a part cannot outgrow its slot.
    assert "content-length" in args["X-Amz-SignedHeaders"].split(";")
    assert not any(name.lower().startswith("x-amz-checksum") for name in args)  # a browser cannot send one


def test_s3_download_url_names_the_file_and_type(s3_storage: S3Storage, tmp_path):
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(1000))
    s3_storage.upload_file(source, KEY, "video/mp4")

    url = s3_storage.get_url(KEY, 300, content_type="video/mp4", filename="Finale – Satz 2.mp4", download=True)
    args = query_of(url)
    assert args["X-Amz-Expires"] == "300"
    assert args["response-content-type"] == "video/mp4"
    disposition = args["response-content-disposition"]
    assert disposition.startswith('attachment; filename="Finale _ Satz 2.mp4"')
    assert "filename*=UTF-8''Finale%20%E2%80%93%20Satz%202.mp4" in disposition
    answer = requests.get(url, timeout=30)
    assert answer.content == source.read_bytes()
    assert answer.headers["Content-Disposition"] == disposition

    inline = query_of(s3_storage.get_url(KEY, 300, content_type="application/pdf", filename="plan.pdf"))
    assert inline["response-content-disposition"].startswith('inline; filename="plan.pdf"')


def test_s3_worker_reads_downloads_replaces_and_deletes_objects(s3_storage: S3Storage, tmp_path):
    original = tmp_path / "in.bin"
    original.write_bytes(b"GIF89a" + os.urandom(3 * MiB))
    s3_storage.upload_file(original, KEY, "image/gif")
    assert s3_storage.read_head(KEY, 6) == b"GIF89a"
    assert s3_storage.read_head(KEY) == original.read_bytes()[:512]

    copy = tmp_path / "out.bin"
    s3_storage.download(KEY, copy)
    assert copy.read_bytes() == original.read_bytes()

    thumb = "tenant-1/media-1/thumb.webp"
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    s3_storage.upload_file(empty, thumb, "image/webp")
    assert s3_storage.size_of(thumb) == 0 and s3_storage.read_head(thumb) == b""

    s3_storage.delete([KEY, thumb, "tenant-1/never-existed"])
    assert s3_storage.size_of(KEY) is None and s3_storage.size_of(thumb) is None
    s3_storage.delete([KEY])  # deleting again is fine
    with pytest.raises(StorageError, match="NoSuchKey"):
        s3_storage.read_head(KEY)
    with pytest.raises(StorageError, match="does not exist"):
        s3_storage.upload_file(tmp_path / "missing", KEY, "image/gif")


def test_s3_abort_discards_the_upload_and_can_repeat(s3_storage: S3Storage):
    upload_id = s3_storage.create_upload(KEY, "video/mp4")
    assert put_bytes(s3_storage.part_url(KEY, upload_id, 1, 10, TTL), b"0123456789").status_code == 200
    s3_storage.abort_upload(KEY, upload_id)
    assert s3_storage.list_parts(KEY, upload_id) == []
    s3_storage.abort_upload(KEY, upload_id)  # a retried sweep must not fail
    assert s3_storage.size_of(KEY) is None


def test_s3_complete_with_a_wrong_etag_fails_readably(s3_storage: S3Storage):
    upload_id = s3_storage.create_upload(KEY, "video/mp4")
    put_bytes(s3_storage.part_url(KEY, upload_id, 1, 3, TTL), b"abc")
    with pytest.raises(StorageError, match=f"S3 could not complete the upload of '{KEY}'"):
        s3_storage.complete_upload(KEY, upload_id, [Part(1, 3, quoted_md5(b"xyz"))])


def test_s3_browser_origin_is_where_the_signed_urls_point(moto_server, aws_credentials):
    def origin_of(url: str) -> str:
        parts = urllib.parse.urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}"

    local = S3Storage("media-bkt", REGION, endpoint_url=moto_server)
    assert local.browser_origin() == moto_server == origin_of(local.get_url(KEY, 60))

    proxied = S3Storage("media-bkt", REGION, endpoint_url=moto_server, public_endpoint_url="https://media.example.com")
    assert proxied.browser_origin() == "https://media.example.com"
    assert proxied.part_url(KEY, "up-1", 1, 100, 60).startswith(f"https://media.example.com/media-bkt/{KEY}?")

    aws = S3Storage("media-bkt", "eu-central-1")
    assert aws.browser_origin() == "https://media-bkt.s3.eu-central-1.amazonaws.com"
    assert origin_of(aws.get_url(KEY, 60)) == aws.browser_origin()


def test_storage_setup_creates_the_bucket_with_cors_for_the_app(app, moto_server, aws_credentials, monkeypatch):
    bucket = new_bucket_name()
    for name, value in {"MEDIA_BACKEND": "s3", "S3_BUCKET": bucket, "S3_REGION": REGION,
                        "S3_ENDPOINT_URL": moto_server}.items():
        monkeypatch.setitem(app.config, name, value)
    runner = app.test_cli_runner()

    result = runner.invoke(args=["media", "storage-setup", "--origin", "https://app.example.com"])
    assert result.exit_code == 0, result.output
    assert f"Created bucket '{bucket}'" in result.output
    assert "Set CORS: PUT, GET, HEAD from https://app.example.com" in result.output

    with app.app_context():
        client = get_storage().client
    [rule] = client.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert rule["AllowedOrigins"] == ["https://app.example.com"]
    assert sorted(rule["AllowedMethods"]) == ["GET", "HEAD", "PUT"]
    assert rule["AllowedHeaders"] == ["*"] and rule["ExposeHeaders"] == ["ETag"]
    assert rule["MaxAgeSeconds"] == 3600
    [lifecycle] = client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert lifecycle["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] >= 1

    again = runner.invoke(args=["media", "storage-setup", "--origin", "https://app.example.com"])
    assert again.exit_code == 0 and f"Found bucket '{bucket}'" in again.output
    assert len(client.get_bucket_cors(Bucket=bucket)["CORSRules"]) == 1
    assert len(client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]) == 1

    bad = runner.invoke(args=["media", "storage-setup", "--origin", "app.example.com"])
    assert bad.exit_code != 0 and "is not an origin" in bad.output


# -- keys ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", BAD_KEYS)
def test_keys_that_are_not_plain_relative_paths_are_refused(key, tmp_path, moto_server, aws_credentials):
    for storage in (LocalStorage(tmp_path, "secret"), S3Storage("media-bkt", REGION, endpoint_url=moto_server)):
        with pytest.raises(StorageError):
            storage.create_upload(key, "video/mp4")
        with pytest.raises(StorageError):
            storage.part_url(key, "upload-id-0123456789", 1, 10, 60)
        with pytest.raises(StorageError):
            storage.get_url(key, 60)
        with pytest.raises(StorageError):
            storage.delete([key])
    assert not any(tmp_path.parent.glob("escape"))


# -- local backend, directly -----------------------------------------------------------------------

@pytest.fixture()
def disk(tmp_path) -> LocalStorage:
    return LocalStorage(tmp_path / "media", "another-secret", min_part_size=10)


def test_local_objects_are_read_downloaded_replaced_and_deleted(disk: LocalStorage, tmp_path):
    source = tmp_path / "in.bin"
    source.write_bytes(b"\x89PNG" + os.urandom(2 * MiB))
    disk.upload_file(source, KEY, "image/png")
    assert disk.size_of(KEY) == source.stat().st_size
    assert disk.read_head(KEY, 4) == b"\x89PNG"
    target = tmp_path / "nested" / "out.bin"
    disk.download(KEY, target)
    assert target.read_bytes() == source.read_bytes()

    disk.delete([KEY, "tenant-1/never-existed"])
    assert disk.size_of(KEY) is None
    assert list((tmp_path / "media" / "objects").iterdir()) == []  # empty tenant folders are tidied away
    with pytest.raises(StorageError, match="does not exist"):
        disk.read_head(KEY)
    with pytest.raises(StorageError, match="does not exist"):
        disk.download(KEY, target)


def test_local_complete_refuses_missing_replaced_or_small_parts(disk: LocalStorage):
    import io

    upload_id = disk.create_upload(KEY, "video/mp4")
    first = disk.receive_part(KEY, upload_id, 1, 12, io.BytesIO(b"first-twelve"))
    last = disk.receive_part(KEY, upload_id, 3, 4, io.BytesIO(b"last"))
    with pytest.raises(StorageError, match="Part 2 was never uploaded"):
        disk.complete_upload(KEY, upload_id, [first, Part(2, 12, '"00"'), last])
    with pytest.raises(StorageError, match="Part 1 has ETag"):
        disk.complete_upload(KEY, upload_id, [Part(1, 12, quoted_md5(b"other bytes!")), last])
    with pytest.raises(StorageError, match="ascending"):
        disk.complete_upload(KEY, upload_id, [last, first])
    assert disk.size_of(KEY) is None  # nothing half-written

    small = disk.receive_part(KEY, upload_id, 2, 3, io.BytesIO(b"abc"))
    with pytest.raises(StorageError, match="at least 10 bytes"):
        disk.complete_upload(KEY, upload_id, [first, small, last])
    assert disk.complete_upload(KEY, upload_id, [first, last]) == 16  # unlisted parts are dropped
    assert disk.read_head(KEY) == b"first-twelvelast"
    with pytest.raises(StorageError, match="does not exist"):
        disk.complete_upload(KEY, upload_id, [first, last])  # the upload is gone


def test_local_upload_belongs_to_its_key(disk: LocalStorage):
    import io

    upload_id = disk.create_upload(KEY, "video/mp4")
    with pytest.raises(StorageError, match="another key"):
        disk.receive_part("tenant-2/media-9/original", upload_id, 1, 3, io.BytesIO(b"abc"))
    assert disk.list_parts("tenant-2/media-9/original", upload_id) == []


def test_local_abort_is_idempotent_and_stale_uploads_are_swept(disk: LocalStorage):
    import io

    upload_id = disk.create_upload(KEY, "video/mp4")
    disk.receive_part(KEY, upload_id, 1, 3, io.BytesIO(b"abc"))
    disk.abort_upload(KEY, upload_id)
    assert disk.list_parts(KEY, upload_id) == []
    disk.abort_upload(KEY, upload_id)
    disk.abort_upload(KEY, "never-started-upload-id")

    kept, old = disk.create_upload(KEY, "video/mp4"), disk.create_upload(KEY, "video/mp4")
    long_ago = time.time() - 3 * 86400
    os.utime(disk.uploads_dir / old / "upload.json", (long_ago, long_ago))
    assert disk.remove_stale_uploads(86400) == 1
    assert [p.name for p in disk.uploads_dir.iterdir()] == [kept]


def test_local_storage_setup_creates_the_folders(app, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "MEDIA_BACKEND", "local")
    monkeypatch.setitem(app.config, "MEDIA_LOCAL_ROOT", str(tmp_path / "media"))
    result = app.test_cli_runner().invoke(args=["media", "storage-setup"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "media" / "objects").is_dir() and (tmp_path / "media" / "uploads").is_dir()
    assert "Created" in result.output
    again = app.test_cli_runner().invoke(args=["media", "storage-setup"])
    assert "already exist" in again.output


def test_the_app_builds_its_backend_from_config(app, tmp_path, monkeypatch, moto_server, aws_credentials):
    monkeypatch.setitem(app.config, "MEDIA_BACKEND", "local")
    monkeypatch.setitem(app.config, "MEDIA_LOCAL_ROOT", str(tmp_path))
    with app.app_context():
        first = get_storage()
        assert isinstance(first, LocalStorage) and first.root == tmp_path
        assert get_storage() is first  # built once
        assert first.browser_origin() is None
        monkeypatch.setitem(app.config, "MEDIA_BACKEND", "s3")
        monkeypatch.setitem(app.config, "S3_BUCKET", "")
        with pytest.raises(StorageError, match="S3_BUCKET must be set"):
            get_storage()
        monkeypatch.setitem(app.config, "S3_BUCKET", "media-bkt")
        monkeypatch.setitem(app.config, "S3_ENDPOINT_URL", moto_server)
        s3 = get_storage()
        assert isinstance(s3, S3Storage) and s3.bucket == "media-bkt"
        assert s3.browser_origin() == moto_server
        monkeypatch.setitem(app.config, "MEDIA_BACKEND", "ftp")
        with pytest.raises(StorageError, match="MEDIA_BACKEND must be 'local' or 's3'"):
            get_storage()


# -- local backend over HTTP -----------------------------------------------------------------------

def upload_parts(client, storage: LocalStorage, chunks: list[bytes], key: str = KEY) -> tuple[str, list[Part]]:
    upload_id = storage.create_upload(key, "video/mp4")
    for number, chunk in enumerate(chunks, start=1):
        answer = client.put(storage.part_url(key, upload_id, number, len(chunk), TTL), data=chunk)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert answer.headers["ETag"] == quoted_md5(chunk)
    return upload_id, storage.list_parts(key, upload_id)


def stored(storage: LocalStorage, key: str = KEY) -> bytes:
    return storage.object_path(key).read_bytes()


def part_files(storage: LocalStorage, upload_id: str) -> list[str]:
    """What is on disk for an upload besides its metadata (parts, leftovers of failed writes)."""
    return sorted(p.name for p in (storage.uploads_dir / upload_id).iterdir() if p.name != "upload.json")


def test_local_upload_from_browser_parts_to_download(client, local_media: LocalStorage):
    chunks = three_parts()
    whole = b"".join(chunks)
    upload_id, parts = upload_parts(client, local_media, chunks)
    assert [(p.number, p.size, p.etag) for p in parts] == [
        (n, len(c), quoted_md5(c)) for n, c in enumerate(chunks, start=1)]
    assert local_media.complete_upload(KEY, upload_id, parts) == len(whole)
    assert local_media.size_of(KEY) == len(whole)
    assert not (local_media.uploads_dir / upload_id).exists()

    answer = client.get(local_media.get_url(KEY, TTL, content_type="video/mp4", filename="match.mp4"))
    assert answer.status_code == 200 and answer.data == whole
    assert answer.headers["Content-Type"] == "video/mp4"
    assert answer.headers["Content-Disposition"] == 'inline; filename="match.mp4"; filename*=UTF-8\'\'match.mp4'
    assert answer.headers["Accept-Ranges"] == "bytes"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    cache = answer.headers["Cache-Control"]
    assert cache.startswith("private, max-age=") and TTL - 5 <= int(cache.rsplit("=", 1)[1]) <= TTL


def test_local_video_seeks_with_range_requests(client, local_media: LocalStorage, tmp_path):
    data = os.urandom(100_000)
    (tmp_path / "clip").write_bytes(data)
    local_media.upload_file(tmp_path / "clip", KEY, "video/mp4")
    url = local_media.get_url(KEY, TTL, content_type="video/mp4")

    middle = client.get(url, headers={"Range": "bytes=1000-1999"})
    assert middle.status_code == 206
    assert middle.data == data[1000:2000]
    assert middle.headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"
    tail = client.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.data == data[-10:]
    beyond = client.get(url, headers={"Range": f"bytes={len(data) + 10}-"})
    assert beyond.status_code == 416

    head = client.head(url)
    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Length"] == str(len(data))
    assert head.headers["Content-Type"] == "video/mp4"


def test_local_download_link_names_the_file_and_pages_cannot_run(client, local_media: LocalStorage, tmp_path):
    (tmp_path / "page").write_bytes(b"<script>alert(1)</script>")
    local_media.upload_file(tmp_path / "page", KEY, "text/html")

    named = client.get(local_media.get_url(KEY, TTL, content_type="video/mp4", filename="Spiel ü.mp4",
                                           download=True))
    assert named.headers["Content-Disposition"] == (
        'attachment; filename="Spiel _.mp4"; filename*=UTF-8\'\'Spiel%20%C3%BC.mp4')

    html = client.get(local_media.get_url(KEY, TTL, content_type="text/html"))
    assert html.headers["Content-Type"] == "application/octet-stream"
    assert html.headers["Content-Disposition"].startswith("attachment")
    assert "sandbox" in html.headers["Content-Security-Policy"]
    assert "default-src 'none'" in html.headers["Content-Security-Policy"]


def test_local_links_with_a_changed_signature_or_setting_are_refused(client, local_media: LocalStorage, tmp_path):
    (tmp_path / "clip").write_bytes(b"bytes")
    local_media.upload_file(tmp_path / "clip", KEY, "video/mp4")
    url = local_media.get_url(KEY, TTL, content_type="video/mp4")
    assert client.get(url).status_code == 200

    path, args = url.split("?")[0], query_of(url)
    tampered = {**args, "sig": args["sig"][:-2] + ("AA" if not args["sig"].endswith("AA") else "BB")}
    for changed in (tampered, {**args, "ct": "text/plain"}, {**args, "dl": "1"},
                    {**args, "exp": str(int(args["exp"]) + 3600)}, {k: v for k, v in args.items() if k != "sig"}):
        answer = client.get(f"{path}?{urllib.parse.urlencode(changed)}")
        assert answer.status_code == 403
        assert "invalid or has expired" in answer.get_data(as_text=True)
    other_key = "tenant-2/media-1/original"
    local_media.upload_file(tmp_path / "clip", other_key, "video/mp4")
    assert client.get(url.replace(KEY, other_key)).status_code == 403
    assert client.get(f"/storage/objects/{KEY}?exp=nonsense&sig=x").status_code == 403


def test_local_links_expire(client, local_media: LocalStorage, tmp_path, monkeypatch):
    (tmp_path / "clip").write_bytes(b"bytes")
    local_media.upload_file(tmp_path / "clip", KEY, "video/mp4")
    get_link = local_media.get_url(KEY, 60)
    upload_id = local_media.create_upload(KEY, "video/mp4")
    put_link = local_media.part_url(KEY, upload_id, 1, 5, 60)

    monkeypatch.setattr(local_media, "clock", lambda: time.time() + 61)  # a minute later
    assert client.get(get_link).status_code == 403
    assert client.put(put_link, data=b"bytes").status_code == 403
    assert local_media.list_parts(KEY, upload_id) == []


def test_local_part_link_is_for_one_part_of_one_upload(client, local_media: LocalStorage):
    upload_id = local_media.create_upload(KEY, "video/mp4")
    other_upload = local_media.create_upload("tenant-1/media-2/original", "video/mp4")
    url = local_media.part_url(KEY, upload_id, 1, 5, TTL)

    assert client.put(url.replace(f"/{upload_id}/1?", f"/{upload_id}/2?"), data=b"12345").status_code == 403
    assert client.put(url.replace(upload_id, other_upload), data=b"12345").status_code == 403
    wrong_key = url.replace(urllib.parse.quote(KEY, safe=""), urllib.parse.quote("tenant-1/media-2/original", safe=""))
    assert wrong_key != url and client.put(wrong_key, data=b"12345").status_code == 403
    bigger = url.replace("size=5", "size=50")
    assert bigger != url and client.put(bigger, data=b"12345").status_code == 403
    assert local_media.list_parts(KEY, upload_id) == [] and part_files(local_media, upload_id) == []
    assert client.put(url, data=b"12345").status_code == 200


def test_local_oversize_part_is_refused_and_nothing_kept(client, local_media: LocalStorage):
    upload_id = local_media.create_upload(KEY, "video/mp4")
    url = local_media.part_url(KEY, upload_id, 1, 1000, TTL)
    answer = client.put(url, data=os.urandom(1001))
    assert answer.status_code == 413
    assert part_files(local_media, upload_id) == []


def test_local_chunked_part_over_real_http(live_server, local_media: LocalStorage):
    upload_id = local_media.create_upload(KEY, "video/mp4")
    target = urllib.parse.urlsplit(live_server)

    def send_chunked(url: str, pieces: list[bytes]) -> int:
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
        try:
            conn.request("PUT", url, body=iter(pieces), encode_chunked=True)
            return conn.getresponse().status
        except (BrokenPipeError, ConnectionResetError):
            return 413  # the server may answer and close before the rest is sent
        finally:
            conn.close()

    url = local_media.part_url(KEY, upload_id, 1, 3000, TTL)
    assert send_chunked(url, [b"a" * 1000] * 4) == 413
    assert part_files(local_media, upload_id) == []
    assert send_chunked(url, [b"b" * 1000] * 3) == 200
    assert local_media.list_parts(KEY, upload_id) == [Part(1, 3000, quoted_md5(b"b" * 3000))]


def test_local_short_part_is_refused_and_nothing_kept(client, local_media: LocalStorage):
    upload_id = local_media.create_upload(KEY, "video/mp4")
    answer = client.put(local_media.part_url(KEY, upload_id, 1, 1000, TTL), data=b"only a few bytes")
    assert answer.status_code == 400
    assert "ended after 16 of 1000 bytes" in answer.get_data(as_text=True)
    assert part_files(local_media, upload_id) == []


def test_local_part_for_an_unknown_or_finished_upload_is_refused(client, local_media: LocalStorage):
    url = local_media.part_url(KEY, "no-such-upload-000000", 1, 3, TTL)
    answer = client.put(url, data=b"abc")
    assert answer.status_code == 400
    assert "does not exist" in answer.get_data(as_text=True)

    upload_id = local_media.create_upload(KEY, "video/mp4")
    local_media.abort_upload(KEY, upload_id)
    assert client.put(local_media.part_url(KEY, upload_id, 1, 3, TTL), data=b"abc").status_code == 400
    assert not (local_media.uploads_dir / upload_id).exists()


def test_local_part_sent_again_replaces_the_first(client, local_media: LocalStorage):
    upload_id = local_media.create_upload(KEY, "video/mp4")
    url = local_media.part_url(KEY, upload_id, 1, 6, TTL)
    assert client.put(url, data=b"first!").status_code == 200
    again = client.put(url, data=b"second")
    assert again.headers["ETag"] == quoted_md5(b"second")
    parts = local_media.list_parts(KEY, upload_id)
    assert parts == [Part(1, 6, quoted_md5(b"second"))]
    assert part_files(local_media, upload_id) == [f"1.{hashlib.md5(b'second').hexdigest()}"]
    assert local_media.complete_upload(KEY, upload_id, parts) == 6
    assert stored(local_media) == b"second"


def test_local_routes_refuse_paths_outside_the_root(client, local_media: LocalStorage, tmp_path):
    (tmp_path / "secret").write_bytes(b"not yours")
    url = local_media.get_url(KEY, TTL)
    args = urllib.parse.urlencode(query_of(url))
    for path in ("/storage/objects/../secret", "/storage/objects/..%2F..%2Fsecret", "/storage/objects//etc/passwd",
                 "/storage/objects/tenant-1/..%5C..%5Csecret"):
        answer = client.get(f"{path}?{args}", follow_redirects=True)
        assert answer.status_code in (403, 404)
        assert b"not yours" not in answer.data


def test_storage_routes_do_not_exist_when_media_is_on_s3(client, local_media: LocalStorage, tmp_path, monkeypatch):
    (tmp_path / "clip").write_bytes(b"bytes")
    local_media.upload_file(tmp_path / "clip", KEY, "video/mp4")
    get_link = local_media.get_url(KEY, TTL)
    upload_id = local_media.create_upload(KEY, "video/mp4")
    put_link = local_media.part_url(KEY, upload_id, 1, 5, TTL)

    monkeypatch.setitem(client.application.config, "MEDIA_BACKEND", "s3")
    assert client.get(get_link).status_code == 404
    assert client.put(put_link, data=b"bytes").status_code == 404


def test_storage_requests_are_not_held_back_by_the_app_wide_limit(client, local_media: LocalStorage, tmp_path,
                                                                  monkeypatch):
    (tmp_path / "clip").write_bytes(b"bytes")
    local_media.upload_file(tmp_path / "clip", KEY, "video/mp4")
    url = local_media.get_url(KEY, TTL)
    monkeypatch.setitem(client.application.config, "RATELIMIT_PER_IP", "3 per minute")

    assert [client.get("/login").status_code for _ in range(4)][-1] == 429  # the app-wide limit is on
    assert {client.get(url).status_code for _ in range(8)} == {200}  # a video being watched is not

    monkeypatch.setitem(client.application.config, "RATELIMIT_STORAGE_PER_IP", "3 per minute")
    answers = [client.get(url).status_code for _ in range(4)]
    assert answers[-1] == 429  # floods still meet a limit of their own


def test_the_app_on_s3_hands_out_links_to_its_bucket(app, s3_media: S3Storage, tmp_path):
    (tmp_path / "poster.jpg").write_bytes(b"\xff\xd8\xff" + os.urandom(500))
    with app.app_context():
        storage = get_storage()
        assert storage is s3_media
        storage.upload_file(tmp_path / "poster.jpg", KEY, "image/jpeg")
        url = storage.get_url(KEY, TTL, content_type="image/jpeg")
    assert url.startswith(f"{s3_media.browser_origin()}/{s3_media.bucket}/")
    assert requests.get(url, timeout=30).content == (tmp_path / "poster.jpg").read_bytes()


def test_an_items_links_are_the_same_on_every_page_of_their_period_with_s3_too(app, s3_media: S3Storage):
    """A thumbnail keeps one URL for its link's whole period, so the browser's copy is used on the next page.
    S3's presigned URLs carry the time they were signed: signed anew per page they would differ each second."""
    item = MediaItem(status="ready", kind="image", content_type="image/jpeg", filename="court.jpg",
                     original_key="tenant/item/original.jpg", derived_keys={"thumb": "tenant/item/thumb.webp"})
    with app.app_context():
        first = media_service.thumb_url(item)
        time.sleep(1.1)
        assert media_service.thumb_url(item) == first == media_service.urls(item)["thumb"]
        args = query_of(first)
        signed_at = datetime.strptime(args["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        expires_at = signed_at.timestamp() + int(args["X-Amz-Expires"])
        assert expires_at - time.time() >= media_service.url_ttl(item) - 2  # at least a whole period left
