"""The directory's pages as each of its users sees them, at a phone's and a laptop's width, light and dark.

A visitor (search, a public profile, the booking page with its sign-up form), a coach (the profile editor with its
preview, the profile page with a review to reply to), an admin (settings with the listing switch, the profile with
the verification form, the taxonomy, the flagged reviews) and an athlete (the review form, the flag form). On
every page at every size and scheme: nothing runs off the side of the screen and no text box is narrower than a
thumb can use. A second walk does the visitor's and the coach's pages with JavaScript off. Screenshots go to
``$COACH_SCREENSHOTS`` (``/tmp`` when unset) as ``directory-walk-*.png``.
"""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Page, expect

from coach import clock, tenancy
from coach.directory import public, reviews
from coach.extensions import db
from tests.directory_support import DirectoryWorld
from tests.e2e import screenshots
from tests.e2e.test_journeys import log_in, wait_for_htmx
from tests.factories import PASSWORD

pytestmark = pytest.mark.e2e
snap = screenshots("directory-walk")

# Anything shown that is wider than its box (a text field squeezed by a long label, a chip running out).
OVERFLOWING = """() => {
  const shown = (e) => e.offsetParent !== null && getComputedStyle(e).visibility !== 'hidden';
  const wide = [...document.querySelectorAll('main *')].filter((e) => shown(e)
      && e.getBoundingClientRect().right > document.documentElement.clientWidth + 1
      && !e.closest('.table-scroll, .scroll-x, [data-scroll]'));
  return wide.slice(0, 5).map((e) => e.tagName.toLowerCase() + (e.className ? '.' + e.className : '')
      + ' ' + (e.textContent || '').trim().slice(0, 40));
}"""
NARROW_FIELDS = """() => [...document.querySelectorAll(['text', 'email', 'password', 'search', 'number']
    .map((t) => `main input[type=${t}]`).concat(['main textarea']).join(','))]
  .filter((e) => e.offsetParent !== null && e.getBoundingClientRect().width < 120)
  .map((e) => (e.name || e.id) + ': ' + Math.round(e.getBoundingClientRect().width) + ' px')"""


def look(page: Page, name: str) -> None:
    """``name`` at 1280 and 390 px, light and dark: screenshots, and nothing wider than the screen."""
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for width, height in ((1280, 900), (390, 844)):
            page.set_viewport_size({"width": width, "height": height})
            page.wait_for_timeout(150)  # transitions of the scheme switch
            snap(page, f"{name}-{width}-{scheme}")
            wide = page.evaluate("() => document.documentElement.scrollWidth")
            assert wide <= width, f"{name} is {wide} px wide on a {width} px screen"
            assert page.evaluate(OVERFLOWING) == [], f"{name} at {width} px: {page.evaluate(OVERFLOWING)}"
            assert page.evaluate(NARROW_FIELDS) == [], f"{name} at {width} px: {page.evaluate(NARROW_FIELDS)}"
    page.emulate_media(color_scheme="light")
    page.set_viewport_size({"width": 1280, "height": 900})


def look_at(page: Page, live_server: str, who: str, named_paths) -> None:
    """Each ``(name, path)`` in turn: loaded, htmx ready, then :func:`look` at it as ``who-name``."""
    for name, path in named_paths:
        page.goto(f"{live_server}{path}")
        wait_for_htmx(page)
        look(page, f"{who}-{name}")


def signed_in(browser, live_server: str, email: str, java_script: bool = True) -> Page:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="Europe/Berlin",
                                  java_script_enabled=java_script)
    page = context.new_page()
    page.goto(f"{live_server}/login")
    log_in(page, email, PASSWORD)
    page.wait_for_url(lambda url: "/login" not in url)
    return page


def world_with_a_flagged_review() -> tuple[DirectoryWorld, object, object]:
    """The directory world, published, with Ana's review of Maria (flagged by Jon) and Ben's session to review."""
    w = DirectoryWorld()
    tenancy.activate(w.org.id)
    review = reviews.write_review(w.ended, w.ana, 4, "Clear plan for my aim.\nWould book again.")
    reviews.flag(review, w.jon, "Looks like an advert")  # a colleague's flag: Ben's is still his to give
    bens = w.write_booking(w.maria, w.aim, w.ben, clock.now().replace(microsecond=0) - timedelta(hours=5), "ended")
    db.session.commit()
    w.publish()
    return w, review, bens


