"""Kept answers of the public directory's search: a rendered results region in Valkey for a short while.

A search's answer is mostly the same for every visitor who asks it within seconds, and computing it is the
search's statements (tens of milliseconds of PostgreSQL) plus rendering 20 cards and the facets. So the public
search keeps the rendered region for ``DIRECTORY_RESULTS_CACHE_SECONDS`` under a key of everything that shapes it
(the search as asked, the viewer's time zone and 12- or 24-hour clock, page or fragment, and the code's version:
:func:`code_version`), with the version of every listing it shows.

Privacy does not wait for the time to run out: before a kept answer is used, one statement (the primary key's
index) reads the shown listings' ``refreshed_at``. A listing removed (coach or organization unlisted, coach gone)
or changed (name, photo, headline, rating, next slot: every projection write sets ``refreshed_at``) since then
makes the kept answer unusable, and the search runs again. What may be up to the period old: the order and the
set of matches (a coach newly listed appears in kept answers within the period), the facet counts and the total.

Only the public projection's search is kept: an organization's own search reads through RLS for its members and
is never kept or shared.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import uuid

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import text

from coach.extensions import db
from coach.platform.queues import redis_conn

log = logging.getLogger(__name__)

KEY_PREFIX = "coach:directory:results:"
# What renders a kept answer besides the data: its templates, and the static build whose fingerprinted names the
# HTML links (a deploy changing any of them must not show answers rendered before it).
RENDERING_TEMPLATES = ("directory/search.html", "directory/_results.html", "directory/_facets.html",
                       "directory/_card.html")
RENDERING_MODULES = ("directory/search.py", "blueprints/directory/public_search.py")  # under the package
# The shown listings' versions: one index probe per id (at most a page of them).
FRESHNESS_SQL = ("SELECT l.id, l.refreshed_at FROM directory_listings l "
                 "WHERE l.id = ANY(CAST(:ids AS uuid[]))")


def seconds() -> int:
    """How long an answer is kept (0: never)."""
    return int(current_app.config.get("DIRECTORY_RESULTS_CACHE_SECONDS", 0) or 0)


@functools.cache
def _rendering_version(static_folder: str, package_root: str, env) -> str:
    digest = hashlib.sha256()
    manifest = os.path.join(static_folder, "cache_manifest.json")
    if os.path.exists(manifest):
        with open(manifest, "rb") as handle:
            digest.update(handle.read())
    for name in RENDERING_TEMPLATES:
        digest.update(env.loader.get_source(env, name)[0].encode())
    for module in RENDERING_MODULES:
        with open(os.path.join(package_root, module), "rb") as handle:
            digest.update(handle.read())
    return digest.hexdigest()[:16]


def code_version() -> str:
    """A hash of what renders an answer (the directory's search templates and modules, the static manifest),
    computed once per process: answers kept by an older deploy are never found by a newer one."""
    app = current_app
    return _rendering_version(app.static_folder or "", app.root_path, app.jinja_env)


def cache_key(parts) -> str:
    """The Valkey key of an answer shaped by ``parts`` (JSON-able: the search's arguments, zone, kind) and
    rendered by this version of the code."""
    shaped = json.dumps([code_version(), parts], separators=(",", ":"))
    return KEY_PREFIX + hashlib.sha256(shaped.encode()).hexdigest()


def versions(items) -> list[list[str]]:
    """The shown listings' ids and versions, as kept beside the answer."""
    return [[str(hit.id), hit.refreshed_at.isoformat()] for hit in items]


def current(kept: list[list[str]]) -> bool:
    """Whether every listing of a kept answer is still listed, unchanged."""
    if not kept:
        return True
    # Outside the session's transaction, in autocommit: one round trip instead of BEGIN, the statement, COMMIT
    # (a kept answer needs nothing else from PostgreSQL).
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        rows = conn.execute(text(FRESHNESS_SQL), {"ids": [uuid.UUID(i) for i, _ in kept]}).all()
    return {(str(row.id), row.refreshed_at.isoformat()) for row in rows} == {(i, v) for i, v in kept}


def get(key: str) -> dict | None:
    """The kept answer under ``key`` when there is one and its listings are unchanged; else None."""
    try:
        raw = redis_conn().get(key)
    except RedisError:
        log.warning("could not read a kept directory answer")
        return None
    if raw is None:
        return None
    try:
        kept = json.loads(raw)
        listings = kept["listings"]
    except (ValueError, KeyError, TypeError):
        return None
    return kept if current(listings) else None


def put(key: str, answer: dict, items) -> None:
    """Keep ``answer`` (JSON-able) with the versions of the listings ``items`` it shows."""
    ttl = seconds()
    if not ttl or any(hit.id is None or hit.refreshed_at is None for hit in items):
        return
    try:
        redis_conn().set(key, json.dumps({**answer, "listings": versions(items)}), ex=ttl)
    except RedisError:
        log.warning("could not keep a directory answer")
