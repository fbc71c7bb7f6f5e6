"""Passkeys (WebAuthn credentials, through the ``webauthn`` library): register one or more, sign in with one
instead of a password and code, confirm identity with one, rename and remove them.

The ceremonies are two steps each: options (with a fresh random challenge the caller keeps for at most
``CHALLENGE_TTL``), then the browser's answer, verified here against that challenge, the relying party's id and
origin, and the stored public key. The caller keeps the challenge (the web layer: in the signed session cookie);
:func:`consume_challenge` makes each one usable once even if a copy of that cookie is sent again.

Plain Python over the database session; no request or session access. The caller commits.
"""
from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from redis.exceptions import RedisError
from sqlalchemy import exists, select
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from coach.accounts import security_log
from coach.accounts.models import Passkey, User
from coach.accounts.service import _audit_login  # the one way a login reaches the organizations' audit trails
from coach.clock import now
from coach.errors import DomainError, NotAllowed
from coach.extensions import db
from coach.platform.queues import redis_conn

log = logging.getLogger(__name__)

RP_NAME = "Coach"
# How long the browser's answer to a challenge is awaited; the browser is told the same (in milliseconds).
CHALLENGE_TTL = timedelta(minutes=5)
NAME_MAX = 60
# A user has a handful of passkeys; more is a script, and every sign-in options list grows with them.
MAX_PER_USER = 20
# The browser's JSON answer is a few kilobytes; anything much larger is not one.
ANSWER_MAX_BYTES = 64 * 1024


class PasskeyError(DomainError):
    """A passkey request that cannot be carried out; the message is safe to show."""

    status = 400


@dataclass(frozen=True)
class RelyingParty:
    """Who the credentials are for: ``id`` (a host name: ``coach.example.com``, ``localhost``) and the
    ``origin`` the browser must report (``https://coach.example.com``)."""

    id: str
    origin: str


# --- reading -------------------------------------------------------------------------------------------

def list_passkeys(user_id: uuid.UUID) -> list[Passkey]:
    """``user_id``'s passkeys, oldest first."""
    return list(db.session.scalars(select(Passkey).where(Passkey.user_id == user_id)
                                   .order_by(Passkey.created_at, Passkey.id)))


def has_passkey(user_id: uuid.UUID) -> bool:
    """Whether ``user_id`` has registered at least one passkey (it counts as a second factor)."""
    return bool(db.session.scalar(select(exists().where(Passkey.user_id == user_id))))


def get_passkey(user: User, passkey_id: uuid.UUID, *, lock: bool = False) -> Passkey:
    """``user``'s passkey ``passkey_id``; another person's (or none) is a 404, never a hint that it exists."""
    query = select(Passkey).where(Passkey.id == passkey_id, Passkey.user_id == user.id)
    found = db.session.scalar(query.with_for_update() if lock else query)
    if found is None:
        raise PasskeyError("That passkey was not found. It may have been removed already.", status=404)
    return found


# --- names ---------------------------------------------------------------------------------------------

def clean_name(name: str | None, default: str = "") -> str:
    """A passkey's name as given (spaces trimmed), ``default`` when blank; refused when too long or with
    control characters."""
    name = (name or "").strip() or (default or "Passkey").strip()[:NAME_MAX]
    if len(name) > NAME_MAX:
        raise PasskeyError(f"A passkey's name has at most {NAME_MAX} characters.", status=422)
    if not name.isprintable():
        raise PasskeyError("A passkey's name cannot contain control characters.", status=422)
    return name


# --- challenges ----------------------------------------------------------------------------------------

def consume_challenge(challenge: bytes) -> None:
    """Mark ``challenge`` used, for as long as it could be answered: a second answer to it is refused even when
    it comes with a copy of the cookie that held it. Without Redis, the cookie's own single use remains."""
    key = "coach:webauthn-used:" + hashlib.sha256(challenge).hexdigest()
    try:
        fresh = redis_conn().set(key, "1", nx=True, ex=int(CHALLENGE_TTL.total_seconds()) + 60)
    except RedisError as exc:
        log.warning("passkey challenge not recorded as used (Redis: %s)", exc)
        return
    if not fresh:
        raise PasskeyError("This passkey request was already used. Start again.")


def _options(options) -> dict:
    return json.loads(options_to_json(options))


def _timeout_ms() -> int:
    return int(CHALLENGE_TTL.total_seconds() * 1000)


# --- registration --------------------------------------------------------------------------------------

