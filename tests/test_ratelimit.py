"""Rate limits: per address, per user, per organization, login guessing and email flooding; a clear 429 answer."""
from __future__ import annotations

import time

import pytest

from tests.conftest import csrf_from
from tests.factories import PASSWORD, add_member, make_org, make_user

HX = {"HX-Request": "true"}


# -- helpers ---------------------------------------------------------------------------------------

def from_address(app, address: str):
    """A browser on its own IP address."""
    browser = app.test_client()
    browser.environ_base["REMOTE_ADDR"] = address
    return browser


def token(browser, path: str = "/login") -> str:
    """A CSRF token fetched outside the limits under test (they are raised again by the caller)."""
    return csrf_from(browser.get(path).get_data(as_text=True))


def try_login(browser, email: str, password: str = PASSWORD, csrf: str | None = None, headers=None):
    return browser.post("/login", data={"csrf_token": csrf or token(browser), "email": email,
                                        "password": password}, headers=headers or {})


def signed_in(app, email: str, address: str = "127.0.0.1"):
    browser = from_address(app, address)
    assert try_login(browser, email).status_code == 303
    return browser


def body(response) -> str:
    return response.get_data(as_text=True)


def assert_slowed_down(response, max_wait: int):
    """A 429 that tells the visitor (and their client) how long to wait."""
    assert response.status_code == 429
    assert 0 < int(response.headers["Retry-After"]) <= max_wait
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert int(response.headers["X-RateLimit-Limit"]) > 0
    assert int(response.headers["X-RateLimit-Reset"]) > 0
    assert "Too many requests. Wait a moment and try again." in body(response)


@pytest.fixture()
def limits(app, monkeypatch):
    """Set limits for this test only (they are read from the app's config on each request)."""

    def set_limits(**values):
        for name, value in values.items():
            monkeypatch.setitem(app.config, f"RATELIMIT_{name}", value)

    return set_limits


@pytest.fixture()
def club(ctx):
    """Harbour Rowing with Ada (admin) and Cora (coach); Rival Rowing with Otto."""
    ada = make_user("ada@example.com", "Ada Admin")
    harbour = make_org(ada, slug="harbour", name="Harbour Rowing")
    add_member(harbour, make_user("cora@example.com", "Cora Coach"), "coach")
    make_org(make_user("otto@example.com", "Otto"), slug="rival", name="Rival Rowing")
    return harbour


# -- per address ---------------------------------------------------------------------------------------

def test_too_many_requests_from_one_address_get_a_429_page(app, limits):
    limits(PER_IP="3 per minute")
    browser = from_address(app, "198.51.100.1")

    for _ in range(3):
        assert browser.get("/login").status_code == 200
    refused = browser.get("/login")

    assert_slowed_down(refused, 60)
    assert "<html" in body(refused)
    assert refused.headers["X-RateLimit-Limit"] == "3"


def test_429_for_htmx_is_a_small_fragment(app, limits):
    limits(PER_IP="1 per minute")
    browser = from_address(app, "198.51.100.2")
    browser.get("/login")

    refused = browser.get("/login", headers=HX)

    assert_slowed_down(refused, 60)
    assert "<html" not in body(refused)


def test_retry_after_is_the_time_left_in_the_window_not_a_guess(app, limits):
    limits(PER_IP="2 per 10 seconds")
    browser = from_address(app, "198.51.100.3")
    browser.get("/login")
    browser.get("/login")

    assert_slowed_down(browser.get("/login"), 10)


def test_other_addresses_are_not_slowed_by_one_busy_address(app, limits):
    limits(PER_IP="2 per minute")
    busy, calm = from_address(app, "198.51.100.4"), from_address(app, "198.51.100.5")
    for _ in range(3):
        busy.get("/login")

    assert busy.get("/login").status_code == 429
    assert calm.get("/login").status_code == 200


def test_health_checks_and_metrics_are_never_limited(app, limits):
    limits(PER_IP="2 per minute")
    monitor = app.test_client()  # 127.0.0.1: also allowed to read /metrics

    for _ in range(5):
        assert monitor.get("/health").status_code == 200
        assert monitor.get("/health/ready").status_code == 200
        assert monitor.get("/metrics").status_code == 200
    assert monitor.get("/login").status_code == 200


