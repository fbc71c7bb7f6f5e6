"""Searching one organization's own coaches, for its members: every coach (listed publicly or not, with a profile
or only a name), read from the tenant tables through row-level security, never from the public projection.

An organization has tens or hundreds of coaches, not 100,000: one statement reads them all with their profile,
taxonomy terms, rating and whether (and how well) each matches the text, its ``to_tsvector`` built on the fly;
the facts (prices, next free slot) come from :func:`coach.directory.stats.coach_facts`; filtering, disjunctive
facet counts, sorting and keyset pages are done in Python over that list. The parameters, cursor format and
results are the public search's (:mod:`coach.directory.search`), so the pages share their templates.
"""
from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from sqlalchemy import text

from coach import clock
from coach.directory import projection, search, stats
from coach.directory.search import FACETS, Cursor, Hit, SearchParams, SearchResults
from coach.extensions import db
from coach.orgs.models import COACH, Organization
from coach.spaces.markdown import plain_excerpt

_WORDS = re.compile(r"[^\W\d_]{3,}")
_DOC = """
    setweight(to_tsvector(CAST(:cfg AS regconfig), x.display_name || ' ' || x.headline), 'A')
    || setweight(to_tsvector('simple', x.display_name || ' ' || x.headline), 'A')
    || setweight(to_tsvector(CAST(:cfg AS regconfig), array_to_string(x.disciplines || x.skills, ' ')), 'B')
    || setweight(to_tsvector('simple', array_to_string(x.disciplines || x.skills, ' ')), 'B')
    || setweight(to_tsvector(CAST(:cfg AS regconfig), array_to_string(x.tags, ' ')), 'C')
    || setweight(to_tsvector('simple', array_to_string(x.tags, ' ')), 'C')
    || setweight(to_tsvector(CAST(:cfg AS regconfig), x.bio), 'D')
"""
_COACHES = """
    SELECT x.*, {matched} AS matched, {rank} AS rank FROM (
        SELECT m.id AS coach_membership_id, u.display_name, p.id AS profile_id, p.handle,
               coalesce(p.headline, '') AS headline, coalesce(p.bio_source, '') AS bio,
               coalesce(p.languages, '{{}}') AS languages, coalesce(p.tags, '{{}}') AS tags,
               coalesce(p.online, false) AS online, coalesce(p.in_person, false) AS in_person,
               coalesce(p.location, '') AS location, p.verified_at IS NOT NULL AS verified,
               p.response_minutes, coalesce(p.sessions_delivered, 0) AS sessions_delivered,
               coalesce(r.review_count, 0) AS review_count, coalesce(r.star_sum, 0) AS star_sum,
               coalesce(t.disciplines, '{{}}') AS disciplines, coalesce(t.skills, '{{}}') AS skills
        FROM memberships m
        JOIN users u ON u.id = m.user_id
        LEFT JOIN coach_profiles p ON p.tenant_id = m.tenant_id AND p.coach_membership_id = m.id
        LEFT JOIN coach_ratings r ON r.tenant_id = m.tenant_id AND r.coach_membership_id = m.id
        LEFT JOIN LATERAL (
            SELECT array_agg(lower(d.name) ORDER BY d.position, d.name) FILTER (WHERE d.kind = 'discipline')
                       AS disciplines,
                   array_agg(lower(d.name) ORDER BY d.position, d.name) FILTER (WHERE d.kind <> 'discipline')
                       AS skills
            FROM coach_profile_terms pt
            JOIN directory_terms d ON d.tenant_id = pt.tenant_id AND d.id = pt.term_id
            WHERE pt.tenant_id = m.tenant_id AND pt.profile_id = p.id) t ON true
        WHERE m.tenant_id = :tenant AND m.role = :coach
    ) x
"""


def _coaches(org: Organization, tq: search.TextQuery) -> list:
    matched = f"({_DOC}) @@ {tq.sql}" if tq else "true"
    rank = f"ts_rank_cd({_DOC}, {tq.sql})" if tq else "NULL::real"
    binds = {"tenant": org.id, "coach": COACH, "cfg": projection.ts_config(org.locale), **tq.binds}
    return list(db.session.execute(text(_COACHES.format(matched=matched, rank=rank)), binds))


def _words(rows) -> list[str]:
    found: set[str] = set()
    for row in rows:
        found.update(w.lower() for w in _WORDS.findall(" ".join([row.display_name, row.headline, *row.disciplines,
                                                                   *row.skills, *row.tags])))
    return sorted(found)


