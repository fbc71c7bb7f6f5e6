"""Recording a session's room into the media library: consent, start, parts in order, stop, the worker, the
sweeps (a silent browser, the room's end, retention), who sees the recording, the Keep action and the setting.

The coach's browser is played by the test client as ``static/js/recorder.js`` speaks: JSON with the CSRF header,
a PUT of each part to its signed URL, ``done``, then ``stop``. A real WebM (ffmpeg's test pattern with a tone,
VP8 + Opus) is cut into parts, so the worker processes a real recording. Stays in the room are written as the
signaling socket writes them. Storage is a local root of the test's own (small parts), and S3 (moto) once.
"""
from __future__ import annotations

import re
import subprocess
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from coach import clock, tenancy
from coach.extensions import db
from coach.media import jobs as media_jobs
from coach.media import service as media
from coach.media.models import MediaItem
from coach.orgs.models import Organization
from coach.platform.models import AuditEvent
from coach.rooms import recording as rec
from coach.rooms import recording_jobs
from coach.rooms.models import RoomAttendance, RoomConsent, RoomRecording, SessionRoom
from tests.media_flow import FFMPEG, PART_BYTES, media_storage  # noqa: F401  (fixture)
from tests.media_support import aws_credentials, moto_server, put_bytes, s3_media  # noqa: F401  (fixtures)
from tests.conftest import csrf_from
from tests.room_support import RoomWorld
from tests.test_governance_settings import VALID as SETTINGS
from tests.test_booking_views import logged_in, text

CSRF_RE = re.compile(r'data-csrf="([^"]+)"')
JSON = {"Accept": "application/json"}


@pytest.fixture(scope="module")
def webm() -> bytes:
    """A real 4 s WebM (VP8 + Opus, ~400 KB: several 64 KiB parts) written as a live stream, the way a browser's
    MediaRecorder writes one: no duration and no index, so any prefix of it (a crash's parts) still plays."""
    return subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin",
                           "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=4",
                           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=4",
                           "-c:v", "libvpx", "-b:v", "800k", "-c:a", "libopus", "-live", "1", "-f", "webm", "pipe:1"],
                          check=True, capture_output=True).stdout


def _world() -> RoomWorld:
    world = RoomWorld()
    world.other_club()
    tenancy.activate(world.org.id)
    return world


@pytest.fixture()
def world(ctx, media_storage):  # noqa: F811
    return _world()


@pytest.fixture()
def five_mib_parts(app, monkeypatch):
    monkeypatch.setitem(app.config, "MEDIA_PART_BYTES", 5 * 1024 * 1024)


@pytest.fixture()
def s3_world(ctx, five_mib_parts, s3_media):  # noqa: F811
    return _world()


def in_room(world, session, *members, seen_ago: int = 0):
    """Open stays, as the signaling socket writes them on join (seen ``seen_ago`` seconds ago)."""
    tenancy.activate(world.org.id)
    now = clock.now()
    for member in members:
        db.session.add(RoomAttendance(tenant_id=world.org.id, session_id=session.id, membership_id=member.id,
                                      peer_id=uuid.uuid4(), joined_at=now - timedelta(minutes=5),
                                      last_seen_at=now - timedelta(seconds=seen_ago)))
    db.session.commit()


