"""Media in Chromium: a coach uploads a video straight to storage with a progress bar, watches it
become playable without reloading, and reviews it at moments of the video with an athlete; an
upload cut off midway resumes; a file that is not what its name says is refused in words a person
reads; the same pages without JavaScript; a photo attached to a post shows in the space's feed.

Everything runs against the live server with the real relay and RQ worker (``job_runner``), so
processing happens in the background as in production. Screenshots go to ``$COACH_SCREENSHOTS``
(``/tmp`` when unset) as ``media-*.png``.
"""
from __future__ import annotations

import math
import os
import re
import subprocess
from collections import Counter
from pathlib import Path
from urllib.parse import urljoin

import imageio_ffmpeg
import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, Route, expect

from coach import tenancy
from coach.extensions import db
from coach.media.service import human_size
from coach.spaces import service as spaces
from tests.e2e.test_booking_journey import open_org
from tests.e2e.test_journeys import wait_for_htmx, watch_csp
from tests.factories import add_member, make_org, make_user
from tests.e2e import screenshots

pytestmark = pytest.mark.e2e

KiB = 1024
# Processing shares this machine with other test runs: wait generously, never assert on durations.
PROCESSING = 60_000
ITEM_URL = re.compile(r"/o/river/media/[0-9a-f-]{36}$")
LOADED = "s => { const i = document.querySelector(s); return i && i.complete && i.naturalWidth > 0; }"
PART_URL = re.compile(r"/storage/parts/[^/?]+/(\d+)\?")


snap = screenshots("media")


# --- files -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A 6-second 640×360 H.264/AAC MP4 (test pattern and a tone), about 600 KB."""
    path = tmp_path_factory.mktemp("media") / "forehand.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error",
                    "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
                    "-t", "6", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-c:a", "aac", str(path)],
                   check=True, timeout=120)
    return path


@pytest.fixture()
def photo(tmp_path) -> Path:
    """A 1200×800 JPEG with something to look at."""
    image = Image.new("RGB", (1200, 800), (31, 111, 84))
    draw = ImageDraw.Draw(image)
    for i in range(0, 1200, 100):
        draw.rectangle([i, 0, i + 49, 800], fill=(240, 200, 60))
    draw.ellipse([450, 250, 750, 550], fill=(250, 250, 250))
    path = tmp_path / "court.jpg"
    image.save(path, quality=85)
    return path


# --- the organization and its settings ---------------------------------------------------------------

@pytest.fixture()
def club(ctx):
    """River Club: Ada Admin, Maria Santos (coach), Sam Lee (athlete)."""
    org = make_org(make_user("ada@example.com", "Ada Admin"), slug="river", name="River Club")
    maria = add_member(org, make_user("maria@example.com", "Maria Santos"), "coach")
    sam = add_member(org, make_user("sam@example.com", "Sam Lee"), "athlete")
    return org, maria, sam


@pytest.fixture()
def part_bytes(app):
    """Small upload parts (64 KiB unless the test asks for another size), so a small file goes in
    several parts and the progress bar moves; the local backend accepts parts that small too."""
    def use(size: int) -> None:
        app.config["MEDIA_PART_BYTES"] = size

    saved = app.config["MEDIA_PART_BYTES"]
    use(64 * KiB)
    yield use
    app.config["MEDIA_PART_BYTES"] = saved


# --- helpers -----------------------------------------------------------------------------------------

def open_media(page: Page) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Media").click()
    expect(page.get_by_role("heading", name="Media", exact=True)).to_be_visible()
    wait_for_htmx(page)


def watch_upload(page: Page) -> list[tuple[str, float]]:
    """Record every text the upload status shows, with the progress bar's value at that moment."""
    seen: list[tuple[str, float]] = []
    page.expose_function("__uploadSeen", lambda text, value: seen.append((text, value)))
    page.evaluate("""() => {
        const status = document.querySelector("[data-upload-status]");
        const bar = document.querySelector("[data-upload-progress] progress");
        new MutationObserver(() => window.__uploadSeen(status.textContent, bar.value))
            .observe(status, {childList: true, characterData: true, subtree: true});
    }""")
    return seen


