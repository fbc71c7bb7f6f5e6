"""Passkeys: add one, sign in with it, confirm identity with it, rename and remove it; and every answer that must
be refused (another person's passkey, a wrong origin or relying party, a replayed challenge, a counter that went
backwards, malformed JSON) is a clear 4xx, never a 500, with nothing written.

The authenticator is software here: an EC P-256 key (cryptography) whose answers are built byte for byte as a
browser hands them over (CBOR attestation object with "none" attestation, clientDataJSON, authenticatorData with
flags and counter, an ECDSA signature), so the server's WebAuthn verification runs for real.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from datetime import timedelta

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select, update

from coach.accounts import passkeys as passkey_service
from coach.accounts.models import Passkey, SecurityEvent, UserSession
from coach.clock import now
from coach.extensions import db
from tests.conftest import csrf_from
from tests.factories import PASSWORD, make_org, make_user

# The test client's requests go to http://localhost: the relying party is derived from them.
RP_ID = "localhost"
ORIGIN = "http://localhost"

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SoftAuthenticator:
    """A passkey authenticator in Python: one P-256 credential, answering as a browser would pass it on."""

    def __init__(self, sign_count_step: int = 1):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.sign_count = 0
        self.step = sign_count_step
        self.user_handle: str | None = None

    def cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    def _auth_data(self, rp_id: str, flags: int, count: int, attested: bool = False) -> bytes:
        data = hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + count.to_bytes(4, "big")
        if attested:
            data += bytes(16) + len(self.credential_id).to_bytes(2, "big") + self.credential_id + self.cose_key()
        return data

    @staticmethod
    def _client_data(kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}).encode()

    def create(self, options: dict, origin: str = ORIGIN, rp_id: str | None = None) -> dict:
        """The answer to ``navigator.credentials.create()`` for ``options``."""
        self.user_handle = options["user"]["id"]
        auth_data = self._auth_data(rp_id or options["rp"]["id"], UP | UV | BE | BS | AT, self.sign_count,
                                    attested=True)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {"id": b64(self.credential_id), "rawId": b64(self.credential_id), "type": "public-key",
                "authenticatorAttachment": "platform", "clientExtensionResults": {},
                "response": {"clientDataJSON": b64(self._client_data("webauthn.create", options["challenge"], origin)),
                             "attestationObject": b64(attestation), "transports": ["internal", "hybrid"]}}

    def get(self, options: dict, origin: str = ORIGIN, rp_id: str | None = None, count: int | None = None,
            user_handle: str | None = "same") -> dict:
        """The answer to ``navigator.credentials.get()`` for ``options``, signed with this credential's key."""
        self.sign_count = count if count is not None else self.sign_count + self.step
        auth_data = self._auth_data(rp_id or options.get("rpId") or RP_ID, UP | UV | BE | BS, self.sign_count)
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return {"id": b64(self.credential_id), "rawId": b64(self.credential_id), "type": "public-key",
                "authenticatorAttachment": "platform", "clientExtensionResults": {},
                "response": {"clientDataJSON": b64(client_data), "authenticatorData": b64(auth_data),
                             "signature": b64(signature),
                             "userHandle": self.user_handle if user_handle == "same" else user_handle}}


# --- helpers -------------------------------------------------------------------------------------------

def token(client, path: str = "/login") -> str:
    return csrf_from(client.get(path).get_data(as_text=True))


def post_json(client, url: str, csrf: str, body=None, **kwargs):
    return client.post(url, json=body if body is not None else {}, headers={"X-CSRFToken": csrf}, **kwargs)


def logged_in_client(app, email: str):
    browser = app.test_client()
    response = browser.post("/login", data={"csrf_token": token(browser), "email": email, "password": PASSWORD})
    assert response.status_code == 303
    return browser


def add_passkey(client, device: SoftAuthenticator, name: str = "My laptop", origin: str = ORIGIN):
    csrf = token(client, "/profile")
    options = post_json(client, "/account/passkeys/options", csrf)
    assert options.status_code == 200, options.get_data(as_text=True)
    return post_json(client, "/account/passkeys/verify", csrf,
                     {"credential": device.create(options.get_json(), origin=origin), "name": name})


def sign_in(client, device: SoftAuthenticator, next: str | None = None, **answer):
    csrf = token(client)
    options = post_json(client, "/login/passkey/options", csrf)
    assert options.status_code == 200
    url = "/login/passkey/verify" + (f"?next={next}" if next else "")
    return post_json(client, url, csrf, {"credential": device.get(options.get_json(), **answer)}), options.get_json()


