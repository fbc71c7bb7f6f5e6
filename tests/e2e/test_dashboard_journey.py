"""In Chromium: an admin opens the dashboard from the navigation and reads a chart's table; a platform admin
opens the operators' console from the account menu. Both pages are screenshotted at 1280 and 390 px wide
(``$COACH_SCREENSHOTS``, ``/tmp`` when unset: ``insights-*.png``) and fit a phone's width."""
from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e import screenshots
from tests.e2e.test_journeys import log_in, watch_csp
from tests.factories import PASSWORD, make_user
from tests.test_governance_dashboard import Club, seed, seen

pytestmark = pytest.mark.e2e

snap = screenshots("insights")


@pytest.fixture()
def world(ctx):
    from coach import clock
    from datetime import timedelta

    rival = Club("rival", "Rival Rowing", "Rival")
    seed(rival, "Rival")
    harbour = Club("harbour", "Harbour Rowing", "Harbour")
    seed(harbour, "Harbour")
    seen(harbour.abe.user_id, clock.now() - timedelta(days=2))
    make_user("olga@ops.example", "Olga Operator")
    return harbour


def fits_width(page: Page) -> bool:
    """Nothing sticks out sideways (a wide table scrolls inside its own box)."""
    wide = page.evaluate("""() => [...document.querySelectorAll('body *')]
        .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest('.console-table-wrap, .chart'))
        .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).slice(0, 5)""")
    assert not wide, wide
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_admin_reads_the_dashboard_and_an_operator_the_console(app, page, live_server, world):
    csp = watch_csp(page)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server}/login?next=/o/harbour/")
    log_in(page, "admin@harbour.example", PASSWORD)
    expect(page).to_have_url(f"{live_server}/o/harbour/")

    page.get_by_role("navigation", name="Main").locator("summary", has_text="More").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()
    expect(page.get_by_role("img", name="Bookings made, sessions delivered and bookings cancelled per week")) \
        .to_be_visible()
    coaches = page.locator("#coaches-chart")
    coaches.get_by_text("Show the data").click()
    expect(coaches.get_by_role("row", name="Cora Harbour 2")).to_be_visible()
    snap(page, "dashboard-1280")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(page.get_by_role("img", name="Members at the end of each week")).to_be_visible()
    assert fits_width(page)
    snap(page, "dashboard-390")

    assert app.test_cli_runner().invoke(args=["platform-admin", "grant", "olga@ops.example"]).exit_code == 0
    page.context.clear_cookies()
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server}/login")
    log_in(page, "olga@ops.example", PASSWORD)
    page.locator("details.menu-account > summary").click()
    page.get_by_role("link", name="Platform").click()
    expect(page.get_by_role("heading", name="Operators' console")).to_be_visible()
    expect(page.locator("#org-harbour")).to_contain_text("Harbour Rowing")
    expect(page.locator("#org-rival")).to_contain_text("Rival Rowing")
    snap(page, "console-1280")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    snap(page, "console-390")
    assert fits_width(page)
    assert csp == []
