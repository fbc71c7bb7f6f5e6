"""The demo (``flask seed-demo``, run by ``make run``) fills the public coach directory: Northside lists its two
coaches (Maria verified), two more organizations list theirs, every listed coach's public profile answers, the
reviews and replies show, the ratings agree with the rows, and a second run changes nothing."""
from __future__ import annotations

from collections import Counter

from coach import tenancy
from coach.directory import reviews
from coach.orgs.service import org_by_slug


def test_the_demo_lists_coaches_of_three_organizations_with_profiles_reviews_and_public_pages(app, owner_db, quiet):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    assert "/coaches" in result.output and "lena@pixel-academy.example" in result.output

    # Built by the seed itself (no consumer has run: the relay stands still).
    rows = owner_db.execute("SELECT org_slug, handle, display_name, verified, rating_count, rating_avg, "
                            "price_min_minor, next_slot_at FROM directory_listings ORDER BY org_slug, handle"
                            ).fetchall()
    assert Counter(row[0] for row in rows) == {"northside": 2, "pixel-academy": 4, "harbour-endurance": 2}
    by_handle = {(row[0], row[1]): row for row in rows}
    maria = by_handle[("northside", "maria-santos")]
    assert maria[2:6] == ("Maria Santos", True, 2, 4.5)  # verified; 5 and 4 stars
    assert maria[6] == 2000  # her cheapest offering: group conditioning at EUR 20
    assert all(row[7] is not None for row in rows), "every demo coach has a free slot soon"
    assert sum(row[4] for row in rows) == 11  # every demo review is counted

    client = app.test_client()
    for slug, handle in by_handle:
        assert client.get(f"/coaches/{slug}/{handle}").status_code == 200, (slug, handle)
    page = client.get("/coaches/northside/maria-santos").get_data(as_text=True)
    assert "Tennis technique coach: serve, footwork and match play" in page
    assert "My first serve is finally steady." in page and "Thank you, Sam!" in page
    search = client.get("/coaches?q=valorant").get_data(as_text=True)
    assert "Lena Park" in search and "Diego Ruiz" in search and "Maria Santos" not in search

    with app.test_request_context():
        for slug in ("northside", "pixel-academy", "harbour-endurance"):
            org = org_by_slug(slug)
            tenancy.activate(org.id)
            assert org.listed_publicly and reviews.check_ratings(org.id) == [], slug

    # Again (``make run`` runs it with --if-empty every time): nothing new.
    assert runner.invoke(args=["seed-demo", "--if-empty"]).exit_code == 0
    assert owner_db.execute("SELECT count(*) FROM directory_listings").fetchone()[0] == 8
    assert owner_db.execute("SELECT count(*) FROM organizations").fetchone()[0] == 3
