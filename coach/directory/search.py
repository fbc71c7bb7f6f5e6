"""Searching the public coach directory: the projection ``directory_listings``, read by anyone (no tenant).

- Text: PostgreSQL full-text search. The query is parsed by ``websearch_to_tsquery`` (quotes, ``or``, ``-word``;
  it never raises on ``&|!():*``) under 'english' and 'simple', plus the configurations of the languages the
  visitor filtered by, OR-combined, so stemmed and as-written words both match the listing's vector (which holds
  the organization's language and 'simple'). When the words as typed find (almost) nothing, the last word is
  tried as a prefix ("tenn" finds tennis): only then, because a prefix inflates the planner's estimate of the
  matches of a finished word and can turn a 13 ms bitmap scan into a 350 ms walk of the rating index.
  Ranked with ``ts_rank_cd`` (the vector's A-D weights) among the best-rated :data:`RELEVANCE_CANDIDATES`
  matches, then the Bayesian rating, then id.
- Typos: when a first page finds fewer than :data:`FEW_RESULTS`, every query word that is no listing's word is
  replaced by the most similar word of ``directory_words`` (pg_trgm, its trigram index) and the search runs
  again; the corrected text is reported and carried by the page links' cursor.
- Facets: disjunctive counts (each facet counted over the rows matching the text and every *other* facet's
  filter) in one statement over the text's matches. Over the whole table (no text) that is a few hundred
  milliseconds at 100,000 listings, so the counts and total are kept in Valkey for
  ``DIRECTORY_FACET_CACHE_SECONDS`` (invalidated by nothing: they may be that old; the cards are always live).
  With no text and no filter at all (the landing page, stop words only) they are read from the totals the
  projection's triggers keep (``directory_facet_totals``, migration 0023) instead of counted.
- Sorts with keyset pagination; the cursor is signed (itsdangerous), so a tampered one is a 400, never SQL.

:func:`statements` returns the SQL a search runs, for the EXPLAIN test (tests/test_directory_explain.py).
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

from babel import Locale
from flask import current_app
from itsdangerous import BadData, URLSafeSerializer
from redis.exceptions import RedisError
from sqlalchemy import text

from coach import clock
from coach.errors import DomainError
from coach.directory.projection import TS_CONFIGS
from coach.extensions import db
from coach.platform.queues import redis_conn

log = logging.getLogger(__name__)

TEXT_MAX = 200  # characters of query text kept
VALUE_MAX = 60  # characters of one facet value (a term's name)
VALUES_MAX = 10  # values of one facet at a time
FACET_TOP = 12  # values shown per facet (the selected ones always)
FEW_RESULTS = 3  # a first page with fewer than this tries spelling corrections
CORRECTION_SIMILARITY = 0.35  # pg_trgm similarity a replacement word needs at least
CURSOR_MAX = 600
STALE_KEPT = 10  # older facet counts are shown this many periods while one request counts again
COUNTING_LOCK = 30  # seconds one request may take to count them
RELEVANCE_CANDIDATES = 200  # best-rated matches a relevance sort ranks (see items_statement)
WEEK = timedelta(days=7)
BROKEN_LINK = "This page link is broken or expired; start the search again."

SORTS = ("relevance", "rating", "price", "soonest")
# The facets in the order pages show them; each is also the query parameter's name.
FACETS = ("discipline", "skill", "lang", "price", "rating", "verified", "week", "mode")
PRICE_BANDS = {0: "Free", 1: "Under 30", 2: "30 to 60", 3: "60 to 100", 4: "100 and more"}
MODES = {"online": "Online", "in_person": "In person"}
MIN_RATING = 4
FLAG_LABELS = {"rating": "4 stars and up", "verified": "Verified by their club", "week": "Free this week"}
_TRUE = {"1", "true", "on", "yes", "y"}
_FALSE = {"", "0", "false", "off", "no", "n"}

# ISO 639-1 codes Babel knows, with their English names (the languages a profile may list).
LANGUAGES: dict[str, str] = {code: name for code, name in Locale("en").languages.items()
                             if re.fullmatch(r"[a-z]{2}", code)}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
WORD = re.compile(r"\w+")
_LAST_WORD = re.compile(r"(?:^|[\s(])(\w{3,})$")  # a plain word at the very end (not quoted, not negated)
# A listing's columns a result card shows.
CARD_COLUMNS = ("id", "organization_id", "coach_membership_id", "org_slug", "org_name", "handle", "display_name",
                "headline", "excerpt", "photo_key", "disciplines", "skills", "tags", "languages", "online",
                "in_person", "location", "timezone", "verified", "currency", "price_min_minor", "price_max_minor",
                "price_band", "rating_count", "rating_avg", "rating_score", "next_slot_at", "response_minutes",
                "sessions_delivered", "refreshed_at")


class BadCursor(DomainError):
    """A page link's cursor does not decode or was not signed by us."""

    status = 400

    def __init__(self, message: str = BROKEN_LINK):
        super().__init__(message)


