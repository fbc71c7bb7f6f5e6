"""Media service and worker: uploads, what the worker makes of them, the quota, rights, deletion,
abandoned uploads, and timestamped review comments.

Services are called directly (``MediaWorld.do`` commits like a view); the bytes still travel
over HTTP to the local backend's signed part URLs, and the real relay and RQ worker make the
renditions (``world.process()``, with the background runner paused so the test decides when).
Every test has a media root of its own (``media_storage``), so "nothing left in storage" is
checked on disk.
"""
from __future__ import annotations

import io
import math
import shutil
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from coach import clock, tenancy
from coach.extensions import db
from coach.media import jobs, processing, service
from coach.media.models import MediaComment, MediaItem
from coach.media.service import MediaError, NotAllowed, NotYet, QuotaExceeded
from coach.media.storage import StorageError
from coach.orgs.models import Membership, Organization
from coach.platform.models import AuditEvent
from coach.spaces import service as spaces
from coach.spaces.models import Post, PostAttachment
from tests.factories import make_org, make_user
from tests.media_flow import (
    JPEG,
    MP4,
    PART_BYTES,
    PDF,
    MediaWorld,
    exe_bytes,
    fake_mp4_bytes,
    jpeg_bytes,
    make_video,
    media_storage,  # noqa: F401  (fixture)
    pdf_bytes,
    stored_files,
    upload_parts_on_disk,
)



@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A 2 s 320x240 MP4 with sound (about 200 KB: several 64 KB parts)."""
    return make_video(tmp_path_factory.mktemp("clips") / "serve.mp4", seconds=2)


@pytest.fixture()
def world(ctx, app, media_storage, quiet):  # noqa: F811
    return MediaWorld(app, quiet)


@pytest.fixture()
def video(world, clip) -> MediaItem:
    """Ana's video, ready to play (audience: everyone in the organization)."""
    return world.ready(world.ana, clip, MP4, audience="organization")


def original_bytes(storage, item) -> bytes:
    return storage.object_path(item.original_key).read_bytes()


# --- uploads and what the worker makes of them -----------------------------------------------------

def test_a_video_upload_becomes_playable_with_a_poster_and_thumbnail(world, media_storage, clip):
    data = clip.read_bytes()
    sent = world.start(world.ana, clip, MP4, title="First serve")
    assert sent.item.status == "uploading"
    assert sent.plan["part_count"] == math.ceil(len(data) / PART_BYTES) > 1
    assert world.used() == len(data)  # the declared size holds its room while uploading

    assert set(world.send(sent)) == {200}
    item = world.finish(world.ana, sent)
    assert (item.status, item.size_bytes) == ("processing", len(data))
    assert original_bytes(media_storage, item) == data
    assert upload_parts_on_disk(media_storage, sent.upload_id) == []

    world.process()
    item = world.fresh(item)
    assert item.status == "ready" and item.failure_reason is None
    assert (item.width, item.height) == (320, 240)
    assert abs(item.duration_ms - 2000) < 150
    assert set(item.derived_keys) == {"playback", "poster", "thumb"}
    assert stored_files(media_storage, item) == ["original", "playback", "poster", "thumb"]
    derived = sum(media_storage.object_path(k).stat().st_size for k in item.derived_keys.values())
    assert item.derived_bytes == derived
    assert item.counted_bytes == item.size_bytes + item.derived_bytes
    assert world.used() == item.counted_bytes

    playback = processing.probe_video(media_storage.object_path(item.derived_keys["playback"]))
    assert (playback.video_codec, playback.audio_codec, playback.pixel_format) == ("h264", "aac", "yuv420p")
    with Image.open(media_storage.object_path(item.derived_keys["poster"])) as poster:
        assert (poster.format, poster.size) == ("JPEG", (320, 240))
    with Image.open(media_storage.object_path(item.derived_keys["thumb"])) as thumb:
        assert thumb.format == "WEBP" and max(thumb.size) <= 320


