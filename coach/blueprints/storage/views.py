"""The local storage backend's HTTP side: part uploads and signed object downloads, as S3 offers them.

Both routes are authorized by the HMAC signature in their URL (made by ``LocalStorage``), not by
a session: no login, no CSRF token, and the app-wide request limits do not apply (a 500 MB
upload is some 60 part requests, a video being watched many Range requests); a per-address
limit of their own (RATELIMIT_STORAGE_PER_IP) still stops floods. They answer 404 unless
MEDIA_BACKEND is ``local``.
"""
from __future__ import annotations

from flask import Response, abort, current_app, request, send_file

from coach.media.storage import (
    LocalStorage,
    PartTooLarge,
    StorageError,
    content_disposition,
    get_storage,
    validate_key,
)
from coach.blueprints.storage import bp
from coach.platform.ratelimit import ip_key, limiter


def storage_per_ip() -> str:
    """The per-address limit of these routes, read per request so a changed setting applies at once."""
    return current_app.config["RATELIMIT_STORAGE_PER_IP"]


# Types a browser would run as a page or script: served as plain downloads, never rendered on our origin.
ACTIVE_TYPES = {"text/html", "application/xhtml+xml", "image/svg+xml", "text/xml", "application/xml",
                "text/javascript", "application/javascript", "application/ecmascript", "text/ecmascript"}
# A served object is not a page of the app: no scripts, nothing loaded besides itself. The app's own
# pages may frame it (a PDF preview), nobody else. PDFs skip "sandbox": browsers refuse to show them in one.
OBJECT_CSP = "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'self'"


def _local() -> LocalStorage:
    storage = get_storage() if current_app.config.get("MEDIA_BACKEND") == "local" else None
    if not isinstance(storage, LocalStorage):
        abort(404)
    return storage


def _int_arg(name: str) -> int:
    """An integer query argument; a missing or mangled one means the URL was not ours (403)."""
    try:
        return int(request.args.get(name, ""))
    except ValueError:
        abort(403)


@bp.put("/parts/<upload_id>/<int:number>")
@limiter.limit(storage_per_ip, key_func=ip_key, scope="storage-ip")
def put_part(upload_id: str, number: int):
    """Receive the bytes of one part of a multipart upload (200 with its ETag, like S3)."""
    storage = _local()
    key, size = request.args.get("key", ""), _int_arg("size")
    if not storage.part_signature_ok(key, upload_id, number, size, _int_arg("exp"), request.args.get("sig", "")):
        abort(403, "This upload link is invalid or has expired. Reload the page to get a new one.")
    # The app-wide 1 MB form limit gives way to the signed size; one byte more is let through so an
    # exactly-sized chunked body can be read to its end, and receive_part refuses anything longer.
    request.max_content_length = size + 1
    if request.content_length is not None and request.content_length > size:
        abort(413)
    try:
        part = storage.receive_part(key, upload_id, number, size, request.stream)
    except PartTooLarge:
        abort(413)
    except StorageError as exc:  # no such upload (UploadNotFound), a short body (PartIncomplete), a key never signed
        abort(400, str(exc))
    return "", 200, {"ETag": part.etag}


@bp.get("/objects/<path:key>")
@limiter.limit(storage_per_ip, key_func=ip_key, scope="storage-ip")
def get_object(key: str):
    """Serve a stored object to the holder of a signed link, with Range support for video seeking."""
    storage = _local()
    content_type, filename = request.args.get("ct", ""), request.args.get("fn", "")
    download = request.args.get("dl") == "1"
    expires_at = _int_arg("exp")
    if not storage.object_signature_ok(key, expires_at, content_type, filename, download,
                                       request.args.get("sig", "")):
        abort(403, "This link is invalid or has expired. Reload the page to get a new one.")
    try:
        path = storage.object_path(validate_key(key))
    except StorageError:
        abort(400)
    if not path.is_file():
        abort(404)
    if content_type.split(";")[0].strip().lower() in ACTIVE_TYPES:
        content_type, download = "application/octet-stream", True
    response = send_file(path, mimetype=content_type or "application/octet-stream", conditional=True, etag=True)
    return _object_headers(response, filename, download, storage.seconds_left(expires_at))


def _object_headers(response: Response, filename: str, download: bool, max_age: int) -> Response:
    """What S3 would say about the object (disposition, caching), plus the fences our origin needs."""
    headers = response.headers
    headers["Content-Disposition"] = content_disposition(filename or None, download)
    # Private: the link is personal; it may be cached until it expires, so seeking a video is cheap.
    headers["Cache-Control"] = f"private, max-age={max_age}"
    headers["X-Content-Type-Options"] = "nosniff"
    pdf = response.mimetype == "application/pdf"
    headers["Content-Security-Policy"] = OBJECT_CSP if pdf else OBJECT_CSP + "; sandbox"
    headers["X-Frame-Options"] = "SAMEORIGIN"
    headers["Cross-Origin-Resource-Policy"] = "same-origin"
    return response
