"""Accounts: sign-up by emailed link, log in and out, password reset, profile.

Everything goes through the real forms (CSRF included), real PostgreSQL and a real SMTP server.
"""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from coach.accounts import service as accounts
from coach.accounts.jobs import sweep_expired_tokens
from coach.extensions import db
from tests.conftest import csrf_from
from tests.factories import PASSWORD, make_org, make_user
from tests.mailbox import Mailbox

NEW_PASSWORD = "a-brand-new-passphrase"
ARGON2_PROFILE = "$argon2id$v=19$m=19456,t=2,p=1$"
HX = {"HX-Request": "true"}
BOOSTED = {"HX-Request": "true", "HX-Boosted": "true"}
WRONG_LOGIN = "Email or password is not correct."


# --- helpers -------------------------------------------------------------------------------------


# A signed CSRF token (itsdangerous: payload.timestamp.signature), wherever the page carries it.
SIGNED_TOKEN_RE = re.compile(r"[\w-]{20,}\.[\w-]{4,}\.[\w-]{20,}")


def _without_tokens(html: str) -> str:
    return SIGNED_TOKEN_RE.sub("TOKEN", html)


def page(client, path: str, headers: dict | None = None) -> str:
    response = client.get(path, headers=headers or {})
    assert response.status_code == 200, (path, response.status_code)
    return response.get_data(as_text=True)


def submit(client, path: str, data: dict, *, form_page: str | None = None, headers: dict | None = None,
           csrf: bool = True):
    """Open the form page like a browser, then post ``data`` with the page's CSRF token."""
    token = csrf_from(page(client, form_page or path))
    payload = {"csrf_token": token, **data} if csrf else dict(data)
    return client.post(path, data=payload, headers=headers or {})


def sign_up(client, email: str, name: str = "Ada Lovelace", password: str = PASSWORD, tz: str = "Europe/Berlin",
            headers: dict | None = None):
    return submit(client, "/signup", {"display_name": name, "email": email, "password": password, "timezone": tz},
                  headers=headers)


def log_in(client, email: str, password: str = PASSWORD, next: str | None = None, headers: dict | None = None):
    path = "/login" if next is None else f"/login?next={next}"
    return submit(client, path, {"email": email, "password": password}, form_page="/login", headers=headers)


def link_in_email(app, mailbox, address: str) -> str:
    """The path of the first link in the latest email to ``address``."""
    return Mailbox.link(mailbox.wait_for(address), app.config["APP_BASE_URL"])


def confirm(client, path: str):
    """Open a confirmation link and press its button."""
    return submit(client, path, {})


def request_reset(client, email: str):
    return submit(client, "/password/forgot", {"email": email})


def reset_with(client, path: str, password: str = NEW_PASSWORD, repeat: str | None = None):
    return submit(client, path, {"password": password, "confirm": password if repeat is None else repeat})


def is_logged_in(client) -> bool:
    response = client.get("/profile")
    if response.status_code == 200:
        return True
    assert response.status_code == 303 and response.headers["Location"].startswith("/login")
    return False