@dataclass(frozen=True)
class Cursor:
    """Where a page continues: the last row's sort key and id, and the text its first page searched."""

    sort: str
    key: tuple
    id: uuid.UUID
    asked: str  # fingerprint of the query text the first page was asked for
    searched: str | None = None  # the text actually searched when it was corrected
    prefixed: bool = False  # whether its last word was searched as a prefix


@dataclass(frozen=True)
class SearchParams:
    """A search as asked: cleaned, every unknown or malformed value already dropped (see ``notices``)."""

    q: str = ""
    discipline: tuple[str, ...] = ()
    skill: tuple[str, ...] = ()
    lang: tuple[str, ...] = ()
    price: tuple[int, ...] = ()
    rating: int | None = None
    verified: bool = False
    week: bool = False
    mode: tuple[str, ...] = ()
    sort: str = "rating"
    cursor: Cursor | None = None
    exact: bool = False  # search the text as typed: no spelling correction
    notices: tuple[str, ...] = ()

    def selected(self, facet: str) -> tuple[str, ...]:
        """The chosen values of ``facet`` as the page sends them back."""
        value = getattr(self, facet)
        if isinstance(value, bool):
            return ("1",) if value else ()
        if value is None:
            return ()
        if isinstance(value, int):
            return (str(value),)
        return tuple(str(v) for v in value)

    @property
    def filters(self) -> tuple[str, ...]:
        """The facets with a choice."""
        return tuple(f for f in FACETS if self.selected(f))


@dataclass(frozen=True)
class FacetValue:
    value: str
    label: str
    count: int
    selected: bool


@dataclass(frozen=True)
class Hit:
    """One coach in the results: what a card shows (the public listing, or an organization's own profile)."""

    id: uuid.UUID | None
    coach_membership_id: uuid.UUID
    display_name: str
    organization_id: uuid.UUID | None = None
    org_slug: str = ""
    org_name: str = ""
    handle: str | None = None
    headline: str = ""
    excerpt: str = ""
    photo_key: str | None = None
    disciplines: list[str] = field(default_factory=list)
    skills: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    online: bool = False
    in_person: bool = False
    location: str = ""
    timezone: str = "UTC"
    verified: bool = False
    currency: str | None = None
    price_min_minor: int | None = None
    price_max_minor: int | None = None
    price_band: int | None = None
    rating_count: int = 0
    rating_avg: Decimal | None = None
    rating_score: Decimal = Decimal(0)
    next_slot_at: datetime | None = None
    response_minutes: int | None = None
    sessions_delivered: int = 0
    rank: float | None = None
    refreshed_at: datetime | None = None  # the listing's version (kept answers and cards are checked against it)


@dataclass
class SearchResults:
    items: list[Hit]
    facets: dict[str, list[FacetValue]]
    next_cursor: str | None = None
    corrected_query: str | None = None
    notices: list[str] = field(default_factory=list)
    total: int | None = None

    @property
    def total_estimate(self) -> int | None:
        return self.total


# --- parameters -----------------------------------------------------------------------------------------------

def _values(args: Mapping, key: str) -> list[str]:
    if hasattr(args, "getlist"):
        raw = args.getlist(key)
    else:
        value = args.get(key)
        raw = [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]
    return [v if isinstance(v, str) else str(v) for v in raw]


def _clean(value: str) -> str:
    return " ".join(_CONTROL.sub(" ", value).split())


def shown(value: str) -> str:
    value = _clean(value)
    return value if len(value) <= 40 else value[:39] + "…"


def _flag(args: Mapping, key: str, what: str, notices: list[str]) -> bool:
    chosen = False
    for value in _values(args, key):
        value = _clean(value).lower()
        if value in _TRUE:
            chosen = True
        elif value not in _FALSE:
            notices.append(f"Unknown {what} choice '{shown(value)}' was ignored.")
    return chosen


def _many(args: Mapping, key: str, what: str, notices: list[str], accept) -> tuple:
    kept: list = []
    for value in _values(args, key):
        cleaned = _clean(value).lower()
        if not cleaned:
            continue
        converted = accept(cleaned)
        if converted is None:
            notices.append(f"Unknown {what} '{shown(value)}' was ignored.")
        elif converted not in kept:
            kept.append(converted)
    if len(kept) > VALUES_MAX:
        notices.append(f"Only the first {VALUES_MAX} choices of {what} were used.")
        kept = kept[:VALUES_MAX]
    return tuple(kept)


def _term(value: str) -> str | None:
    return value if len(value) <= VALUE_MAX and WORD.search(value) else None


def _band(value: str) -> int | None:
    return int(value) if value.isdigit() and int(value) in PRICE_BANDS else None


def _mode(value: str) -> str | None:
    value = value.replace("-", "_").replace(" ", "_")
    return value if value in MODES else None


def fingerprint(q: str) -> str:
    return hashlib.sha256(q.lower().encode()).hexdigest()[:12]


