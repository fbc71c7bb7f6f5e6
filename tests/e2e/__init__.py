

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