def count_parts(page: Page) -> Counter:
    """Part number → how many PUTs of it storage accepted."""
    stored: Counter = Counter()

    def on_response(response):
        match = PART_URL.search(response.url)
        if match and response.request.method == "PUT" and response.status == 200:
            stored[int(match.group(1))] += 1

    page.on("response", on_response)
    return stored


def parts_of(path: Path, part_size: int) -> int:
    return math.ceil(path.stat().st_size / part_size)


def choose_and_upload(page: Page, path: Path, title: str = "", audience: str | None = None) -> None:
    page.get_by_label("File", exact=True).set_input_files(str(path))
    if title:
        page.get_by_label("Title", exact=True).fill(title)
    if audience:
        page.get_by_label("Who can see it").select_option(audience)
    page.get_by_role("button", name="Upload", exact=True).click()


def wait_until(page: Page, condition, timeout: float = 20.0) -> None:
    """Let the page run (and Playwright deliver its events) until ``condition()`` holds."""
    for _ in range(int(timeout * 10)):
        if condition():
            return
        page.wait_for_timeout(100)
    raise AssertionError("timed out waiting for the condition")


def image_loaded(page: Page, selector: str, timeout: float = 15_000) -> None:
    """Wait until the image ``selector`` finds has really loaded (not a broken icon)."""
    page.wait_for_function(LOADED,
                           arg=selector, timeout=timeout)


# --- 1. upload, processing, playing and reviewing ----------------------------------------------------

