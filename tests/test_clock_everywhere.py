"""The member's 12/24-hour clock on every page (issue 19 §3): a member who chose "2:30 pm" reads every time of
day that way, not only on the booking pages.

The sweep opens every page of the URL map that answers GET, as an admin, a coach and an athlete of an organization
with rows in every domain (the cross-tenant crawl's world, tests/crawl_support.py), all of them on the 12-hour
clock: no line of a page's text may show a time of day without "am" or "pm". The same pages for members on the
24-hour clock show "14:30"-style times and never "am"/"pm". Left out, and why: stamps with seconds (the audit
trail's, a record read in one zone and matched with its export), and lengths of time that look like clocks (a
video's "0:12", the recorder's "00:00").
"""
from __future__ import annotations

import re
import secrets
import uuid

import pytest
from sqlalchemy import update

from coach.accounts.models import User
from coach.extensions import db
from tests.conftest import Auth, csrf_from
from tests.crawl_support import ROLES, seed_world
from tests.factories import PASSWORD, make_user
from tests.media_support import local_media  # noqa: F401  (fixture)
from tests.test_csp_unique_ids import _paths
from tests.test_rough_edges_zones import lines_of

# A time of day as the page writes it: "9:05", "14:30", "2:30 pm", "2:30pm"; never part of a longer number.
CLOCK = re.compile(r"(?<![\d:.])(\d{1,2}):(\d{2})(?![\d:])(\s?[ap]m\b)?")
# Positions and lengths in a video written like a clock ("Toss at 0:01 of ...", "video · 0:12"), and the
# recorder's running clock.
DURATION = re.compile(r"\bat \d{1,2}:\d{2} (?:of|on)\b|\bvideo · \d{1,2}:\d{2}\b|Recording \d{1,2}:\d{2}")
# The clock choice's own examples ("24-hour (14:30)", "12-hour clock (2:30 pm)"), and offsets from UTC
# ("UTC+01:00", the zone picker's labels).
EXAMPLE = re.compile(r"\(\d{1,2}:\d{2}(?: [ap]m)?\)|UTC[+-]\d\d:\d\d")


def times_of_day(page: str) -> list[tuple[str, str]]:
    """``(line, time)`` for every time of day in the page's visible text (examples and durations left out)."""
    found = []
    for line in lines_of(page):
        for match in CLOCK.finditer(DURATION.sub("", EXAMPLE.sub("", line))):
            found.append((line, match.group(0)))
    return found


def on_24_hours(page: str) -> list[str]:
    """The lines that show a time of day without am/pm: wrong for a member on the 12-hour clock."""
    return sorted({line for line, time in times_of_day(page) if not time.rstrip().endswith(("am", "pm"))})


def on_12_hours(page: str) -> list[str]:
    """The lines that show a time of day with am/pm: wrong for a member on the 24-hour clock."""
    return sorted({line for line, time in times_of_day(page) if time.rstrip().endswith(("am", "pm"))})


def test_the_sweep_tells_the_two_clocks_apart():
    page = ("<ul><li>Ana · 7 Dec 14:30</li><li>Ben · 7 Dec 9:05 am</li><li>Serve drill video · 0:12 · Ana</li>"
            "<li><label>24-hour (14:30)</label></li><li>2026-12-07 14:30:05</li><li>Toss at 0:01 of Serve</li></ul>")
    assert on_24_hours(page) == ["Ana · 7 Dec 14:30"]
    assert on_12_hours(page) == ["Ben · 7 Dec 9:05 am"]
    assert times_of_day("<p>Figures as of 2:30 pm (counted at most once a minute).</p>") == [
        ("Figures as of 2:30 pm (counted at most once a minute).", "2:30 pm")]