def is_signed_in(client) -> bool:
    return client.get("/profile").status_code == 200


def keys_of(user) -> list[Passkey]:
    db.session.expire_all()
    return list(db.session.scalars(select(Passkey).where(Passkey.user_id == user.id)))


def log_of(user) -> list[str]:
    db.session.expire_all()
    return [e.action for e in db.session.scalars(select(SecurityEvent).where(SecurityEvent.user_id == user.id)
                                                 .order_by(SecurityEvent.created_at))]


def age_sessions(user, minutes: int = 11) -> None:
    """Make ``user``'s sessions' last sign-in or confirmation older than the re-authentication window."""
    db.session.execute(update(UserSession).where(UserSession.user_id == user.id)
                       .values(reauthenticated_at=now() - timedelta(minutes=minutes)))
    db.session.commit()


@pytest.fixture()
def ada(ctx):
    return make_user("ada@example.com", "Ada Lovelace")


@pytest.fixture()
def ada_client(app, ada):
    return logged_in_client(app, "ada@example.com")


@pytest.fixture()
def device():
    return SoftAuthenticator()


# --- adding --------------------------------------------------------------------------------------------

def test_member_adds_a_passkey_and_sees_it_on_the_security_page(ada_client, ada, device):
    response = add_passkey(ada_client, device, name="Work laptop")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"redirect": "/account/security#passkeys"}

    page = ada_client.get("/account/security").get_data(as_text=True)
    assert "Work laptop" in page
    assert "not used yet" in page
    assert "Passkey \u201cWork laptop\u201d added" in page
    [key] = keys_of(ada)
    assert key.credential_id == device.credential_id
    assert key.transports == "internal,hybrid" and key.backed_up is True and key.sign_count == 0
    assert "passkey.added" in log_of(ada)


def test_registration_options_name_the_account_exclude_its_passkeys_and_prefer_discoverable(ada_client, ada,
                                                                                            device):
    add_passkey(ada_client, device)
    options = post_json(ada_client, "/account/passkeys/options", token(ada_client, "/profile")).get_json()
    assert options["rp"] == {"name": "Coach", "id": "localhost"}
    assert unb64(options["user"]["id"]) == ada.id.bytes
    assert options["user"]["name"] == "ada@example.com"
    assert [c["id"] for c in options["excludeCredentials"]] == [b64(device.credential_id)]
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert options["timeout"] == 300_000


def test_a_blank_name_becomes_the_device_and_a_long_one_is_refused(ada_client, ada):
    assert add_passkey(ada_client, SoftAuthenticator(), name="  ").status_code == 200
    assert keys_of(ada)[0].name == "Unknown browser"  # the test client's User-Agent, as the sessions page says it
    refused = add_passkey(ada_client, SoftAuthenticator(), name="x" * 61)
    assert refused.status_code == 422
    assert "at most 60 characters" in refused.get_json()["error"]
    assert len(keys_of(ada)) == 1


def test_adding_a_passkey_needs_a_recent_sign_in(ada_client, ada, device):
    age_sessions(ada)
    response = post_json(ada_client, "/account/passkeys/options", token(ada_client, "/profile"))
    assert response.status_code == 403
    assert response.get_json()["redirect"].startswith("/account/confirm")
    assert keys_of(ada) == []


def test_a_passkey_made_for_another_website_is_not_added(ada_client, ada, device):
    response = add_passkey(ada_client, device, origin="https://evil.example")
    assert response.status_code == 400
    assert "another website" in response.get_json()["error"]
    assert keys_of(ada) == []


def test_the_same_passkey_cannot_be_added_twice(ada_client, ada, device):
    assert add_passkey(ada_client, device).status_code == 200
    again = add_passkey(ada_client, device)
    assert again.status_code == 409
    assert "already registered" in again.get_json()["error"]


# --- signing in ----------------------------------------------------------------------------------------

def test_passkey_signs_in_without_password_or_code(app, ada_client, ada, device):
    add_passkey(ada_client, device)
    browser = app.test_client()
    response, options = sign_in(browser, device)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"redirect": "/orgs"}
    # Discoverable: the options name no credential, so they tell nobody which accounts exist.
    assert options.get("allowCredentials", []) == []
    assert is_signed_in(browser)
    db.session.expire_all()
    newest = db.session.scalars(select(UserSession).where(UserSession.user_id == ada.id)
                                .order_by(UserSession.created_at.desc())).first()
    assert newest.second_factor == "passkey"
    [key] = keys_of(ada)
    assert key.sign_count == 1 and key.last_used_at is not None
    assert "passkey.used" in log_of(ada)


