"""Recording a session room in Chromium (fake camera and microphone): the coach and the athlete join, the coach's
Record button waits for both to agree, the coach records a few seconds (the browser composes the call and uploads
it in parts as it goes), everyone sees the red "Recording" clock, the coach stops, the worker processes the
recording, the athlete's booking page links it, and its review page plays it and takes a timestamped comment.

Screenshots go to ``$COACH_SCREENSHOTS`` (``/tmp`` when unset) as ``room-recording-*.png``.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e import both_widths, screenshots
from tests.e2e.test_room_journey import LIVE, Participant, wait_until
from tests.room_support import RoomWorld

pytestmark = pytest.mark.e2e

KiB = 1024
# Small parts: a few seconds of the call make several (the fake cameras' picture is mostly still, so VP8 makes
# little of it: some 5-15 KB a second with the audio).
PART_BYTES = 16 * KiB
PROCESSING = 120_000

snap = screenshots("room-recording")


@pytest.fixture()
def world(ctx):
    world = RoomWorld()
    world.other_club()
    return world


@pytest.fixture()
def small_parts(app):
    saved = app.config["MEDIA_PART_BYTES"]
    app.config["MEDIA_PART_BYTES"] = PART_BYTES
    yield
    app.config["MEDIA_PART_BYTES"] = saved


def test_the_coach_records_the_call_and_the_athlete_reviews_it(browser, live_server, world, small_parts,
                                                              job_runner):
    path = world.room_path(world.one)
    maria = Participant(browser, live_server, "maria@example.com")
    ana = Participant(browser, live_server, "ana@example.com")
    maria.enter(path)
    ana.enter(path)
    maria.connected_to("Ana Alves")
    ana.connected_to("Maria Santos")
    maria.frames_growing()

    # Nobody has agreed yet: the coach's Record button says why it waits.
    record = maria.page.get_by_role("button", name="Record", exact=True)
    expect(record).to_be_disabled()
    expect(maria.page.locator("[data-record-reason]")).to_contain_text("Maria Santos and Ana Alves have not agreed")
    maria.page.get_by_role("button", name="I agree to be recorded").click()
    expect(maria.page.locator("[data-record-reason]")).to_contain_text("Ana Alves has not agreed yet")
    # Ana agrees on her page; the coach's page hears it and lets him record.
    ana.page.get_by_role("button", name="I agree to be recorded").click()
    expect(ana.page.get_by_role("button", name="Withdraw my agreement")).to_be_visible()
    expect(maria.page.locator(f'[data-consent-member="{world.ana.id}"]')).to_contain_text("agreed to be recorded",
                                                                                          timeout=LIVE * 1000)
    expect(record).to_be_enabled()
    both_widths(snap, maria.page, "ready")

    record.click()
    # Everyone sees the red clock; the coach's browser sends parts while the call goes on.
    for person in (maria, ana):
        expect(person.page.locator("[data-recording-indicator]")).to_be_visible(timeout=LIVE * 1000)
        expect(person.page.locator("[data-recording-clock]")).to_have_text(re.compile(r"^00:0[1-9]$"),
                                                                             timeout=LIVE * 1000)
    assert sorted(maria.page.evaluate("() => window.coachRecorder.sources()")) == sorted(
        [str(world.maria.id), str(world.ana.id)])
    try:
        wait_until(maria.page, lambda: maria.page.evaluate("() => window.coachRecorder.parts()") >= 3,
                   "three parts of the recording sent")
    except AssertionError as timed_out:  # say what the recorder was doing
        state = maria.page.evaluate("() => [window.coachRecorder.parts(), window.coachRecorder.state()]")
        raise AssertionError(f"{timed_out}: {state}") from None
    both_widths(snap, ana.page, "recording-athlete")

    maria.page.get_by_role("button", name="Stop recording").click()
    status = maria.page.locator("[data-record-status]")
    expect(status).to_contain_text("Saved — processing.", timeout=LIVE * 1000)
    expect(ana.page.locator("[data-recording-indicator]")).to_be_hidden(timeout=LIVE * 1000)
    recording_link = status.get_by_role("link", name="Open the recording").get_attribute("href")

    # Ana finds it on her booking's page once the worker is done, plays it and comments on a moment.
    page = ana.page
    page.goto(f"{live_server}/o/river/bookings/{world.bookings[world.one.id][0].id}")
    link = page.locator(".booking-recordings a")
    expect(link).to_have_text(re.compile(r"^Session with Ana Alves — "))
    assert link.get_attribute("href") == recording_link
    link.click()
    player = page.locator("video#player")
    expect(player).to_be_visible(timeout=PROCESSING)
    expect(page.locator("#media-expiry")).to_contain_text("unless kept")
    duration = player.evaluate("v => new Promise(r => v.readyState >= 1 ? r(v.duration) : "
                               "v.addEventListener('loadedmetadata', () => r(v.duration)))")
    assert duration >= 2, duration
    player.evaluate("v => { v.muted = true; return v.play(); }")
    page.wait_for_function("() => document.querySelector('#player').currentTime > 0", timeout=15_000)
    player.evaluate("v => { v.pause(); v.currentTime = 1.2; }")
    expect(page.get_by_label("At", exact=True)).to_have_value("0:01")
    page.get_by_label("Comment", exact=True).fill("Here you dropped your guard.")
    page.get_by_role("button", name="Comment at this moment").click()
    first = page.locator(".review-comment").first
    expect(first).to_contain_text("Here you dropped your guard.")
    expect(first.locator("a.moment")).to_have_text("0:01")
    both_widths(snap, page, "review")

    assert maria.csp == [] and ana.csp == []
    maria.context.close()
    ana.context.close()
