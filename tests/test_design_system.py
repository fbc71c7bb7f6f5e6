"""The design system: the tokens app.css defines (both themes), the development style guide, flashed messages as
toasts, the brand stylesheet over the tokens, and no inline styles in the web templates (the CSP allows none).

The colours as a browser computes them (contrast, dark against light, the brand's colour) are checked in Chromium:
tests/e2e/test_design_system.py.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from coach import tenancy
from coach.blueprints.core import style_guide as guide
from coach.governance import branding
from tests.conftest import Auth, csrf_from
from tests.factories import add_member, make_org, make_user

ROOT = Path(__file__).resolve().parent.parent
APP_CSS = (ROOT / "coach/static/css/app.css").read_text()
GUIDE_CSS = (ROOT / "coach/static/css/style-guide.css").read_text()


def declarations(block: str) -> dict[str, str]:
    """``--name: value`` pairs of a CSS block's text (comments dropped)."""
    block = re.sub(r"/\*.*?\*/", "", block, flags=re.S)
    return {m.group(1): " ".join(m.group(2).split()) for m in re.finditer(r"--([\w-]+)\s*:\s*([^;]+);", block)}


def block_after(css: str, opening: str) -> str:
    """The text between ``opening`` (which ends with ``{``) and its matching ``}``."""
    start = css.index(opening) + len(opening)
    depth, i = 1, start
    while depth:
        depth += {"{": 1, "}": -1}.get(css[i], 0)
        i += 1
    return css[start:i - 1]


LIGHT = declarations(block_after(APP_CSS, ":root, .theme-light {"))
DARK_MEDIA = declarations(block_after(block_after(APP_CSS, "@media (prefers-color-scheme: dark) {"), ":root {"))
DARK_CLASS = declarations(block_after(APP_CSS, "\n.theme-dark {"))
SHARED = declarations(block_after(APP_CSS, ":root, .theme-light, .theme-dark {"))


def test_the_stylesheet_defines_every_documented_token():
    defined = LIGHT.keys() | SHARED.keys()
    missing = [name for name in guide.ALL_TOKENS if name not in defined]
    assert missing == []
    # Spacing follows a 4 px rhythm; the type scale grows.
    assert [SHARED[f"space-{n}"] for n in range(1, 9)] == [".25rem", ".5rem", ".75rem", "1rem", "1.5rem", "2rem",
                                                          "3rem", "4rem"]
    sizes = [float(SHARED[name].removesuffix("rem")) for name in guide.TEXT]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)


def test_the_dark_theme_overrides_every_colour_and_the_forced_dark_panel_matches_it():
    assert "color-scheme: light dark" in APP_CSS or "color-scheme: dark" in block_after(
        APP_CSS, "@media (prefers-color-scheme: dark) {")
    for name in guide.THEMED_COLOURS:
        assert name in LIGHT and name in DARK_MEDIA, name
        assert LIGHT[name] != DARK_MEDIA[name], f"--{name} is the same in both themes"
    # The style guide's dark panels (.theme-dark) must show what a dark OS setting shows.
    assert DARK_CLASS == DARK_MEDIA
    # The dark theme changes colours only: no spacing, type or radius in it.
    assert not [name for name in DARK_MEDIA if not name.startswith(("color-", "shadow-", "avatar-"))]


def test_every_colour_pair_of_text_on_a_surface_reaches_aa_in_both_themes():
    for palette in (LIGHT, DARK_MEDIA):
        for text in ("color-text", "color-text-muted", "color-success", "color-warning", "color-danger", "color-info",
                     "color-accent"):
            for surface in ("color-bg", "color-surface", "color-surface-raised", "color-surface-muted"):
                ratio = branding.contrast(palette[text], palette[surface])
                assert ratio >= 4.5, f"--{text} on --{surface}: {ratio:.2f}"
        for state in ("success", "warning", "danger", "info"):
            assert branding.contrast(palette[f"color-{state}"], palette[f"color-{state}-bg"]) >= 4.5, state
        assert branding.contrast(palette["color-text-muted"], palette["color-neutral-bg"]) >= 4.5
        # Form controls' edges and the focus ring: 3:1 against a card (WCAG 1.4.11).
        assert branding.contrast(palette["color-border-strong"], palette["color-surface"]) >= 3
        assert branding.contrast(palette["color-focus"], palette["color-surface"]) >= 3
        for n in range(8):
            assert branding.contrast(palette[f"avatar-c{n}"], palette["avatar-ink"]) >= 4.5, f"avatar-c{n}"
    # The default brand (buttons) carries white text, and the text colour matches branding's dark ink.
    assert branding.contrast(SHARED["brand"], SHARED["brand-ink"]) >= 4.5
    assert LIGHT["color-text"] == branding.DARK_TEXT


def test_the_style_guide_has_a_swatch_for_every_token_it_lists():
    for name in (*(n for n, _ in guide.COLOURS), *guide.SPACING, *guide.RADII, *guide.SHADOWS):
        assert f".sw-{name} {{" in GUIDE_CSS, name


def test_the_style_guide_is_a_404_outside_development(client):
    assert client.get("/dev/style").status_code == 404


