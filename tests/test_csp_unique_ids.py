"""No page repeats an element id (issue 21, rough edges).

A page with several forms repeated ``id="csrf_token"`` once per form; a repeated id breaks ``<label for>``,
``aria-describedby`` and htmx targets (the first element wins, silently). The test opens every page of the
URL map that answers GET, as an admin, a coach and an athlete of an organization with rows in every domain
(the cross-tenant crawl's world, tests/crawl_support.py), with the organization's own ids in the URL, and
parses each HTML answer with lxml: every id must be unique in its page.
"""
from __future__ import annotations

import secrets
from collections import Counter

import lxml.html
import pytest

from tests.conftest import Auth
from tests.crawl_support import ROLES, _build, seed_world, values_for
from tests.factories import PASSWORD
from tests.media_support import local_media  # noqa: F401  (fixture)

# Files, not pages.
SKIP_ENDPOINTS = ("static",)


def repeated_ids(html: str) -> list[str]:
    """The ids that appear on more than one element of ``html``, with how often."""
    tree = lxml.html.document_fromstring(html)
    counts = Counter(element.get("id") for element in tree.iter() if element.get("id"))
    return [f"{value} ×{count}" for value, count in counts.items() if count > 1]


def test_the_detector_finds_a_repeated_id():
    page = ('<html><body><form><input id="csrf_token"></form><form><input id="csrf_token"></form>'
            '<p id="one"></p></body></html>')
    assert repeated_ids(page) == ["csrf_token ×2"]


def test_a_page_with_several_forms_has_one_csrf_token_per_form_and_no_repeated_id(app, client, auth):
    """The members page: an invitation form, and one role form and remove form per member."""
    from tests.factories import add_member, make_org, make_user

    with app.test_request_context():
        org = make_org(make_user("ada@example.com", "Ada Admin"), slug="ids", name="Ids Club")
        add_member(org, make_user("maria@example.com", "Maria Santos"), "coach")
        add_member(org, make_user("sam@example.com", "Sam Lee"), "athlete")
    auth.login("ada@example.com")
    html = client.get("/o/ids/admin/members").get_data(as_text=True)
    tree = lxml.html.document_fromstring(html)
    forms = [form for form in tree.iter("form") if form.get("method", "").lower() == "post"]
    assert len(forms) >= 4
    for form in forms:  # every form still carries its token, under the name Flask-WTF reads
        assert len(form.xpath(".//input[@name='csrf_token']")) == 1, lxml.html.tostring(form)[:200]
    assert repeated_ids(html) == []


@pytest.fixture()
def world(app, job_runner, mailbox, local_media, stack, tmp_path):  # noqa: F811
    owner = stack.owner_url.replace("postgresql+psycopg://", "postgresql://")
    return seed_world(app, job_runner, mailbox, tmp_path, slug=f"ids-{secrets.token_hex(3)}", name="Ids Club",
                      label="Ids", owner_url=owner, accent="#0b4fa8", listed=True)


def _paths(app, world) -> list[str]:
    """One URL per GET rule, filled with the world's own first id of each parameter's kind."""
    paths = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in SKIP_ENDPOINTS or "GET" not in rule.methods or "token" in rule.arguments:
            continue
        values = {}
        for name in rule.arguments:
            if name == "slug":
                values[name] = world.slug
                continue
            options = values_for(name, rule._converters[name], world, rule.endpoint)
            if not options:
                break
            values[name] = options[0]
        else:
            with app.app_context():
                paths.append(_build(rule, values))
    return sorted(set(paths))


def test_no_page_repeats_an_id(app, world):
    paths = _paths(app, world)
    problems, checked = [], 0
    for role in ROLES:
        client = app.test_client()
        assert Auth(client).login(world.emails[role], PASSWORD).status_code == 303
        for path in paths:
            response = client.get(path)
            if response.status_code != 200 or response.mimetype != "text/html":
                continue
            checked += 1
            found = repeated_ids(response.get_data(as_text=True))
            if found:
                problems.append(f"{role} GET {path}: {', '.join(found)}")
    assert checked > 100, f"only {checked} pages were checked: the crawl found too few"
    assert not problems, "pages repeat element ids:\n" + "\n".join(problems)
