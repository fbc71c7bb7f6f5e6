"""The public directory's search: text with typos and prefixes, facets with live counts, sorts and keyset pages,
and every kind of bad input answered with results or a notice (a tampered page link: BadCursor, a 400)."""
from __future__ import annotations

import time
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from itsdangerous import URLSafeSerializer
from sqlalchemy import insert
from werkzeug.datastructures import MultiDict

from coach import clock, tenancy
from coach.directory import projection, search
from coach.directory.models import CoachRating, Listing
from coach.extensions import db
from tests.directory_support import DirectoryWorld


@pytest.fixture()
def world(ctx):
    w = DirectoryWorld()
    w.publish()
    return w


def find(query: str = "", now=None, **args) -> search.SearchResults:
    """Search as a page would, from a query string (``lang=en&lang=es``) and keyword arguments."""
    from urllib.parse import parse_qsl

    multi = MultiDict(parse_qsl(query, keep_blank_values=True))
    for key, value in args.items():
        for one in value if isinstance(value, list) else [value]:
            multi.add(key, one)
    return search.search(search.parse_params(multi), now=now)


def names(results) -> list[str]:
    return [hit.display_name for hit in results.items]


def counts(results, facet) -> dict[str, int]:
    return {fv.value: fv.count for fv in results.facets[facet]}


def add_listings(org, rows: list[dict]) -> None:
    """Listings written straight into the projection for ``org`` (as its refresh would, without the profiles)."""
    tenancy.activate(org.id)
    values = []
    for n, row in enumerate(rows):
        name = row.pop("display_name", f"Coach {n}")
        headline = row.pop("headline", "Chess coach")
        count, stars = row.pop("reviews", (0, 0))
        values.append({
            "id": uuid.uuid4(), "organization_id": org.id, "coach_membership_id": uuid.uuid4(),
            "org_slug": org.slug, "org_name": org.name, "handle": f"extra-{n}-{uuid.uuid4().hex[:6]}",
            "display_name": name, "headline": headline, "disciplines": ["chess"], "languages": ["en"],
            "rating_count": count, "rating_avg": (Decimal(stars) / count).quantize(Decimal("0.01")) if count else None,
            "rating_score": projection.bayesian(count, stars),
            "search": projection.search_vector("english", {"A": f"{name} {headline}", "B": "chess"}),
            "search_text": f"{name} {headline} chess".lower(), **row})
    for value in values:  # one statement each: the search vector is an SQL expression
        db.session.execute(insert(Listing).values(**value))
    db.session.commit()


def test_a_misspelt_game_finds_the_coach_and_says_what_it_searched(world):
    results = find(q="valorrant aim coach")
    assert names(results) == ["Maria Santos"]
    assert results.corrected_query == "valorant aim coach"


def test_exact_search_does_not_correct_the_spelling(world):
    results = find(q="valorrant", exact="1")
    assert results.items == [] and results.corrected_query is None


def test_a_word_begun_finds_the_coach_by_prefix(world):
    assert names(find(q="tenn")) == ["Jon Berg"]
    assert names(find(q="valo")) == ["Maria Santos"]


def test_stemmed_words_match_the_profile(world):
    assert names(find(q="climbing coaches")) == ["Maria Santos"]  # "ranked climbers", "coach"


def test_the_unlisted_clubs_coach_never_appears(world):
    for results in (find(), find(q="valorant aim"), find(q="yara young"), find(q="hill"),
                    find(discipline="valorant"), find(sort="price"), find(sort="soonest")):
        assert "Yara Young" not in names(results)
    assert find(q="yara").items == []


def test_language_filter_keeps_the_other_languages_counts(world):
    results = find(lang="en")
    assert names(results) == ["Maria Santos"]
    langs = counts(results, "lang")
    # Disjunctive counts: the language facet ignores its own choice (ticking German would add Jon).
    assert langs == {"en": 1, "es": 1, "de": 1}
    assert [fv.selected for fv in results.facets["lang"] if fv.value == "en"] == [True]
    assert counts(results, "discipline") == {"valorant": 1}
    assert results.total == 1
    assert names(find("lang=en&lang=de")) == ["Maria Santos", "Jon Berg"] or \
        set(names(find("lang=en&lang=de"))) == {"Maria Santos", "Jon Berg"}


