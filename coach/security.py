"""Password hashing and one-time tokens."""
from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

# argon2id, 19 MiB, t=2, p=1: the OWASP minimum profile.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, hash_len=32, salt_len=16, type=Type.ID)

# Verified against when no account matches, so an unknown email costs the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password-only-for-timing")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check ``password`` against ``password_hash``; with no hash, spend the same time and fail."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def new_token() -> tuple[str, str]:
    """Return ``(secret, sha256 hex of secret)``; only the hash is stored."""
    secret = secrets.token_urlsafe(32)
    return secret, token_hash(secret)


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()
