"""Shared helpers for media tests: generated files, the browser's upload exchange, a MediaWorld.

Files are made on the spot (ffmpeg's synthetic sources, Pillow) and kept small. An upload
runs as the browser's ``static/js/media.js`` runs it: a JSON intent with the CSRF header,
a PUT of every part to its signed URL (storage routes are same-origin with the local
backend: the signature authorizes, not the session), then a JSON finalize.

Use the ``media_storage`` fixture (import it into the test module) so a test has a media
root of its own and small parts; a Playwright journey may import the file makers and
``upload`` from here.
"""
from __future__ import annotations

import io
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import imageio_ffmpeg
import pytest
from PIL import Image
from sqlalchemy import select

from coach import clock, tenancy
from coach.extensions import db
from coach.media import service
from coach.media.models import MediaItem
from coach.media.storage import LocalStorage, get_storage
from coach.orgs.service import membership_for
from tests.conftest import Auth, csrf_from
from tests.factories import add_member, make_org, make_user

HX = {"HX-Request": "true"}
PART_BYTES = 64 * 1024  # small parts, so a 200 KB clip is a real multipart upload
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
MP4 = "video/mp4"
JPEG = "image/jpeg"
PDF = "application/pdf"


# --- files -----------------------------------------------------------------------------------------

def make_video(path: Path, seconds: float = 2, size: str = "320x240", audio: bool = True) -> Path:
    """An H.264/AAC MP4 test pattern with a tone (about 100 KB a second at 320x240)."""
    inputs = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25"]
    if audio:
        inputs += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *inputs, "-t", str(seconds),
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                    *(["-c:a", "aac"] if audio else ["-an"]), str(path)], check=True)
    return path


GPS_IFD = 0x8825
ORIENTATION = 0x0112


def jpeg_bytes(size: tuple[int, int] = (120, 80), colour="red", gps: bool = True, orientation: int = 1) -> bytes:
    """A JPEG carrying the metadata a phone writes: camera, GPS position, orientation."""
    exif = Image.Exif()
    exif[0x010F] = "Coach Test Camera"  # Make
    exif[0x0131] = "Secret editor 1.0"  # Software
    exif[ORIENTATION] = orientation
    if gps:
        exif[GPS_IFD] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG", exif=exif, quality=85)
    return out.getvalue()


def make_jpeg(path: Path, size: tuple[int, int] = (120, 80), colour="red", gps: bool = True) -> Path:
    path.write_bytes(jpeg_bytes(size, colour, gps))
    return path


def pdf_bytes() -> bytes:
    """A tiny one-page PDF."""
    return (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
            b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
            b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\n"
            b"trailer<</Root 1 0 R>>\n%%EOF\n")


def exe_bytes(size: int = 4096) -> bytes:
    """What a Windows program starts with ("MZ"), padded."""
    return (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(range(256)) * 64)[:size]


def fake_mp4_bytes(size: int = 150_000) -> bytes:
    """Random-looking bytes behind a real 'ftyp' box: they pass the magic-bytes check, not ffmpeg."""
    head = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    body = bytes((i * 7919 + 13) % 251 for i in range(size - len(head)))
    return head + body


def _bytes_of(source: Path | bytes) -> bytes:
    return source if isinstance(source, bytes) else Path(source).read_bytes()


# --- storage ---------------------------------------------------------------------------------------

@pytest.fixture()
def media_storage(app, tmp_path, monkeypatch) -> LocalStorage:
    """The local backend under a folder of this test's own, with PART_BYTES parts.

    The local backend accepts parts as small as MEDIA_PART_BYTES (S3's 5 MiB floor otherwise),
    so a test-sized file is a real multipart upload. Settings are restored afterwards, and
    ``get_storage()`` then rebuilds its backend from them.
    """
    monkeypatch.setitem(app.config, "MEDIA_BACKEND", "local")
    monkeypatch.setitem(app.config, "MEDIA_LOCAL_ROOT", str(tmp_path / "media"))
    monkeypatch.setitem(app.config, "MEDIA_PART_BYTES", PART_BYTES)
    with app.app_context():
        storage = get_storage()
    assert isinstance(storage, LocalStorage) and storage.min_part_size == PART_BYTES
    return storage


