"""Draws the app's PNG icons (``coach/static/icons``) from the same shapes as ``favicon.svg``: a "C" ring with a
gold dot on the brand green. Run it after changing the mark: ``python scripts/make_icons.py``; the PNGs are
committed (the build needs no drawing).

Each icon is drawn four times larger and scaled down, for smooth edges. A maskable icon fills its square (the
platform cuts its own shape) and keeps the mark inside the central safe circle (80 % of the width).
"""
from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw

ICONS = Path(__file__).resolve().parent.parent / "coach" / "static" / "icons"
GREEN, WHITE, GOLD = (31, 111, 92, 255), (255, 255, 255, 255), (245, 192, 74, 255)
SCALE = 4


def draw(size: int, rounded: bool, mark: float = 1.0) -> Image.Image:
    """An icon ``size`` pixels square; ``mark``: the mark's size relative to the SVG's (64-unit) layout."""
    big = size * SCALE
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    pen = ImageDraw.Draw(image)
    unit = big / 64
    if rounded:
        pen.rounded_rectangle((0, 0, big - 1, big - 1), radius=14 * unit, fill=GREEN)
    else:
        pen.rectangle((0, 0, big, big), fill=GREEN)

    def at(value: float) -> float:  # a coordinate of the 64-unit layout, the mark scaled about the centre
        return (32 + (value - 32) * mark) * unit

    radius, width = 15.5, 7 * mark * unit
    box = (at(32 - radius) - width / 2, at(32 - radius) - width / 2,
           at(32 + radius) + width / 2, at(32 + radius) + width / 2)
    # The ring's opening faces right: from 40° to 320° counter-clockwise in PIL's clockwise angles.
    pen.arc(box, start=40, end=320, fill=WHITE, width=round(width))
    for angle in (40, 320):  # round caps, on the ring's centre line
        x, y = at(32 + radius * math.cos(math.radians(angle))), at(32 + radius * math.sin(math.radians(angle)))
        pen.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=WHITE)
    dot = 4.5 * mark * unit
    pen.ellipse((at(45) - dot, at(32) - dot, at(45) + dot, at(32) + dot), fill=GOLD)
    return image.resize((size, size), Image.LANCZOS)


def main() -> None:
    ICONS.mkdir(parents=True, exist_ok=True)
    draw(192, rounded=True).save(ICONS / "icon-192.png", optimize=True)
    draw(512, rounded=True).save(ICONS / "icon-512.png", optimize=True)
    draw(512, rounded=False, mark=0.8).save(ICONS / "icon-maskable-512.png", optimize=True)
    # iOS rounds the corners itself and shows transparency as black: a full square.
    draw(180, rounded=False, mark=0.85).save(ICONS / "apple-touch-icon.png", optimize=True)
    draw(48, rounded=True).save(ICONS / "favicon.ico", sizes=[(16, 16), (32, 32), (48, 48)])


if __name__ == "__main__":
    main()
