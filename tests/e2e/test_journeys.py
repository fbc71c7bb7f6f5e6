"""Browser journeys in Chromium: what a person sees, clicking through the real server.

Set ``COACH_SCREENSHOTS=/some/dir`` to keep a screenshot of each page visited
(for looking at the pages as a user would); nothing is saved otherwise.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e import fill_fields
from tests.factories import PASSWORD, make_org, make_user
from tests.mailbox import Mailbox

pytestmark = pytest.mark.e2e

# Email goes through the outbox, the relay and a worker before it reaches the SMTP server.
MAIL_WAIT = 20.0


def shot(page: Page, name: str) -> None:
    """Save a full-page screenshot when ``COACH_SCREENSHOTS`` names a folder."""
    folder = os.environ.get("COACH_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def watch_csp(page: Page) -> list[str]:
    """Collect console messages about Content Security Policy violations on ``page``."""
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    return violations


def wait_for_htmx(page: Page) -> None:
    page.wait_for_function("() => window.htmx !== undefined")


def log_in(page: Page, email: str, password: str) -> None:
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()


def expect_home(page: Page, first_name: str, role: str, org_name: str) -> None:
    """The organization's home: it greets the member by first name and names their role in the organization."""
    expect(page.get_by_role("heading", level=1)).to_have_text(
        re.compile(rf"^Good (morning|afternoon|evening), {re.escape(first_name)}$"))
    expect(page.get_by_text(f"You are {role} here at {org_name}")).to_be_visible()


