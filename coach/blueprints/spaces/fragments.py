"""Rendering pages of posts without repeating work (issue 23): cached posts, URL patterns, per-reader parts.

A post's ``<article>`` (author line, text, attachments, comment count) is the same for every reader of a page in
one time zone on one clock (12 or 24 hours), so it is rendered once (``spaces/_post.html``) and kept in a bounded
in-process LRU cache. Its key is the post's id and everything the article shows (author's name, time, edited mark,
pinned badge, space link, a digest of the text, comment count, each attachment's state) plus the reader's zone and
clock and the page's URL patterns. Every write that changes what an article shows changes its key: an edit (text and
edited mark), a comment, an attachment that finishes processing or is deleted, an author's or a space's new name; a
deleted, hidden or removed post leaves the feed's query. No write has to remember to invalidate anything, every web
process sees the change on its next read, and replaced entries age out.

Signed media URLs are part of an article: the key carries the half-TTL window of each attachment's URLs
(:func:`coach.media.service.url_ttl`), so a cached URL is never older than half its lifetime.

The reaction bar is the reader's (their own reactions pressed, whether they may react, their session's CSRF
token, fresh idempotency keys, the page to come back to), so the cached article holds :data:`BAR_MARK` where it
goes. Bars are cached too, by what they show (counts, my reactions, whether I may react), with markers where
the token, the key prefix and the return path go; most readers of a post share one. A marker cannot come from
the content: escaped text has no ``<``.

Links come from **one pattern per page** (:func:`url_pattern`: one ``url_for`` with placeholders).
"""
from __future__ import annotations

import hashlib
import time
import uuid
from collections import OrderedDict
from functools import lru_cache
from types import SimpleNamespace

from flask import g, render_template, request, url_for
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from jinja2_fragments.flask import render_block
from markupsafe import Markup, escape

from coach.media import service as media_service
from coach.spaces.models import REACTIONS

ARTICLE_CACHE_SIZE = 2048  # entries per web process; an article is ~1-2 KB of HTML
BAR_CACHE_SIZE = 2048  # a reaction bar is ~2-3 KB
CACHED_BODY_MAX = 8192  # longer texts are rendered each time rather than kept (rare, and no dearer to render)


class _LRU:
    """A bounded mapping that forgets the least recently used entry (``functools.lru_cache`` keys on the
    function's arguments; here the key is a small tuple while the inputs are rows and media items)."""

    def __init__(self, size: int):
        self.size = size
        self._entries: OrderedDict = OrderedDict()

    # Each step is one call into OrderedDict (atomic under the GIL); a thread that interleaves (a threaded
    # server) can only make a lookup miss or an eviction find nothing left to evict.
    def get(self, key):
        try:
            value = self._entries[key]
            self._entries.move_to_end(key)
        except KeyError:
            return None
        return value

    def put(self, key, value) -> None:
        self._entries[key] = value
        while len(self._entries) > self.size:
            try:
                self._entries.popitem(last=False)
            except KeyError:
                break

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()


articles_cache = _LRU(ARTICLE_CACHE_SIZE)
bars_cache = _LRU(BAR_CACHE_SIZE)
BAR_MARK = "<!--spaces:reactions-->"
CSRF_MARK, KEY_MARK, NEXT_MARK = "<!--spaces:csrf-->", "<!--spaces:key-->", "<!--spaces:next-->"


def url_pattern(endpoint: str, fixed: dict | None = None, **fields: str) -> str:
    """``endpoint``'s URL as a ``str.format`` pattern, one ``{field}`` per URL argument named here:
    ``url_pattern("spaces.post", post_id="post")`` → ``/o/<slug>/posts/{post}``.

    :param fixed: arguments with a value of their own (one of an ``any(...)`` converter's choices).
    """
    marks = {argument: f"__{name}__" for argument, name in fields.items()}
    url = url_for(endpoint, **(fixed or {}), **marks).replace("{", "{{").replace("}", "}}")
    for name in fields.values():
        url = url.replace(f"__{name}__", "{" + name + "}")
    return url


def page_urls() -> dict[str, str]:
    """The URL patterns of a page of posts (``urls.post.format(post=post.id)`` in templates)."""
    return _page_urls(request.script_root, g.org.slug)


@lru_cache(maxsize=1024)
def _page_urls(script_root: str, slug: str) -> dict[str, str]:
    """Built once per organization (a URL depends only on the route, the slug and where the app is mounted)."""
    return {"post": url_pattern("spaces.post", post_id="post"),
            "space": url_pattern("spaces.space", space_id="space"),
            "react": url_pattern("spaces.react", post_id="post", kind="kind"),
            "comment": url_pattern("spaces.comment", post_id="post"),
            "flag_post": url_pattern("spaces.flag", {"kind": "posts"}, target_id="target"),
            "flag_comment": url_pattern("spaces.flag", {"kind": "comments"}, target_id="target"),
            "delete_comment": url_pattern("spaces.delete_comment", comment_id="comment")}