def test_rating_filter_needs_four_stars_from_real_reviews(world):
    tenancy.activate(world.org.id)
    db.session.add(CoachRating(tenant_id=world.org.id, coach_membership_id=world.jon.id, review_count=2,
                               star_sum=9, stars_4=1, stars_5=1))
    db.session.add(CoachRating(tenant_id=world.org.id, coach_membership_id=world.maria.id, review_count=1,
                               star_sum=3, stars_3=1))
    db.session.commit()
    world.publish()
    results = find(rating="4")
    assert names(results) == ["Jon Berg"]
    assert counts(results, "rating") == {"4": 1}
    # English and 4+: nobody; the empty answer still offers the language facet's counts.
    both = find(rating="4", lang="en")
    assert both.items == [] and counts(both, "lang")["de"] == 1


def test_verified_online_and_this_week_filters(world):
    assert names(find(verified="1")) == ["Maria Santos"]
    assert names(find(mode="in_person")) == ["Jon Berg"]
    assert names(find(mode="online")) == ["Maria Santos"]
    now = clock.now()
    assert set(names(find(week="1", now=now))) == {"Maria Santos", "Jon Berg"}  # hours every day
    # A week from a month later: their next free slots (now) are in the past, so nobody.
    assert find(week="1", now=now + timedelta(days=40)).items == []


def test_bayesian_rating_puts_many_good_reviews_above_one_perfect_one(world):
    add_listings(world.org, [
        {"display_name": "One Review", "reviews": (1, 5)},
        {"display_name": "Many Reviews", "reviews": (200, 960)},
        {"display_name": "No Reviews"},
    ])
    order = names(find(discipline="chess"))
    assert order == ["Many Reviews", "One Review", "No Reviews"]


def _all_pages(query: str) -> list[str]:
    seen, cursor = [], None
    for _ in range(20):
        results = find(query, **({"cursor": cursor} if cursor else {}))
        seen += [hit.handle for hit in results.items]
        cursor = results.next_cursor
        if not cursor:
            return seen
    raise AssertionError("too many pages")


@pytest.mark.parametrize("sort", ["rating", "price", "soonest", "relevance"])
def test_keyset_pages_have_no_duplicates_or_gaps(world, app, sort):
    now = clock.now()
    rows = []
    for n in range(47):  # ties in every sort key, and rows without a price or a free slot
        rows.append({"display_name": f"Chess Coach {n:02d}", "reviews": (n % 3, 4 * (n % 3)),
                     "price_min_minor": None if n % 5 == 0 else 1000 * (n % 4), "currency": "EUR",
                     "next_slot_at": None if n % 7 == 0 else now + timedelta(hours=n % 6),
                     "headline": "Chess coach" + (" chess openings" if n % 2 else "")})
    add_listings(world.org, rows)
    app.config["DIRECTORY_PAGE_SIZE"] = 10
    try:
        handles = _all_pages(f"q=chess&sort={sort}")
    finally:
        app.config["DIRECTORY_PAGE_SIZE"] = 20
    assert len(handles) == 47 and len(set(handles)) == 47
    listed = {row.handle: row for row in db.session.scalars(db.select(Listing)) if row.handle in handles}
    if sort == "price":
        keys = [(listed[h].price_min_minor is None, listed[h].price_min_minor or 0) for h in handles]
    elif sort == "soonest":
        keys = [(listed[h].next_slot_at is None, listed[h].next_slot_at or now) for h in handles]
    elif sort == "rating":
        keys = [-listed[h].rating_score for h in handles]
    else:
        keys = None  # relevance: chess openings first (more matches), checked below
    if keys is not None:
        assert keys == sorted(keys)
    else:
        first = [listed[h].headline for h in handles[:23]]
        assert all("openings" in h for h in first)


def test_a_page_link_carries_the_corrected_text(world, app):
    add_listings(world.org, [{"display_name": f"Valorant Helper {n}", "headline": "Valorant aim helper"}
                             for n in range(12)])
    app.config["DIRECTORY_PAGE_SIZE"] = 5
    try:
        first = find(q="valorrant")
        assert first.corrected_query == "valorant" and len(first.items) == 5
        second = find(q="valorrant", cursor=first.next_cursor)
        assert second.corrected_query == "valorant" and len(second.items) == 5
        assert not set(names(first)) & set(names(second))
    finally:
        app.config["DIRECTORY_PAGE_SIZE"] = 20