def stored_files(storage: LocalStorage, item_or_key) -> list[str]:
    """Object files kept under an item's folder (``<tenant>/<media>/``) or a key prefix."""
    prefix = item_or_key if isinstance(item_or_key, str) else f"{item_or_key.tenant_id}/{item_or_key.id}"
    folder = storage.objects_dir / prefix
    if not folder.is_dir():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def upload_parts_on_disk(storage: LocalStorage, upload_id: str | None) -> list[str]:
    """Part files of a multipart upload still on disk (none once completed or aborted)."""
    if not upload_id or not (storage.uploads_dir / upload_id).is_dir():
        return []
    return sorted(p.name for p in (storage.uploads_dir / upload_id).iterdir() if not p.name.endswith(".json"))


# --- the browser's upload exchange ---------------------------------------------------------------

def page_token(browser, slug: str) -> str:
    """The CSRF token the library page's upload form carries (media.js sends it as X-CSRFToken)."""
    return csrf_from(browser.get(f"/o/{slug}/media").get_data(as_text=True))


def request_upload(browser, slug: str, token: str | None, filename: str, size: int, content_type: str,
                   **fields):
    """The upload intent; returns the response (201 with the plan, or a JSON error)."""
    headers = {"X-CSRFToken": token, "Accept": "application/json"} if token else {"Accept": "application/json"}
    return browser.post(f"/o/{slug}/media/uploads", headers=headers,
                        json={"filename": filename, "size": size, "content_type": content_type, **fields})


def put_part(browser, plan: dict, number: int, data: bytes):
    """PUT part ``number`` of ``data`` (sliced as the plan says) to its signed URL."""
    part = plan["parts"][number - 1]
    start = (number - 1) * plan["part_bytes"]
    return browser.put(part["url"], data=data[start:start + part["size"]])


def send_parts(browser, plan: dict, data: bytes, numbers=None) -> list[int]:
    """PUT the given parts (all by default, in order); returns the status codes."""
    numbers = [p["number"] for p in plan["parts"]] if numbers is None else numbers
    return [put_part(browser, plan, n, data).status_code for n in numbers]


def finalize(browser, plan_or_url, token: str):
    url = plan_or_url if isinstance(plan_or_url, str) else plan_or_url["finalize_url"]
    return browser.post(url, headers={"X-CSRFToken": token, "Accept": "application/json"})


def upload(browser, slug: str, token: str, source: Path | bytes, content_type: str,
           filename: str | None = None, **fields) -> dict:
    """Intent → every part → finalize, as media.js does; returns finalize's JSON with ``media_id``.

    :param source: a file, or the bytes themselves (then give ``filename``).
    """
    data = _bytes_of(source)
    filename = filename or Path(source).name
    started = request_upload(browser, slug, token, filename, len(data), content_type, **fields)
    assert started.status_code == 201, started.get_data(as_text=True)
    plan = started.get_json()
    assert set(send_parts(browser, plan, data)) == {200}
    done = finalize(browser, plan, token)
    assert done.status_code in (200, 422), done.get_data(as_text=True)
    return done.get_json() | {"media_id": plan["media_id"], "http_status": done.status_code}


# --- the world -------------------------------------------------------------------------------------

def logged_in(app, email: str):
    """A test client of its own, logged in as ``email`` (one browser per person)."""
    browser = app.test_client()
    assert Auth(browser).login(email).status_code == 303
    return browser


@dataclass
class Sent:
    """An upload started and (maybe) sent through the service, as a test sees it."""

    item: MediaItem
    plan: dict
    data: bytes
    upload_id: str  # as started: the item forgets it once the upload is completed or aborted


