"""What the browser may keep: fingerprinted static files (immutable, precompressed), and ETags with
conditional GETs on calendar files and stored media objects.

Static files are served by WhiteNoise in front of Flask from ``coach/static``, fingerprinted by the static
build (``build_static.py``, run by ``make setup``; ``make test`` runs set-up first).
"""
from __future__ import annotations

import gzip
import re
from pathlib import Path

import brotli
import pytest

try:
    from compression import zstd as zstandard  # Python 3.14
except ImportError:
    from backports import zstd as zstandard

from coach.booking import service
from coach.extensions import db
from tests.booking_support import BookingWorld
from tests.conftest import Auth
from tests.media_support import local_media  # noqa: F401  (fixture)

STATIC = Path(__file__).resolve().parent.parent / "coach" / "static"
ASSET_RE = re.compile(r'(?:href|src)="(/static/[^"]+)"')
FINGERPRINT_RE = re.compile(r"-[0-9a-f]{32}\.(?:css|js|svg|png)$")
TEN_YEARS = 10 * 365 * 24 * 3600


@pytest.fixture()
def built():
    """The static build's manifest: the suite runs after ``make setup``, which makes it."""
    if not (STATIC / "cache_manifest.json").is_file():
        pytest.fail("coach/static/cache_manifest.json is missing: run `make setup` (or `python build_static.py`)")


def assets_of(html: str) -> list[str]:
    return ASSET_RE.findall(html)


# --- static files -----------------------------------------------------------------------------------

def test_pages_link_fingerprinted_static_files(client, built):
    assets = assets_of(client.get("/login").get_data(as_text=True))
    # The stylesheet, htmx and its ws and head-support extensions, our scripts, and the icons.
    expected = {"css/app", "vendor/htmx.min", "vendor/htmx-ext-ws.min", "vendor/htmx-ext-head-support.min",
                "js/media", "js/chat", "js/passkeys", "js/timezone", "js/menus", "icons/favicon", "icons/icon-192",
                "icons/apple-touch-icon"}
    assert expected <= {FINGERPRINT_RE.sub("", url.removeprefix("/static/")) for url in assets}, assets
    for url in assets:
        assert FINGERPRINT_RE.search(url), url
    assert any(url.startswith("/static/js/chat-") for url in assets)
    assert any(url.startswith("/static/vendor/htmx.min-") for url in assets)


