"""Idempotency keys: a double-clicked or retried creating POST makes one thing, answers the same, and waits its turn."""
from __future__ import annotations

import re
import threading
import time
import uuid

import pytest

from coach import tenancy
from coach.extensions import db
from coach.platform import idempotency
from coach.platform.models import IdempotencyKey
from tests.conftest import Auth, csrf_from
from tests.factories import make_org, make_user
from tests.mailbox import Mailbox

NEW_ORG = "/orgs/new"
INVITE = "/o/harbour/admin/invitations"
MEMBERS = "/o/harbour/admin/members"
KEY_FIELD_RE = re.compile(r'name="idempotency_key" value="([^"]+)"')


# -- helpers ---------------------------------------------------------------------------------------

def browser_of(app, email: str):
    browser = app.test_client()
    assert Auth(browser).login(email).status_code == 303
    return browser


def form_of(browser, path: str) -> dict:
    """The hidden fields a rendered form carries: the CSRF token and its fresh idempotency key."""
    page = browser.get(path).get_data(as_text=True)
    match = KEY_FIELD_RE.search(page)
    assert match, f"{path} renders no idempotency key"
    return {"csrf_token": csrf_from(page), "idempotency_key": match.group(1)}


def body(response) -> str:
    return response.get_data(as_text=True)


def org_slugs(owner_db) -> list[str]:
    return [r[0] for r in owner_db.execute("SELECT slug FROM organizations ORDER BY slug")]


def see_org(owner_db, slug: str) -> None:
    owner_db.execute("SELECT set_config('app.tenant_id', id::text, false) FROM organizations WHERE slug = %s",
                     [slug])


def invitations_to(owner_db, slug: str, email: str) -> int:
    see_org(owner_db, slug)
    return owner_db.execute("SELECT count(*) FROM invitations WHERE email = %s", [email]).fetchone()[0]


def emails_to(owner_db, email: str) -> int:
    return owner_db.execute("SELECT count(*) FROM emails WHERE to_address = %s", [email]).fetchone()[0]


def audit_count(owner_db, slug: str, action: str) -> int:
    see_org(owner_db, slug)
    return owner_db.execute("SELECT count(*) FROM audit_events WHERE action = %s", [action]).fetchone()[0]


def new_org_fields(name: str = "Mia's Academy", slug: str = "mias-academy") -> dict:
    return {"name": name, "slug": slug, "timezone": "Europe/Berlin"}


@pytest.fixture()
def mia(app, ctx):
    make_user("mia@example.com", "Mia")
    return browser_of(app, "mia@example.com")


@pytest.fixture()
def club(ctx):
    ada = make_user("ada@example.com", "Ada Admin")
    return make_org(ada, slug="harbour", name="Harbour Rowing")


@pytest.fixture()
def ada(app, club):
    return browser_of(app, "ada@example.com")


def invitation_id(owner_db, email: str) -> str:
    see_org(owner_db, "harbour")
    return str(owner_db.execute("SELECT id FROM invitations WHERE email = %s AND revoked_at IS NULL",
                                [email]).fetchone()[0])


# -- replays ----------------------------------------------------------------------------------------

def test_double_submitted_organization_form_creates_one_organization(mia, owner_db):
    fields = {**form_of(mia, NEW_ORG), **new_org_fields()}

    first = mia.post(NEW_ORG, data=fields)
    second = mia.post(NEW_ORG, data=fields)

    assert first.status_code == second.status_code == 303
    assert second.headers["Location"] == first.headers["Location"] == "/o/mias-academy/"
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    assert org_slugs(owner_db) == ["mias-academy"]
    assert audit_count(owner_db, "mias-academy", "organization.created") == 1


def test_replay_to_htmx_repeats_the_redirect_instruction(mia, owner_db):
    fields = {**form_of(mia, NEW_ORG), **new_org_fields()}
    hx = {"HX-Request": "true"}

    first = mia.post(NEW_ORG, data=fields, headers=hx)
    second = mia.post(NEW_ORG, data=fields, headers=hx)

    assert first.status_code == second.status_code == 204
    assert second.headers["HX-Redirect"] == first.headers["HX-Redirect"] == "/o/mias-academy/"
    assert second.headers["Idempotent-Replayed"] == "true"
    assert org_slugs(owner_db) == ["mias-academy"]


