"""Idempotency keys beyond creating: schedule changes, booking actions, reactions, moderation, media edits and
the upload intent. A double click or a retry with the key the rendered form (or media.js) sent changes
things once and gets the first answer again.

The replays post exactly what the page's form carries (its CSRF token and its key), twice. Every page these
tests open is also checked: each form on it that posts to a protected route carries a key of its own.
"""
from __future__ import annotations

import html
import re
import uuid
from zoneinfo import ZoneInfo
from html.parser import HTMLParser

import pytest
from werkzeug.exceptions import HTTPException

from coach import tenancy
from coach.booking import series as booking_series
from coach.booking import service as booking
from coach.extensions import db
from coach.orgs.service import membership_for
from coach.platform.idempotency import FORM_FIELD
from coach.progress import programs
from coach.progress.days import local_today, monday_of
from coach.progress.models import ProgressReport
from coach.spaces import service as spaces
from tests.booking_support import BookingWorld
from tests.calendar_rows import seed_calendar_rows
from tests.conftest import Auth
from tests.factories import add_member, make_org, make_user
from tests.media_flow import PDF, MediaWorld, page_token, pdf_bytes
from tests.media_flow import media_storage  # noqa: F401  (fixture)
from tests.room_support import RoomWorld
from tests.test_progress_programs import build_program
from tests.test_progress_programs import make_world as make_progress_world

HX = {"HX-Request": "true"}
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
BLUEPRINTS = {"booking", "spaces", "media", "admin", "notifications", "notification_links", "orgs",
              "progress", "privacy", "org_privacy", "operator", "booking_links", "rooms",
              "directory", "directory_public"}
# The blueprint ``accounts`` (sign-in, profile, two-factor, passkeys, sessions, email change) is left out on
# purpose: its routes act on the signed-in person outside any organization, each is logged in their security
# log, and the unauthenticated ones have no user to own a key. ``privacy`` (/account/privacy) is
# account-level too but keyed: an export or a deletion asked twice must not be made twice.

# Unsafe routes of these blueprints left without a key, and why. Chat (messages deduplicated by client_id) is
# another blueprint's.
LEFT_AS_IS = {
    "booking.feed_regenerate": "each click means a new secret address; a replay would keep that secret in the "
                               "key's stored answer for 72 hours, and the last answer shown is the valid one",
    "media.finalize": "idempotent by design: a second finalize finds the item past uploading and changes nothing",
    "notifications.mark_one": "marking read again changes nothing and answers with the same row",
    "notifications.preferences": "saves the same settings again (an upsert, no audit) and answers the same",
    "notification_links.unsubscribe_now": "anonymous one-click link (no user to own a key); repeating changes "
                                          "nothing",
    "orgs.invitation_signup": "anonymous (no user to own a key yet); the second try finds the invitation used",
    "booking_links.cancel_now": "no-login email link (no member to own a key): the link is spent once, in the "
                                "cancel's own transaction, so a repeat finds it used (410)",
    "booking_links.reschedule_now": "no-login email link (no member to own a key): the link is spent once, in "
                                    "the move's own transaction, so a repeat finds it used (410)",
    # Issue 20: the room's recorder (static/js/recorder.js) and the coach's notes, sent by scripts many times a
    # minute; each is a repeatable write by design (the room's end, the consent, start and stop take keys).
    "rooms.recording_part": "JSON from the recorder: asks a signed URL for part n; asked again it answers the same "
                            "part's URL (parts go in order, the server refuses any other number)",
    "rooms.recording_part_done": "JSON from the recorder: part n is stored; told again, the counts are read "
                                 "again from what storage holds, the same",
    "rooms.recording_alive": "JSON sign of life every few seconds: it only moves the recording's last-seen time",
    "rooms.notes": "the notes autosave on every pause in typing: saving the same text twice leaves the same notes, "
                   "and a fresh key per keystroke pause would be a key per request",
    # Issue 22: the profile editor's live preview (htmx on every pause in typing, and the no-JS Preview button)
    # renders what it is sent and writes nothing; the public booking page's sign-up is anonymous. Joining from the
    # directory (directory_public.join) takes a key.
    "directory.preview_own": "the live preview renders the form it is sent and writes nothing (no row, no event)",
    "directory.preview_profile": "the staff's live preview renders the form it is sent and writes nothing",
    "directory_public.book": "anonymous sign-up on the booking page (no user to own a key), as /signup: a repeat "
                             "sends one more confirmation email within the per-address email limit, and only the "
                             "link opened first makes the account",
}


# --- helpers ---------------------------------------------------------------------------------------