def test_coach_uploads_a_video_and_reviews_it_with_an_athlete(browser, page, live_server, club, clip, part_bytes,
                                                             job_runner):
    coach_csp = watch_csp(page)
    size = human_size(clip.stat().st_size)
    open_org(page, live_server, "river", "maria@example.com")
    open_media(page)
    expect(page.get_by_text("Nothing here yet.")).to_be_visible()
    seen = watch_upload(page)
    stored = count_parts(page)

    # Parts 3 and later wait at the network until the screenshot of the moving bar is taken.
    held: list[Route] = []
    released = False

    def hold_later_parts(route: Route) -> None:
        if not released and int(PART_URL.search(route.request.url).group(1)) > 2:
            held.append(route)
        else:
            route.continue_()

    page.route(PART_URL, hold_later_parts)
    # The worker waits too, so the item page is sure to find the video still processing.
    with job_runner.paused():
        choose_and_upload(page, clip, title="Forehand drill", audience="organization")
        progress = page.locator("[data-upload-progress]")
        expect(progress).to_be_visible()
        expect(page.get_by_role("button", name="Upload", exact=True)).to_be_disabled()
        wait_until(page, lambda: len(stored) == 2)
        status = page.locator("[data-upload-status]")
        expect(status).to_have_text(re.compile(rf"^[1-9]\d% · [\d.]+ KB of {re.escape(size)}$"))
        snap(page, "library-uploading")
        released = True
        for route in held:
            route.continue_()

        expect(page).to_have_url(ITEM_URL, timeout=30_000)
        expect(page.get_by_role("heading", name="Forehand drill")).to_be_visible()
        expect(page.get_by_role("status")).to_contain_text("Processing")
        expect(page.locator("video")).to_have_count(0)
        snap(page, "processing")
        wait_for_htmx(page)
        page.evaluate("window.__marker = 'still here'")
    page.unroute(PART_URL)

    # The bar went up in steps to 100, and storage got each part once.
    values = [value for _, value in seen]
    assert values == sorted(values) and values[-1] == 100
    assert len({value for value in values if 0 < value < 100}) >= 5
    assert f"100% · {size} of {size}" in [text for text, _ in seen]
    assert stored == {n: 1 for n in range(1, parts_of(clip, 64 * KiB) + 1)}

    # Without a reload the poll swaps the player in, with its poster.
    player = page.locator("video#player")
    expect(player).to_be_visible(timeout=PROCESSING)
    assert page.evaluate("window.__marker") == "still here"
    expect(page.get_by_role("status")).to_have_count(0)
    expect(page.get_by_text("0:06 · uploaded by Maria Santos · Everyone in the organization")).to_be_visible()
    poster = page.request.get(urljoin(live_server, player.get_attribute("poster")))
    assert poster.ok and poster.headers["content-type"] == "image/jpeg"

    # It plays, and the "At" field follows the player.
    player.evaluate("v => { v.muted = true; return v.play(); }")
    page.wait_for_function("() => document.querySelector('#player').currentTime > 0", timeout=15_000)
    player.evaluate("v => { v.pause(); v.currentTime = 2.2; }")
    at = page.get_by_label("At", exact=True)
    expect(at).to_have_value("0:02")

    page.get_by_label("Comment", exact=True).fill("The racket face opens too early here.")
    page.get_by_role("button", name="Comment at this moment").click()
    first = page.locator(".review-comment").first
    expect(first).to_contain_text("The racket face opens too early here.")
    expect(first).to_contain_text("Maria Santos")
    expect(first.locator("a.moment")).to_have_text("0:02")
    expect(first.locator("a.moment")).to_have_attribute("data-seek", "2.000")
    expect(page.get_by_role("heading", name="Review comments")).to_contain_text("(1)")
    # The fresh form still says where the player is.
    expect(at).to_have_value("0:02")
    assert page.evaluate("window.__marker") == "still here"
    item_url = page.url

    # The library tile shows the thumbnail.
    page.get_by_role("link", name="Media", exact=True).first.click()
    tile = page.locator(".media-tile", has_text="Forehand drill")
    expect(tile).to_contain_text("video · 0:06")
    image_loaded(page, ".media-tile img")
    snap(page, "library")

    # The athlete can see it (shared with everyone) and comments at a moment typed by hand.
    athlete_context = browser.new_context()
    try:
        athlete = athlete_context.new_page()
        athlete_csp = watch_csp(athlete)
        open_org(athlete, live_server, "river", "sam@example.com")
        open_media(athlete)
        athlete.locator(".media-tile", has_text="Forehand drill").click()
        expect(athlete).to_have_url(item_url)
        expect(athlete.locator("video#player")).to_be_visible()
        expect(athlete.get_by_role("button", name="Delete")).to_have_count(0)
        expect(athlete.locator(".review-comment")).to_contain_text("The racket face opens too early here.")
        athlete.get_by_label("At", exact=True).fill("0:04")
        athlete.get_by_label("Comment", exact=True).fill("Is it better here?")
        athlete.get_by_role("button", name="Comment at this moment").click()
        mine = athlete.locator(".review-comment", has_text="Is it better here?")
        expect(mine).to_contain_text("Sam Lee")
        expect(athlete.locator(".review-comment a.moment")).to_have_text(["0:02", "0:04"])

        # The moment link seeks the player in place: no new page.
        wait_for_htmx(athlete)
        athlete.evaluate("window.__player = document.querySelector('#player')")
        athlete.locator("video#player").evaluate("v => { v.muted = true; }")
        mine.get_by_role("link", name="0:04").click()
        athlete.wait_for_function("() => Math.abs(document.querySelector('#player').currentTime - 4) < 0.5",
                                  timeout=10_000)
        assert athlete.evaluate("window.__player === document.querySelector('#player')")
        assert athlete.url == item_url
        athlete.locator("video#player").evaluate("v => v.pause()")
        athlete.wait_for_function("() => { const v = document.querySelector('#player'); "
                                  "return !v.seeking && v.readyState >= 2; }")
        snap(athlete, "item-review")
        assert athlete_csp == []
    finally:
        athlete_context.close()

    assert coach_csp == []


# --- 2. retries and resuming -------------------------------------------------------------------------

@pytest.mark.allow_console("the test drops a part's connection on purpose (then the page retries it)",
                           r"net::ERR_CONNECTION_RESET \(.*/storage/parts/")
