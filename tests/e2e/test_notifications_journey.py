"""Notifications in Chromium: the athlete's bell counts up live while the coach mentions them and
comments on their post; the list opens the post and reads the item; "Mark all read"; the settings
page keeps what was chosen; an email's unsubscribe link asks, then acts; and all of it without
JavaScript too.

Screenshots go to ``$COACH_SCREENSHOTS`` (``/tmp`` when unset) as ``notifications-*.png``.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from coach import tenancy
from coach.extensions import db
from coach.spaces import service as spaces
from tests.e2e.test_booking_journey import open_org
from tests.e2e.test_chat_journey import LIVE, Person, people, pump  # noqa: F401 (people: the fixture, with this club)
from tests.e2e.test_journeys import watch_csp
from tests.factories import add_member, make_org, make_user
from tests.mailbox import Mailbox
from tests.e2e import screenshots

pytestmark = pytest.mark.e2e

SLUG = "river"
UNSUBSCRIBE_RE = re.compile(r"Stop these emails: (\S+)")


snap = screenshots("notifications")


class Club:
    """River Club: Ada Admin, Maria Santos (coach, hosts the open space "Tennis"), Sam Lee (athlete,
    a member of Tennis with a post of his own there)."""

    def __init__(self):
        self.org = make_org(make_user("ada@example.com", "Ada Admin"), slug=SLUG, name="River Club")
        self.maria = add_member(self.org, make_user("maria@example.com", "Maria Santos"), "coach")
        self.sam = add_member(self.org, make_user("sam@example.com", "Sam Lee"), "athlete")
        tenancy.activate(self.org.id)
        self.tennis = spaces.create_space(self.org, self.maria, "Tennis", "Serve and volley", "open")
        spaces.join(self.tennis, self.sam)
        self.sams_post = spaces.create_post(self.tennis, self.sam, "My first serve video is up")
        db.session.commit()
        self.space_path = f"/o/{SLUG}/spaces/{self.tennis.id}"
        self.post_path = f"/o/{SLUG}/posts/{self.sams_post.id}"

    def mention_and_comment(self) -> None:
        """Maria mentions Sam in a post and comments on his (through the services, as the views do)."""
        tenancy.activate(self.org.id)
        spaces.create_post(self.tennis, self.maria, "Great toss today @sam.lee, same again Monday")
        spaces.add_comment(self.sams_post, self.maria, "Nice rhythm, keep the elbow up")
        db.session.commit()


@pytest.fixture()
def club(ctx):
    return Club()


def bell(page: Page):
    return page.get_by_role("navigation", name="Main").locator("#notify-count")


def unsubscribe_link(mailbox: Mailbox, address: str, base: str) -> str:
    """The "Stop these emails" link of the latest email to ``address``, relative to ``base``."""
    message = mailbox.wait_for(address, timeout=LIVE / 1000)
    match = UNSUBSCRIBE_RE.search(Mailbox.text(message))
    assert match, "the email has no unsubscribe link"
    assert message["List-Unsubscribe"], "the email has no List-Unsubscribe header"
    url = match.group(1)
    assert url.startswith(base), url
    return url


# --- with JavaScript -------------------------------------------------------------------------------

def test_the_bell_counts_live_and_the_list_opens_and_reads_what_happened(people, club, live_server, mailbox):
    coach, athlete = people("maria@example.com"), people("sam@example.com")

    # The athlete has the app open on the organization's home: nothing to read.
    count = bell(athlete.page)
    expect(count).to_be_hidden()
    athlete.page.get_by_role("navigation", name="Main").locator("summary", has_text="More").click()
    athlete.page.get_by_role("navigation", name="Main").get_by_role("link", name="Spaces").click()
    expect(athlete.page.get_by_role("heading", name="Spaces")).to_be_visible()
    athlete.page.evaluate("window.__marker = 'still the same page'")
    pump_until_socket(athlete)

    # The coach mentions the athlete in a post: the bell counts it without a reload.
    coach.page.goto(live_server + club.space_path)
    coach.page.get_by_label("Write a post").fill("Great toss today @sam.lee, same again Monday")
    coach.page.get_by_role("button", name="Post", exact=True).click()
    expect(coach.page.get_by_text("Posted.")).to_be_visible()
    expect(count).to_be_visible(timeout=LIVE)
    expect(count).to_have_text("1 unread")

    # ...and comments on the athlete's post: two.
    coach.page.goto(live_server + club.post_path)
    coach.page.get_by_label("Comment", exact=True).fill("Nice rhythm, keep the elbow up")
    coach.page.get_by_role("button", name="Comment", exact=True).click()
    expect(coach.page.get_by_text("Nice rhythm, keep the elbow up")).to_be_visible()
    expect(count).to_have_text("2 unread", timeout=LIVE)
    assert athlete.page.evaluate("window.__marker") == "still the same page"

    # The list: newest first, both unread.
    athlete.page.get_by_role("link", name=re.compile("^Notifications")).click()
    expect(athlete.page.get_by_role("heading", name="Notifications")).to_be_visible()
    items = athlete.page.locator(".notification")
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_contain_text("Maria Santos commented on your post in Tennis")
    expect(items.nth(0)).to_contain_text("Nice rhythm, keep the elbow up")
    expect(items.nth(1)).to_contain_text("Maria Santos mentioned you in Tennis")
    expect(athlete.page.locator(".notification.unread")).to_have_count(2)
    expect(athlete.page.get_by_role("link", name="Unread (2)")).to_be_visible()
    snap(athlete.page, "list")

    # Opening the mention lands on the coach's post, and the bell goes down.
    athlete.page.get_by_role("link", name=re.compile("mentioned you in Tennis")).click()
    expect(athlete.page).to_have_url(re.compile(rf"/o/{SLUG}/posts/[0-9a-f-]{{36}}$"))
    expect(athlete.page.get_by_text("Great toss today")).to_be_visible()
    expect(athlete.page.get_by_role("link", name="@sam.lee")).to_be_visible()
    expect(count).to_have_text("1 unread")

    # Back on the list the mention is read; "Mark all read" reads the rest.
    athlete.page.get_by_role("link", name=re.compile("^Notifications")).click()
    expect(athlete.page.locator(".notification.unread")).to_have_count(1)
    expect(athlete.page.locator(".notification.unread")).to_contain_text("commented on your post")
    athlete.page.get_by_role("button", name="Mark all read").click()
    expect(athlete.page.get_by_text("All notifications marked read.")).to_be_visible()
    expect(athlete.page.locator(".notification.unread")).to_have_count(0)
    expect(athlete.page.locator(".notification")).to_have_count(2)
    expect(count).to_be_hidden()
    expect(athlete.page.get_by_role("button", name="Mark all read")).to_be_disabled()
    assert athlete.page.evaluate("window.__marker") == "still the same page"  # boosted all along
    snap(athlete.page, "list-read")

    # The mention was emailed too (the default for mentions); its link asks before it acts.
    link = unsubscribe_link(mailbox, "sam@example.com", live_server)
    athlete.page.goto(link)
    expect(athlete.page.get_by_role("heading", name="Stop these emails?")).to_be_visible()
    expect(athlete.page.get_by_text("Someone mentions me in a post or comment")).to_be_visible()
    snap(athlete.page, "unsubscribe")
    athlete.page.get_by_role("button", name="Unsubscribe").click()
    expect(athlete.page.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
    snap(athlete.page, "unsubscribed")
    athlete.page.get_by_role("link", name="All notification settings").click()
    expect(athlete.page.get_by_label("Someone mentions me in a post or comment", exact=True)).to_have_value("in_app")

    assert coach.csp == [] and athlete.csp == []


def pump_until_socket(person: Person) -> None:
    """Until the page's socket is open (it says which conversations it shows: none here)."""
    pump(person.page, lambda: any(f.get("type") == "view" for f in person.frames), "the page's socket to open")