def registration_options(user: User, rp: RelyingParty) -> tuple[dict, bytes]:
    """Options for ``navigator.credentials.create()`` (as JSON-ready data) and their challenge.

    The user handle is the account's id (16 stable bytes, no personal data); passkeys already registered are
    excluded (the authenticator says so instead of making a second one); a discoverable credential and user
    verification are preferred, so the passkey can sign in without an email typed first.
    """
    existing = list_passkeys(user.id)
    if len(existing) >= MAX_PER_USER:
        raise PasskeyError(f"You have {MAX_PER_USER} passkeys, the most an account can have. Remove one first.",
                           status=409)
    options = generate_registration_options(
        rp_id=rp.id, rp_name=RP_NAME, user_id=user.id.bytes, user_name=user.email,
        user_display_name=user.display_name, timeout=_timeout_ms(),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED, user_verification=UserVerificationRequirement.PREFERRED),
        exclude_credentials=[_descriptor(passkey) for passkey in existing],
    )
    return _options(options), options.challenge


def register(user: User, rp: RelyingParty, challenge: bytes, answer, name: str | None = None,
             default_name: str = "") -> Passkey:
    """Verify the browser's answer to ``challenge`` and keep the new passkey of ``user``.

    :param answer: the ``PublicKeyCredential`` as JSON data (``id``, ``rawId``, ``response``, ``type``).
    :param name: what the person calls it (1 to 60 characters); blank: ``default_name`` (their device).
    """
    name = clean_name(name, default_name)
    try:
        verified = verify_registration_response(credential=_answer(answer), expected_challenge=challenge,
                                                expected_rp_id=rp.id, expected_origin=rp.origin)
    except PasskeyError:
        raise
    except Exception as exc:  # the library raises many types for a bad answer: each is the browser's fault
        raise PasskeyError(_refusal(exc, "The passkey could not be added")) from exc
    db.session.execute(select(User.id).where(User.id == user.id).with_for_update())  # one registration at a time
    if db.session.scalar(select(exists().where(Passkey.credential_id == verified.credential_id))):
        raise PasskeyError("This passkey is already registered.", status=409)
    if len(list_passkeys(user.id)) >= MAX_PER_USER:
        raise PasskeyError(f"You have {MAX_PER_USER} passkeys, the most an account can have. Remove one first.",
                           status=409)
    passkey = Passkey(id=uuid.uuid4(), user_id=user.id, credential_id=verified.credential_id,
                      public_key=verified.credential_public_key, sign_count=verified.sign_count,
                      transports=",".join(_transports(answer)), backed_up=verified.credential_backed_up,
                      name=name, created_at=now())
    db.session.add(passkey)
    db.session.flush()
    security_log.record(user.id, "passkey.added", name=name)
    return passkey


# --- authentication ------------------------------------------------------------------------------------

def authentication_options(rp: RelyingParty, user: User | None = None) -> tuple[dict, bytes]:
    """Options for ``navigator.credentials.get()`` and their challenge.

    With no ``user`` (signing in) the list of allowed credentials is empty: the browser offers the passkeys it
    holds for this site (discoverable credentials), and nobody learns which accounts exist. With a ``user``
    (confirming identity) only that person's passkeys are allowed.
    """
    allowed = [_descriptor(passkey) for passkey in list_passkeys(user.id)] if user is not None else []
    if user is not None and not allowed:
        raise PasskeyError("You have no passkey yet. Confirm with your password instead.", status=409)
    options = generate_authentication_options(rp_id=rp.id, timeout=_timeout_ms(), allow_credentials=allowed,
                                              user_verification=UserVerificationRequirement.PREFERRED)
    return _options(options), options.challenge


def authenticate(rp: RelyingParty, challenge: bytes, answer, expected_user_id: uuid.UUID | None = None) -> User:
    """Verify the browser's answer to ``challenge`` and return whose passkey it was.

    Refused: a passkey not registered here, one of another person than ``expected_user_id`` (when one is
    expected), a user handle that is not its owner's, an answer made for another origin or relying party or
    another challenge, and a signature counter that did not move forward (a cloned authenticator). On success
    the passkey's counter, backup state and last use are kept; the caller commits.
    """
    answer = _answer(answer)
    credential_id = _credential_id(answer)
    passkey = db.session.scalar(select(Passkey).where(Passkey.credential_id == credential_id).with_for_update())
    if passkey is None:
        raise PasskeyError("This passkey is not registered with Coach. Sign in another way, then add it on your "
                           "security page.", status=403)
    if expected_user_id is not None and passkey.user_id != expected_user_id:
        raise NotAllowed("This passkey belongs to another account. Use one of your own passkeys.")
    handle = answer["response"].get("userHandle")
    if handle and _decode(handle) != passkey.user_id.bytes:
        raise NotAllowed("This passkey's answer names another account.")
    try:
        verified = verify_authentication_response(
            credential=answer, expected_challenge=challenge, expected_rp_id=rp.id, expected_origin=rp.origin,
            credential_public_key=passkey.public_key, credential_current_sign_count=passkey.sign_count)
    except Exception as exc:  # the library raises many types for a bad answer: each is the browser's fault
        raise PasskeyError(_refusal(exc, "The passkey could not sign you in"), status=403) from exc
    user = db.session.get(User, passkey.user_id)
    if user.erased_at is not None:  # erasure deletes passkeys too; this holds should one be left
        raise PasskeyError("This account no longer exists.", status=403)
    passkey.sign_count = verified.new_sign_count
    passkey.backed_up = verified.credential_backed_up
    passkey.last_used_at = now()
    return user