def test_a_photo_gets_a_thumbnail_and_a_large_version_without_its_camera_data_or_location(world, media_storage,
                                                                                          tmp_path):
    photo = jpeg_bytes(size=(800, 600), gps=True)
    with Image.open(io.BytesIO(photo)) as im:  # the upload does carry the private data
        assert im.getexif().get(0x8825) and im.getexif().get(0x010F) == "Coach Test Camera"

    item = world.ready(world.ana, photo, JPEG, filename="holiday.jpg")

    assert (item.kind, item.width, item.height, item.duration_ms) == ("image", 800, 600, None)
    assert set(item.derived_keys) == {"thumb", "large"}
    assert item.counted_bytes == len(photo) + item.derived_bytes
    for name, longest in (("thumb", 320), ("large", 800)):
        local = tmp_path / f"{name}.webp"
        media_storage.download(item.derived_keys[name], local)
        with Image.open(local) as im:
            assert im.format == "WEBP" and max(im.size) == longest
            assert len(im.getexif()) == 0
            assert not {"exif", "xmp", "icc_profile"} & set(im.info)


def test_a_pdf_is_ready_at_once_with_no_renditions(world, media_storage):
    item = world.ready(world.ana, pdf_bytes(), PDF, filename="Training plan.pdf")
    assert (item.kind, item.title, item.derived_keys, item.derived_bytes) == ("pdf", "Training plan", {}, 0)
    assert item.counted_bytes == len(pdf_bytes()) == world.used()
    assert stored_files(media_storage, item) == ["original"]
    tenancy.activate(world.org.id)
    assert set(service.urls(item)) == {"original"}


@pytest.mark.parametrize("filename, content_type, message", [
    ("setup.exe", "application/x-msdownload", "cannot be uploaded"),
    ("page.html", "text/html", "cannot be uploaded"),
    ("setup.exe", "video/mp4", "should end in .mp4 or .m4v"),
    ("clip.mp4", "", "cannot be uploaded"),
])
def test_only_photos_videos_and_pdfs_can_be_uploaded(world, filename, content_type, message):
    world.refused(MediaError, service.start_upload, world.org, world.ana, filename, 4096, content_type,
                  match=message)
    assert db.session.scalar(select(func.count()).select_from(MediaItem)) == 0 and world.used() == 0


def test_a_long_file_name_becomes_a_shortened_title_and_a_long_title_is_refused(world):
    name = "Quarter final, second set, " + "very " * 40 + "long rally.mp4"  # 241 characters
    item = world.do(service.start_upload, world.org, world.ana, name, 1000, MP4)
    assert item.filename == name and len(item.title) == service.TITLE_MAX and item.title.startswith("Quarter")
    world.refused(MediaError, service.start_upload, world.org, world.ana, "a.mp4", 1000, MP4, title="x" * 201,
                  match="up to 200 characters")


def test_a_file_name_too_long_to_keep_is_shortened_before_its_extension():
    name = "Quarter final " + "x" * 300 + ".mp4"
    cleaned = service.clean_filename(name)
    assert len(cleaned) == service.FILENAME_MAX and cleaned.endswith("x.mp4")
    assert service.clean_filename("C:\\Users\\ana\\clip.mov") == "clip.mov"


def test_an_unfinished_or_failed_upload_is_seen_by_its_owner_and_admins_only(world):
    sent = world.start(world.ana, pdf_bytes(), PDF, filename="plan.pdf", audience="organization")
    tenancy.activate(world.org.id)
    item = world.fresh(sent.item)
    assert [service.can_view(item, m) for m in (world.ana, world.admin, world.coach, world.ben)] == \
        [True, True, False, False]


def test_a_broken_storage_folder_is_a_storage_failure_that_writes_nothing(world, media_storage):
    shutil.rmtree(media_storage.uploads_dir, ignore_errors=True)
    media_storage.uploads_dir.parent.mkdir(parents=True, exist_ok=True)
    media_storage.uploads_dir.write_text("a file where the uploads folder should be")
    before = world.used()
    world.refused(StorageError, service.start_upload, world.org, world.ana, "a.pdf", 1000, PDF,
                  match="Local media storage failed")
    assert world.used() == before
    assert db.session.scalar(select(func.count()).select_from(MediaItem)) == 0


def test_a_program_renamed_to_mp4_fails_at_finalize_and_leaves_nothing_behind(world, media_storage):
    pdf = world.ready(world.ben, pdf_bytes(), PDF, filename="plan.pdf")
    before = world.used()

    sent = world.start(world.ana, exe_bytes(), MP4, filename="funny-cat.mp4")
    assert world.used() == before + len(sent.data)
    world.send(sent)
    item = world.finish(world.ana, sent)

    assert item.status == "failed"
    assert item.failure_reason == "This file is not an MP4 video, whatever its name says."
    assert item.counted_bytes == 0 and world.used() == before == pdf.counted_bytes
    assert stored_files(media_storage, item) == []
    assert upload_parts_on_disk(media_storage, sent.upload_id) == []
    world.process()  # no job was queued for it
    assert world.fresh(item).status == "failed"