class _Forms(HTMLParser):
    """Every form of a page: its method, action and the named inputs it sends."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[dict] = []
        self._open: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self._open = {"method": (attrs.get("method") or "get").upper(), "action": attrs.get("action") or "",
                          "fields": {}, "keys": 0}
            self.forms.append(self._open)
        elif tag == "input" and self._open is not None and attrs.get("name"):
            if attrs["name"] == FORM_FIELD:
                self._open["keys"] += 1
            if attrs.get("type") in ("hidden", None, "text", "number") or attrs["name"] == FORM_FIELD:
                self._open["fields"].setdefault(attrs["name"], attrs.get("value") or "")

    def handle_endtag(self, tag):
        if tag == "form":
            self._open = None


def forms_of(page: str) -> list[dict]:
    parser = _Forms()
    parser.feed(page)
    return parser.forms


def endpoint_of(app, action: str, method: str = "POST") -> str | None:
    try:
        return app.url_map.bind("localhost").match(action.split("?")[0].split("#")[0], method=method)[0]
    except HTTPException:
        return None


def protected(app, endpoint: str | None) -> bool:
    return bool(endpoint) and getattr(app.view_functions[endpoint], "idempotent", False)


def check_keys(app, page: str, where: str) -> list[dict]:
    """Every form on ``page`` that posts to a protected route carries exactly one key, each its own."""
    forms = [f for f in forms_of(page) if f["method"] == "POST"]
    keys = []
    for form in forms:
        if protected(app, endpoint_of(app, form["action"])):
            assert form["keys"] == 1, f"{where}: the form to {form['action']} carries no idempotency key"
            keys.append(form["fields"][FORM_FIELD])
    assert len(keys) == len(set(keys)), f"{where}: two forms share a key"
    return forms


def form_at(app, browser, path: str, action: str, headers: dict | None = None) -> dict:
    """The fields the form posting to ``action`` carries on the page at ``path`` (its token and its key)."""
    page = browser.get(path, headers=headers or {}).get_data(as_text=True)
    forms = check_keys(app, page, path)
    matching = [f for f in forms if html.unescape(f["action"]) == action]
    assert matching, f"{path} has no form posting to {action}"
    fields = matching[0]["fields"]
    assert fields.get(FORM_FIELD), f"the form to {action} on {path} carries no idempotency key"
    return dict(fields)


def browser_of(app, email: str):
    browser = app.test_client()
    assert Auth(browser).login(email).status_code == 303
    return browser


def body(response) -> str:
    return response.get_data(as_text=True)


def assert_replayed(first, second) -> None:
    """The second answer is the first's, marked as a replay."""
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert second.status_code == first.status_code
    for header in ("Location", "HX-Redirect", "HX-Location", "HX-Trigger"):
        assert second.headers.get(header) == first.headers.get(header), header
    assert second.get_data() == first.get_data()


def see(owner_db, org) -> None:
    owner_db.execute("SELECT set_config('app.tenant_id', %s, false)", (str(org.id),))


def count(owner_db, org, sql: str, *params) -> int:
    see(owner_db, org)
    return owner_db.execute(sql, params).fetchone()[0]


def audits(owner_db, org, action: str) -> int:
    return count(owner_db, org, "SELECT count(*) FROM audit_events WHERE action = %s", action)


# --- every unsafe route is protected or has a reason ---------------------------------------------------

def test_every_unsafe_route_of_these_blueprints_takes_a_key_or_says_why_not(app):
    unprotected = []
    for rule in app.url_map.iter_rules():
        if not (rule.methods or set()) & UNSAFE or rule.endpoint.split(".")[0] not in BLUEPRINTS:
            continue
        if not protected(app, rule.endpoint) and rule.endpoint not in LEFT_AS_IS:
            unprotected.append(f"{rule.rule} ({rule.endpoint})")
    assert unprotected == []
    for endpoint in LEFT_AS_IS:  # the list stays true: no stale names, nothing listed that is protected now
        assert endpoint in app.view_functions and not protected(app, endpoint), endpoint


# --- booking -------------------------------------------------------------------------------------------

@pytest.fixture()
def bw(ctx):
    return BookingWorld()


@pytest.fixture()
def carla(app, bw):
    return browser_of(app, bw.coach.user.email)


def schedule_path(bw) -> str:
    return f"/o/{bw.org.slug}/coaches/{bw.coach.id}/schedule"


@pytest.mark.parametrize("headers", [HX, {}], ids=["htmx", "plain"])
def test_weekly_hours_added_twice_with_the_same_key_make_one_rule(app, bw, carla, owner_db, headers):
    action = f"/o/{bw.org.slug}/coaches/{bw.coach.id}/schedule/rules"
    fields = {**form_at(app, carla, schedule_path(bw), action), "weekday": "0", "start": "18:00", "end": "20:00"}
    before = count(owner_db, bw.org, "SELECT count(*) FROM availability_rules WHERE weekday = 0")

    first = carla.post(action, data=fields, headers=headers)
    second = carla.post(action, data=fields, headers=headers)

    assert first.status_code == (200 if headers else 303)
    assert_replayed(first, second)
    assert "18:00–20:00" in body(first) if headers else first.headers["Location"] == schedule_path(bw)
    assert "overlap" not in body(second)
    assert count(owner_db, bw.org, "SELECT count(*) FROM availability_rules WHERE weekday = 0") == before + 1
    assert audits(owner_db, bw.org, "availability.rule_added") == 7 + 1  # the world's seven days, then this one


