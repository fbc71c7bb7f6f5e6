"""Reviews in Chromium: a session ends, the athlete opens the review link from her notification and gives 5 stars
with a few words (the counter follows her typing), the coach replies on her profile page in place, and an admin
hides a flagged review from the moderation queue (screenshots at 1280 and 390 px: /tmp/reviews-*.png)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from coach import clock, tenancy
from coach.booking import lifecycle
from coach.directory import reviews
from coach.directory.models import Review
from coach.extensions import db
from tests.directory_support import DirectoryWorld
from tests.e2e import both_widths, screenshots
from tests.e2e.test_journeys import log_in, wait_for_htmx, watch_csp
from tests.factories import PASSWORD

pytestmark = pytest.mark.e2e
snap = screenshots("reviews")


def signed_in(browser, live_server: str, email: str, path: str):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="Europe/Berlin")
    page = context.new_page()
    csp = watch_csp(page)
    page.goto(f"{live_server}/login?next={path}")
    log_in(page, email, PASSWORD)
    expect(page).to_have_url(f"{live_server}{path}")
    wait_for_htmx(page)
    return context, page, csp


def test_review_reply_and_moderation(ctx, browser, live_server: str, job_runner):
    w = DirectoryWorld()
    session = w.write_booking(w.maria, w.aim, w.ana, clock.now().replace(microsecond=0) - timedelta(hours=3),
                              "active")
    db.session.commit()
    lifecycle.transition(session, "end", None)  # booking.ended: the ask goes out through the outbox
    db.session.commit()
    job_runner.drain()

    # The athlete follows the notification to the form and gives five stars.
    context, page, csp = signed_in(browser, live_server, "ana@example.com", "/o/river/notifications")
    page.get_by_role("link", name="How was your session with Maria Santos? Leave a review").click()
    expect(page).to_have_url(f"{live_server}/o/river/bookings/{session.id}/review")
    expect(page.get_by_role("heading", name="How was your session?")).to_be_visible()
    page.locator("label[for=stars-5]").click()
    expect(page.get_by_role("radio", name="5 stars")).to_be_checked()
    page.get_by_label("Your review", exact=True).fill("Maria fixed my crosshair placement in one hour.")
    expect(page.locator("#body-count")).to_contain_text("characters left")
    both_widths(snap, page, "form")
    page.get_by_role("button", name="Publish review").click()
    expect(page).to_have_url(f"{live_server}/o/river/bookings/{session.id}")
    expect(page.get_by_text("Thank you: your review is published.")).to_be_visible()
    expect(page.get_by_role("link", name="Edit your review")).to_be_visible()
    assert csp == []
    context.close()

    # The coach replies on her profile page; the review swaps in place with the reply under it.
    context, page, csp = signed_in(browser, live_server, "maria@example.com",
                                   f"/o/river/coaches/{w.maria.id}/profile")
    review = page.locator("article.review").first
    expect(review).to_contain_text("Maria fixed my crosshair placement in one hour.")
    expect(review).to_contain_text("Ana Alves")
    expect(page.locator("figure.rating-chart svg title")).to_contain_text("5 stars: 1")
    review.get_by_text("Reply publicly").click()
    review.get_by_label("Your public reply").fill("Thank you Ana! Keep the routine going.")
    review.get_by_role("button", name="Publish reply").click()
    expect(page.locator("article.review").first).to_contain_text("Reply from Maria Santos")
    expect(page.locator("article.review").first).to_contain_text("Keep the routine going.")
    expect(page.get_by_text("Reply publicly")).to_have_count(0)
    both_widths(snap, page, "profile")
    assert csp == []
    context.close()

    # Ben flags the review; the admin hides it from the queue, with a reason.
    tenancy.activate(w.org.id)
    written = db.session.scalar(select(Review).where(Review.booking_id == session.id))
    reviews.flag(written, w.ben, "Mentions another club's coach by name")
    db.session.commit()
    context, page, csp = signed_in(browser, live_server, "ada@example.com", "/o/river/moderation")
    page.get_by_role("link", name="Flagged reviews of coaches").click()
    expect(page).to_have_url(f"{live_server}/o/river/moderation/reviews")
    queued = page.locator(f"#queue-{written.id}")
    expect(queued).to_contain_text("Mentions another club's coach by name")
    queued.get_by_label("Reason").fill("Names another club's coach")
    both_widths(snap, page, "moderation")
    queued.get_by_role("button", name="Hide").click()
    expect(page.get_by_text("The review is hidden")).to_be_visible()
    expect(page.locator(f"#hidden-{written.id}")).to_contain_text("Names another club's coach")
    assert csp == []
    context.close()
    db.session.expire_all()
    tenancy.activate(w.org.id)
    assert reviews.rating_of(w.org.id, w.maria.id).review_count == 0