class Browser:
    """One member's browser on the room: the recording panel's CSRF token and the recorder's JSON calls."""

    def __init__(self, app, world, member, session):
        self.world, self.member, self.session = world, member, session
        self.client = logged_in(app, member.user.email)
        self.base = f"{world.room_path(session)}"
        panel = self.client.get(f"{self.base}/recording")
        assert panel.status_code == 200, text(panel)
        self.csrf = CSRF_RE.search(text(panel)).group(1)

    def panel(self) -> str:
        return text(self.client.get(f"{self.base}/recording"))

    def consent(self, given: bool = True, hx: bool = True):
        headers = {"HX-Request": "true"} if hx else {}
        return self.client.post(f"{self.base}/consent", data={"csrf_token": self.csrf, "given": "1" if given else "0"},
                                headers=headers)

    def post(self, url: str, body: dict | None = None):
        return self.client.post(url, json=body or {}, headers={"X-CSRFToken": self.csrf, **JSON})

    def start(self):
        return self.post(f"{self.base}/recording")

    def part(self, started: dict, number: int, size: int):
        return self.post(started["parts_url"], {"number": number, "size": size})

    def send(self, started: dict, number: int, data: bytes, done: bool = True):
        """Ask for part ``number``'s URL, PUT ``data`` there, say it is stored."""
        signed = self.part(started, number, len(data))
        assert signed.status_code == 200, signed.get_json()
        assert self.client.put(signed.get_json()["url"], data=data).status_code in (200, 204)
        if done:
            answer = self.post(f"{started['parts_url']}/{number}/done")
            assert answer.status_code == 200, answer.get_json()

    def send_all(self, started: dict, data: bytes, part: int = PART_BYTES) -> int:
        chunks = [data[i:i + part] for i in range(0, len(data), part)]
        for number, chunk in enumerate(chunks, start=1):
            self.send(started, number, chunk)
        return len(chunks)

    def stop(self, started: dict):
        return self.post(started["stop_url"])


def everyone_agrees(app, world, session, *members):
    browsers = [Browser(app, world, m, session) for m in members]
    for b in browsers:
        assert b.consent().status_code == 200
    return browsers


def fresh(world, model, ident):
    """A row as it is now (after requests and jobs of other sessions), read in River Club."""
    db.session.rollback()
    tenancy.activate(world.org.id)
    return db.session.get(model, ident)


# --- consent ------------------------------------------------------------------------------------------

def test_consent_is_shown_to_everyone_and_can_be_withdrawn_without_javascript(app, world):
    ana = Browser(app, world, world.ana, world.one)
    maria = Browser(app, world, world.maria, world.one)
    panel = maria.panel()
    assert "Ana Alves" in panel and "has not agreed" in panel and "agreed to be recorded" not in panel
    answer = ana.consent(hx=False)
    assert answer.status_code == 303 and answer.headers["Location"].endswith(world.room_path(world.one))
    panel = maria.panel()
    ana_row = re.search(rf'data-consent-member="{world.ana.id}"[^>]*>(.*?)</li>', panel, re.S).group(1)
    assert "agreed to be recorded" in ana_row
    assert "Withdraw my agreement" in ana.panel()
    fragment = ana.consent(given=False)
    assert fragment.status_code == 200 and "<html" not in text(fragment) and "I agree to be recorded" in text(fragment)
    row = db.session.scalar(select(RoomConsent).where(RoomConsent.membership_id == world.ana.id))
    assert row.withdrawn_at is not None


def test_only_participants_consent_and_other_clubs_see_no_session(app, world):
    cleo = logged_in(app, world.cleo.user.email)
    assert cleo.get(f"{world.room_path(world.one)}/recording").status_code == 403
    zed = logged_in(app, world.zed.user.email)
    assert zed.get(f"/o/hill/sessions/{world.one.id}/room/recording").status_code == 404


# --- start -------------------------------------------------------------------------------------------