def test_the_swapped_hours_carry_fresh_keys_so_the_next_change_is_not_a_replay(app, bw, carla, owner_db):
    action = f"/o/{bw.org.slug}/coaches/{bw.coach.id}/schedule/rules"
    fields = {**form_at(app, carla, schedule_path(bw), action), "weekday": "1", "start": "18:00", "end": "19:00"}
    first = carla.post(action, data=fields, headers=HX)
    again = [f for f in check_keys(app, body(first), "the hours fragment") if f["action"] == action][0]["fields"]

    assert again[FORM_FIELD] != fields[FORM_FIELD]
    more = carla.post(action, data={**fields, **again, "start": "19:00", "end": "20:00"}, headers=HX)

    assert more.status_code == 200 and "Idempotent-Replayed" not in more.headers
    assert count(owner_db, bw.org, "SELECT count(*) FROM availability_rules WHERE weekday = 1") == 3


def test_time_off_added_twice_with_the_same_key_is_one_block(app, bw, carla, owner_db):
    action = f"/o/{bw.org.slug}/coaches/{bw.coach.id}/schedule/time-off"
    fields = {**form_at(app, carla, schedule_path(bw), action), "starts": "2031-03-02T09:00",
              "ends": "2031-03-02T12:00", "reason": "Dentist"}

    first = carla.post(action, data=fields, headers=HX)
    second = carla.post(action, data=fields, headers=HX)

    assert first.status_code == 200
    assert_replayed(first, second)
    assert count(owner_db, bw.org, "SELECT count(*) FROM time_off") == 1


def test_removing_hours_twice_answers_the_same_instead_of_a_404(app, bw, carla, owner_db):
    tenancy.activate(bw.org.id)
    rule = booking.weekly_rules(bw.coach)[2][0]
    action = f"/o/{bw.org.slug}/coaches/{bw.coach.id}/schedule/rules/{rule.id}/delete"
    fields = form_at(app, carla, schedule_path(bw), action)

    first = carla.post(action, data=fields, headers=HX)
    second = carla.post(action, data=fields, headers=HX)

    assert first.status_code == 200
    assert_replayed(first, second)
    assert audits(owner_db, bw.org, "availability.rule_removed") == 1


def test_archiving_an_offering_twice_is_one_change(app, bw, carla, owner_db):
    action = f"/o/{bw.org.slug}/offerings/{bw.offering.id}/archive"
    fields = form_at(app, carla, schedule_path(bw), action)

    first = carla.post(action, data=fields)
    second = carla.post(action, data=fields)

    assert first.status_code == 303
    assert_replayed(first, second)
    assert audits(owner_db, bw.org, "offering.archived") == 1


def test_a_booking_confirmed_twice_answers_the_same(app, bw, carla, owner_db):
    tenancy.activate(bw.org.id)
    made = booking.request_booking(bw.offering, bw.athlete, bw.first_slot().starts_at, "", bw.athlete)
    db.session.commit()
    action = f"/o/{bw.org.slug}/bookings/{made.id}/confirm"
    fields = form_at(app, carla, f"/o/{bw.org.slug}/bookings", action)

    first = carla.post(action, data=fields, headers=HX)
    second = carla.post(action, data=fields, headers=HX)

    assert first.status_code == 200 and "Confirmed" in body(first)
    assert_replayed(first, second)  # not a 409 "can no longer be confirmed"
    see(owner_db, bw.org)
    assert owner_db.execute("SELECT status FROM bookings WHERE id = %s", (made.id,)).fetchone()[0] == "confirmed"


# --- spaces --------------------------------------------------------------------------------------------

class River:
    """River Club: Maria (coach) hosts the open space Tennis; Sam, Bea and Cal are members; Sam wrote a post that
    Bea and Cal commented on."""

    def __init__(self):
        ada = make_user("ada@example.com", "Ada Admin")
        self.org = make_org(ada, slug="river", name="River Club")
        tenancy.activate(self.org.id)
        self.admin = membership_for(self.org, ada)
        self.maria = add_member(self.org, make_user("maria@example.com", "Maria Santos"), "coach")
        self.sam = add_member(self.org, make_user("sam@example.com", "Sam Lee"), "athlete")
        self.bea = add_member(self.org, make_user("bea@example.com", "Bea Berg"), "athlete")
        self.cal = add_member(self.org, make_user("cal@example.com", "Cal Cruz"), "athlete")
        tenancy.activate(self.org.id)
        self.tennis = spaces.create_space(self.org, self.maria, "Tennis", "", "open")
        for member in (self.sam, self.bea, self.cal):
            spaces.join(self.tennis, member)
        self.post = spaces.create_post(self.tennis, self.sam, "Serve practice at 6")
        self.rude = spaces.add_comment(self.post, self.bea, "Rude words")
        self.kind = spaces.add_comment(self.post, self.cal, "See you there")
        db.session.commit()


@pytest.fixture()
def river(ctx):
    return River()


def reactions(owner_db, river) -> int:
    return count(owner_db, river.org, "SELECT count(*) FROM reactions WHERE post_id = %s", river.post.id)


