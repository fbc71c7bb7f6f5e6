"""axe-core finds no serious or critical WCAG 2.1 A/AA problem on the coach's, the scheduler's and the admin's main
pages of the demo organization, at 1280x800 and 390x844, light and dark (tests/a11y_support.py says how)."""
from __future__ import annotations

import pytest

from tests.a11y_support import World, log_in, pages_for, report, seed, sweep

pytestmark = pytest.mark.e2e


@pytest.fixture()
def world(app, job_runner) -> World:
    return seed(app, job_runner)


def test_staff_pages_have_no_serious_accessibility_problems(page, live_server, world):
    """The three roles in one test: the demo is seeded once for them (a seed, with the video's processing, costs
    a fifth of a role's sweep), and a sweep only opens pages, so each role finds the demo much as seeded."""
    problems: list[str] = []
    for role in ("coach", "scheduler", "admin"):
        page.context.clear_cookies()  # the next role signs in afresh
        log_in(page, live_server, role)
        problems += [f"{role}: {problem}" for problem in sweep(page, live_server, pages_for(role, world))]
    assert not problems, report(problems)