def test_passkey_sign_in_follows_next_on_this_site_only(app, ada_client, device):
    add_passkey(ada_client, device)
    response, _ = sign_in(app.test_client(), device, next="/profile")
    assert response.get_json()["redirect"] == "/profile"
    response, _ = sign_in(app.test_client(), device, next="https://evil.example/")
    assert not response.get_json()["redirect"].startswith("https:")


def test_login_page_offers_a_passkey_button_that_the_script_reveals(client):
    page = client.get("/login").get_data(as_text=True)
    assert "Sign in with a passkey" in page
    assert re.search(r'<button[^>]*data-passkey-start[^>]*hidden', page)
    assert "needs a browser that supports passkeys" in page
    assert "<script>" not in page and "js/passkeys" in page


def test_an_answer_for_another_origin_or_relying_party_is_refused(app, ada_client, ada, device):
    add_passkey(ada_client, device)
    browser = app.test_client()
    response, _ = sign_in(browser, device, origin="https://evil.example")
    assert response.status_code == 403
    assert "another website" in response.get_json()["error"]
    response, _ = sign_in(browser, device, rp_id="evil.example")
    assert response.status_code == 403
    assert not is_signed_in(browser)
    assert keys_of(ada)[0].last_used_at is None


def test_a_replayed_answer_is_refused_even_with_a_copy_of_the_cookie(app, ada_client, device):
    add_passkey(ada_client, device)
    browser = app.test_client()
    csrf = token(browser)
    options = post_json(browser, "/login/passkey/options", csrf).get_json()
    cookie = browser.get_cookie("session").value
    answer = device.get(options)
    assert post_json(browser, "/login/passkey/verify", csrf, {"credential": answer}).status_code == 200

    # Again in the same browser: the challenge was taken out of its session.
    again = post_json(browser, "/login/passkey/verify", token(browser, "/profile"), {"credential": answer})
    assert again.status_code == 400
    assert "No passkey request is waiting" in again.get_json()["error"]
    # With the cookie as it was before the answer: the challenge is marked used on the server.
    thief = app.test_client()
    thief.set_cookie("session", cookie, domain="localhost")
    stolen = post_json(thief, "/login/passkey/verify", csrf, {"credential": answer})
    assert stolen.status_code == 400
    assert "already used" in stolen.get_json()["error"]
    assert not is_signed_in(thief)


def test_an_expired_challenge_is_refused(app, ada_client, device, monkeypatch):
    add_passkey(ada_client, device)
    browser = app.test_client()
    csrf = token(browser)
    options = post_json(browser, "/login/passkey/options", csrf).get_json()
    import time as real_time

    later = real_time.time() + passkey_service.CHALLENGE_TTL.total_seconds() + 1
    monkeypatch.setattr("coach.blueprints.accounts.passkeys.time.time", lambda: later)
    response = post_json(browser, "/login/passkey/verify", csrf, {"credential": device.get(options)})
    assert response.status_code == 400
    assert "expired" in response.get_json()["error"]


def test_a_signature_counter_that_goes_backwards_is_refused(app, ada_client, ada, device):
    add_passkey(ada_client, device)
    assert sign_in(app.test_client(), device, count=5)[0].status_code == 200
    browser = app.test_client()
    response, _ = sign_in(browser, device, count=3)
    assert response.status_code == 403
    assert "counter went backwards" in response.get_json()["error"]
    assert not is_signed_in(browser)
    assert keys_of(ada)[0].sign_count == 5


def test_an_unknown_passkey_or_a_forged_signature_is_refused(app, ada_client, device):
    add_passkey(ada_client, device)
    stranger = SoftAuthenticator()
    response, _ = sign_in(app.test_client(), stranger)
    assert response.status_code == 403
    assert "not registered" in response.get_json()["error"]
    forger = SoftAuthenticator()
    forger.credential_id = device.credential_id  # the right id, the wrong key
    forger.user_handle = b64(b"x" * 16)
    response, _ = sign_in(app.test_client(), forger, user_handle=None)
    assert response.status_code == 403
    assert "signature is not valid" in response.get_json()["error"]


