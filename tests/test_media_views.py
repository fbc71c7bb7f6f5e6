"""Media pages as people use them: the library and its upload exchange (JSON, as media.js speaks it),
an item's page while processing and once ready, review comments, details, deletion, who may
open what, signed object links, and media attached to posts.

Pages are requested as full pages and, where htmx swaps part of them, as fragments
(``HX-Request``): a fragment has no ``<html``. The worker runs only when a test says so
(``world.process()``); every test has a media root of its own.
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import pytest

from coach import tenancy
from coach.extensions import db
from coach.media import service
from coach.spaces import service as spaces
from coach.spaces.models import Post
from tests.conftest import csrf_from
from tests.factories import make_org, make_user
from tests.media_flow import (
    HX,
    JPEG,
    MP4,
    PDF,
    MediaWorld,
    exe_bytes,
    finalize,
    jpeg_bytes,
    logged_in,
    make_video,
    media_storage,  # noqa: F401  (fixture)
    minutes_ago,
    page_token,
    pdf_bytes,
    put_part,
    request_upload,
    send_parts,
    storage_paths,
    text,
    upload,
)
from tests.querycount import statements_for

TILE_RE = re.compile(r'id="media-([0-9a-f-]{36})"')


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("clips") / "rally.mp4", seconds=2)


@pytest.fixture()
def world(ctx, app, media_storage, quiet):  # noqa: F811
    return MediaWorld(app, quiet)


@pytest.fixture()
def ana(world):
    return world.browser(world.ana)


@pytest.fixture()
def ben(world):
    return world.browser(world.ben)


def form_post(world, browser, path: str, headers=None, **data):
    """POST a form to ``/o/lake/media<path>`` with the page's CSRF token."""
    return browser.post(world.url(path), data={"csrf_token": page_token(browser, world.slug), **data},
                        headers=headers or {})


def tiles(html: str) -> list[str]:
    return TILE_RE.findall(html)


# --- the library and the upload exchange -----------------------------------------------------------

def test_library_page_has_the_upload_form_a_noscript_note_and_the_room_used(world, ana):
    world.uploaded(world.ana, pdf_bytes(), PDF, filename="plan.pdf")
    page = text(ana.get(world.url()))
    assert "<html" in page
    assert 'data-upload action="/o/lake/media/uploads"' in page
    assert 'type="file"' in page and 'name="csrf_token"' in page
    assert re.search(r"<noscript>.*needs JavaScript.*</noscript>", page)
    assert f"{len(pdf_bytes())} bytes of 100 GB used by Lake Club" in page
    assert "plan" in page and "processing" in page


def test_the_room_used_follows_each_upload_processing_and_deletion_at_once(world, ana):
    """The library keeps the organization's sum between views (summing every item per view grew with the
    organization); each change of an item, in the app or in the worker, must still show on the next page."""

    def shown() -> str:
        return re.search(r"([\d.]+ \w+) of 100 GB used", text(ana.get(world.url()))).group(1)

    def summed() -> str:
        tenancy.activate(world.org.id)
        return service.human_size(service.usage(world.org).used)

    size = len(pdf_bytes())
    first = world.uploaded(world.ana, pdf_bytes(), PDF, filename="plan.pdf")
    assert shown() == summed() == f"{size} bytes"
    world.uploaded(world.ana, pdf_bytes(), PDF, filename="plan-2.pdf")
    assert shown() == summed() == f"{2 * size} bytes"
    world.process()  # the worker counts the renditions too
    both = summed()
    assert shown() == both
    assert form_post(world, ana, f"/{first.id}/delete").status_code == 303
    world.process()  # the worker removes the files and the row: its room is given back
    assert shown() == summed() != both


def test_library_pages_older_media_by_keyset_and_htmx_gets_only_the_next_page(world, ana):
    made = [world.start(world.ana, pdf_bytes(), PDF, filename=f"doc-{i:02d}.pdf", now=minutes_ago(100 - i)).item.id
            for i in range(service.LIBRARY_PAGE + 2)]
    newest_first = [str(i) for i in reversed(made)]

    first = text(ana.get(world.url()))
    assert tiles(first) == newest_first[:service.LIBRARY_PAGE]
    older = re.search(r'<a class="button" href="([^"]+)">Older media</a>', first).group(1).replace("&amp;", "&")
    assert "after=" in older

    fragment = ana.get(older, headers=HX)
    assert fragment.status_code == 200 and "<html" not in text(fragment)
    assert tiles(text(fragment)) == newest_first[service.LIBRARY_PAGE:]
    assert "Older media" not in text(fragment)
    assert fragment.headers["Vary"] and "HX-Request" in fragment.headers["Vary"]
    full = text(ana.get(older))  # without JavaScript the link is a page of its own
    assert "<html" in full and tiles(full) == newest_first[service.LIBRARY_PAGE:]