def _corrected(q: str, rows) -> str | None:
    """``q`` with each word none of the coaches has replaced by the most similar one they have (pg_trgm)."""
    vocabulary = _words(rows)
    asked = [w for w in search.typo_words(q) if w not in vocabulary]
    if not asked or not vocabulary:
        return None
    best = dict(db.session.execute(text(
        "SELECT w, (SELECT v FROM unnest(CAST(:vocabulary AS text[])) v WHERE similarity(v, w) >= :similarity "
        "ORDER BY similarity(v, w) DESC, v LIMIT 1) FROM unnest(CAST(:words AS text[])) w"),
        {"vocabulary": vocabulary, "words": asked, "similarity": search.CORRECTION_SIMILARITY}).all())
    swaps = {w: b for w, b in best.items() if b}
    if not swaps:
        return None
    return search.WORD.sub(lambda m: swaps.get(m.group(0).lower(), m.group(0)), q)


def _hits(org: Organization, rows, now: datetime) -> list[Hit]:
    facts = stats.coach_facts(org.id, [r.coach_membership_id for r in rows], now)
    hits = []
    for row in rows:
        fact = facts[row.coach_membership_id]
        count, star_sum = row.review_count, row.star_sum
        hits.append(Hit(
            id=row.profile_id, coach_membership_id=row.coach_membership_id, display_name=row.display_name,
            organization_id=org.id, org_slug=org.slug, org_name=org.name, handle=row.handle,
            headline=row.headline, excerpt=plain_excerpt(row.bio, 300) if row.bio else "",
            disciplines=list(row.disciplines), skills=list(row.skills), tags=list(row.tags),
            languages=list(row.languages), online=row.online, in_person=row.in_person, location=row.location,
            verified=row.verified, currency=fact.currency, price_min_minor=fact.price_min_minor,
            price_max_minor=fact.price_max_minor, price_band=projection.price_band(fact.price_min_minor,
                                                                                  fact.currency),
            rating_count=count, rating_avg=round(Decimal(star_sum) / count, 2) if count else None,
            rating_score=projection.bayesian(count, star_sum), next_slot_at=fact.next_slot_at,
            response_minutes=row.response_minutes or fact.response_minutes,
            sessions_delivered=max(row.sessions_delivered, fact.sessions_delivered),
            rank=row.rank))
    return hits


def _passes(hit: Hit, facet: str, params: SearchParams, now: datetime) -> bool:
    chosen = getattr(params, facet)
    if facet in ("discipline", "skill", "lang"):
        have = {"discipline": hit.disciplines, "skill": hit.skills, "lang": hit.languages}[facet]
        return bool(set(have) & set(chosen))
    if facet == "price":
        return hit.price_band in chosen
    if facet == "rating":
        return hit.rating_count > 0 and hit.rating_avg >= chosen
    if facet == "verified":
        return hit.verified
    if facet == "week":
        return hit.next_slot_at is not None and now <= hit.next_slot_at < now + search.WEEK
    return any(getattr(hit, mode) for mode in chosen)  # mode


def _values_of(hit: Hit, facet: str, now: datetime) -> list[str]:
    if facet == "discipline":
        return hit.disciplines
    if facet == "skill":
        return hit.skills
    if facet == "lang":
        return hit.languages
    if facet == "price":
        return [] if hit.price_band is None else [str(hit.price_band)]
    if facet == "rating":
        return ["4"] if hit.rating_count and hit.rating_avg >= search.MIN_RATING else []
    if facet == "verified":
        return ["1"] if hit.verified else []
    if facet == "week":
        return ["1"] if hit.next_slot_at is not None and now <= hit.next_slot_at < now + search.WEEK else []
    return [mode for mode in search.MODES if getattr(hit, mode)]


def _counts(hits: list[Hit], params: SearchParams, now: datetime) -> list[tuple[str, str, int]]:
    """Disjunctive counts as the public search makes them: each facet over the hits passing the others."""
    chosen = params.filters
    passing = {id(h): {f for f in chosen if _passes(h, f, params, now)} for h in hits}
    counted: dict[tuple[str, str], int] = {}
    for facet in FACETS:
        others = set(chosen) - {facet}
        for hit in hits:
            if others <= passing[id(hit)]:
                for value in dict.fromkeys(_values_of(hit, facet, now)):
                    counted[(facet, value)] = counted.get((facet, value), 0) + 1
    total = sum(1 for h in hits if set(chosen) <= passing[id(h)])
    return [(f, v, n) for (f, v), n in counted.items()] + [("total", "", total)]


