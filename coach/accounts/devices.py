"""What a session's browser is, in words a person recognises ("Chrome on macOS"), from its ``User-Agent``."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import lru_cache

from ua_parser import parse

from coach.accounts import security_log, service
from coach.accounts.models import User, UserSession
from coach.extensions import db

# ua-parser's names where people say something else.
_OS_NAMES = {"Mac OS X": "macOS", "Windows": "Windows", "Chrome OS": "ChromeOS"}
_BROWSER_NAMES = {"HeadlessChrome": "Chrome (headless)", "Chrome Mobile": "Chrome", "Mobile Safari": "Safari",
                  "Firefox Mobile": "Firefox", "Chrome Mobile iOS": "Chrome", "Edge Mobile": "Edge",
                  "Samsung Internet": "Samsung Internet", "Python Requests": "A script (Python)"}
UNKNOWN = "Unknown browser"


@lru_cache(maxsize=1024)
def describe(user_agent: str) -> str:
    """A short description of the browser and system behind ``user_agent``: "Chrome on macOS", "Safari on
    iPhone", "Firefox", or "Unknown browser" for an empty or unrecognised string."""
    if not user_agent:
        return UNKNOWN
    result = parse(user_agent[:500])
    browser = result.user_agent.family if result.user_agent and result.user_agent.family != "Other" else ""
    browser = _BROWSER_NAMES.get(browser, browser)
    system = ""
    if result.device and result.device.family in ("iPhone", "iPad"):
        system = result.device.family
    elif result.os and result.os.family != "Other":
        system = _OS_NAMES.get(result.os.family, result.os.family)
    if browser and system:
        return f"{browser} on {system}"
    return browser or (f"A browser on {system}" if system else UNKNOWN)


# How a session signed in, by its ``second_factor``: None is a password (or an emailed sign-in link).
SIGNED_IN_WITH = {None: "Password", "totp": "Password and two-factor code",
                  "recovery": "Password and recovery code", "passkey": "Passkey"}


@dataclass
class Device:
    """One live session as the sessions page shows it."""

    session: UserSession
    description: str
    signed_in_with: str
    current: bool


def devices(user: User) -> list[Device]:
    """``user``'s live sessions, most recently used first, described for people (the current one marked)."""
    return [Device(s, describe(s.user_agent), SIGNED_IN_WITH.get(s.second_factor, s.second_factor or ""),
                   s.id == user.auth_session_id)
            for s in service.live_sessions(user)]


def end_session(user: User, session_id: uuid.UUID) -> UserSession | None:
    """Sign out one of ``user``'s live sessions (from another of theirs): it opens nothing from its next request on,
    and its sockets close once the caller commits. ``None`` when it is not a live session of ``user``'s (nothing
    changes then)."""
    record = db.session.get(UserSession, session_id)
    if record is None or record.user_id != user.id or not service.revoke_session(user, session_id):
        return None
    security_log.record(user.id, "session.revoked", device=describe(record.user_agent), ip=record.ip)
    return record


def end_other_sessions(user: User) -> int:
    """Sign out every session of ``user`` except this request's; how many ended."""
    ended = service.revoke_other_sessions(user)
    if ended:
        security_log.record(user.id, "session.revoked_others", count=len(ended))
    return len(ended)