def test_replay_of_a_refused_form_shows_the_same_messages(mia, club, owner_db):
    fields = {**form_of(mia, NEW_ORG), **new_org_fields(slug="harbour")}

    first = mia.post(NEW_ORG, data=fields)
    second = mia.post(NEW_ORG, data=fields)

    assert first.status_code == second.status_code == 422
    assert "This address is taken. Choose another." in body(second)
    assert second.headers["Idempotent-Replayed"] == "true"
    assert org_slugs(owner_db) == ["harbour"]


def test_each_rendered_form_carries_a_fresh_key(mia):
    assert form_of(mia, NEW_ORG)["idempotency_key"] != form_of(mia, NEW_ORG)["idempotency_key"]


def test_key_in_the_header_works_like_the_form_field(mia, owner_db):
    token = form_of(mia, NEW_ORG)["csrf_token"]
    headers = {"Idempotency-Key": "client-generated-key-0001"}

    first = mia.post(NEW_ORG, data={"csrf_token": token, **new_org_fields()}, headers=headers)
    second = mia.post(NEW_ORG, data={"csrf_token": token, **new_org_fields()}, headers=headers)

    assert first.status_code == 303 and second.status_code == 303
    assert second.headers["Idempotent-Replayed"] == "true"
    assert org_slugs(owner_db) == ["mias-academy"]


def test_double_submitted_invitation_sends_one_invitation_and_one_email(app, ada, owner_db, mailbox, job_runner):
    fields = {**form_of(ada, MEMBERS), "email": "newbie@example.com", "role": "coach"}

    first = ada.post(INVITE, data=fields)
    second = ada.post(INVITE, data=fields)

    assert first.status_code == second.status_code == 303
    assert second.headers["Idempotent-Replayed"] == "true"
    mailbox.wait_for("newbie@example.com")
    with job_runner.paused():  # a bare drain races a round of the background runner still in flight
        job_runner.drain()
    assert len(mailbox.to("newbie@example.com")) == 1
    assert invitations_to(owner_db, "harbour", "newbie@example.com") == 1
    assert emails_to(owner_db, "newbie@example.com") == 1


def test_double_clicked_resend_sends_one_more_email(app, ada, owner_db, mailbox, job_runner):
    ada.post(INVITE, data={**form_of(ada, MEMBERS), "email": "newbie@example.com", "role": "coach"})
    resend = f"{INVITE}/{invitation_id(owner_db, 'newbie@example.com')}/resend"
    fields = form_of(ada, MEMBERS)

    assert ada.post(resend, data=fields).status_code == 303
    replay = ada.post(resend, data=fields)

    assert replay.status_code == 303 and replay.headers["Idempotent-Replayed"] == "true"
    with job_runner.paused():  # a bare drain races a round of the background runner still in flight
        job_runner.drain()
    assert emails_to(owner_db, "newbie@example.com") == 2
    assert audit_count(owner_db, "harbour", "invitation.resent") == 1


def test_double_clicked_accept_lands_on_the_organization_not_on_an_error(app, ada, owner_db, mailbox, ctx):
    make_user("jo@example.com", "Jo")
    ada.post(INVITE, data={**form_of(ada, MEMBERS), "email": "jo@example.com", "role": "athlete"})
    link = Mailbox.link(mailbox.wait_for("jo@example.com"), app.config["APP_BASE_URL"])
    jo = browser_of(app, "jo@example.com")
    fields = form_of(jo, link)

    first = jo.post(f"{link}/accept", data=fields)
    second = jo.post(f"{link}/accept", data=fields)

    assert first.status_code == second.status_code == 303
    assert second.headers["Location"] == "/o/harbour/"
    assert second.headers["Idempotent-Replayed"] == "true"
    assert audit_count(owner_db, "harbour", "invitation.accepted") == 1
    see_org(owner_db, "harbour")
    assert owner_db.execute("SELECT count(*) FROM memberships m JOIN users u ON u.id = m.user_id "
                            "WHERE u.email = 'jo@example.com'").fetchone()[0] == 1


def test_same_key_with_other_fields_is_refused_and_creates_nothing(mia, owner_db):
    fields = {**form_of(mia, NEW_ORG), **new_org_fields()}
    mia.post(NEW_ORG, data=fields)

    response = mia.post(NEW_ORG, data={**fields, **new_org_fields("Another Club", "another-club")})

    assert response.status_code == 422
    assert "already used for a different request" in body(response)
    assert "Something went wrong" not in body(response)
    assert org_slugs(owner_db) == ["mias-academy"]


# -- keys belong to one user in one organization ------------------------------------------------------