def _sort_key(sort: str):
    low = datetime.min.replace(tzinfo=clock.now().tzinfo)
    if sort == "price":
        return lambda h: (h.price_min_minor is None, h.price_min_minor or 0, h.coach_membership_id)
    if sort == "soonest":
        return lambda h: (h.next_slot_at is None, h.next_slot_at or low, h.coach_membership_id)
    if sort == "relevance":
        return lambda h: (-(h.rank or 0.0), -h.rating_score, h.coach_membership_id)
    return lambda h: (-h.rating_score, h.coach_membership_id)


def _cursor_hit(cursor: Cursor) -> Hit:
    """A stand-in at the cursor's position, to compare rows against with the same sort key."""
    values = {"rating": {"rating_score": cursor.key[0]}, "price": {"price_min_minor": cursor.key[0]},
              "soonest": {"next_slot_at": cursor.key[0]},
              "relevance": {"rank": cursor.key[0], "rating_score": cursor.key[-1]}}[cursor.sort]
    return Hit(id=None, coach_membership_id=cursor.id, display_name="", **values)


def search_org(org: Organization, params: SearchParams, now: datetime | None = None) -> SearchResults:
    """The coaches of ``org`` matching ``params`` (its members' search): the public search's answer, over the
    organization's own rows."""
    now = now or clock.now()
    notices: list[str] = []
    check = db.session.execute(text("SELECT numnode(websearch_to_tsquery('english', :tq)) AS english, "
                                    "numnode(websearch_to_tsquery('simple', :tq)) AS simple"), {"tq": params.q}).one()
    if params.q and not check.english:
        kind = "only very common words" if check.simple else "no words to search for"
        notices.append(f"Your search “{search.shown(params.q)}” had {kind}, so every coach is shown.")
        params = replace(params, q="", sort="rating" if params.sort == "relevance" else params.sort, cursor=None)
    terms = db.session.execute(text("SELECT lower(name), kind FROM directory_terms WHERE tenant_id = :tenant"),
                               {"tenant": org.id}).all()
    for facet, label, kinds in (("discipline", "sport or game", {"discipline"}),
                                ("skill", "skill", {"skill", "role", "level"})):
        known = {name for name, kind in terms if kind in kinds}
        for value in getattr(params, facet):
            if value not in known:
                notices.append(f"Unknown {label} '{search.shown(value)}' was ignored.")
        params = replace(params, **{facet: tuple(v for v in getattr(params, facet) if v in known)})
    config = projection.ts_config(org.locale)
    searched = params.cursor.searched if params.cursor else None
    rows = _coaches(org, search.text_query(searched or params.q, params.lang, (config,)))
    matching = [r for r in rows if r.matched]
    corrected = searched
    if params.q and not params.cursor and not params.exact and len(matching) < search.FEW_RESULTS:
        better = _corrected(params.q, rows)
        if better:
            again = [r for r in _coaches(org, search.text_query(better, params.lang, (config,))) if r.matched]
            if len(again) > len(matching):
                matching, corrected = again, better
    hits = _hits(org, matching, now)
    facets, total = search.facet_values(params, _counts(hits, params, now))
    shown = sorted((h for h in hits if all(_passes(h, f, params, now) for f in params.filters)),
                   key=_sort_key(params.sort))
    if params.cursor:
        key = _sort_key(params.sort)
        after = key(_cursor_hit(params.cursor))
        shown = [h for h in shown if key(h) > after]
    size = search.page_size()
    page, more = shown[:size], len(shown) > size
    next_cursor = None
    if more and page:
        last = page[-1]
        sort_key = {"rating": (last.rating_score,), "price": (last.price_min_minor,),
                    "soonest": (last.next_slot_at,), "relevance": (last.rank or 0.0, last.rating_score)}[params.sort]
        next_cursor = search.encode_cursor(Cursor(params.sort, sort_key, last.coach_membership_id,
                                                  search.fingerprint(params.q), corrected))
    return SearchResults(items=page, facets=facets, next_cursor=next_cursor, corrected_query=corrected,
                         notices=notices, total=total)