@pytest.mark.parametrize("body", [
    "not json at all",
    {"credential": "a string"},
    {"credential": {"id": "!!", "rawId": "%%%", "type": "public-key", "response": {}}},
    {"credential": {"id": "AAAA", "rawId": "AAAA", "type": "public-key",
                    "response": {"clientDataJSON": "@@@", "authenticatorData": "x", "signature": "y"}}},
    {"credential": {"id": "AAAA", "rawId": "AAAA", "type": "public-key", "response": {"userHandle": 5}}},
    [1, 2, 3],
])
def test_a_malformed_answer_is_a_400_with_a_message(app, ada_client, device, body):
    add_passkey(ada_client, device)
    browser = app.test_client()
    csrf = token(browser)
    post_json(browser, "/login/passkey/options", csrf)
    if isinstance(body, str):
        response = browser.post("/login/passkey/verify", data=body, content_type="application/json",
                                headers={"X-CSRFToken": csrf})
    else:
        response = post_json(browser, "/login/passkey/verify", csrf, body)
    assert 400 <= response.status_code < 500
    assert response.get_json()["error"]


def test_a_malformed_answer_with_the_right_credential_id_is_refused_cleanly(app, ada_client, device):
    add_passkey(ada_client, device)
    browser = app.test_client()
    csrf = token(browser)
    options = post_json(browser, "/login/passkey/options", csrf).get_json()
    answer = device.get(options)
    answer["response"]["authenticatorData"] = b64(b"short")
    answer["response"]["clientDataJSON"] = b64(b"{not json")
    response = post_json(browser, "/login/passkey/verify", csrf, {"credential": answer})
    assert response.status_code == 403
    assert "could not sign you in" in response.get_json()["error"]


def test_the_json_steps_need_the_csrf_token(app, client):
    response = client.post("/login/passkey/options", json={})
    assert response.status_code == 400


# --- confirming identity -------------------------------------------------------------------------------

def test_a_passkey_confirms_identity_for_sensitive_changes(app, ada_client, ada, device):
    add_passkey(ada_client, device)
    age_sessions(ada)
    csrf = token(ada_client, "/profile")
    options = post_json(ada_client, "/account/confirm/passkey/options", csrf).get_json()
    assert [c["id"] for c in options["allowCredentials"]] == [b64(device.credential_id)]
    response = post_json(ada_client, "/account/confirm/passkey/verify?next=/account/passkeys", csrf,
                         {"credential": device.get(options)})
    assert response.status_code == 200
    assert response.get_json() == {"redirect": "/account/passkeys"}
    assert "reauth.succeeded" in log_of(ada)
    # Fresh again: removing the passkey goes through without another confirmation.
    [key] = keys_of(ada)
    removed = ada_client.post(f"/account/passkeys/{key.id}/remove", data={"csrf_token": csrf})
    assert removed.status_code == 303 and removed.headers["Location"].endswith("/account/security#passkeys")


def test_another_persons_passkey_does_not_confirm_my_identity(app, ada_client, ada, device, ctx):
    bob = make_user("bob@example.com", "Bob")
    bob_client = logged_in_client(app, "bob@example.com")
    bob_device = SoftAuthenticator()
    add_passkey(bob_client, bob_device)
    add_passkey(ada_client, device)
    age_sessions(bob)

    csrf = token(bob_client, "/profile")
    options = post_json(bob_client, "/account/confirm/passkey/options", csrf).get_json()
    response = post_json(bob_client, "/account/confirm/passkey/verify", csrf, {"credential": device.get(options)})
    assert response.status_code == 403
    assert "belongs to another account" in response.get_json()["error"]
    assert "reauth.succeeded" not in log_of(bob)
    # Bob is still not freshly confirmed: removing his passkey asks him to confirm first.
    [bob_key] = keys_of(bob)
    refused = bob_client.post(f"/account/passkeys/{bob_key.id}/remove", data={"csrf_token": csrf},
                              headers={"Referer": "http://localhost/account/security"})
    assert refused.status_code == 303 and refused.headers["Location"].startswith("/account/confirm")


def test_an_answer_naming_another_user_handle_is_refused(app, ada_client, ada, device):
    add_passkey(ada_client, device)
    response, _ = sign_in(app.test_client(), device, user_handle=b64(os.urandom(16)))
    assert response.status_code == 403
    assert "another account" in response.get_json()["error"]


# --- managing ------------------------------------------------------------------------------------------