def test_a_part_larger_than_declared_is_refused_and_the_upload_never_gets_ready(world, media_storage, clip):
    data = clip.read_bytes()
    declared = len(data) - 1000
    sent = world.start(world.ana, data[:declared], MP4, filename="cropped.mp4")
    upload_id, last = sent.upload_id, sent.plan["parts"][-1]
    assert last["number"] > 1

    assert set(world.send(sent, list(range(1, last["number"])))) == {200}
    too_big = world.http.put(last["url"], data=data[(last["number"] - 1) * PART_BYTES:])
    assert too_big.status_code == 413

    with pytest.raises(NotYet, match=f"Part {last['number']} of"):
        world.finish(world.ana, sent)
    db.session.rollback()
    item = world.fresh(sent.item)
    assert item.status == "uploading"
    assert last["number"] not in service.upload_plan(item)["done"]
    assert stored_files(media_storage, item) == []  # no object: only the parts that fitted wait
    assert world.used() == declared  # exactly what was declared, not what was sent

    media_id = item.id
    world.do(service.delete_item, item, world.ana)
    world.process()
    assert world.fresh(media_id) is None and world.used() == 0
    assert upload_parts_on_disk(media_storage, upload_id) == []


def test_parts_may_arrive_in_any_order(world, media_storage, clip):
    sent = world.start(world.ana, clip, MP4)
    numbers = [p["number"] for p in sent.plan["parts"]]
    assert len(numbers) >= 3
    assert set(world.send(sent, [numbers[2], numbers[0], *numbers[3:], numbers[1]])) == {200}
    item = world.finish(world.ana, sent)
    assert item.status == "processing"
    assert original_bytes(media_storage, item) == sent.data


def test_a_part_sent_again_replaces_the_first_one(world, media_storage, clip):
    sent = world.start(world.ana, clip, MP4)
    garbled = bytearray(sent.data)
    garbled[PART_BYTES:2 * PART_BYTES] = bytes(PART_BYTES)  # part 2 arrives damaged first
    damaged = bytes(garbled[PART_BYTES:2 * PART_BYTES])
    assert world.http.put(sent.plan["parts"][1]["url"], data=damaged).status_code == 200

    assert set(world.send(sent)) == {200}  # the browser retries every part, part 2 included
    item = world.finish(world.ana, sent)
    assert item.status == "processing"
    assert original_bytes(media_storage, item) == sent.data


def test_finalize_before_every_part_arrived_waits_and_the_upload_resumes(world, media_storage, clip):
    sent = world.start(world.ana, clip, MP4)
    numbers = [p["number"] for p in sent.plan["parts"]]
    world.send(sent, [numbers[0], numbers[2]])

    world.refused(NotYet, service.finalize, world.fresh(sent.item), world.ana, match="Part 2 of")
    item = world.fresh(sent.item)
    assert item.status == "uploading" and item.upload_id == sent.upload_id
    tenancy.activate(world.org.id)
    plan = service.upload_plan(item)
    assert plan["done"] == [numbers[0], numbers[2]]
    assert [p["number"] for p in plan["parts"]] == numbers  # fresh URLs for every part

    world.send(sent, [n for n in numbers if n not in plan["done"]])
    item = world.finish(world.ana, sent)
    assert item.status == "processing"
    assert original_bytes(media_storage, item) == sent.data


def test_finalizing_twice_changes_nothing(world, clip):
    sent = world.start(world.ana, clip, MP4)
    world.send(sent)
    first = world.finish(world.ana, sent)
    again = world.finish(world.ana, sent)
    assert (first.status, again.status) == ("processing", "processing")
    assert again.uploaded_at == first.uploaded_at


def test_only_the_uploader_finishes_an_upload(world, clip):
    sent = world.start(world.ana, clip, MP4)
    world.send(sent)
    world.refused(NotAllowed, service.finalize, world.fresh(sent.item), world.admin)
    assert world.fresh(sent.item).status == "uploading"


# --- the quota -------------------------------------------------------------------------------------