def test_owner_signs_up_creates_an_organization_and_a_coach_joins_by_invitation(browser, page, live_server,
                                                                                 mailbox):
    owner_csp = watch_csp(page)

    page.goto(f"{live_server}/")
    expect(page.get_by_role("heading", name="Your club's coaching, in one place")).to_be_visible()
    shot(page, "welcome")

    # Sign up: name, email, password, time zone.
    page.get_by_role("link", name="Create an account").click()
    expect(page.get_by_role("heading", name="Create your Coach account")).to_be_visible()
    shot(page, "signup")
    page.get_by_label("Your name").fill("Olga Owner")
    page.get_by_label("Email", exact=True).fill("Olga@Example.com")
    page.get_by_label("Password", exact=True).fill("owner-password-1")
    page.get_by_label("Time zone").fill("Europe/Berlin")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    expect(page.get_by_text("olga@example.com")).to_be_visible()

    # The confirmation email arrives over SMTP; its link creates the account.
    confirmation = mailbox.wait_for("olga@example.com", timeout=MAIL_WAIT)
    assert confirmation["Subject"] == "Confirm your Coach account"
    page.goto(Mailbox.link(confirmation))
    expect(page.get_by_role("heading", name="Confirm your account")).to_be_visible()
    page.get_by_role("button", name="Confirm and continue").click()
    expect(page.get_by_role("heading", name="Your organizations")).to_be_visible()
    expect(page.get_by_text("Welcome to Coach!")).to_be_visible()
    expect(page.locator("details.menu-account > summary")).to_contain_text("Olga Owner")
    shot(page, "picker-empty")

    # Create the organization; its home greets the admin.
    page.get_by_role("link", name="Create an organization").click()
    expect(page.get_by_role("heading", name="Create an organization")).to_be_visible()
    fill_fields(page, {"Organization name": "Riverside Rowing", "Web address": "riverside"})
    page.get_by_label("Time zone").fill("Europe/Berlin")
    page.get_by_role("button", name="Create organization").click()
    expect(page).to_have_url(f"{live_server}/o/riverside/")
    expect_home(page, "Olga", "admin", "Riverside Rowing")
    expect(page.get_by_text("Riverside Rowing is ready.")).to_be_visible()

    # Members: invite a coach by email.
    page.get_by_role("navigation", name="Main").locator("summary", has_text="More").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Members").click()
    expect(page.get_by_role("heading", name="Members of Riverside Rowing")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("Olga Owner"))).to_be_visible()
    invite = page.locator("#invite")
    invite.get_by_label("Email").fill("carl.coach@example.com")
    invite.get_by_label("Role").select_option("coach")
    invite.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_text("Invitation sent to carl.coach@example.com.")).to_be_visible()
    pending = page.locator("#invitations").get_by_role("listitem").filter(has_text="carl.coach@example.com")
    expect(pending).to_contain_text("Coach")
    shot(page, "members")

    # A different person opens the invitation in a browser of their own.
    invitation = mailbox.wait_for("carl.coach@example.com", timeout=MAIL_WAIT)
    assert "Riverside Rowing" in Mailbox.text(invitation)
    coach_context = browser.new_context()
    try:
        coach = coach_context.new_page()
        coach_csp = watch_csp(coach)
        coach.goto(Mailbox.link(invitation))
        expect(coach.get_by_role("heading", name="Join Riverside Rowing")).to_be_visible()
        expect(coach.get_by_label("Email", exact=True)).to_have_value("carl.coach@example.com")
        shot(coach, "invitation")
        coach.get_by_label("Your name").fill("Carl Coach")
        coach.get_by_label("Password", exact=True).fill("coach-password-1")
        coach.get_by_label("Time zone").fill("America/New_York")
        coach.get_by_role("button", name="Create account and join").click()
        expect(coach.get_by_text("Welcome to Riverside Rowing!")).to_be_visible()
        expect(coach.get_by_text("You are coach here")).to_be_visible()

        # Log out, then back in: a member of one organization lands on its home; the picker is in the account menu.
        coach.locator("details.menu-account > summary").click()
        coach.get_by_role("button", name="Log out").click()
        expect(coach.get_by_role("heading", name="Log in")).to_be_visible()
        expect(coach.get_by_text("You are logged out.")).to_be_visible()
        log_in(coach, "carl.coach@example.com", "coach-password-1")
        expect(coach).to_have_url(f"{live_server}/o/riverside/")
        expect_home(coach, "Carl", "coach", "Riverside Rowing")
        coach.locator("details.menu-account > summary").click()
        coach.get_by_role("link", name="Switch organization").click()
        expect(coach.get_by_role("heading", name="Your organizations")).to_be_visible()
        expect(coach.get_by_role("listitem").filter(has_text="Riverside Rowing")).to_contain_text("Coach")
        shot(coach, "picker")
        coach.get_by_role("link", name="Riverside Rowing").first.click()
        expect_home(coach, "Carl", "coach", "Riverside Rowing")
        # A coach's home: the walkthrough to get ready and the coach's blocks (no admin queue).
        expect(coach.get_by_role("region", name="Get ready to coach")).to_be_visible()
        expect(coach.get_by_role("region", name="Requests waiting")).to_contain_text("No requests waiting.")
        expect(coach.get_by_role("region", name="Today and tomorrow")).to_be_visible()
        # A coach does not administer members (not even under More).
        coach.get_by_role("navigation", name="Main").locator("summary", has_text="More").click()
        expect(coach.get_by_role("link", name="Billing")).to_be_visible()
        expect(coach.get_by_role("link", name="Members")).to_have_count(0)
        shot(coach, "org-home")

        # Another organization's address is simply not found.
        response = coach.goto(f"{live_server}/o/nope/")
        assert response.status == 404
        expect(coach.get_by_role("heading", name="Not found")).to_be_visible()
        shot(coach, "not-found")
        assert coach_csp == []
    finally:
        coach_context.close()

    # The owner sees the coach as a member now.
    page.reload()
    expect(page.get_by_role("row", name=re.compile("Carl Coach"))).to_be_visible()
    expect(page.locator("#invitations").get_by_text("No pending invitations.")).to_be_visible()
    shot(page, "members-with-coach")
    assert owner_csp == []


@pytest.fixture()
def no_js_page(browser):
    context = browser.new_context(java_script_enabled=False)
    yield context.new_page()
    context.close()


