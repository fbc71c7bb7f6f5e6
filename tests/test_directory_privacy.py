"""The directory and people's data: exports hold a coach's profile and the reviews written and received (an
organization's export: profiles, taxonomy, reviews, ratings); an erased athlete's reviews stay, counted, as "A
former athlete"; an erased coach's profile and public listing go at once; a closing organization leaves the
directory at once and comes back if the closing is cancelled. Hill Club (the second organization) is never
touched."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from coach import clock, tenancy
from coach.directory import reviews
from coach.directory.models import CoachProfile, CoachProfileTerm, CoachRating, Listing, ListingWord, Review
from coach.extensions import db
from coach.privacy import closing, deletion, exports
from tests.conftest import Auth
from tests.directory_support import DirectoryWorld


@pytest.fixture()
def world(ctx):
    w = DirectoryWorld()
    tenancy.activate(w.org.id)
    w.review = reviews.write_review(w.ended, w.ana, 5, "Maria fixed my crosshair placement in one hour.")
    reviews.reply(w.review, w.maria, "Thanks, keep the routine going!")
    # Ben's 2-star review of another ended session with Maria, and Hill's own review that must never leak.
    ben_session = w.write_booking(w.maria, w.aim, w.ben, clock.now().replace(microsecond=0) - timedelta(days=3),
                                  "ended")
    w.ben_review = reviews.write_review(ben_session, w.ben, 2, "Too fast for a beginner.")
    db.session.commit()
    w.publish()
    return w


def _later(monkeypatch, days: int = 15):
    later = clock.now() + timedelta(days=days)
    monkeypatch.setattr(clock, "now", lambda: later)
    return later


def _file(entries: list[exports.Entry], name: str) -> dict:
    [entry] = [e for e in entries if e.arcname == name]
    return json.loads(b"".join(entry.produce()))


def _listings(org) -> dict[str, Listing]:
    db.session.expire_all()
    return {row.handle: row for row in db.session.scalars(select(Listing).where(Listing.organization_id == org.id))}


def _erase(user, monkeypatch, erase_content: bool = False) -> None:
    deletion.request_deletion(user, erase_content=erase_content)
    db.session.commit()
    _later(monkeypatch)
    assert deletion.erase_account(user.id) is True
    db.session.commit()


def test_the_deletion_page_says_what_happens_to_a_profile_and_reviews(app, world):
    client = app.test_client()
    Auth(client).login("maria@example.com")
    page = client.get("/account/privacy").get_data(as_text=True)
    assert "your coach profile and your listing in the public coach directory are deleted" in page
    assert 'signed "A former athlete"' in page and "posts, comments, messages and reviews" in page


def test_a_coachs_export_holds_their_profile_what_it_teaches_and_the_reviews_they_received(world):
    w = world
    entries = exports.account_plan(w.maria.user)
    assert "organizations/river/directory.json" in {e.arcname for e in entries}
    mine = _file(entries, "organizations/river/directory.json")
    [profile] = mine["coach_profiles"]
    assert profile["headline"] == "Valorant aim coach for ranked climbers" and profile["handle"] == "maria-santos"
    assert {t["name"] for t in mine["profile_terms"]} == {"Valorant", "Aim", "Controller"}
    received = {r["body"]: r for r in mine["reviews_received"]}
    assert set(received) == {"Maria fixed my crosshair placement in one hour.", "Too fast for a beginner."}
    assert received["Maria fixed my crosshair placement in one hour."]["reply_body"] == \
        "Thanks, keep the routine going!"
    assert mine["reviews_written"] == []
    [rating] = mine["rating"]
    assert (rating["review_count"], rating["star_sum"], rating["stars_5"], rating["stars_2"]) == (2, 7, 1, 1)
    # Nobody else's profile: not Jon's, not Hill's Yara's.
    everything = json.dumps(mine)
    for foreign in ("Tennis serve specialist", "jon-berg", "Valorant aim coach (hill)", "yara-young"):
        assert foreign not in everything, foreign


def test_an_athletes_export_holds_the_reviews_they_wrote_and_not_the_others(world):
    w = world
    mine = _file(exports.account_plan(w.ana.user), "organizations/river/directory.json")
    assert [(r["stars"], r["body"]) for r in mine["reviews_written"]] == [
        (5, "Maria fixed my crosshair placement in one hour.")]
    assert mine["coach_profiles"] == [] and mine["reviews_received"] == [] and mine["rating"] == []
    assert "Too fast for a beginner." not in json.dumps(mine)  # Ben's review is Ben's


def test_the_organizations_export_holds_profiles_taxonomy_reviews_and_ratings_and_nothing_of_another(world):
    w = world
    directory = _file(exports.org_plan(w.org), "directory.json")
    assert {p["handle"] for p in directory["coach_profiles"]} == {"maria-santos", "jon-berg"}
    assert {t["name"] for t in directory["directory_terms"]} == {"Valorant", "Tennis", "Aim", "Controller", "Serve"}
    assert len(directory["coach_profile_terms"]) == 5
    assert {r["body"] for r in directory["reviews"]} == {"Maria fixed my crosshair placement in one hour.",
                                                         "Too fast for a beginner."}
    assert [(r["review_count"], r["star_sum"]) for r in directory["coach_ratings"]] == [(2, 7)]
    everything = json.dumps(directory)
    for foreign in ("yara-young", "Valorant aim coach (hill)", str(w.hill.id)):
        assert foreign not in everything, foreign
    # The README names the directory's part.
    [readme] = [e for e in exports.org_plan(w.org) if e.arcname == "README.txt"]
    assert "directory (coach profiles, taxonomy, reviews, ratings)" in b"".join(readme.produce()).decode()


def test_an_erased_athletes_review_stays_counted_and_is_shown_as_by_a_former_athlete(app, world, monkeypatch,
                                                                                      quiet):
    w = world
    _erase(w.ana.user, monkeypatch)
    tenancy.activate(w.org.id)
    review = db.session.get(Review, w.review.id)
    assert (review.stars, review.body, review.status) == (5, "Maria fixed my crosshair placement in one hour.",
                                                          "visible")
    rating = db.session.scalar(select(CoachRating).where(CoachRating.coach_membership_id == w.maria.id))
    assert (rating.review_count, rating.star_sum) == (2, 7)
    assert reviews.check_ratings(w.org.id) == []
    page = app.test_client().get("/coaches/river/maria-santos").get_data(as_text=True)
    assert "Maria fixed my crosshair placement in one hour." in page
    assert "A former athlete" in page
    assert "Ana A" not in page and "Deleted m" not in page


def test_an_athlete_who_erases_their_words_leaves_the_stars_and_not_the_text(world, monkeypatch, quiet):
    w = world
    _erase(w.ben.user, monkeypatch, erase_content=True)
    tenancy.activate(w.org.id)
    review = db.session.get(Review, w.ben_review.id)
    assert (review.stars, review.body) == (2, deletion.REMOVED_TEXT)
    assert db.session.get(Review, w.review.id).body == "Maria fixed my crosshair placement in one hour."
    assert reviews.check_ratings(w.org.id) == []


def test_an_erased_coachs_profile_and_listing_go_at_once_and_the_reviews_stay(app, world, monkeypatch, quiet):
    w = world
    assert set(_listings(w.org)) == {"maria-santos", "jon-berg"}
    hill_before, profile_id = _listings(w.hill), w.maria_profile.id
    # The coach's words are among the organization's searchable words until the listing goes.
    assert db.session.get(ListingWord, (w.org.id, "santos")) is not None
    _erase(w.maria.user, monkeypatch, erase_content=True)
    # No consumer has run: the erasure itself removed the row (and the coach's words).
    assert set(_listings(w.org)) == {"jon-berg"}
    assert db.session.get(ListingWord, (w.org.id, "santos")) is None
    assert app.test_client().get("/coaches/river/maria-santos").status_code == 404
    tenancy.activate(w.org.id)
    assert db.session.scalar(select(CoachProfile).where(CoachProfile.coach_membership_id == w.maria.id)) is None
    assert db.session.scalars(select(CoachProfileTerm).where(
        CoachProfileTerm.profile_id == profile_id)).all() == []
    # The athletes' reviews of the coach stay with the organization; the coach's reply lost its words.
    review = db.session.get(Review, w.review.id)
    assert (review.body, review.reply_body) == ("Maria fixed my crosshair placement in one hour.",
                                                deletion.REMOVED_TEXT)
    # Rebuilding the projection does not bring the coach back; the other club is untouched.
    tenancy.activate(w.org.id)
    from coach.directory import projection

    projection.refresh_org(w.org.id)
    db.session.commit()
    assert set(_listings(w.org)) == {"jon-berg"}
    assert set(_listings(w.hill)) == set(hill_before)


def test_a_closing_organization_leaves_the_directory_at_once_and_cancelling_brings_it_back(app, world, job_runner):
    w = world
    tenancy.activate(w.org.id)
    with job_runner.paused():
        closing.request_closing(w.org, w.admin.user, "river")
        db.session.commit()
        # At once, before any consumer: no listing, no searchable word, the public profile is gone.
        assert _listings(w.org) == {}
        assert db.session.scalars(select(ListingWord).where(ListingWord.organization_id == w.org.id)).all() == []
        assert app.test_client().get("/coaches/river/maria-santos").status_code == 404
        admin = app.test_client()
        Auth(admin).login("ada@example.com")
        assert "its coaches are not listed in the public coach directory" in \
            admin.get("/o/river/privacy").get_data(as_text=True)
        # An event of the organization meanwhile (a profile change) does not list it again while it closes.
        from coach.directory import projection

        tenancy.activate(w.org.id)
        projection.refresh_org(w.org.id)
        db.session.commit()
        assert _listings(w.org) == {}
        tenancy.activate(w.org.id)
        closing.cancel_closing(db.session.get(type(w.org), w.org.id), w.admin.user)
        db.session.commit()
        job_runner.drain(timeout=60)
    assert set(_listings(w.org)) == {"maria-santos", "jon-berg"}
    assert app.test_client().get("/coaches/river/maria-santos").status_code == 200


def test_an_erased_organization_leaves_no_listing_or_word_behind(world, monkeypatch, quiet):
    w = world
    tenancy.activate(w.org.id)
    closing.request_closing(w.org, w.admin.user, "river")
    db.session.commit()
    _later(monkeypatch)
    assert closing.erase_organization(w.org.id) is True
    db.session.commit()
    tenancy.deactivate()
    assert db.session.scalars(select(Listing).where(Listing.organization_id == w.org.id)).all() == []
    assert db.session.scalars(select(ListingWord).where(ListingWord.organization_id == w.org.id)).all() == []