def parse_params(args: Mapping) -> SearchParams:
    """The search asked for by query arguments (a ``MultiDict`` or a plain mapping). Never raises for a value:
    an unknown or malformed one is dropped with a notice; only a tampered or undecodable ``cursor`` raises
    :class:`BadCursor`."""
    notices: list[str] = []
    q = _clean((_values(args, "q") or [""])[0])
    if len(q) > TEXT_MAX:
        q = q[:TEXT_MAX].rstrip()
        notices.append(f"Your search was cut to its first {TEXT_MAX} characters.")
    rating = None
    for value in _values(args, "rating"):
        value = _clean(value).rstrip("+")
        if value == str(MIN_RATING):
            rating = MIN_RATING
        elif value:
            notices.append(f"Unknown rating '{shown(value)}' was ignored.")
    sort = _clean((_values(args, "sort") or [""])[0]).lower()
    if sort and sort not in SORTS:
        notices.append(f"Unknown sort '{shown(sort)}' was ignored.")
        sort = ""
    if not sort or (sort == "relevance" and not q):
        sort = "relevance" if q else "rating"
    params = SearchParams(
        q=q,
        discipline=_many(args, "discipline", "sport or game", notices, _term),
        skill=_many(args, "skill", "skill", notices, _term),
        lang=_many(args, "lang", "language", notices, lambda v: v if v in LANGUAGES else None),
        price=_many(args, "price", "price band", notices, _band),
        rating=rating,
        verified=_flag(args, "verified", "verification", notices),
        week=_flag(args, "week", "availability", notices),
        mode=_many(args, "mode", "place", notices, _mode),
        sort=sort,
        exact=_flag(args, "exact", "exact search", notices),
    )
    raw = (_values(args, "cursor") or [""])[0]
    if raw:
        cursor = decode_cursor(raw)
        if cursor.sort != params.sort or cursor.asked != fingerprint(params.q):
            notices.append("The search changed, so its results start from the first page.")
        else:
            params = replace(params, cursor=cursor)
    return replace(params, notices=tuple(notices))


# --- cursors --------------------------------------------------------------------------------------------------

def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="coach.directory.search-cursor")


