"""The room's side panel in Chromium: the athlete writes from the panel and the coach's panel shows it at once (the
page's chat socket, no reload), the coach answers; the coach's notes save as they type ("Saved ..."), land in the
session record's draft, and nothing of it leaves the page (the call keeps running); in a group session the coach
switches athlete in place. The panel sits beside the call on a wide screen and below it at 390 px.

Screenshots go to ``$COACH_SCREENSHOTS`` (``/tmp`` when unset) as ``room-panel-*.png``.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from coach import tenancy
from coach.chat import service as chat
from coach.extensions import db
from coach.progress.models import SessionRecord
from tests.e2e import both_widths, screenshots
from tests.e2e.test_booking_journey import open_org
from tests.e2e.test_journeys import watch_csp
from tests.room_support import RoomWorld

pytestmark = pytest.mark.e2e

LIVE = 30_000  # ms: the machine may be busy; no test asserts a duration
snap = screenshots("room-panel")


@pytest.fixture()
def world(ctx):
    world = RoomWorld()
    world.other_club()
    tenancy.activate(world.org.id)
    return world


def person(browser, live_server: str, email: str):
    context = browser.new_context(permissions=["camera", "microphone"])
    page = context.new_page()
    csp = watch_csp(page)
    open_org(page, live_server, "river", email)
    return context, page, csp


def notes_of(world, booking) -> list[str]:
    tenancy.activate(world.org.id)
    db.session.expire_all()
    return [r.notes_md for r in db.session.scalars(select(SessionRecord).where(SessionRecord.booking_id == booking.id))]


def test_chat_and_notes_in_the_room_panel(browser, live_server, world):
    booking = world.bookings[world.one.id][0]
    room = live_server + world.room_path(world.one)
    coach_context, coach, coach_csp = person(browser, live_server, "maria@example.com")
    athlete_context, athlete, athlete_csp = person(browser, live_server, "ana@example.com")
    try:
        for page in (coach, athlete):
            page.goto(room)
            expect(page.locator("#room-panel")).to_be_visible()
            page.evaluate("() => { window.__samePage = true; }")  # gone if anything reloads the page

        # The athlete writes from the panel; the coach's panel shows it live.
        composer = athlete.get_by_label("Message to Maria Santos")
        composer.fill("Can you see my screen?")
        composer.press("Enter")
        expect(athlete.locator("#room-panel article.message.mine")).to_contain_text("Can you see my screen?",
                                                                                    timeout=LIVE)
        expect(coach.locator("#room-panel article.message")).to_contain_text("Can you see my screen?", timeout=LIVE)
        coach.get_by_label("Message to Ana Alves").fill("Yes, go ahead")
        coach.get_by_label("Message to Ana Alves").press("Enter")
        expect(athlete.locator("#room-panel article.message").last).to_contain_text("Yes, go ahead", timeout=LIVE)

        # The athlete has no notes; the coach's save as they type.
        expect(athlete.locator("#room-notes")).to_have_count(0)
        coach.locator("#room-notes > summary").click()
        notes = coach.get_by_label("Notes on Ana Alves’s session")
        notes.press_sequentially("Good *rotation*, late on the return", delay=20)
        expect(coach.locator(f"#notes-status-{booking.id}")).to_contain_text(re.compile(r"Saved \d"), timeout=LIVE)
        coach.wait_for_function("() => !document.querySelector('.htmx-request')")
        assert notes_of(world, booking) == ["Good *rotation*, late on the return"]

        for page in (coach, athlete):
            assert page.evaluate("() => window.__samePage === true"), "the room page was reloaded"
        both_widths(snap, coach, "coach")
        both_widths(snap, athlete, "athlete")
        # At 390 px the panel is below the call; at 1280 px beside it.
        for width, beside in ((1280, True), (390, False)):
            coach.set_viewport_size({"width": width, "height": 900})
            panel_box = coach.locator("#room-panel").bounding_box()
            room_box = coach.locator("#room").bounding_box()
            if beside:
                assert panel_box["x"] > room_box["x"] + room_box["width"] / 2, panel_box
            else:
                assert panel_box["width"] >= room_box["width"] - 40, panel_box
        assert coach_csp == [] and athlete_csp == []
    finally:
        coach_context.close()
        athlete_context.close()


def test_the_coach_switches_athlete_in_a_group_session_without_leaving_the_call(browser, live_server, world):
    ana_booking, ben_booking = world.bookings[world.group.id]
    tenancy.activate(world.org.id)
    ben_chat = chat.direct_with(world.org, world.maria, world.ben)
    db.session.commit()
    context, coach, csp = person(browser, live_server, "maria@example.com")
    ben_context, ben, _ = person(browser, live_server, "ben@example.com")
    try:
        coach.goto(live_server + world.room_path(world.group))
        expect(coach.locator("#room-panel")).to_be_visible()
        coach.evaluate("() => { window.__samePage = true; }")
        tabs = coach.get_by_role("navigation", name="Athletes in this session")
        expect(tabs.get_by_role("link", name="Ana Alves")).to_have_attribute("aria-current", "true")

        # Ben writes (from the chat page) while Maria's panel shows Ana: Ben's tab counts it, live.
        ben.goto(f"{live_server}/o/river/chat/{ben_chat.id}")
        ben.get_by_label("Message", exact=True).fill("Is my camera angle OK?")
        ben.get_by_label("Message", exact=True).press("Enter")
        expect(ben.locator("article.message.mine")).to_contain_text("Is my camera angle OK?", timeout=LIVE)
        badge = coach.locator(f"#unread-{ben_chat.id}")
        expect(badge).to_have_text("1", timeout=LIVE)
        expect(badge).to_be_visible()

        tabs.get_by_role("link", name="Ben Brown").click()
        expect(coach.get_by_role("navigation", name="Athletes in this session").get_by_role(
            "link", name="Ben Brown")).to_have_attribute("aria-current", "true", timeout=LIVE)
        expect(coach.get_by_label("Message to Ben Brown")).to_be_visible()
        expect(coach.locator(f"#messages-{ben_chat.id} article.message")).to_contain_text("Is my camera angle OK?")
        expect(coach.locator(f"#unread-{ben_chat.id}")).to_be_hidden(timeout=LIVE)  # read now
        assert coach.evaluate("() => window.__samePage === true"), "the room page was reloaded"
        coach.locator("#room-notes > summary").click()
        coach.get_by_label("Notes on Ben Brown’s session").fill("Ben: serve toss too low")
        coach.get_by_role("button", name="Save").click()
        expect(coach.locator(f"#notes-status-{ben_booking.id}")).to_contain_text(re.compile(r"Saved \d"), timeout=LIVE)
        assert coach.evaluate("() => window.__samePage === true"), "saving the notes reloaded the page"
        assert notes_of(world, ben_booking) == ["Ben: serve toss too low"] and notes_of(world, ana_booking) == []
        assert csp == []
    finally:
        context.close()
        ben_context.close()