def test_cut_off_upload_retries_then_resumes_from_where_it_stopped(page, live_server, club, clip, part_bytes):
    part_bytes(32 * KiB)
    parts = parts_of(clip, 32 * KiB)
    assert parts > 10
    csp = watch_csp(page)
    open_org(page, live_server, "river", "maria@example.com")
    open_media(page)
    seen = watch_upload(page)
    stored = count_parts(page)

    # The first try of part 2 drops; parts from 8 on hang until the coach cancels.
    dropped: set[int] = set()
    stuck: list[Route] = []

    def flaky_then_stuck(route: Route) -> None:
        number = int(PART_URL.search(route.request.url).group(1))
        if number == 2 and number not in dropped:
            dropped.add(number)
            route.abort("connectionreset")
        elif number >= 8:
            stuck.append(route)  # not answered: the request hangs like a dead connection
        else:
            route.continue_()

    page.route(PART_URL, flaky_then_stuck)
    choose_and_upload(page, clip, title="Serve")
    wait_until(page, lambda: len(stored) == 7)
    expect(page.locator("[data-upload-status]")).to_contain_text("%")
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Upload paused. Choose the same file again to resume where it stopped.")
    expect(page.locator("[data-upload-progress]")).to_be_hidden()
    for route in stuck:  # already cancelled by the page; only Playwright's side is left to close
        try:
            route.abort()
        except PlaywrightError:
            pass
    page.unroute_all(behavior="ignoreErrors")
    assert any(text == "Connection trouble, retrying part 2…" for text, _ in seen)
    assert stored == {n: 1 for n in range(1, 8)}

    # The same file again: it goes on from part 8, and the video gets ready.
    choose_and_upload(page, clip)
    expect(page).to_have_url(ITEM_URL, timeout=30_000)
    assert any(text.startswith("Resuming… ") for text, _ in seen), seen
    expect(page.get_by_role("heading", name="Serve")).to_be_visible()
    expect(page.locator("video#player")).to_be_visible(timeout=PROCESSING)
    assert stored == {n: 1 for n in range(1, parts + 1)}
    assert csp == []


# --- 3. files that are not what they say --------------------------------------------------------------

def test_a_file_that_is_not_a_video_is_refused_in_plain_words(page, live_server, club, tmp_path):
    csp = watch_csp(page)
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"Minutes of the club meeting, certainly not a video.\n" * 400)
    open_org(page, live_server, "river", "maria@example.com")
    open_media(page)

    # Its first bytes give it away as soon as it is uploaded: the form says so, and nothing plays.
    choose_and_upload(page, fake)
    error = page.locator("[data-upload-error]")
    expect(error).to_have_text(re.compile(r"This file is not an? MP4 video, whatever its name says\."))
    expect(page.locator("[data-upload-progress]")).to_be_hidden()
    expect(page.get_by_role("button", name="Upload", exact=True)).to_be_enabled()
    assert page.url.endswith("/o/river/media")
    snap(page, "refused")

    page.reload()
    tile = page.locator(".media-tile", has_text="fake")
    expect(tile).to_contain_text("failed")
    tile.click()
    expect(page.get_by_role("alert")).to_contain_text(re.compile(r"This file is not an? MP4 video"))
    expect(page.locator("video")).to_have_count(0)

    # One that starts like an MP4 but is not one fails in processing: the page says so by itself.
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + os.urandom(40 * KiB))
    open_media(page)
    choose_and_upload(page, broken, title="Broken clip")
    expect(page).to_have_url(ITEM_URL, timeout=30_000)
    expect(page.get_by_role("heading", name="Broken clip")).to_be_visible()
    reason = re.compile(r"not a video we can play|could not convert|incomplete")
    expect(page.get_by_role("alert")).to_contain_text(reason, timeout=PROCESSING)
    expect(page.locator("video")).to_have_count(0)
    expect(page.get_by_role("heading", name="Review comments")).to_have_count(0)
    snap(page, "failed")
    assert csp == []


# --- 4. without JavaScript -----------------------------------------------------------------------------

@pytest.fixture()
def no_js_page(browser):
    context = browser.new_context(java_script_enabled=False)
    yield context.new_page()
    context.close()


def upload_as_the_browser_would(page: Page, live_server: str, path: Path, title: str, audience: str) -> str:
    """The JSON exchange media.js makes (intent, part PUTs to storage, finalize), in the page's
    session; the item page's URL."""
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    api = page.context.request
    headers = {"X-CSRFToken": token, "Accept": "application/json"}
    data = path.read_bytes()
    started = api.post(f"{live_server}/o/river/media/uploads", headers=headers,
                       data={"filename": path.name, "size": len(data), "content_type": "video/mp4",
                             "title": title, "audience": audience})
    assert started.status == 201, started.text()
    plan = started.json()
    for part in plan["parts"]:
        start = (part["number"] - 1) * plan["part_bytes"]
        sent = api.put(urljoin(live_server, part["url"]), data=data[start:start + part["size"]])
        assert sent.status == 200, sent.text()
    finished = api.post(urljoin(live_server, plan["finalize_url"]), headers=headers)
    assert finished.status == 200, finished.text()
    assert finished.json()["status"] == "processing"
    return urljoin(live_server, finished.json()["page_url"])


