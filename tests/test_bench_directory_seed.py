"""The directory benchmark's seeded listings are what the projection would write, so its figures are about the
rows production searches (``bench/directory_seed.py``; ``python -m bench directory``)."""
from __future__ import annotations

from sqlalchemy import select, text

from bench.directory_seed import seed_listings
from coach.directory.projection import _language_names, price_band, search_vector, ts_config
from coach.extensions import db


def _seed(app, coaches: int, orgs: int) -> dict:
    conn = db.session.connection().connection.driver_connection
    counts = seed_listings(conn, coaches=coaches, orgs=orgs, seed=7,
                           prior_mean=app.config["DIRECTORY_RATING_PRIOR_MEAN"],
                           prior_weight=app.config["DIRECTORY_RATING_PRIOR_WEIGHT"])
    db.session.commit()
    return counts


def test_seeded_search_vectors_are_the_projections(ctx, app):
    """Every seeded listing's tsvector equals projection.search_vector over the same published fields, in each
    of the organizations' languages (English, German, Spanish, ..., and Polish, which has no configuration)."""
    counts = _seed(app, coaches=400, orgs=40)
    rows = db.session.execute(text(
        "SELECT l.*, o.locale FROM directory_listings l JOIN organizations o ON o.id = l.organization_id "
        "WHERE o.slug LIKE 'org-%'")).mappings().all()
    assert counts["listings"] == len(rows) == 400
    assert len({r["locale"] for r in rows}) >= 3
    for r in rows:
        weighted = {"A": f"{r['display_name']} {r['headline']}", "B": " ".join(r["disciplines"] + r["skills"]),
                    "C": " ".join(r["tags"] + _language_names(r["languages"], r["locale"])), "D": r["excerpt"]}
        expected = db.session.execute(select(search_vector(ts_config(r["locale"]), weighted))).scalar()
        assert r["search"] == expected, r["handle"]
        assert r["search_text"] == " ".join(
            [r["display_name"], r["headline"], *r["disciplines"], *r["skills"], *r["tags"]]).lower()
        assert r["price_band"] == price_band(r["price_min_minor"], r["currency"])


def test_seeded_organizations_are_listed_with_their_words(ctx, app):
    """The seeded organizations are listed publicly, and their words (for spelling corrections) are counted per
    organization from the listings' searchable text."""
    _seed(app, coaches=200, orgs=10)
    listed = db.session.execute(text(
        "SELECT bool_and(listed_publicly), count(*) FROM organizations WHERE slug LIKE 'org-%'")).one()
    assert listed == (True, 10)
    counted = db.session.execute(text("""
        SELECT w.word, w.listings, (SELECT count(*) FROM directory_listings l
                                    WHERE l.organization_id = w.organization_id
                                      AND regexp_split_to_array(l.search_text, '[^[:alnum:]]+') @> ARRAY[w.word::text])
        FROM directory_words w JOIN organizations o ON o.id = w.organization_id
        WHERE o.slug LIKE 'org-%' ORDER BY w.listings DESC, w.word LIMIT 20""")).all()
    assert len(counted) == 20
    for word, listings, found in counted:
        assert listings == found > 0, word