def test_every_directory_page_fits_a_phone_and_a_laptop_in_both_schemes(ctx, browser, live_server: str):
    w, review, bens = world_with_a_flagged_review()
    tenancy.activate(w.org.id)
    slot = public.next_slots(w.aim, clock.now())[0]
    book = f"/coaches/river/maria-santos/book?{urlencode({'offering': str(w.aim.id), 'start': slot.starts_at.strftime('%Y-%m-%dT%H:%M:%SZ')})}"

    # A visitor.
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    look_at(page, live_server, "visitor", (("search", "/coaches?q=valorant"),
                                           ("public-profile", "/coaches/river/maria-santos"), ("public-book", book)))
    context.close()

    # The coach: the editor with its live preview, her profile with a review to answer.
    page = signed_in(browser, live_server, "maria@example.com")
    page.goto(f"{live_server}/o/river/profile")
    wait_for_htmx(page)
    page.get_by_label("Headline").fill("Valorant aim coach for ranked climbers and teams")
    expect(page.locator("#profile-preview")).to_contain_text("ranked climbers and teams")
    look(page, "coach-editor")
    page.goto(f"{live_server}/o/river/coaches/{w.maria.id}/profile")
    page.locator("article.review").first.get_by_text("Reply publicly").click()
    look(page, "coach-profile")
    page.context.close()

    # The admin: the listing switch, verification, the taxonomy, the queue.
    page = signed_in(browser, live_server, "ada@example.com")
    look_at(page, live_server, "admin", (("settings", "/o/river/admin/settings"),
                                         ("coach-profile", f"/o/river/coaches/{w.jon.id}/profile"),
                                         ("taxonomy", "/o/river/admin/taxonomy"),
                                         ("moderation", "/o/river/moderation/reviews"),
                                         ("hide", f"/o/river/reviews/{review.id}/hide")))
    page.context.close()

    # Athletes: Ben reviews his session and flags nothing of his own; Ana's review is his to flag.
    page = signed_in(browser, live_server, "ben@example.com")
    look_at(page, live_server, "athlete", (("review-form", f"/o/river/bookings/{bens.id}/review"),
                                           ("profile", f"/o/river/coaches/{w.maria.id}/profile"),
                                           ("flag", f"/o/river/reviews/{review.id}/flag"),
                                           ("reviews", f"/o/river/coaches/{w.maria.id}/reviews")))
    page.context.close()
    page = signed_in(browser, live_server, "ana@example.com")
    page.goto(f"{live_server}/o/river/bookings/{w.ended.id}/review")
    look(page, "athlete-review-edit")
    page.context.close()


def test_the_visitor_and_the_coach_get_by_without_javascript(ctx, browser, live_server: str):
    w, review, bens = world_with_a_flagged_review()
    tenancy.activate(w.org.id)
    reviews.write_review(bens, w.ben, 5, "Great drills.")  # two reviews: the order switch shows
    db.session.commit()
    w.publish()
    context = browser.new_context(viewport={"width": 390, "height": 844}, java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{live_server}/coaches")
    page.get_by_label("Search coaches").fill("valorant")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="Maria Santos", exact=True).first.click()
    expect(page).to_have_url(f"{live_server}/coaches/river/maria-santos")
    expect(page.locator("article.review").first).to_contain_text("Great drills.")
    page.get_by_role("link", name="Most helpful").click()
    expect(page.get_by_role("link", name="Most helpful")).to_have_attribute("aria-current", "true")
    expect(page.locator("article.review")).to_have_count(2)
    snap(page, "nojs-public-profile")
    page.locator(".public-slots a").first.click()
    expect(page.get_by_role("button", name="Sign up and continue")).to_be_visible()
    snap(page, "nojs-book")
    context.close()

    page = signed_in(browser, live_server, "maria@example.com", java_script=False)
    page.goto(f"{live_server}/o/river/profile")
    page.get_by_label("Headline").fill("Aim coach <b>for</b> climbers")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#profile-preview")).to_contain_text("Aim coach <b>for</b> climbers")
    expect(page.get_by_label("Headline")).to_have_value("Aim coach <b>for</b> climbers")
    snap(page, "nojs-editor-preview")
    page.goto(f"{live_server}/o/river/coaches/{w.maria.id}/profile")
    anas = page.locator("article.review").filter(has_text="Would book again.")
    anas.get_by_text("Reply publicly").click()
    anas.get_by_label("Your public reply").fill("Thanks Ana, see you next week.")
    anas.get_by_role("button", name="Publish reply").click()
    expect(page.locator("article.review").filter(has_text="Would book again.")).to_contain_text(
        "see you next week.")
    snap(page, "nojs-replied")
    page.context.close()

    # The athlete Ben flags Ana's review of Maria and votes it helpful, all by plain posts.
    page = signed_in(browser, live_server, "ben@example.com", java_script=False)
    page.goto(f"{live_server}/o/river/coaches/{w.maria.id}/profile")
    anas = page.locator("article.review").filter(has_text="Would book again.")
    anas.get_by_role("button", name="Helpful").click()
    expect(page.locator("article.review").filter(has_text="Would book again.").get_by_role(
        "button", name="Helpful ✓")).to_be_visible()
    page.locator("article.review").filter(has_text="Would book again.").get_by_role("link", name="Flag").click()
    page.get_by_label("Reason").fill("Reads like an advert")
    page.get_by_role("button", name="Flag").click()
    expect(page.get_by_text("Thank you: the moderators will look at it.")).to_be_visible()
    snap(page, "nojs-flagged")
    page.context.close()

    # The admin verifies Jon with a note and hides the flagged review from the queue.
    page = signed_in(browser, live_server, "ada@example.com", java_script=False)
    page.goto(f"{live_server}/o/river/coaches/{w.jon.id}/profile")
    page.get_by_label("What was checked").fill("Passport and club licence seen")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_text("Coach verified.")).to_be_visible()
    expect(page.locator("#profile-card .badge-verified")).to_be_visible()
    page.goto(f"{live_server}/o/river/moderation/reviews")
    queued = page.locator(f"#queue-{review.id}")
    expect(queued).to_contain_text("Reads like an advert")
    queued.get_by_label("Reason").fill("Advertising")
    queued.get_by_role("button", name="Hide").click()
    expect(page.get_by_text("The review is hidden")).to_be_visible()
    expect(page.locator(f"#hidden-{review.id}")).to_contain_text("Advertising")
    snap(page, "nojs-moderated")
    page.context.close()


