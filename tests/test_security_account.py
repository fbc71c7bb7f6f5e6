"""Account security pages: confirm it is you, the security page, password quality, email change, sessions and
devices, the security log.

Through the real forms (CSRF included), real PostgreSQL, Valkey and SMTP.
"""
from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from coach.accounts.models import SecurityEvent, User, UserSession
from coach.clock import now
from coach.extensions import db
from tests.conftest import csrf_from
from tests.factories import PASSWORD, make_user

HX = {"HX-Request": "true"}
NEW_PASSWORD = "a-brand-new-passphrase"


def page(client, path: str, headers: dict | None = None) -> str:
    response = client.get(path, headers=headers or {})
    assert response.status_code == 200, (path, response.status_code)
    return response.get_data(as_text=True)


def submit(client, path: str, data: dict, *, form_page: str, headers: dict | None = None):
    token = csrf_from(page(client, form_page))
    return client.post(path, data={"csrf_token": token, **data}, headers=headers or {})


def log_in(client, email: str, password: str = PASSWORD, user_agent: str | None = None):
    headers = {"User-Agent": user_agent} if user_agent else {}
    response = submit(client, "/login", {"email": email, "password": password}, form_page="/login", headers=headers)
    assert response.status_code == 303, response.get_data(as_text=True)
    return response


def age_sign_in(user: User, minutes: int = 11) -> None:
    """Make every session of ``user`` last confirm its identity ``minutes`` ago (outside the 10-minute window)."""
    db.session.execute(update(UserSession).where(UserSession.user_id == user.id)
                       .values(reauthenticated_at=now() - timedelta(minutes=minutes)))
    db.session.commit()


def log_actions(user: User) -> list[str]:
    db.session.expire_all()
    return list(db.session.scalars(select(SecurityEvent.action).where(SecurityEvent.user_id == user.id)
                                   .order_by(SecurityEvent.created_at, SecurityEvent.id)))


@pytest.fixture()
def ada(ctx):
    user = make_user("ada@example.com", "Ada Lovelace")
    db.session.commit()
    return user


@pytest.fixture()
def ada_client(app, ada):
    client = app.test_client()
    log_in(client, "ada@example.com")
    return client


# --- confirm it is you ----------------------------------------------------------------------------------


