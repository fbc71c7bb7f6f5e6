

def screenshots(prefix: str):
    """A ``snap(page, name)`` that saves a full-page screenshot as ``<prefix>-<name>.png`` in
    ``$COACH_SCREENSHOTS`` (``/tmp`` when unset) and returns its path."""
    import os
    from pathlib import Path

    def snap(page, name: str) -> str:
        folder = Path(os.environ.get("COACH_SCREENSHOTS", "/tmp"))
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{prefix}-{name}.png"
        # caret="initial": hiding the caret injects a style element, which the CSP (rightly) reports.
        page.screenshot(path=str(path), full_page=True, caret="initial")
        return str(path)

    return snap


def fill_fields(page, values: dict) -> None:
    """Fill each field (by exact label) and check every value landed where it was typed.

    Now and then, right after a boosted page change, a field's text ended up in the page's autofocus
    field (htmx focuses it as the page settles, and that can come between Playwright's focus and its
    typing). Filling again once the page is still gives each field its value.
    """
    for _ in range(3):
        for label, value in values.items():
            page.get_by_label(label, exact=True).fill(value)
        if all(page.get_by_label(label, exact=True).input_value() == value for label, value in values.items()):
            return
        page.wait_for_timeout(200)
    raise AssertionError(f"the form did not keep {values!r}")


def both_widths(snap, page, name: str) -> None:
    """``snap`` the page at a desktop (1280 px) and a phone (390 px) width as ``<name>-<width>``, then back to 1280."""
    for width, height in ((1280, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        snap(page, f"{name}-{width}")
    page.set_viewport_size({"width": 1280, "height": 900})
