"""A member on the 12-hour clock reads "2:30 pm" in chat and in the feed, in Chromium at a desktop and a phone
width (screenshots ``G-*.png`` in ``$COACH_SCREENSHOTS``, ``/tmp`` when unset)."""
from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from playwright.sync_api import Page, expect

from coach import tenancy
from coach.chat import service as chat
from coach.extensions import db
from coach.spaces import service as spaces
from tests.e2e import both_widths, screenshots
from tests.e2e.test_booking_journey import open_org
from tests.factories import add_member, make_org, make_user

pytestmark = pytest.mark.e2e

snap = screenshots("G")
# 13:30 UTC is 14:30 in Berlin (CET): the 12-hour member reads 2:30 pm.
SENT = datetime(2026, 3, 2, 13, 30, tzinfo=timezone.utc)


class Club:
    """River Club: Carla Coach writes to Sam Lee (on the 12-hour clock) and posts in the space "Tennis"."""

    def __init__(self):
        self.org = make_org(make_user("ada@example.com", "Ada Admin"), slug="river", name="River Club")
        tenancy.activate(self.org.id)
        carla = add_member(self.org, make_user("carla@example.com", "Carla Coach"), "coach")
        sam = add_member(self.org, make_user("sam@example.com", "Sam Lee"), "athlete")
        sam.user.hour_cycle = 12
        tenancy.activate(self.org.id)
        conversation = chat.direct_with(self.org, carla, sam)
        chat.send(conversation, carla, "Court 3 at half past two?", now=SENT)
        chat.send(conversation, sam, "See you there", now=SENT)
        space = spaces.create_space(self.org, carla, "Tennis", "Club news", "open")
        spaces.join(space, sam)
        spaces.create_post(space, carla, "Courts are open **all week**.", now=SENT)
        db.session.commit()
        self.chat_path = f"/o/river/chat/{conversation.id}"


@pytest.fixture()
def club(ctx):
    return Club()


def test_a_twelve_hour_member_reads_chat_and_the_feed_on_their_clock(page: Page, live_server, club):
    open_org(page, live_server, "river", "sam@example.com")

    page.goto(f"{live_server}{club.chat_path}")
    times = page.locator(".message-meta time")
    expect(times).to_have_text(["2 Mar 2:30 pm", "2 Mar 2:30 pm"])
    both_widths(snap, page, "chat")

    page.goto(f"{live_server}/o/river/feed")
    expect(page.locator("article time").first).to_have_text("2 Mar 2:30 pm")
    expect(page.get_by_text(re.compile(r"\b14:30\b"))).to_have_count(0)
    both_widths(snap, page, "feed")