def test_start_is_refused_until_everyone_in_the_room_agreed(app, world):
    in_room(world, world.one, world.maria, world.ana)
    maria = Browser(app, world, world.maria, world.one)
    assert maria.consent().status_code == 200
    refused = maria.start()
    assert refused.status_code == 409
    assert refused.get_json()["error"] == ("Everyone in the room must agree to be recorded first: Ana Alves has not "
                                           "agreed yet.")
    assert "disabled" in re.search(r"<button[^>]*data-record-start[^>]*>", maria.panel()).group(0)
    Browser(app, world, world.ana, world.one).consent()
    started = maria.start()
    assert started.status_code == 201, started.get_json()
    body = started.get_json()
    item = fresh(world, MediaItem, uuid.UUID(body["media_id"]))
    assert item.origin == "recording" and item.kind == "video" and item.content_type == "video/webm"
    assert item.status == "uploading" and item.audience == "staff"
    assert item.title.startswith("Session with Ana Alves — ")
    assert maria.start().status_code == 409  # one at a time
    panel = maria.panel()  # after a reload of the coach's page, Stop still finishes it
    assert 'data-running="' in panel and f'data-stop-url="{body["stop_url"]}"' in panel
    assert re.search(r"<button[^>]*data-record-start[^>]*hidden", panel)  # Record gives way to Stop
    assert not re.search(r"<button[^>]*data-record-stop[^>]*hidden", panel)
    athlete_panel = Browser(app, world, world.ana, world.one).panel()
    assert 'data-running="' in athlete_panel and "data-stop-url" not in athlete_panel


def test_someone_who_left_the_room_does_not_block_the_recording(app, world):
    in_room(world, world.group, world.maria, world.ana)
    in_room(world, world.group, world.ben, seen_ago=300)  # his page stopped pinging five minutes ago
    maria, _ana = everyone_agrees(app, world, world.group, world.maria, world.ana)
    assert maria.start().status_code == 201


def test_an_athlete_cannot_start_and_a_closed_room_cannot_be_recorded(app, world):
    ana, maria = everyone_agrees(app, world, world.one, world.ana, world.maria)
    assert ana.start().status_code == 403
    tenancy.activate(world.org.id)  # the coach ended the room for everyone
    db.session.add(SessionRoom(tenant_id=world.org.id, session_id=world.one.id, ended_at=clock.now(),
                               ended_by_membership_id=world.maria.id))
    db.session.commit()
    refused = maria.start()
    assert refused.status_code == 409 and "not open" in refused.get_json()["error"]
    later = maria.post(f"{world.room_path(world.later)}/recording")  # tomorrow's: its room is not open yet
    assert later.status_code == 409 and "not open" in later.get_json()["error"]


def test_a_recording_being_made_is_not_finished_as_a_file_upload(app, world):
    maria, _ = everyone_agrees(app, world, world.one, world.maria, world.ana)
    started = maria.start().get_json()
    item_path = f"/o/river/media/{started['media_id']}"
    for answer in (maria.post(f"{item_path}/finalize"), maria.client.get(f"{item_path}/upload", headers=JSON)):
        assert answer.status_code == 409 and "still being made" in answer.get_json()["error"]
    assert "This session is being recorded." in text(maria.client.get(item_path))
    assert fresh(world, MediaItem, uuid.UUID(started["media_id"])).status == "uploading"


# --- parts -------------------------------------------------------------------------------------------

def test_parts_come_in_order_and_a_stopped_recording_takes_none(app, world, webm):
    maria, _ = everyone_agrees(app, world, world.one, world.maria, world.ana)
    started = maria.start().get_json()
    ahead = maria.part(started, 2, PART_BYTES)
    assert ahead.status_code == 409 and ahead.get_json()["error"] == "Parts go in order: part 1 comes next, not part 2."
    first = maria.part(started, 1, PART_BYTES)
    again = maria.part(started, 1, PART_BYTES)  # a retry before it is stored: a fresh URL
    assert first.status_code == again.status_code == 200
    assert maria.post(f"{started['parts_url']}/1/done").status_code == 409  # not stored yet
    maria.send(started, 1, webm[:PART_BYTES])
    stored = maria.part(started, 1, PART_BYTES)
    assert stored.status_code == 409 and "already stored" in stored.get_json()["error"]
    for bad in ({"number": "x", "size": 10}, {"number": 2, "size": 0}, {"number": 2, "size": 10**12}, {}):
        assert maria.post(started["parts_url"], bad).status_code in (409, 413, 422)
    recording = fresh(world, RoomRecording, uuid.UUID(started["recording_id"]))
    assert (recording.parts_received, recording.bytes_received) == (1, PART_BYTES)
    assert recording.last_part_at is not None
    assert maria.stop(started).status_code == 200
    late = maria.part(started, 2, PART_BYTES)
    assert late.status_code == 409 and late.get_json()["error"] == "The recording has stopped."