@pytest.mark.parametrize("q", [
    "&|!():*", "valorant & | ! ( ) : *", '"unbalanced quote', "'; DROP TABLE directory_listings; --",
    "aim:* & !(", "x" * 10_000, "valorant " * 2000, "the and of", "a\x00b\x01c", "-", '""', "or", "ｖａｌｏｒａｎｔ",
    "\\'", "%_%", "tenn'", "' OR 1=1 --",
])
def test_bad_text_gives_results_or_a_notice_never_an_error(world, q):
    params = search.parse_params(MultiDict({"q": q}))
    results = search.search(params)
    assert len(params.q) <= search.TEXT_MAX and "\x00" not in params.q
    assert isinstance(results.items, list)
    assert db.session.scalar(db.select(db.func.count()).select_from(Listing)) == 2  # nothing dropped
    if len(q) > search.TEXT_MAX:
        assert any("cut to its first 200" in n for n in params.notices)


def test_only_stop_words_searches_everyone_with_a_notice(world):
    results = find(q="the and of")
    assert set(names(results)) == {"Maria Santos", "Jon Berg"}
    assert any("only very common words" in n for n in results.notices)


def test_unknown_facet_values_are_dropped_with_a_notice(world):
    params = search.parse_params(MultiDict([("lang", "xx"), ("lang", "en"), ("price", "9"), ("mode", "water"),
                                            ("rating", "6"), ("sort", "weird"), ("verified", "maybe"),
                                            ("discipline", "curling"), ("discipline", "x" * 500)]))
    assert params.lang == ("en",) and params.price == () and params.mode == () and params.rating is None
    notices = " ".join(params.notices)
    for text in ("Unknown language 'xx'", "Unknown price band '9'", "Unknown place 'water'", "Unknown rating '6'",
                 "Unknown sort 'weird'", "Unknown verification choice 'maybe'", "Unknown sport or game 'xxx"):
        assert text in notices
    results = search.search(params)
    assert "Unknown sport or game 'curling' was ignored." in results.notices
    assert names(results) == ["Maria Santos"]  # curling was dropped, English kept


def test_a_tampered_or_foreign_cursor_is_a_broken_link(world, app):
    add_listings(world.org, [{"display_name": f"Chess {n}"} for n in range(25)])
    cursor = find().next_cursor
    assert cursor
    forged = URLSafeSerializer("another-key", salt="coach.directory.search-cursor").dumps(
        ["rating", ["9.999"], uuid.uuid4().hex, search.fingerprint(""), None])
    for bad in (cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB"), "garbage", "x" * 5000, forged,
                "'; DROP TABLE directory_listings; --"):
        with pytest.raises(search.BadCursor) as caught:
            search.parse_params(MultiDict({"cursor": bad}))
        assert caught.value.status == 400
        assert "start the search again" in str(caught.value)


def test_a_cursor_of_another_search_starts_from_the_first_page(world):
    add_listings(world.org, [{"display_name": f"Chess {n}"} for n in range(25)])
    cursor = find().next_cursor
    params = search.parse_params(MultiDict({"cursor": cursor, "sort": "price"}))
    assert params.cursor is None and any("first page" in n for n in params.notices)


def test_facet_counts_are_kept_for_a_while_but_cards_are_live(world, app):
    app.config["DIRECTORY_FACET_CACHE_SECONDS"] = 60
    try:
        assert find().total == 2
        add_listings(world.org, [{"display_name": "Newcomer"}])
        later = find()
        assert "Newcomer" in names(later)  # the cards are read now
        assert later.total == 2  # the counts are the kept ones
        app.config["DIRECTORY_FACET_CACHE_SECONDS"] = 1
        time.sleep(1.1)
        assert find().total == 3  # older than the period: counted again
    finally:
        app.config["DIRECTORY_FACET_CACHE_SECONDS"] = 0


def test_the_next_page_of_a_begun_word_keeps_searching_it_as_a_prefix(world, app):
    add_listings(world.org, [{"display_name": f"Padel Helper {n}", "headline": "Padel footwork helper"}
                             for n in range(12)])
    app.config["DIRECTORY_PAGE_SIZE"] = 5
    try:
        first = find(q="pade")
        second = find(q="pade", cursor=first.next_cursor)
        third = find(q="pade", cursor=second.next_cursor)
    finally:
        app.config["DIRECTORY_PAGE_SIZE"] = 20
    handles = [hit.handle for page in (first, second, third) for hit in page.items]
    assert len(handles) == 12 and len(set(handles)) == 12 and third.next_cursor is None