def test_notification_settings_are_saved_and_shown_again(people, club):
    athlete = people("sam@example.com")
    page = athlete.page
    page.get_by_role("link", name=re.compile("^Notifications")).click()
    page.get_by_role("link", name="Notification settings").click()
    expect(page.get_by_role("heading", name="Notification settings")).to_be_visible()
    comments = page.get_by_label("Comments on my posts", exact=True)
    mentions = page.get_by_label("Someone mentions me in a post or comment", exact=True)
    mention_timing = page.get_by_label("When to email: Someone mentions me in a post or comment")
    expect(comments).to_have_value("in_app")  # the defaults
    expect(mentions).to_have_value("email")
    expect(mention_timing).to_have_value("immediate")
    snap(page, "preferences")

    comments.select_option("off")
    mention_timing.select_option("daily")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Notification settings saved.")).to_be_visible()
    page.reload()
    expect(comments).to_have_value("off")
    expect(mentions).to_have_value("email")
    expect(mention_timing).to_have_value("daily")
    expect(page.get_by_label("Direct messages that arrive while I am offline", exact=True)).to_have_value("email")  # untouched
    assert athlete.csp == []


# --- without JavaScript ----------------------------------------------------------------------------

@pytest.fixture()
def no_js_page(browser):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    yield page
    context.close()