def test_an_upload_bigger_than_the_room_left_is_refused(world):
    world.set_quota(100_000)
    error = world.refused(QuotaExceeded, service.start_upload, world.org, world.ana, "match.mp4", 150_000, MP4)
    assert "Not enough room" in str(error) and error.status == 413
    assert world.used() == 0
    assert world.do(service.start_upload, world.org, world.ana, "match.mp4", 100_000, MP4).status == "uploading"


def test_uploads_in_flight_hold_their_room(world):
    world.set_quota(200_000)
    world.do(service.start_upload, world.org, world.ana, "one.mp4", 120_000, MP4)
    world.refused(QuotaExceeded, service.start_upload, world.org, world.ben, "two.mp4", 100_000, MP4)
    world.do(service.start_upload, world.org, world.ben, "two.mp4", 80_000, MP4)
    assert world.used() == 200_000
    world.refused(QuotaExceeded, service.start_upload, world.org, world.coach, "three.pdf", 1, PDF)


def test_two_uploads_at_once_cannot_both_take_the_last_room(world, app):
    """The quota check is serialized per organization: the second waits, then sees the first."""
    world.set_quota(100_000)
    org_id, ben_id = world.org.id, world.ben.id
    outcome: list = []

    def second_upload():
        with app.app_context():
            tenancy.activate(org_id)
            org, ben = db.session.get(Organization, org_id), db.session.get(Membership, ben_id)
            try:
                service.start_upload(org, ben, "second.mp4", 60_000, MP4)
                db.session.commit()
                outcome.append("started")
            except QuotaExceeded:
                db.session.rollback()
                outcome.append("refused")

    tenancy.activate(world.org.id)
    service.start_upload(world.org, world.ana, "first.mp4", 60_000, MP4)  # not committed yet
    other = threading.Thread(target=second_upload)
    other.start()
    other.join(0.5)
    assert outcome == []  # still waiting for the first upload's transaction
    db.session.commit()
    other.join(30)
    assert outcome == ["refused"]
    assert world.used() == 60_000


def test_deleting_an_item_gives_its_room_back_exactly(world, media_storage):
    photo = world.ready(world.ana, jpeg_bytes(), JPEG, filename="a.jpg")
    pdf = world.ready(world.ben, pdf_bytes(), PDF, filename="b.pdf")
    photo_bytes, pdf_bytes_counted = photo.counted_bytes, pdf.counted_bytes
    assert world.used() == photo_bytes + pdf_bytes_counted
    world.set_quota(world.used())
    world.refused(QuotaExceeded, service.start_upload, world.org, world.ben, "c.pdf", 10, PDF)

    world.do(service.delete_item, world.fresh(photo), world.ana)
    assert world.used() == photo_bytes + pdf_bytes_counted  # counted until its files are gone
    world.process()
    assert world.used() == pdf_bytes_counted
    assert world.do(service.start_upload, world.org, world.ben, "c.pdf", photo_bytes, PDF)
    world.refused(QuotaExceeded, service.start_upload, world.org, world.ben, "d.pdf", 1, PDF)


def test_files_over_the_size_limit_are_refused_whatever_the_room(world, app, monkeypatch):
    monkeypatch.setitem(app.config, "MEDIA_MAX_BYTES", 100_000)
    error = world.refused(QuotaExceeded, service.start_upload, world.org, world.ana, "long.mp4", 100_001, MP4)
    assert "Files can be up to 97.7 KB" in str(error)
    assert world.do(service.start_upload, world.org, world.ana, "long.mp4", 100_000, MP4).declared_bytes == 100_000


@pytest.mark.parametrize("size, message", [(0, "empty"), (-5, "empty"), (None, "size is missing"),
                                           ("lots", "size is missing"), (float("inf"), "size is missing")])
def test_an_upload_needs_a_real_size(world, size, message):
    world.refused(MediaError, service.start_upload, world.org, world.ana, "a.mp4", size, MP4, match=message)


def test_a_quota_of_its_own_replaces_the_default(world, app):
    tenancy.activate(world.org.id)
    assert service.quota_of(world.org) == app.config["MEDIA_QUOTA_BYTES"]
    world.set_quota(5_000_000)
    assert service.usage(world.org).quota == 5_000_000 and service.usage(world.org).free == 5_000_000


# --- what the worker refuses, and what nobody finished -------------------------------------------