def test_the_style_guide_shows_tokens_and_components_in_both_themes(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "STYLE_GUIDE", True)
    response = client.get("/dev/style")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert '<h1>Style guide</h1>' in page
    for name, _ in guide.COLOURS:
        assert f"<code>--{name}</code>" in page
    for section in ("Buttons", "Badges", "Cards", "Forms", "Tables", "Empty states", "Messages and toasts",
                    "Avatars", "Page header and figures"):
        assert f'aria-label="{section}, light theme"' in page and f'aria-label="{section}, dark theme"' in page
    assert page.count('class="sg-panel theme-dark"') == page.count('class="sg-panel theme-light"') >= 10
    # Each example's markup is shown escaped, as text to copy.
    assert "&lt;button type=&#34;button&#34; class=&#34;button primary&#34;&gt;Book a session&lt;/button&gt;" in page
    # Rendered twice, the examples still give every element its own id; and no inline style (the CSP).
    ids = Counter(re.findall(r'\sid="([^"]+)"', page))
    assert [i for i, n in ids.items() if n > 1] == []
    assert not re.search(r"<[^>]+\sstyle=", page)
    # One theme only on request (a class on each panel; the page itself stays as the OS says).
    dark = client.get("/dev/style?scheme=dark").get_data(as_text=True)
    assert 'class="sg-panel theme-light"' not in dark and 'class="sg-panel theme-dark"' in dark


@pytest.fixture()
def world(ctx):
    ada = make_user("ada@example.com", "Ada Admin")
    org = make_org(ada, slug="harbour", name="Harbour Club")
    add_member(org, make_user("carl@example.com", "Carl Coach"), "coach")
    make_org(make_user("zed@example.com", "Zed Stranger"), slug="hill", name="Hill Club")
    tenancy.activate(org.id)
    return org


def test_a_flashed_message_is_a_toast_that_closes_without_script(app, world):
    ada = app.test_client()
    assert Auth(ada).login("ada@example.com").status_code == 303
    token = csrf_from(ada.get("/o/harbour/admin/branding").get_data(as_text=True))
    saved = ada.post("/o/harbour/admin/branding/accent", data={"csrf_token": token, "accent_color": "#0b5fff"},
                     follow_redirects=True)
    page = saved.get_data(as_text=True)
    toast = re.search(r'<div class="flashes toasts" role="status">(.*?)</div>', page, re.S)
    assert toast, "no toast on the page after saving"
    assert '<details class="toast toast-success" open><summary><span class="sr-only">Dismiss</span></summary>' \
        in toast.group(1)
    assert '<p class="flash flash-success">Accent colour saved.</p>' in toast.group(1)
    # The toast is styled to float and to close when its summary closes the <details>.
    assert ".toast:not([open]) { display: none; }" in APP_CSS and ".toasts { position: fixed;" in APP_CSS


def test_a_light_brand_colour_keeps_dark_links_on_the_light_theme_only(app, world):
    ada = app.test_client()
    assert Auth(ada).login("ada@example.com").status_code == 303
    token = csrf_from(ada.get("/o/harbour/admin/branding").get_data(as_text=True))
    ada.post("/o/harbour/admin/branding/accent", data={"csrf_token": token, "accent_color": "#f5c400"})
    href = re.search(r'<link rel="stylesheet" href="(/o/harbour/admin/brand-\d+\.css)">',
                     ada.get("/o/harbour/").get_data(as_text=True)).group(1)
    css = app.test_client().get(href).get_data(as_text=True)
    assert "--brand: #f5c400; --brand-ink: #1d2433;" in css
    # Links take the ink on a light page; under a dark OS setting they are left to app.css's readable tint.
    assert f"@media not (prefers-color-scheme: dark) {{ :root {{ --color-link: {branding.DARK_TEXT}; }} }}" in css
    assert not re.search(r"(^|\n)a[ ,{]", css), "a rule colouring links whatever the theme"


WEB_TEMPLATES = [p for p in (ROOT / "coach/templates").rglob("*.html") if "email" not in p.relative_to(ROOT).parts]


def test_no_web_template_has_an_inline_style():
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in WEB_TEMPLATES
                 for n, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"\sstyle\s*=", line)]
    assert offenders == []



def test_no_stylesheet_paints_a_fixed_white_the_dark_theme_cannot_change():
    """A hard-coded white background stays white under a dark OS setting (light text on it vanishes)."""
    allowed = {".logo-preview img", "body"}  # a logo keeps a white mat; a receipt prints black on white
    offenders = []
    for sheet in (ROOT / "coach/static/css").glob("*.css"):
        if re.search(r"-[0-9a-f]{32}\.css$", sheet.name):
            continue  # the build's fingerprinted copies
        css = re.sub(r"/\*.*?\*/", "", sheet.read_text(), flags=re.S)
        for selector, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
            if re.search(r"background(-color)?\s*:\s*(#fff\b|#ffffff\b|white\b)", body, re.I) \
                    and selector.strip() not in allowed:
                offenders.append(f"{sheet.name}: {selector.strip()}")
    assert offenders == []