def page_values(next_path: str | None) -> dict:
    """What every post's reaction bar on a page shares, computed once: the URL patterns, the CSRF token's
    input (signed once for the page's many small forms), a fresh prefix for the forms' idempotency keys, and
    the path a plain form comes back to (``None`` when the page answers a POST)."""
    return {"urls": page_urls(),
            "csrf_input": Markup('<input type="hidden" name="csrf_token" value="{}">').format(generate_csrf()),
            # A form's key is this prefix, the post's id and the reaction's number: fresh for every rendering
            # (so unique per form and user, as coach.platform.idempotency needs) with one random draw per page.
            "form_key": uuid.uuid4().hex,
            "next_path": next_path}


def viewer_zone() -> str:
    """The zone the ``localtime`` filter shows times in for this request."""
    return g.get("viewer_timezone") or (current_user.timezone if current_user.is_authenticated else "UTC") or "UTC"


def viewer_clock() -> tuple[str, int]:
    """The zone and the clock (12 or 24 hours) the ``localtime`` filter shows times in for this request."""
    cycle = g.get("viewer_hour_cycle") or (current_user.hour_cycle if current_user.is_authenticated else 24) or 24
    return viewer_zone(), cycle


def _media_key(item, now: int) -> tuple:
    ttl = max(2, media_service.url_ttl(item))
    return (item.id, item.kind, item.status, item.title, item.width, item.height, item.duration_ms,
            tuple(sorted(item.derived_keys.items())) if item.derived_keys else (), now // (ttl // 2))


def post_articles(posts, attachments: dict, counts: dict, mine: dict, *, in_space: bool, can_react: bool,
                  values: dict) -> Markup:
    """The posts' ``<article>`` elements, in order, each from the cache or rendered and kept.

    :param posts: feed rows (:data:`coach.spaces.service.FEED_COLUMNS`) or a post.
    :param attachments: ``{post id: [media items]}`` that can be shown.
    :param counts: ``{post id: {kind: n}}``; ``mine``: ``{post id: {kind}}`` (the reader's reactions).
    :param in_space: the page is one space's (its posts show a pinned badge instead of their space's name).
    :param can_react: the reader may react (else the bar shows the counts only).
    :param values: the page's shared values (:func:`page_values`).
    """
    zone, now, urls = viewer_clock(), int(time.time()), values["urls"]
    reader = {"csrf": values["csrf_input"], "key": values["form_key"], "next": escape(values["next_path"] or "")}
    parts = []
    for post in posts:
        before, after = _article(post, attachments.get(post.id, ()), in_space, zone, now, urls)
        parts += (before, _bar(post.id, counts.get(post.id, {}), mine.get(post.id, ()), can_react, values, reader),
                  after)
    return Markup("".join(parts))


def _article(post, items, in_space: bool, zone: tuple[str, int], now: int, urls: dict) -> tuple[str, str]:
    """The article before and after its reaction bar (``zone``: the reader's zone and clock, which its time is
    shown in)."""
    key = None
    if len(post.body_html) <= CACHED_BODY_MAX:
        key = (post.id, post.author_name, post.created_at, post.edited_at is not None, post.comment_count,
               in_space and post.pinned_at is not None, None if in_space else (post.space_id, post.space_name),
               hashlib.blake2b(post.body_html.encode(), digest_size=16).digest(),
               tuple(_media_key(item, now) for item in items), zone, urls["post"], urls["space"])
        html = articles_cache.get(key)
        if html is not None:
            return html
    before, _, after = render_template("spaces/_post.html", post=post, items=items, in_space=in_space, urls=urls,
                                       bar=Markup(BAR_MARK)).partition(BAR_MARK)
    html = (before, after)
    if key is not None:
        articles_cache.put(key, html)
    return html


def _bar(post_id, counts: dict, mine, can_react: bool, values: dict, reader: dict) -> str:
    key = (post_id, tuple(sorted(counts.items())), frozenset(mine), can_react, values["urls"]["react"],
           values["next_path"] is not None)
    html = bars_cache.get(key)
    if html is None:
        html = render_block("spaces/_post.html", "reactions", post=SimpleNamespace(id=post_id),
                            counts={post_id: counts}, mine={post_id: mine}, can_react=can_react,
                            reactions=REACTIONS, urls=values["urls"], csrf_input=Markup(CSRF_MARK),
                            form_key=Markup(KEY_MARK), next_path=Markup(NEXT_MARK) if values["next_path"] else None)
        # Kept as a format string: the reader's parts go in with one pass over it.
        html = (html.replace("{", "{{").replace("}", "}}")
                .replace(CSRF_MARK, "{csrf}").replace(KEY_MARK, "{key}").replace(NEXT_MARK, "{next}"))
        bars_cache.put(key, html)
    return html.format_map(reader)