def test_a_double_clicked_reaction_stays_on_and_answers_the_same(app, river, owner_db):
    bea = browser_of(app, "bea@example.com")
    action = f"/o/river/posts/{river.post.id}/react/like"
    fields = form_at(app, bea, f"/o/river/posts/{river.post.id}", action)

    first = bea.post(action, data=fields, headers=HX)
    second = bea.post(action, data=fields, headers=HX)

    assert first.status_code == 200 and 'aria-pressed="true"' in body(first)
    assert_replayed(first, second)
    assert reactions(owner_db, river) == 1

    # The swapped bar carries fresh keys: clicking again on purpose takes the reaction back.
    bar = [f for f in check_keys(app, body(first), "the reaction bar") if f["action"] == action][0]["fields"]
    off = bea.post(action, data={**fields, **bar}, headers=HX)
    assert off.status_code == 200 and "Idempotent-Replayed" not in off.headers
    assert reactions(owner_db, river) == 0


def test_a_reaction_from_the_feed_without_javascript_replays_its_redirect(app, river, owner_db):
    bea = browser_of(app, "bea@example.com")
    action = f"/o/river/posts/{river.post.id}/react/celebrate"
    fields = form_at(app, bea, f"/o/river/spaces/{river.tennis.id}", action)

    first = bea.post(action, data=fields)
    second = bea.post(action, data=fields)

    assert first.status_code == 303
    assert_replayed(first, second)
    assert reactions(owner_db, river) == 1


def test_removing_flagged_content_twice_counts_it_off_once(app, river, owner_db):
    tenancy.activate(river.org.id)
    spaces.flag(river.rude, river.cal, "Rude")
    db.session.commit()
    maria = browser_of(app, "maria@example.com")
    action = f"/o/river/moderation/comments/{river.rude.id}/remove"
    fields = form_at(app, maria, "/o/river/moderation", action)

    first = maria.post(action, data=fields)
    second = maria.post(action, data=fields)

    assert first.status_code == 303 and first.headers["Location"] == "/o/river/moderation"
    assert_replayed(first, second)
    assert count(owner_db, river.org, "SELECT comment_count FROM posts WHERE id = %s", river.post.id) == 1
    assert audits(owner_db, river.org, "comment.removed") == 1


def test_a_post_deleted_twice_answers_the_same_instead_of_a_404(app, river, owner_db):
    sam = browser_of(app, "sam@example.com")
    action = f"/o/river/posts/{river.post.id}/delete"
    fields = form_at(app, sam, f"/o/river/posts/{river.post.id}", action)

    first = sam.post(action, data=fields)
    second = sam.post(action, data=fields)

    assert first.status_code == 303
    assert_replayed(first, second)


def test_a_double_submitted_flag_thanks_once(app, river, owner_db):
    cal = browser_of(app, "cal@example.com")
    action = f"/o/river/comments/{river.rude.id}/flag"
    fields = {**form_at(app, cal, action, action), "reason": "Rude"}

    first = cal.post(action, data=fields)
    second = cal.post(action, data=fields)

    assert first.status_code == 303
    assert_replayed(first, second)  # not "You have flagged this already"
    assert count(owner_db, river.org, "SELECT count(*) FROM flags") == 1


def test_the_pages_of_spaces_give_every_protected_form_its_own_key(app, river):
    maria = browser_of(app, "maria@example.com")
    for path in ("/o/river/spaces", f"/o/river/spaces/{river.tennis.id}", f"/o/river/posts/{river.post.id}",
                 f"/o/river/spaces/{river.tennis.id}/members", "/o/river/moderation", "/o/river/feed"):
        response = maria.get(path)
        assert response.status_code == 200, path
        check_keys(app, body(response), path)
    sam = browser_of(app, "sam@example.com")
    for path in (f"/o/river/posts/{river.post.id}/edit", f"/o/river/comments/{river.kind.id}/flag"):
        response = sam.get(path)
        assert response.status_code == 200, path
        check_keys(app, body(response), path)


# --- media ---------------------------------------------------------------------------------------------

@pytest.fixture()
def lake(ctx, app, media_storage):  # noqa: F811
    return MediaWorld(app)


def intent_headers(browser, key: str | None) -> dict:
    headers = {"X-CSRFToken": page_token(browser, "lake"), "Accept": "application/json"}
    return headers | ({"Idempotency-Key": key} if key else {})


INTENT = {"filename": "plan.pdf", "size": 4096, "content_type": PDF, "title": "Plan", "audience": "staff"}


def test_an_upload_intent_retried_with_its_key_gets_the_same_plan_and_makes_one_item(lake, owner_db):
    ana = lake.browser(lake.ana)
    headers = intent_headers(ana, uuid.uuid4().hex)

    first = ana.post("/o/lake/media/uploads", json=INTENT, headers=headers)
    second = ana.post("/o/lake/media/uploads", json=INTENT, headers=headers)

    assert first.status_code == 201
    assert_replayed(first, second)
    assert second.get_json()["finalize_url"] == first.get_json()["finalize_url"]
    assert count(owner_db, lake.org, "SELECT count(*) FROM media_items") == 1


