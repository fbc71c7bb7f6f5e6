"""IANA time zones offered in forms."""
from functools import lru_cache
from zoneinfo import available_timezones

from wtforms.fields.choices import SelectChoice


@lru_cache(maxsize=1)
def _zone_names() -> tuple[str, ...]:
    names = sorted(z for z in available_timezones()
                   if "/" in z and not z.startswith(("Etc/", "SystemV/", "posix/", "right/")))
    return ("UTC", *names)


def timezone_choices() -> list[SelectChoice]:
    return [SelectChoice(z, z.replace("_", " ")) for z in _zone_names()]


def is_valid_timezone(name: str) -> bool:
    return name in _zone_names()