def test_review_without_javascript(no_js_page, live_server, club, clip, part_bytes):
    page = no_js_page
    csp = watch_csp(page)
    open_org(page, live_server, "river", "maria@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Media").click()
    # (Playwright's text selectors skip <noscript>, so find the note by its place.)
    note = page.locator("form[data-upload] noscript p")
    expect(note).to_be_visible()
    expect(note).to_have_text("Uploading sends the file straight to storage from your browser, "
                              "which needs JavaScript turned on.")
    item_url = upload_as_the_browser_would(page, live_server, clip, "Backhand", "organization")

    # The library links to it; its page offers a refresh link until the video is ready.
    page.reload()
    page.locator(".media-tile", has_text="Backhand").click()
    expect(page).to_have_url(item_url)
    for _ in range(PROCESSING // 1000):
        if page.locator("video#player").count():
            break
        expect(page.get_by_text("This page updates by itself when it is ready.")).to_be_visible()
        page.wait_for_timeout(1000)
        page.get_by_role("link", name="Refresh").click()
    expect(page.locator("video#player")).to_be_attached()

    # A comment posts and redirects back to the list.
    page.get_by_label("At", exact=True).fill("0:03")
    page.get_by_label("Comment", exact=True).fill("Watch the left foot.")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Comment at this moment").click()
    assert posted.value.status == 303
    expect(page).to_have_url(item_url + "#review")
    comment = page.locator(".review-comment", has_text="Watch the left foot.")
    expect(comment).to_contain_text("Maria Santos")

    # Its moment is a link to the page with the video starting there.
    comment.get_by_role("link", name="0:03").click()
    expect(page).to_have_url(re.compile(re.escape(item_url) + r"\?t=3(\.0+)?#player$"))
    assert page.locator("video#player").get_attribute("src").endswith("#t=3.000")
    snap(page, "item-no-js")
    assert csp == []


# --- 5. a photo with a post ----------------------------------------------------------------------------

def test_coach_attaches_a_photo_to_a_post(browser, page, live_server, club, photo):
    org, maria, sam = club
    tenancy.activate(org.id)
    tennis = spaces.create_space(org, maria, "Tennis", "Serve and volley", "open")
    spaces.join(tennis, sam)
    db.session.commit()
    space_url = f"{live_server}/o/river/spaces/{tennis.id}"
    csp = watch_csp(page)

    # Uploaded through the library (only she and the coaches may see it there).
    open_org(page, live_server, "river", "maria@example.com")
    open_media(page)
    choose_and_upload(page, photo, title="New court lines")
    expect(page).to_have_url(ITEM_URL, timeout=30_000)
    expect(page.locator(".media-image img")).to_be_visible(timeout=PROCESSING)
    image_loaded(page, ".media-image img")

    page.get_by_role("navigation", name="Main").locator("summary", has_text="More").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Spaces").click()
    page.get_by_role("link", name="Tennis").click()
    expect(page).to_have_url(space_url)
    page.get_by_text("Attach media (1 of yours)").click()
    page.get_by_label(re.compile("New court lines")).check()
    page.get_by_label("Write a post").fill("The courts have **new lines**.")
    page.get_by_role("button", name="Post", exact=True).click()
    expect(page.get_by_text("Posted.")).to_be_visible()
    post = page.locator("article.post").first
    expect(post.locator(".attachments img")).to_have_attribute("alt", "New court lines")
    image_loaded(page, "article.post .attachments img")
    snap(page, "feed-attachment")
    assert csp == []

    # An athlete of the space sees it with the post, though the photo itself is not shared with everyone.
    athlete_context = browser.new_context()
    try:
        athlete = athlete_context.new_page()
        athlete_csp = watch_csp(athlete)
        open_org(athlete, live_server, "river", "sam@example.com")
        athlete.goto(space_url)
        image_loaded(athlete, "article.post .attachments img")
        athlete.locator("article.post .attachments a").click()
        expect(athlete.get_by_role("heading", name="New court lines")).to_be_visible()
        image_loaded(athlete, ".media-image img")
        assert athlete_csp == []
    finally:
        athlete_context.close()