def test_removing_a_passkey_needs_a_fresh_sign_in_and_then_it_no_longer_signs_in(app, ada_client, ada, device):
    add_passkey(ada_client, device)
    [key] = keys_of(ada)
    age_sessions(ada)
    csrf = token(ada_client, "/profile")
    response = ada_client.post(f"/account/passkeys/{key.id}/remove", data={"csrf_token": csrf},
                               headers={"Referer": "http://localhost/account/security"})
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/account/confirm")
    assert len(keys_of(ada)) == 1

    confirmed = ada_client.post("/account/confirm", data={"csrf_token": csrf, "password": PASSWORD})
    assert confirmed.status_code == 303
    response = ada_client.post(f"/account/passkeys/{key.id}/remove", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert keys_of(ada) == []
    assert "passkey.removed" in log_of(ada)
    assert "Passkey removed" in ada_client.get("/account/security").get_data(as_text=True)
    refused, _ = sign_in(app.test_client(), device)
    assert refused.status_code == 403


def test_rename_a_passkey_and_refuse_bad_names(ada_client, ada, device):
    add_passkey(ada_client, device, name="Old name")
    [key] = keys_of(ada)
    csrf = token(ada_client, "/profile")
    done = ada_client.post(f"/account/passkeys/{key.id}/rename", data={"csrf_token": csrf, "name": "  Phone  "})
    assert done.status_code == 303
    assert keys_of(ada)[0].name == "Phone"
    for bad, message in (("", "Give the passkey a name."), ("y" * 61, "Use at most 60 characters."),
                         ("tab\there", "control characters")):
        refused = ada_client.post(f"/account/passkeys/{key.id}/rename", data={"csrf_token": csrf, "name": bad})
        assert refused.status_code == 422
        assert message in refused.get_data(as_text=True)
    assert keys_of(ada)[0].name == "Phone"


def test_another_persons_passkey_cannot_be_renamed_or_removed(app, ada_client, ada, device, ctx):
    add_passkey(ada_client, device)
    [key] = keys_of(ada)
    make_user("eve@example.com", "Eve")
    eve = logged_in_client(app, "eve@example.com")
    csrf = token(eve, "/profile")
    assert eve.post(f"/account/passkeys/{key.id}/rename", data={"csrf_token": csrf, "name": "mine"}).status_code == 404
    assert eve.post(f"/account/passkeys/{key.id}/remove", data={"csrf_token": csrf}).status_code == 404
    assert keys_of(ada)[0].name == "My laptop"


def test_a_second_organization_and_its_member_are_unaffected(app, ada_client, ada, device, ctx):
    make_org(ada, slug="river-club")
    carl = make_user("carl@example.com", "Carl")
    make_org(carl, slug="hill-club")
    carl_client = logged_in_client(app, "carl@example.com")
    carl_device = SoftAuthenticator()
    add_passkey(carl_client, carl_device, name="Carl phone")
    add_passkey(ada_client, device, name="Ada laptop")

    ada_page = ada_client.get("/account/security").get_data(as_text=True)
    carl_page = carl_client.get("/account/security").get_data(as_text=True)
    assert "Ada laptop" in ada_page and "Carl phone" not in ada_page
    assert "Carl phone" in carl_page and "Ada laptop" not in carl_page

    # Each passkey signs in its own person only.
    browser = app.test_client()
    assert sign_in(browser, carl_device)[0].status_code == 200
    assert "carl@example.com" in browser.get("/profile").get_data(as_text=True)
    assert [k.name for k in keys_of(carl)] == ["Carl phone"]
    assert keys_of(ada)[0].last_used_at is None


def test_the_passkeys_page_works_without_javascript_and_says_what_is_needed(ada_client):
    page = ada_client.get("/account/passkeys").get_data(as_text=True)
    assert "You have no passkey yet." in page
    assert "needs a browser that supports passkeys" in page
    assert re.search(r'<button[^>]*data-passkey-start[^>]*hidden', page)


def test_the_second_sign_in_step_offers_the_passkey_which_completes_the_sign_in(app, ada_client, ada, device):
    """A person with two-factor who typed their password may answer with a passkey instead of a code."""
    import pyotp

    from coach.accounts import twofactor
    from coach.platform.sealing import unseal

    add_passkey(ada_client, device)
    secret = unseal(twofactor.begin_enrolment(ada) and ada.totp_secret)
    twofactor.confirm_enrolment(ada, pyotp.TOTP(secret).now())
    db.session.commit()

    browser = app.test_client()
    response = browser.post("/login", data={"csrf_token": token(browser), "email": "ada@example.com",
                                            "password": PASSWORD})
    assert response.headers["Location"].startswith("/login/verify")
    page = browser.get("/login/verify").get_data(as_text=True)
    assert "Sign in with a passkey" in page
    assert not is_signed_in(browser)

    csrf = csrf_from(page)
    options = post_json(browser, "/login/passkey/options", csrf).get_json()
    answer = post_json(browser, "/login/passkey/verify", csrf, {"credential": device.get(options)})
    assert answer.status_code == 200
    assert is_signed_in(browser)