def test_limits_are_read_from_the_environment_on_each_request(app, limits):
    limits(PER_IP="2 per minute")
    browser = from_address(app, "198.51.100.6")
    browser.get("/login")
    browser.get("/login")
    assert browser.get("/login").status_code == 429

    limits(PER_IP="10 per minute")

    assert browser.get("/login").status_code == 200


# -- per signed-in user and per organization ----------------------------------------------------------

def test_one_user_is_limited_across_addresses(app, club, limits):
    limits(PER_USER="4 per minute")
    ada = signed_in(app, "ada@example.com", "198.51.100.10")

    for address in ("198.51.100.10", "198.51.100.11", "198.51.100.12", "198.51.100.13"):
        assert ada.get("/orgs", environ_base={"REMOTE_ADDR": address}).status_code == 200
    refused = ada.get("/orgs", environ_base={"REMOTE_ADDR": "198.51.100.14"})

    assert_slowed_down(refused, 60)
    assert signed_in(app, "cora@example.com", "198.51.100.10").get("/orgs").status_code == 200


def test_one_organization_is_limited_across_its_members(app, club, limits):
    limits(PER_ORG="3 per minute")
    ada = signed_in(app, "ada@example.com", "198.51.100.20")
    cora = signed_in(app, "cora@example.com", "198.51.100.21")
    otto = signed_in(app, "otto@example.com", "198.51.100.22")

    assert ada.get("/o/harbour/").status_code == 200
    assert ada.get("/o/harbour/admin/members").status_code == 200
    assert cora.get("/o/harbour/").status_code == 200
    refused = cora.get("/o/harbour/")

    assert_slowed_down(refused, 60)
    assert otto.get("/o/rival/").status_code == 200  # another organization
    assert cora.get("/orgs").status_code == 200  # pages outside the organization


# -- logging in ------------------------------------------------------------------------------------------

def test_failed_logins_for_one_account_from_one_address_are_refused(app, club, limits):
    limits(LOGIN_PER_ACCOUNT_IP="3 per 15 minutes")
    guesser = "198.51.100.30"
    for n in range(3):
        assert try_login(from_address(app, guesser), "ada@example.com", f"guess-{n}").status_code == 422

    refused = try_login(from_address(app, guesser), "ADA@example.com ", "guess-4")

    assert_slowed_down(refused, 15 * 60)
    # From that address even the right password waits: guessing must not pay off there.
    assert try_login(from_address(app, guesser), "ada@example.com").status_code == 429
    assert try_login(from_address(app, guesser), "cora@example.com").status_code == 303
    # The owner, anywhere else, is not locked out by the stranger.
    assert try_login(from_address(app, "198.51.100.31"), "ada@example.com").status_code == 303


def test_failed_logins_for_one_account_from_many_addresses_slow_it_down_and_never_lock_it(app, club, limits,
                                                                                          monkeypatch):
    limits(LOGIN_PER_ACCOUNT="3 per 15 minutes")
    monkeypatch.setitem(app.config, "LOGIN_SLOWDOWN_SECONDS", 0.6)
    for n, address in enumerate(("198.51.100.32", "198.51.100.33", "198.51.100.34")):
        assert try_login(from_address(app, address), "ada@example.com", f"guess-{n}").status_code == 422

    def timed_login(address, email, password=PASSWORD):
        browser = from_address(app, address)
        csrf = token(browser)  # outside the timing
        started = time.monotonic()
        response = try_login(browser, email, password, csrf=csrf)
        return response, time.monotonic() - started

    wrong, waited = timed_login("198.51.100.35", "ada@example.com", "guess-4")
    assert wrong.status_code == 422 and waited >= 0.6  # slowed, not refused
    right, waited = timed_login("198.51.100.36", "ada@example.com")
    assert right.status_code == 303 and waited >= 0.6  # the right password waits too, and gets in
    other, _ = timed_login("198.51.100.36", "cora@example.com")
    assert other.status_code == 303