@pytest.fixture()
def truncated_clip(clip, tmp_path) -> bytes:
    return clip.read_bytes()[: len(clip.read_bytes()) * 3 // 10]


@pytest.mark.parametrize("case", ["random bytes behind an ftyp box", "the first 30% of a real video"])
def test_a_damaged_video_fails_with_a_readable_reason_and_its_files_go(world, media_storage, truncated_clip, case):
    data = fake_mp4_bytes() if case.startswith("random") else truncated_clip
    item = world.uploaded(world.ana, data, MP4, filename="damaged.mp4")
    assert world.used() == len(data)

    world.process()
    item = world.fresh(item)
    assert item.status == "failed"
    assert item.failure_reason in (processing.NOT_A_VIDEO, processing.INCOMPLETE_VIDEO, processing.VIDEO_FAILED)
    assert "ffmpeg" not in item.failure_reason.lower() and str(media_storage.root) not in item.failure_reason
    assert (item.counted_bytes, item.derived_keys) == (0, {})
    assert world.used() == 0
    assert stored_files(media_storage, item) == []


def test_an_abandoned_upload_is_aborted_by_the_sweep_and_its_room_released(world, media_storage, clip):
    yesterday = clock.now() - timedelta(hours=25)
    stale = world.start(world.ana, clip, MP4, now=yesterday)
    world.send(stale, [1])
    assert upload_parts_on_disk(media_storage, stale.upload_id) != []
    recent = world.start(world.ben, clip, MP4)

    db.session.commit()
    tenancy.deactivate()
    assert jobs.sweep_all() >= 1

    stale_item = world.fresh(stale.item)
    assert stale_item.status == "failed" and "not finished in time" in stale_item.failure_reason
    assert stale_item.counted_bytes == 0 and stale_item.upload_id is None
    assert upload_parts_on_disk(media_storage, stale.upload_id) == []
    assert world.fresh(recent.item).status == "uploading"
    assert world.used() == len(recent.data)
    tenancy.deactivate()
    assert jobs.sweep_all() == 0  # nothing left to do: the sweep is idempotent


# --- deleting --------------------------------------------------------------------------------------

def test_deleting_takes_the_item_away_at_once_and_the_job_removes_files_attachments_and_comments(
        world, media_storage, video):
    space = world.do(spaces.create_space, world.org, world.coach, "Serves", "", "open")
    world.do(spaces.join, space, world.ana)
    post = world.do(spaces.create_post, space, world.ana, "My serve", attachments=[world.fresh(video)])
    world.do(service.add_review_comment, world.fresh(video), world.coach, 1000, "Toss higher")
    media_id, folder = video.id, f"{video.tenant_id}/{video.id}"
    assert len(stored_files(media_storage, folder)) == 4

    world.do(service.delete_item, world.fresh(video), world.ana)
    item = world.fresh(video)
    assert item.status == "deleting"
    tenancy.activate(world.org.id)
    assert not service.can_view(item, world.coach)
    assert media_id not in [i.id for i in service.library(world.org, world.ana).rows]
    assert spaces.attachments_of(world.org.id, [post.id]) == {}

    world.process()
    assert world.fresh(media_id) is None
    assert stored_files(media_storage, folder) == []
    tenancy.activate(world.org.id)
    assert db.session.scalar(select(func.count()).select_from(PostAttachment)) == 0
    assert db.session.scalar(select(func.count()).select_from(MediaComment)) == 0
    assert db.session.get(Post, post.id) is not None  # the post stays, without its attachment
    assert world.used() == 0


def test_only_the_owner_or_an_admin_deletes_and_an_admin_leaves_an_audit_trail(world):
    item = world.uploaded(world.ana, pdf_bytes(), PDF, filename="plan.pdf", audience="organization")
    for other in (world.ben, world.coach):
        world.refused(NotAllowed, service.delete_item, world.fresh(item), other)
    assert world.fresh(item).status == "processing"
    world.do(service.delete_item, world.fresh(item), world.admin)
    assert world.fresh(item).status == "deleting"
    [trail] = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "media.deleted")).all()
    assert trail.target_id == str(item.id) and trail.details == {"title": "plan", "owner": "ana@lake.example.com"}


# --- who sees and manages what ---------------------------------------------------------------------

def test_the_owner_and_admins_manage_coaches_and_others_do_not(world):
    item = world.uploaded(world.ana, pdf_bytes(), PDF, filename="plan.pdf")
    tenancy.activate(world.org.id)
    assert [service.can_manage(item, m) for m in (world.ana, world.admin, world.coach, world.ben)] == \
        [True, True, False, False]
    world.refused(NotAllowed, service.update_details, world.fresh(item), world.coach, "Mine now", "staff")
    world.do(service.update_details, world.fresh(item), world.admin, "Season plan", "organization")
    assert (world.fresh(item).title, world.fresh(item).audience) == ("Season plan", "organization")