def test_fingerprinted_files_are_immutable_and_served_precompressed(client, built):
    html = client.get("/login").get_data(as_text=True)
    css = next(url for url in assets_of(html) if url.endswith(".css"))
    source = (STATIC / "css" / "app.css").read_bytes()

    plain = client.get(css, headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and plain.data == source
    assert plain.headers["Cache-Control"] == f"max-age={TEN_YEARS}, public, immutable"
    assert plain.headers["Content-Type"].startswith("text/css")
    assert plain.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Encoding" not in plain.headers
    assert plain.headers["Vary"] == "Accept-Encoding"

    gzipped = client.get(css, headers={"Accept-Encoding": "gzip, deflate"})
    assert gzipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(gzipped.data) == source
    assert int(gzipped.headers["Content-Length"]) == len(gzipped.data) < len(source)
    assert "immutable" in gzipped.headers["Cache-Control"]

    brotlied = client.get(css, headers={"Accept-Encoding": "gzip, deflate, br"})
    assert brotlied.headers["Content-Encoding"] == "br"
    assert brotli.decompress(brotlied.data) == source

    again = client.get(css, headers={"If-None-Match": plain.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""


def test_the_scripts_the_pages_need_are_served(client, built):
    """htmx, its ws extension and the app's own modules, from our origin (CSP ``script-src 'self'``)."""
    response = client.get("/login")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    for url in assets_of(response.get_data(as_text=True)):
        answer = client.get(url)
        assert answer.status_code == 200, url
        if url.endswith(".js"):
            assert answer.headers["Content-Type"].startswith("text/javascript"), url
    for name in ("js/chat.js", "js/media.js", "vendor/htmx.min.js", "vendor/htmx-ext-ws.min.js"):
        assert client.get(f"/static/{name}").data == (STATIC / name).read_bytes()


def test_static_files_skip_the_app_for_a_signed_in_member(app, client, auth, ctx, built):
    """No session, user lookup or ``no-store``: the file is the same for everyone and cached as such."""
    from tests.factories import make_user

    make_user("static@example.com")
    assert auth.login("static@example.com").status_code == 303
    css = next(url for url in assets_of(client.get("/profile").get_data(as_text=True)) if url.endswith(".css"))
    answer = client.get(css)
    assert answer.status_code == 200
    assert "no-store" not in answer.headers["Cache-Control"] and "immutable" in answer.headers["Cache-Control"]
    assert "Set-Cookie" not in answer.headers and "X-Request-ID" not in answer.headers


def test_without_the_static_build_pages_link_plain_names_cached_briefly(app, client, monkeypatch):
    """Before ``build_static.py`` has run (no manifest): plain URLs, served, cached for a minute."""
    monkeypatch.setattr(app.extensions["static_digest"], "manifests", {})
    assets = assets_of(client.get("/login").get_data(as_text=True))
    assert "/static/css/app.css" in assets and "/static/js/chat.js" in assets
    for url in assets:
        assert not FINGERPRINT_RE.search(url), url
    answer = client.get("/static/css/app.css")
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "max-age=60, public"


def test_missing_static_file_is_the_apps_404(client):
    answer = client.get("/static/css/nothing-here.css")
    assert answer.status_code == 404


# --- HTML compression ----------------------------------------------------------------------------------

def test_pages_are_compressed_with_zstd_brotli_or_gzip_when_the_browser_accepts_it(client):
    plain = client.get("/login", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers and len(plain.data) >= 1400
    assert "Accept-Encoding" in plain.headers["Vary"]

    zstd = client.get("/login", headers={"Accept-Encoding": "gzip, deflate, br, zstd"})
    assert zstd.headers["Content-Encoding"] == "zstd"
    assert b"<html" in zstandard.decompress(zstd.data) and len(zstd.data) < len(plain.data) / 2

    br = client.get("/login", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert br.headers["Content-Encoding"] == "br"
    assert b"<html" in brotli.decompress(br.data) and len(br.data) < len(plain.data) / 2
    assert "Accept-Encoding" in br.headers["Vary"] and "no-store" not in br.headers.get("Cache-Control", "")

    gz = client.get("/login", headers={"Accept-Encoding": "gzip, deflate"})
    assert gz.headers["Content-Encoding"] == "gzip"
    assert b"<html" in gzip.decompress(gz.data)
    assert gz.headers["Content-Security-Policy"] == plain.headers["Content-Security-Policy"]


def test_small_answers_are_not_compressed(client):
    """Under 1400 bytes (one TCP segment) compressing saves no round trip: the answer goes as it is."""
    small = client.get("/health", headers={"Accept-Encoding": "br, gzip"})
    assert small.status_code == 200 and len(small.data) < 1400
    assert "Content-Encoding" not in small.headers


# --- calendar files -----------------------------------------------------------------------------------

@pytest.fixture()
def world(ctx):
    return BookingWorld()


def logged_in(app, email: str):
    browser = app.test_client()
    assert Auth(browser).login(email).status_code == 303
    return browser


def book(world):
    from coach import tenancy

    tenancy.activate(world.org.id)
    booking = service.request_booking(world.offering, world.athlete, world.first_slot().starts_at, "", world.athlete)
    db.session.commit()
    return booking


def confirm(world, booking):
    from coach import tenancy

    tenancy.activate(world.org.id)
    service.transition(service.get_booking(world.org, booking.id), "confirm", world.coach)
    db.session.commit()


def test_booking_file_answers_304_until_the_booking_changes(app, world):
    booking = book(world)
    athlete = logged_in(app, world.athlete.user.email)
    path = f"/o/{world.org.slug}/bookings/{booking.id}.ics"

    first = athlete.get(path)
    assert first.status_code == 200 and b"STATUS:TENTATIVE" in first.data
    etag = first.headers["ETag"]
    assert etag and first.headers["Cache-Control"] == "private, no-cache"

    again = athlete.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == etag

    confirm(world, booking)
    changed = athlete.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and b"STATUS:CONFIRMED" in changed.data
    assert changed.headers["ETag"] != etag


def test_subscription_feed_answers_304_until_a_booking_changes(app, world):
    booking = book(world)
    from coach import tenancy

    tenancy.activate(world.org.id)
    secret = service.regenerate_feed(world.athlete)
    db.session.commit()
    calendar_app = app.test_client()  # no session: the secret is the credential
    path = f"/o/{world.org.slug}/calendar/{secret}.ics"

    first = calendar_app.get(path)
    assert first.status_code == 200 and f"UID:booking-{booking.id}@coach".encode() in first.data
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "private, max-age=300"
    assert first.headers["Content-Disposition"] == 'inline; filename="coach.ics"'

    again = calendar_app.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["Cache-Control"] == "private, max-age=300"

    confirm(world, booking)
    changed = calendar_app.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and b"STATUS:CONFIRMED" in changed.data
    assert changed.headers["ETag"] != etag


# --- media objects (the local storage backend; S3 answers conditional GETs itself) ---------------------

def test_thumbnail_answers_304_until_the_object_is_replaced(client, local_media, tmp_path):
    key = "tenant-1/media-1/thumb.webp"
    (tmp_path / "thumb").write_bytes(b"RIFF-first-thumbnail")
    local_media.upload_file(tmp_path / "thumb", key, "image/webp")
    url = local_media.get_url(key, 600, content_type="image/webp")

    first = client.get(url)
    assert first.status_code == 200 and first.data == b"RIFF-first-thumbnail"
    etag = first.headers["ETag"]
    assert etag and first.headers["Cache-Control"].startswith("private, max-age=")

    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""

    (tmp_path / "thumb").write_bytes(b"RIFF-a-new-thumbnail-of-another-size")
    local_media.upload_file(tmp_path / "thumb", key, "image/webp")
    changed = client.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.data == b"RIFF-a-new-thumbnail-of-another-size"
    assert changed.headers["ETag"] != etag

