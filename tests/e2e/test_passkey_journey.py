"""Passkeys in Chromium with a virtual authenticator (CDP ``WebAuthn``): a member logs in with their password, adds a
passkey on the security page, logs out, signs in with the passkey button alone, and the sessions page says the
session signed in with a passkey. Then the passkey confirms their identity before a sensitive change.

The browser opens the live server as ``http://localhost:<port>``: WebAuthn needs a secure context and a domain as
its relying party id, and Chromium refuses an IP address (127.0.0.1) for it, while localhost is both.

Screenshots go to ``$COACH_SCREENSHOTS`` (``/tmp`` when unset) as ``passkeys-*.png``.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import update

from coach.accounts.models import UserSession
from coach.clock import now
from coach.extensions import db
from tests.e2e import screenshots
from tests.e2e.test_journeys import expect_home, log_in, wait_for_htmx, watch_csp
from tests.factories import PASSWORD, make_org, make_user

pytestmark = pytest.mark.e2e

snap = screenshots("passkeys")


def virtual_authenticator(page: Page) -> tuple:
    """A platform authenticator in this page's browser that holds discoverable credentials and verifies the
    user (as a phone's fingerprint reader would), answering without a prompt."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
        "isUserVerified": True, "automaticPresenceSimulation": True}})
    return cdp, added["authenticatorId"]


@pytest.fixture()
def member(ctx):
    user = make_user("pat@example.com", "Pat Passkey")
    make_org(user, slug="passkey-club", name="Passkey Club")
    return user


def test_member_adds_a_passkey_and_signs_in_with_it_alone(page: Page, live_server, member):
    base = live_server.replace("127.0.0.1", "localhost")
    csp = watch_csp(page)
    cdp, authenticator = virtual_authenticator(page)

    page.goto(f"{base}/login")
    wait_for_htmx(page)
    log_in(page, "pat@example.com", PASSWORD)
    expect_home(page, "Pat", "admin", "Passkey Club")  # one organization: sign-in lands on its home

    # The security page's passkeys section: the script reveals the button (WebAuthn works here).
    page.goto(f"{base}/account/security")
    section = page.locator("#passkeys")
    expect(section.get_by_text("You have no passkey yet.")).to_be_visible()
    expect(section.get_by_text("needs a browser that supports passkeys")).to_be_hidden()
    section.get_by_label("Name for the new passkey").fill("Pat's phone")
    snap(page, "security-before")
    section.get_by_role("button", name="Add a passkey").click()
    expect(page.get_by_text("Passkey \u201cPat's phone\u201d added")).to_be_visible()
    expect(page.locator("#passkeys").get_by_text("Pat's phone", exact=True)).to_be_visible()
    expect(page.locator("#passkeys").get_by_text("not used yet")).to_be_visible()
    snap(page, "security-added")
    page.set_viewport_size({"width": 390, "height": 844})
    page.locator("#passkeys").get_by_text("Rename", exact=True).click()
    snap(page, "security-rename-390")
    page.get_by_label("New name for Pat's phone").fill("Pat's Pixel")
    page.get_by_role("button", name="Save name").click()
    expect(page.get_by_text("Passkey renamed.")).to_be_visible()
    expect(page.locator("#passkeys").get_by_text("Pat's Pixel", exact=True)).to_be_visible()
    page.set_viewport_size({"width": 1280, "height": 720})
    credentials = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
    assert len(credentials) == 1 and credentials[0]["isResidentCredential"]

    # Log out, then sign in with the passkey alone: no email, no password.
    page.locator("details.menu-account > summary").click()
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    snap(page, "login")
    page.set_viewport_size({"width": 390, "height": 844})
    snap(page, "login-390")
    page.set_viewport_size({"width": 1280, "height": 720})
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect_home(page, "Pat", "admin", "Passkey Club")  # one organization: sign-in lands on its home
    expect(page.locator("details.menu-account > summary")).to_contain_text("Pat Passkey")

    # The sessions page tells how this session signed in.
    page.goto(f"{base}/account/sessions")
    expect(page.locator(".current .how")).to_have_text(re.compile("passkey", re.IGNORECASE))
    page.goto(f"{base}/account/security")
    expect(page.locator("#passkeys").get_by_text("last used")).to_be_visible()
    assert csp == []


@pytest.mark.allow_console("the removed passkey's sign-in is refused on purpose (the verify call answers 403)",
                           r"status of 403 .*/login/passkey/verify")
def test_passkey_confirms_identity_and_a_removed_one_no_longer_signs_in(page: Page, live_server, member):
    base = live_server.replace("127.0.0.1", "localhost")
    virtual_authenticator(page)
    page.goto(f"{base}/login")
    wait_for_htmx(page)
    log_in(page, "pat@example.com", PASSWORD)
    expect_home(page, "Pat", "admin", "Passkey Club")  # one organization: sign-in lands on its home
    page.goto(f"{base}/account/security")
    page.locator("#passkeys").get_by_role("button", name="Add a passkey").click()
    expect(page.locator("#passkeys").get_by_text("not used yet")).to_be_visible()

    # Ten minutes later, removing the passkey asks who is there; the passkey answers.
    db.session.execute(update(UserSession).where(UserSession.user_id == member.id)
                       .values(reauthenticated_at=now().replace(year=2020)))
    db.session.commit()
    page.locator("#passkeys").get_by_role("button", name="Remove").click()
    expect(page.get_by_role("heading", name="Confirm it is you")).to_be_visible()
    snap(page, "confirm")
    page.get_by_role("button", name="Confirm with a passkey").click()
    expect(page.get_by_role("heading", name="Security", exact=True)).to_be_visible()
    page.locator("#passkeys").get_by_role("button", name="Remove").click()
    expect(page.get_by_text("Passkey removed.")).to_be_visible()
    expect(page.locator("#passkeys").get_by_text("You have no passkey yet.")).to_be_visible()

    # The authenticator still holds the credential, but it no longer signs in: a clear message, no sign-in.
    page.locator("details.menu-account > summary").click()
    page.get_by_role("button", name="Log out").click()
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page.locator("[data-passkey-status]")).to_contain_text("not registered with Coach")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
