"""Spaces in Chromium: a coach opens a space and posts, an athlete joins, comments, reacts and flags,
the coach (its host) removes the post from the moderation page. And the same pages without JavaScript.

Screenshots of the space feed, a post page and the moderation page go to ``$COACH_SCREENSHOTS``
(``/tmp`` when unset) as ``spaces-*.png``.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from playwright.sync_api import expect

from tests.e2e.test_booking_journey import open_org
from tests.e2e.test_journeys import wait_for_htmx, watch_csp
from tests.factories import add_member, make_org, make_user
from tests.test_spaces_views import SpacesWorld
from tests.e2e import fill_fields, screenshots

pytestmark = pytest.mark.e2e


snap = screenshots("spaces")


@pytest.fixture()
def club(ctx):
    """River Club: Ada Admin, Maria Santos (coach), Sam Lee (athlete); no spaces yet."""
    org = make_org(make_user("ada@example.com", "Ada Admin"), slug="river", name="River Club")
    add_member(org, make_user("maria@example.com", "Maria Santos"), "coach")
    add_member(org, make_user("sam@example.com", "Sam Lee"), "athlete")
    return org


def test_post_comment_react_flag_and_moderate(browser, page, live_server, club):
    coach_csp = watch_csp(page)

    # The coach creates an open space and posts in Markdown.
    open_org(page, live_server, "river", "maria@example.com")
    page.get_by_role("navigation", name="Main").locator("summary", has_text="More").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Spaces").click()
    expect(page.get_by_role("heading", name="Spaces")).to_be_visible()
    page.get_by_role("link", name="New space").click()
    expect(page.get_by_role("heading", name="New space")).to_be_visible()
    fill_fields(page, {"Name": "Tennis", "Description": "Serve and volley"})
    page.get_by_label("Who can see and join it").select_option("open")
    page.get_by_role("button", name="Create space").click()
    expect(page.get_by_role("heading", name=re.compile("^Tennis"))).to_be_visible()
    expect(page.get_by_text("Serve and volley")).to_be_visible()
    space_url = page.url
    assert re.search(r"/o/river/spaces/[0-9a-f-]{36}$", space_url)

    page.get_by_label("Write a post").fill("**Big** news: the courts open at 6")
    page.get_by_role("button", name="Post", exact=True).click()
    expect(page.get_by_text("Posted.")).to_be_visible()
    article = page.locator("article.post").first
    bold = article.locator(".prose strong")
    expect(bold).to_have_text("Big")
    assert int(bold.evaluate("e => getComputedStyle(e).fontWeight")) >= 600
    expect(article.locator(".prose")).not_to_contain_text("**")
    post_id = article.get_attribute("id").removeprefix("post-")

    # The athlete, in a browser of their own, joins, comments, reacts and flags.
    athlete_context = browser.new_context()
    try:
        athlete = athlete_context.new_page()
        athlete_csp = watch_csp(athlete)
        open_org(athlete, live_server, "river", "sam@example.com")
        athlete.get_by_role("navigation", name="Main").locator("summary", has_text="More").click()
        athlete.get_by_role("navigation", name="Main").get_by_role("link", name="Spaces").click()
        athlete.get_by_role("link", name="Tennis").click()
        expect(athlete.get_by_text("Join the space to post and comment.")).to_be_visible()
        athlete.get_by_role("button", name="Join").click()
        expect(athlete.get_by_text("You joined Tennis.")).to_be_visible()
        expect(athlete.get_by_label("Write a post")).to_be_visible()

        athlete.locator(f"#post-{post_id}").get_by_role("link", name="0 comments").click()
        expect(athlete.get_by_role("heading", name="Comments")).to_be_visible()
        expect(athlete.get_by_text("No comments yet.")).to_be_visible()
        athlete.get_by_label("Comment", exact=True).fill("See you there, _coach_!")
        athlete.get_by_role("button", name="Comment", exact=True).click()
        comment = athlete.locator("#comments .comment").first
        expect(comment).to_contain_text("Sam Lee")
        expect(comment.locator(".prose em")).to_have_text("coach")
        expect(athlete.locator(f"#post-{post_id}")).to_contain_text("1 comment")

        # A reaction toggles in place: same document, the count appears, the button is pressed.
        wait_for_htmx(athlete)
        athlete.evaluate("window.__marker = 'post'")
        like = athlete.locator(f"#reactions-{post_id} button[title='like']")
        expect(like).to_have_attribute("aria-pressed", "false")
        like.click()
        expect(like).to_have_attribute("aria-pressed", "true")
        expect(like).to_have_text("👍 Like 1")
        expect(like).to_have_accessible_name("Like 1")  # the emoji is decoration
        assert athlete.evaluate("window.__marker") == "post"
        snap(athlete, "post")

        athlete.locator(".post-actions").get_by_role("link", name="Flag").click()
        expect(athlete.get_by_role("heading", name="Flag this post")).to_be_visible()
        athlete.get_by_label("What is wrong with it?").fill("Courts open at 7, not 6")
        athlete.get_by_role("button", name="Flag", exact=True).click()
        expect(athlete.get_by_text("Thank you: the hosts will review it.")).to_be_visible()
        assert athlete_csp == []
    finally:
        athlete_context.close()

    # The coach sees the comment and the reaction, then moderates the flag.
    page.goto(space_url)
    article = page.locator(f"#post-{post_id}")
    expect(article).to_contain_text("1 comment")
    expect(article.locator("button[title='like']")).to_have_text("👍 Like 1")
    expect(article.locator("button[title='like']")).to_have_attribute("aria-pressed", "false")
    snap(page, "feed")
    page.get_by_role("link", name="Moderation").click()
    expect(page.get_by_role("heading", name="Moderation")).to_be_visible()
    item = page.locator(f"#post-{post_id}")
    expect(item).to_contain_text("Post by Maria Santos in Tennis")
    expect(item).to_contain_text("1 flag")
    expect(item).to_contain_text("“Courts open at 7, not 6”")
    expect(item.locator("strong").last).to_have_text("Big")
    snap(page, "moderation")
    item.get_by_role("button", name="Remove").click()
    expect(page.get_by_text("Removed.")).to_be_visible()
    expect(page.get_by_text("Nothing to review.")).to_be_visible()

    page.goto(space_url)
    expect(page.locator(f"#post-{post_id}")).to_have_count(0)
    expect(page.get_by_text("No posts yet.")).to_be_visible()
    assert coach_csp == []


@pytest.fixture()
def no_js_page(browser):
    context = browser.new_context(java_script_enabled=False)
    yield context.new_page()
    context.close()


def test_athlete_reads_older_posts_and_comments_without_javascript(no_js_page, live_server, ctx):
    page = no_js_page
    world = SpacesWorld()
    start = datetime.now(timezone.utc) - timedelta(hours=2)
    for i in range(25):
        world.write(world.maria, f"Drill number {i}", when=start + timedelta(minutes=i))

    open_org(page, live_server, "river", "sam@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Feed").click()
    expect(page.get_by_role("heading", name="My feed")).to_be_visible()
    expect(page.locator("article.post")).to_have_count(20)
    expect(page.locator("article.post").first).to_contain_text("Drill number 24")
    expect(page.get_by_text("Drill number 4", exact=True)).to_have_count(0)

    page.get_by_role("link", name="Older posts").click()
    expect(page).to_have_url(re.compile(r"/o/river/feed\?after=[A-Za-z0-9_-]+$"))
    expect(page.get_by_role("link", name="← Newest posts")).to_be_visible()
    expect(page.locator("article.post")).to_have_count(5)
    expect(page.locator("article.post").first).to_contain_text("Drill number 4")
    expect(page.get_by_role("link", name="Older posts")).to_have_count(0)

    oldest = page.locator("article.post").last
    expect(oldest).to_contain_text("Drill number 0")
    oldest.get_by_role("link", name="0 comments").click()
    page.get_by_label("Comment", exact=True).fill("Done, **twice**")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Comment", exact=True).click()

    assert posted.value.status == 303
    expect(page).to_have_url(re.compile(r"/o/river/posts/[0-9a-f-]{36}#comment-[0-9a-f-]{36}$"))
    comment = page.locator("#comments .comment").first
    expect(comment).to_contain_text("Sam Lee")
    expect(comment.locator(".prose strong")).to_have_text("twice")
    expect(page.locator("article.post")).to_contain_text("Drill number 0")
    expect(page.locator("article.post")).to_contain_text("1 comment")
