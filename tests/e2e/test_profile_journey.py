"""A coach writes their profile: the live preview follows the typing without saving anything, Save stores it, and
the profile page shows it (screenshots at 1280 and 390 px: /tmp/profile-*.png)."""
from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from coach import tenancy
from coach.directory.models import CoachProfile
from coach.extensions import db
from tests.directory_support import DirectoryWorld
from tests.e2e import both_widths, screenshots
from tests.e2e.test_journeys import log_in, wait_for_htmx, watch_csp
from tests.factories import PASSWORD

pytestmark = pytest.mark.e2e
snap = screenshots("profile")


def saved_profile(world) -> CoachProfile | None:
    db.session.rollback()
    tenancy.activate(world.org.id)
    return db.session.scalar(select(CoachProfile).where(CoachProfile.coach_membership_id == world.kim.id))


def test_coach_fills_the_profile_sees_the_live_preview_saves_and_sees_it(ctx, page: Page, live_server: str):
    world = DirectoryWorld()
    csp = watch_csp(page)
    page.goto(f"{live_server}/login?next=/o/river/profile")
    log_in(page, "kim@example.com", PASSWORD)
    expect(page).to_have_url(f"{live_server}/o/river/profile")
    wait_for_htmx(page)
    preview = page.locator("#profile-preview")
    expect(preview).to_contain_text("Fill in the form")

    page.get_by_label("Headline", exact=True).fill("Valorant coach for Iron to Diamond")
    expect(preview).to_contain_text("Valorant coach for Iron to Diamond")
    expect(preview).to_contain_text("Preview: not saved yet")
    page.get_by_label("About you", exact=True).fill("I review your **VODs** and fix your *crosshair*.")
    expect(preview.locator("strong")).to_have_text("VODs")
    page.get_by_label("Aim", exact=True).check()
    expect(preview.locator(".profile-discipline h3")).to_have_text("Valorant")
    languages = page.get_by_role("group", name="Languages you coach in")
    languages.get_by_label("English", exact=True).check()
    languages.get_by_label("Korean", exact=True).check()
    expect(preview).to_contain_text("English, Korean")
    page.get_by_label("Tags", exact=True).fill("vod review, ranked")
    expect(preview).to_contain_text("#ranked")
    page.get_by_label("Years of coaching experience", exact=True).fill("99")
    expect(preview).to_contain_text("between 0 and 80")
    page.get_by_label("Years of coaching experience", exact=True).fill("4")
    expect(preview).to_contain_text("4 years")
    assert saved_profile(world) is None  # the preview wrote nothing
    both_widths(snap, page, "editor")

    page.get_by_role("button", name="Save profile").click()
    expect(page).to_have_url(f"{live_server}/o/river/coaches/{world.kim.id}/profile")
    expect(page.get_by_text("Profile saved.")).to_be_visible()
    card = page.locator("#profile-card")
    expect(card).to_contain_text("Valorant coach for Iron to Diamond")
    expect(card.locator("strong")).to_have_text("VODs")
    expect(card).to_contain_text("English, Korean")
    expect(card).to_contain_text("Aim")
    both_widths(snap, page, "page")
    profile = saved_profile(world)
    assert profile is not None and profile.headline == "Valorant coach for Iron to Diamond"
    assert profile.years_experience == 4 and profile.languages == ["en", "ko"]
    # Back in the editor the ticked languages head the list, ticked.
    page.goto(f"{live_server}/o/river/profile")
    first = page.get_by_role("group", name="Languages you coach in").get_by_role("checkbox")
    expect(first.nth(0)).to_be_checked()
    expect(first.nth(1)).to_be_checked()
    expect(first.nth(2)).not_to_be_checked()
    assert page.locator(".profile-language-list label").nth(1).inner_text().strip() == "Korean"
    assert csp == []
