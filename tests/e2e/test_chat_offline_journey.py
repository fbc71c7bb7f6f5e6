"""Chat offline (issue 21): when the athlete's network goes, the conversation says so, greys the coach's
presence (it cannot be known meanwhile), and a message written offline waits on the page as "Sending…"; once
the network is back it is delivered exactly once and the page looks live again.

Chromium's offline emulation alone does not close an open WebSocket, so the server cuts the athlete's sockets
too (``drop_connections``), as a lost network would. Screenshots: ``$COACH_SCREENSHOTS/H7-chat-offline-*.png``.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from coach import tenancy
from coach.chat.models import Message
from coach.extensions import db
from tests.e2e import both_widths, screenshots
from tests.e2e.test_chat_journey import LIVE, club, drop_connections, people  # noqa: F401 (fixtures)

pytestmark = pytest.mark.e2e

snap = screenshots("H7")


def stored_bodies(club) -> list[str]:
    """What the conversation holds in PostgreSQL, oldest first."""
    db.session.rollback()  # a fresh snapshot: the server wrote meanwhile
    tenancy.activate(club.org.id)
    return list(db.session.scalars(select(Message.body).where(
        Message.tenant_id == club.org.id, Message.conversation_id == club.conversation.id).order_by(Message.seq)))


@pytest.mark.allow_console("the test cuts the network: the socket's reconnects fail until it is back (Chromium "
                           "logs each, and htmx logs its wsError event)",
                           r"net::ERR_INTERNET_DISCONNECTED|^\[object Event\]$")
def test_offline_shows_and_what_is_written_meanwhile_is_sent_once_when_back(people, club, app):
    coach, athlete = people("carla@example.com"), people("sam@example.com")
    cid = club.conversation_id
    coach.open_conversation(club)
    athlete.open_conversation(club)
    page = athlete.page
    # The test does not wait for the ws extension's growing back-off: one second between attempts.
    page.evaluate("htmx.config.wsReconnectDelay = () => 1000")
    status, chat = page.locator("#chat-status"), page.locator("section.chat")
    dot = page.locator(f"#presence-{club.carla.id}")
    expect(dot).to_have_class(re.compile(r"\bpresence-online\b"), timeout=LIVE)
    expect(status).to_be_hidden()

    # The network goes, and the socket with it: the page says so, and the coach's dot is no longer known.
    athlete.context.set_offline(True)
    drop_connections(app, club.sam.id)
    expect(status).to_be_visible(timeout=LIVE)
    expect(status).to_have_text(re.compile(r"^Offline — reconnecting…"))
    expect(status).to_have_attribute("role", "status")
    expect(chat).to_have_class(re.compile(r"\bchat-offline\b"))
    expect(dot).to_have_class(re.compile(r"\bpresence-stale\b"))
    resumes = athlete.resumes(cid)

    # A message written offline shows at once as mine, "Sending…", and the composer is free again.
    box = page.get_by_label("Message")
    box.fill("Running ten minutes late")
    box.press("Enter")
    waiting = page.locator("article.message.pending")
    expect(waiting).to_have_count(1)
    expect(waiting).to_contain_text("Sending…")
    expect(waiting.locator(".message-body")).to_have_text("Running ten minutes late")
    expect(box).to_have_value("")
    assert athlete.messages().count() == 0 and stored_bodies(club) == []
    both_widths(snap, page, "chat-offline")
    page.set_viewport_size({"width": 1280, "height": 900})

    # The network is back: the page reconnects, sends the message once, and looks live again.
    athlete.context.set_offline(False)
    athlete.wait_resumed(cid, more_than=resumes)
    expect(athlete.messages()).to_have_count(1, timeout=LIVE)
    expect(athlete.messages().first.locator(".message-body")).to_have_text("Running ten minutes late")
    expect(waiting).to_have_count(0)
    expect(status).to_be_hidden()
    expect(chat).not_to_have_class(re.compile(r"\bchat-offline\b"))
    expect(dot).to_have_class(re.compile(r"\bpresence-online\b"), timeout=LIVE)
    expect(dot).not_to_have_class(re.compile(r"\bpresence-stale\b"))
    expect(coach.messages()).to_have_count(1, timeout=LIVE)
    reconnected = [f for f in athlete.frames if f.get("type") == "view"][-1]
    assert reconnected.get("presence") is True  # the page asked what it could not know meanwhile
    assert stored_bodies(club) == ["Running ten minutes late"]

    # Another drop and reconnect sends nothing twice; what is written next arrives once.
    drop_connections(app, club.sam.id)
    athlete.wait_resumed(cid, more_than=resumes + 1)
    athlete.say("Parking now")
    expect(coach.messages()).to_have_count(2, timeout=LIVE)
    assert stored_bodies(club) == ["Running ten minutes late", "Parking now"]
    assert coach.bodies() == athlete.bodies() == ["Running ten minutes late", "Parking now"]
    assert coach.csp == [] and athlete.csp == []


@pytest.mark.allow_console("the test makes the form's post fail as a lost network would",
                           r"net::ERR_FAILED|^htmx:(sendError|afterRequest), ")
def test_a_message_whose_form_post_failed_waits_and_goes_once_over_the_socket(people, club, app):
    coach, athlete = people("carla@example.com"), people("sam@example.com")
    cid = club.conversation_id
    coach.open_conversation(club)
    athlete.open_conversation(club)
    page = athlete.page
    # The socket goes and stays away (the test reconnects it by hand), so the composer posts the form...
    page.evaluate("htmx.config.wsReconnectDelay = () => 600000")
    drop_connections(app, club.sam.id)
    expect(page.locator("#chat-status")).to_have_text("Connection lost — reconnecting…", timeout=LIVE)
    # ...and the post does not get through either.
    page.route("**/messages", lambda route: route.abort())
    box = page.get_by_label("Message")
    box.fill("Is court 3 free?")
    box.press("Enter")
    waiting = page.locator("article.message.pending")
    expect(waiting).to_contain_text("Sending…", timeout=LIVE)
    expect(box).to_have_value("")
    assert stored_bodies(club) == []

    # The socket is back: the message goes once, and its bubble gives way to the stored message.
    page.unroute("**/messages")
    resumes = athlete.resumes(cid)
    page.evaluate("document.body['htmx-internal-data'].webSocket.init()")
    athlete.wait_resumed(cid, more_than=resumes)
    expect(athlete.messages()).to_have_count(1, timeout=LIVE)
    expect(waiting).to_have_count(0)
    expect(page.locator("#chat-status")).to_be_hidden()
    expect(coach.messages()).to_have_count(1, timeout=LIVE)
    assert stored_bodies(club) == ["Is court 3 free?"]
