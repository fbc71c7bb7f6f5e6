"""tools/screenshots.py, the docs' screenshot script, against the test server: a member's home page and the
public /coaches page at a phone's and a laptop's width, light and dark, as small viewport-sized PNGs."""
from __future__ import annotations

import pytest
from PIL import Image, ImageStat

from coach import tenancy
from tests.factories import PASSWORD, add_member, make_org, make_user
from tools import screenshots

pytestmark = pytest.mark.e2e


@pytest.fixture()
def world(ctx):
    org = make_org(make_user("ines@example.com", "Ines Admin"), slug="quayside", name="Quayside Rowing")
    add_member(org, make_user("otto@example.com", "Otto Oar"), "athlete")
    tenancy.activate(org.id)
    return org


def brightness(path) -> float:
    return ImageStat.Stat(Image.open(path).convert("L")).mean[0]


def test_the_script_takes_each_page_at_both_widths_in_light_and_dark(browser, live_server, world, tmp_path):
    shots = screenshots.default_shots("quayside", {"athlete": "otto@example.com"})
    assert [s.name for s in shots] == ["home-athlete", "coaches"]

    written = screenshots.capture(browser, live_server, tmp_path, shots, password=PASSWORD)

    names = sorted(p.name for p in written)
    assert names == sorted(f"{page}-{width}-{scheme}.png" for page in ("home-athlete", "coaches")
                           for width in ("390", "1280") for scheme in ("light", "dark"))
    for path in written:
        with Image.open(path) as image:
            width = int(path.stem.split("-")[-2])
            assert image.size == {390: (390, 844), 1280: (1280, 800)}[width], path.name  # the viewport only
            assert image.mode == "P"  # a palette PNG
        assert path.stat().st_size < 150_000, path.name
    for stem in ("home-athlete-390", "home-athlete-1280", "coaches-1280"):
        # The dark scheme is the browser's preference, and the pages follow it.
        assert brightness(tmp_path / f"{stem}-dark.png") < brightness(tmp_path / f"{stem}-light.png") - 40, stem