def _key_out(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def encode_cursor(cursor: Cursor) -> str:
    return _serializer().dumps([cursor.sort, [_key_out(v) for v in cursor.key], cursor.id.hex, cursor.asked,
                                cursor.searched, cursor.prefixed])


def _key_in(sort: str, key) -> tuple:
    """The typed sort key of a decoded cursor (``ValueError``/``TypeError``/``InvalidOperation`` when malformed)."""
    if not isinstance(key, list):
        raise TypeError("key")
    if sort == "rating" and len(key) == 1:
        return (Decimal(str(key[0])),)
    if sort == "relevance" and len(key) == 2 and isinstance(key[0], (int, float)):
        return (float(key[0]), Decimal(str(key[1])))
    if sort == "price" and len(key) == 1 and (key[0] is None or type(key[0]) is int):
        return (key[0],)
    if sort == "soonest" and len(key) == 1:
        if key[0] is None:
            return (None,)
        moment = datetime.fromisoformat(key[0])
        if moment.tzinfo is None:
            raise ValueError("naive")
        return (moment,)
    raise ValueError("key")


def decode_cursor(raw: str) -> Cursor:
    """A cursor from a page link; :class:`BadCursor` when it is not one of ours, intact."""
    if len(raw) > CURSOR_MAX:
        raise BadCursor()
    try:
        sort, key, ident, asked, searched, prefixed = _serializer().loads(raw)
        if sort not in SORTS or not isinstance(asked, str) or not (searched is None or isinstance(searched, str)) \
                or not isinstance(prefixed, bool):
            raise ValueError("cursor")
        return Cursor(sort, _key_in(sort, key), uuid.UUID(hex=ident), asked, searched, prefixed)
    except (BadData, ValueError, TypeError, InvalidOperation, AttributeError) as exc:
        raise BadCursor() from exc


def _cursor_after(params: SearchParams, hit: Hit, searched: str | None, prefixed: bool) -> str:
    key = {"rating": (hit.rating_score,), "price": (hit.price_min_minor,), "soonest": (hit.next_slot_at,),
           "relevance": (hit.rank, hit.rating_score)}[params.sort]
    return encode_cursor(Cursor(params.sort, key, hit.id, fingerprint(params.q), searched, prefixed))


# --- SQL ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Statement:
    name: str
    sql: str
    binds: dict


@dataclass(frozen=True)
class TextQuery:
    """The text part of a search: ``sql`` is a tsquery expression over the binds, or empty for no text;
    ``match`` the same query with each configuration's part once (what the ``WHERE`` matches with)."""

    sql: str = ""
    binds: dict = field(default_factory=dict)
    match: str = ""

    def __bool__(self) -> bool:
        return bool(self.sql)


def text_query(q: str, languages: tuple[str, ...] = (), also: tuple[str, ...] = (), prefix: bool = True
               ) -> TextQuery:
    """The tsquery of ``q``: its words under 'english', 'simple' and the filtered languages' configurations,
    OR-combined, and (when it ends with a plain word of three letters or more) that word as a prefix.

    :param also: more configurations (names of :data:`TS_CONFIGS`' values), e.g. an organization's own.
    """
    if not q:
        return TextQuery()
    # A visitor who filters by German also gets German stemming of their words (the projection's configurations).
    known = set(TS_CONFIGS.values())
    configs = dict.fromkeys(["english", "simple", *(TS_CONFIGS[c] for c in languages if c in TS_CONFIGS),
                             *(c for c in also if c in known)])
    parts = [f"websearch_to_tsquery('{config}', :tq)" for config in configs]  # names from TS_CONFIGS only
    binds = {"tq": q}
    last = _LAST_WORD.search(q)
    if prefix and last and not q.rstrip().endswith('"'):
        # Built from \w characters only, quoted as a tsquery literal: "tenn" → 'tenn':*
        binds["tq_head"] = q[:last.start(1)]
        binds["tq_prefix"] = f"'{last.group(1).lower()}':*"
        parts.append("(websearch_to_tsquery('simple', :tq_head) && to_tsquery('simple', :tq_prefix))")
    return TextQuery("(" + " || ".join(parts) + ")", binds, _distinct_or(parts))


def _distinct_or(parts: list[str]) -> str:
    """The OR of the tsqueries ``parts``, each one that equals an earlier one left out (as the empty tsquery,
    which ``||`` drops). Same matches; but "mid" under 'english' and 'simple' is ``'mid' | 'mid'``, and the planner
    estimates an OR as the sum of its parts: twice the rows, which made it walk the rating index through ~14,000
    listings to find the 200 best-rated of 1,500 matches (30-60 ms) instead of reading those 1,500 from the text
    index (2-3 ms). The bound text is a constant of the plan (``force_custom_plan``), so the CASEs fold to the
    one tsquery before planning. Compared as text: tsquery's ``=`` ignores prefix and weight marks ('bask':* =
    'bask'). Ranking keeps ``sql``: its values, and so the order and the cursors, are as before."""
    kept = [parts[0]]
    for n, part in enumerate(parts[1:], 1):
        earlier = ", ".join(f"CAST({p} AS text)" for p in parts[:n])
        kept.append(f"CASE WHEN CAST({part} AS text) IN ({earlier}) THEN ''::tsquery ELSE {part} END")
    return "(" + " || ".join(kept) + ")"


def _filters(params: SearchParams, now: datetime, alias: str = "l") -> dict[str, tuple[str, dict]]:
    """Each chosen facet's condition over the listing ``alias`` (OR within a facet, AND between facets)."""
    conditions: dict[str, tuple[str, dict]] = {}
    for facet, column in (("discipline", "disciplines"), ("skill", "skills"), ("lang", "languages")):
        if getattr(params, facet):
            # varchar[] like the column: a text[] operand would not use the GIN index.
            conditions[facet] = (f"{alias}.{column} && CAST(:f_{facet} AS varchar[])",
                                 {f"f_{facet}": list(getattr(params, facet))})
    if params.price:
        conditions["price"] = (f"{alias}.price_band = ANY(CAST(:f_price AS smallint[]))",
                               {"f_price": list(params.price)})
    if params.rating:
        conditions["rating"] = (f"({alias}.rating_count > 0 AND {alias}.rating_avg >= :f_rating)",
                                {"f_rating": params.rating})
    if params.verified:
        conditions["verified"] = (f"{alias}.verified", {})
    if params.week:
        conditions["week"] = (f"({alias}.next_slot_at >= :f_now AND {alias}.next_slot_at < :f_week_end)",
                              {"f_now": now, "f_week_end": now + WEEK})
    if params.mode:
        conditions["mode"] = ("(" + " OR ".join(f"{alias}.{m}" for m in params.mode) + ")", {})
    return conditions


def _where(parts: list[str]) -> str:
    return " AND ".join(parts) if parts else "true"


def items_statement(params: SearchParams, tq: TextQuery, now: datetime, limit: int) -> Statement:
    """One page of listings in the chosen order, after the cursor (keyset), ``limit`` rows."""
    conditions = _filters(params, now)
    binds: dict = {"limit": limit, **tq.binds}
    where = [sql for sql, _ in conditions.values()]
    for _, values in conditions.values():
        binds.update(values)
    if tq:
        where.insert(0, f"l.search @@ {tq.match}")
    columns = ", ".join(f"l.{c}" for c in CARD_COLUMNS)
    rank = f"ts_rank_cd(l.search, {tq.sql})" if tq else "NULL::real"
    cursor = params.cursor
    if cursor:
        binds["k_id"] = cursor.id
    if params.sort == "relevance" and tq:
        # Ranked among the best-rated matches only (RELEVANCE_CANDIDATES): ts_rank_cd reads every ranked row's
        # vector, which over the ~50,000 matches of a word most listings have ("player") took ~0.5 s, while the
        # best-rated matches come from the rating index in milliseconds. Fewer matches: all of them are ranked.
        binds["candidates"] = RELEVANCE_CANDIDATES
        ranked = f"ts_rank_cd(c.search, {tq.sql})"
        keyset = "true"
        if cursor:
            binds["k_rank"], binds["k_score"] = cursor.key
            # real, as ts_rank_cd's: the page sent the rank as text, read back as a double that is not equal.
            keyset = (f"({ranked} < CAST(:k_rank AS real) OR ({ranked} = CAST(:k_rank AS real) AND "
                      "(c.rating_score < :k_score OR (c.rating_score = :k_score AND c.id > :k_id))))")
        outer = ", ".join(f"c.{col}" for col in CARD_COLUMNS)
        sql = (f"WITH c AS (SELECT {columns}, l.search FROM directory_listings l WHERE {_where(where)} "
               f"ORDER BY l.rating_score DESC, l.id LIMIT :candidates) "
               f"SELECT {outer}, {ranked} AS rank FROM c WHERE {keyset} "
               f"ORDER BY rank DESC, c.rating_score DESC, c.id LIMIT :limit")
        return Statement("items", sql, binds)
    if params.sort in ("rating", "relevance"):
        if cursor:
            binds["k_score"] = cursor.key[-1] if params.sort == "rating" else cursor.key[1]
            where.append("l.rating_score <= :k_score AND (l.rating_score < :k_score OR l.id > :k_id)")
        sql = (f"SELECT {columns}, {rank} AS rank FROM directory_listings l WHERE {_where(where)} "
               f"ORDER BY l.rating_score DESC, l.id LIMIT :limit")
        return Statement("items", sql, binds)
    # Price and soonest: ascending, rows without a value last. Two index-ordered branches (rows with a value
    # after the cursor's, then rows without one by id), so no page reads the rows before it.
    column = {"price": "l.price_min_minor", "soonest": "l.next_slot_at"}[params.sort]
    valued, unvalued = [*where, f"{column} IS NOT NULL"], [*where, f"{column} IS NULL"]
    branches = []
    if cursor and cursor.key[0] is not None:
        binds["k_value"] = cursor.key[0]
        valued.append(f"({column}, l.id) > (:k_value, :k_id)")
    elif cursor:
        unvalued.append("l.id > :k_id")
    if not (cursor and cursor.key[0] is None):
        branches.append(f"(SELECT {columns}, {rank} AS rank FROM directory_listings l WHERE {_where(valued)} "
                        f"ORDER BY {column}, l.id LIMIT :limit)")
    # A price band or "this week" chosen: no row without a price or a free slot can match (and the planner would
    # not see that: it would read the whole id order to find none).
    excluded = params.sort == "price" and params.price or params.sort == "soonest" and params.week
    if not excluded or not branches:
        branches.append(f"(SELECT {columns}, {rank} AS rank FROM directory_listings l WHERE {_where(unvalued)} "
                        f"ORDER BY l.id LIMIT :limit)")
    order = column.replace("l.", "page.")
    sql = (f"SELECT * FROM ({' UNION ALL '.join(branches)}) page "
           f"ORDER BY {order} NULLS LAST, page.id LIMIT :limit")
    return Statement("items", sql, binds)


def facets_statement(params: SearchParams, tq: TextQuery, now: datetime) -> Statement:
    """Every facet's counts and the total in one statement of two passes over the text's matches: one aggregate
    for the one-value facets and the total (``count(*) FILTER``), one grouping of the three arrays' values
    unnested together (each value's facet known from its position). A facet counts the rows that pass every
    *other* facet's filter. (Measured at 100k listings: a CTE of the matches scanned once per facet, or a facet
    per unnest, took about twice as long: they copy or re-read every row's arrays.)

    Without text (session 31), a filtered facet's own counts are over every listing: with one filter, those come
    from the kept totals (:func:`totals_statement`'s rows of that facet) and only the listings that pass the
    filter are read, for the other facets and the total. With two or more, each facet still counts over the
    listings that pass all the *other* filters, which no kept total holds (how many Spanish speakers teach chess
    is a count of pairs); only the listings that pass all filters but at most one are read."""
    conditions = _filters(params, now)
    binds: dict = {"now": now, "week_end": now + WEEK, "min_rating": MIN_RATING, **tq.binds}
    for _, values in conditions.values():
        binds.update(values)
    where = f"l.search @@ {tq.match}" if tq else "true"

    def others(facet: str | None, *extra: str) -> str:
        return _where([*extra, *(sql for f, (sql, _) in conditions.items() if f != facet)])

    own = None  # the one filter of a search without text: its facet's counts are the kept totals
    if not tq and len(conditions) == 1:
        (own,) = conditions
        where = conditions[own][0]
    elif not tq and conditions:  # a listing counts in some facet only if it fails at most one filter
        where = "(" + " OR ".join(f"({others(facet)})" for facet in conditions) + ")"

    counted = {
        **{f"price_{band}": others("price", f"l.price_band = {band}") for band in PRICE_BANDS},
        "rating_4": others("rating", "l.rating_count > 0", "l.rating_avg >= :min_rating"),
        "verified_1": others("verified", "l.verified"),
        "week_1": others("week", "l.next_slot_at >= :now", "l.next_slot_at < :week_end"),
        "mode_online": others("mode", "l.online"),
        "mode_in_person": others("mode", "l.in_person"),
        "total_": others(None),
    }
    counted = {name: sql for name, sql in counted.items() if name.split("_", 1)[0] != own}
    aggregate = ", ".join(f"count(*) FILTER (WHERE {sql}) AS {name}" for name, sql in counted.items())
    rows = ", ".join(f"('{name.split('_', 1)[0]}', '{name.split('_', 1)[1]}', a.{name})" for name in counted)
    scalars = (f"SELECT x.facet, x.value, x.n FROM (SELECT {aggregate} FROM directory_listings l WHERE {where}) a "
               f"CROSS JOIN LATERAL (VALUES {rows}) AS x(facet, value, n)")

    def values_of(facet: str, column: str) -> str:
        if facet == own:
            return "CAST('{}' AS varchar[])"
        rest = others(facet)
        return f"l.{column}" if rest == "true" else f"CASE WHEN {rest} THEN l.{column} ELSE '{{}}' END"

    arrays = (f"SELECT CASE WHEN x.n <= cardinality(a.d) THEN 'discipline' "
              f"WHEN x.n <= cardinality(a.d) + cardinality(a.s) THEN 'skill' ELSE 'lang' END, x.v, count(*) "
              f"FROM directory_listings l CROSS JOIN LATERAL (SELECT {values_of('discipline', 'disciplines')} AS d, "
              f"{values_of('skill', 'skills')} AS s, {values_of('lang', 'languages')} AS g) a "
              f"CROSS JOIN LATERAL unnest(a.d || a.s || a.g) WITH ORDINALITY AS x(v, n) "
              f"WHERE {where} GROUP BY 1, 2")
    if own is None:
        return Statement("facets", f"{scalars} UNION ALL {arrays}", binds)
    kept = totals_statement(now)  # its other facets' parts never run: their facet is a constant (a false filter)
    return Statement("facets", f"{scalars} UNION ALL {arrays} UNION ALL SELECT k.facet, k.value, k.n "
                               f"FROM ({kept.sql}) k WHERE k.facet = '{own}'", {**binds, **kept.binds})


def totals_statement(now: datetime) -> Statement:
    """The facet counts and the total of a search with no text and no filter (the landing page, stop words only),
    from the projection's kept totals (``directory_facet_totals``, written by triggers on ``directory_listings``
    in the writer's own statement, so exact): the same rows :func:`facets_statement` gives without text and
    filters, without unnesting 100,000 listings' arrays (~1 s of CPU). "Free this week" changes with the clock:
    the next free slots are kept per UTC day, so it is the whole days inside the week plus the two part days at
    its ends, counted live over the next-slot index (short ranges)."""
    week_end = now + WEEK
    midnight = now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    first_day = midnight if midnight == now else midnight + timedelta(days=1)
    end_day = week_end.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    sql = ("SELECT t.facet, t.value, t.listings AS n FROM directory_facet_totals t "
           "WHERE t.facet NOT IN ('total', 'slot_day') "
           "AND (t.facet <> 'price' OR t.value = ANY(CAST(:bands AS text[]))) "
           "UNION ALL SELECT 'total', '', COALESCE((SELECT t.listings FROM directory_facet_totals t "
           "WHERE t.facet = 'total' AND t.value = ''), 0) "
           "UNION ALL SELECT 'week', '1', COALESCE((SELECT sum(t.listings) FROM directory_facet_totals t "
           "WHERE t.facet = 'slot_day' AND t.value >= :first_day AND t.value < :end_day), 0) "
           "+ (SELECT count(*) FROM directory_listings l WHERE l.next_slot_at >= :now AND l.next_slot_at < :first) "
           "+ (SELECT count(*) FROM directory_listings l WHERE l.next_slot_at >= :last AND l.next_slot_at < :week_end)")
    return Statement("facets", sql, {"now": now, "week_end": week_end, "first": first_day, "last": end_day,
                                     "first_day": first_day.strftime("%Y-%m-%d"),
                                     "end_day": end_day.strftime("%Y-%m-%d"),
                                     "bands": [str(band) for band in PRICE_BANDS]})


def _facets(params: SearchParams, tq: TextQuery, now: datetime) -> Statement:
    """How a search counts its facets: from the kept totals when it has no text and no filter."""
    if not tq and not params.filters:
        return totals_statement(now)
    return facets_statement(params, tq, now)


def check_statement(params: SearchParams) -> Statement:
    """Before searching: whether the text has words at all (stop words only: none), and which chosen sports or
    games and skills some listing has. Also asks for plans made for these values (see :func:`_run`)."""
    sql = ("SELECT set_config('plan_cache_mode', 'force_custom_plan', true) AS plans, "
           "numnode(websearch_to_tsquery('english', :tq)) AS english, "
           "numnode(websearch_to_tsquery('simple', :tq)) AS simple, "
           "ARRAY(SELECT v FROM unnest(CAST(:disciplines AS varchar[])) v WHERE EXISTS "
           "(SELECT 1 FROM directory_listings l WHERE l.disciplines @> ARRAY[v])) AS disciplines, "
           "ARRAY(SELECT v FROM unnest(CAST(:skills AS varchar[])) v WHERE EXISTS "
           "(SELECT 1 FROM directory_listings l WHERE l.skills @> ARRAY[v])) AS skills")
    return Statement("check", sql, {"tq": params.q, "disciplines": list(params.discipline),
                                    "skills": list(params.skill)})


def corrections_statement(words: list[str]) -> Statement:
    """For each word, the most similar word of any listing (itself when it is one), or NULL. One subquery per
    word with the word bound as its own value: planned for that word, the trigram index is used at any size."""
    binds: dict = {"similarity": CORRECTION_SIMILARITY}
    parts = []
    for n, word in enumerate(words):
        binds[f"w{n}"] = word
        parts.append(f"SELECT {n} AS n, CAST(:w{n} AS text) AS asked, (SELECT d.word FROM directory_words d "
                     f"WHERE d.word % :w{n} AND similarity(d.word, :w{n}) >= :similarity "
                     f"ORDER BY similarity(d.word, :w{n}) DESC, d.listings DESC, d.word LIMIT 1) AS best")
    return Statement("corrections", " UNION ALL ".join(parts) + " ORDER BY n", binds)


def statements(params: SearchParams, now: datetime | None = None, misspelt: list[str] | None = None
               ) -> list[Statement]:
    """The statements :func:`search` runs for ``params`` (spelling corrections for the ``misspelt`` words)."""
    now = now or clock.now()
    cursor = params.cursor
    tq = text_query(cursor.searched if cursor and cursor.searched else params.q, params.lang,
                    prefix=bool(cursor and cursor.prefixed))
    found = [check_statement(params), items_statement(params, tq, now, page_size() + 1),
             _facets(params, tq, now)]
    begun = text_query(params.q, params.lang, prefix=True)
    if params.q and not cursor and begun.binds != tq.binds:  # the retry with the last word as a prefix
        found += [replace(items_statement(params, begun, now, page_size() + 1), name="items, prefix"),
                  replace(facets_statement(params, begun, now), name="facets, prefix")]
    if misspelt:
        found.append(corrections_statement(misspelt))
    return found


def page_size() -> int:
    return current_app.config["DIRECTORY_PAGE_SIZE"]


def _run(statement: Statement):
    return db.session.execute(text(statement.sql), statement.binds)


# --- searching ------------------------------------------------------------------------------------------------

def _hit(row) -> Hit:
    mapping = row._mapping  # a new mapping object on every access: once, not once per column
    return Hit(**{key: mapping[key] for key in (*CARD_COLUMNS, "rank")})


def _page(params: SearchParams, tq: TextQuery, now: datetime, searched: str | None, prefixed: bool
          ) -> tuple[list[Hit], str | None]:
    size = page_size()
    hits = [_hit(row) for row in _run(items_statement(params, tq, now, size + 1))]
    more = len(hits) > size
    hits = hits[:size]
    return hits, (_cursor_after(params, hits[-1], searched, prefixed) if more and hits else None)


def _counts(params: SearchParams, tq: TextQuery, now: datetime) -> list[tuple[str, str, int]]:
    """The facet counts (and total), from Valkey when a search like this counted them lately.

    Counts younger than ``DIRECTORY_FACET_CACHE_SECONDS`` are used as they are. Older ones (kept up to
    :data:`STALE_KEPT` times as long) are counted again by the one request that takes a short lock, while the
    others show the older counts meanwhile: a popular search is counted once per period, never by every client
    at once. Nothing invalidates them (a new listing shows in the cards at once, in the counts within the period).
    """
    ttl = current_app.config.get("DIRECTORY_FACET_CACHE_SECONDS", 0)
    if not ttl:
        return [tuple(r) for r in _run(_facets(params, tq, now))]
    shape = json.dumps([tq.binds, [(f, params.selected(f)) for f in params.filters]], sort_keys=True)
    key = "coach:directory:facets:" + hashlib.sha256(shape.encode()).hexdigest()
    try:
        kept = redis_conn().get(key)
        if kept is not None:
            kept = json.loads(kept)
            fresh = clock.now().timestamp() - kept["at"] < ttl
            if fresh or not redis_conn().set(f"{key}:counting", 1, nx=True, ex=COUNTING_LOCK):
                return [tuple(r) for r in kept["counts"]]
    except (RedisError, ValueError, KeyError, TypeError):
        log.warning("could not read kept facet counts")
    counts = [(f, v, int(n)) for f, v, n in _run(_facets(params, tq, now))]
    try:
        redis_conn().set(key, json.dumps({"at": clock.now().timestamp(), "counts": counts}), ex=ttl * STALE_KEPT)
        redis_conn().delete(f"{key}:counting")
    except RedisError:
        log.warning("could not keep facet counts")
    return counts


def facet_label(facet: str, value: str) -> str:
    """How a facet's value reads on a page: the projection keeps sports, games and skills in lower case (so
    filters match exactly), pages show them capitalised; codes become names."""
    if facet == "discipline":
        return " ".join(w if w in ("of", "and", "the") else w[:1].upper() + w[1:] for w in value.split(" "))
    if facet == "skill":
        return value[:1].upper() + value[1:]
    if facet == "lang":
        return LANGUAGES.get(value, value)
    if facet == "price":
        return PRICE_BANDS.get(int(value), value)
    if facet == "mode":
        return MODES.get(value, value)
    return FLAG_LABELS.get(facet, value)


def facet_values(params: SearchParams, counts) -> tuple[dict[str, list[FacetValue]], int | None]:
    """The facets as pages show them: per facet the values with a count (most first, at most
    :data:`FACET_TOP`) and every selected value; and the total."""
    by_facet: dict[str, dict[str, int]] = {f: {} for f in FACETS}
    total = None
    for facet, value, n in counts:
        if facet == "total":
            total = int(n)
        elif value is not None:
            by_facet[facet][str(value)] = int(n)
    facets: dict[str, list[FacetValue]] = {}
    for facet in FACETS:
        chosen = params.selected(facet)
        found = by_facet[facet]
        if facet == "price":
            order = [str(b) for b in PRICE_BANDS if found.get(str(b)) or str(b) in chosen]
        elif facet == "mode":
            order = [m for m in MODES if found.get(m) or m in chosen]
        else:
            order = [v for v, n in sorted(found.items(), key=lambda p: (-p[1], p[0])) if n][:FACET_TOP]
            order += [v for v in chosen if v not in order]
        facets[facet] = [FacetValue(v, facet_label(facet, v), found.get(v, 0), v in chosen) for v in order]
    return facets, total


def typo_words(q: str) -> list[str]:
    """The words of ``q`` worth correcting (three letters or more, not numbers; at most eight)."""
    return list(dict.fromkeys(w.lower() for w in WORD.findall(q) if len(w) >= 3 and not w.isdigit()))[:8]


def _corrected(q: str) -> str | None:
    """``q`` with each word no listing has replaced by the most similar one that some listing has."""
    words = typo_words(q)
    if not words:
        return None
    best = {row.asked: row.best for row in _run(corrections_statement(words))}
    swaps = {w: b for w, b in best.items() if b and b != w}
    if not swaps:
        return None
    return WORD.sub(lambda m: swaps.get(m.group(0).lower(), m.group(0)), q)


def search(params: SearchParams, now: datetime | None = None) -> SearchResults:
    """Listed coaches matching ``params``: one page, the facets with live counts, the next page's cursor, and
    the corrected text when the text as typed found (almost) nothing."""
    now = now or clock.now()
    notices: list[str] = []
    check = _run(check_statement(params)).one()
    if params.q and not check.english:
        kind = "only very common words" if check.simple else "no words to search for"
        notices.append(f"Your search “{shown(params.q)}” had {kind}, so every coach is shown.")
        params = replace(params, q="", sort="rating" if params.sort == "relevance" else params.sort, cursor=None)
    for facet, label, known in (("discipline", "sport or game", check.disciplines), ("skill", "skill", check.skills)):
        unknown = [v for v in getattr(params, facet) if v not in known]
        for value in unknown:
            notices.append(f"Unknown {label} '{shown(value)}' was ignored.")
        if unknown:
            params = replace(params, **{facet: tuple(v for v in getattr(params, facet) if v in known)})
    searched = params.cursor.searched if params.cursor else None
    prefixed = params.cursor.prefixed if params.cursor else False
    tq = text_query(searched or params.q, params.lang, prefix=prefixed)
    items, next_cursor = _page(params, tq, now, searched, prefixed)
    corrected = searched
    if params.q and not params.cursor and len(items) < FEW_RESULTS:
        # Someone still typing: the last word as a prefix.
        begun = text_query(params.q, params.lang, prefix=True)
        if begun.binds != tq.binds:
            more, more_cursor = _page(params, begun, now, None, True)
            if len(more) > len(items):
                items, next_cursor, tq, prefixed = more, more_cursor, begun, True
    if params.q and not params.cursor and not params.exact and len(items) < FEW_RESULTS:
        better = _corrected(params.q)
        if better:
            better_tq = text_query(better, params.lang, prefix=False)
            more, more_cursor = _page(params, better_tq, now, better, False)
            if len(more) > len(items):
                items, next_cursor, tq, corrected = more, more_cursor, better_tq, better
    facets, total = facet_values(params, _counts(params, tq, now))
    return SearchResults(items=items, facets=facets, next_cursor=next_cursor, corrected_query=corrected,
                         notices=notices, total=total)
