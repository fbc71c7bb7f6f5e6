"""Two-factor sign-in: setting up an authenticator app, codes that work once (drift, expiry, replay), recovery codes,
turning it off, the second sign-in step and its throttling, lockout and unusual sign-in emails, and an organization
that requires a second factor of its admins and coaches."""
from __future__ import annotations

import os
import re
import threading
import time
import uuid
from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import select

from coach.accounts import twofactor
from coach.accounts.models import Passkey, RecoveryCode, SecurityEvent, User, UserSession
from coach.clock import now
from coach.extensions import db
from coach.platform import sealing
from tests.conftest import csrf_from
from tests.factories import PASSWORD, add_member, make_org, make_user

CHROME_LINUX = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
                "Safari/537.36")
FIREFOX_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"


# -- helpers ---------------------------------------------------------------------------------------------

def body(response) -> str:
    return response.get_data(as_text=True)


def totp_of(user: User) -> pyotp.TOTP:
    db.session.flush()
    db.session.refresh(user)
    return pyotp.TOTP(sealing.unseal(user.totp_secret))


def code_at(user: User, offset_steps: int = 0) -> str:
    """The code of ``user``'s app ``offset_steps`` steps of 30 s from now."""
    return totp_of(user).at(now() + timedelta(seconds=30 * offset_steps))


def enrol(user: User) -> list[str]:
    """Turn two-factor on for ``user`` through the service (as the set-up page does); the recovery codes.
    The step used for confirming is pushed back so that the test's own first code is not a replay."""
    twofactor.begin_enrolment(user)
    codes = twofactor.confirm_enrolment(user, code_at(user, -1))
    db.session.commit()
    return codes


def form_post(client, path: str, data: dict, page: str | None = None, **kwargs):
    token = csrf_from(body(client.get(page or path)))
    return client.post(path, data={"csrf_token": token, **data}, **kwargs)


def log_in(client, email: str, password: str = PASSWORD, next: str | None = None, **kwargs):
    path = "/login" + (f"?next={next}" if next else "")
    return form_post(client, path, {"email": email, "password": password}, page="/login", **kwargs)


def verify(client, code: str, **kwargs):
    return form_post(client, "/login/verify", {"code": code}, **kwargs)


def recover(client, code: str, **kwargs):
    return form_post(client, "/login/recovery", {"code": code}, **kwargs)


def signed_in(client) -> bool:
    response = client.get("/profile")
    return response.status_code == 200


def sessions_of(user_id) -> list[UserSession]:
    return list(db.session.scalars(select(UserSession).where(UserSession.user_id == user_id)
                                   .order_by(UserSession.created_at)))


def log_actions(user_id) -> list[str]:
    return list(db.session.scalars(select(SecurityEvent.action).where(SecurityEvent.user_id == user_id)
                                   .order_by(SecurityEvent.created_at)))


@pytest.fixture()
def limits(app, monkeypatch):
    def set_limits(**values):
        for name, value in values.items():
            monkeypatch.setitem(app.config, name, value)

    return set_limits


@pytest.fixture()
def ada(ctx):
    return make_user("ada@example.com", "Ada Lovelace")


@pytest.fixture()
def ada_2fa(ada):
    return ada, enrol(ada)


# -- sealing ---------------------------------------------------------------------------------------------

def test_sealed_text_opens_only_with_a_configured_key_and_keys_rotate(app, ctx, monkeypatch):
    token = sealing.seal("JBSWY3DPEHPK3PXP")
    assert "JBSWY3DPEHPK3PXP" not in token
    assert sealing.unseal(token) == "JBSWY3DPEHPK3PXP"

    old, new = sealing.Fernet.generate_key().decode(), sealing.Fernet.generate_key().decode()
    monkeypatch.setitem(app.config, "ENCRYPTION_KEYS", old)
    sealed_with_old = sealing.seal("calendar password")
    with pytest.raises(sealing.InvalidToken):  # the derived key no longer opens what the old key sealed
        monkeypatch.setitem(app.config, "ENCRYPTION_KEYS", new)
        sealing.unseal(sealed_with_old)

    monkeypatch.setitem(app.config, "ENCRYPTION_KEYS", f"{new},{old}")
    assert sealing.unseal(sealed_with_old) == "calendar password"
    resealed = sealing.reseal(sealed_with_old)
    monkeypatch.setitem(app.config, "ENCRYPTION_KEYS", new)
    assert sealing.unseal(resealed) == "calendar password"


