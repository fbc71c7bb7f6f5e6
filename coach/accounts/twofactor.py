"""Two-factor sign-in with an authenticator app (TOTP, RFC 6238) and single-use recovery codes.

The secret is sealed at rest (:mod:`coach.platform.sealing`) in ``users.totp_secret``: written when enrolment
begins, live once a first code confirms it (``totp_enabled_at``). A code is accepted within one 30-second step
of drift either way, and each step once: ``users.totp_last_step`` keeps the last step accepted, read and written
under the user's row lock, so two requests with the same code cannot both pass. Recovery codes are stored as
SHA-256 hashes only and shown once. The caller commits.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

import pyotp
import segno
from sqlalchemy import delete, exists, func, select, update

from coach.accounts import security_log
from coach.accounts.models import Passkey, RecoveryCode, User
from coach.accounts.service import AccountError
from coach.clock import now
from coach.extensions import db
from coach.platform.sealing import seal, unseal
from coach.security import verify_password

ISSUER = "Coach"
RECOVERY_CODE_COUNT = 10
# Steps either side of now that still count (pyotp's ``valid_window``): a phone clock 30 s off still works.
VALID_WINDOW = 1
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper without doubt


class TwoFactorError(AccountError):
    """A two-factor change that cannot be made; the message is safe to show."""


@dataclass(frozen=True)
class Enrolment:
    """What the person needs to add Coach to their authenticator app."""

    secret: str  # the manual key, base32
    uri: str  # otpauth:// provisioning URI
    qr_data_uri: str  # the QR code of ``uri`` as an SVG image (data: URI; the CSP allows img data:)

    @property
    def grouped_secret(self) -> str:
        """The manual key in groups of four, easier to type."""
        return " ".join(self.secret[i:i + 4] for i in range(0, len(self.secret), 4))


@dataclass(frozen=True)
class Status:
    enabled: bool
    enabled_at: datetime | None
    recovery_codes_left: int
    has_passkey: bool


def is_enabled(user: User) -> bool:
    return user.totp_enabled_at is not None


def has_passkey(user_id: uuid.UUID) -> bool:
    return bool(db.session.scalar(select(exists().where(Passkey.user_id == user_id))))


def has_second_factor(user: User) -> bool:
    """Whether ``user`` can prove more than a password: TOTP turned on, or at least one passkey."""
    return is_enabled(user) or has_passkey(user.id)


def recovery_codes_left(user: User) -> int:
    return db.session.scalar(select(func.count()).select_from(RecoveryCode)
                             .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))) or 0


def status(user: User) -> Status:
    """For the security page: on or off, since when, recovery codes unused, whether a passkey exists."""
    return Status(enabled=is_enabled(user), enabled_at=user.totp_enabled_at,
                  recovery_codes_left=recovery_codes_left(user) if is_enabled(user) else 0,
                  has_passkey=has_passkey(user.id))


# --- enrolment ------------------------------------------------------------------------------------------

def _enrolment(user: User, secret: str) -> Enrolment:
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)
    qr = segno.make(uri, error="m")
    return Enrolment(secret=secret, uri=uri, qr_data_uri=qr.svg_data_uri(scale=5, border=2))


def begin_enrolment(user: User, *, restart: bool = False) -> Enrolment:
    """The pending secret of ``user`` (made now if there is none, or anew with ``restart``) for the set-up page.
    Nothing changes at sign-in until :func:`confirm_enrolment`."""
    if is_enabled(user):
        raise TwoFactorError("Two-factor authentication is already on.")
    if user.totp_secret and not restart:
        try:
            return _enrolment(user, unseal(user.totp_secret))
        except Exception:  # sealed with a key no longer configured: start over
            pass
    secret = pyotp.random_base32()
    user.totp_secret = seal(secret)
    user.totp_last_step = None
    return _enrolment(user, secret)


def confirm_enrolment(user: User, code: str) -> list[str]:
    """Turn two-factor on with a first code from the app; returns the new recovery codes (shown once)."""
    _lock(user)
    if is_enabled(user):
        raise TwoFactorError("Two-factor authentication is already on.")
    if not user.totp_secret:
        raise TwoFactorError("Start the set-up again: scan the new code and enter what your app shows.")
    if not _accept_code(user, code):
        raise TwoFactorError("That code is not correct. Enter the 6-digit code your app shows now.")
    user.totp_enabled_at = now()
    security_log.record(user.id, "twofactor.enabled")
    return _new_recovery_codes(user)


# --- checking codes -------------------------------------------------------------------------------------

def normalize_code(code: str) -> str:
    return "".join((code or "").split())


def _lock(user: User) -> None:
    """Re-read ``user`` under a row lock: what is checked and written next cannot interleave with another
    request doing the same (two uses of one code, one recovery code twice)."""
    db.session.flush()  # a change not yet written (a secret just set) must survive the re-read
    db.session.refresh(user, with_for_update=True)


def _accept_code(user: User, code: str) -> bool:
    """Whether ``code`` is the pending or live secret's code for now (± ``VALID_WINDOW`` steps) and newer than the
    last step accepted; the step is recorded. The caller holds the row lock."""
    code = normalize_code(code)
    if len(code) != 6 or not code.isdigit() or not user.totp_secret:
        return False
    try:
        totp = pyotp.TOTP(unseal(user.totp_secret))
    except Exception:  # no configured key opens it: no code can match
        return False
    current = totp.timecode(now())
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            if user.totp_last_step is not None and step <= user.totp_last_step:
                return False  # this code (or an older one) was already used: a replay
            user.totp_last_step = step
            return True
    return False


def check_code(user: User, code: str) -> bool:
    """Accept a current code of ``user``'s live two-factor once; a wrong, expired or reused code is ``False``
    and a ``twofactor.failed`` line in their security log."""
    if not is_enabled(user):
        return False
    _lock(user)
    if is_enabled(user) and _accept_code(user, code):
        return True
    security_log.record(user.id, "twofactor.failed")
    return False


def recovery_hash(code: str) -> str:
    return hashlib.sha256("".join(ch for ch in (code or "").lower() if ch.isalnum()).encode()).hexdigest()


def use_recovery_code(user: User, code: str) -> bool:
    """Spend one of ``user``'s recovery codes; ``False`` for a wrong or already used one. The row lock on the
    user makes two uses of one code at once spend it once."""
    if not is_enabled(user) or len(code or "") > 40:
        return False
    _lock(user)
    spent = db.session.execute(
        update(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.code_hash == recovery_hash(code),
               RecoveryCode.used_at.is_(None))
        .values(used_at=now()).returning(RecoveryCode.id).execution_options(synchronize_session=False)
    ).first()
    if spent is None:
        security_log.record(user.id, "twofactor.failed", method="recovery")
        return False
    security_log.record(user.id, "recovery.used", left=recovery_codes_left(user))
    return True


# --- recovery codes, turning off ------------------------------------------------------------------------

def _new_recovery_codes(user: User) -> list[str]:
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
    db.session.add_all(RecoveryCode(id=uuid.uuid4(), user_id=user.id, code_hash=recovery_hash(code))
                       for code in codes)
    return codes


def regenerate_recovery_codes(user: User) -> list[str]:
    """Replace every recovery code of ``user`` (the old ones stop working); the new ones, to show once."""
    _lock(user)
    if not is_enabled(user):
        raise TwoFactorError("Two-factor authentication is off: there are no recovery codes to replace.")
    codes = _new_recovery_codes(user)
    security_log.record(user.id, "recovery.regenerated")
    return codes


def disable(user: User, password: str, code: str) -> None:
    """Turn two-factor off: the password and a current code (or a recovery code) are both needed."""
    if not is_enabled(user):
        raise TwoFactorError("Two-factor authentication is already off.")
    if not verify_password(user.password_hash, password or ""):
        raise TwoFactorError("The password is not correct.")
    if not (check_code(user, code) or use_recovery_code(user, code)):
        raise TwoFactorError("That code is not correct. Enter the code your app shows now, or a recovery code.")
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    security_log.record(user.id, "twofactor.disabled")
