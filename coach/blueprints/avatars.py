"""Initials avatars: who wrote a post or a message, recognisable at a glance without a photo.

The colour comes from a fixed palette of CSS classes (``avatar-c0`` … ``avatar-c7``), chosen from a stable hash
(CRC-32: ``hash()`` of a string is salted per process) of the person's display name, so the same person has the
same colour on every page, whether the page's rows carry their user id, their membership id or only their name
(a feed's rows have the name and the membership), and the strict style policy needs no inline style. Two people
of the same name share a colour; they share initials too.
"""
from __future__ import annotations

import unicodedata
import zlib

PALETTE_SIZE = 8


def _first_letter(word: str) -> str:
    """The word's first letter or digit with its combining marks ("É" from "E" + "◌́")."""
    for index, char in enumerate(word):
        if unicodedata.category(char)[0] in "LN":
            end = index + 1
            while end < len(word) and unicodedata.combining(word[end]):
                end += 1
            return unicodedata.normalize("NFC", word[index:end])
    return ""


def initials(name: str | None) -> str:
    """One or two letters for ``name``: the first and last words' first letters ("Maria Lopez" → "ML"),
    upper-cased; "?" for a name with no letters at all."""
    words = [w for w in (name or "").split() if _first_letter(w)]
    if not words:
        return "?"
    letters = _first_letter(words[0]) + (_first_letter(words[-1]) if len(words) > 1 else "")
    return letters.upper()


def colour(key) -> int:
    """A palette index stable for ``key`` (the display name unless the caller gives another key)."""
    return zlib.crc32(str(key or "").encode()) % PALETTE_SIZE


def avatar_parts(person=None, name: str | None = None, key=None) -> dict:
    """What the ``avatar`` macro draws for ``person`` (a user, a membership with ``.user``, or nothing and
    ``name`` given directly); ``key`` overrides what the colour is derived from."""
    user = getattr(person, "user", None) or person
    if name is None:
        name = getattr(user, "display_name", None) or getattr(person, "name", None)
    return {"initials": initials(name), "colour": colour(key if key is not None else name), "name": name or ""}