# -- the service -----------------------------------------------------------------------------------------

def test_enrolment_keeps_the_secret_sealed_and_turns_on_with_a_code(ada):
    started = twofactor.begin_enrolment(ada)
    db.session.commit()

    assert started.secret not in ada.totp_secret  # sealed at rest
    assert started.uri.startswith("otpauth://totp/Coach:ada%40example.com?secret=")
    assert "issuer=Coach" in started.uri
    assert started.qr_data_uri.startswith("data:image/svg+xml")
    assert not twofactor.is_enabled(ada) and not twofactor.has_second_factor(ada)
    assert twofactor.begin_enrolment(ada).secret == started.secret  # the page shows the same key again

    codes = twofactor.confirm_enrolment(ada, pyotp.TOTP(started.secret).now())
    db.session.commit()

    assert twofactor.is_enabled(ada) and twofactor.has_second_factor(ada)
    assert len(codes) == 10 and len(set(codes)) == 10
    stored = list(db.session.scalars(select(RecoveryCode.code_hash).where(RecoveryCode.user_id == ada.id)))
    assert len(stored) == 10 and not set(codes) & set(stored)  # hashes only
    assert "twofactor.enabled" in log_actions(ada.id)


def test_enrolment_refuses_a_wrong_code(ada):
    started = twofactor.begin_enrolment(ada)
    wrong = "000000" if pyotp.TOTP(started.secret).now() != "000000" else "111111"
    with pytest.raises(twofactor.TwoFactorError, match="not correct"):
        twofactor.confirm_enrolment(ada, wrong)


def test_codes_within_one_step_of_drift_work_and_older_ones_do_not(ada_2fa):
    ada, _ = ada_2fa
    assert not twofactor.check_code(ada, code_at(ada, -3))  # expired
    assert not twofactor.check_code(ada, code_at(ada, 3))  # too far ahead
    assert not twofactor.check_code(ada, "12ab56")
    assert twofactor.check_code(ada, code_at(ada, 1))  # the phone's clock runs 30 s ahead
    db.session.commit()
    assert log_actions(ada.id).count("twofactor.failed") == 3


def test_a_code_works_once_and_an_older_one_is_refused_after_it(ada_2fa):
    ada, _ = ada_2fa
    code = code_at(ada)
    assert twofactor.check_code(ada, code)
    db.session.commit()

    assert not twofactor.check_code(ada, code)  # replayed
    assert not twofactor.check_code(ada, code_at(ada, -1))  # one step older than the one used