def test_a_whole_upload_through_the_json_endpoints_lands_in_processing(world, ana, media_storage, clip):
    token = page_token(ana, world.slug)
    done = upload(ana, world.slug, token, clip, MP4, title="Rally", audience="organization")
    assert done["http_status"] == 200
    assert done["status"] == "processing" and done["page_url"] == world.url(f"/{done['media_id']}")
    item = world.fresh(done["media_id"])
    assert (item.title, item.audience, item.size_bytes) == ("Rally", "organization", clip.stat().st_size)


def test_upload_intent_answers_with_signed_part_urls_and_links(world, ana):
    token = page_token(ana, world.slug)
    started = request_upload(ana, world.slug, token, "serve.mp4", 200_000, MP4)
    assert started.status_code == 201 and started.is_json
    plan = started.get_json()
    assert plan["size"] == 200_000 and plan["done"] == []
    assert sum(p["size"] for p in plan["parts"]) == 200_000
    assert all(p["url"].startswith("/storage/parts/") and "sig=" in p["url"] for p in plan["parts"])
    assert plan["resume_url"] == world.url(f"/{plan['media_id']}/upload")
    assert plan["finalize_url"] == world.url(f"/{plan['media_id']}/finalize")


@pytest.mark.parametrize("body, content_type", [
    (b"", "application/json"), (b"{not json", "application/json"), (b"[1, 2]", "application/json"),
    (b'"serve.mp4"', "application/json"), (b"null", "application/json"),
    (b'{"filename": "a.mp4", "size": Infinity, "content_type": "video/mp4"}', "application/json"),
    (b'{"filename": "a.mp4", "size": {"x": 1}, "content_type": "video/mp4"}', "application/json"),
    (b'{"filename": ["a.mp4"], "size": 10, "content_type": "video/mp4"}', "application/json"),
])
def test_upload_intent_answers_bad_input_with_a_json_error_never_a_500(world, ana, body, content_type):
    token = page_token(ana, world.slug)
    headers = {"X-CSRFToken": token, "Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    response = ana.post(world.url("/uploads"), data=body, headers=headers)
    assert 400 <= response.status_code < 500, text(response)
    assert response.is_json and response.get_json()["error"]
    assert world.used() == 0


def test_the_upload_form_sent_without_javascript_comes_back_with_a_note(world, ana):
    response = form_post(world, ana, "/uploads", title="Match", audience="staff")
    assert response.status_code == 303 and response.headers["Location"] == world.url()
    assert "turn JavaScript on to upload" in text(ana.get(world.url()))
    assert world.used() == 0


def test_upload_intent_without_the_csrf_header_is_refused(world, ana):
    response = request_upload(ana, world.slug, None, "serve.mp4", 1000, MP4)
    assert response.status_code == 400
    assert world.used() == 0


def test_upload_intent_of_a_program_is_refused_with_the_allowed_types(world, ana):
    response = request_upload(ana, world.slug, page_token(ana, world.slug), "setup.exe", 4096,
                              "application/x-msdownload")
    assert response.status_code == 422
    assert response.get_json()["error"].startswith("This type of file cannot be uploaded. Allowed:")


def test_upload_intent_over_the_quota_is_413_with_a_readable_error(world, ana):
    world.set_quota(1_000_000)
    response = request_upload(ana, world.slug, page_token(ana, world.slug), "match.mp4", 2_000_000, MP4)
    assert response.status_code == 413
    assert response.get_json()["error"] == ("Not enough room: 976.6 KB of 976.6 KB left, the file needs 1.9 MB. "
                                            "Delete older media or ask an admin.")


def test_finalize_before_every_part_is_409_and_the_resume_plan_lists_what_arrived(world, ana, clip):
    token = page_token(ana, world.slug)
    data = clip.read_bytes()
    plan = request_upload(ana, world.slug, token, "rally.mp4", len(data), MP4).get_json()
    assert put_part(ana, plan, 1, data).status_code == 200

    early = finalize(ana, plan, token)
    assert early.status_code == 409
    assert early.get_json()["error"] == f"Part 2 of {plan['part_count']} has not arrived yet."
    resumed = ana.get(plan["resume_url"])
    assert resumed.status_code == 200 and resumed.get_json()["done"] == [1]
    item_page = text(ana.get(plan["page_url"]))
    assert "This upload has not finished" in item_page

    fresh = resumed.get_json()
    assert set(send_parts(ana, fresh, data, [p["number"] for p in fresh["parts"][1:]])) == {200}
    done = finalize(ana, fresh, token)
    assert done.status_code == 200 and done.get_json()["status"] == "processing"
    finished = ana.get(plan["resume_url"])
    assert finished.status_code == 409 and finished.get_json()["error"] == "This upload is finished."


def test_finalize_of_a_program_named_mp4_is_422_with_the_reason(world, ana):
    done = upload(ana, world.slug, page_token(ana, world.slug), exe_bytes(), MP4, filename="cat.mp4")
    assert done["http_status"] == 422 and done["status"] == "failed"
    assert "whatever its name says" in done["error"]
    page = text(ana.get(done["page_url"]))
    assert "whatever its name says" in page and "<video" not in page


def test_a_part_bigger_than_signed_is_413_and_a_mangled_part_url_403(world, ana):
    token = page_token(ana, world.slug)
    plan = request_upload(ana, world.slug, token, "a.pdf", 1000, PDF).get_json()
    url = plan["parts"][0]["url"]
    assert ana.put(url, data=b"%PDF-" + b"x" * 1000).status_code == 413
    path, query = url.split("?", 1)
    args = dict(parse_qsl(query))
    assert ana.put(f"{path}?{urlencode(args | {'size': '2000'})}", data=b"x" * 2000).status_code == 403
    assert ana.put(url, data=b"%PDF-" + b"x" * 995).status_code == 200


# --- an item's page --------------------------------------------------------------------------------

def test_item_page_polls_while_processing_and_the_status_stops_polling_once_ready(world, ana):
    item = world.uploaded(world.ana, jpeg_bytes(), JPEG, filename="court.jpg")
    status_url = world.url(f"/{item.id}/status")

    page = text(ana.get(world.url(f"/{item.id}")))
    assert "<html" in page
    assert f'hx-get="{status_url}" hx-trigger="every 2s" hx-swap="outerHTML"' in page
    polling = ana.get(status_url, headers=HX)
    assert polling.status_code == 200 and "<html" not in text(polling)
    assert text(polling).lstrip().startswith('<div id="media-status" hx-get=') and "Processing" in text(polling)

    world.process()
    done = ana.get(status_url, headers=HX)
    assert done.status_code == 286
    assert "<html" not in text(done) and "hx-trigger" not in text(done)
    assert '<img src="/storage/objects/' in text(done)
    assert ana.get(status_url).status_code == 200  # without htmx: the page, as a page


def test_ready_video_page_has_a_player_with_a_poster_and_range_requests_work(world, ana, clip):
    item = world.ready(world.ana, clip, MP4, title="Rally")
    page = text(ana.get(world.url(f"/{item.id}")))
    video = re.search(r"<video [^>]*>", page).group(0)
    src = re.search(r'src="([^"]+)"', video).group(1).replace("&amp;", "&")
    poster = re.search(r'poster="([^"]+)"', video).group(1).replace("&amp;", "&")
    assert src.startswith(f"/storage/objects/{item.tenant_id}/{item.id}/playback?")
    assert poster.startswith(f"/storage/objects/{item.tenant_id}/{item.id}/poster?")
    assert 'width="320" height="240"' in video
    assert "0:02" in page and 'id="review"' in page

    whole = world.http.get(src)
    assert whole.status_code == 200 and whole.mimetype == "video/mp4"
    part = world.http.get(src, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and len(part.data) == 100 and part.data == whole.data[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(whole.data)}"
    assert world.http.get(poster).mimetype == "image/jpeg"

    at_moment = text(ana.get(world.url(f"/{item.id}?t=1.5")))  # a review link starts the player there
    assert re.search(r'<video [^>]*src="/storage/objects/[^"]+#t=1\.500"', at_moment)


def test_signed_object_links_refuse_tampering(world, ana):
    item = world.ready(world.ana, jpeg_bytes(), JPEG, filename="court.jpg")
    [thumb] = [p for p in storage_paths(text(ana.get(world.url()))) if "/thumb?" in p]
    assert world.http.get(thumb).status_code == 200

    path, query = thumb.split("?", 1)
    args = dict(parse_qsl(query))
    tampered = [
        f"{path.replace('/thumb', '/original')}?{query}",  # another object, same signature
        f"{path}?{urlencode(args | {'exp': str(int(args['exp']) + 3600)})}",  # a longer life
        f"{path}?{urlencode(args | {'ct': 'text/html'})}",  # another type
        f"{path}?{urlencode(args | {'sig': args['sig'][:-2] + 'AA'})}",
        f"{path}?{urlencode({k: v for k, v in args.items() if k != 'sig'})}",
        f"{path}?{urlencode(args | {'exp': 'soon'})}",
    ]
    for url in tampered:
        assert world.http.get(url).status_code == 403, url
    other = world.fresh(item)
    assert world.http.get(f"/storage/objects/{other.original_key}").status_code == 403


def test_a_thumbnail_the_browser_has_is_used_again_on_the_next_page_and_revalidates_to_304(world, ana):
    """The library's thumbnails may be kept by the member's own browser (never a shared cache) until their link
    expires, and the next page links the same URL: the browser shows what it has without asking."""
    world.ready(world.ana, jpeg_bytes(), JPEG, filename="court.jpg")
    [thumb] = [p for p in storage_paths(text(ana.get(world.url()))) if "/thumb?" in p]
    first = ana.get(thumb)  # as the signed-in member's browser asks: with the session cookie
    assert first.status_code == 200 and first.headers["ETag"]
    cache = first.headers["Cache-Control"]
    assert cache.startswith("private, max-age=") and int(cache.split("=")[1]) > 0, cache
    # Nothing in the answer depends on the cookie: no Vary on it, no re-signed session to change it.
    assert "cookie" not in first.headers.get("Vary", "").lower()
    assert not first.headers.getlist("Set-Cookie")

    assert [p for p in storage_paths(text(ana.get(world.url()))) if "/thumb?" in p] == [thumb]
    again = ana.get(thumb, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""


def test_the_library_shows_each_tile_with_its_own_thumbnail_and_link(world, ana):
    photos = [world.ready(world.ana, jpeg_bytes(), JPEG, filename=f"court-{n}.jpg") for n in range(2)]
    pdf = world.uploaded(world.ana, pdf_bytes(), PDF, filename="plan.pdf")
    html = text(ana.get(world.url()))
    for item in photos:
        tile = re.search(rf'<a class="media-tile card" href="/o/lake/media/{item.id}" id="media-{item.id}">\s*'
                         r'<img src="([^"]+)"', html)
        assert tile and tile.group(1).startswith(f"/storage/objects/{world.fresh(item).derived_keys['thumb']}?")
    assert re.search(rf'href="/o/lake/media/{pdf.id}" id="media-{pdf.id}">\s*<span class="media-placeholder"', html)


def test_a_pdf_page_links_to_the_document(world, ana):
    item = world.ready(world.ana, pdf_bytes(), PDF, filename="plan.pdf")
    page = text(ana.get(world.url(f"/{item.id}")))
    link = re.search(r'<a class="button primary" href="([^"]+)" hx-boost="false">Open the PDF</a>', page).group(1)
    opened = world.http.get(link.replace("&amp;", "&"))
    assert opened.status_code == 200 and opened.mimetype == "application/pdf"
    assert opened.headers["Content-Disposition"].startswith("inline")


# --- review comments -------------------------------------------------------------------------------

def test_a_review_comment_by_htmx_returns_the_review_block_with_a_seek_link(world, clip):
    item = world.ready(world.ana, clip, MP4)
    carla = world.browser(world.coach)

    response = form_post(world, carla, f"/{item.id}/comments", headers=HX, at="0:01", body="Toss higher")
    fragment = text(response)
    assert response.status_code == 200 and "<html" not in fragment
    assert fragment.lstrip().startswith('<section class="card review" id="review">')
    assert "Toss higher" in fragment and "Carla Coach" in fragment
    assert 'data-seek="1.000">0:01</a>' in fragment
    assert f'href="{world.url(f"/{item.id}")}?t=1.0#player"' in fragment

    reply = form_post(world, world.browser(world.ana), f"/{item.id}/comments", at="", body="Like this?",
                      parent=re.search(r'name="parent" value="([^"]+)"', fragment).group(1))
    assert reply.status_code == 303 and reply.headers["Location"].endswith(f"/{item.id}#review")
    page = text(carla.get(world.url(f"/{item.id}")))
    # The reply has an anchor of its own: notifications link to it.
    assert re.search(r'class="reply" id="review-[0-9a-f-]{36}">.*?Like this\?', page, re.S)


def test_a_review_comment_at_a_moment_that_cannot_be_is_422_with_the_message(world, clip):
    item = world.ready(world.ana, clip, MP4)
    carla = world.browser(world.coach)
    for at, message in (("abc", "Give the moment as minutes:seconds, like 1:23."),
                        ("9:00", "The video is only 0:02 long.")):
        response = form_post(world, carla, f"/{item.id}/comments", headers=HX, at=at, body="Look here")
        assert response.status_code == 422
        fragment = text(response)
        assert "<html" not in fragment and 'id="review"' in fragment
        assert f'<p class="error" role="alert">{message}</p>' in fragment
        assert "Look here</textarea>" in fragment  # what was typed is kept
    page = form_post(world, carla, f"/{item.id}/comments", at="abc", body="Look here")  # without JavaScript
    assert page.status_code == 422 and "<html" in text(page) and "like 1:23." in text(page)
    tenancy.activate(world.org.id)
    assert service.review_comments(world.fresh(item)) == []


def test_a_review_comment_is_deleted_by_htmx_and_others_may_not(world, clip):
    item = world.ready(world.ana, clip, MP4, audience="organization")
    comment = world.do(service.add_review_comment, world.fresh(item), world.coach, 500, "Watch the elbow")
    url = f"/{item.id}/comments/{comment.id}/delete"

    refused = form_post(world, world.browser(world.ben), url)
    assert refused.status_code == 403
    done = form_post(world, world.browser(world.ana), url, headers=HX)
    assert done.status_code == 200 and "Comment deleted." in text(done) and "Watch the elbow" not in text(done)
    assert form_post(world, world.browser(world.ana), f"/{item.id}/comments/nonsense/delete").status_code == 404


# --- details and deletion --------------------------------------------------------------------------

def test_details_are_changed_by_the_owner_and_a_missing_title_is_422(world, ana):
    item = world.uploaded(world.ana, pdf_bytes(), PDF, filename="plan.pdf")
    saved = form_post(world, ana, f"/{item.id}", title="Season plan", audience="organization")
    assert saved.status_code == 303 and saved.headers["Location"] == world.url(f"/{item.id}")
    page = text(ana.get(world.url(f"/{item.id}")))
    assert "<h1>Season plan</h1>" in page and "Everyone in the organization" in page

    bad = form_post(world, ana, f"/{item.id}", headers=HX, title="  ", audience="organization")
    assert bad.status_code == 422 and "<html" not in text(bad)
    assert text(bad).lstrip().startswith('<details class="card" id="details" open>')
    assert "Give it a title." in text(bad)
    assert form_post(world, ana, f"/{item.id}", title="x", audience="everyone").status_code == 422
    assert world.fresh(item).title == "Season plan"
    assert form_post(world, world.browser(world.coach), f"/{item.id}", title="Mine",
                     audience="staff").status_code == 403


def test_deleting_redirects_to_the_library_and_the_item_is_gone(world, ana):
    media_id = world.ready(world.ana, jpeg_bytes(), JPEG, filename="court.jpg").id
    assert tiles(text(ana.get(world.url()))) == [str(media_id)]

    response = form_post(world, ana, f"/{media_id}/delete")
    assert response.status_code == 303 and response.headers["Location"] == world.url()
    library = text(ana.get(world.url()))
    assert tiles(library) == [] and "Deleted “court”." in library
    assert ana.get(world.url(f"/{media_id}")).status_code == 404
    world.process()
    assert world.fresh(media_id) is None


def test_an_htmx_delete_answers_with_a_redirect_header(world, ana):
    item = world.uploaded(world.ana, pdf_bytes(), PDF, filename="plan.pdf")
    response = form_post(world, ana, f"/{item.id}/delete", headers=HX)
    assert response.status_code == 204 and response.headers["HX-Redirect"] == world.url()


# --- who may open what -----------------------------------------------------------------------------

def item_urls(world, media_id) -> list[str]:
    return [world.url(f"/{media_id}"), world.url(f"/{media_id}/status"), world.url(f"/{media_id}/upload")]


def test_another_athlete_cannot_open_a_staff_item_or_its_upload(world, ana, ben):
    token = page_token(ana, world.slug)
    plan = request_upload(ana, world.slug, token, "private.pdf", len(pdf_bytes()), PDF).get_json()
    for url in item_urls(world, plan["media_id"]):
        assert ben.get(url).status_code == 404, url
    assert finalize(ben, plan, page_token(ben, world.slug)).status_code == 404
    assert form_post(world, ben, f"/{plan['media_id']}/delete").status_code == 404
    assert form_post(world, ben, f"/{plan['media_id']}/comments", at="0:01", body="hi").status_code == 404
    assert ana.get(plan["resume_url"]).status_code == 200  # Ana's own upload is still hers to go on with


def test_an_organization_item_is_open_to_everyone_in_it_but_managed_by_its_owner(world, ben):
    item = world.uploaded(world.ana, pdf_bytes(), PDF, filename="plan.pdf", audience="organization")
    page = ben.get(world.url(f"/{item.id}"))
    assert page.status_code == 200 and 'id="details"' not in text(page) and ">Delete</button>" not in text(page)
    assert ben.get(world.url(f"/{item.id}/upload")).status_code == 403
    assert form_post(world, ben, f"/{item.id}/delete").status_code == 403
    assert tiles(text(ben.get(world.url()))) == [str(item.id)]


def test_a_staff_item_attached_to_a_post_opens_for_readers_of_open_spaces_only(world, ben):
    shared = world.uploaded(world.ana, pdf_bytes(), PDF, filename="shared.pdf")
    secret = world.uploaded(world.ana, pdf_bytes(), PDF, filename="secret.pdf")
    open_space = world.do(spaces.create_space, world.org, world.coach, "Open", "", "open")
    private = world.do(spaces.create_space, world.org, world.coach, "Inner circle", "", "private")
    world.do(spaces.join, open_space, world.ana)
    world.do(spaces.add_member, private, world.coach, world.ana)
    world.do(spaces.create_post, open_space, world.ana, "Shared", attachments=[world.fresh(shared)])
    world.do(spaces.create_post, private, world.ana, "Secret", attachments=[world.fresh(secret)])

    assert ben.get(world.url(f"/{shared.id}")).status_code == 200
    assert ben.get(world.url(f"/{secret.id}")).status_code == 404
    carla = world.browser(world.coach)
    assert [carla.get(world.url(f"/{i.id}")).status_code for i in (shared, secret)] == [200, 200]


def test_a_coach_sees_everything_in_the_library(world):
    ana_item = world.uploaded(world.ana, pdf_bytes(), PDF, filename="a.pdf")
    ben_item = world.uploaded(world.ben, pdf_bytes(), PDF, filename="b.pdf")
    carla = world.browser(world.coach)
    assert set(tiles(text(carla.get(world.url())))) == {str(ana_item.id), str(ben_item.id)}
    assert tiles(text(carla.get(world.url("?show=mine")))) == []


def test_another_organizations_media_is_404_everywhere(world, app, ana):
    item = world.uploaded(world.ana, pdf_bytes(), PDF, filename="plan.pdf", audience="organization")
    media_id = item.id
    make_org(make_user("zed@hill.example.com", "Zed"), slug="hill")
    tenancy.activate(world.org.id)
    zed = logged_in(app, "zed@hill.example.com")
    for url in item_urls(world, media_id):
        assert zed.get(url).status_code == 404, url  # not a member of Lake Club
        assert zed.get(url.replace("/o/lake/", "/o/hill/")).status_code == 404, url  # no such item in Hill
    token = page_token(zed, "hill")
    hill = f"/o/hill/media/{media_id}"
    for path in ("/finalize", "/delete", "/comments", ""):
        response = zed.post(hill + path, data={"csrf_token": token, "at": "1", "body": "x", "title": "x",
                                               "audience": "staff"}, headers={"X-CSRFToken": token})
        assert response.status_code == 404, path
    assert world.fresh(media_id).title == "plan"


def test_media_pages_need_a_login(world, client):
    item = world.uploaded(world.ana, pdf_bytes(), PDF, filename="plan.pdf")
    for url in (world.url(), world.url(f"/{item.id}")):
        response = client.get(url)
        assert response.status_code in (302, 303) and "/login" in response.headers["Location"]
    assert client.post(world.url("/uploads"), json={}).status_code in (302, 303, 400)


def test_library_and_video_pages_cost_the_same_number_of_queries_for_few_or_many_rows(app, world, ana, clip):
    video = world.ready(world.ana, clip, MP4, audience="organization")
    for i in range(2):
        world.start(world.ana if i % 2 else world.ben, pdf_bytes(), PDF, filename=f"doc-{i}.pdf")

    def comment(n: int) -> None:
        for i in range(n):
            top = world.do(service.add_review_comment, world.fresh(video), world.coach, 100 * i, f"Note {i}")
            world.do(service.add_review_comment, world.fresh(video), world.ana, None, f"Reply {i}", parent=top)

    carla = world.browser(world.coach)
    library_url, video_url = world.url(), world.url(f"/{video.id}")
    comment(2)
    statements_for(app, carla, video_url)  # warm up
    statements_for(app, carla, library_url)  # and the room used, summed by the first view of a minute
    few = statements_for(app, carla, library_url), statements_for(app, carla, video_url)
    for i in range(2, 12):
        world.start(world.ana if i % 2 else world.ben, pdf_bytes(), PDF, filename=f"doc-{i}.pdf")
    comment(8)
    many = statements_for(app, carla, library_url), statements_for(app, carla, video_url)

    assert len(tiles(text(carla.get(library_url)))) == 13
    assert text(carla.get(video_url)).count('class="review-comment"') == 10
    assert many == few


# --- media on posts --------------------------------------------------------------------------------

@pytest.fixture()
def courts(world):
    """An open space "Courts" hosted by Carla, with Ana and Ben in it."""
    space = world.do(spaces.create_space, world.org, world.coach, "Courts", "", "open")
    world.do(spaces.join, space, world.ana)
    world.do(spaces.join, space, world.ben)
    return space


def post_form(world, browser, space, headers=None, **data):
    page = text(browser.get(f"/o/{world.slug}/spaces/{space.id}"))
    return browser.post(f"/o/{world.slug}/spaces/{space.id}/posts", headers=headers or {},
                        data={"csrf_token": csrf_from(page), **data})


def posts_in(world, space) -> list[Post]:
    tenancy.activate(world.org.id)
    db.session.rollback()
    return list(db.session.scalars(db.select(Post).where(Post.space_id == space.id)))


def test_own_media_is_attached_to_a_post_and_the_feed_shows_it(world, ana, ben, courts, clip):
    video = world.ready(world.ana, clip, MP4, title="My serve")
    photo = world.ready(world.ana, jpeg_bytes(size=(640, 480)), JPEG, filename="court.jpg")
    composer = text(ana.get(f"/o/lake/spaces/{courts.id}"))
    assert f'name="attachments" value="{video.id}"' in composer and f'value="{photo.id}"' in composer

    posted = post_form(world, ana, courts, body="Look at this", attachments=[str(video.id), str(photo.id)])
    assert posted.status_code == 303

    for url in (f"/o/lake/spaces/{courts.id}", "/o/lake/feed"):
        feed = text(ben.get(url))
        assert f'href="{world.url(f"/{video.id}")}"' in feed and f'href="{world.url(f"/{photo.id}")}"' in feed
        assert re.search(rf'<img src="/storage/objects/{video.tenant_id}/{video.id}/thumb\?[^"]+" alt=""', feed)
        assert re.search(rf'<img src="/storage/objects/{photo.tenant_id}/{photo.id}/large\?[^"]+" alt="court"', feed)
        assert "▶ 0:02 · My serve" in feed
    thumb = re.search(r'src="(/storage/objects/[^"]+/thumb\?[^"]+)"', feed).group(1).replace("&amp;", "&")
    assert world.http.get(thumb).mimetype == "image/webp"
    assert ben.get(world.url(f"/{video.id}")).status_code == 200  # a reader of the post may open it


@pytest.mark.parametrize("whose", ["someone else's", "a bogus id", "an unknown id"])
def test_attaching_what_is_not_yours_is_422_and_nothing_is_posted(world, ana, courts, whose):
    bens = world.uploaded(world.ben, pdf_bytes(), PDF, filename="bens.pdf", audience="organization")
    mine = world.uploaded(world.ana, pdf_bytes(), PDF, filename="mine.pdf")
    value = {"someone else's": str(bens.id), "a bogus id": "../../etc/passwd",
             "an unknown id": "00000000-0000-4000-8000-000000000000"}[whose]

    response = post_form(world, ana, courts, headers=HX, body="Sneaky", attachments=[str(mine.id), value])
    assert response.status_code == 422
    fragment = text(response)
    assert "<html" not in fragment and 'id="composer"' in fragment
    assert ("Attach your own media only." in fragment) or ("is not a media item" in fragment)
    assert "Sneaky</textarea>" in fragment
    assert posts_in(world, courts) == []


def test_feed_pages_cost_the_same_number_of_queries_with_attachments_for_2_or_10_posts(app, world, ben, courts):
    photos = [world.ready(world.ana, jpeg_bytes(colour=c), JPEG, filename=f"{c}.jpg") for c in ("red", "blue")]
    plan_pdf = world.uploaded(world.ana, pdf_bytes(), PDF, filename="plan.pdf")  # shown as it is processed

    def add(start: int, count: int) -> None:
        for i in range(start, start + count):
            attachments = [world.fresh(photos[i % 2]), world.fresh(plan_pdf)]
            world.do(spaces.create_post, courts, world.ana, f"Post {i}", attachments=attachments,
                     now=minutes_ago(60 - i))

    space_url, home_url = f"/o/lake/spaces/{courts.id}", "/o/lake/feed"
    add(0, 2)
    statements_for(app, ben, space_url)  # warm up: first-request work is not the page's
    space_with_2, home_with_2 = statements_for(app, ben, space_url), statements_for(app, ben, home_url)
    add(2, 8)
    space_with_10, home_with_10 = statements_for(app, ben, space_url), statements_for(app, ben, home_url)

    page = text(ben.get(space_url))
    assert page.count('class="attachment attachment-image"') == 10
    assert page.count('class="attachment attachment-pdf"') == 10
    assert (space_with_10, home_with_10) == (space_with_2, home_with_2)


# --- when storage is away --------------------------------------------------------------------------

@pytest.fixture()
def storage_down(app, monkeypatch):
    """S3 at an address where nothing listens (the app still signs URLs: that needs no connection)."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    settings = {"MEDIA_BACKEND": "s3", "S3_BUCKET": "coach-nowhere", "S3_REGION": "us-east-1",
                "S3_ENDPOINT_URL": "http://127.0.0.1:9", "MEDIA_PART_BYTES": 8 * 1024 * 1024}
    for name, value in settings.items():
        monkeypatch.setitem(app.config, name, value)


def test_an_upload_intent_while_storage_is_away_is_503_and_changes_nothing(world, ana, storage_down):
    token = page_token(ana, world.slug)
    response = request_upload(ana, world.slug, token, "serve.mp4", 200_000, MP4)
    assert response.status_code == 503
    assert response.get_json()["error"] == "File storage is not answering right now. Please try again in a minute."
    assert world.used() == 0


def test_a_media_page_while_storage_is_misconfigured_is_a_503_page(world, ana, app, monkeypatch):
    item = world.uploaded(world.ana, pdf_bytes(), PDF, filename="plan.pdf")
    with monkeypatch.context() as patch:  # undone before the worker wakes up after the test
        patch.setitem(app.config, "MEDIA_BACKEND", "s3")  # with 64 KB parts: refused by the backend
        for url in (world.url(), world.url(f"/{item.id}")):
            response = ana.get(url)
            assert response.status_code == 503, url
            assert "<html" in text(response) and "File storage is not answering right now." in text(response)
