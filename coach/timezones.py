"""IANA time zones offered in forms."""
from functools import lru_cache
from zoneinfo import available_timezones


@lru_cache(maxsize=1)
def timezone_choices() -> list[tuple[str, str]]:
    names = sorted(z for z in available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/", "posix/", "right/")))
    return [("UTC", "UTC")] + [(z, z.replace("_", " ")) for z in names]


def is_valid_timezone(name: str) -> bool:
    return name == "UTC" or name in dict(timezone_choices())