def test_another_users_same_key_creates_their_own_organization(app, mia, owner_db, ctx):
    make_user("max@example.com", "Max")
    max_browser = browser_of(app, "max@example.com")
    key = "shared-key-from-a-buggy-client"

    mine = mia.post(NEW_ORG, data={**form_of(mia, NEW_ORG), "idempotency_key": key, **new_org_fields()})
    theirs = max_browser.post(NEW_ORG, data={**form_of(max_browser, NEW_ORG), "idempotency_key": key,
                                             **new_org_fields("Max Club", "max-club")})

    assert mine.status_code == theirs.status_code == 303
    assert "Idempotent-Replayed" not in theirs.headers
    assert org_slugs(owner_db) == ["max-club", "mias-academy"]


def test_same_key_in_two_organizations_invites_in_both(app, ada, owner_db, ctx):
    from coach.accounts.service import find_user_by_email

    make_org(find_user_by_email("ada@example.com"), slug="second-club", name="Second Club")
    key = "ada-reuses-this-key"

    for slug in ("harbour", "second-club"):
        fields = {**form_of(ada, f"/o/{slug}/admin/members"), "idempotency_key": key,
                  "email": "newbie@example.com", "role": "coach"}
        response = ada.post(f"/o/{slug}/admin/invitations", data=fields)
        assert response.status_code == 303 and "Idempotent-Replayed" not in response.headers

    assert invitations_to(owner_db, "harbour", "newbie@example.com") == 1
    assert invitations_to(owner_db, "second-club", "newbie@example.com") == 1


# -- in flight ---------------------------------------------------------------------------------------

def test_concurrent_double_submit_creates_one_organization(app, mia, owner_db):
    second_tab = browser_of(app, "mia@example.com")
    fields = {**form_of(mia, NEW_ORG), **new_org_fields()}
    other_fields = {**fields, "csrf_token": form_of(second_tab, NEW_ORG)["csrf_token"]}
    start = threading.Barrier(2)
    responses = {}

    def submit(name, browser, data):
        start.wait()
        responses[name] = browser.post(NEW_ORG, data=data)

    threads = [threading.Thread(target=submit, args=("a", mia, fields)),
               threading.Thread(target=submit, args=("b", second_tab, other_fields))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)

    assert {r.status_code for r in responses.values()} == {303}
    assert {r.headers["Location"] for r in responses.values()} == {"/o/mias-academy/"}
    assert sorted(r.headers.get("Idempotent-Replayed", "no") for r in responses.values()) == ["no", "true"]
    assert org_slugs(owner_db) == ["mias-academy"]


def _claim_in_flight(app, email: str, path: str, fields: dict, key: str) -> None:
    """Leave ``key`` in flight for ``email`` as a first request that has not finished would."""
    from coach.accounts.service import find_user_by_email

    with app.test_request_context(path, method="POST", data=fields):
        fingerprint = idempotency.request_fingerprint()
    user = find_user_by_email(email)
    tenancy.activate(None, user.id)
    db.session.add(IdempotencyKey(id=uuid.uuid4(), tenant_id=None, user_id=user.id, key=key,
                                  fingerprint=fingerprint))
    db.session.commit()


def test_request_waits_for_one_in_flight_then_says_so(app, mia, owner_db):
    key = "still-running-key-123"
    _claim_in_flight(app, "mia@example.com", NEW_ORG, new_org_fields(), key)

    started = time.monotonic()
    response = mia.post(NEW_ORG, data={**form_of(mia, NEW_ORG), "idempotency_key": key, **new_org_fields()})
    waited = time.monotonic() - started

    assert response.status_code == 409
    assert "already being processed" in body(response)
    assert "Something went wrong" not in body(response)
    assert 2.9 <= waited < 6
    assert org_slugs(owner_db) == []


def test_other_fields_under_an_in_flight_key_are_refused_at_once(app, mia, owner_db):
    key = "still-running-key-456"
    _claim_in_flight(app, "mia@example.com", NEW_ORG, new_org_fields(), key)

    started = time.monotonic()
    response = mia.post(NEW_ORG, data={**form_of(mia, NEW_ORG), "idempotency_key": key,
                                       **new_org_fields("Other", "other-club")})

    assert response.status_code == 422
    assert time.monotonic() - started < 2
    assert org_slugs(owner_db) == []


