"""An organization's settings: its name, time zone and locale, who may create spaces, whether its coaches are
listed publicly, the two-factor requirement for admins and coaches, and how long chat and the audit trail are kept.

Money settings (the currency, commission, tax) are the payments domain's (``payments.settings``, edited on the
billing settings page, which also refuses a new currency once payments were taken); the cancellation policy is
set per offering. The settings page shows both and links to where they are edited rather than keeping a copy.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from coach.clock import now
from coach.directory import projection
from coach.directory.events import LISTING_CHANGED
from coach.errors import DomainError, NotAllowed
from coach.extensions import db
from coach.orgs.models import ADMIN, SPACE_CREATORS, Membership, Organization
from coach.platform import audit
from coach.platform.outbox import emit
from coach.timezones import is_valid_timezone

# The locales an organization may choose: the page's ``<html lang>`` and how amounts and numbers are written
# (Babel has data for each; ``babel_locale`` turns the BCP 47 tag into Babel's form).
LOCALES = {"en": "English", "en-GB": "English (United Kingdom)", "de": "Deutsch", "fr": "Français",
           "es": "Español", "nl": "Nederlands", "pt": "Português", "it": "Italiano"}
SPACE_CREATION_LABELS = {"admins": "Admins only", "leaders": "Coaches and admins", "members": "Every member"}
# The migration's checks (0016): chat 1–3650 days, the audit trail 30–3650 days; None keeps everything.
CHAT_RETENTION = (1, 3650)
AUDIT_RETENTION = (30, 3650)
RECORDING_RETENTION = (1, 3650)  # session recordings (migration 0020); None keeps them until deleted
# What a late cancellation costs (the booking domain's offering choices) and the offering form's limits.
LATE_CANCEL_POLICIES = {"forfeit": "forfeits the session (credit or payment kept)",
                        "fee": "keeps a fee (the rest of a payment is refunded; a credit is kept)",
                        "refund": "gives everything back"}
CANCELLATION_WINDOW = (0, 720)
FIELDS = ("name", "timezone", "locale", "space_creation", "listed_publicly", "require_two_factor",
          "chat_retention_days", "audit_retention_days", "recording_retention_days",
          "default_cancellation_window_hours",
          "default_late_cancel_policy", "default_late_cancel_fee_percent")


class SettingsError(DomainError):
    """A setting the organization cannot have."""


@dataclass(frozen=True)
class Change:
    before: object
    after: object


def babel_locale(tag: str | None) -> str:
    """``en-GB`` → ``en_GB`` (Babel's separator); an unknown tag → ``en``."""
    return (tag if tag in LOCALES else "en").replace("-", "_")


def _retention(value, bounds: tuple[int, int], what: str) -> int | None:
    if value is None or value == "":
        return None
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SettingsError(f"Keep {what} between {low:,} and {high:,} days, or leave it empty to keep everything.")
    return value


def _clean(values: dict) -> dict:
    """The validated values (each error names the setting); keys not given are left out."""
    clean = {}
    if "name" in values:
        name = (values["name"] or "").strip()
        if not 1 <= len(name) <= 120 or "\x00" in name:
            raise SettingsError("The organization's name has 1 to 120 characters.")
        clean["name"] = name
    if "timezone" in values:
        if not values["timezone"] or not is_valid_timezone(values["timezone"]):
            raise SettingsError(f"{values['timezone']!r} is not a time zone we know (e.g. Europe/Berlin).")
        clean["timezone"] = values["timezone"]
    if "locale" in values:
        if values["locale"] not in LOCALES:
            raise SettingsError(f"{values['locale']!r} is not one of the languages offered.")
        clean["locale"] = values["locale"]
    if "space_creation" in values:
        if values["space_creation"] not in SPACE_CREATORS:
            raise SettingsError("Choose who may create spaces: admins, coaches and admins, or every member.")
        clean["space_creation"] = values["space_creation"]
    for flag in ("listed_publicly", "require_two_factor"):
        if flag in values:
            clean[flag] = bool(values[flag])
    if "chat_retention_days" in values:
        clean["chat_retention_days"] = _retention(values["chat_retention_days"], CHAT_RETENTION, "chat messages")
    if "audit_retention_days" in values:
        clean["audit_retention_days"] = _retention(values["audit_retention_days"], AUDIT_RETENTION,
                                                   "the audit trail")
    if "recording_retention_days" in values:
        clean["recording_retention_days"] = _retention(values["recording_retention_days"], RECORDING_RETENTION,
                                                       "session recordings")
    clean.update(_cancellation(values))
    return clean


def _cancellation(values: dict) -> dict:
    clean = {}
    if "default_cancellation_window_hours" in values:
        hours, (low, high) = values["default_cancellation_window_hours"], CANCELLATION_WINDOW
        if isinstance(hours, bool) or not isinstance(hours, int) or not low <= hours <= high:
            raise SettingsError(f"Free cancellation ends between {low} and {high} hours before a session.")
        clean["default_cancellation_window_hours"] = hours
    if "default_late_cancel_policy" in values:
        if values["default_late_cancel_policy"] not in LATE_CANCEL_POLICIES:
            raise SettingsError("Choose what a late cancellation costs: forfeit, a fee or nothing.")
        clean["default_late_cancel_policy"] = values["default_late_cancel_policy"]
    if "default_late_cancel_fee_percent" in values:
        fee = values["default_late_cancel_fee_percent"]
        if isinstance(fee, bool) or not isinstance(fee, int) or not 0 <= fee <= 100:
            raise SettingsError("A late-cancel fee is between 0 and 100 per cent.")
        clean["default_late_cancel_fee_percent"] = fee
    return clean


def offering_defaults(org: Organization) -> dict:
    """The cancellation terms a new offering of the organization starts with."""
    return {"cancellation_window_hours": org.default_cancellation_window_hours,
            "late_cancel_policy": org.default_late_cancel_policy,
            "late_cancel_fee_percent": org.default_late_cancel_fee_percent}


def save_settings(org: Organization, values: dict, actor: Membership) -> dict[str, Change]:
    """Change the organization's settings (a subset of :data:`FIELDS`); audited with each value before and after.

    :returns: what changed, by setting (empty when nothing did: nothing is audited then).
    :raises SettingsError: a value outside what the setting allows (nothing is changed).
    :raises NotAllowed: the actor is not an admin of the organization.
    """
    if actor.role != ADMIN or actor.tenant_id != org.id:
        raise NotAllowed("Only the organization's admins change its settings.")
    clean = _clean(values)
    if "timezone" in clean and org.timezone_confirmed_at is None:
        org.timezone_confirmed_at = now()  # the admin saw the zone and kept or changed it (onboarding's step)
    changed = {name: Change(getattr(org, name), value) for name, value in clean.items()
               if getattr(org, name) != value}
    if not changed:
        return {}
    for name, change in changed.items():
        setattr(org, name, change.after)
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError as exc:  # the migration's checks: unreachable after _clean, kept as the last word
        raise SettingsError("Some values are outside what the settings allow. Check the form.") from exc
    audit.record("org.settings_changed", actor=actor.user, target_type="organization", target_id=org.id,
                 tenant_id=org.id, details={name: {"before": c.before, "after": c.after}
                                            for name, c in changed.items()})
    if changed.keys() & {"listed_publicly", "name", "locale"}:
        # The public directory shows the name and searches in the locale's language. Unlisting is immediate
        # (the rows go in this transaction); listing and the rest follow through the projection's consumers.
        if not org.listed_publicly:
            projection.remove_org(org.id)
        emit(LISTING_CHANGED, {"coach_membership_id": None}, tenant_id=org.id)
    return changed