def users(owner_db, email: str) -> list[dict]:
    cur = owner_db.execute(
        "SELECT email, display_name, timezone, password_hash, session_version FROM users "
        "WHERE lower(email) = lower(%s)", (email,))
    names = [c.name for c in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def emails_to(owner_db, address: str) -> int:
    return owner_db.execute("SELECT count(*) FROM emails WHERE lower(to_address) = lower(%s)",
                            (address,)).fetchone()[0]


def count(owner_db, table: str) -> int:
    return owner_db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def without_values(html: str) -> str:
    """A page with its input values (CSRF token, what was typed) blanked, for comparing two answers."""
    html = re.sub(r'value="[^"]*"', 'value=""', html)
    return re.sub(r'"X-CSRFToken": "[^"]*"', '"X-CSRFToken": ""', html)


@pytest.fixture()
def ada(ctx):
    """An existing account: ada@example.com with the factory password."""
    return make_user("ada@example.com", "Ada Lovelace", tz="Europe/Berlin")


@pytest.fixture()
def ada_client(app, ada):
    """A browser in which Ada is logged in."""
    browser = app.test_client()
    assert log_in(browser, "ada@example.com").status_code == 303
    return browser


# --- sign-up -------------------------------------------------------------------------------------


def test_signup_emails_a_link_that_creates_the_account_and_logs_in(app, client, mailbox, owner_db):
    response = sign_up(client, "grace@example.com", name="Grace Hopper", tz="America/New_York")
    assert response.status_code == 303
    assert urlsplit(response.headers["Location"]).path == "/signup/sent"
    assert "grace@example.com" in page(client, response.headers["Location"])

    message = mailbox.wait_for("grace@example.com")
    assert message["Subject"] == "Confirm your Coach account"
    link = Mailbox.link(message, app.config["APP_BASE_URL"])
    assert link.startswith("/signup/confirm/")

    # Opening the link only shows a button: mail scanners that fetch links must not create accounts.
    assert "Confirm and continue" in page(client, link)
    assert users(owner_db, "grace@example.com") == []

    response = confirm(client, link)
    assert response.status_code == 303
    assert response.headers["Location"] == "/orgs"
    picker = page(client, "/orgs")
    assert "Your organizations" in picker
    assert "Welcome to Coach!" in picker

    [user] = users(owner_db, "grace@example.com")
    assert (user["display_name"], user["timezone"]) == ("Grace Hopper", "America/New_York")
    assert count(owner_db, "pending_signups") == 0


def test_account_does_not_exist_before_the_link_is_confirmed(client, mailbox, owner_db):
    sign_up(client, "grace@example.com")
    mailbox.wait_for("grace@example.com")
    response = log_in(client, "grace@example.com")
    assert response.status_code == 422
    assert WRONG_LOGIN in response.get_data(as_text=True)


def test_signed_up_account_logs_in_with_its_password(app, client, mailbox):
    sign_up(client, "grace@example.com", password="grace-password-1906")
    confirm(client, link_in_email(app, mailbox, "grace@example.com"))
    other = app.test_client()
    assert log_in(other, "grace@example.com", "grace-password-1906").status_code == 303
    assert is_logged_in(other)


def test_confirmation_link_works_once(app, client, mailbox, owner_db):
    sign_up(client, "grace@example.com")
    link = link_in_email(app, mailbox, "grace@example.com")
    assert confirm(client, link).status_code == 303

    again = confirm(app.test_client(), link)
    assert again.status_code == 410
    body = again.get_data(as_text=True)
    assert "already used or has expired" in body
    assert "<html" in body
    assert len(users(owner_db, "grace@example.com")) == 1


def test_confirmation_link_with_a_made_up_token_is_refused(client, owner_db):
    response = confirm(client, "/signup/confirm/not-a-real-token")
    assert response.status_code == 410
    assert "already used or has expired" in response.get_data(as_text=True)
    assert count(owner_db, "users") == 0


def test_expired_confirmation_link_is_refused(app, client, mailbox, owner_db):
    sign_up(client, "grace@example.com")
    link = link_in_email(app, mailbox, "grace@example.com")
    owner_db.execute("UPDATE pending_signups SET expires_at = now() - interval '1 minute'")
    response = confirm(client, link)
    assert response.status_code == 410
    assert "already used or has expired" in response.get_data(as_text=True)
    assert users(owner_db, "grace@example.com") == []
    assert not is_logged_in(client)


def test_signup_with_taken_email_answers_like_a_new_one(client, mailbox, owner_db, ada):
    fresh = sign_up(client, "grace@example.com")
    taken = sign_up(client, "ada@example.com")
    assert taken.status_code == fresh.status_code == 303
    assert taken.headers["Location"] == fresh.headers["Location"].replace("grace%40", "ada%40").replace(
        "grace@", "ada@")
    # The CSRF token is signed with the time: two pages rendered a second apart differ there and only there.
    assert _without_tokens(page(client, taken.headers["Location"]).replace("ada@", "grace@")) == _without_tokens(
        page(client, fresh.headers["Location"]))

    notice = mailbox.wait_for("ada@example.com")
    assert notice["Subject"] == "You already have a Coach account"
    text = Mailbox.text(notice)
    assert "already has an account" in text
    assert "/signup/confirm/" not in text
    assert "/password/forgot" in text
    assert len(users(owner_db, "ada@example.com")) == 1
    assert owner_db.execute(
        "SELECT count(*) FROM pending_signups WHERE lower(email) = 'ada@example.com'").fetchone()[0] == 0


def test_signup_with_taken_email_in_other_letter_case_is_still_taken(client, mailbox, owner_db, ada):
    assert sign_up(client, "ADA@Example.COM").status_code == 303
    assert mailbox.wait_for("ada@example.com")["Subject"] == "You already have a Coach account"
    assert len(users(owner_db, "ada@example.com")) == 1


def test_second_confirmation_for_an_address_that_now_has_an_account_is_refused(app, mailbox, owner_db):
    first, second = app.test_client(), app.test_client()
    sign_up(first, "grace@example.com", name="Grace One")
    first_link = link_in_email(app, mailbox, "grace@example.com")
    mailbox.clear()
    sign_up(second, "grace@example.com", name="Grace Two")
    second_link = link_in_email(app, mailbox, "grace@example.com")
    assert first_link != second_link

    assert confirm(first, first_link).status_code == 303
    response = confirm(second, second_link)
    assert response.status_code == 410
    assert not is_logged_in(second)
    [user] = users(owner_db, "grace@example.com")
    assert user["display_name"] == "Grace One"


def test_confirmation_email_carries_no_text_chosen_by_the_visitor(app, client, mailbox):
    # Anyone can type any address into the form: the email must not relay their words or links.
    sign_up(client, "victim@example.com", name="Your bank says: log in at https://evil.example/now")
    message = mailbox.wait_for("victim@example.com")
    assert "evil.example" not in Mailbox.text(message)
    assert "evil.example" not in message.get_body(preferencelist=("html",)).get_content()
    assert link_in_email(app, mailbox, "victim@example.com").startswith("/signup/confirm/")


def test_signup_refuses_a_short_password(client, mailbox, owner_db):
    response = sign_up(client, "grace@example.com", password="short")
    assert response.status_code == 422
    assert "Use between 10 and 128 characters." in response.get_data(as_text=True)
    assert count(owner_db, "pending_signups") == 0
    assert emails_to(owner_db, "grace@example.com") == 0


def test_signup_stores_the_password_as_argon2id_with_the_owasp_profile(app, client, mailbox, owner_db):
    sign_up(client, "grace@example.com", password="grace-password-1906")
    pending_hash = owner_db.execute("SELECT password_hash FROM pending_signups").fetchone()[0]
    assert pending_hash.startswith(ARGON2_PROFILE)
    confirm(client, link_in_email(app, mailbox, "grace@example.com"))
    [user] = users(owner_db, "grace@example.com")
    assert user["password_hash"].startswith(ARGON2_PROFILE)
    assert "grace-password-1906" not in user["password_hash"]


# --- log in and out ------------------------------------------------------------------------------


def test_login_with_the_right_password_opens_a_session(client, ada):
    response = log_in(client, "ada@example.com")
    assert response.status_code == 303
    assert response.headers["Location"] == "/orgs"
    profile = page(client, "/profile")
    assert "Signed in as ada@example.com" in profile


def test_login_ignores_the_letter_case_of_the_email(client, ada):
    assert log_in(client, "Ada@EXAMPLE.com").status_code == 303
    assert is_logged_in(client)


def test_wrong_password_and_unknown_email_get_the_same_answer(app, ada):
    wrong = log_in(app.test_client(), "ada@example.com", "not-the-password")
    unknown = log_in(app.test_client(), "nobody@example.com", "not-the-password")
    assert wrong.status_code == unknown.status_code == 422
    assert WRONG_LOGIN in wrong.get_data(as_text=True)
    assert without_values(wrong.get_data(as_text=True)) == without_values(unknown.get_data(as_text=True))


def test_failed_login_does_not_log_in(client, ada):
    log_in(client, "ada@example.com", "not-the-password")
    assert not is_logged_in(client)


def test_login_starts_a_fresh_session(client, ada):
    page(client, "/login")
    with client.session_transaction() as before:
        # Something planted in the visitor's session before login (session fixation) ...
        before["last_org"] = "someone-elses-club"
    cookie_before = client.get_cookie("session").value
    log_in(client, "ada@example.com")
    assert client.get_cookie("session").value != cookie_before
    with client.session_transaction() as after:
        assert "last_org" not in after
    # ... does not follow the user in: the start page goes to the picker, not to the planted club.
    assert client.get("/").headers["Location"] == "/orgs"


def test_login_page_sends_a_logged_in_user_on(ada_client):
    response = ada_client.get("/login")
    assert response.status_code in (302, 303)
    assert response.headers["Location"] == "/orgs"


def test_login_returns_to_the_page_that_asked_for_it(client, ada):
    response = client.get("/profile")
    assert response.status_code == 303
    target = urlsplit(response.headers["Location"])
    assert target.path == "/login" and parse_qs(target.query)["next"] == ["/profile"]
    response = log_in(client, "ada@example.com", next="/profile")
    assert response.headers["Location"] == "/profile"


@pytest.mark.parametrize("next_url", [
    "//evil.example",
    "https://evil.example",
    "http://evil.example/orgs",
    "/\\evil.example",
    "%2F%2Fevil.example",
    "/%09/evil.example",
    "javascript:alert(1)",
])
def test_login_never_redirects_off_site(client, ada, next_url):
    response = log_in(client, "ada@example.com", next=next_url)
    assert response.status_code == 303
    assert response.headers["Location"] == "/orgs"


@pytest.mark.parametrize("next_url", ["/orgs%0d%0aSet-Cookie:%20x=1", "/orgs%00"])
def test_login_with_control_characters_in_next_still_logs_in(client, ada, next_url):
    response = log_in(client, "ada@example.com", next=next_url)
    assert response.status_code == 303
    assert response.headers["Location"] == "/orgs"
    assert "x=1" not in response.headers.get("Set-Cookie", "")


def test_logout_is_post_only(ada_client):
    response = ada_client.get("/logout")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert "<html" in response.get_data(as_text=True)
    assert is_logged_in(ada_client)


def test_logout_ends_the_session(ada_client):
    token = csrf_from(page(ada_client, "/profile"))
    response = ada_client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.headers["Location"] == "/login"
    assert "You are logged out." in page(ada_client, "/login")
    assert not is_logged_in(ada_client)


def test_a_cookie_copied_before_logout_opens_nothing_after_it(app, ada_client, owner_db):
    token = csrf_from(page(ada_client, "/profile"))
    copied = ada_client.get_cookie("session").value  # with the form's token: a copy could post forms
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert is_logged_in(thief)  # a copy works as long as the session does

    assert ada_client.post("/logout", data={"csrf_token": token}).status_code == 303

    assert not is_logged_in(thief)
    changed = thief.post("/profile", data={"csrf_token": token, "display_name": "Stolen", "timezone": "UTC"})
    assert changed.status_code == 303 and urlsplit(changed.headers["Location"]).path == "/login"
    assert users(owner_db, "ada@example.com")[0]["display_name"] == "Ada Lovelace"


def test_logging_in_again_after_logout_opens_a_new_session(app, ada_client):
    copied = ada_client.get_cookie("session").value
    assert ada_client.post("/logout", data={"csrf_token": csrf_from(page(ada_client, "/profile"))}).status_code == 303
    assert log_in(ada_client, "ada@example.com").status_code == 303
    assert is_logged_in(ada_client)
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert not is_logged_in(thief)  # the old session stays ended


def test_a_cookie_from_before_server_side_sessions_opens_nothing(app, ada, client):
    page(client, "/login")
    with client.session_transaction() as old:
        # What a cookie held before sessions were recorded: "<user id>:<session version>".
        old["_user_id"] = f"{ada.id}:1"
        old["_fresh"] = True
    assert not is_logged_in(client)


def test_logout_without_csrf_token_keeps_the_session(ada_client):
    response = ada_client.post("/logout")
    assert response.status_code == 400
    assert is_logged_in(ada_client)


def from_address(app, address: str):
    """A browser on its own client address."""
    browser = app.test_client()
    browser.environ_base["REMOTE_ADDR"] = address
    return browser


def test_repeated_wrong_passwords_for_one_account_from_one_address_are_refused(app, ada):
    for attempt in range(10):
        assert log_in(app.test_client(), "ada@example.com", f"guess-number-{attempt}").status_code == 422
    refused = log_in(app.test_client(), "ada@example.com", PASSWORD)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert "Too many requests" in refused.get_data(as_text=True)
    # Another account is not affected by the guesses against Ada's.
    make_user("grace@example.com")
    assert log_in(app.test_client(), "grace@example.com").status_code == 303


def test_the_right_password_from_a_fresh_address_works_after_ten_wrong_ones_from_another(app, ada):
    for attempt in range(10):
        assert log_in(from_address(app, "203.0.113.7"), "ada@example.com", f"guess-{attempt}").status_code == 422
    assert log_in(from_address(app, "203.0.113.7"), "ada@example.com").status_code == 429
    # The stranger's guesses are no switch that locks Ada out.
    owner = from_address(app, "198.51.100.99")
    assert log_in(owner, "ada@example.com").status_code == 303
    assert is_logged_in(owner)


def test_successful_logins_do_not_use_up_the_login_limit(app, ada):
    for _ in range(11):
        assert log_in(app.test_client(), "ada@example.com").status_code == 303


def test_one_visitor_cannot_flood_inboxes_with_reset_emails(client):
    for _ in range(10):
        assert request_reset(client, "nobody@example.com").status_code == 303
    refused = request_reset(client, "nobody@example.com")
    assert refused.status_code == 429
    assert "Retry-After" in refused.headers


def test_typos_do_not_use_up_the_email_limit(client):
    for _ in range(11):
        assert request_reset(client, "not-an-email").status_code == 422
    assert request_reset(client, "nobody@example.com").status_code == 303


# --- sessions --------------------------------------------------------------------------------------


def test_each_login_is_a_session_of_its_own_that_can_be_ended_alone(app, ada_client, ada):
    laptop = from_address(app, "198.51.100.8")
    assert log_in(laptop, "ada@example.com", headers={"User-Agent": "Laptop Browser/1.0"}).status_code == 303
    sessions = accounts.live_sessions(ada)
    assert len(sessions) == 2
    [laptop_session] = [s for s in sessions if s.user_agent == "Laptop Browser/1.0"]
    assert laptop_session.ip == "198.51.100.8"

    grace = make_user("grace@example.com")
    assert not accounts.revoke_session(grace, laptop_session.id)  # not hers to end
    assert accounts.revoke_session(ada, laptop_session.id)
    db.session.commit()
    assert not is_logged_in(laptop)
    assert is_logged_in(ada_client)
    assert laptop_session.id not in [s.id for s in accounts.live_sessions(ada)]
    assert len(accounts.live_sessions(ada)) == 1


def test_a_session_unused_for_its_lifetime_opens_nothing(app, ada_client, owner_db):
    owner_db.execute("UPDATE user_sessions SET last_seen_at = now() - interval '15 days'")
    assert not is_logged_in(ada_client)


def test_a_used_session_is_marked_seen_at_most_every_few_minutes(ada_client, owner_db):
    owner_db.execute("UPDATE user_sessions SET last_seen_at = now() - interval '1 hour'")
    assert is_logged_in(ada_client)
    seen = owner_db.execute("SELECT now() - last_seen_at FROM user_sessions").fetchone()[0]
    assert seen.total_seconds() < 60
    owner_db.execute("UPDATE user_sessions SET last_seen_at = now() - interval '1 minute'")
    assert is_logged_in(ada_client)
    seen = owner_db.execute("SELECT now() - last_seen_at FROM user_sessions").fetchone()[0]
    assert seen.total_seconds() >= 59  # not written again on every request


def test_the_cookie_is_renewed_when_the_session_is_marked_seen_not_on_every_page(ada_client, owner_db):
    """The browser's cookie expires with the server's record: signed again (a new expiry) when the record is
    marked seen, and not on the pages between (signing it on every response was an eighth of a page's CPU)."""
    owner_db.execute("UPDATE user_sessions SET last_seen_at = now() - interval '1 hour'")
    renewed = ada_client.get("/profile")
    assert renewed.status_code == 200
    assert "session=" in renewed.headers.get("Set-Cookie", "")
    assert "Expires=" in renewed.headers["Set-Cookie"]
    between = ada_client.get("/profile")
    assert between.status_code == 200
    assert "Set-Cookie" not in between.headers


def test_sessions_ended_a_week_ago_are_swept_and_live_ones_kept(app, ada_client, owner_db):
    other = app.test_client()
    log_in(other, "ada@example.com")
    owner_db.execute("UPDATE user_sessions SET revoked_at = now() - interval '8 days' WHERE id = ("
                     "SELECT id FROM user_sessions ORDER BY created_at DESC LIMIT 1)")
    with app.app_context():
        assert sweep_expired_tokens() == 1
    assert owner_db.execute("SELECT count(*) FROM user_sessions").fetchone()[0] == 1
    assert is_logged_in(ada_client)


# --- sign-in links ----------------------------------------------------------------------------------


def request_sign_in_link(client, email: str):
    return submit(client, "/login/link", {"email": email})


def test_login_page_offers_a_sign_in_link(client):
    assert 'href="/login/link"' in page(client, "/login")


def test_a_sign_in_link_signs_in_once(app, client, mailbox, owner_db, ada):
    response = request_sign_in_link(client, "Ada@Example.com")
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert "a sign-in link is on its way" in page(client, "/login")
    message = mailbox.wait_for("ada@example.com")
    assert message["Subject"] == "Your Coach sign-in link"
    link = Mailbox.link(message, app.config["APP_BASE_URL"])
    assert link.startswith("/login/link/")
    # Only the hash is kept: the link's secret is nowhere in the database.
    secret = link.rsplit("/", 1)[1]
    assert owner_db.execute("SELECT count(*) FROM sign_in_links WHERE token_hash = %s", (secret,)).fetchone()[0] == 0

    # Opening it only shows a button (mail scanners fetch links); the button signs in.
    assert "Sign in" in page(client, link)
    assert not is_logged_in(client)
    used = submit(client, link, {})
    assert used.status_code == 303 and used.headers["Location"] == "/orgs"
    assert is_logged_in(client)

    again = app.test_client()
    assert again.get(link).status_code == 410
    reused = submit(again, link, {}, form_page="/login")
    assert reused.status_code == 410
    assert "invalid, expired or already used" in reused.get_data(as_text=True)
    assert not is_logged_in(again)


def test_a_sign_in_link_answers_the_same_for_unknown_addresses_and_sends_nothing(client, mailbox, owner_db,
                                                                                  job_runner, ada):
    known = request_sign_in_link(client, "ada@example.com")
    unknown = request_sign_in_link(client, "nobody@example.com")
    assert known.status_code == unknown.status_code == 303
    assert known.headers["Location"] == unknown.headers["Location"]
    mailbox.wait_for("ada@example.com")
    with job_runner.paused():  # a bare drain races a round of the background runner still in flight
        job_runner.drain()
    assert mailbox.to("nobody@example.com") == []
    assert emails_to(owner_db, "nobody@example.com") == 0


def test_an_expired_sign_in_link_is_refused(app, client, mailbox, owner_db, ada):
    request_sign_in_link(client, "ada@example.com")
    link = link_in_email(app, mailbox, "ada@example.com")
    owner_db.execute("UPDATE sign_in_links SET expires_at = now() - interval '1 minute'")
    assert submit(client, link, {}, form_page="/login").status_code == 410
    assert not is_logged_in(client)


def test_a_sign_in_link_works_while_password_attempts_from_here_are_refused(app, client, mailbox, ada):
    for attempt in range(10):
        log_in(client, "ada@example.com", f"guess-{attempt}")
    assert log_in(client, "ada@example.com").status_code == 429
    request_sign_in_link(client, "ada@example.com")
    assert submit(client, link_in_email(app, mailbox, "ada@example.com"), {}).status_code == 303
    assert is_logged_in(client)


def test_using_a_sign_in_link_is_in_the_audit_trail(app, client, mailbox, owner_db, ctx):
    make_org(make_user("ada@example.com"), slug="harbour")
    request_sign_in_link(client, "ada@example.com")
    submit(client, link_in_email(app, mailbox, "ada@example.com"), {})
    owner_db.execute("SELECT set_config('app.tenant_id', id::text, false) FROM organizations WHERE slug = 'harbour'")
    assert owner_db.execute("SELECT actor_label FROM audit_events WHERE action = 'login.link_used'").fetchall() == [
        ("ada@example.com",)]


# --- forgotten password --------------------------------------------------------------------------


def test_forgot_password_answers_the_same_for_known_and_unknown_emails(app, mailbox, owner_db, job_runner, ada):
    known_client, unknown_client = app.test_client(), app.test_client()
    known = request_reset(known_client, "ada@example.com")
    unknown = request_reset(unknown_client, "nobody@example.com")
    assert known.status_code == unknown.status_code == 303
    assert known.headers["Location"] == unknown.headers["Location"] == "/login"
    flash = "If an account uses that address, a reset link is on its way."
    assert flash in page(known_client, "/login")
    assert flash in page(unknown_client, "/login")

    assert mailbox.wait_for("ada@example.com")["Subject"] == "Reset your Coach password"
    with job_runner.paused():  # a bare drain races a round of the background runner still in flight
        job_runner.drain()
    assert mailbox.to("nobody@example.com") == []
    assert emails_to(owner_db, "nobody@example.com") == 0


def test_password_reset_journey(app, client, mailbox, owner_db, ada):
    request_reset(client, "Ada@Example.com")
    link = link_in_email(app, mailbox, "ada@example.com")
    assert link.startswith("/password/reset/")
    form_page = page(client, link)
    assert "Choose a new password" in form_page
    # The form posts back to its own link (the token is in the URL, not in a field).
    assert f'action="{link}"' in form_page

    response = reset_with(client, link)
    assert response.status_code == 303
    assert response.headers["Location"] == "/orgs"
    assert "Your password is changed and you are logged in." in page(client, "/orgs")
    assert is_logged_in(client)
    assert users(owner_db, "ada@example.com")[0]["password_hash"].startswith(ARGON2_PROFILE)

    fresh = app.test_client()
    assert log_in(fresh, "ada@example.com", PASSWORD).status_code == 422
    assert log_in(fresh, "ada@example.com", NEW_PASSWORD).status_code == 303


def test_reset_link_works_once(app, client, mailbox, ada):
    request_reset(client, "ada@example.com")
    link = link_in_email(app, mailbox, "ada@example.com")
    assert reset_with(client, link).status_code == 303

    other = app.test_client()
    opened = other.get(link)
    assert opened.status_code == 410
    assert "already used" in opened.get_data(as_text=True)
    assert "Request a new link" in opened.get_data(as_text=True)
    reused = other.post(link, data={"csrf_token": csrf_from(page(other, "/login")), "password": "attacker-password-1",
                                    "confirm": "attacker-password-1"})
    assert reused.status_code == 410
    assert log_in(app.test_client(), "ada@example.com", "attacker-password-1").status_code == 422


def test_using_one_reset_link_retires_the_others(app, client, mailbox, ada):
    request_reset(client, "ada@example.com")
    older = link_in_email(app, mailbox, "ada@example.com")
    mailbox.clear()
    request_reset(client, "ada@example.com")
    newer = link_in_email(app, mailbox, "ada@example.com")
    assert reset_with(client, newer).status_code == 303
    assert app.test_client().get(older).status_code == 410


def test_expired_reset_link_is_gone(app, client, mailbox, owner_db, ada):
    request_reset(client, "ada@example.com")
    link = link_in_email(app, mailbox, "ada@example.com")
    owner_db.execute("UPDATE password_reset_tokens SET expires_at = now() - interval '1 second'")

    opened = client.get(link)
    assert opened.status_code == 410
    assert "expired" in opened.get_data(as_text=True)
    posted = client.post(link, data={"csrf_token": csrf_from(page(client, "/login")), "password": NEW_PASSWORD,
                                     "confirm": NEW_PASSWORD})
    assert posted.status_code == 410
    assert log_in(app.test_client(), "ada@example.com", PASSWORD).status_code == 303


def test_made_up_reset_link_is_gone(client):
    response = client.get("/password/reset/" + "x" * 500)
    assert response.status_code == 410
    assert "invalid" in response.get_data(as_text=True)


def test_reset_with_passwords_that_differ_is_refused(app, client, mailbox, ada):
    request_reset(client, "ada@example.com")
    link = link_in_email(app, mailbox, "ada@example.com")
    response = reset_with(client, link, NEW_PASSWORD, repeat="something-else-entirely")
    assert response.status_code == 422
    assert "The passwords do not match." in response.get_data(as_text=True)
    assert log_in(app.test_client(), "ada@example.com", PASSWORD).status_code == 303
    # The link was not spent by the failed attempt.
    assert reset_with(client, link).status_code == 303


def test_password_reset_logs_out_other_sessions(app, mailbox, ada_client):
    elsewhere = app.test_client()
    request_reset(elsewhere, "ada@example.com")
    assert reset_with(elsewhere, link_in_email(app, mailbox, "ada@example.com")).status_code == 303
    assert is_logged_in(elsewhere)
    assert not is_logged_in(ada_client)


# --- profile -------------------------------------------------------------------------------------


def test_profile_needs_a_login(client):
    response = client.get("/profile")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/login")


def test_profile_changes_name_and_time_zone(ada_client, owner_db):
    response = submit(ada_client, "/profile", {"display_name": "Countess Lovelace", "timezone": "Asia/Tokyo"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/profile"
    shown = page(ada_client, "/profile")
    assert "Profile saved." in shown
    assert "Countess Lovelace" in shown
    assert re.search(r'<input [^>]*name="timezone"[^>]*value="Asia/Tokyo"', shown)
    [user] = users(owner_db, "ada@example.com")
    assert (user["display_name"], user["timezone"]) == ("Countess Lovelace", "Asia/Tokyo")


def test_profile_refuses_an_unknown_time_zone(ada_client, owner_db):
    response = submit(ada_client, "/profile", {"display_name": "Ada", "timezone": "Mars/Olympus_Mons"})
    assert response.status_code == 422
    assert "Try a city, like Europe/Paris." in response.get_data(as_text=True)
    assert users(owner_db, "ada@example.com")[0]["timezone"] == "Europe/Berlin"


@pytest.mark.parametrize("name, message", [
    ("x" * 10_000, "Use at most 100 characters."),
    ("   ", "Enter your name."),
    ("Ada\x00Lovelace", "Use letters, digits, spaces and punctuation only."),
    ("Ada\nLovelace", "Use letters, digits, spaces and punctuation only."),
])
def test_profile_refuses_a_bad_name(ada_client, owner_db, name, message):
    response = submit(ada_client, "/profile", {"display_name": name, "timezone": "UTC"})
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert users(owner_db, "ada@example.com")[0]["display_name"] == "Ada Lovelace"


def test_profile_shows_a_name_as_text_not_markup(ada_client):
    submit(ada_client, "/profile", {"display_name": "<b>Ada</b>", "timezone": "UTC"})
    shown = page(ada_client, "/profile")
    assert "&lt;b&gt;Ada&lt;/b&gt;" in shown
    assert "<b>Ada</b>" not in shown


def test_form_sent_after_the_session_ended_leads_to_login_and_back(app, ada_client):
    token = csrf_from(page(ada_client, "/profile"))
    elsewhere = app.test_client()
    log_in(elsewhere, "ada@example.com")
    change_password(elsewhere, PASSWORD)  # ends every other session, including ada_client's

    data = {"csrf_token": token, "display_name": "Too Late", "timezone": "UTC"}
    plain = ada_client.post("/profile", data=data, headers={"Referer": "http://localhost/profile"})
    assert plain.status_code == 303
    target = urlsplit(plain.headers["Location"])
    assert target.path == "/login" and parse_qs(target.query)["next"] == ["/profile"]

    htmx = ada_client.post("/profile", data=data, headers={**HX, "HX-Current-URL": "http://localhost/profile"})
    # Not a redirect that htmx would follow and swap into the form: the browser goes to the login page.
    assert htmx.status_code == 204
    target = urlsplit(htmx.headers["HX-Redirect"])
    assert target.path == "/login" and parse_qs(target.query)["next"] == ["/profile"]
    assert "Log in to continue." in page(ada_client, "/login")


def test_login_page_never_offers_to_return_to_another_site(client, ada):
    response = client.post("/profile", data={"csrf_token": csrf_from(page(client, "/login"))},
                           headers={**HX, "HX-Current-URL": "https://evil.example/profile"})
    assert response.status_code == 204
    assert parse_qs(urlsplit(response.headers["HX-Redirect"]).query)["next"] == ["/"]


def change_password(client, current: str, new: str = NEW_PASSWORD, repeat: str | None = None, headers=None):
    return submit(client, "/profile/password",
                  {"current_password": current, "password": new, "confirm": new if repeat is None else repeat},
                  form_page="/profile", headers=headers)


def test_password_change_needs_the_current_password(app, ada_client, owner_db):
    before = users(owner_db, "ada@example.com")[0]["password_hash"]
    response = change_password(ada_client, "not-my-password")
    assert response.status_code == 422
    assert "The current password is not correct." in response.get_data(as_text=True)
    assert users(owner_db, "ada@example.com")[0]["password_hash"] == before
    assert is_logged_in(ada_client)
    assert log_in(app.test_client(), "ada@example.com", PASSWORD).status_code == 303


def test_password_change_keeps_this_session_and_ends_the_others(app, ada_client, owner_db):
    elsewhere = app.test_client()
    log_in(elsewhere, "ada@example.com")
    assert is_logged_in(elsewhere)

    response = change_password(ada_client, PASSWORD)
    assert response.status_code == 303
    assert response.headers["Location"] == "/profile"
    assert "Other sessions have been logged out." in page(ada_client, "/profile")
    assert not is_logged_in(elsewhere)

    assert users(owner_db, "ada@example.com")[0]["password_hash"].startswith(ARGON2_PROFILE)
    assert log_in(app.test_client(), "ada@example.com", PASSWORD).status_code == 422
    assert log_in(app.test_client(), "ada@example.com", NEW_PASSWORD).status_code == 303


def test_password_change_ends_a_copy_of_this_browsers_cookie_too(app, ada_client):
    copied = ada_client.get_cookie("session").value
    assert change_password(ada_client, PASSWORD).status_code == 303
    assert is_logged_in(ada_client)  # on a fresh session
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert not is_logged_in(thief)


def test_password_reset_ends_every_session(app, client, mailbox, ada):
    elsewhere = app.test_client()
    log_in(elsewhere, "ada@example.com")
    request_reset(client, "ada@example.com")
    assert reset_with(client, link_in_email(app, mailbox, "ada@example.com")).status_code == 303
    assert is_logged_in(client)
    assert not is_logged_in(elsewhere)


def test_password_change_refuses_a_new_password_that_is_too_short(ada_client):
    response = change_password(ada_client, PASSWORD, "short")
    assert response.status_code == 422
    assert "Use between 10 and 128 characters." in response.get_data(as_text=True)


# --- pages and htmx fragments --------------------------------------------------------------------


def _reset_link(app, client, mailbox) -> str:
    make_user("ada@example.com", "Ada Lovelace")
    request_reset(client, "ada@example.com")
    return link_in_email(app, mailbox, "ada@example.com")


def _log_in_ada(app, client, mailbox) -> None:
    make_user("ada@example.com", "Ada Lovelace")
    log_in(client, "ada@example.com")


# Each form: how to get there, where it posts, invalid data, and the message the field shows.
FORMS = {
    "signup": (None, "/signup", "/signup",
               {"display_name": "Ada", "email": "not-an-email", "password": PASSWORD, "timezone": "UTC"},
               "Enter a valid email address."),
    "login": (None, "/login", "/login", {"email": "ada@example.com", "password": ""}, "Enter your password."),
    "forgot": (None, "/password/forgot", "/password/forgot", {"email": ""}, "Enter your email address."),
    "reset": (_reset_link, None, None, {"password": NEW_PASSWORD, "confirm": "different-password"},
              "The passwords do not match."),
    "profile": (_log_in_ada, "/profile", "/profile", {"display_name": "Ada", "timezone": "Nowhere/Land"},
                "Try a city, like Europe/Paris."),
    "password": (_log_in_ada, "/profile", "/profile/password",
                 {"current_password": PASSWORD, "password": "short", "confirm": "short"},
                 "Use between 10 and 128 characters."),
}


@pytest.fixture(params=sorted(FORMS))
def invalid_form(request, app, client, mailbox, ctx):
    """(form page, post path, invalid data, expected message) with whatever the form needs set up."""
    setup, form_page, post_path, data, message = FORMS[request.param]
    if setup is not None:
        link = setup(app, client, mailbox)
        form_page = form_page or link
        post_path = post_path or link
    return form_page, post_path, data, message


def test_invalid_htmx_post_answers_with_the_form_fragment(client, invalid_form):
    form_page, post_path, data, message = invalid_form
    response = submit(client, post_path, data, form_page=form_page, headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<html" not in body
    assert body.lstrip().startswith("<form")
    assert message in body
    assert "HX-Request" in response.headers["Vary"]


def test_invalid_plain_post_answers_with_the_whole_page(client, invalid_form):
    form_page, post_path, data, message = invalid_form
    response = submit(client, post_path, data, form_page=form_page)
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<html" in body
    assert message in body
    assert "HX-Request" in response.headers["Vary"]


def test_invalid_boosted_post_answers_with_the_whole_page(client, invalid_form):
    form_page, post_path, data, message = invalid_form
    response = submit(client, post_path, data, form_page=form_page, headers=BOOSTED)
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<html" in body
    assert message in body


@pytest.mark.parametrize("path", ["/signup", "/login", "/password/forgot", "/signup/sent?email=a%40example.com",
                                  "/signup/confirm/some-token"])
def test_public_pages_are_whole_pages_and_vary_on_htmx(client, path):
    for headers in ({}, BOOSTED, {**HX, "HX-History-Restore-Request": "true"}):
        response = client.get(path, headers=headers)
        assert response.status_code == 200
        assert "<html" in response.get_data(as_text=True)
        assert "HX-Request" in response.headers["Vary"]


def test_profile_and_reset_pages_are_whole_pages(app, client, mailbox, ctx):
    link = _reset_link(app, client, mailbox)
    assert "<html" in page(client, link)
    log_in(client, "ada@example.com")
    assert "<html" in page(client, "/profile")
    assert "<html" in page(client, "/profile", headers=BOOSTED)


def test_htmx_login_navigates_with_hx_redirect(client, ada):
    response = log_in(client, "ada@example.com", headers=HX)
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == "/orgs"
    assert is_logged_in(client)


def test_htmx_post_to_a_spent_reset_link_answers_with_a_fragment(app, client, mailbox, ctx):
    link = _reset_link(app, client, mailbox)
    other_tab = app.test_client()
    token = csrf_from(page(other_tab, link))
    reset_with(client, link)
    response = other_tab.post(link, data={"csrf_token": token, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
                              headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 410
    assert "<html" not in body
    assert "Request a new link" in body


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("email", ["not-an-email", "ada@", "@example.com", "ada lovelace@example.com",
                                   "ada@example..com", "ada\x00@example.com"])
def test_signup_refuses_a_malformed_email(client, mailbox, owner_db, email):
    response = sign_up(client, email)
    assert response.status_code == 422
    assert "Enter a valid email address." in response.get_data(as_text=True)
    assert count(owner_db, "pending_signups") == 0
    assert count(owner_db, "emails") == 0


@pytest.mark.parametrize("path, data", [
    ("/signup", {"display_name": "Ada", "password": PASSWORD, "timezone": "UTC"}),
    ("/login", {"password": PASSWORD}),
    ("/password/forgot", {}),
])
def test_email_of_300_characters_is_refused_everywhere(client, owner_db, path, data):
    email = "a" * 288 + "@example.com"
    response = submit(client, path, {**data, "email": email})
    assert response.status_code == 422
    assert "An email address has at most 254 characters." in response.get_data(as_text=True)
    assert count(owner_db, "pending_signups") == count(owner_db, "emails") == 0


def test_login_refuses_a_malformed_email_with_a_message(client):
    response = log_in(client, "not-an-email")
    assert response.status_code == 422
    assert "Enter a valid email address." in response.get_data(as_text=True)


@pytest.mark.parametrize("name, message", [
    ("x" * 10_000, "Use at most 100 characters."),
    ("", "Enter your name."),
    ("Ada\x00", "Use letters, digits, spaces and punctuation only."),
])
def test_signup_refuses_a_bad_name(client, mailbox, owner_db, name, message):
    response = sign_up(client, "grace@example.com", name=name)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert count(owner_db, "pending_signups") == 0
    assert emails_to(owner_db, "grace@example.com") == 0


def test_signup_refuses_an_unknown_time_zone(client, owner_db):
    response = sign_up(client, "grace@example.com", tz="Europe/Atlantis")
    assert response.status_code == 422
    assert "Try a city, like Europe/Paris." in response.get_data(as_text=True)
    assert count(owner_db, "pending_signups") == 0


def test_password_longer_than_128_characters_is_refused(client, owner_db):
    response = sign_up(client, "grace@example.com", password="p" * 129)
    assert response.status_code == 422
    assert "Use between 10 and 128 characters." in response.get_data(as_text=True)
    assert count(owner_db, "pending_signups") == 0


def _missing_csrf_cases():
    return {
        "signup": ("/signup", {"display_name": "Ada", "email": "grace@example.com", "password": PASSWORD,
                               "timezone": "UTC"}),
        "login": ("/login", {"email": "ada@example.com", "password": PASSWORD}),
        "forgot": ("/password/forgot", {"email": "ada@example.com"}),
        "profile": ("/profile", {"display_name": "Changed Name", "timezone": "Asia/Tokyo"}),
        "password": ("/profile/password", {"current_password": PASSWORD, "password": NEW_PASSWORD,
                                           "confirm": NEW_PASSWORD}),
    }


@pytest.mark.parametrize("case", sorted(_missing_csrf_cases()))
@pytest.mark.parametrize("token", [None, "forged-token"])
def test_post_without_a_valid_csrf_token_is_refused_and_writes_nothing(app, mailbox, owner_db, ada, case, token):
    path, data = _missing_csrf_cases()[case]
    browser = app.test_client()
    if case in ("profile", "password"):
        log_in(browser, "ada@example.com")
    before = users(owner_db, "ada@example.com")
    payload = dict(data) if token is None else {**data, "csrf_token": token}
    response = browser.post(path, data=payload)
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "<html" in body
    assert "security token" in body
    assert users(owner_db, "ada@example.com") == before
    assert count(owner_db, "pending_signups") == count(owner_db, "password_reset_tokens") == 0
    assert count(owner_db, "emails") == 0
    assert is_logged_in(browser) == (case in ("profile", "password"))


def test_htmx_post_without_csrf_token_gets_a_small_error_fragment(client):
    response = client.post("/login", data={"email": "ada@example.com", "password": PASSWORD}, headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "<html" not in body
    assert "security token" in body


def test_confirming_without_csrf_token_creates_no_account(app, client, mailbox, owner_db):
    sign_up(client, "grace@example.com")
    link = link_in_email(app, mailbox, "grace@example.com")
    response = app.test_client().post(link)
    assert response.status_code == 400
    assert users(owner_db, "grace@example.com") == []
    # The link still works for its owner.
    assert confirm(client, link).status_code == 303


def test_reset_without_csrf_token_changes_nothing(app, client, mailbox, ada):
    request_reset(client, "ada@example.com")
    link = link_in_email(app, mailbox, "ada@example.com")
    response = client.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 400
    assert log_in(app.test_client(), "ada@example.com", PASSWORD).status_code == 303
    assert reset_with(client, link).status_code == 303


def test_factory_accounts_use_the_argon2id_profile_too(owner_db, ada):
    assert users(owner_db, "ada@example.com")[0]["password_hash"].startswith(ARGON2_PROFILE)