def test_the_same_upload_key_with_another_file_is_refused_in_json(lake, owner_db):
    ana = lake.browser(lake.ana)
    headers = intent_headers(ana, uuid.uuid4().hex)
    assert ana.post("/o/lake/media/uploads", json=INTENT, headers=headers).status_code == 201

    other = ana.post("/o/lake/media/uploads", json={**INTENT, "filename": "other.pdf"}, headers=headers)

    assert other.status_code == 422
    assert "already used for a different request" in other.get_json()["error"]
    assert count(owner_db, lake.org, "SELECT count(*) FROM media_items") == 1


def test_upload_intents_without_a_key_or_with_new_keys_each_make_an_item(lake, owner_db):
    ana = lake.browser(lake.ana)
    for key in (None, None, uuid.uuid4().hex, uuid.uuid4().hex):
        assert ana.post("/o/lake/media/uploads", json=INTENT, headers=intent_headers(ana, key)).status_code == 201
    assert count(owner_db, lake.org, "SELECT count(*) FROM media_items") == 4


def test_a_malformed_upload_key_is_a_json_400(lake, owner_db):
    ana = lake.browser(lake.ana)
    response = ana.post("/o/lake/media/uploads", json=INTENT, headers=intent_headers(ana, "bad key"))
    assert response.status_code == 400 and "malformed" in response.get_json()["error"]
    assert count(owner_db, lake.org, "SELECT count(*) FROM media_items") == 0


def test_media_deleted_twice_answers_the_same_instead_of_a_404(app, lake, owner_db):
    item = lake.uploaded(lake.ana, pdf_bytes(), PDF, filename="plan.pdf")
    ana = lake.browser(lake.ana)
    action = f"/o/lake/media/{item.id}/delete"
    fields = form_at(app, ana, f"/o/lake/media/{item.id}", action)

    first = ana.post(action, data=fields)
    second = ana.post(action, data=fields)

    assert first.status_code == 303 and first.headers["Location"] == "/o/lake/media"
    assert_replayed(first, second)


def test_media_details_saved_twice_answer_the_same(app, lake):
    item = lake.uploaded(lake.ana, pdf_bytes(), PDF, filename="plan.pdf")
    ana = lake.browser(lake.ana)
    action = f"/o/lake/media/{item.id}"
    fields = {**form_at(app, ana, action, action), "title": "Season plan", "audience": "organization"}

    first = ana.post(action, data=fields, headers=HX)
    second = ana.post(action, data=fields, headers=HX)

    assert first.status_code == 204 and first.headers["HX-Redirect"] == action
    assert_replayed(first, second)
    assert lake.fresh(item).title == "Season plan"


# --- organization admin and notifications ----------------------------------------------------------------

@pytest.fixture()
def harbour(ctx):
    ada = make_user("ada@example.com", "Ada Admin")
    org = make_org(ada, slug="harbour", name="Harbour Rowing")
    jo = add_member(org, make_user("jo@example.com", "Jo Rower"), "athlete")
    return org, jo


def test_a_member_removed_twice_answers_the_same_instead_of_a_404(app, harbour, owner_db):
    org, jo = harbour
    ada = browser_of(app, "ada@example.com")
    action = f"/o/harbour/admin/members/{jo.id}/remove"
    fields = form_at(app, ada, "/o/harbour/admin/members", action)

    first = ada.post(action, data=fields)
    second = ada.post(action, data=fields)

    assert first.status_code == 303
    assert_replayed(first, second)
    assert audits(owner_db, org, "member.removed") == 1


def test_admin_and_notification_pages_give_every_protected_form_its_own_key(app, harbour):
    ada = browser_of(app, "ada@example.com")
    for path in ("/o/harbour/admin/members", "/o/harbour/admin/system", "/o/harbour/notifications"):
        response = ada.get(path)
        assert response.status_code == 200, path
        check_keys(app, body(response), path)



def test_settings_branding_and_privacy_pages_give_every_protected_form_its_own_key(app, harbour):
    ada = browser_of(app, "ada@example.com")
    for path in ("/o/harbour/admin/settings", "/o/harbour/admin/branding", "/o/harbour/privacy", "/account/privacy"):
        response = ada.get(path)
        assert response.status_code == 200, path
        forms = check_keys(app, body(response), path)
        assert any(protected(app, endpoint_of(app, f["action"])) for f in forms if f["method"] == "POST"), path


@pytest.mark.parametrize("page, action, table", [
    ("/account/privacy", "/account/privacy/exports", "account_exports"),
    ("/o/harbour/privacy", "/o/harbour/privacy/exports", "org_exports"),
], ids=["account", "organization"])
def test_an_export_asked_for_twice_with_the_same_key_is_one_export(app, harbour, owner_db, page, action, table):
    org, _ = harbour
    ada = browser_of(app, "ada@example.com")
    fields = form_at(app, ada, page, action)

    first = ada.post(action, data=fields)
    second = ada.post(action, data=fields)

    assert first.status_code == 303, body(first)
    assert_replayed(first, second)  # not "your export is being made already"
    assert count(owner_db, org, f"SELECT count(*) FROM {table}") == 1


