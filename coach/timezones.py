"""IANA time zones: the names we offer, reading what a person typed into the picker, a suggestion from the
browser's ``Accept-Language``, and clock times on a person's 12- or 24-hour clock.

Pure functions (no request, no database): the forms, the views and the templates call them.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from importlib import resources
from zoneinfo import ZoneInfo, available_timezones

from babel.core import get_global, parse_locale
from wtforms.fields.choices import SelectChoice

UTC_NAME = "UTC"
# Longer than any zone name (the longest is 30 characters): what is typed past this is not a zone.
MAX_INPUT = 100
UNKNOWN = "We don't know that time zone. Try a city, like Europe/Paris."
EMPTY = "Choose a time zone, like Europe/Paris."

# Countries spanning several zones: the zone most of their people live in (CLDR lists a country's zones
# alphabetically, so its first is America/Adak for the United States). One-zone countries need no entry.
PRIMARY_ZONES = {
    "US": "America/New_York", "CA": "America/Toronto", "AU": "Australia/Sydney", "BR": "America/Sao_Paulo",
    "RU": "Europe/Moscow", "MX": "America/Mexico_City", "ES": "Europe/Madrid", "AR": "America/Argentina/Buenos_Aires",
    "KZ": "Asia/Almaty", "ID": "Asia/Jakarta", "PT": "Europe/Lisbon", "CL": "America/Santiago",
    "EC": "America/Guayaquil", "DE": "Europe/Berlin", "CN": "Asia/Shanghai", "NZ": "Pacific/Auckland",
    "UA": "Europe/Kyiv", "MY": "Asia/Kuala_Lumpur", "UZ": "Asia/Tashkent", "MN": "Asia/Ulaanbaatar",
    "CD": "Africa/Kinshasa", "GL": "America/Nuuk", "PG": "Pacific/Port_Moresby", "CY": "Asia/Nicosia",
    "PF": "Pacific/Tahiti", "KI": "Pacific/Tarawa", "FM": "Pacific/Pohnpei", "MH": "Pacific/Majuro",
    "DK": "Europe/Copenhagen", "FR": "Europe/Paris", "GB": "Europe/London", "NL": "Europe/Amsterdam",
    "NO": "Europe/Oslo", "IT": "Europe/Rome", "CH": "Europe/Zurich", "AT": "Europe/Vienna",
}


@lru_cache(maxsize=1)
def _zone_names() -> tuple[str, ...]:
    names = sorted(z for z in available_timezones()
                   if "/" in z and not z.startswith(("Etc/", "SystemV/", "posix/", "right/")))
    return (UTC_NAME, *names)


def timezone_choices() -> list[SelectChoice]:
    return [SelectChoice(z, z.replace("_", " ")) for z in _zone_names()]


def is_valid_timezone(name: str) -> bool:
    return name in _zone_names()


# --- reading the picker --------------------------------------------------------------------------------

def _key(text: str) -> str:
    return " ".join(text.replace("_", " ").split()).casefold()


@lru_cache(maxsize=1)
def _lookup() -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """Every zone by its folded full name, and the zones by their folded city (the last part)."""
    full: dict[str, str] = {}
    cities: dict[str, list[str]] = {}
    for name in _zone_names():
        full[_key(name)] = name
        cities.setdefault(_key(name.rsplit("/", 1)[-1]), []).append(name)
    return full, {city: tuple(zones) for city, zones in cities.items()}


class UnknownTimezone(ValueError):
    """What was typed names no zone, or several: the message says which and what to type."""


def parse_timezone(text: str | None) -> str:
    """The zone a person means by ``text``: its name in any case, with spaces for underscores, with or without the
    picker's offset (``"Europe/Berlin (UTC+01:00)"``), or a city alone when one zone has it (``"berlin"``)."""
    text = (text or "").strip()
    if not text:
        raise UnknownTimezone(EMPTY)
    if len(text) > MAX_INPUT or not text.isprintable():
        raise UnknownTimezone(UNKNOWN)
    if text.endswith(")") and " (" in text:  # the label the picker shows, offset and all
        text = text.rsplit(" (", 1)[0]
    full, cities = _lookup()
    key = _key(text)
    if key in full:
        return canonical(full[key])
    if key.removeprefix("etc/") in _UTC_ALIASES:  # names a browser or a person may use for UTC itself
        return UTC_NAME
    matches = cities.get(key, ())
    if len(matches) == 1:
        return canonical(matches[0])
    if matches:
        raise UnknownTimezone(f"Several time zones are called {text}: {', '.join(matches)}. Choose one.")
    raise UnknownTimezone(UNKNOWN)


_UTC_ALIASES = frozenset({"utc", "uct", "gmt", "gmt0", "universal", "zulu", "greenwich"})