def test_a_staff_item_is_seen_by_its_owner_and_the_staff_only(world):
    item = world.uploaded(world.ana, pdf_bytes(), PDF, filename="plan.pdf")
    tenancy.activate(world.org.id)
    assert [service.can_view(item, m) for m in (world.ana, world.admin, world.coach, world.ben)] == \
        [True, True, True, False]
    assert [i.id for i in service.library(world.org, world.ben).rows] == []
    assert [i.id for i in service.library(world.org, world.coach).rows] == [item.id]


def test_an_organization_item_is_seen_by_everyone_in_it(world):
    item = world.uploaded(world.ana, pdf_bytes(), PDF, filename="plan.pdf", audience="organization")
    tenancy.activate(world.org.id)
    assert service.can_view(item, world.ben)
    assert [i.id for i in service.library(world.org, world.ben).rows] == [item.id]
    assert not service.can_manage(item, world.ben)


def test_a_staff_item_attached_to_a_post_is_seen_by_the_readers_of_that_post(world):
    item = world.uploaded(world.ana, pdf_bytes(), PDF, filename="plan.pdf")
    open_space = world.do(spaces.create_space, world.org, world.coach, "Open", "", "open")
    world.do(spaces.join, open_space, world.ana)
    tenancy.activate(world.org.id)
    assert not service.can_view(item, world.ben)

    post = world.do(spaces.create_post, open_space, world.ana, "Plan", attachments=[world.fresh(item)])
    tenancy.activate(world.org.id)
    assert service.can_view(world.fresh(item), world.ben)  # Ben need not have joined an open space

    world.do(spaces.delete_post, db.session.get(Post, post.id), world.ana)
    assert not service.can_view(world.fresh(item), world.ben)


def test_a_staff_item_in_a_private_space_is_seen_by_its_members_only(world):
    item = world.uploaded(world.ana, pdf_bytes(), PDF, filename="plan.pdf")
    private = world.do(spaces.create_space, world.org, world.coach, "Inner circle", "", "private")
    world.do(spaces.add_member, private, world.coach, world.ana)
    world.do(spaces.create_post, private, world.ana, "Plan", attachments=[world.fresh(item)])
    tenancy.activate(world.org.id)
    assert not service.can_view(world.fresh(item), world.ben)
    world.do(spaces.add_member, private, world.coach, world.ben)
    tenancy.activate(world.org.id)
    assert service.can_view(world.fresh(item), world.ben)


def test_another_organizations_media_does_not_exist_here(world):
    media_id = world.uploaded(world.ana, pdf_bytes(), PDF, filename="plan.pdf", audience="organization").id
    other = make_org(make_user("zed@hill.example.com", "Zed"), slug="hill")
    tenancy.activate(other.id)
    assert service.get_item(other, media_id) is None
    assert db.session.scalar(select(func.count()).select_from(MediaItem)) == 0  # RLS: not even by id
    tenancy.activate(world.org.id)
    assert service.get_item(world.org, "not-a-uuid") is None
    assert service.get_item(world.org, media_id).id == media_id


def test_only_own_ready_or_processing_media_can_be_attached(world):
    mine = world.uploaded(world.ana, pdf_bytes(), PDF, filename="mine.pdf")
    bens = world.uploaded(world.ben, pdf_bytes(), PDF, filename="bens.pdf", audience="organization")
    failed = world.finish(world.ana, _sent_exe(world))
    assert failed.status == "failed"
    tenancy.activate(world.org.id)
    assert [i.id for i in service.for_attachment(world.org, world.ana, [str(mine.id), str(mine.id)])] == [mine.id]
    assert [i.id for i in service.attachable(world.org, world.ana)] == [mine.id]
    for ids, message in (([str(bens.id)], "your own"), (["nonsense"], "not a media item"),
                         ([str(failed.id)], "cannot be attached"), ([str(mine.id), str(bens.id)], "your own")):
        with pytest.raises(MediaError, match=message):
            service.for_attachment(world.org, world.ana, ids)


def _sent_exe(world):
    sent = world.start(world.ana, exe_bytes(), MP4, filename="virus.mp4")
    world.send(sent)
    return sent


# --- review comments -------------------------------------------------------------------------------