def test_a_stale_sign_in_is_sent_to_confirm_before_changing_the_password_and_comes_back(ada_client, ada):
    age_sign_in(ada)
    response = submit(ada_client, "/profile/password",
                      {"current_password": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
                      form_page="/profile", headers={"Referer": "http://localhost/profile"})
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/account/confirm?next=")
    confirm_page = page(ada_client, response.headers["Location"])
    assert "Confirm it is you" in confirm_page
    # Nothing changed yet: the old password still works.
    db.session.expire_all()
    from coach.security import verify_password
    assert verify_password(db.session.get(User, ada.id).password_hash, PASSWORD)

    confirmed = submit(ada_client, "/account/confirm?next=/profile", {"password": PASSWORD},
                       form_page="/account/confirm?next=/profile")
    assert confirmed.status_code == 303
    assert confirmed.headers["Location"] == "/profile"
    changed = submit(ada_client, "/profile/password",
                     {"current_password": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
                     form_page="/profile")
    assert changed.status_code == 303
    assert changed.headers["Location"] == "/profile"
    assert "reauth.succeeded" in log_actions(ada)


def test_a_wrong_password_on_the_confirm_page_says_so_and_is_logged(ada_client, ada):
    age_sign_in(ada)
    response = submit(ada_client, "/account/confirm", {"password": "not-my-password"},
                      form_page="/account/confirm")
    assert response.status_code == 422
    assert "That is not correct" in response.get_data(as_text=True)
    assert log_actions(ada)[-1] == "reauth.failed"
    # Still not fresh: the change is still refused.
    assert ada_client.get("/account/confirm").status_code == 200
    empty = submit(ada_client, "/account/confirm", {"password": ""}, form_page="/account/confirm")
    assert empty.status_code == 422
    assert "Enter your password" in empty.get_data(as_text=True)


def test_the_confirm_page_follows_only_paths_on_this_site(ada_client, ada):
    response = submit(ada_client, "/account/confirm?next=//evil.example/x", {"password": PASSWORD},
                      form_page="/account/confirm")
    assert response.status_code == 303
    assert response.headers["Location"] == "/account/security"


def test_confirming_is_throttled_after_repeated_failures(ada_client, ada, app):
    limit = int(app.config["RATELIMIT_LOGIN_PER_ACCOUNT_IP"].split()[0])
    token = csrf_from(page(ada_client, "/account/confirm"))
    statuses = [ada_client.post("/account/confirm", data={"csrf_token": token, "password": "wrong-wrong-wrong"}
                                ).status_code for _ in range(limit + 1)]
    assert statuses[:limit] == [422] * limit
    assert statuses[-1] == 429
    refused = ada_client.post("/account/confirm", data={"csrf_token": token, "password": PASSWORD})
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0


def test_the_confirm_page_needs_a_sign_in(client, ada):
    response = client.get("/account/confirm")
    assert response.status_code in (302, 303)
    assert "/login" in response.headers["Location"]


# --- the security page ----------------------------------------------------------------------------------


def test_the_security_page_shows_sessions_and_the_latest_log_lines(ada_client, ada):
    html = page(ada_client, "/account/security")
    assert "Security" in html
    assert "ada@example.com" in html
    assert "1 active session" in html
    assert "This device" in html
    assert "Signed in" in html  # the log line of the sign-in just made
    assert 'href="/account/sessions"' in html
    assert 'href="/account/security/log"' in html
    assert 'href="/account/security"' in page(ada_client, "/profile")


# --- password quality ------------------------------------------------------------------------------------

WEAK = "password123"


def test_sign_up_with_a_common_password_says_why_and_sends_nothing(client, app, mailbox):
    response = submit(client, "/signup", {"display_name": "Grace Hopper", "email": "grace@example.com",
                                          "password": WEAK, "timezone": "UTC"}, form_page="/signup", headers=HX)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "This password is too easy to guess. This is a very common password." in html
    assert "Add another word or two" in html
    assert mailbox.to("grace@example.com") == []


def test_a_password_made_of_the_persons_own_name_and_email_is_refused(client):
    response = submit(client, "/signup", {"display_name": "Grace Hopper", "email": "grace.hopper@example.com",
                                          "password": "gracehopper1906", "timezone": "UTC"}, form_page="/signup")
    assert response.status_code == 422
    assert "too easy to guess" in response.get_data(as_text=True)
    strong = submit(client, "/signup", {"display_name": "Grace Hopper", "email": "grace.hopper@example.com",
                                        "password": "compiler-moth-in-relay-70", "timezone": "UTC"},
                    form_page="/signup")
    assert strong.status_code == 303


def test_changing_to_a_weak_password_is_refused_with_the_reason(ada_client, ada):
    response = submit(ada_client, "/profile/password",
                      {"current_password": PASSWORD, "password": "adalovelace1815", "confirm": "adalovelace1815"},
                      form_page="/profile", headers=HX)
    assert response.status_code == 422
    assert "too easy to guess" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, ada.id).password_changed_at is None
    assert "password.changed" not in log_actions(ada)


def test_resetting_to_a_weak_password_is_refused_and_a_strong_one_is_logged(client, ada, app, mailbox):
    submit(client, "/password/forgot", {"email": "ada@example.com"}, form_page="/password/forgot")
    from tests.mailbox import Mailbox
    link = Mailbox.link(mailbox.wait_for("ada@example.com"), app.config["APP_BASE_URL"])
    weak = submit(client, link, {"password": "qwertyuiop1", "confirm": "qwertyuiop1"}, form_page=link)
    assert weak.status_code == 422
    assert "too easy to guess" in weak.get_data(as_text=True)
    done = submit(client, link, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}, form_page=link)
    assert done.status_code == 303
    assert "password.reset" in log_actions(ada)
    assert db.session.get(User, ada.id).password_changed_at is not None


