"""Screenshots of Coach for the docs: every role's home page and the public /coaches page.

    make run                                    # in one terminal: the demo on http://127.0.0.1:5000
    .venv/bin/python tools/screenshots.py       # in another: writes docs/screenshots/*.png

Each page is taken at a phone's viewport (390×844) and a laptop's (1280×800), in the light and the dark colour
scheme (the browser's ``prefers-color-scheme``), viewport only, as palette PNGs (small enough for a git
repository; the pages are flat colours and text). The home pages are those of the demo's admin, coach, athlete
and scheduler (all with the demo password); the home's blocks load after the page, so a shot waits until the
network is quiet and no htmx request is in flight.

It needs Chromium: Playwright's own (``python -m playwright install chromium``) or the system's
(``/usr/bin/chromium``, found by itself). ``--base-url`` points it at another server (a deployed demo);
``--only`` takes a part of the file names (``--only home-coach``).
"""
from __future__ import annotations

import argparse
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VIEWPORTS = {"390": (390, 844), "1280": (1280, 800)}
SCHEMES = ("light", "dark")
DEMO_PASSWORD = "coach-demo-2026"
DEMO_ORG = "northside"
DEMO_LOGINS = {
    "admin": "admin@northside.example",
    "coach": "maria.coach@northside.example",
    "athlete": "sam@northside.example",
    "scheduler": "scheduler@northside.example",
}
# htmx marks the element whose request is in flight with this class (a home block loading its content).
PENDING = ".htmx-request"


@dataclass(frozen=True)
class Shot:
    """One picture: ``name`` (the file's stem), the page's path, who is logged in (None: a visitor)."""

    name: str
    path: str
    email: str | None = None


def default_shots(org: str = DEMO_ORG, logins: dict[str, str] | None = None) -> list[Shot]:
    logins = DEMO_LOGINS if logins is None else logins
    shots = [Shot(f"home-{role}", f"/o/{org}/", email) for role, email in logins.items()]
    return [*shots, Shot("coaches", "/coaches")]


def chromium_path() -> str:
    """Playwright's own Chromium if installed, else the system's. Named explicitly: left to itself, a headless
    launch looks for Playwright's separate headless shell, which may be missing where the browser is not."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        own = p.chromium.executable_path
    if own and os.path.exists(own):
        return own
    for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if os.path.exists(candidate):
            return candidate
    raise SystemExit("No Chromium: `apt-get install chromium` or `python -m playwright install chromium`.")


def log_in(browser, base_url: str, email: str, password: str) -> dict:
    """Log in once and return the session (cookies) for the contexts of every size and scheme."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{base_url}/login")
        page.get_by_label("Email", exact=True).fill(email)
        page.get_by_label("Password", exact=True).fill(password)
        with page.expect_navigation():  # the form posts and the page that answers replaces it
            page.get_by_role("button", name="Log in").click()
        page.wait_for_load_state("networkidle")
        if "/login" in page.url:
            raise SystemExit(f"Could not log in as {email} on {base_url} (is it the demo? `make run` seeds it).")
        return context.storage_state()
    finally:
        context.close()


def settle(page, timeout_ms: int = 15000) -> None:
    """Wait until the page's lazily loaded blocks are in: the network is quiet and htmx has nothing in flight."""
    page.wait_for_load_state("networkidle")
    try:
        page.wait_for_function(f"() => !document.querySelector({PENDING!r})", timeout=timeout_ms)
    except Exception:  # a block that never loads is itself worth seeing: take the picture anyway
        print(f"  (still loading after {timeout_ms} ms: {page.url})", file=sys.stderr)
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(300)  # fonts and the last swap's settle


def compress(png: bytes) -> bytes:
    """A palette PNG (256 colours, optimised): a third of the size or less for flat UI, no visible loss."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    out = io.BytesIO()
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        out, format="PNG", optimize=True)
    return out.getvalue()


def capture(browser, base_url: str, out: Path, shots: list[Shot], *, password: str = DEMO_PASSWORD,
            viewports: dict[str, tuple[int, int]] = VIEWPORTS, schemes=SCHEMES) -> list[Path]:
    """Take every shot at every viewport and scheme into ``out``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    sessions: dict[str, dict] = {}
    written = []
    for shot in shots:
        state = None
        if shot.email:
            if shot.email not in sessions:
                sessions[shot.email] = log_in(browser, base_url, shot.email, password)
            state = sessions[shot.email]
        for label, (width, height) in viewports.items():
            for scheme in schemes:
                context = browser.new_context(viewport={"width": width, "height": height}, color_scheme=scheme,
                                              storage_state=state, device_scale_factor=1,
                                              reduced_motion="reduce")
                try:
                    page = context.new_page()
                    response = page.goto(f"{base_url}{shot.path}")
                    if response is None or response.status >= 400:
                        status = response.status if response else "no response"
                        raise SystemExit(f"{shot.path} answered {status} for {shot.email or 'a visitor'}")
                    settle(page)
                    # caret="initial": the default hides the caret with an injected <style>, which our CSP refuses.
                    png = page.screenshot(full_page=False, animations="disabled", caret="initial")
                finally:
                    context.close()
                path = out / f"{shot.name}-{label}-{scheme}.png"
                path.write_bytes(compress(png))
                written.append(path)
                print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}  "
                      f"{path.stat().st_size // 1024} KB", flush=True)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Screenshots of the demo's pages for docs/screenshots/.")
    parser.add_argument("--base-url", default=os.environ.get("APP_BASE_URL", "http://127.0.0.1:5000"))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--org", default=DEMO_ORG, help="the organization's slug (default: the demo's)")
    parser.add_argument("--password", default=DEMO_PASSWORD)
    parser.add_argument("--only", default="", help="only the shots whose name contains this")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    shots = [shot for shot in default_shots(args.org) if args.only in shot.name]
    executable = chromium_path()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        try:
            capture(browser, args.base_url.rstrip("/"), args.out, shots, password=args.password)
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
