"""A boosted navigation (hx-boost swaps the body) brings the new page's head along: a page with its own
stylesheet is styled after a click, not only after a full load (htmx's head-support extension)."""
from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.booking_support import BookingWorld
from tests.e2e.test_journeys import log_in, watch_csp
from tests.factories import PASSWORD

pytestmark = pytest.mark.e2e

STYLESHEETS = "() => Array.from(document.styleSheets).map(s => s.href || '')"


def test_a_boosted_click_loads_the_stylesheet_of_the_page_it_opens(ctx, page: Page, live_server: str):
    world = BookingWorld()
    slug = world.org.slug
    violations = watch_csp(page)
    page.goto(f"{live_server}/login?next=/o/{slug}/")
    log_in(page, world.coach.user.email, PASSWORD)
    expect(page).to_have_url(f"{live_server}/o/{slug}/")
    page.wait_for_function("() => window.htmx !== undefined")
    assert not any("payments" in href for href in page.evaluate(STYLESHEETS))

    # A boosted link to the coach's earnings page (which links payments.css from its head), clicked like any.
    page.evaluate("""slug => {
        const link = document.createElement('a');
        link.href = `/o/${slug}/billing/earnings`;
        link.textContent = 'Earnings';
        link.id = 'to-earnings';
        document.querySelector('main').append(link);
        htmx.process(link);
    }""", slug)
    with page.expect_response(lambda r: "/billing/earnings" in r.url and r.request.headers.get("hx-boosted")):
        page.click("#to-earnings")
    expect(page).to_have_url(f"{live_server}/o/{slug}/billing/earnings")
    page.wait_for_function("() => Array.from(document.styleSheets).some(s => (s.href || '').includes('/payments'))")
    # The site's own stylesheet is still there, once.
    sheets = page.evaluate(STYLESHEETS)
    assert sum("/css/app" in href for href in sheets) == 1, sheets
    assert not violations
