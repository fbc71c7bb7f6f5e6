"""Everything templates may call, registered on the app in one place (``init_app``).

Globals and filters that pages of several blueprints use live here rather than on whichever
blueprint happened to need them first. They read through domain services; none opens a
transaction a page would not open anyway.
"""
from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import Flask, current_app, g, has_app_context, has_request_context, request, url_for
from flask_login import current_user
from markupsafe import Markup

from coach import money
from coach.payments import provider
from coach.blueprints.avatars import avatar_parts
from coach.blueprints.navigation import nav_section
from coach.booking import service as booking
from coach.clock import now
from coach.governance import branding
from coach.governance import onboarding
from coach.governance.settings import babel_locale
from coach.htmx import wants_fragment
from coach.media import service as media
from coach.notifications import service as notifications
from coach.platform.idempotency import FORM_FIELD, new_key
from coach.timezones import clock_time, minutes_on_clock, zone_abbreviations


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def idempotency_field() -> Markup:
    """A hidden input with a fresh key: a double-clicked submit then creates one thing."""
    return Markup(f'<input type="hidden" name="{FORM_FIELD}" value="{new_key()}">')


def onboarding_for():
    """The signed-in member's getting-started checklist for the home page (orgs/onboarding/_slot.html), or None:
    none for the role, hidden by the member, or long done. One statement at most; none once hidden."""
    if g.get("membership") is None or g.get("org") is None:
        return None
    return onboarding.shown(g.org, g.membership, current_user)


def nav_badges() -> dict:
    """Unread chat messages and notifications of the member in force, for the nav (one statement, once per
    request: a page that shows one of the counts itself reads it here too)."""
    if g.get("membership") is None or g.get("org") is None:
        return {"chat": 0, "notifications": 0}
    badges = g.get("_nav_badges")
    if badges is None:
        badges = g._nav_badges = notifications.nav_counts(g.org, g.membership)
    return badges


# The navigation's links: the same for every page of an organization, so built once per organization (and
# process), not with a dozen url_for calls on every page.
_ORG_NAV = {"home": "orgs.home", "feed": "spaces.feed", "spaces": "spaces.index", "chat": "chat.index",
            "socket": "chat.socket", "media": "media.library", "sessions": "booking.sessions",
            "schedule": "booking.my_schedule", "book": "booking.coaches", "members": "admin.members",
            "dashboard": "admin.dashboard", "audit": "admin.audit_log", "system": "admin.system_page",
            "settings": "admin.org_settings_page", "notifications": "notifications.index",
            "billing_mine": "payments.mine", "billing_products": "payments.products",
            "billing_admin": "payments.admin_payments", "progress": "progress.index",
            "my_profile": "directory.edit_own", "coaches": "directory.search_coaches",
            "notification_settings": "notifications.preferences", "onboarding": "orgs.onboarding"}
_SITE_NAV = {"start": "orgs.index", "picker": "orgs.picker", "profile": "accounts.profile",
             "security": "accounts.security", "platform": "operator.index",
             "logout": "accounts.logout", "login": "accounts.login", "signup": "accounts.signup",
             "directory": "directory_public.index"}


@lru_cache(maxsize=4096)
def _nav_for(app_id: int, script_root: str, slug: str | None) -> dict[str, str]:
    urls = {name: url_for(endpoint) for name, endpoint in _SITE_NAV.items()}
    if slug is not None:
        urls.update({name: url_for(endpoint, slug=slug) for name, endpoint in _ORG_NAV.items()})
        # A websocket rule's URL comes out absolute (ws://host/...): cached for every request, it must not
        # carry the host of the request that built it. htmx's ws extension resolves a path against the page.
        urls["socket"] = urlsplit(urls["socket"]).path
    return urls


def nav_urls() -> dict[str, str]:
    """The navigation's links for the organization in force (the site's own links only, outside one)."""
    org = g.get("org")
    return _nav_for(id(current_app._get_current_object()), request.script_root,
                    org.slug if org is not None and g.get("membership") is not None else None)


def media_urls(item) -> dict[str, str]:
    """Signed URLs of an item's renditions (signing is local: no I/O)."""
    return media.urls(item)


def booking_actions(booking_row) -> set[str]:
    """What the member in force may do with a booking (the buttons its row shows)."""
    return booking.allowed_actions(booking_row, g.membership)


def late_if_cancelled(booking_row) -> bool:
    """Whether cancelling now would count as late under the offering's policy."""
    return booking.is_late_cancellation(booking_row, now())