def test_two_uses_of_one_code_at_once_let_one_in(app, ada_2fa):
    ada, _ = ada_2fa
    code, user_id = code_at(ada), ada.id
    results, start = [], threading.Barrier(2)

    def use():
        with app.app_context():
            user = db.session.get(User, user_id)
            start.wait()
            results.append(twofactor.check_code(user, code))
            db.session.commit()

    threads = [threading.Thread(target=use) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert sorted(results) == [False, True]


def test_a_recovery_code_works_once(ada_2fa):
    ada, codes = ada_2fa
    assert twofactor.use_recovery_code(ada, codes[0].upper().replace("-", " "))  # as typed off paper
    db.session.commit()
    assert not twofactor.use_recovery_code(ada, codes[0])
    assert not twofactor.use_recovery_code(ada, "not-a-code")
    assert twofactor.recovery_codes_left(ada) == 9
    assert "recovery.used" in log_actions(ada.id)


def test_new_recovery_codes_replace_the_old_ones(ada_2fa):
    ada, old = ada_2fa
    new = twofactor.regenerate_recovery_codes(ada)
    db.session.commit()
    assert not twofactor.use_recovery_code(ada, old[1])
    assert twofactor.use_recovery_code(ada, new[1])


def test_turning_off_needs_the_password_and_a_code(ada_2fa):
    ada, _ = ada_2fa
    with pytest.raises(twofactor.TwoFactorError, match="password is not correct"):
        twofactor.disable(ada, "wrong password!", code_at(ada))
    db.session.rollback()
    with pytest.raises(twofactor.TwoFactorError, match="code is not correct"):
        twofactor.disable(ada, PASSWORD, "000000" if code_at(ada) != "000000" else "111111")
    db.session.rollback()

    twofactor.disable(ada, PASSWORD, code_at(ada))
    db.session.commit()

    assert not twofactor.is_enabled(ada) and ada.totp_secret is None
    assert twofactor.recovery_codes_left(ada) == 0
    assert "twofactor.disabled" in log_actions(ada.id)


def test_a_passkey_alone_is_a_second_factor(ada):
    db.session.add(Passkey(user_id=ada.id, credential_id=os.urandom(32), public_key=b"key", name="Laptop"))
    db.session.commit()
    assert twofactor.has_second_factor(ada) and not twofactor.is_enabled(ada)


# -- the second sign-in step -----------------------------------------------------------------------------

def test_password_alone_does_not_sign_in_a_person_with_two_factor(client, ada_2fa):
    ada, _ = ada_2fa
    answer = log_in(client, "ada@example.com")

    assert answer.status_code == 303 and answer.headers["Location"].endswith("/login/verify")
    assert not signed_in(client)
    page = body(client.get("/login/verify"))
    assert "6-digit code" in page and "Use a recovery code instead" in page
    assert sessions_of(ada.id) == []


def test_the_code_signs_in_and_the_next_page_survives(client, ada_2fa):
    ada, _ = ada_2fa
    log_in(client, "ada@example.com", next="/profile")

    wrong = verify(client, "000000" if code_at(ada) != "000000" else "111111")
    assert wrong.status_code == 422 and "That code is not correct." in body(wrong)
    answer = verify(client, code_at(ada))

    assert answer.status_code == 303 and answer.headers["Location"] == "/profile"
    assert signed_in(client)
    assert [s.second_factor for s in sessions_of(ada.id)] == ["totp"]


def test_a_used_code_does_not_sign_in_again(app, ada_2fa):
    ada, _ = ada_2fa
    code = code_at(ada)
    first, second = app.test_client(), app.test_client()
    log_in(first, "ada@example.com")
    log_in(second, "ada@example.com")
    assert verify(first, code).status_code == 303

    replay = verify(second, code)

    assert replay.status_code == 422 and not signed_in(second)


def test_the_second_step_expires_after_five_minutes(client, ada_2fa):
    ada, _ = ada_2fa
    log_in(client, "ada@example.com")
    with client.session_transaction() as cookie:
        cookie["second_step"] = {**cookie["second_step"], "at": time.time() - 301}

    answer = client.get("/login/verify")

    assert answer.status_code == 303 and answer.headers["Location"].endswith("/login")
    assert "took too long" in body(client.get("/login"))


def test_the_second_step_without_a_password_first_goes_to_login(client, ada_2fa):
    answer = client.get("/login/recovery")
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/login")


def test_a_recovery_code_signs_in_once(app, ada_2fa):
    ada, codes = ada_2fa
    browser = app.test_client()
    log_in(browser, "ada@example.com")
    answer = recover(browser, codes[3])
    assert answer.status_code == 303
    assert "Recovery code used: 9 left" in body(browser.get(answer.headers["Location"], follow_redirects=True))

    again = app.test_client()
    log_in(again, "ada@example.com")
    refused = recover(again, codes[3])

    assert refused.status_code == 422 and "not correct or was already used" in body(refused)
    assert not signed_in(again)
    assert [s.second_factor for s in sessions_of(ada.id)] == ["recovery"]


def test_an_emailed_sign_in_link_also_asks_for_the_code(app, client, ada_2fa, mailbox):
    ada, _ = ada_2fa
    form_post(client, "/login/link", {"email": "ada@example.com"})
    link = mailbox.wait_for("ada@example.com")
    path = re.search(r"https?://[^/]+(/login/link/\S+)", link.get_body(("plain",)).get_content()).group(1)

    answer = form_post(client, path, {})

    assert answer.headers["Location"].endswith("/login/verify") and not signed_in(client)
    assert verify(client, code_at(ada)).status_code == 303 and signed_in(client)


def test_a_person_with_only_a_passkey_signs_in_with_the_password_alone(client, ada):
    db.session.add(Passkey(user_id=ada.id, credential_id=os.urandom(32), public_key=b"key", name="Laptop"))
    db.session.commit()
    assert log_in(client, "ada@example.com").status_code == 303
    assert signed_in(client)


# -- throttling and lockout ------------------------------------------------------------------------------

def test_wrong_codes_are_refused_with_retry_after_and_the_person_is_told_once(app, client, ada_2fa, limits,
                                                                            mailbox, job_runner):
    ada, _ = ada_2fa
    limits(RATELIMIT_TWOFACTOR_PER_ACCOUNT="3 per 15 minutes")
    wrong = "000000" if code_at(ada) != "000000" else "111111"
    log_in(client, "ada@example.com")
    with job_runner.paused():
        for _ in range(3):
            assert verify(client, wrong).status_code == 422
        refused = verify(client, code_at(ada))  # even the right code waits now
        job_runner.drain()

    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 900
    assert "Too many requests" in body(refused)
    notice = mailbox.wait_for("ada@example.com")
    assert notice["Subject"] == "Someone is trying to sign in to your Coach account"
    assert "two-factor code" in notice.get_body(("plain",)).get_content()
    assert log_actions(ada.id).count("login.locked") == 1
    # The recovery-code form draws on the same budget.
    assert recover(client, "aaaaa-bbbbb").status_code == 429


def test_wrong_codes_from_one_address_are_refused_across_accounts(app, ctx, limits):
    limits(RATELIMIT_TWOFACTOR_PER_IP="2 per 15 minutes")
    people = [make_user(f"p{i}@example.com") for i in range(2)]
    for person in people:
        enrol(person)
    browser = app.test_client()
    browser.environ_base["REMOTE_ADDR"] = "198.51.100.40"
    for person in people:
        log_in(browser, person.email)
        assert recover(browser, "aaaaa-bbbbb").status_code == 422
    log_in(browser, people[0].email)

    assert recover(browser, "aaaaa-bbbbb").status_code == 429
    elsewhere = app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "198.51.100.41"
    log_in(elsewhere, people[1].email)
    assert recover(elsewhere, "aaaaa-bbbbb").status_code == 422


def test_wrong_passwords_past_the_account_limit_email_the_person_once(app, ada, limits, mailbox, job_runner):
    limits(RATELIMIT_LOGIN_PER_ACCOUNT="2 per 15 minutes", LOGIN_SLOWDOWN_SECONDS=0)
    with job_runner.paused():
        for address in ("198.51.100.50", "198.51.100.51", "198.51.100.52"):
            browser = app.test_client()
            browser.environ_base["REMOTE_ADDR"] = address
            assert log_in(browser, "ada@example.com", "wrong password!").status_code == 422
        job_runner.drain()

    notices = mailbox.to("ada@example.com")
    assert [m["Subject"] for m in notices] == ["Someone is trying to sign in to your Coach account"]
    assert "wrong password" in notices[0].get_body(("plain",)).get_content()
    assert log_actions(ada.id).count("login.locked") == 1


# -- unusual sign-ins ------------------------------------------------------------------------------------

def test_a_sign_in_from_a_new_device_is_emailed_but_not_the_first_or_a_known_one(app, ada, mailbox, job_runner):
    with job_runner.paused():
        for agent in (CHROME_LINUX, CHROME_LINUX):
            browser = app.test_client()
            assert log_in(browser, "ada@example.com", headers={"User-Agent": agent}).status_code == 303
        job_runner.drain()
        assert mailbox.to("ada@example.com") == []

        log_in(app.test_client(), "ada@example.com", headers={"User-Agent": FIREFOX_WINDOWS})
        job_runner.drain()

    notice = mailbox.wait_for("ada@example.com")
    assert notice["Subject"] == "New sign-in to your Coach account"
    text = notice.get_body(("plain",)).get_content()
    assert "Firefox on Windows" in text and "a device it has not used before" in text
    assert log_actions(ada.id).count("login.unusual") == 1


def test_a_sign_in_from_a_new_country_is_emailed(app, ada, mailbox, job_runner, monkeypatch):
    monkeypatch.setitem(app.config, "COUNTRY_HEADER", "CF-IPCountry")
    with job_runner.paused():
        for country in ("DE", "DE"):
            log_in(app.test_client(), "ada@example.com", headers={"User-Agent": CHROME_LINUX,
                                                                  "CF-IPCountry": country})
        job_runner.drain()
        assert mailbox.to("ada@example.com") == []
        log_in(app.test_client(), "ada@example.com", headers={"User-Agent": CHROME_LINUX, "CF-IPCountry": "BR"})
        job_runner.drain()

    text = mailbox.wait_for("ada@example.com").get_body(("plain",)).get_content()
    assert "a country it has not been used from before" in text and "Country: BR" in text


# -- pages: setting up, codes, turning off ---------------------------------------------------------------

def test_setting_up_from_the_page_shows_the_codes_once_with_a_download(app, client, ada):
    log_in(client, "ada@example.com")
    page = body(client.get("/account/two-factor"))
    assert 'src="data:image/svg+xml' in page and "style=" not in page
    key = re.search(r'<code id="manual-key">([A-Z2-7 ]+)</code>', page).group(1).replace(" ", "")

    answer = form_post(client, "/account/two-factor", {"code": pyotp.TOTP(key).now()})

    assert answer.status_code == 303 and answer.headers["Location"].endswith("/account/two-factor/recovery-codes")
    shown = body(client.get("/account/two-factor/recovery-codes"))
    codes = re.findall(r"<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>", shown)
    assert len(codes) == 10
    assert 'download="coach-recovery-codes.txt"' in shown and "data:text/plain;charset=utf-8;base64," in shown
    again = body(client.get("/account/two-factor/recovery-codes"))
    assert "<li><code>" not in again and not any(code in again for code in codes) and "no longer shown" in again
    db.session.refresh(ada)
    assert twofactor.is_enabled(ada)


def test_a_wrong_code_at_set_up_is_a_message_not_an_error(client, ada):
    log_in(client, "ada@example.com")
    answer = form_post(client, "/account/two-factor", {"code": "12"})
    assert answer.status_code == 422 and "That code is not correct." in body(answer)
    answer = form_post(client, "/account/two-factor", {"code": "x" * 5000})
    assert answer.status_code == 422


def test_turning_off_from_the_page_needs_password_and_code(client, ada_2fa):
    ada, codes = ada_2fa
    log_in(client, "ada@example.com")
    verify(client, code_at(ada))
    page = body(client.get("/account/two-factor"))
    assert "10 of 10 recovery codes left" in page

    refused = form_post(client, "/account/two-factor/disable", {"password": PASSWORD, "code": ""},
                        page="/account/two-factor")
    assert refused.status_code == 422
    refused = form_post(client, "/account/two-factor/disable", {"password": "not my password", "code": codes[0]},
                        page="/account/two-factor")
    assert refused.status_code == 422 and "password is not correct" in body(refused)

    done = form_post(client, "/account/two-factor/disable", {"password": PASSWORD, "code": codes[0]},
                     page="/account/two-factor")

    assert done.status_code == 303
    db.session.refresh(ada)
    assert not twofactor.is_enabled(ada)


def test_new_recovery_codes_from_the_page(client, ada_2fa):
    ada, old = ada_2fa
    log_in(client, "ada@example.com")
    verify(client, code_at(ada))

    answer = form_post(client, "/account/two-factor/recovery-codes", {}, page="/account/two-factor")

    assert answer.status_code == 303
    shown = body(client.get(answer.headers["Location"]))
    assert len(re.findall(r"<li><code>", shown)) == 10 and old[0] not in shown


def test_set_up_asks_to_confirm_identity_after_the_sign_in_is_old(app, client, ada):
    log_in(client, "ada@example.com")
    db.session.execute(UserSession.__table__.update().values(reauthenticated_at=now() - timedelta(hours=1)))
    db.session.commit()
    answer = client.get("/account/two-factor")
    assert answer.status_code in (302, 303) and "/account/confirm" in answer.headers["Location"]


# -- an organization that requires a second factor -------------------------------------------------------

@pytest.fixture()
def strict_club(ctx):
    """Harbour Rowing requires two-factor: Ada admin, Cora coach, Ath athlete; Cora also coaches at Rival
    Rowing, which does not."""
    ada = make_user("ada@example.com", "Ada Admin")
    harbour = make_org(ada, slug="harbour", name="Harbour Rowing")
    cora = make_user("cora@example.com", "Cora Coach")
    add_member(harbour, cora, "coach")
    add_member(harbour, make_user("ath@example.com", "Ath Lete"), "athlete")
    rival = make_org(make_user("otto@example.com"), slug="rival", name="Rival Rowing")
    add_member(rival, cora, "coach")
    harbour.require_two_factor = True
    db.session.commit()
    return harbour


def test_a_coach_without_a_second_factor_is_sent_to_set_up(app, strict_club):
    cora = app.test_client()
    assert log_in(cora, "cora@example.com").headers["Location"].endswith("/account/two-factor")

    for path in ("/o/harbour/", "/o/harbour/spaces"):
        answer = cora.get(path)
        assert answer.status_code == 303 and answer.headers["Location"].endswith("/account/two-factor")
    page = body(cora.get("/account/two-factor"))
    assert "Harbour Rowing requires two-factor authentication" in page

    htmx = cora.get("/o/harbour/", headers={"HX-Request": "true"})
    assert htmx.status_code == 204 and htmx.headers["HX-Redirect"].endswith("/account/two-factor")
    assert cora.get("/o/rival/").status_code == 200  # the other organization asks nothing


def test_an_athlete_is_not_asked_and_a_coach_with_two_factor_gets_in(app, strict_club):
    athlete = app.test_client()
    assert log_in(athlete, "ath@example.com").headers["Location"].endswith("/o/harbour/")  # their one organization
    assert athlete.get("/o/harbour/").status_code == 200

    cora = db.session.scalar(select(User).where(User.email == "cora@example.com"))
    enrol(cora)
    coach = app.test_client()
    log_in(coach, "cora@example.com")
    verify(coach, code_at(cora))
    assert coach.get("/o/harbour/").status_code == 200


def test_a_passkey_satisfies_the_requirement(app, strict_club):
    ada = db.session.scalar(select(User).where(User.email == "ada@example.com"))
    db.session.add(Passkey(id=uuid.uuid4(), user_id=ada.id, credential_id=os.urandom(32), public_key=b"k",
                           name="Laptop"))
    db.session.commit()
    admin = app.test_client()
    assert log_in(admin, "ada@example.com").headers["Location"].endswith("/o/harbour/")  # her one organization
    assert admin.get("/o/harbour/").status_code == 200
