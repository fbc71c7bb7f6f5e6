"""Telling a person about sign-ins they may not have made: repeated failures on their account (a lockout), and a
sign-in from a browser or country their account never used before. Both are emailed and kept in their security
log; the caller commits."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import exists, select

from coach.accounts import devices, security_log
from coach.accounts.models import SecurityEvent, User, UserSession
from coach.accounts.service import session_opened
from coach.clock import now
from coach.extensions import db
from coach.platform.mail import queue_email
from coach.timezones import clock_time

# Earlier sessions compared with a new one (the most recent; ended ones count: they are history).
HISTORY = 200


def notice_lockout(user: User, what: str, window: timedelta) -> bool:
    """Email ``user`` that someone keeps failing to sign in to their account (``what``: "password" or "code"),
    once per ``window``: the user's row lock and the ``login.locked`` line in their log make concurrent failures
    send one email. ``True`` when this call sent it."""
    db.session.flush()
    db.session.refresh(user, with_for_update=True)
    already = db.session.scalar(select(exists().where(
        SecurityEvent.user_id == user.id, SecurityEvent.action == "login.locked",
        SecurityEvent.created_at > now() - window)))
    if already:
        return False
    security_log.record(user.id, "login.locked", failed=what)
    queue_email(user.email, "Someone is trying to sign in to your Coach account", "signin_locked", user=user,
                what=what, minutes=max(1, int(window.total_seconds() // 60)))
    return True


def _unusual(user_id, record: UserSession) -> dict | None:
    """What is new about ``record`` compared with ``user_id``'s earlier sessions (device, country), or ``None``
    when nothing is, or when there is no earlier session (a first sign-in is not unusual)."""
    earlier = db.session.execute(
        select(UserSession.user_agent, UserSession.country)
        .where(UserSession.user_id == user_id, UserSession.id != record.id)
        .order_by(UserSession.created_at.desc()).limit(HISTORY)
    ).all()
    if not earlier:
        return None
    new = {}
    device = devices.describe(record.user_agent)
    if device not in {devices.describe(agent) for agent, _ in earlier}:
        new["device"] = device
    countries = {country for _, country in earlier if country}
    # A country is news only against a history that has countries: turning COUNTRY_HEADER on must not
    # email every person at their next sign-in.
    if record.country and countries and record.country not in countries:
        new["country"] = record.country
    return new or None


@session_opened.connect
def _tell_unusual_sign_in(user: User, session: UserSession, **_) -> None:
    new = _unusual(user.id, session)
    if new is None:
        return
    security_log.record(user.id, "login.unusual", **new)
    queue_email(user.email, "New sign-in to your Coach account", "signin_unusual", user=user,
                device=devices.describe(session.user_agent), country=session.country, ip=session.ip,
                when=_as_read_by(user, session.created_at), new=new)


def _as_read_by(user: User, at: datetime) -> str:
    """``at`` as ``user`` reads clocks: in their zone, named, on their 12- or 24-hour clock
    ("2026-12-07 2:30 pm CET (Europe/Berlin)"): a sign-in in UTC sends a person to a converter."""
    try:
        zone = ZoneInfo(user.timezone or "UTC")
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    local = at.astimezone(zone)
    return f"{local:%Y-%m-%d} {clock_time(local, user.hour_cycle or 24)} {local:%Z} ({zone.key})"