def test_waiting_request_gets_the_answer_once_the_first_finishes(app, mia, owner_db, ctx):
    key = "finishing-soon-key-789"
    _claim_in_flight(app, "mia@example.com", NEW_ORG, new_org_fields(), key)
    user_id = db.session.scalar(db.select(IdempotencyKey.user_id).where(IdempotencyKey.key == key))

    def finish_first_request():
        time.sleep(1)
        with app.app_context():
            tenancy.activate(None, user_id)
            db.session.execute(IdempotencyKey.__table__.update().where(IdempotencyKey.key == key).values(
                status_code=303, response_headers={"Location": "/o/finished/"}, response_body=b"",
                completed_at=db.func.now()))
            db.session.commit()

    finisher = threading.Thread(target=finish_first_request)
    finisher.start()
    response = mia.post(NEW_ORG, data={**form_of(mia, NEW_ORG), "idempotency_key": key, **new_org_fields()})
    finisher.join()

    assert response.status_code == 303
    assert response.headers["Location"] == "/o/finished/"
    assert response.headers["Idempotent-Replayed"] == "true"
    assert org_slugs(owner_db) == []


# -- malformed keys -----------------------------------------------------------------------------------

@pytest.mark.parametrize("key", [
    "short",
    "k" * 10 * 1024,
    "tab\tinside-key",
    "trailing-newline\n",
    "nul\x00inside-key",
    "not ascii: schlüssel",
    "spaces are not allowed",
], ids=["too-short", "10KB", "tab", "newline", "nul", "non-ascii", "spaces"])
def test_malformed_key_in_the_form_is_a_400_and_creates_nothing(mia, owner_db, key):
    response = mia.post(NEW_ORG, data={**form_of(mia, NEW_ORG), "idempotency_key": key, **new_org_fields()})

    assert response.status_code == 400
    assert "idempotency key is malformed" in body(response)
    assert org_slugs(owner_db) == []


@pytest.mark.parametrize("key", ["k" * 10 * 1024, "a", "semi;colon;key"])
def test_malformed_key_in_the_header_is_a_400_and_creates_nothing(mia, owner_db, key):
    response = mia.post(NEW_ORG, data={"csrf_token": form_of(mia, NEW_ORG)["csrf_token"], **new_org_fields()},
                        headers={"Idempotency-Key": key})

    assert response.status_code == 400
    assert org_slugs(owner_db) == []


def test_malformed_key_answers_htmx_with_a_fragment(mia):
    response = mia.post(NEW_ORG, data={**form_of(mia, NEW_ORG), "idempotency_key": "bad", **new_org_fields()},
                        headers={"HX-Request": "true"})

    assert response.status_code == 400
    assert "<html" not in body(response) and "idempotency key is malformed" in body(response)


def test_post_without_a_key_still_works(mia, owner_db):
    fields = {"csrf_token": form_of(mia, NEW_ORG)["csrf_token"], **new_org_fields()}

    assert mia.post(NEW_ORG, data=fields).status_code == 303
    assert org_slugs(owner_db) == ["mias-academy"]


# -- sweeping -------------------------------------------------------------------------------------------

def test_sweep_forgets_keys_older_than_72_hours(app, mia, owner_db, ctx):
    old = {**form_of(mia, NEW_ORG), **new_org_fields("Old Club", "old-club")}
    fresh = {**form_of(mia, NEW_ORG), **new_org_fields("Fresh Club", "fresh-club")}
    mia.post(NEW_ORG, data=old)
    mia.post(NEW_ORG, data=fresh)
    user_id = owner_db.execute("SELECT id FROM users WHERE email = 'mia@example.com'").fetchone()[0]
    owner_db.execute("SELECT set_config('app.user_id', %s, false), set_config('app.tenant_id', '', false)",
                     [str(user_id)])
    backdated = owner_db.execute("UPDATE idempotency_keys SET created_at = now() - interval '73 hours' "
                                 "WHERE key = %s", [old["idempotency_key"]]).rowcount
    assert backdated == 1

    assert idempotency.sweep(72) == 1

    assert owner_db.execute("SELECT key FROM idempotency_keys").fetchall() == [(fresh["idempotency_key"],)]
    # The old key is free again: the request runs (and now finds its address taken) instead of replaying.
    rerun = mia.post(NEW_ORG, data=old)
    assert rerun.status_code == 422 and "Idempotent-Replayed" not in rerun.headers
    assert mia.post(NEW_ORG, data=fresh).headers["Idempotent-Replayed"] == "true"


def test_sweep_with_nothing_old_removes_nothing(mia, ctx):
    mia.post(NEW_ORG, data={**form_of(mia, NEW_ORG), **new_org_fields()})

    assert idempotency.sweep(72) == 0