# --- athlete development -----------------------------------------------------------------------------------

@pytest.fixture()
def gym(ctx):
    """Cora (coach) built "Base block" (Monday "Legs", Wednesday "Engine") and assigned it to Ali from this week's
    Monday; Ali logged Monday's "Legs"."""
    w = make_progress_world()
    w.program = build_program(w)
    [w.assignment] = programs.assign(w.coach, w.program, [str(w.athlete.id)],
                                     start=monday_of(local_today(w.athlete)).isoformat())
    db.session.commit()
    w.legs = next(s.workout for s in programs.schedule(w.athlete, w.assignment.start_date, w.assignment.start_date)
                  if s.workout.title == "Legs")
    w.log = programs.log_workout(w.athlete, w.assignment.id, w.legs.id, {"status": "done"})
    db.session.commit()
    w.base = f"/o/{w.org.slug}/progress"
    return w


@pytest.mark.parametrize("headers", [HX, {}], ids=["htmx", "plain"])
def test_a_coach_note_submitted_twice_with_the_same_key_is_one_note(app, gym, owner_db, headers):
    cora = browser_of(app, gym.coach_user.email)
    page = f"{gym.base}/athletes/{gym.athlete.id}"
    action = f"{page}/notes"
    fields = {**form_at(app, cora, page, action), "body": "Knee sore again"}

    first = cora.post(action, data=fields, headers=headers)
    second = cora.post(action, data=fields, headers=headers)

    assert first.status_code == (200 if headers else 303)
    assert_replayed(first, second)
    assert count(owner_db, gym.org, "SELECT count(*) FROM coach_notes WHERE body_md = %s", "Knee sore again") == 1
    if headers:  # the swapped notes block carries a fresh key: the next note is not a replay
        again = [f for f in check_keys(app, body(first), "the notes block") if f["action"] == action][0]["fields"]
        assert again[FORM_FIELD] != fields[FORM_FIELD]
        more = cora.post(action, data={**fields, **again, "body": "Better today"}, headers=HX)
        assert more.status_code == 200 and "Idempotent-Replayed" not in more.headers
        assert count(owner_db, gym.org, "SELECT count(*) FROM coach_notes") == 2


def test_a_workout_comment_submitted_twice_is_one_comment(app, gym, owner_db):
    cora = browser_of(app, gym.coach_user.email)
    page = f"{gym.base}/workouts/logs/{gym.log.id}"
    action = f"{page}/comments"
    fields = {**form_at(app, cora, page, action), "body": "Strong session"}

    first = cora.post(action, data=fields)
    second = cora.post(action, data=fields)

    assert first.status_code == 303
    assert_replayed(first, second)
    assert count(owner_db, gym.org, "SELECT count(*) FROM workout_comments WHERE log_id = %s", gym.log.id) == 1


@pytest.mark.parametrize("headers", [HX, {}], ids=["htmx", "plain"])
def test_a_report_requested_twice_is_one_report(app, gym, owner_db, headers):
    cora = browser_of(app, gym.coach_user.email)
    page = f"{gym.base}/athletes/{gym.athlete.id}/reports"
    today = local_today(gym.athlete)
    fields = {**form_at(app, cora, page, page), "period_start": (today.replace(day=1)).isoformat(),
              "period_end": today.isoformat()}

    first = cora.post(page, data=fields, headers=headers)
    second = cora.post(page, data=fields, headers=headers)

    assert first.status_code in ((200, 204) if headers else (303,)), body(first)
    assert_replayed(first, second)
    assert count(owner_db, gym.org, "SELECT count(*) FROM progress_reports") == 1


def test_the_pages_of_athlete_development_give_every_protected_form_its_own_key(app, gym):
    tenancy.activate(gym.org.id)
    today = local_today(gym.athlete)
    db.session.add(ProgressReport(tenant_id=gym.org.id, athlete_membership_id=gym.athlete.id,
                                  requested_by_membership_id=gym.coach.id, period_start=today.replace(day=1),
                                  period_end=today, status="failed", progress=40, error="The worker stopped."))
    db.session.commit()
    b, athlete = gym.base, gym.athlete.id
    cora = browser_of(app, gym.coach_user.email)
    for path in (f"{b}/athletes/{athlete}", f"{b}/programs/{gym.program.id}", f"{b}/programs",
                 f"{b}/programs/{gym.program.id}/assign", f"{b}/exercises", f"{b}/exercises/{gym.squat.id}",
                 f"{b}/workouts/logs/{gym.log.id}", f"{b}/athletes/{athlete}/reports"):
        response = cora.get(path)
        assert response.status_code == 200, path
        forms = check_keys(app, body(response), path)
        assert any(protected(app, endpoint_of(app, f["action"])) for f in forms if f["method"] == "POST"), path
    ali = browser_of(app, gym.athlete_user.email)
    for path in (f"{b}/workouts/{gym.assignment.id}/{gym.legs.id}", f"{b}/workouts/logs/{gym.log.id}",
                 f"{b}/athletes/{athlete}/reports", f"{b}/athletes/{athlete}", b):
        response = ali.get(path)
        assert response.status_code == 200, path
        check_keys(app, body(response), path)
    # The builder's workout swapped in place by htmx carries fresh keys of its own.
    action = f"{b}/programs/{gym.program.id}/workouts/{gym.legs.id}/lines"
    fields = {**form_at(app, cora, f"{b}/programs/{gym.program.id}", action), "exercise_id": str(gym.squat.id),
              "sets": "2", "reps": "5"}
    first = cora.post(action, data=fields, headers=HX)
    second = cora.post(action, data=fields, headers=HX)
    assert first.status_code == 200
    assert_replayed(first, second)
    again = [f for f in check_keys(app, body(first), "the swapped workout") if f["action"] == action][0]["fields"]
    assert again[FORM_FIELD] != fields[FORM_FIELD]
    tenancy.activate(gym.org.id)
    assert len(programs.builder(gym.program).lines[gym.legs.id]) == 3  # squat, row, and the squat added once


