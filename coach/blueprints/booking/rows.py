"""Booking rows as HTML: each row rendered once per version and viewer, then reused by every page that shows it.

A row's markup (``booking/_booking_row.html``) depends on the booking as a list reads it (a
:class:`~coach.booking.lists.SessionRow`: its columns, the names around it, its times in the viewer's zone, what
the viewer may do with it now), on who views it (the "with" line, their 12- or 24-hour clock), on the
organization's URLs and on the path the forms return to. The rendering is cached in this process, bounded (least
recently used first out), under exactly those: a confirmed request, a renamed athlete, another zone or an action
that lapses with time reads as another row, hence another key; nothing needs invalidating, old entries age out.

Two things are not in the cache because they are per page: the session's CSRF token (put where
:data:`CSRF_MARK` is) and each form's fresh idempotency key (one per :data:`KEY_MARK`, as the shared
``idempotency_field`` writes it). Neither marker can come from a row: escaped text has no ``<``.
"""
from __future__ import annotations

import os
import uuid
from datetime import datetime
from functools import lru_cache
from typing import NamedTuple

from flask import render_template, url_for
from flask_login import current_user
from markupsafe import Markup, escape

from coach import clock
from coach.booking.lists import SessionRow
from coach.platform.idempotency import FORM_FIELD
from coach.rooms.access import IN_ROOM_STATUSES
from coach.rooms.access import window as room_window
from coach.timezones import clock_time

# About 1.5 KB each: a few MB per process at most.
CACHED_ROWS = 4096
CSRF_MARK = "<!--booking:csrf-->"
KEY_MARK = "<!--booking:key-->"
# A row's buttons in the order shown: (action, label, style).
BUTTONS = (("confirm", "Accept", "primary"), ("decline", "Decline", "danger"), ("no_show", "Mark no-show", ""),
           ("cancel", "Cancel", "danger"))


class RowLinks(NamedTuple):
    """The URLs a booking row links to, as patterns: one ``url_for`` per kind of link for the whole page; each
    row puts its ids where ``_ID_`` and ``_OFFERING_`` stand (neither can occur in a slug or another part)."""

    detail: str
    reschedule: str
    confirm: str
    decline: str
    no_show: str
    cancel: str
    buttons: tuple = BUTTONS
    room: str = ""  # the room of the booking's session (rooms blueprint), shown while the room is open


def row_links() -> RowLinks:
    return RowLinks(url_for("booking.detail", booking_id="_ID_"),
                    url_for("booking.calendar", offering_id="_OFFERING_", reschedule="_ID_"),
                    *(url_for("booking.act", booking_id="_ID_", action=action) for action, _, _ in BUTTONS),
                    room=url_for("rooms.booking_room", booking_id="_ID_"))


def _room_open(row: SessionRow, me_id: uuid.UUID, now: datetime) -> bool:
    """Whether the row offers "Join the room": the viewer is its coach or athlete and the session's room is open
    by the clock (a room the coach ended early says so when followed). Part of the row's cache key, like an action
    that lapses with time."""
    if row.status not in IN_ROOM_STATUSES or me_id not in (row.coach_membership_id, row.athlete_membership_id):
        return False
    opens_at, closes_at = room_window(row.starts_at, row.ends_at)
    return opens_at <= now < closes_at


def rows_html(rows: list[SessionRow], *, me_id: uuid.UUID, links: RowLinks, csrf: str, back: str | None,
              show_note: bool = True, error: str | None = None, show_room: bool = True) -> Markup:
    """The rows' ``<li>`` elements, in order.

    :param me_id: the viewer's membership (the "with" line names the other person).
    :param links: the page's URL patterns (:func:`row_links`).
    :param csrf: the viewer's CSRF token for the rows' forms.
    :param back: the path the forms return to without JavaScript (none after a POST).
    :param show_room: offer "Join the room" on rows whose room is open (the booking's page has its own).
    """
    cycle = current_user.hour_cycle if current_user.is_authenticated else 24  # the viewer's clock
    now = clock.now()
    pieces = "".join(_row(row, me_id, links, back, show_note, error, cycle,
                          show_room and _room_open(row, me_id, now)) for row in rows) \
        .replace(CSRF_MARK, str(escape(csrf))).split(KEY_MARK)
    # A fresh key per form (as idempotency_field makes them: 32 hex digits), from one read of the system's
    # randomness for the whole page rather than one per form.
    keys = os.urandom(16 * (len(pieces) - 1)).hex()
    html = [pieces[0]]
    for n, piece in enumerate(pieces[1:]):
        html += (f'<input type="hidden" name="{FORM_FIELD}" value="{keys[32 * n:32 * n + 32]}">', piece)
    return Markup("".join(html))


@lru_cache(maxsize=CACHED_ROWS)
def _row(row: SessionRow, me_id: uuid.UUID, links: RowLinks, back: str | None, show_note: bool,
         error: str | None, hour_cycle: int = 24, room_open: bool = False) -> str:
    return render_template("booking/_booking_row.html", rows=[row], me_id=me_id, links=links,
                           csrf=Markup(CSRF_MARK), back=back, show_note=show_note, error=error, room_open=room_open,
                           clock_time=clock_time, hour_cycle=hour_cycle,
                           idempotency_field=lambda: Markup(KEY_MARK))


def cache_info():
    """Hits, misses and size of this process's cache (for tests and profiles)."""
    return _row.cache_info()