def test_only_the_last_part_may_be_small(app, world, webm):
    maria, _ = everyone_agrees(app, world, world.one, world.maria, world.ana)
    started = maria.start().get_json()
    maria.send(started, 1, webm[:1000])
    refused = maria.part(started, 2, PART_BYTES)
    assert refused.status_code == 409 and "Only the last part may be smaller" in refused.get_json()["error"]


def test_parts_count_against_the_quota(app, world, webm):
    maria, _ = everyone_agrees(app, world, world.one, world.maria, world.ana)
    started = maria.start().get_json()
    maria.send(started, 1, webm[:PART_BYTES])
    item = fresh(world, MediaItem, uuid.UUID(started["media_id"]))
    assert item.counted_bytes == PART_BYTES and media.usage(db.session.get(Organization, world.org.id)).used \
        == PART_BYTES
    org = db.session.get(Organization, world.org.id)
    org.media_quota_bytes = PART_BYTES + PART_BYTES // 2
    db.session.commit()
    full = maria.part(started, 2, PART_BYTES)
    assert full.status_code == 413 and full.get_json()["error"].startswith("Not enough room to go on")
    assert maria.part(started, 2, PART_BYTES // 4).status_code == 200  # a small last part still fits
    assert fresh(world, MediaItem, uuid.UUID(started["media_id"])).counted_bytes == PART_BYTES + PART_BYTES // 4


# --- stop, processing -------------------------------------------------------------------------------

def test_stop_completes_the_upload_and_the_worker_makes_it_reviewable(app, world, webm, quiet):
    maria, ana = everyone_agrees(app, world, world.one, world.maria, world.ana)
    started = maria.start().get_json()
    parts = maria.send_all(started, webm)
    assert parts >= 3
    stopped = maria.stop(started)
    assert stopped.status_code == 200 and stopped.get_json()["status"] == "finished"
    assert maria.stop(started).get_json()["status"] == "finished"  # twice: nothing more happens
    recording = fresh(world, RoomRecording, uuid.UUID(started["recording_id"]))
    assert recording.status == "finished" and recording.parts_received == parts
    assert recording.bytes_received == len(webm)
    item = db.session.get(MediaItem, recording.media_id)
    assert item.status in ("processing", "ready") and item.size_bytes == len(webm)
    assert item.expires_at is not None and abs(
        (item.expires_at - recording.stopped_at) - timedelta(days=90)) < timedelta(seconds=1)
    quiet.drain(180)
    item = fresh(world, MediaItem, recording.media_id)
    assert item.status == "ready", item.failure_reason
    assert item.duration_ms and 3000 <= item.duration_ms <= 5000
    # The athlete of the session sees it (audience staff, and the session's rule); another athlete does not.
    assert ana.client.get(f"/o/river/media/{item.id}").status_code == 200
    assert logged_in(app, world.cleo.user.email).get(f"/o/river/media/{item.id}").status_code == 404
    views = rec.recordings_for(world.org.id, world.one.id)
    assert [v.media_id for v in views] == [item.id] and views[0].status_label == "ready to review"
    page = text(maria.client.get(f"/o/river/media/{item.id}"))
    assert "Deleted on" in page and "unless kept" in page
    booking = world.bookings[world.one.id][0]
    for browser in (maria, ana):
        booking_page = text(browser.client.get(f"/o/river/bookings/{booking.id}"))
        assert f'href="/o/river/media/{item.id}"' in booking_page and "ready to review" in booking_page


def test_s3_recording_with_five_mib_parts(app, s3_world, s3_media, webm):  # noqa: F811
    world = s3_world
    maria, _ = everyone_agrees(app, world, world.one, world.maria, world.ana)
    started = maria.start().get_json()
    assert started["part_bytes"] == 5 * 1024 * 1024
    head = webm + bytes(5 * 1024 * 1024 - len(webm))  # a first part of S3's smallest size
    for number, data in ((1, head), (2, b"\x00" * 1234)):
        signed = maria.part(started, number, len(data)).get_json()
        assert put_bytes(signed["url"], data).status_code == 200
        assert maria.post(f"{started['parts_url']}/{number}/done").status_code == 200
    assert maria.stop(started).get_json()["status"] == "finished"
    item = fresh(world, MediaItem, uuid.UUID(started["media_id"]))
    assert item.status == "processing" and item.size_bytes == len(head) + 1234
    assert s3_media.size_of(item.original_key) == len(head) + 1234


# --- withdrawn consent, a silent browser, the room's end ---------------------------------------------

def test_withdrawing_consent_stops_the_recording_with_what_was_recorded(app, world, webm):
    in_room(world, world.one, world.maria, world.ana)
    maria, ana = everyone_agrees(app, world, world.one, world.maria, world.ana)
    started = maria.start().get_json()
    maria.send(started, 1, webm[:PART_BYTES])
    assert ana.consent(given=False).status_code == 200
    recording = fresh(world, RoomRecording, uuid.UUID(started["recording_id"]))
    assert recording.status == "finished" and recording.parts_received == 1
    assert maria.part(started, 2, PART_BYTES).status_code == 409
    assert maria.start().status_code == 409  # not again without her


def test_a_recording_whose_browser_went_silent_is_finished_by_the_sweep(app, world, webm, quiet):
    maria, _ = everyone_agrees(app, world, world.one, world.maria, world.ana)
    kept = maria.start().get_json()
    maria.send(kept, 1, webm[:PART_BYTES])
    maria.send(kept, 2, webm[PART_BYTES:PART_BYTES + 5000], done=False)  # stored, the browser died before "done"
    in_group, _ = everyone_agrees(app, world, world.group, world.maria, world.ana)
    empty = in_group.start().get_json()
    assert recording_jobs.sweep_stale() == 0  # both are fresh
    tenancy.activate(world.org.id)
    for rid in (kept["recording_id"], empty["recording_id"]):
        row = db.session.get(RoomRecording, uuid.UUID(rid))
        row.started_at = row.started_at - timedelta(minutes=5)
        row.last_part_at = row.last_part_at - timedelta(minutes=5) if row.last_part_at else None
    db.session.commit()
    assert recording_jobs.sweep_stale() == 2
    finished = fresh(world, RoomRecording, uuid.UUID(kept["recording_id"]))
    assert finished.status == "finished" and finished.parts_received == 2
    assert finished.bytes_received == PART_BYTES + 5000
    failed = db.session.get(RoomRecording, uuid.UUID(empty["recording_id"]))
    assert failed.status == "failed" and failed.failure_reason == "Nothing was recorded."
    assert db.session.get(MediaItem, failed.media_id).status == "deleting"
    quiet.drain()
    assert fresh(world, MediaItem, uuid.UUID(empty["media_id"])) is None  # purged (its recording row with it)


def test_the_rooms_end_stops_a_running_recording(app, world, webm, quiet):
    maria, _ = everyone_agrees(app, world, world.one, world.maria, world.ana)
    started = maria.start().get_json()
    maria.send(started, 1, webm[:PART_BYTES])
    tenancy.activate(world.org.id)
    from coach.platform.outbox import emit
    from coach.rooms.events import ROOM_ENDED
    emit(ROOM_ENDED, {"session_id": str(world.one.id), "ended_by": str(world.maria.id),
                      "ended_at": clock.now().isoformat()})
    db.session.commit()
    quiet.drain()
    recording = fresh(world, RoomRecording, uuid.UUID(started["recording_id"]))
    assert recording.status == "finished" and recording.parts_received == 1


def test_the_alive_call_keeps_a_quiet_recording_from_the_sweep(app, world):
    maria, _ = everyone_agrees(app, world, world.one, world.maria, world.ana)
    started = maria.start().get_json()
    tenancy.activate(world.org.id)
    row = db.session.get(RoomRecording, uuid.UUID(started["recording_id"]))
    row.started_at -= timedelta(minutes=5)
    db.session.commit()
    assert maria.post(started["alive_url"]).get_json() == {"status": "recording"}
    assert rec.finish_stale(world.org.id) == 0


# --- retention ---------------------------------------------------------------------------------------

def _finished_item(app, world, webm, session=None):
    maria, _ = everyone_agrees(app, world, session or world.one, world.maria, world.ana)
    started = maria.start().get_json()
    maria.send_all(started, webm[:PART_BYTES * 2])
    maria.stop(started)
    return maria, fresh(world, MediaItem, uuid.UUID(started["media_id"]))


def test_retention_deletes_an_expired_recording_and_not_a_kept_one(app, world, webm, quiet):
    maria, expired = _finished_item(app, world, webm)
    _, kept = _finished_item(app, world, webm, world.group)
    expired_id, kept_id = expired.id, kept.id
    page = text(maria.client.get(f"/o/river/media/{kept.id}"))
    keep_token = re.search(r'action="[^"]*/keep"[^>]*>.*?name="csrf_token"[^>]*value="([^"]+)"', page, re.S)
    assert keep_token, "the recording's page offers Keep"
    kept_answer = maria.client.post(f"/o/river/media/{kept.id}/keep", data={"csrf_token": keep_token.group(1)})
    assert kept_answer.status_code == 303
    assert "Deleted on" not in text(maria.client.get(f"/o/river/media/{kept.id}"))
    ana = Browser(app, world, world.ana, world.one)  # she may watch it, not keep it
    assert ana.client.post(f"/o/river/media/{expired_id}/keep", data={"csrf_token": ana.csrf}).status_code == 403
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "media.kept")) is not None
    tenancy.activate(world.org.id)
    later = clock.now() + timedelta(days=91)
    assert media.expired_tenants(later) == [world.org.id]
    assert media.delete_expired(db.session.get(Organization, world.org.id), later) == 1
    db.session.commit()
    quiet.drain()
    assert fresh(world, MediaItem, expired_id) is None
    assert fresh(world, MediaItem, kept_id).status in ("processing", "ready")


