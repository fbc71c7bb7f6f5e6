"""Messages as HTML: each message rendered once per version, then shared by every page and socket that shows it.

A message's markup depends on the message (its text, times, whether it was edited or deleted, its author's
name), on the conversation's URL, and on the reader in only three ways: whether they wrote it (styled as theirs,
"You", Edit and Delete), their time zone and their clock (12 or 24 hours). So the rendering is cached in this
process, bounded (least recently used first out), under all of that: the :class:`~coach.chat.service.MessageRow`
itself, ``mine``, the zone, the clock, the URL and the swap. An edit, a deletion or an author's new name reads
as a new row, hence a new key: the write that changes a message is what invalidates its old rendering, in every
process at once, with nothing to publish; the old entry just ages out.

Two things are not in the cache because they are not the message's: the attachments' URLs are signed and
expire (rendered per request where the cached markup has :data:`MEDIA_MARK`), and the delete form's CSRF token
is the reader's session's (put where :data:`CSRF_MARK` is). Neither marker can come from a message: escaped
text has no ``<``.
"""
from __future__ import annotations

import uuid
from functools import lru_cache

from flask import g, render_template
from markupsafe import Markup, escape

from coach.chat.service import MessageRow

# About 2 KB each at most (a 4,000-character message is the exception): a few MB per process.
CACHED_MESSAGES = 4096
MEDIA_MARK = "<!--chat:media-->"
CSRF_MARK = "<!--chat:csrf-->"


def articles(rows: list[MessageRow], *, base: str, mine_id: uuid.UUID | None, tz: str, attachments: dict,
             hour_cycle: int = 24, csrf: str | None = None, oob_each: bool = False) -> Markup:
    """The messages' ``<article>`` elements, in order.

    :param base: the conversation's URL (the messages' Edit and Delete links are under it).
    :param mine_id: the reader's membership (their own messages are theirs to edit and delete).
    :param tz: the reader's time zone.
    :param hour_cycle: the reader's clock, 12 or 24 hours.
    :param attachments: ``{message id: [media items]}`` that can be shown (:func:`service.attachments_of`),
        needed for the rows with ``has_media`` only.
    :param csrf: the reader's CSRF token for the delete forms of a page (none in a push: htmx sends the
        token as a header, and a push has no reader's session).
    :param oob_each: each article replaces itself (``hx-swap-oob="outerHTML"``: an edit or a deletion pushed).
    """
    parts = []
    token = str(escape(csrf)) if csrf else None
    for row in rows:
        mine = mine_id is not None and row.author_id == mine_id
        html = _article(row, mine, tz, hour_cycle, base, mine and token is not None, oob_each)
        if row.has_media and not row.deleted_at:
            media = attachments.get(row.id)
            html = html.replace(MEDIA_MARK, render_template("chat/_attachments.html", media=media) if media else "")
        if mine and token is not None:
            html = html.replace(CSRF_MARK, token)
        parts.append(html)
    return Markup("".join(parts))


@lru_cache(maxsize=CACHED_MESSAGES)
def _article(row: MessageRow, mine: bool, tz: str, hour_cycle: int, base: str, csrf: bool, oob_each: bool) -> str:
    # The template's times read the zone and the clock from g (as pushes rendered outside a request do): set
    # for this rendering only, so the key's zone and clock are the ones shown.
    saved = {name: (name in g, g.get(name)) for name in ("viewer_timezone", "viewer_hour_cycle")}
    g.viewer_timezone, g.viewer_hour_cycle = tz, hour_cycle
    try:
        return render_template("chat/_message.html", m=row, mine=mine, base=base, oob_each=oob_each,
                               media_mark=Markup(MEDIA_MARK), csrf_mark=Markup(CSRF_MARK) if csrf else None)
    finally:
        for name, (had, previous) in saved.items():
            if had:
                setattr(g, name, previous)
            else:
                g.pop(name, None)


def cache_info():
    """Hits, misses and size of this process's cache (for tests and profiles)."""
    return _article.cache_info()
