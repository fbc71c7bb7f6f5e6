"""A waitlist in Chromium: a full group session shows "Full · waitlist" in the week; an athlete joins and sees
their place; another athlete (a second browser) cancels their seat; the first gets it, booked, by themselves.

Screenshots go to ``$COACH_SCREENSHOTS`` (``/tmp`` when unset) as ``waitlist-*.png`` at 1280 and 390 px.
"""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from tests.e2e import both_widths, screenshots
from tests.e2e.test_booking_journey import open_org
from tests.e2e.test_journeys import watch_csp
from tests.test_booking_waitlist import group, statuses  # noqa: F401  (group: the fixture)

pytestmark = pytest.mark.e2e

snap = screenshots("waitlist")


def test_a_waitlisted_athlete_gets_the_freed_seat(browser, page: Page, live_server, group, job_runner, mailbox):
    slug = group.org.slug
    csp = watch_csp(page)
    week = (group.starts_at - timedelta(days=group.starts_at.weekday())).date().isoformat()

    # The session is full: the week shows it as such, and it leads to its waitlist.
    open_org(page, live_server, slug, group.waiting[0].user.email)
    page.goto(f"{live_server}/o/{slug}/offerings/{group.offering.id}?week={week}")
    full = page.get_by_role("link", name=re.compile("Full · waitlist"))
    expect(full).to_be_visible()
    both_widths(snap, page, "week")
    full.click()
    expect(page.get_by_role("heading", name="Waitlist")).to_be_visible()
    expect(page.get_by_text("All 2 seats are taken.")).to_be_visible()
    page.get_by_role("button", name="Join the waitlist").click()
    expect(page.get_by_text("You are 1st in line.")).to_be_visible()
    both_widths(snap, page, "place")
    page.goto(f"{live_server}/o/{slug}/bookings")  # my sessions list my place too
    expect(page.locator("#waitlists")).to_contain_text("You are 1st in line")
    both_widths(snap, page, "sessions")

    # A seated athlete, in a browser of their own, cancels.
    other = browser.new_context()
    try:
        seated = other.new_page()
        open_org(seated, live_server, slug, group.seated[1].user.email)
        seated.on("dialog", lambda dialog: dialog.accept())  # "Cancel this session?"
        seated.goto(f"{live_server}/o/{slug}/bookings/{group.bookings[1].id}")
        row = seated.locator(f"#booking-{group.bookings[1].id}")
        row.get_by_role("button", name="Cancel").click()
        expect(row.locator(".badge")).to_have_text("Cancelled")
    finally:
        other.close()

    # The worker gives the seat to the first in line: their sessions show it booked, and they were told.
    for _ in range(40):
        page.goto(f"{live_server}/o/{slug}/sessions/{group.session_id}/waitlist")
        if page.get_by_text("You have a seat in this session.").count():
            break
        page.wait_for_timeout(500)
    expect(page.get_by_text("You have a seat in this session.")).to_be_visible()
    page.get_by_role("link", name="See your booking").click()
    expect(page.locator("dl.facts .badge")).to_have_text("Confirmed")
    # The notice is the worker's next job after the seat's: on a busy machine it may land a moment later.
    told = page.locator(".notification-title", has_text="A seat opened: you're booked into Squad training")
    for _ in range(40):
        page.goto(f"{live_server}/o/{slug}/notifications")
        if told.count():
            break
        page.wait_for_timeout(500)
    expect(told).to_be_visible()
    both_widths(snap, page, "told")
    assert not csp, csp


def test_a_walk_in_finds_the_freed_seat_kept_for_the_line_and_joins_it(browser, live_server, group, job_runner,
                                                                      mailbox):
    """Without JavaScript: a seat frees while one athlete waits; before the worker gives it, another athlete opens
    that time and books. They are told the seat is the line's and join the line behind; the first in line gets it."""
    slug = group.org.slug
    group.line_up(group.waiting[0])
    walk_in = group.waiting[1]
    start = group.starts_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    with job_runner.paused():
        group.cancel(group.bookings[0])
        plain = browser.new_context(java_script_enabled=False)
        try:
            page = plain.new_page()
            open_org(page, live_server, slug, walk_in.user.email)
            for scheme in ("light", "dark"):
                page.emulate_media(color_scheme=scheme)
                page.goto(f"{live_server}/o/{slug}/offerings/{group.offering.id}/book?start={start}")
                expect(page.get_by_role("heading", name="Book this time")).to_be_visible()
                page.get_by_role("button", name="Book").click()
                expect(page.get_by_text("1 athlete is waiting for a seat in this session")).to_be_visible()
                both_widths(snap, page, f"kept-{scheme}")
            page.get_by_role("link", name="Join the waitlist").click()
            expect(page.get_by_text("A freed seat is kept for those already in line.")).to_be_visible()
            page.get_by_role("button", name="Join the waitlist").click()
            expect(page.get_by_text("You are 2nd in line.").first).to_be_visible()
            both_widths(snap, page, "kept-joined")
        finally:
            plain.close()
        job_runner.drain()
    assert statuses(group) == ["booked", "waiting"]
