"""Days as a member lives them: "today" is the date in the member's own time zone (their profile's, UTC when it
is unset or unknown), and weeks start on Monday. Every part of athlete development reads days through here."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from coach import clock
from coach.orgs.models import Membership


def zone_named(name: str | None) -> ZoneInfo:
    """The zone of that IANA name; UTC for none or a name this machine does not know (never an error)."""
    try:
        return ZoneInfo(name or "UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def zone_of(member: Membership) -> ZoneInfo:
    return zone_named(member.user.timezone)


def local_today(member: Membership, now: datetime | None = None) -> date:
    """Today in ``member``'s time zone (at ``now``, the clock's now by default)."""
    return (now or clock.now()).astimezone(zone_of(member)).date()


def monday_of(day: date) -> date:
    """The Monday of ``day``'s week."""
    return day - timedelta(days=day.weekday())
