"""axe-core finds no serious or critical WCAG 2.1 A/AA problem on the visitor's pages and the athlete's main pages of
the demo organization, at 1280x800 and 390x844, light and dark (tests/a11y_support.py says how). The coach's, the
scheduler's and the admin's pages are swept in test_accessibility_staff.py (two files: xdist spreads them)."""
from __future__ import annotations

import pytest

from tests.a11y_support import World, log_in, pages_for, report, seed, sweep, visitor_pages

pytestmark = pytest.mark.e2e


@pytest.fixture()
def world(app, job_runner) -> World:
    return seed(app, job_runner)


def test_visitor_and_athlete_pages_have_no_serious_accessibility_problems(page, live_server, world):
    """The visitor's pages, then the athlete's: one seed of the demo for both (a sweep only opens pages)."""
    problems = [f"visitor: {problem}" for problem in sweep(page, live_server, visitor_pages(world))]
    log_in(page, live_server, "athlete")
    problems += [f"athlete: {problem}" for problem in sweep(page, live_server, pages_for("athlete", world))]
    assert not problems, report(problems)
