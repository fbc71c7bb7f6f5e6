"""Account security pages: confirm it is you, the security page, password quality, email change, sessions and
devices, the security log.

Through the real forms (CSRF included), real PostgreSQL, Valkey and SMTP.
"""
from __future__ import annotations

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
