"""Members' search over their own organization's coaches: every coach (listed or not, profile or not), from the
tenant tables through row-level security, with the public search's parameters, facets and pages."""
from __future__ import annotations

import pytest
from werkzeug.datastructures import MultiDict

from coach import tenancy
from coach.directory import search
from coach.directory.models import CoachRating
from coach.directory.org_search import search_org
from coach.extensions import db
from tests.directory_support import DirectoryWorld


@pytest.fixture()
def world(ctx):
    return DirectoryWorld()


def find(org, query=None, **args) -> search.SearchResults:
    multi = MultiDict(query or [])
    for key, value in args.items():
        multi.add(key, value)
    tenancy.activate(org.id)
    return search_org(org, search.parse_params(multi))


def names(results) -> list[str]:
    return [hit.display_name for hit in results.items]


def test_members_see_every_coach_of_their_own_organization(world):
    results = find(world.org)
    assert set(names(results)) == {"Maria Santos", "Jon Berg", "Kim Lee"}  # Kim has no profile, still there
    kim = next(h for h in results.items if h.display_name == "Kim Lee")
    assert kim.handle is None and kim.coach_membership_id == world.kim.id
    assert results.total == 3
    # The unlisted club's members find their coach: this search is not the public directory.
    assert names(find(world.hill)) == ["Yara Young"]


def test_another_organizations_coaches_stay_invisible_even_when_asked_for(world):
    tenancy.activate(world.org.id)  # River's context: Hill's rows are hidden by row-level security
    assert search_org(world.hill, search.parse_params(MultiDict())).items == []
    assert "Yara Young" not in names(find(world.org, q="yara"))


def test_text_prefix_and_typos_over_the_organizations_coaches(world):
    assert names(find(world.org, q="tenn")) == ["Jon Berg"]
    assert names(find(world.org, q="kim")) == ["Kim Lee"]
    typo = find(world.org, q="valorrant aim")
    assert names(typo) == ["Maria Santos"] and typo.corrected_query == "valorant aim"
    assert find(world.org, q="valorrant", exact="1").items == []


def test_filters_and_disjunctive_counts(world):
    tenancy.activate(world.org.id)
    db.session.add(CoachRating(tenant_id=world.org.id, coach_membership_id=world.jon.id, review_count=1,
                               star_sum=5, stars_5=1))
    db.session.commit()
    german = find(world.org, lang="de")
    assert names(german) == ["Jon Berg"]
    assert {fv.value: fv.count for fv in german.facets["lang"]} == {"de": 1, "en": 1, "es": 1}
    assert names(find(world.org, rating="4")) == ["Jon Berg"]
    assert names(find(world.org, verified="1")) == ["Maria Santos"]
    assert names(find(world.org, discipline="tennis")) == ["Jon Berg"]
    assert names(find(world.org, skill="controller")) == ["Maria Santos"]
    price = {fv.value: fv.count for fv in find(world.org).facets["price"]}
    assert price == {"2": 1, "3": 1}  # EUR 45 and EUR 80
    unknown = find(world.org, discipline="curling")
    assert "Unknown sport or game 'curling' was ignored." in unknown.notices and len(unknown.items) == 3


@pytest.mark.parametrize("sort", ["rating", "price", "soonest", "relevance"])
def test_pages_of_one_have_no_duplicates_or_gaps(world, app, sort):
    app.config["DIRECTORY_PAGE_SIZE"] = 1
    try:
        seen, cursor = [], None
        query = [("sort", sort)] + ([("q", "coach or tennis or kim")] if sort == "relevance" else [])
        for _ in range(5):
            results = find(world.org, query + ([("cursor", cursor)] if cursor else []))
            seen += names(results)
            cursor = results.next_cursor
            if not cursor:
                break
    finally:
        app.config["DIRECTORY_PAGE_SIZE"] = 20
    expected = {"Maria Santos", "Jon Berg", "Kim Lee"}
    assert sorted(seen) == sorted(expected)
    if sort == "price":
        assert seen == ["Maria Santos", "Jon Berg", "Kim Lee"]  # 45, 80, no offering


@pytest.mark.parametrize("q", ["&|!():*", '"open', "'; DROP TABLE coach_profiles; --", "x" * 10_000, "the of"])
def test_bad_text_never_breaks_the_members_search(world, q):
    results = find(world.org, q=q)
    assert isinstance(results.items, list)
    tenancy.activate(world.org.id)
    assert db.session.scalar(db.text("SELECT count(*) FROM coach_profiles WHERE tenant_id = :t"),
                             {"t": world.org.id}) == 2
