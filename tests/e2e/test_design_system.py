"""The design system in Chromium: the light and the dark theme (prefers-color-scheme) as the browser computes them —
different, and readable (WCAG AA from getComputedStyle) — on the style guide and on the demo organization's pages,
whose brand colour must stay readable as a link in the dark theme and fill its buttons in both.

Screenshots (390 and 1280 px, light and dark) of the style guide and of five pages go to ``$COACH_SCREENSHOTS``
(``/tmp`` when unset) as ``H4-*.png``.
"""
from __future__ import annotations

import pytest
from flask import url_for
from playwright.sync_api import Page, expect

from coach.governance.branding import contrast
from tests.e2e import screenshots
from tests.e2e.test_journeys import log_in

pytestmark = pytest.mark.e2e

snap = screenshots("H4")
DEMO_PASSWORD = "coach-demo-2026"

# Colours as sRGB bytes whatever CSS syntax the computed value has (oklch, color-mix, rgb): a 1×1 canvas
# paints it. An element's background is the first ancestor's with any opacity.
COLOURS_JS = """(selector) => {
  const paint = (c) => { const cv = document.createElement('canvas'); cv.width = cv.height = 1;
    const x = cv.getContext('2d'); x.fillStyle = c; x.fillRect(0, 0, 1, 1); return Array.from(x.getImageData(0, 0, 1, 1).data); };
  const hex = ([r, g, b]) => '#' + [r, g, b].map(v => v.toString(16).padStart(2, '0')).join('');
  const el = document.querySelector(selector);
  if (!el) return null;
  let bg = el, fill = [0, 0, 0, 0];
  while (bg) { fill = paint(getComputedStyle(bg).backgroundColor); if (fill[3] > 0) break; bg = bg.parentElement; }
  if (fill[3] === 0) fill = [255, 255, 255, 255];
  return {fg: hex(paint(getComputedStyle(el).color)), bg: hex(fill)};
}"""


def colours(page: Page, selector: str) -> dict[str, str]:
    found = page.evaluate(COLOURS_JS, selector)
    assert found, f"nothing matches {selector!r}"
    return found


def readable(page: Page, selector: str, minimum: float = 4.5) -> dict[str, str]:
    pair = colours(page, selector)
    ratio = contrast(pair["fg"], pair["bg"])
    assert ratio >= minimum, f"{selector}: {pair['fg']} on {pair['bg']} is {ratio:.2f}:1"
    return pair


def shoot(page: Page, name: str) -> None:
    for width, height in ((1280, 800), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        snap(page, f"{name}-{width}")
    page.set_viewport_size({"width": 1280, "height": 800})


@pytest.fixture()
def style_guide_on(app, monkeypatch):
    monkeypatch.setitem(app.config, "STYLE_GUIDE", True)


def test_the_dark_theme_differs_from_the_light_and_both_are_readable(page: Page, live_server, style_guide_on):
    themes = {}
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.goto(f"{live_server}/dev/style")
        expect(page.get_by_role("heading", name="Style guide", level=1)).to_be_visible()
        themes[scheme] = readable(page, "body")
        readable(page, ".page-head .muted")
        readable(page, ".sg-toc a")  # a link on a card
        shoot(page, f"style-guide-{scheme}")
        # Every panel forced to a theme looks like that theme on a page that is not (and the same when it is).
        for forced in ("light", "dark"):
            panel = colours(page, f".sg-panel.theme-{forced}")
            themes.setdefault(f"panel-{forced}", set()).add(panel["bg"])
            for selector in (".sg-panel-label", ".card h3", ".hint", ".badge-requested", ".badge-confirmed",
                             ".badge-cancelled", ".flash-error", ".button.primary", ".button.danger", ".empty > p",
                             ".table thead th", ".error"):
                readable(page, f".sg-panel.theme-{forced} {selector}")
    light, dark = themes["light"], themes["dark"]
    assert light["bg"] != dark["bg"] and light["fg"] != dark["fg"]
    assert contrast(dark["bg"], "#000000") < contrast(light["bg"], "#000000")  # dark is darker
    # A forced panel's page colour is that theme's page colour, whatever the OS says.
    assert themes["panel-light"] == {light["bg"]} and themes["panel-dark"] == {dark["bg"]}


@pytest.fixture()
def demo(app, job_runner):
    assert app.test_cli_runner().invoke(args=["seed-demo"]).exit_code == 0
    with app.test_request_context():
        return {name: url_for(endpoint, slug="northside") for name, endpoint in (
            ("feed", "spaces.feed"), ("chat", "chat.index"), ("coaches", "booking.coaches"),
            ("media", "media.library"), ("members", "admin.members"))}


def test_the_demo_pages_keep_the_brand_readable_in_both_themes(browser, live_server, demo):
    for who, email, pages in (("athlete", "sam@northside.example", ("feed", "chat", "coaches")),
                              ("admin", "admin@northside.example", ("media", "members"))):
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{live_server}/login")
        log_in(page, email, DEMO_PASSWORD)
        expect(page).not_to_have_url(f"{live_server}/login")
        for name in pages:
            page.goto(f"{live_server}{demo[name]}")
            if name == "coaches":  # the week calendar of the first coach
                page.locator("main .coach-list a").first.click()
                page.get_by_role("link", name="See times").first.click()
                expect(page.locator(".week")).to_be_visible()
                name = "week"
            seen = {}
            for scheme in ("light", "dark"):
                page.emulate_media(color_scheme=scheme)
                seen[scheme] = readable(page, "main")
                if page.locator("main a:not(.button):not(.slot)").count():
                    readable(page, "main a:not(.button):not(.slot)")  # the brand as a link (#0f766e is dark)
                readable(page, "main h1")
                if page.locator("main .button.primary").count():
                    button = colours(page, "main .button.primary")
                    assert button["bg"] == "#0f766e", f"{name}: the brand does not fill the primary button"
                    assert contrast(button["fg"], button["bg"]) >= 4.5
                # Nothing pushes a phone's page sideways.
                page.set_viewport_size({"width": 390, "height": 844})
                width = page.evaluate("() => document.documentElement.scrollWidth")
                assert width <= 390, f"{name} at 390 px is {width} px wide ({scheme})"
                page.set_viewport_size({"width": 1280, "height": 800})
                shoot(page, f"{name}-{scheme}")
            assert seen["light"]["bg"] != seen["dark"]["bg"], name
        context.close()
