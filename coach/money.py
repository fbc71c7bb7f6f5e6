"""Money: integer minor units of an ISO 4217 currency, each currency with its own number of decimals.

Babel's currency data says how many digits a currency's minor unit has (EUR 2, JPY 0, KWD 3), so a price
typed as "5,000" yen is stored as 5000 and "49.90" euros as 4990; nothing here multiplies by 100. Amounts
are only ever computed on the server from stored prices: a form says *what* is bought, never how much.
"""
from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import lru_cache

from babel.numbers import (
    NumberFormatError,
    format_currency,
    get_currency_name,
    get_currency_precision,
    list_currencies,
    parse_decimal,
)

from coach.errors import DomainError

DEFAULT_LOCALE = "en"
# The largest price anything may have (in major units of any currency; the database caps minor units too).
MAX_MINOR = 100_000_000


class MoneyError(DomainError):
    """An amount or currency that cannot be a price."""


@lru_cache(maxsize=None)
def currencies() -> frozenset[str]:
    return frozenset(list_currencies())


@lru_cache(maxsize=None)
def exponent(currency: str) -> int:
    """How many decimals ``currency``'s minor unit has (2 for EUR, 0 for JPY, 3 for KWD)."""
    return get_currency_precision(check_currency(currency))


def check_currency(currency: str) -> str:
    code = (currency or "").strip().upper()
    if len(code) != 3 or code not in currencies():
        raise MoneyError(f"{currency!r} is not a currency code (ISO 4217, e.g. EUR).")
    return code


def to_decimal(minor: int, currency: str) -> Decimal:
    """``minor`` units of ``currency`` as a decimal amount in major units."""
    return Decimal(minor).scaleb(-exponent(currency))


def to_minor(amount: Decimal, currency: str) -> int:
    """A decimal amount in major units as minor units; more decimals than the currency has is an error."""
    places = exponent(currency)
    scaled = amount.scaleb(places)
    if scaled != scaled.to_integral_value():
        unit = "no decimals" if places == 0 else f"at most {places} decimal{'s' if places > 1 else ''}"
        raise MoneyError(f"{currency} amounts have {unit}.")
    return int(scaled)


def parse(text: str, currency: str, *, allow_zero: bool = True, locale: str = DEFAULT_LOCALE) -> int:
    """A price as typed ("49.90", "1,250", "5000") in minor units of ``currency``.

    :raises MoneyError: not a number, negative, absurdly large or more precise than the currency.
    """
    raw = (text or "").strip()
    if not raw:
        raise MoneyError("Enter an amount.")
    try:
        amount = parse_decimal(raw, locale=locale, strict=True)
    except (NumberFormatError, InvalidOperation, ValueError):
        raise MoneyError(f"{raw!r} is not an amount; write it like 49.90.") from None
    if not amount.is_finite():  # "inf", "NaN": Babel parses them
        raise MoneyError(f"{raw!r} is not an amount; write it like 49.90.")
    return check_amount(to_minor(amount, currency), currency, allow_zero=allow_zero)


def check_amount(minor: int, currency: str, *, allow_zero: bool = True) -> int:
    if minor < 0:
        raise MoneyError("An amount cannot be negative.")
    if minor == 0 and not allow_zero:
        raise MoneyError("Enter an amount above zero.")
    if minor > MAX_MINOR:
        raise MoneyError(f"That is more than {format(MAX_MINOR, currency)}.")
    return minor


def format(minor: int, currency: str, locale: str = DEFAULT_LOCALE) -> str:  # noqa: A001 - the module's verb
    """``4990, "EUR"`` → "€49.90"; ``5000, "JPY"`` → "¥5,000"."""
    return format_currency(to_decimal(minor, currency), currency, locale=locale)


def plain(minor: int, currency: str) -> str:
    """The amount for a form field or a CSV cell: "49.90", "5000" (no symbol, no grouping)."""
    return f"{to_decimal(minor, currency):f}"


def share(minor: int, basis_points: int) -> int:
    """``basis_points``/10,000 of ``minor``, rounded half to even (a commission, a tax, a fee)."""
    return int((Decimal(minor) * basis_points / 10_000).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def split(minor: int, parts: int) -> list[int]:
    """``minor`` in ``parts`` integer shares that add up exactly (the last ones take the remainder)."""
    base, extra = divmod(minor, parts)
    return [base + (1 if i >= parts - extra else 0) for i in range(parts)]


def name(currency: str, locale: str = DEFAULT_LOCALE) -> str:
    return get_currency_name(currency, locale=locale)