@pytest.mark.parametrize("value, ms", [
    ("1:23", 83_000), ("83", 83_000), ("83.4", 83_400), ("0:00", 0), ("1:02:03", 3_723_000),
    (" 2:05 ", 125_000), ("12:00.5", 720_500),
    ("", None), (None, None), ("abc", None), ("1:60", None), ("1:5", None), ("-3", None), ("1:60:00", None),
    ("1::23", None), ("83s", None),
])
def test_moments_are_read_as_people_write_them(value, ms):
    assert service.parse_moment(value) == ms


def test_review_comments_are_in_video_order_and_replies_nest_one_level(world, video):
    later = world.do(service.add_review_comment, world.fresh(video), world.coach, 1500, "Follow through")
    early = world.do(service.add_review_comment, world.fresh(video), world.coach, 300, "Feet first")
    reply = world.do(service.add_review_comment, world.fresh(video), world.ana, None, "Like this?", parent=early)
    deeper = world.do(service.add_review_comment, world.fresh(video), world.coach, 1900, "Yes", parent=reply)

    assert reply.at_ms == deeper.at_ms == 300  # a reply keeps its thread's moment
    assert deeper.parent_id == early.id  # a reply to a reply joins the thread
    tenancy.activate(world.org.id)
    threads = service.review_comments(world.fresh(video))
    assert [(c.body, [r.body for r in replies]) for c, replies in threads] == [
        ("Feet first", ["Like this?", "Yes"]), ("Follow through", [])]
    assert [c.at_label for c, _ in threads] == ["0:00", "0:01"]
    assert later.id == threads[1][0].id


def test_review_comments_are_refused_past_the_end_empty_or_too_long(world, video):
    item = world.fresh(video)
    world.refused(MediaError, service.add_review_comment, item, world.coach, item.duration_ms + 1, "Too late",
                  match="only 0:02 long")
    for body, message in (("", "Write a comment"), ("   \n ", "Write a comment"),
                          ("x" * (service.COMMENT_MAX + 1), "up to 2000"), ("nul\x00", "up to 2000")):
        world.refused(MediaError, service.add_review_comment, world.fresh(video), world.coach, 500, body,
                      match=message)
    world.refused(MediaError, service.add_review_comment, world.fresh(video), world.coach, None, "When?",
                  match="minutes:seconds")
    world.do(service.add_review_comment, world.fresh(video), world.coach, item.duration_ms, "The very end")
    world.do(service.add_review_comment, world.fresh(video), world.coach, 500, "x" * service.COMMENT_MAX)
    tenancy.activate(world.org.id)
    assert len(service.review_comments(world.fresh(video))) == 2


def test_review_comments_are_for_ready_videos_only_and_for_those_who_see_them(world, clip):
    photo = world.uploaded(world.ana, jpeg_bytes(), JPEG, filename="a.jpg", audience="organization")
    processing_video = world.uploaded(world.ana, clip, MP4)
    world.refused(MediaError, service.add_review_comment, world.fresh(photo), world.coach, 0, "Nice",
                  match="ready to play")
    world.refused(MediaError, service.add_review_comment, world.fresh(processing_video), world.coach, 0, "Nice",
                  match="ready to play")
    world.refused(NotAllowed, service.add_review_comment, world.fresh(processing_video), world.ben, 0, "Nice")


def test_a_review_comment_is_deleted_by_its_author_the_owner_or_an_admin_only(world, video):
    def comment(body):
        return world.do(service.add_review_comment, world.fresh(video), world.coach, 1000, body)

    first, second, third = comment("One"), comment("Two"), comment("Three")
    world.refused(NotAllowed, service.delete_review_comment, first, world.ben)
    world.do(service.delete_review_comment, first, world.coach)  # its author
    world.do(service.delete_review_comment, second, world.ana)  # the video's owner
    world.do(service.delete_review_comment, third, world.admin)
    tenancy.activate(world.org.id)
    shown = service.review_comments(world.fresh(video))
    assert all(c.deleted_at is not None for c, _ in shown) and len(shown) == 3


def test_a_reply_must_belong_to_the_same_video(world, video, clip):
    other = world.ready(world.ana, clip, MP4, audience="organization")
    elsewhere = world.do(service.add_review_comment, world.fresh(other), world.coach, 100, "Elsewhere")
    world.refused(MediaError, service.add_review_comment, world.fresh(video), world.coach, None, "Hi",
                  parent=elsewhere, match="this video")