def test_notifications_work_without_javascript(no_js_page, live_server, club, quiet, mailbox):
    page = no_js_page
    csp = watch_csp(page)
    club.mention_and_comment()
    quiet.drain()  # the events become notifications, and the mention's email is sent

    open_org(page, live_server, SLUG, "sam@example.com")
    count = bell(page)
    expect(count).to_have_text("2 unread")
    page.get_by_role("link", name=re.compile("^Notifications")).click()
    items = page.locator(".notification")
    expect(items).to_have_count(2)
    expect(page.locator(".notification.unread")).to_have_count(2)
    snap(page, "list-nojs")

    # "Mark read" on one item posts and comes back to the list.
    comment = items.filter(has_text="commented on your post")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        comment.get_by_role("button", name=re.compile("^Mark read")).click()
    assert posted.value.status == 303
    expect(comment).not_to_have_class(re.compile(r"\bunread\b"))
    expect(comment).to_contain_text("Read")
    expect(count).to_have_text("1 unread")

    # Opening the other lands on the post.
    page.get_by_role("link", name=re.compile("mentioned you in Tennis")).click()
    expect(page.get_by_text("Great toss today")).to_be_visible()
    expect(count).to_be_hidden()

    # "Unread" shows nothing left; "Mark all read" says so.
    page.get_by_role("link", name=re.compile("^Notifications")).click()
    page.get_by_role("link", name="Unread").click()
    expect(page.get_by_text("Nothing unread.")).to_be_visible()
    page.get_by_role("link", name="All", exact=True).click()
    expect(page.get_by_role("button", name="Mark all read")).to_be_disabled()

    # Settings: a kind off, another in the daily digest.
    page.get_by_role("link", name="Notification settings").click()
    page.get_by_label("Someone mentions me in a post or comment", exact=True).select_option("email")
    page.get_by_label("When to email: Someone mentions me in a post or comment").select_option("daily")
    page.get_by_label("Comments on my posts", exact=True).select_option("off")
    with page.expect_response(lambda r: r.request.method == "POST") as saved:
        page.get_by_role("button", name="Save settings").click()
    assert saved.value.status == 303
    expect(page.get_by_text("Notification settings saved.")).to_be_visible()
    page.reload()
    expect(page.get_by_label("Comments on my posts", exact=True)).to_have_value("off")
    expect(page.get_by_label("When to email: Someone mentions me in a post or comment")).to_have_value("daily")

    # The email's unsubscribe link, logged out: a question, then the answer.
    page.context.clear_cookies()
    page.goto(unsubscribe_link(mailbox, "sam@example.com", live_server))
    expect(page.get_by_role("heading", name="Stop these emails?")).to_be_visible()
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
    snap(page, "unsubscribed-nojs")
    assert csp == []
