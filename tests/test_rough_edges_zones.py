"""Ambiguous times name their zone (issue 21): a time on a booking page could be read in the coach's zone, the
athlete's or the server's, so each line with a time names the zone it is in (its abbreviation), or the list it
belongs to says so once ("Times in Europe/Berlin").
"""
from __future__ import annotations

import html
import re

from coach import tenancy
from coach.booking import manage_links
from coach.extensions import db
from tests.test_booking_views import (athlete, book, coach, iso, logged_in, text, world)  # noqa: F401
from tests.test_booking_waitlist import GroupWorld

TIME = re.compile(r"\b\d{1,2}:\d{2}(?:\s?[ap]m)?\b")
# An abbreviation (CET, CEST, EST, UTC), an offset where a zone has none (+04, UTC+03:00), or an IANA name.
ZONE = re.compile(r"\b(?:[A-Z]{2,5})\b|(?:^|\s|\()[+-]\d{2}\b|\b[A-Z][a-z]+/[A-Z][A-Za-z_ ]+")
BLOCKS = re.compile(r"</?(?:p|li|dd|dt|td|th|h[1-6]|div|section|ul|ol|header|footer|nav|br|tr|form|label|option"
                    r"|button)\b[^>]*>", re.I)
# A slot of the week calendar: a bare time (maybe "3 left"), under the calendar's "Times in <zone>" line.
SLOT = re.compile(r"^\d{1,2}:\d{2}(?:\s?[ap]m)?(?:\s+\d+ left|\s+Full · waitlist|\s+current)?$")


def lines_of(page: str) -> list[str]:
    """The page's visible text, one line per block element (scripts, styles and the head left out)."""
    body = re.sub(r"(?s)<head>.*?</head>|<script\b.*?</script>|<style\b.*?</style>|<template\b.*?</template>", "",
                  page)
    body = BLOCKS.sub("\n", body.replace("\n", " "))  # a block is one line, however its source wraps
    body = html.unescape(re.sub(r"<[^>]+>", "", body))
    return [" ".join(line.split()) for line in body.splitlines() if line.strip()]


def unzoned_times(page: str) -> list[str]:
    """The lines that show a time of day without naming its zone."""
    lines = lines_of(page)
    header = any(line.startswith("Times in ") for line in lines)
    return [line for line in lines if TIME.search(line) and not ZONE.search(line)
            and not (header and SLOT.match(line))
            and "clock (" not in line]  # the 12/24-hour toggle's example ("12-hour clock (2:30 pm)")


def test_the_requests_lapse_line_names_the_zone(athlete, world):
    booking = book(world)  # a request: it lapses unless the coach answers

    page = text(athlete.get(f"/o/{world.org.slug}/bookings/{booking.id}"))

    lapse = next(line for line in lines_of(page) if "the request lapses" in line)
    assert re.search(r"the request lapses \w{3} \d{1,2} \w{3}, \d\d:\d\d CES?T if unanswered", lapse), lapse


def test_key_booking_pages_show_no_time_without_its_zone(app, world, athlete, coach):
    slot = world.first_slot()
    booking = book(world, slot.starts_at)
    slug, offering = world.org.slug, world.offering.id
    later = world.first_slot(days_ahead=3)
    pages = {
        "athlete's booking": athlete.get(f"/o/{slug}/bookings/{booking.id}"),
        "coach's booking": coach.get(f"/o/{slug}/bookings/{booking.id}"),
        "athlete's sessions": athlete.get(f"/o/{slug}/bookings"),
        "coach's sessions": coach.get(f"/o/{slug}/bookings"),
        "week calendar": athlete.get(f"/o/{slug}/offerings/{offering}"),
        "book page": athlete.get(f"/o/{slug}/offerings/{offering}/book?start={iso(later.starts_at)}"),
        "taken time's page": logged_in(app, world.scheduler.user.email).get(
            f"/o/{slug}/offerings/{offering}/book?start={iso(slot.starts_at)}"),
    }

    found = {name: unzoned_times(text(response)) for name, response in pages.items()}

    assert all(TIME.search(text(response)) for response in pages.values())  # each page shows times
    assert {name: lines for name, lines in found.items() if lines} == {}


def test_the_sweep_finds_a_time_without_its_zone():
    assert unzoned_times("<ul><li>Mon 7 Dec, 09:00–10:00</li></ul>") == ["Mon 7 Dec, 09:00–10:00"]
    assert unzoned_times("<p>the request lapses Mon 7 Dec, 02:46 if unanswered</p>")
    assert unzoned_times("<p>the request lapses Mon 7 Dec, 02:46 CET if unanswered</p>") == []
    assert unzoned_times("<p>Times in Europe/Berlin (CET)</p><ul><li><a>09:00</a></li></ul>") == []


def test_waitlist_pages_show_no_time_without_its_zone(app, ctx):
    group = GroupWorld()
    group.line_up(group.waiting[0], group.waiting[1])
    waiter, coach = logged_in(app, group.waiting[0].user.email), logged_in(app, group.coach.user.email)
    waitlist = f"/o/{group.org.slug}/sessions/{group.session_id}/waitlist"
    pages = {"athlete's waitlist": waiter.get(waitlist), "coach's waitlist": coach.get(waitlist),
             "athlete's sessions (places)": waiter.get(f"/o/{group.org.slug}/bookings")}

    assert "You are 1st in line" in text(pages["athlete's sessions (places)"])
    assert all(TIME.search(text(response)) for response in pages.values())
    assert {name: lines for name, response in pages.items() if (lines := unzoned_times(text(response)))} == {}


def test_manage_link_pages_show_no_time_without_its_zone(app, world):
    booking = book(world)
    tenancy.activate(world.org.id)
    view_token, cancel_token, move_token = (manage_links.issue(booking, action)
                                            for action in ("view", "cancel", "reschedule"))
    db.session.commit()
    stranger = app.test_client()  # a mail client: no session
    later = iso(world.first_slot(days_ahead=3).starts_at)
    pages = {"view": stranger.get(f"/b/{view_token}"), "cancel": stranger.get(f"/b/{cancel_token}/cancel"),
             "reschedule week": stranger.get(f"/b/{move_token}/reschedule"),
             "reschedule to": stranger.get(f"/b/{move_token}/reschedule?start={later}")}

    assert all(response.status_code == 200 and TIME.search(text(response)) for response in pages.values())
    assert {name: lines for name, response in pages.items() if (lines := unzoned_times(text(response)))} == {}