def test_the_pages_of_calendars_series_and_waitlists_give_every_protected_form_its_own_key(app, ctx):
    """Issue 19: the calendars page (connect, choose, sync, disconnect), a series (its page's cancels, the plan's and
    the move's confirmations), the week's 12/24-hour toggle, a waitlist (join, leave) and the sessions page's places."""
    from tests.test_booking_waitlist import GroupWorld

    world = GroupWorld()
    tenancy.activate(world.org.id)
    seed_calendar_rows(world.org, world.coach, world.athlete, world.offering, world.bookings[0])
    first = world.first_slot(10).starts_at
    series = booking_series.book(world.offering, world.waiting[2], first, 1, 3, None,
                                 booking_series.plan(world.offering, world.waiting[2], first, 1, 3).digest, world.coach)
    db.session.commit()
    world.line_up(world.waiting[0])
    later = world.first_slot(20).starts_at.astimezone(ZoneInfo("Europe/Berlin"))
    b, weekday = f"/o/{world.org.slug}", (first.astimezone(ZoneInfo("Europe/Berlin")).weekday() + 1) % 7
    waitlist_page = f"{b}/sessions/{world.session_id}/waitlist"
    pages = {
        world.coach: [f"{b}/coaches/{world.coach.id}/calendars", f"{b}/series/{series.id}",
                      f"{b}/series/{series.id}/move?start=2&weekday={weekday}&time=11:00",
                      f"{b}/offerings/{world.offering.id}/series?athlete={world.waiting[1].id}"
                      f"&first_date={later:%Y-%m-%d}&first_time={later:%H:%M}&every=1&ends=count&count=2"],
        world.waiting[1]: [waitlist_page, f"{b}/offerings/{world.offering.id}"],
        world.waiting[0]: [waitlist_page, f"{b}/bookings"],
    }
    for member, paths in pages.items():
        browser = browser_of(app, member.user.email)
        for path in paths:
            response = browser.get(path)
            assert response.status_code == 200, path
            forms = check_keys(app, body(response), path)
            if path.endswith("/bookings"):  # a place in line is listed (its buttons come with an offered seat)
                assert "in line" in body(response), path
                continue
            assert any(protected(app, endpoint_of(app, html.unescape(f["action"]))) for f in forms
                       if f["method"] == "POST"), f"{path} has no protected form: the check tests nothing"



# --- rooms (issue 20) ----------------------------------------------------------------------------------

@pytest.fixture()
def rw(ctx):
    world = RoomWorld()
    world.other_club()
    return world


@pytest.mark.parametrize("headers", [HX, {}], ids=["htmx", "plain"])
def test_ending_a_room_twice_with_the_same_key_ends_it_once(app, rw, owner_db, headers):
    """A double click on "End the session for everyone": one end, one audit event, the same answer."""
    maria = browser_of(app, rw.maria.user.email)
    room, action = rw.room_path(rw.one), rw.room_path(rw.one) + "/end"
    fields = form_at(app, maria, room, action)
    first = maria.post(action, data=fields, headers=headers)
    second = maria.post(action, data=fields, headers=headers)
    assert first.status_code in (204, 303), first.status_code  # htmx: 204 with HX-Redirect back to the room
    assert_replayed(first, second)
    assert audits(owner_db, rw.org, "room.ended") == 1
    assert count(owner_db, rw.org, "SELECT count(*) FROM session_rooms WHERE ended_at IS NOT NULL") == 1


@pytest.mark.parametrize("headers", [HX, {}], ids=["htmx", "plain"])
def test_agreeing_to_be_recorded_twice_with_the_same_key_is_one_consent(app, rw, owner_db, headers):
    ana = browser_of(app, rw.ana.user.email)
    room, action = rw.room_path(rw.one), rw.room_path(rw.one) + "/consent"
    fields = form_at(app, ana, room, action)
    assert fields["given"] == "1"
    first = ana.post(action, data=fields, headers=headers)
    second = ana.post(action, data=fields, headers=headers)
    assert first.status_code in (200, 303), first.status_code
    assert_replayed(first, second)
    assert count(owner_db, rw.org, "SELECT count(*) FROM room_consents WHERE membership_id = %s", rw.ana.id) == 1
    # The form the answer shows is the withdrawal, with a key of its own.
    page = body(ana.get(room))
    assert form_at(app, ana, room, action)["given"] == "0" and check_keys(app, page, room)