def test_a_password_change_is_in_the_security_log_with_its_time(ada_client, ada):
    changed = submit(ada_client, "/profile/password",
                     {"current_password": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
                     form_page="/profile")
    assert changed.status_code == 303
    html = page(ada_client, "/account/security")
    assert "Password changed" in html
    assert "Last changed" in html


# --- email change ----------------------------------------------------------------------------------------

# A new address for each test (see ``_fresh_new_email``): a late email of one test never answers for another.
NEW_EMAIL = "lovelace@analytical.example"


@pytest.fixture(autouse=True)
def _fresh_new_email(monkeypatch):
    monkeypatch.setitem(globals(), "NEW_EMAIL", f"lovelace-{uuid.uuid4().hex[:8]}@analytical.example")


def mail_with(mailbox, address: str, subject: str, timeout: float = 20.0, nth: int = 1, containing: str = ""):
    """The ``nth`` email to ``address`` with ``subject`` (and ``containing`` in its text), waiting for it."""
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [m for m in mailbox.to(address) if m["Subject"] == subject
                 and containing in m.get_body(preferencelist=("plain",)).get_content()]
        if len(found) >= nth:
            return found[nth - 1]
        time.sleep(0.05)
    raise AssertionError(f"no email {subject!r} to {address}")


def link_path(app, message) -> str:
    from tests.mailbox import Mailbox
    return Mailbox.link(message, app.config["APP_BASE_URL"])


def request_email_change(client, new_email: str | None = None, headers: dict | None = None):
    return submit(client, "/account/email", {"email": NEW_EMAIL if new_email is None else new_email},
                  form_page="/account/security", headers=headers)


def confirm_link(app, mailbox, address: str | None = None, nth: int = 1) -> str:
    return link_path(app, mail_with(mailbox, address or NEW_EMAIL, "Confirm your new Coach email address",
                                    nth=nth))


def undo_link(app, mailbox, address: str = "ada@example.com") -> str:
    # The notice names this test's new address: one of an earlier test may still be arriving.
    return link_path(app, mail_with(mailbox, address, "Your Coach email address was changed", containing=NEW_EMAIL))


def press(client, path: str):
    """Open an emailed link's page and press its button."""
    return submit(client, path, {}, form_page=path)


def is_signed_in(client) -> bool:
    return client.get("/account/security").status_code == 200


def test_an_email_change_waits_for_the_link_sent_to_the_new_address(ada_client, ada, app, mailbox):
    response = request_email_change(ada_client)
    assert response.status_code == 303
    security = page(ada_client, "/account/security")
    assert f"We sent a link to {NEW_EMAIL}" in security
    assert "Waiting for you to open the link" in security
    # The old address hears of it at once; nothing changes until the new one confirms.
    notice = mail_with(mailbox, "ada@example.com", "Your Coach email address is being changed")
    assert NEW_EMAIL in notice.get_body(preferencelist=("plain",)).get_content()
    db.session.expire_all()
    assert db.session.get(User, ada.id).email == "ada@example.com"
    assert log_actions(ada)[-1] == "email.change_requested"

    link = confirm_link(app, mailbox)
    assert f"Confirm {NEW_EMAIL}" in page(ada_client, link)
    done = press(ada_client, link)
    assert done.status_code == 303
    assert done.headers["Location"] == "/account/security"
    assert f"Your email address is now {NEW_EMAIL}." in page(ada_client, "/account/security")
    db.session.expire_all()
    assert db.session.get(User, ada.id).email == NEW_EMAIL
    assert "email.changed" in log_actions(ada)
    # The link worked once.
    again = ada_client.get(link)
    assert again.status_code == 410
    assert "already used or has expired" in again.get_data(as_text=True)
    # Signing in now takes the new address, not the old one.
    assert submit(app.test_client(), "/login", {"email": NEW_EMAIL, "password": PASSWORD},
                  form_page="/login").status_code == 303
    assert submit(app.test_client(), "/login", {"email": "ada@example.com", "password": PASSWORD},
                  form_page="/login").status_code == 422


def test_confirming_the_change_ends_every_other_session(ada_client, ada, app, mailbox):
    phone = app.test_client()
    log_in(phone, "ada@example.com")
    request_email_change(ada_client)
    link = confirm_link(app, mailbox)
    # Opened in a browser that is not signed in (the new address's mail app): every session ends.
    elsewhere = app.test_client()
    assert press(elsewhere, link).headers["Location"] == "/login"
    assert not is_signed_in(ada_client)
    assert not is_signed_in(phone)


def test_the_old_address_can_undo_the_change_and_everyone_is_signed_out(ada_client, ada, app, mailbox):
    request_email_change(ada_client)
    assert press(ada_client, confirm_link(app, mailbox)).status_code == 303
    undo = undo_link(app, mailbox)
    body = mail_with(mailbox, "ada@example.com", "Your Coach email address was changed", containing=NEW_EMAIL)
    assert "for 7 days" in body.get_body(preferencelist=("plain",)).get_content()

    stranger = app.test_client()
    assert "Undo and sign out everywhere" in page(stranger, undo)
    undone = press(stranger, undo)
    assert undone.status_code == 200
    html = undone.get_data(as_text=True)
    assert "Reset your password now" in html
    db.session.expire_all()
    assert db.session.get(User, ada.id).email == "ada@example.com"
    assert not is_signed_in(ada_client)
    assert "email.change_undone" in log_actions(ada)
    # A reset link goes to the restored address.
    assert mail_with(mailbox, "ada@example.com", "Reset your Coach password")
    # The undo link works once.
    assert stranger.get(undo).status_code == 410


def test_an_expired_confirm_link_and_an_expired_undo_link_are_gone(ada_client, ada, app, mailbox):
    from coach.accounts.models import EmailChange
    request_email_change(ada_client)
    link = confirm_link(app, mailbox)
    db.session.execute(update(EmailChange).values(expires_at=now() - timedelta(seconds=1)))
    db.session.commit()
    assert ada_client.get(link).status_code == 410
    refused = press_stale(ada_client, link)
    assert refused.status_code == 410
    db.session.expire_all()
    assert db.session.get(User, ada.id).email == "ada@example.com"

    request_email_change(ada_client)
    assert press(ada_client, confirm_link(app, mailbox, nth=2)).status_code == 303
    undo = undo_link(app, mailbox)
    db.session.execute(update(EmailChange).where(EmailChange.confirmed_at.is_not(None))
                       .values(undo_expires_at=now() - timedelta(seconds=1)))
    db.session.commit()
    assert ada_client.get(undo).status_code == 410
    db.session.expire_all()
    assert db.session.get(User, ada.id).email == NEW_EMAIL


def press_stale(client, path: str):
    """Press a link's button with a CSRF token from another page (the link's own page no longer has the form)."""
    return client.post(path, data={"csrf_token": csrf_from(page(client, "/account/security"))})


@pytest.mark.parametrize("path", ["/account/email/confirm/not-a-real-token", "/account/email/undo/not-a-real-token",
                                  "/account/email/confirm/" + "x" * 300])
def test_tampered_email_links_are_gone(client, ada, path):
    response = client.get(path)
    assert response.status_code == 410
    assert "already used or has expired" in response.get_data(as_text=True)
    assert client.post(path, data={}).status_code == 400  # no CSRF token


def test_an_address_with_an_account_is_refused_without_telling_the_requester(ada_client, ada, app, mailbox):
    make_user("grace@example.com", "Grace Hopper")
    db.session.commit()
    response = request_email_change(ada_client, "Grace@Example.com")
    assert response.status_code == 303
    assert "We sent a link to grace@example.com" in page(ada_client, "/account/security")
    notice = mail_with(mailbox, "grace@example.com", "Someone tried to use this address on Coach")
    assert "nothing was changed" in notice.get_body(preferencelist=("plain",)).get_content()
    assert [m for m in mailbox.to("grace@example.com") if "Confirm" in m["Subject"]] == []
    db.session.expire_all()
    assert db.session.get(User, ada.id).email == "ada@example.com"


@pytest.mark.parametrize("value, message", [("not-an-email", "Enter a valid email address."),
                                            ("", "Enter your email address."),
                                            ("ada@example.com", "That is already your email address.")])
def test_a_bad_new_address_says_why(ada_client, ada, value, message, mailbox):
    response = request_email_change(ada_client, value, headers=HX)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert message in html
    assert "<html" not in html
    assert mailbox.to("ada@example.com") == []


def test_an_email_change_needs_a_recent_sign_in(ada_client, ada, mailbox):
    age_sign_in(ada)
    response = request_email_change(ada_client)
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/account/confirm")
    assert mailbox.to(NEW_EMAIL) == []


def test_cancelling_a_change_voids_its_link(ada_client, ada, app, mailbox):
    request_email_change(ada_client)
    link = confirm_link(app, mailbox)
    token = csrf_from(page(ada_client, "/account/security"))
    assert ada_client.post("/account/email/cancel", data={"csrf_token": token}).status_code == 303
    assert ada_client.get(link).status_code == 410
    assert "Waiting for you" not in page(ada_client, "/account/security")


# --- sessions and devices --------------------------------------------------------------------------------

MAC_CHROME = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/120.0.0.0 Safari/537.36")
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.0 Mobile/15E148 Safari/604.1")


def session_ids(user: User) -> list[uuid.UUID]:
    db.session.expire_all()
    return list(db.session.scalars(select(UserSession.id).where(UserSession.user_id == user.id,
                                                                UserSession.revoked_at.is_(None))))


def test_devices_are_described_in_words():
    from coach.accounts.devices import describe
    assert describe(MAC_CHROME) == "Chrome on macOS"
    assert describe(IPHONE) == "Safari on iPhone"
    assert describe("") == "Unknown browser"
    assert describe("\x00garbage") == "Unknown browser"


def test_the_sessions_page_lists_each_device_and_marks_this_one(app, ada):
    laptop, phone = app.test_client(), app.test_client()
    log_in(laptop, "ada@example.com", user_agent=MAC_CHROME)
    log_in(phone, "ada@example.com", user_agent=IPHONE)
    html = page(laptop, "/account/sessions")
    assert "Chrome on macOS" in html
    assert "Safari on iPhone" in html
    assert html.count("This device") == 1
    assert html.index("This device") > html.index("Chrome on macOS")
    assert "127.0.0.1" in html
    assert html.count(">Password<") == 2
    assert html.count(">Sign out</button>") == 1  # the other one; this device logs out from the header


def test_signing_out_another_device_takes_effect_on_its_next_request(app, ada):
    laptop, phone = app.test_client(), app.test_client()
    log_in(laptop, "ada@example.com", user_agent=MAC_CHROME)
    log_in(phone, "ada@example.com", user_agent=IPHONE)
    assert is_signed_in(phone)
    listing = page(laptop, "/account/sessions")
    phone_id = next(sid for sid in session_ids(ada) if f"/account/sessions/{sid}/revoke" in listing)

    response = laptop.post(f"/account/sessions/{phone_id}/revoke", data={"csrf_token": csrf_from(listing)})
    assert response.status_code == 303
    assert "Signed out Safari on iPhone." in page(laptop, "/account/sessions")
    assert not is_signed_in(phone)
    assert is_signed_in(laptop)
    assert log_actions(ada)[-1] == "session.revoked"


def test_signing_out_a_device_with_htmx_swaps_the_list(app, ada):
    laptop, phone = app.test_client(), app.test_client()
    log_in(laptop, "ada@example.com", user_agent=MAC_CHROME)
    log_in(phone, "ada@example.com", user_agent=IPHONE)
    listing = page(laptop, "/account/sessions")
    phone_id = next(sid for sid in session_ids(ada) if f"/account/sessions/{sid}/revoke" in listing)
    response = laptop.post(f"/account/sessions/{phone_id}/revoke", data={"csrf_token": csrf_from(listing)},
                           headers={**HX, "HX-Target": "session-list"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<html" not in html
    assert "Safari on iPhone" not in html
    assert "You are signed in on this device only." in html


def test_revoking_someone_elses_session_is_a_404_and_changes_nothing(app, ada):
    grace = make_user("grace@example.com", "Grace Hopper")
    db.session.commit()
    ada_browser, grace_browser = app.test_client(), app.test_client()
    log_in(ada_browser, "ada@example.com")
    log_in(grace_browser, "grace@example.com")
    grace_session = session_ids(grace)[0]
    token = csrf_from(page(ada_browser, "/account/security"))

    response = ada_browser.post(f"/account/sessions/{grace_session}/revoke", data={"csrf_token": token})
    assert response.status_code == 404
    assert session_ids(grace) == [grace_session]
    assert is_signed_in(grace_browser)
    assert ada_browser.post("/account/sessions/not-a-uuid/revoke", data={"csrf_token": token}).status_code == 404
    assert ada_browser.post(f"/account/sessions/{uuid.uuid4()}/revoke", data={"csrf_token": token}
                            ).status_code == 404
    assert ada_browser.post(f"/account/sessions/{grace_session}/revoke", data={}).status_code == 400


def test_sign_out_everywhere_else_keeps_this_session_only(app, ada):
    make_user("grace@example.com", "Grace Hopper")
    db.session.commit()
    grace_browser = app.test_client()
    log_in(grace_browser, "grace@example.com")
    browsers = [app.test_client() for _ in range(3)]
    for browser in browsers:
        log_in(browser, "ada@example.com")
    token = csrf_from(page(browsers[0], "/account/sessions"))

    response = browsers[0].post("/account/sessions/revoke-others", data={"csrf_token": token})
    assert response.status_code == 303
    assert "Signed out 2 other sessions." in page(browsers[0], "/account/sessions")
    assert [is_signed_in(b) for b in browsers] == [True, False, False]
    assert len(session_ids(ada)) == 1
    assert is_signed_in(grace_browser)  # another person is untouched
    assert log_actions(ada)[-1] == "session.revoked_others"


# --- the security log ------------------------------------------------------------------------------------


def test_the_security_log_shows_sign_ins_and_failures_in_my_time_zone(app, ada):
    browser = app.test_client()
    assert submit(browser, "/login", {"email": "ada@example.com", "password": "wrong-password-here"},
                  form_page="/login").status_code == 422
    log_in(browser, "ada@example.com", user_agent=MAC_CHROME)
    html = page(browser, "/account/security/log")
    assert "Wrong password" in html
    assert "Signed in" in html
    assert "Chrome on macOS" in html
    assert "CET" in html or "CEST" in html  # Ada's zone is Europe/Berlin
    assert "More" not in html


def test_the_security_log_pages_with_more(app, ada):
    from coach.accounts.models import SecurityEvent
    start = now() - timedelta(days=1)
    for i in range(60):
        db.session.add(SecurityEvent(user_id=ada.id, action="login.failed", created_at=start + timedelta(minutes=i)))
    db.session.commit()
    browser = app.test_client()
    log_in(browser, "ada@example.com")
    first = page(browser, "/account/security/log")
    assert first.count("Wrong password") == 49  # 50 lines: the sign-in just made and 49 failures
    more = re.search(r'href="(/account/security/log\?after=[^"]+)"', first).group(1).replace("&amp;", "&")
    rest = page(browser, more, headers=HX)
    assert "<html" not in rest
    assert rest.count("Wrong password") == 11
    assert "More" not in rest


def test_another_persons_log_is_not_shown(app, ada):
    grace = make_user("grace@example.com", "Grace Hopper")
    db.session.commit()
    browser = app.test_client()
    assert submit(browser, "/login", {"email": "grace@example.com", "password": "wrong-password-here"},
                  form_page="/login").status_code == 422
    log_in(browser, "ada@example.com")
    assert "Wrong password" not in page(browser, "/account/security/log")
    assert log_actions(grace) == ["login.failed"]


def test_email_changes_past_their_links_are_swept(ctx, ada):
    from coach.accounts.jobs import sweep_expired_tokens
    from coach.accounts.models import EmailChange
    long_ago = now() - timedelta(days=30)
    for n, (confirmed, undo_until) in enumerate([(None, None), (long_ago, long_ago), (now(), now() + timedelta(days=7))]):
        db.session.add(EmailChange(user_id=ada.id, old_email="ada@example.com", new_email=f"n{n}@example.com",
                                   token_hash=f"{n}" * 64, expires_at=long_ago, confirmed_at=confirmed,
                                   undo_token_hash=f"u{n}".ljust(64, "x") if confirmed else None,
                                   undo_expires_at=undo_until))
    db.session.commit()
    sweep_expired_tokens()
    assert list(db.session.scalars(select(EmailChange.new_email))) == ["n2@example.com"]
