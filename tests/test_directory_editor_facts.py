"""The profile editor's preview shows the card athletes will see: the facts that come from the coach's offerings and
bookings (price, answer time, sessions delivered) are read from what is saved, with the page and with every live
preview, and a line under the card says where they come from; the live preview stays a fixed, small number of
statements."""
from __future__ import annotations

import lxml.html

from tests.conftest import csrf_from
from tests.directory_support import logged_in, world  # noqa: F401  (world: the fixture)
from tests.querycount import statements_sent

HX = {"HX-Request": "true"}
FORM = {"headline": "Unsaved headline", "bio": "Aim drills.", "languages": ["en"], "years_experience": "6",
        "certifications": "", "tags": "", "location": "", "online": "y", "in_person": "", "listed": "y"}


def preview_facts(html: str) -> dict[str, str]:
    """The preview card's facts, term by description, as a reader sees them."""
    tree = lxml.html.fromstring(html)
    preview = tree.xpath('//*[@id="profile-preview"]') or [tree]
    facts = preview[0].xpath('.//dl[contains(@class, "profile-facts")]')[0]
    return {" ".join(dt.text_content().split()): " ".join(dt.getnext().text_content().split())
            for dt in facts.xpath("./dt")}


def test_the_saved_profile_and_the_live_preview_show_price_and_sessions_delivered(app, world):
    maria = logged_in(app, "maria@example.com")
    page = maria.get("/o/river/profile").get_data(as_text=True)
    facts = preview_facts(page)
    assert facts["Price"] == "€45.00 per session"  # her one offering, Aim review
    assert facts["Sessions delivered"] == "1"  # the session with Ana that ended
    assert "come from your offerings and bookings" in page

    live = maria.post("/o/river/profile/preview", headers=HX, data={"csrf_token": csrf_from(page), **FORM})
    html = live.get_data(as_text=True)
    assert live.status_code == 200 and "<html" not in html
    assert "Unsaved headline" in html and "Preview: not saved yet" in html
    facts = preview_facts(f'<div id="profile-preview">{html}</div>')
    assert facts["Price"] == "€45.00 per session" and facts["Sessions delivered"] == "1"
    assert facts["Experience"] == "6 years"  # the form's value beside the saved facts


def test_staff_editing_a_coachs_profile_read_whose_offerings_the_facts_come_from(app, world):
    page = logged_in(app, "ada@example.com").get(f"/o/river/coaches/{world.jon.id}/profile/edit").get_data(as_text=True)
    assert preview_facts(page)["Price"] == "€80.00 per session"
    assert "come from the coach&#39;s offerings and bookings" in page


def test_the_live_preview_sends_a_fixed_small_number_of_statements(app, world):
    maria = logged_in(app, "maria@example.com")
    token = csrf_from(maria.get("/o/river/profile").get_data(as_text=True))
    with statements_sent(app) as seen:
        for headline in ("One", "One more word"):
            before = len(seen)
            assert maria.post("/o/river/profile/preview", headers=HX,
                              data={"csrf_token": token, **FORM, "headline": headline}).status_code == 200
            sent = len(seen) - before
            # The card's saved facts are three statements (answer time, sessions delivered, prices), on top of
            # the seven a preview sent before: no next free slot is looked for, the card shows none.
            assert 0 < sent <= 10, seen[before:]