def test_the_profile_saves_the_clock_without_javascript_and_says_which(app, ctx, client, auth):
    ada = make_user("ada@example.com", "Ada Lovelace", tz="America/New_York")
    assert auth.login("ada@example.com").status_code == 303
    form = {"csrf_token": auth.csrf("/profile"), "display_name": "Ada Lovelace", "timezone": "America/New_York"}

    saved = client.post("/profile", data={**form, "hour_cycle": "12"})
    shown = client.get("/profile").get_data(as_text=True)
    refused = client.post("/profile", data={**form, "hour_cycle": "13"})

    assert saved.status_code == 303 and saved.headers["Location"] == "/profile"
    assert "Profile saved. Times show in America/New_York on the 12-hour clock (2:30 pm)." in shown
    assert re.search(r'<input[^>]*checked[^>]*value="12"|<input[^>]*value="12"[^>]*checked', shown)
    assert refused.status_code == 422 and "Not a valid choice" in refused.get_data(as_text=True)
    db.session.refresh(ada)
    assert ada.hour_cycle == 12  # the refused form changed nothing
    assert csrf_from(shown)  # the page's form carries its token


@pytest.fixture()
def world(app, job_runner, mailbox, local_media, stack, tmp_path):  # noqa: F811
    owner = stack.owner_url.replace("postgresql+psycopg://", "postgresql://")
    return seed_world(app, job_runner, mailbox, tmp_path, slug=f"clock-{secrets.token_hex(3)}", name="Clock Club",
                      label="Clock", owner_url=owner, listed=True, hour_cycle=12)


def set_clock(app, world, hours: int) -> None:
    with app.app_context():
        db.session.execute(update(User).where(User.id.in_([uuid.UUID(u) for u in world.user_ids]))
                           .values(hour_cycle=hours))
        db.session.commit()


def pages_for(app, world, role: str, paths: list[str]) -> dict[str, str]:
    """The HTML pages among ``paths`` as the world's ``role`` reads them."""
    client = app.test_client()
    assert Auth(client).login(world.emails[role], PASSWORD).status_code == 303
    found = {}
    for path in paths:
        response = client.get(path)
        if response.status_code == 200 and response.mimetype == "text/html":
            found[path] = response.get_data(as_text=True)
    return found


# Pages a member opens every day that show times of day, for the 24-hour check. (Not the notifications: their
# titles are written once, on the clock their reader had then.)
DAILY = ("/chat/{conversation}", "/chat", "/feed", "/posts/{post}", "/bookings", "/home/spaces",
         "/progress/athletes/{athlete}", "/billing/mine", "/billing/payments", "/admin/dashboard", "/admin/system")


def test_every_page_shows_times_on_the_members_own_clock(app, world):
    # The audit trail is a record: its stamps (with seconds) and the details it kept stay as written.
    paths = [path for path in _paths(app, world) if not path.endswith("/admin/audit")]
    problems, timed = {}, 0
    for role in ROLES:
        for path, page in pages_for(app, world, role, paths).items():
            timed += bool(times_of_day(page))
            if lines := on_24_hours(page):
                problems[f"{role} GET {path}"] = lines
    assert timed > 40, f"only {timed} pages showed a time of day: the sweep found too few"
    assert not problems, "times of day on the 24-hour clock:\n" + "\n".join(
        f"{where}: {lines[:3]}" for where, lines in sorted(problems.items()))

    # The same members back on 24 hours: the messages and posts just shown on 12 (kept rendered in this
    # process) come on 24, as does every other time.
    set_clock(app, world, 24)
    daily = [f"/o/{world.slug}" + path.format(conversation=world.first("conversation"), post=world.first("post"),
                                              athlete=world.first("athlete")) for path in DAILY]
    pages = {(role, path): page for role in ROLES for path, page in pages_for(app, world, role, daily).items()}
    timed = {key for key, page in pages.items() if times_of_day(page)}
    assert len(timed) >= 15 and {("athlete", daily[0]), ("coach", daily[2]), ("athlete", daily[3])} <= timed
    assert {key: lines for key, page in pages.items() if (lines := on_12_hours(page))} == {}