def test_forms_work_without_javascript(no_js_page, live_server, ctx):
    page = no_js_page
    user = make_user("nina@example.com", "Nina Nojs")
    make_org(user, slug="quiet-club", name="Quiet Club")

    page.goto(f"{live_server}/login")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        log_in(page, "nina@example.com", "not-my-password")
    assert posted.value.status == 422
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.get_by_text("Email or password is not correct.")).to_be_visible()
    expect(page.get_by_label("Email", exact=True)).to_have_value("nina@example.com")
    expect(page.get_by_label("Password", exact=True)).to_have_value("")
    shot(page, "login-error-nojs")

    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        log_in(page, "nina@example.com", PASSWORD)
    assert posted.value.status == 303
    # A member of one organization lands on its home; the picker is in the account menu (a <details>, no script).
    assert posted.value.header_value("Location").endswith("/o/quiet-club/")
    expect_home(page, "Nina", "admin", "Quiet Club")
    page.locator("details.menu-account > summary").click()
    page.get_by_role("link", name="Switch organization").click()
    expect(page.get_by_role("heading", name="Your organizations")).to_be_visible()
    expect(page.get_by_role("link", name="Quiet Club")).to_be_visible()

    page.get_by_role("link", name="Create an organization").click()
    fill_fields(page, {"Organization name": "", "Web address": "Not A Slug!"})
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Create organization").click()
    assert posted.value.status == 422
    expect(page.get_by_role("heading", name="Create an organization")).to_be_visible()
    expect(page.get_by_text("Enter a name.")).to_be_visible()
    expect(page.get_by_label("Web address")).to_have_value("Not A Slug!")

    fill_fields(page, {"Organization name": "Second Club", "Web address": "quiet-club"})
    page.get_by_role("button", name="Create organization").click()
    expect(page.get_by_text("This address is taken. Choose another.")).to_be_visible()

    page.get_by_label("Web address").fill("second-club")
    page.get_by_role("button", name="Create organization").click()
    expect(page).to_have_url(f"{live_server}/o/second-club/")
    expect_home(page, "Nina", "admin", "Second Club")


def test_htmx_swaps_form_errors_in_place_without_csp_violations(page, live_server, ctx):
    user = make_user("hana@example.com", "Hana Htmx")
    make_org(user, slug="swift-club", name="Swift Club")
    violations = watch_csp(page)

    page.goto(f"{live_server}/login")
    wait_for_htmx(page)
    page.evaluate("window.__marker = 1")

    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        log_in(page, "hana@example.com", "not-my-password")
    assert posted.value.status == 422
    assert posted.value.request.header_value("HX-Request") == "true"
    expect(page.get_by_text("Email or password is not correct.")).to_be_visible()
    # Only the form was swapped: same document, one layout, one form.
    assert page.evaluate("window.__marker") == 1
    expect(page.locator("header.topbar")).to_have_count(1)
    expect(page.locator("form#login-form")).to_have_count(1)
    expect(page.get_by_label("Email", exact=True)).to_have_value("hana@example.com")
    shot(page, "login-error")

    # A successful htmx POST answers 204 + HX-Redirect: a full navigation.
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        log_in(page, "hana@example.com", PASSWORD)
    assert posted.value.status == 204
    assert posted.value.header_value("HX-Redirect").endswith("/o/swift-club/")
    expect_home(page, "Hana", "admin", "Swift Club")
    assert page.evaluate("window.__marker") is None

    # Boosted links keep working and the org pages load without CSP complaints.
    page.get_by_role("navigation", name="Main").locator("summary", has_text="More").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Members").click()
    expect(page.get_by_role("heading", name="Members of Swift Club")).to_be_visible()

    invite = page.locator("#invite")
    invite.get_by_label("Email").fill("not-an-email")
    page.evaluate("window.__marker = 2")
    invite.get_by_role("button", name="Send invitation").click()
    expect(page.locator("#invite").get_by_text("Enter a valid email address.")).to_be_visible()
    assert page.evaluate("window.__marker") == 2
    expect(page.get_by_role("heading", name="Members of Swift Club")).to_have_count(1)
    shot(page, "members-invite-error")

    assert violations == []