def test_this_week_by_soonest_and_a_price_band_by_price(world):
    now = clock.now()
    assert set(names(find(week="1", sort="soonest", now=now))) == {"Maria Santos", "Jon Berg"}
    assert names(find(price="2", sort="price")) == ["Maria Santos"]  # EUR 45
    # A page link from the rows without a free slot, then "this week" ticked: an empty page, not an error.
    cursor = search.encode_cursor(search.Cursor("soonest", (None,), uuid.uuid4(), search.fingerprint(""), None))
    assert find(week="1", sort="soonest", cursor=cursor, now=now).items == []


def _passes(row, facet: str, chosen: list[str], now) -> bool:
    """Whether a listing passes one facet's filter, as the page explains it (any chosen value of a facet)."""
    if facet in ("discipline", "skill", "lang"):
        return bool(set(getattr(row, {"discipline": "disciplines", "skill": "skills", "lang": "languages"}[facet]))
                    & set(chosen))
    if facet == "price":
        return row.price_band is not None and str(row.price_band) in chosen
    if facet == "rating":
        return row.rating_count > 0 and row.rating_avg >= 4
    if facet == "verified":
        return row.verified
    if facet == "week":
        return row.next_slot_at is not None and now <= row.next_slot_at < now + timedelta(days=7)
    return any(getattr(row, mode) for mode in chosen)  # mode


def _values_of(row, facet: str, now) -> list[str]:
    if facet in ("discipline", "skill", "lang"):
        return list(getattr(row, {"discipline": "disciplines", "skill": "skills", "lang": "languages"}[facet]))
    if facet == "price":
        return [] if row.price_band is None else [str(row.price_band)]
    if facet == "mode":
        return [mode for mode in ("online", "in_person") if getattr(row, mode)]
    return ["4" if facet == "rating" else "1"] if _passes(row, facet, [], now) else []


@pytest.mark.parametrize("query", ["discipline=chess", "skill=aim", "lang=es", "price=2&price=0", "rating=4",
                                   "verified=1", "week=1", "mode=in_person", "discipline=chess&lang=es",
                                   "lang=en&lang=de&verified=1&mode=online", "week=1&price=2&rating=4"])
def test_facet_counts_without_text_are_each_facets_count_over_the_other_filters(world, query):
    """A filter without text: each facet counts the listings that pass every other facet's filter (its own counts
    come from the kept totals when it is the only filter; the others are counted over its listings)."""
    from urllib.parse import parse_qsl

    tenancy.activate(world.org.id)
    db.session.add(CoachRating(tenant_id=world.org.id, coach_membership_id=world.jon.id, review_count=2,
                               star_sum=9, stars_4=1, stars_5=1))
    db.session.commit()
    world.publish()
    add_listings(world.org, [
        {"display_name": "Chess Fast", "languages": ["es", "en"], "price_band": 2, "verified": True,
         "next_slot_at": clock.now() + timedelta(days=2), "skills": ["endgames"]},
        {"display_name": "Chess Slow", "languages": ["de"], "price_band": 0, "online": False, "in_person": True,
         "reviews": (3, 14), "next_slot_at": clock.now() + timedelta(days=20)},
        {"display_name": "Aim Trainer", "disciplines": ["valorant"], "skills": ["aim"], "languages": ["es"],
         "price_band": 2, "reviews": (1, 5)},
    ])
    now = clock.now()
    chosen: dict[str, list[str]] = {}
    for key, value in parse_qsl(query):
        chosen.setdefault(key, []).append(value)
    results = find(query, now=now)
    listings = db.session.scalars(db.select(Listing)).all()
    for facet in search.FACETS:
        rows = [r for r in listings if all(_passes(r, f, v, now) for f, v in chosen.items() if f != facet)]
        expected: dict[str, int] = {}
        for row in rows:
            for value in _values_of(row, facet, now):
                expected[value] = expected.get(value, 0) + 1
        shown = {fv.value: fv.count for fv in results.facets[facet] if fv.count}
        assert shown == expected, (facet, shown, expected)
    assert results.total == sum(all(_passes(r, f, v, now) for f, v in chosen.items()) for r in listings)
