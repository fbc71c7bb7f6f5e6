"""The upload intent in Chromium when its answer is lost on the way: media.js asks again with the same
Idempotency-Key, the server answers with the first plan, and one upload makes one item.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Route, expect

from tests.e2e.test_booking_journey import open_org
from tests.e2e.test_media_journey import ITEM_URL, choose_and_upload, club, open_media  # noqa: F401  (fixture)
from tests.media_flow import pdf_bytes

pytestmark = pytest.mark.e2e

INTENT_URL = re.compile(r"/o/river/media/uploads$")


@pytest.mark.allow_console("the test cuts the first answer's connection on purpose",
                           r"net::ERR_CONNECTION_RESET \(.*/media/uploads\)$")
def test_a_lost_intent_answer_is_asked_again_with_the_same_key_and_makes_one_item(page, live_server, club,  # noqa: F811
                                                                                   owner_db, tmp_path):
    plan = tmp_path / "plan.pdf"
    plan.write_bytes(pdf_bytes())
    open_org(page, live_server, "river", "maria@example.com")
    open_media(page)
    keys: list[str | None] = []

    def lose_the_first_answer(route: Route) -> None:
        keys.append(route.request.headers.get("idempotency-key"))
        if len(keys) == 1:
            answer = route.fetch()  # the server starts the upload and answers...
            assert answer.status == 201
            route.abort("connectionreset")  # ...but the page never hears it
        else:
            route.continue_()

    page.route(INTENT_URL, lose_the_first_answer)
    choose_and_upload(page, plan, title="Season plan")

    expect(page).to_have_url(ITEM_URL, timeout=30_000)
    expect(page.get_by_role("heading", name="Season plan")).to_be_visible()
    assert len(keys) == 2 and keys[0] == keys[1], keys
    assert re.fullmatch(r"[0-9a-f]{32}", keys[0])
    org = club[0]
    owner_db.execute("SELECT set_config('app.tenant_id', %s, false)", (str(org.id),))
    assert owner_db.execute("SELECT count(*) FROM media_items").fetchone()[0] == 1