def on_clock(local: datetime, fmt: str, cycle: int) -> str:
    """``local.strftime(fmt)`` with the time of day (``%H:%M``) on a ``cycle``-hour clock: "2:30 pm" for 12.

    A stamp with seconds (``%H:%M:%S``, the audit trail's) stays on 24 hours: it is a record to sort and to
    match with exported rows and logs, not a time to read at a glance."""
    if cycle == 12 and "%H:%M" in fmt:
        # Each %H:%M not followed by :%S becomes the 12-hour text (escaped: strftime reads what it is given).
        text = clock_time(local, 12).replace("%", "%%")
        fmt = _HOUR_MINUTE.sub(lambda _match: text, fmt)
    return local.strftime(fmt)


_HOUR_MINUTE = re.compile(r"%H:%M(?!:%S)")


def orgtime(value: datetime | None, org, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A UTC time in the organization's time zone (audit trails read in one zone); a time of day without
    seconds on the viewer's clock."""
    if value is None:
        return ""
    return on_clock(value.astimezone(_zone(org.timezone)), fmt, hour_cycle())


def localtime(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M %Z") -> str:
    """A UTC time in the viewer's time zone, its time of day (``%H:%M``) on the viewer's clock."""
    if value is None:
        return ""
    # Pages: the signed-in user's zone. Sockets' pushes are rendered outside any request, for a
    # reader named by g.viewer_timezone (and g.viewer_hour_cycle).
    tz = g.get("viewer_timezone") or (current_user.timezone if has_request_context()
                                      and current_user.is_authenticated else "UTC")
    return on_clock(value.astimezone(_zone(tz)), fmt, hour_cycle())


def hour_cycle() -> int:
    """The viewer's clock: 12 or 24 hours (24 for visitors and outside requests). A push rendered for a
    reader outside their request names their clock in ``g.viewer_hour_cycle``, as it names their zone."""
    cycle = g.get("viewer_hour_cycle") if has_app_context() else None
    if cycle:
        return cycle
    if has_request_context() and current_user.is_authenticated:
        return current_user.hour_cycle or 24
    return 24


def clock(value: datetime | None, tz: str | None = None, with_zone: bool = False) -> str:
    """A UTC instant as a time of day on the viewer's clock ("14:30" or "2:30 pm") in zone ``tz`` (the
    viewer's by default); ``with_zone`` adds the zone's abbreviation ("14:30 CET")."""
    if value is None:
        return ""
    tz = tz or g.get("viewer_timezone") or (current_user.timezone if has_request_context()
                                            and current_user.is_authenticated else "UTC")
    local = value.astimezone(_zone(tz))
    text = clock_time(local, hour_cycle())
    return f"{text} {zone_abbreviations(str(local.tzinfo), value, value)}" if with_zone else text


def wall_clock(minute: int | None) -> str:
    """Minutes after midnight of someone's day (a habit's reminder, a coach's hours) on the viewer's clock."""
    return "" if minute is None else minutes_on_clock(minute, hour_cycle())


def org_brand() -> dict | None:
    """The organization in force's stylesheet and logo URLs, when it has branding (the layout links them)."""
    org = g.get("org")
    if org is None or g.get("membership") is None or not branding.has_branding(org):
        return None
    return {"css": branding.stylesheet_path(org), "logo": branding.logo_path(org)}


def org_locale() -> str:
    """The page's language tag: the organization's locale on its pages, else English."""
    org = g.get("org")
    return org.locale if org is not None and g.get("membership") is not None else "en"


def format_money(minor: int, currency: str) -> str:
    """An amount, written the way the organization in force's locale writes it."""
    return money.format(minor, currency, babel_locale(org_locale()) if has_request_context() else money.DEFAULT_LOCALE)


def avatar(*args, **kwargs):
    """The ``_avatar.html`` macro as a global: a block rendered on its own (an htmx fragment) runs none of its
    template's top-level ``{% from ... import %}`` lines, so a macro imported there is undefined in it."""
    return current_app.jinja_env.get_template("_avatar.html").module.avatar(*args, **kwargs)


def init_app(app: Flask) -> None:
    app.jinja_env.globals.update(avatar=avatar, idempotency_field=idempotency_field, nav_badges=nav_badges,
                                 nav_urls=nav_urls,
                                 media_urls=media_urls, booking_actions=booking_actions,
                                 late_if_cancelled=late_if_cancelled, card_payments=provider.enabled,
                                 org_brand=org_brand, org_locale=org_locale, hour_cycle=hour_cycle,
                                 avatar_parts=avatar_parts, nav_section=nav_section,
                                 onboarding_for=onboarding_for)
    app.jinja_env.filters.update(orgtime=orgtime, localtime=localtime, money=format_money, clock=clock,
                                 wall_clock=wall_clock)

    @app.context_processor
    def _per_render():
        return {"is_fragment": wants_fragment(), "now": now()}
