"""A member exports their data in Chromium, as issue 18's "Done when" says: the button, the progress bar while the
worker makes the ZIP (the line polls itself and stops once ready), the download, the emailed link, the ZIP's
contents checked; an admin's organization page. Screenshots (1280 and 390 px) go to ``$COACH_SCREENSHOTS`` (``/tmp``
when unset) as ``privacy-*.png``."""
from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
from playwright.sync_api import Page, expect

from coach.blueprints.templating import _nav_for
from tests.e2e import screenshots
from tests.e2e.test_journeys import log_in, watch_csp
from tests.factories import PASSWORD
from tests.test_rls import two_orgs  # noqa: F401  (fixture: organizations A and B with a row in every table)

pytestmark = pytest.mark.e2e

snap = screenshots("privacy")


def shoot(page: Page, name: str) -> None:
    for width, height in ((1280, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        snap(page, f"{name}-{width}")
    page.set_viewport_size({"width": 1280, "height": 900})


def test_a_member_exports_their_data_with_a_progress_bar_and_an_emailed_link(page, live_server, two_orgs,
                                                                              job_runner, mailbox):
    csp = watch_csp(page)
    page.goto(f"{live_server}/login?next=/account/privacy")
    log_in(page, "a-athlete@example.com", PASSWORD)
    expect(page).to_have_url(f"{live_server}/account/privacy")
    expect(page.get_by_role("heading", name="Export my data")).to_be_visible()
    shoot(page, "account-empty")

    with job_runner.paused():
        page.get_by_role("button", name="Export my data").click()
        expect(page.locator("#exports progress")).to_be_visible()
        expect(page.locator("#exports .report-stage")).to_contain_text("Waiting for a worker")
        expect(page.locator(".flash")).to_contain_text("We will email you the link")
        shoot(page, "account-building")
    download = page.locator("#exports").get_by_role("link", name=re.compile("Download ZIP"))
    expect(download).to_be_visible(timeout=60_000)  # the line polled itself to "ready"
    expect(page.locator("#exports progress")).to_have_count(0)
    shoot(page, "account-ready")

    response = page.request.get(f"{live_server}{download.get_attribute('href')}")
    assert response.ok
    archive = zipfile.ZipFile(io.BytesIO(response.body()))
    assert "organizations/org-a/spaces.json" in archive.namelist()
    comments = json.loads(archive.read("organizations/org-a/spaces.json"))["comments"]
    assert [c["body_source"] for c in comments] == ["A comment"]

    email = mailbox.wait_for("a-athlete@example.com", timeout=20)
    link = re.search(r"https?://\S+/account/privacy/exports/\S+/download\?token=\S+", mailbox.text(email))
    assert link and "What is inside" in mailbox.text(email)
    again = page.request.get(link.group(0))
    assert again.ok and again.body()[:2] == b"PK"
    assert csp == []


def test_an_admin_sees_the_organization_export_page(page, live_server, two_orgs):
    # The fixture rendered org-a's navigation inside a test request context (host "localhost"), and the nav's
    # links are cached per organization, not per host: the chat socket's would point at ws://localhost. Start clean
    # (the cache's key is reported to the lead in /tmp/brief18/requests.md).
    _nav_for.cache_clear()
    csp = watch_csp(page)
    page.goto(f"{live_server}/login?next=/o/org-a/admin/members")
    log_in(page, "a-admin@example.com", PASSWORD)
    page.get_by_role("link", name="Privacy").click()
    expect(page.get_by_role("heading", name="Export the organization")).to_be_visible()
    shoot(page, "organization")
    assert csp == []
