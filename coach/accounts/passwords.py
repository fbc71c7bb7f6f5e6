"""Password quality: zxcvbn's estimate of how guessable a new password is, with its reason in words."""
from __future__ import annotations

import re
from collections.abc import Iterable

from zxcvbn import zxcvbn

# zxcvbn's scale: 0 too guessable ... 4 very unguessable; 3 is "safely unguessable" against an offline attack on
# a slow hash, the level its authors recommend for new passwords.
MIN_SCORE = 3
# zxcvbn's run time grows with the length; what it sees of a longer password is plenty to judge it.
CHECKED_LENGTH = 72


def problem(password: str, user_inputs: Iterable[str] = ()) -> str | None:
    """Why ``password`` is too easy to guess (zxcvbn score below 3), or ``None`` when it is good enough.

    :param user_inputs: what an attacker would try first for this person (their email, name): a password built
        from them scores lower.
    """
    if not password:
        return None  # the field's own "required" message says it
    result = zxcvbn(password[:CHECKED_LENGTH], user_inputs=_words(user_inputs))
    if result["score"] >= MIN_SCORE:
        return None
    feedback = result.get("feedback") or {}
    reason = feedback.get("warning") or "It would be guessed quickly."
    suggestions = " ".join(feedback.get("suggestions") or ["Add another word or two. Uncommon words are better."])
    return f"This password is too easy to guess. {_sentence(reason)} {suggestions}".strip()


def _words(user_inputs: Iterable[str]) -> list[str]:
    """Each input, and its parts: the local part of an email, each word of a name."""
    words: list[str] = []
    for value in user_inputs:
        value = (value or "").strip().lower()
        if not value:
            continue
        words.extend([value, re.sub(r"[\s.+_-]+", "", value.split("@")[0])])
        words.extend(part for part in re.split(r"[\s@.+_-]+", value) if len(part) > 2)
    return words


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else f"{text}."
