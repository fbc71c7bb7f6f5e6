"""Sealing small secrets at rest (a TOTP secret, a calendar password): authenticated encryption with
cryptography's Fernet, several keys at once so keys can be rotated.

``ENCRYPTION_KEYS`` is a comma-separated list of Fernet keys (``Fernet.generate_key()``): the first seals, every
one unseals, so a new key goes first and an old one stays listed until everything sealed with it was sealed again
(:func:`reseal`). Without it (development, tests) one key is derived from ``SECRET_KEY`` with HKDF, so changing
the secret key makes what was sealed unreadable.
"""
from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

__all__ = ["Fernet", "InvalidToken", "seal", "unseal", "reseal"]


@lru_cache(maxsize=8)
def _fernet(keys: str, secret_key: str) -> MultiFernet:
    listed = [key.strip() for key in keys.split(",") if key.strip()]
    if not listed:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"coach sealing v1").derive(
            secret_key.encode())
        listed = [base64.urlsafe_b64encode(derived).decode()]
    return MultiFernet([Fernet(key) for key in listed])


def _keys() -> MultiFernet:
    config = current_app.config
    return _fernet(config.get("ENCRYPTION_KEYS") or "", config["SECRET_KEY"])


def seal(text: str) -> str:
    """``text`` encrypted and authenticated with the first key (a URL-safe ASCII token)."""
    return _keys().encrypt(text.encode()).decode("ascii")


def unseal(token: str) -> str:
    """The text a token of :func:`seal` holds; raises ``InvalidToken`` when no configured key opens it or it was
    changed."""
    return _keys().decrypt(token.encode("ascii")).decode()


def reseal(token: str) -> str:
    """The same text sealed with the current first key (for re-encrypting after a key rotation)."""
    return _keys().rotate(token.encode("ascii")).decode("ascii")