def test_the_room_pages_give_every_protected_form_its_own_key(app, rw):
    for member, session in ((rw.maria, rw.one), (rw.ana, rw.one), (rw.maria, rw.group), (rw.ben, rw.group)):
        browser = browser_of(app, member.user.email)
        path = rw.room_path(session)
        response = browser.get(path)
        assert response.status_code == 200, path
        forms = check_keys(app, body(response), path)
        assert any(protected(app, endpoint_of(app, html.unescape(f["action"]))) for f in forms
                   if f["method"] == "POST"), f"{path} has no protected form: the check tests nothing"


def test_the_key_field_is_fresh_on_every_render(app, bw, carla):
    action = f"/o/{bw.org.slug}/coaches/{bw.coach.id}/schedule/rules"
    keys = {form_at(app, carla, schedule_path(bw), action)[FORM_FIELD] for _ in range(3)}
    assert len(keys) == 3 and all(re.fullmatch(r"[0-9a-f]{32}", k) for k in keys)


# --- the coach directory (issue 22) ---------------------------------------------------------------------

@pytest.fixture()
def dw(ctx):
    from tests.directory_support import DirectoryWorld

    world = DirectoryWorld()
    world.publish()
    return world


def test_the_directory_pages_give_every_protected_form_its_own_key(app, dw):
    """The profile editor and page, verification, the taxonomy, the review form and a review's page, the flagged
    reviews queue, and the public booking page's join form (a signed-in person outside the organization)."""
    from coach import clock
    from coach.directory import public as listed
    from coach.directory import reviews

    tenancy.activate(dw.org.id)
    review = reviews.write_review(dw.ended, dw.ana, 5, "Sharp drills.")
    reviews.flag(review, dw.ben, "Testing the queue")
    db.session.commit()
    river, maria = "/o/river", dw.maria.id
    start = listed.next_slots(dw.aim, clock.now())[0].starts_at
    outsider = make_user("olga@example.com", "Olga Outside")
    db.session.commit()
    pages = {
        "maria@example.com": [f"{river}/profile", f"{river}/reviews/{review.id}"],
        "ada@example.com": [f"{river}/admin/taxonomy", f"{river}/coaches/{maria}/profile",
                            f"{river}/coaches/{maria}/profile/edit", f"{river}/moderation/reviews",
                            f"{river}/reviews/{review.id}/hide"],
        "ana@example.com": [f"{river}/bookings/{dw.ended.id}/review"],  # her own review: nothing to post
        "ben@example.com": [f"{river}/reviews/{review.id}/flag", f"{river}/reviews/{review.id}"],
        outsider.email: [f"/coaches/river/maria-santos/book?offering={dw.aim.id}"
                         f"&start={start.astimezone(ZoneInfo('UTC')).strftime('%Y-%m-%dT%H:%M:%SZ')}"],
    }
    for email, paths in pages.items():
        browser = browser_of(app, email)
        for path in paths:
            response = browser.get(path)
            assert response.status_code == 200, (email, path, response.status_code)
            forms = check_keys(app, body(response), path)
            assert any(protected(app, endpoint_of(app, html.unescape(f["action"]))) for f in forms
                       if f["method"] == "POST"), f"{email}: {path} has no protected form: the check tests nothing"


@pytest.mark.parametrize("headers", [HX, {}], ids=["htmx", "plain"])
def test_a_verification_and_a_term_submitted_twice_are_made_once(app, dw, owner_db, headers):
    ada = browser_of(app, "ada@example.com")
    page, action = f"/o/river/coaches/{dw.jon.id}/profile", f"/o/river/coaches/{dw.jon.id}/profile/verification"
    fields = form_at(app, ada, page, action)
    data = {**fields, "note": "Licence checked.", "action": fields.get("action") or "verify"}
    first, second = ada.post(action, data=data, headers=headers), ada.post(action, data=data, headers=headers)
    assert first.status_code in (200, 204, 303), first.status_code  # htmx: 204 with HX-Redirect
    assert_replayed(first, second)
    assert audits(owner_db, dw.org, "directory.coach_verified") == 1

    taxonomy = "/o/river/admin/taxonomy"
    forms = [f for f in forms_of(body(ada.get(taxonomy))) if html.unescape(f["action"]) == taxonomy
             and f["fields"].get("kind") == "discipline"]
    assert forms, "the taxonomy page has no form to add a discipline"
    data = {**forms[0]["fields"], "name": "Padel"}
    first, second = ada.post(taxonomy, data=data, headers=headers), ada.post(taxonomy, data=data, headers=headers)
    assert first.status_code in (200, 204, 303), first.status_code  # htmx: 204 with HX-Redirect
    assert_replayed(first, second)
    assert count(owner_db, dw.org, "SELECT count(*) FROM directory_terms WHERE name = 'Padel'") == 1