def test_successful_logins_do_not_count(app, club, limits):
    limits(LOGIN_PER_ACCOUNT_IP="2 per 15 minutes", LOGIN_PER_ACCOUNT="2 per 15 minutes", LOGIN_PER_IP="2 per 15 minutes")

    for _ in range(5):
        assert try_login(from_address(app, "198.51.100.40"), "ada@example.com").status_code == 303
        assert try_login(from_address(app, "198.51.100.40"), "cora@example.com").status_code == 303


def test_failed_logins_from_one_address_are_limited_across_accounts(app, club, limits):
    limits(LOGIN_PER_IP="3 per 15 minutes")
    guesser = from_address(app, "198.51.100.50")
    for email in ("ada@example.com", "cora@example.com", "nobody@example.com"):
        assert try_login(guesser, email, "wrong-password").status_code == 422

    assert_slowed_down(try_login(guesser, "otto@example.com", "wrong-password"), 15 * 60)
    assert try_login(from_address(app, "198.51.100.51"), "otto@example.com").status_code == 303


def test_login_429_for_htmx_is_a_fragment(app, club, limits):
    limits(LOGIN_PER_ACCOUNT_IP="1 per 15 minutes")
    browser = from_address(app, "198.51.100.60")
    try_login(browser, "ada@example.com", "wrong-password", headers=HX)

    refused = try_login(browser, "ada@example.com", "wrong-password", headers=HX)

    assert_slowed_down(refused, 15 * 60)
    assert "<html" not in body(refused)


# -- emails ------------------------------------------------------------------------------------------------

def request_reset(browser, email: str):
    return browser.post("/password/forgot", data={"csrf_token": token(browser, "/password/forgot"), "email": email})


def sign_up(browser, email: str):
    return browser.post("/signup", data={"csrf_token": token(browser, "/signup"), "display_name": "New Person",
                                         "email": email, "password": "a-long-enough-password",
                                         "timezone": "UTC"})


def test_one_address_gets_one_email_budget_for_sign_ups_and_resets(app, limits, owner_db):
    limits(EMAIL_PER_IP="2 per hour")
    browser = from_address(app, "198.51.100.70")

    assert sign_up(browser, "first@example.com").status_code == 303
    assert request_reset(browser, "someone@example.com").status_code == 303
    refused = sign_up(browser, "second@example.com")

    assert_slowed_down(refused, 3600)
    assert request_reset(browser, "someone@example.com").status_code == 429
    assert owner_db.execute("SELECT count(*) FROM pending_signups").fetchone()[0] == 1
    assert sign_up(from_address(app, "198.51.100.71"), "third@example.com").status_code == 303


def test_refused_email_forms_do_not_use_up_the_budget(app, limits):
    limits(EMAIL_PER_IP="1 per hour")
    browser = from_address(app, "198.51.100.72")

    for _ in range(3):
        assert request_reset(browser, "not-an-email").status_code == 422
    assert request_reset(browser, "someone@example.com").status_code == 303


def request_sign_in_link(browser, email: str):
    return browser.post("/login/link", data={"csrf_token": token(browser, "/login/link"), "email": email})


def test_sign_in_links_for_one_account_are_limited_across_addresses(app, club, limits):
    limits(SIGNIN_LINK_PER_ACCOUNT="2 per 15 minutes")
    assert request_sign_in_link(from_address(app, "198.51.100.80"), "ada@example.com").status_code == 303
    assert request_sign_in_link(from_address(app, "198.51.100.81"), "ADA@example.com").status_code == 303

    # Her inbox is not flooded (and the links already sent still work).
    assert_slowed_down(request_sign_in_link(from_address(app, "198.51.100.82"), "ada@example.com"), 15 * 60)
    assert request_sign_in_link(from_address(app, "198.51.100.82"), "cora@example.com").status_code == 303


def test_sign_in_links_draw_on_the_email_budget_of_the_address(app, club, limits):
    limits(EMAIL_PER_IP="2 per hour")
    browser = from_address(app, "198.51.100.83")
    assert request_sign_in_link(browser, "ada@example.com").status_code == 303
    assert request_reset(browser, "cora@example.com").status_code == 303
    assert_slowed_down(request_sign_in_link(browser, "otto@example.com"), 3600)