def test_the_retention_sweep_runs_for_every_organization(app, world, webm, quiet):
    _, item = _finished_item(app, world, webm)
    tenancy.activate(world.org.id)
    db.session.get(MediaItem, item.id).expires_at = clock.now() - timedelta(minutes=1)
    db.session.commit()
    assert media_jobs.sweep_retention() == 1
    assert fresh(world, MediaItem, item.id).status == "deleting"


def test_no_retention_keeps_recordings(app, world, webm):
    tenancy.activate(world.org.id)
    db.session.get(Organization, world.org.id).recording_retention_days = None
    db.session.commit()
    _, item = _finished_item(app, world, webm)
    assert item.expires_at is None


def test_the_admin_sets_the_retention_of_recordings(app, world):
    admin = logged_in(app, world.admin.user.email)
    page = text(admin.get("/o/river/admin/settings"))
    assert 'name="recording_retention_days"' in page and 'value="90"' in page

    def save(days: str):
        token = csrf_from(text(admin.get("/o/river/admin/settings")))
        return admin.post("/o/river/admin/settings", data={**SETTINGS, "csrf_token": token,
                                                           "recording_retention_days": days})

    assert save("30").status_code == 303
    assert fresh(world, Organization, world.org.id).recording_retention_days == 30
    refused = save("0")
    assert refused.status_code == 422 and "Between 1 and 3,650 days" in text(refused)
    assert save("").status_code == 303  # empty: kept forever
    assert fresh(world, Organization, world.org.id).recording_retention_days is None