def canonical(name: str) -> str:
    """The zone's current name when ``name`` is an old one tzdata keeps as a link (``Asia/Calcutta`` →
    ``Asia/Kolkata``, ``Europe/Kiev`` → ``Europe/Kyiv``, ``US/Eastern`` → ``America/New_York``): Chromium still
    reports several old names, and a member should read the one the place uses now. A country's own zone that
    tzdata merely links to a neighbour with the same clocks since 1970 (``Europe/Oslo`` → ``Europe/Berlin``) is
    no old name: it is in ``zone.tab`` and stays."""
    target = _links().get(name)
    return target if target is not None and target in _lookup()[0].values() else name


@lru_cache(maxsize=1)
def _links() -> dict[str, str]:
    """Old zone name → current one: the ``L <target> <link>`` lines of the tzdata package's ``tzdata.zi``, less
    the links that are a country's zone in ``zone.tab``."""
    try:
        folder = resources.files("tzdata.zoneinfo")
        source = folder.joinpath("tzdata.zi").read_text(encoding="utf-8")
        table = folder.joinpath("zone.tab").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):  # no tzdata package (the system's zoneinfo): names stay
        return {}
    countries = {row.split("\t")[2] for row in table.splitlines() if row and not row.startswith("#")}
    return {parts[2]: parts[1] for parts in (line.split() for line in source.splitlines())
            if len(parts) == 3 and parts[0] == "L" and parts[2] not in countries}


def offset_label(name: str, at: datetime | None = None) -> str:
    """``"UTC+01:00"``: the zone's offset from UTC at ``at`` (now by default)."""
    offset = (at or datetime.now(timezone.utc)).astimezone(ZoneInfo(name)).utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@lru_cache(maxsize=4)
def picker_options(on: date) -> tuple[tuple[str, str], ...]:
    """The picker's options on day ``on``: each zone's name and its label, ``"Europe/Berlin (UTC+01:00)"``
    (offsets change with daylight saving time, so the list is worked out once per day)."""
    at = datetime.combine(on, time(12), timezone.utc)
    return tuple((name, f"{name.replace('_', ' ')} ({offset_label(name, at)})") for name in _zone_names())


# --- a suggestion without JavaScript -------------------------------------------------------------------

def suggest_from_accept_language(header: str | None) -> str | None:
    """The zone of the region of the browser's preferred language (``en-GB`` → Europe/London), or None when
    that language names no region (``de``), a region of several zones we cannot choose among, or nothing."""
    first = _preferred_language(header or "")
    if not first:
        return None
    try:
        _language, territory, _script, _variant = parse_locale(first.replace("_", "-"), sep="-")
    except ValueError:
        return None
    if not territory or not territory.isalpha():  # no region, or a numeric one such as 419 (Latin America)
        return None
    territory = territory.upper()
    zones = get_global("territory_zones").get(territory) or []
    zone = PRIMARY_ZONES.get(territory) or (zones[0] if zones else None)
    return zone if zone and is_valid_timezone(zone) else None


def _preferred_language(header: str) -> str | None:
    """The language tag of highest quality in an ``Accept-Language`` header (the first of equals)."""
    best, best_q = None, 0.0
    for part in header[:1000].split(","):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        if not tag or tag == "*" or len(tag) > 35:
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > best_q:
            best, best_q = tag, q
    return best


# --- clock times ---------------------------------------------------------------------------------------

HOUR_CYCLES = (12, 24)


def clock_time(value: datetime | time, hour_cycle: int = 24) -> str:
    """A time of day on a 24-hour clock (``"14:30"``) or a 12-hour one (``"2:30 pm"``)."""
    if hour_cycle == 12:
        hour = value.hour % 12 or 12
        return f"{hour}:{value.minute:02d} {'am' if value.hour < 12 else 'pm'}"
    return f"{value.hour:02d}:{value.minute:02d}"


def minutes_on_clock(minute: int, hour_cycle: int = 24) -> str:
    """Minutes after midnight of a coach's hours (``1440`` is the day's end) on the reader's clock: ``"17:30"``
    and ``"24:00"``, or ``"5:30 pm"`` and ``"midnight"`` (a 12-hour "12:00 am" would read as the day's start)."""
    if minute >= 1440:
        return "midnight" if hour_cycle == 12 else "24:00"
    return clock_time(time(minute // 60, minute % 60), hour_cycle)


def zone_abbreviations(name: str, start: datetime, end: datetime) -> str:
    """The zone's abbreviations between two instants: ``"CET"``, ``"CET/CEST"`` across a daylight-saving
    change; the offset (``"UTC+03:00"``) where tzdata has no abbreviation for the zone (it writes ``"+03"``)."""
    zone = ZoneInfo(name)
    names: list[str] = []
    for instant in (start, end):
        abbr = instant.astimezone(zone).tzname() or ""
        if not abbr or abbr[0] in "+-":
            abbr = offset_label(name, instant)
        if abbr not in names:
            names.append(abbr)
    return "/".join(names)