class MediaWorld:
    """Lake Club (slug ``lake``): Ada Admin, Carla Coach, and the athletes Ana and Ben.

    Service calls go through :meth:`do` (activate the organization, call, commit, as a view
    would); the worker runs with :meth:`process` (relay + RQ worker until idle).
    """

    slug = "lake"

    def __init__(self, app, runner=None, slug: str | None = None):
        self.app = app
        self.runner = runner
        self.slug = slug or self.slug
        ada = make_user(f"ada@{self.slug}.example.com", "Ada Admin")
        self.org = make_org(ada, slug=self.slug, name=f"{self.slug.title()} Club")
        tenancy.activate(self.org.id)
        self.admin = membership_for(self.org, ada)
        self.coach = add_member(self.org, make_user(f"carla@{self.slug}.example.com", "Carla Coach"), "coach")
        self.ana = add_member(self.org, make_user(f"ana@{self.slug}.example.com", "Ana Athlete"))
        self.ben = add_member(self.org, make_user(f"ben@{self.slug}.example.com", "Ben Athlete"))
        tenancy.activate(self.org.id)
        self._browsers: dict = {}
        self.http = app.test_client()  # anonymous: the storage routes need no session

    # services

    def do(self, fn, *args, **kwargs):
        tenancy.activate(self.org.id)
        result = fn(*args, **kwargs)
        db.session.commit()
        return result

    def refused(self, error, fn, *args, match: str | None = None, **kwargs):
        """The service refuses with ``error``; nothing it did is kept."""
        tenancy.activate(self.org.id)
        with pytest.raises(error, match=match) as info:
            fn(*args, **kwargs)
        db.session.rollback()
        return info.value

    def fresh(self, item_or_id) -> MediaItem | None:
        """The item as the database has it now (another session may have changed it)."""
        db.session.rollback()
        tenancy.activate(self.org.id)
        media_id = getattr(item_or_id, "id", item_or_id)
        return db.session.scalar(select(MediaItem).where(MediaItem.tenant_id == self.org.id,
                                                         MediaItem.id == media_id))

    def used(self) -> int:
        db.session.rollback()
        tenancy.activate(self.org.id)
        return service.usage(self.org).used

    def set_quota(self, quota: int | None) -> None:
        tenancy.activate(self.org.id)
        self.org.media_quota_bytes = quota
        db.session.commit()

    # uploads through the service (the bytes still go over HTTP to the signed part URLs)

    def start(self, owner, source: Path | bytes, content_type: str, filename: str | None = None,
              audience: str = "staff", title: str | None = None, now: datetime | None = None) -> Sent:
        data = _bytes_of(source)
        filename = filename or Path(source).name
        item = self.do(service.start_upload, self.org, owner, filename, len(data), content_type, audience, title,
                       now=now)
        tenancy.activate(self.org.id)
        plan = service.upload_plan(item)
        db.session.commit()
        return Sent(item, plan, data, item.upload_id)

    def send(self, sent: Sent, numbers=None) -> list[int]:
        return send_parts(self.http, sent.plan, sent.data, numbers)

    def finish(self, owner, sent: Sent) -> MediaItem:
        return self.do(service.finalize, self.fresh(sent.item), owner)

    def uploaded(self, owner, source: Path | bytes, content_type: str, filename: str | None = None,
                 **kwargs) -> MediaItem:
        """Started, sent and finalized: the item is processing (the worker has not run)."""
        sent = self.start(owner, source, content_type, filename, **kwargs)
        assert set(self.send(sent)) == {200}
        item = self.finish(owner, sent)
        assert item.status == "processing", item.failure_reason
        return item

    def process(self, timeout: float = 180) -> None:
        """Run the relay and the worker until nothing is left (needs the ``quiet`` runner)."""
        assert self.runner is not None, "MediaWorld(app, runner) to run the worker"
        db.session.commit()
        self.runner.drain(timeout)

    def ready(self, owner, source: Path | bytes, content_type: str, filename: str | None = None,
              **kwargs) -> MediaItem:
        """Uploaded and processed by the worker: the item is ready."""
        item = self.uploaded(owner, source, content_type, filename, **kwargs)
        self.process()
        item = self.fresh(item)
        assert item.status == "ready", item.failure_reason
        return item

    # browsers

    def email(self, member) -> str:
        return {self.admin.id: f"ada@{self.slug}.example.com", self.coach.id: f"carla@{self.slug}.example.com",
                self.ana.id: f"ana@{self.slug}.example.com", self.ben.id: f"ben@{self.slug}.example.com"}[member.id]

    def browser(self, member):
        """A logged-in test client for ``member`` (one per person, kept)."""
        if member.id not in self._browsers:
            self._browsers[member.id] = logged_in(self.app, self.email(member))
        return self._browsers[member.id]

    def url(self, path: str = "") -> str:
        return f"/o/{self.slug}/media{path}"


def text(response) -> str:
    return response.get_data(as_text=True)


def storage_paths(html: str) -> list[str]:
    """Paths of signed /storage/objects/ URLs in a page (entities decoded)."""
    return [m.replace("&amp;", "&") for m in re.findall(r'"(/storage/objects/[^"]+)"', html)]


def minutes_ago(n: float) -> datetime:
    return clock.now() - timedelta(minutes=n)