def test_a_profile_filled_to_every_limit_with_unbroken_words_still_fits(ctx, browser, live_server: str):
    """Jon's profile at its limits: a 120-character headline of one word, twelve languages, twenty 40-character tags,
    certifications and a location without a space, and a review, reply and flag reason each at its limit in one
    word; his public page, his page in the club, his search card and the moderation queue keep to the screen at 390
    and 1280 px."""
    from coach.directory import profiles

    from coach.booking import availability
    from coach.directory import taxonomy

    w = DirectoryWorld()
    tenancy.activate(w.org.id)
    long_word = "Serveandvolley" * 20
    skill = taxonomy.add_term(w.org, "skill", "K" * 60, w.admin, parent_id=w.terms["tennis"].id)
    availability.save_offering(w.jon, {"title": "O" * 120}, w.jon, w.serve)
    profiles.save_profile(w.jon_profile, {"term_ids": [str(skill.id)],
        "headline": long_word[:120], "bio": "Para " + long_word[:400] + "\n\n- " + "x" * 300,
        "languages": ["de", "en", "es", "fr", "it", "pt", "nl", "pl", "sv", "da", "fi", "cs"],
        "tags": ", ".join(f"{i:02d}" + "t" * 38 for i in range(20)), "years_experience": "80",
        "certifications": "\n".join(["C" * 199] * 5), "location": "L" * 120, "online": "y", "in_person": "y",
        "listed": "y"}, w.jon)
    session = w.write_booking(w.jon, w.serve, w.ben, clock.now().replace(microsecond=0) - timedelta(hours=4), "ended")
    review = reviews.write_review(session, w.ben, 5, "R" * 5000)
    reviews.reply(review, w.jon, "Q" * 2000)
    reviews.flag(review, w.ana, "F" * 300)
    db.session.commit()
    w.publish()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    for name, path in (("public-profile", "/coaches/river/jon-berg"), ("search", "/coaches?q=tennis")):
        page.goto(f"{live_server}{path}")
        expect(page.get_by_text(long_word[:40], exact=False).first).to_be_visible()
        look(page, f"long-{name}")
    page.locator(".coach-card a").first.click()
    page.locator(".public-slots a").first.click()
    expect(page.get_by_role("heading", name="Book this time")).to_be_visible()
    look(page, "long-book")
    context.close()
    page = signed_in(browser, live_server, "ben@example.com")
    page.goto(f"{live_server}/o/river/bookings/{session.id}/review")
    look(page, "long-review-form")
    page.context.close()
    page = signed_in(browser, live_server, "ben@example.com")
    page.goto(f"{live_server}/o/river/coaches/{w.jon.id}/profile")
    look(page, "long-profile")
    page.context.close()
    page = signed_in(browser, live_server, "ada@example.com")
    for name, path in (("moderation", "/o/river/moderation/reviews"), ("taxonomy", "/o/river/admin/taxonomy"),
                       ("editor", f"/o/river/coaches/{w.jon.id}/profile/edit")):
        page.goto(f"{live_server}{path}")
        look(page, f"long-{name}")
    page.context.close()
