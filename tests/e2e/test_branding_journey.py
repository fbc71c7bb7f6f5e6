"""Settings and branding in Chromium: an admin opens the settings, brands the organization (a colour refused for
its contrast, then one accepted, then a logo), and sees the header and buttons change, with no CSP report.

Screenshots of the settings and branding pages at 390 and 1280 pixels go to ``$COACH_SCREENSHOTS`` (``/tmp``
when unset) as ``branding-*.png``.
"""
from __future__ import annotations

import io

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from coach import tenancy
from tests.e2e import screenshots
from tests.e2e.test_journeys import log_in, watch_csp
from tests.factories import PASSWORD, add_member, make_org, make_user

pytestmark = pytest.mark.e2e

snap = screenshots("branding")


@pytest.fixture()
def world(ctx):
    ada = make_user("ada@example.com", "Ada Admin")
    org = make_org(ada, slug="harbour", name="Harbour Rowing Club")
    add_member(org, make_user("carl@example.com", "Carl Coach"), "coach")
    tenancy.activate(org.id)
    return org


def both_widths(page: Page, name: str) -> None:
    for width, height in ((390, 844), (1280, 900)):
        page.set_viewport_size({"width": width, "height": height})
        snap(page, f"{name}-{width}")
    page.set_viewport_size({"width": 1280, "height": 900})


def test_admin_sets_up_and_brands_the_organization(page, live_server, world, tmp_path):
    csp = watch_csp(page)
    page.goto(f"{live_server}/login?next=/o/harbour/")
    log_in(page, "ada@example.com", PASSWORD)
    expect(page).to_have_url(f"{live_server}/o/harbour/")

    page.get_by_role("navigation", name="Main").locator("summary", has_text="More").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", name="Settings of Harbour Rowing Club")).to_be_visible()
    page.get_by_label("Keep chat messages for (days)").fill("0")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Between 1 and 3,650 days, or empty to keep everything.")).to_be_visible()
    page.get_by_label("Keep chat messages for (days)").fill("365")
    page.get_by_label("Every member").check()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Settings saved.")).to_be_visible()
    both_widths(page, "settings")

    page.get_by_role("navigation", name="Administration").get_by_role("link", name="Branding").click()
    expect(page.get_by_role("heading", name="Branding of Harbour Rowing Club")).to_be_visible()
    page.get_by_label("Accent colour", exact=True).fill("#808080")
    page.get_by_role("button", name="Save colour").click()
    expect(page.get_by_text("white text has a contrast of 3.95:1")).to_be_visible()
    page.get_by_label("Accent colour", exact=True).fill("#0b4fa8")
    page.get_by_role("button", name="Save colour").click()
    expect(page.get_by_text("Accent colour saved.")).to_be_visible()

    logo = tmp_path / "crest.png"
    image = Image.new("RGB", (600, 300), (11, 79, 168))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    logo.write_bytes(buffer.getvalue())
    page.get_by_label("Upload a picture").set_input_files(str(logo))
    page.get_by_role("button", name="Save logo").click()
    expect(page.get_by_text("Logo saved.")).to_be_visible()
    header_logo = page.get_by_role("navigation", name="Main").get_by_role("img", name="Harbour Rowing Club")
    expect(header_logo).to_be_visible()
    assert header_logo.evaluate("img => img.naturalWidth") == 256
    button = page.get_by_role("button", name="Save colour")
    assert button.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(11, 79, 168)"
    both_widths(page, "branding")
    assert csp == []
