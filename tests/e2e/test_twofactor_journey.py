"""In Chromium: a member turns on two-factor with the key shown on the page, signs in with password and code,
uses a recovery code once (the second use is refused); an organization that requires two-factor sends its coach to
set-up. Set ``COACH_SCREENSHOTS=/some/dir`` to keep screenshots (at 390 and 1280 px)."""
from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import Page, expect

from coach.extensions import db
from tests.e2e.test_journeys import expect_home
from tests.factories import PASSWORD, add_member, make_org, make_user

pytestmark = pytest.mark.e2e


def shot(page: Page, name: str) -> None:
    folder = os.environ.get("COACH_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        for width in (390, 1280):
            page.set_viewport_size({"width": width, "height": 900})
            # caret="initial": hiding the caret injects a <style>, which the CSP refuses (a console error).
            page.screenshot(path=str(Path(folder) / f"{name}-{width}.png"), full_page=True, caret="initial")
        page.set_viewport_size({"width": 1280, "height": 900})


def watch_csp(page: Page) -> list[str]:
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    return violations


def log_in(page: Page, live_server: str, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{live_server}/login")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()


def log_out(page: Page) -> None:
    page.locator("details.menu-account > summary").click()
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_text("You are logged out.")).to_be_visible()


def sign_in_with_recovery_code(page: Page, live_server: str, email: str, code: str) -> None:
    log_in(page, live_server, email)
    page.get_by_role("link", name="Use a recovery code instead").click()
    page.get_by_label("Recovery code").fill(code)
    page.get_by_role("button", name="Sign in").click()


def next_code(totp: pyotp.TOTP, used: set[int]) -> str:
    """A code of a step the server has not accepted yet (each step works once, and none older than the last).
    When this step was used, the next step's code: the server takes a step either side of now (a phone's clock
    30 s off), so the test need not wait up to 30 s for the clock."""
    step = max(totp.timecode(datetime.now(timezone.utc)), max(used, default=-1) + 1)
    used.add(step)
    return totp.generate_otp(step)


@pytest.fixture()
def club(ctx):
    """River Club: Ada admin, Cora coach, Mia member (athlete)."""
    org = make_org(make_user("ada@example.com", "Ada Admin"), slug="river", name="River Club")
    add_member(org, make_user("cora@example.com", "Cora Coach"), "coach")
    add_member(org, make_user("mia@example.com", "Mia Member"), "athlete")
    return org


def test_member_turns_on_two_factor_signs_in_with_a_code_and_a_recovery_code_once(page, live_server, club):
    violations = watch_csp(page)
    log_in(page, live_server, "mia@example.com")
    expect_home(page, "Mia", "athlete", "River Club")  # one organization: sign-in lands on its home

    # Set up: the key is on the page (the QR code next to it), a code from the "app" confirms it.
    page.locator("details.menu-account > summary").click()
    page.get_by_role("link", name="Security").click()
    page.get_by_role("link", name="Set up two-factor").click()
    expect(page.get_by_role("heading", name="Two-factor authentication", exact=True)).to_be_visible()
    expect(page.get_by_role("img", name="QR code for your authenticator app")).to_be_visible()
    shot(page, "twofactor-setup")
    totp = pyotp.TOTP(page.locator("#manual-key").inner_text().replace(" ", ""))
    used: set[int] = set()  # the steps whose codes were sent
    page.get_by_label("Code from your authenticator app").fill(next_code(totp, used))
    page.get_by_role("button", name="Turn on two-factor").click()

    # Ten recovery codes, shown once, with a download.
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    expect(page.get_by_text("Two-factor authentication is on.")).to_be_visible()
    codes = [c.strip() for c in page.locator("ol.recovery-codes code").all_inner_texts()]
    assert len(codes) == 10
    with page.expect_download() as download:
        page.get_by_role("link", name="Download as a text file").click()
    assert download.value.suggested_filename == "coach-recovery-codes.txt"
    assert codes[0] in Path(download.value.path()).read_text()
    shot(page, "twofactor-codes")
    page.get_by_role("link", name="I have saved them").click()
    expect(page.get_by_text("10 of 10 recovery codes left")).to_be_visible()
    shot(page, "security-two-factor-on")

    # Log out; the password alone now leads to the code.
    log_out(page)
    log_in(page, live_server, "mia@example.com")
    expect(page.get_by_role("heading", name="Two-factor authentication")).to_be_visible()
    shot(page, "twofactor-verify")
    page.get_by_label("Code from your authenticator app").fill("000000" if totp.now() != "000000" else "111111")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_text("That code is not correct.")).to_be_visible()
    page.get_by_label("Code from your authenticator app").fill(next_code(totp, used))
    page.get_by_role("button", name="Verify").click()
    expect_home(page, "Mia", "athlete", "River Club")  # one organization: sign-in lands on its home

    # A recovery code instead of the app: once.
    log_out(page)
    sign_in_with_recovery_code(page, live_server, "mia@example.com", codes[0])
    expect(page.get_by_text("Recovery code used: 9 left.")).to_be_visible()

    log_out(page)
    sign_in_with_recovery_code(page, live_server, "mia@example.com", codes[0])
    expect(page.get_by_text("That recovery code is not correct or was already used.")).to_be_visible()
    shot(page, "twofactor-recovery-refused")
    assert violations == []


def test_admin_requires_two_factor_and_a_coach_is_sent_to_set_up(page, live_server, club):
    # The settings page is another part's: the requirement is switched on in the database here.
    club.require_two_factor = True
    db.session.commit()

    log_in(page, live_server, "cora@example.com")

    expect(page.get_by_role("heading", name="Two-factor authentication", exact=True)).to_be_visible()
    expect(page.get_by_text("River Club requires two-factor authentication")).to_be_visible()
    shot(page, "twofactor-required")
    page.goto(f"{live_server}/o/river/")
    expect(page.get_by_text("River Club requires two-factor authentication")).to_be_visible()

    totp = pyotp.TOTP(page.locator("#manual-key").inner_text().replace(" ", ""))
    page.get_by_label("Code from your authenticator app").fill(totp.now())
    page.get_by_role("button", name="Turn on two-factor").click()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    page.goto(f"{live_server}/o/river/")
    expect(page.get_by_text("River Club requires two-factor authentication")).to_have_count(0)
    assert "/o/river/" in page.url
