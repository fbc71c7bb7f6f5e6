"""The header in Chromium (issue 21): one row at every width from 320 to 1920 px for each role and a visitor,
nothing wider than the screen, the sections as a tab bar on a phone, and the <details> menus (one open at a
time, Escape and a click outside close them). With ``COACH_SCREENSHOTS`` set, each role's page is saved at 320,
390, 1280 and 1920 px in light and dark (``H3-<role>-<width>-<scheme>.png``)."""
from __future__ import annotations

import os

import pytest
from playwright.sync_api import Page, expect

from tests.e2e import screenshots
from tests.e2e.test_journeys import log_in
from tests.factories import PASSWORD, add_member, make_org, make_user

pytestmark = pytest.mark.e2e

snap = screenshots("H3")
WIDTHS = (320, 390, 768, 1024, 1280, 1920)
SHOT_WIDTHS = (320, 390, 1280, 1920)
SLUG = "northside"


@pytest.fixture()
def club(ctx):
    """A long organization name and long personal names: the header's worst case."""
    admin = make_user("ada@example.com", "Adelheid Administrator-Longname")
    org = make_org(admin, slug=SLUG, name="Northside Rowing & Athletics Club of the Riverside")
    add_member(org, make_user("carla@example.com", "Carla Coach"), "coach")
    add_member(org, make_user("sam@example.com", "Sam Sculler"), "athlete")
    return org


# What the header looks like at this width: its height, whether any visible item of the bar (or of the phone's
# tab bar) sits outside its row or past the screen's edge, tabs whose label is cut, and the page's overflow.
MEASURE = """() => {
  const header = document.querySelector('header.topbar');
  const nav = header.querySelector('nav');
  const box = header.getBoundingClientRect();
  const shown = (e) => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const out = [];
  for (const item of nav.children) {
    if (!shown(item) || getComputedStyle(item).position === 'fixed') continue;
    const r = item.getBoundingClientRect();
    if (r.top < box.top - 1 || r.bottom > box.bottom + 1 || r.right > innerWidth + 1 || r.left < -1)
      out.push(item.tagName + '.' + item.className + ' ' + JSON.stringify([r.left, r.top, r.right, r.bottom]));
  }
  const bar = nav.querySelector('.tabs');
  let barHeight = 0;
  if (bar && shown(bar)) {
    const tops = new Set();
    for (const li of bar.children) {
      const r = li.getBoundingClientRect();
      tops.add(Math.round(r.top));
      if (r.right > innerWidth + 1) out.push('tab past the edge: ' + li.textContent.trim());
    }
    if (tops.size > 1) out.push('tabs on ' + tops.size + ' rows');
    barHeight = bar.getBoundingClientRect().height;
  }
  const cut = [...nav.querySelectorAll('.tab-label, .nav-link span, .nav-signup')]
    .filter(e => shown(e) && e.clientWidth > 1 && e.scrollWidth > e.clientWidth + 1)  // 1 px: visually hidden.map(e => e.textContent.trim());
  return {height: box.height, barHeight, out, cut,
          overflow: document.documentElement.scrollWidth - innerWidth};
}"""


def sign_in(page: Page, live_server: str, email: str | None) -> None:
    page.goto(f"{live_server}/login")
    if email is not None:
        log_in(page, email, PASSWORD)
        expect(page.locator("details.menu-account")).to_have_count(1)
        page.goto(f"{live_server}/o/{SLUG}/")
        expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Home")).to_have_count(1)


@pytest.mark.parametrize("role,email", [("admin", "ada@example.com"), ("coach", "carla@example.com"),
                                        ("athlete", "sam@example.com"), ("visitor", None)])
def test_the_header_is_one_row_from_320_to_1920_px(browser, live_server, club, role, email):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    sign_in(page, live_server, email)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        seen = page.evaluate(MEASURE)
        assert seen["height"] <= 64, (width, seen)
        assert seen["out"] == [], (width, seen)
        assert seen["cut"] == [], (width, seen)
        assert seen["overflow"] <= 0, (width, seen)
        if email is not None:
            # Under 800 px the five sections and More are a tab bar at the foot of the screen, one row.
            assert (0 < seen["barHeight"] <= 72) if width < 800 else seen["barHeight"] <= 64, (width, seen)
        # The menus open inside the screen.
        for summary in page.locator("details.menu > summary").all():
            summary.click()
            panel = summary.locator("xpath=..").locator(".menu-panel")
            expect(panel).to_be_visible()
            left, right, top, bottom = panel.evaluate(
                "e => { const r = e.getBoundingClientRect(); return [r.left, r.right, r.top, r.bottom]; }")
            assert left >= 0 and right <= width + 1 and top >= 0 and bottom <= 801, (width, left, right, top, bottom)
            page.keyboard.press("Escape")
            expect(panel).to_be_hidden()
    if "COACH_SCREENSHOTS" in os.environ:
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            for width in SHOT_WIDTHS:
                page.set_viewport_size({"width": width, "height": 844 if width < 800 else 800})
                snap(page, f"{role}-{width}-{scheme}")
    context.close()


def test_one_menu_is_open_at_a_time_and_escape_or_a_click_outside_closes_it(page, live_server, club):
    sign_in(page, live_server, "ada@example.com")
    nav = page.get_by_role("navigation", name="Main")
    more = page.locator("details.menu-more")
    account = page.locator("details.menu-account")
    nav.locator("summary", has_text="More").click()
    expect(nav.get_by_role("link", name="Members")).to_be_visible()
    page.locator("details.menu-account > summary").click()
    expect(account.get_by_role("button", name="Log out")).to_be_visible()
    expect(more).not_to_have_attribute("open", "")
    page.keyboard.press("Escape")
    expect(account).not_to_have_attribute("open", "")
    # Focus goes back to the summary, so the keyboard user is where they were.
    expect(page.locator("details.menu-account > summary")).to_be_focused()
    nav.locator("summary", has_text="More").click()
    page.locator("main").click(position={"x": 5, "y": 5})
    expect(more).not_to_have_attribute("open", "")
    # A section chosen from More is marked in the menu on the page it opens.
    nav.locator("summary", has_text="More").click()
    nav.get_by_role("link", name="Members").click()
    expect(page).to_have_url(f"{live_server}/o/{SLUG}/admin/members")
    nav.locator("summary", has_text="More").click()
    expect(nav.get_by_role("link", name="Members")).to_have_attribute("aria-current", "page")
    expect(nav.get_by_role("link", name="Home")).not_to_have_attribute("aria-current", "page")
