"""A coach's counted ratings: kept with every review write, followed by the public listing through the outbox, and
checked against the rows (``check_ratings``, the nightly sweep and ``flask directory check-ratings``)."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from coach import clock, tenancy
from coach.directory import review_jobs, reviews
from coach.directory.models import Listing
from coach.directory.review_cli import check_ratings_command
from coach.extensions import db
from tests.directory_support import DirectoryWorld


@pytest.fixture()
def world(ctx):
    w = DirectoryWorld()
    w.publish()
    return w


def ended_for(w, athlete, hours_ago: int):
    booking = w.write_booking(w.maria, w.aim, athlete, clock.now().replace(microsecond=0)
                              - timedelta(hours=hours_ago), "ended")
    db.session.commit()
    return booking


def maria_listing(w) -> Listing:
    db.session.expire_all()
    tenancy.activate(w.org.id)
    return db.session.scalar(select(Listing).where(Listing.coach_membership_id == w.maria.id))


def deliver(runner, w):
    with runner.paused():
        runner.drain()
    db.session.expire_all()
    tenancy.activate(w.org.id)


def test_the_listing_follows_a_review_and_a_hidden_review_leaves_it(world, job_runner):
    w = world
    assert maria_listing(w).rating_count == 0
    low = reviews.write_review(w.ended, w.ana, 1, "Late and unprepared")
    reviews.write_review(ended_for(w, w.ben, 30), w.ben, 5, "Superb")
    db.session.commit()
    deliver(job_runner, w)
    listing = maria_listing(w)
    assert (listing.rating_count, listing.rating_avg) == (2, Decimal("3.00"))
    reviews.hide(reviews.get_review(w.org.id, low.id), w.admin, "Not about the coaching")
    db.session.commit()
    deliver(job_runner, w)
    listing = maria_listing(w)
    assert (listing.rating_count, listing.rating_avg) == (1, Decimal("5.00"))
    rating = reviews.rating_of(w.org.id, w.maria.id)
    assert (rating.review_count, rating.star_sum, rating.distribution) == (1, 5, [0, 0, 0, 0, 1])


def test_check_ratings_finds_a_broken_row_and_fixes_it(world, job_runner):
    w = world
    reviews.write_review(w.ended, w.ana, 4, "Good")
    reviews.write_review(ended_for(w, w.ben, 30), w.ben, 2, "Meh")
    db.session.commit()
    assert reviews.check_ratings(w.org.id) == []
    # A hand-made change the services never make: one 4-star review counted as a 5 (the row's own CHECKs hold).
    db.session.execute(text("UPDATE coach_ratings SET stars_4 = stars_4 - 1, stars_5 = stars_5 + 1, "
                            "star_sum = star_sum + 1 WHERE tenant_id = :t AND coach_membership_id = :c"),
                       {"t": w.org.id, "c": w.maria.id})
    db.session.commit()
    found = reviews.check_ratings(w.org.id)
    assert [(m.coach_membership_id, m.stored, m.actual) for m in found] == [
        (w.maria.id, (0, 1, 0, 0, 1), (0, 1, 0, 1, 0))]
    assert "reviews say [0, 1, 0, 1, 0]" in str(found[0])
    assert reviews.check_ratings(w.org.id, fix=True)
    db.session.commit()
    assert reviews.check_ratings(w.org.id) == []
    rating = reviews.rating_of(w.org.id, w.maria.id)
    db.session.refresh(rating)
    assert (rating.review_count, rating.star_sum, rating.distribution) == (2, 6, [0, 1, 0, 1, 0])
    deliver(job_runner, w)
    assert maria_listing(w).rating_avg == Decimal("3.00")


def test_a_missing_or_stray_rating_row_is_found_too(world):
    w = world
    reviews.write_review(w.ended, w.ana, 3, "")
    db.session.commit()
    db.session.execute(text("DELETE FROM coach_ratings WHERE tenant_id = :t"), {"t": w.org.id})
    db.session.execute(text("INSERT INTO coach_ratings (id, tenant_id, coach_membership_id, review_count, star_sum, "
                            "stars_1) VALUES (gen_random_uuid(), :t, :c, 1, 1, 1)"), {"t": w.org.id, "c": w.jon.id})
    db.session.commit()
    found = {m.coach_membership_id: (m.stored, m.actual) for m in reviews.check_ratings(w.org.id, fix=True)}
    assert found == {w.maria.id: ((0,) * 5, (0, 0, 1, 0, 0)), w.jon.id: ((1, 0, 0, 0, 0), (0,) * 5)}
    db.session.commit()
    assert reviews.check_ratings(w.org.id) == []


def test_the_nightly_check_fixes_every_organization(world):
    w = world
    reviews.write_review(w.ended, w.ana, 5, "")
    db.session.commit()
    db.session.execute(text("UPDATE coach_ratings SET review_count = 2, star_sum = 10, stars_5 = 2 "
                            "WHERE tenant_id = :t"), {"t": w.org.id})
    db.session.commit()
    assert review_jobs.check_review_ratings() == 1
    tenancy.activate(w.org.id)
    assert reviews.check_ratings(w.org.id) == []


def test_the_command_reports_then_fixes(app, world):
    w = world
    reviews.write_review(w.ended, w.ana, 5, "")
    db.session.commit()
    runner = app.test_cli_runner()
    clean = runner.invoke(check_ratings_command, ["--org", "river"])
    assert clean.exit_code == 0 and "0 coaches with wrong counts in 1 organization." in clean.output
    tenancy.activate(w.org.id)
    db.session.execute(text("UPDATE coach_ratings SET review_count = 0, star_sum = 0, stars_5 = 0 "
                            "WHERE tenant_id = :t"), {"t": w.org.id})
    db.session.commit()
    found = runner.invoke(check_ratings_command, [])
    assert found.exit_code == 1 and "river: coach" in found.output and "1 coach with wrong counts" in found.output
    fixed = runner.invoke(check_ratings_command, ["--fix"])
    assert fixed.exit_code == 0 and "(fixed)" in fixed.output
    assert runner.invoke(check_ratings_command, []).exit_code == 0
    assert "No organization" in runner.invoke(check_ratings_command, ["--org", "nope"]).output
    as_typed = runner.invoke(args=["directory", "check-ratings", "--org", "river"])  # flask directory check-ratings
    assert as_typed.exit_code == 0 and "0 coaches with wrong counts" in as_typed.output
