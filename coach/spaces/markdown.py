"""Markdown to safe HTML, once, when a post or comment is written.

markdown-it-py renders CommonMark with raw HTML switched off (``<script>`` in the
source comes out as text), then nh3 (ammonia) keeps only an allow-list of tags and
attributes: no scripts, no event handlers, no ``style``, no ``hx-*`` or
``data-*`` attributes (htmx reads ``data-hx-*`` too), no images (attachments are
media items, and the CSP would block outside images anyway), and links get
``rel="nofollow noopener"``. Both steps run: the renderer is the first line, the
sanitiser the one that must hold whatever the renderer lets through.

``@handle`` mentions are found in the source and rendered as links by the caller's
``mention_url``; only members of the organization become links.
"""
from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping

import nh3
from markdown_it import MarkdownIt
from markupsafe import escape

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("strikethrough")

ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "a",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title", "class"},
    "ol": {"start"},
    "code": {"class"},
}
URL_SCHEMES = {"http", "https", "mailto"}

# @ followed by a handle: letters (any script, as in handles made from names like "José García"), digits,
# dots, dashes and underscores; not inside a word or an email address.
MENTION_RE = re.compile(r"(?<![\w@.])@([^\W_][\w.-]{0,63})")


def mentioned_handles(source: str) -> set[str]:
    """Lower-cased handles written as ``@handle`` in ``source``, outside code and links.

    The same places :func:`render` links, so nobody is notified of a mention shown as plain text.
    """
    if "@" not in source:
        return set()
    parts, linkable = _text_parts(_md.render(source))
    return {m.group(1).rstrip(".").lower() for i in linkable for m in MENTION_RE.finditer(parts[i])}


def render(source: str, mentions: Mapping[str, str] | None = None) -> str:
    """Sanitised HTML for ``source``.

    :param mentions: lower-cased handle → URL of that member's page; these handles become links.
    """
    html = _md.render(source)
    if mentions:
        html = _link_mentions(html, mentions)
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="nofollow noopener",
        strip_comments=True,
    )


def _text_parts(html: str) -> tuple[list[str], list[int]]:
    """``html`` split into tags and text, and the indexes of the text parts with an ``@`` outside tags,
    ``<code>``/``<pre>`` and links."""
    parts = re.split(r"(<[^>]+>)", html)
    in_code = 0
    linkable = []
    for i, part in enumerate(parts):
        if part.startswith("<"):
            name = part[1:].split()[0].rstrip(">").lower() if len(part) > 2 else ""
            if name in ("code", "pre", "a"):
                in_code += 1
            elif name in ("/code", "/pre", "/a"):
                in_code = max(0, in_code - 1)
            continue
        if not in_code and "@" in part:
            linkable.append(i)
    return parts, linkable


def _link_mentions(html: str, mentions: Mapping[str, str]) -> str:
    parts, linkable = _text_parts(html)
    for i in linkable:
        parts[i] = MENTION_RE.sub(lambda m: _mention_link(m, mentions), parts[i])
    return "".join(parts)


def _mention_link(match: re.Match, mentions: Mapping[str, str]) -> str:
    handle = match.group(1).rstrip(".")
    url = mentions.get(handle.lower())
    if url is None:
        return match.group(0)
    rest = match.group(1)[len(handle):]
    return f'<a class="mention" href="{escape(url)}">@{escape(handle)}</a>{rest}'


def plain_excerpt(source: str, limit: int = 140) -> str:
    """A one-line text excerpt of Markdown ``source`` for emails and notifications.

    The text a reader sees, from the rendered Markdown: markup goes, punctuation, hyphens and
    parentheses of the prose stay.
    """
    text = html.unescape(re.sub(r"<[^>]*>", "", _md.render(source)))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


MentionResolver = Callable[[set[str]], Mapping[str, str]]