def record_sign_in(user: User) -> None:
    """Write a passkey sign-in where a password sign-in goes: the person's security log, and the audit trail of
    their organizations (as every login is)."""
    security_log.record(user.id, "passkey.used")
    _audit_login("login.succeeded", user, user.email)


# --- managing ------------------------------------------------------------------------------------------

def rename(user: User, passkey_id: uuid.UUID, name: str) -> Passkey:
    """Give ``user``'s passkey another name (1 to 60 characters)."""
    if not (name or "").strip():
        raise PasskeyError("Give the passkey a name.", status=422)
    passkey = get_passkey(user, passkey_id, lock=True)
    passkey.name = clean_name(name)
    return passkey


def remove(user: User, passkey_id: uuid.UUID) -> None:
    """Forget ``user``'s passkey: it no longer signs in (the authenticator keeps its now useless key)."""
    passkey = get_passkey(user, passkey_id, lock=True)
    security_log.record(user.id, "passkey.removed", name=passkey.name)
    db.session.delete(passkey)


# --- helpers -------------------------------------------------------------------------------------------

def _descriptor(passkey: Passkey) -> PublicKeyCredentialDescriptor:
    transports = []
    for value in filter(None, passkey.transports.split(",")):
        try:
            transports.append(AuthenticatorTransport(value))
        except ValueError:
            continue
    return PublicKeyCredentialDescriptor(id=passkey.credential_id, transports=transports or None)


def _answer(answer) -> dict:
    """The browser's answer as a dict, or a clear 400."""
    if isinstance(answer, (str, bytes)):
        if len(answer) > ANSWER_MAX_BYTES:
            raise PasskeyError("The passkey's answer is too large.")
        try:
            answer = json.loads(answer)
        except ValueError as exc:
            raise PasskeyError("The passkey's answer is not valid JSON.") from exc
    if not isinstance(answer, dict) or not isinstance(answer.get("response"), dict):
        raise PasskeyError("The passkey's answer is incomplete. Try again.")
    return answer


def _decode(value) -> bytes:
    if not isinstance(value, str) or len(value) > 2048:
        raise PasskeyError("The passkey's answer is malformed.")
    try:
        return base64url_to_bytes(value)
    except (ValueError, TypeError) as exc:  # binascii.Error is a ValueError
        raise PasskeyError("The passkey's answer is malformed.") from exc


def _credential_id(answer: dict) -> bytes:
    raw = _decode(answer.get("rawId") or answer.get("id"))
    if not raw:
        raise PasskeyError("The passkey's answer names no credential.")
    return raw


def _transports(answer) -> list[str]:
    listed = (answer.get("response") or {}).get("transports") if isinstance(answer, dict) else None
    known = {transport.value for transport in AuthenticatorTransport}
    return [value for value in listed if value in known][:8] if isinstance(listed, list) else []


# The library's reasons, in words for the person (a reason not listed here gets the general message).
_REASONS = (
    ("origin", "it was made for another website"),
    ("RP ID", "it was made for another website"),
    ("challenge", "the request had expired or was already used; start again"),
    ("sign count", "its signature counter went backwards, which happens when a passkey is copied; sign in "
                   "another way and remove it"),
    ("signature", "its signature is not valid"),
    ("presen", "nobody touched or unlocked the authenticator"),
    ("client data type", "it answered a different kind of request"),
)


def _refusal(exc: Exception, what: str) -> str:
    text = str(exc) if isinstance(exc, WebAuthnException) else ""
    for needle, reason in _REASONS:
        if needle.lower() in text.lower():
            return f"{what}: {reason}."
    return f"{what}: its answer could not be verified. Try again."
