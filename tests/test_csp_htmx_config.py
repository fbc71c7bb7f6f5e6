"""The page's htmx configuration keeps swaps inside the Content Security Policy (issue 21).

htmx's settle step copies the attributes listed in ``attributesToSettle`` from each old element onto its
swapped-in twin (same id). With ``style`` in that list (htmx's default), an inline style the page never wrote
(a text box resized by its corner, an extension's styling) was carried into the freshly parsed answer and
refused by ``style-src 'self'`` when the answer joined the page: 11 console violations after one comment. The
browser journey tests/e2e/test_csp_guard.py shows it in Chromium; this test pins the configuration and the
policy on every kind of page, quickly.
"""
from __future__ import annotations

import json

import lxml.html

from tests.factories import add_member, make_org, make_user


def htmx_config(html: str) -> dict:
    (meta,) = lxml.html.document_fromstring(html).xpath("//meta[@name='htmx-config']")
    return json.loads(meta.get("content"))


def test_swaps_never_carry_inline_styles_and_the_policy_stays_strict(app, client, auth):
    with app.test_request_context():
        org = make_org(make_user("ada@example.com", "Ada Admin"), slug="river", name="River Club")
        add_member(org, make_user("sam@example.com", "Sam Lee"), "athlete")
    pages = [client.get("/login")]
    auth.login("sam@example.com")
    pages += [client.get("/o/river/feed"), client.get("/o/river/chat")]
    for response in pages:
        assert response.status_code == 200, response.request.path
        config = htmx_config(response.get_data(as_text=True))
        assert "style" not in config["attributesToSettle"]
        assert set(config["attributesToSettle"]) == {"class", "width", "height"}  # the rest of htmx's default
        assert config["includeIndicatorStyles"] is False  # htmx would add a <style> element of its own
        assert config["allowEval"] is False and config["allowScriptTags"] is False
        policy = response.headers["Content-Security-Policy"]
        assert "style-src 'self';" in policy and "unsafe-inline" not in policy
