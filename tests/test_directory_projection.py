"""The public directory's projection: who is listed, with what, kept up to date by the outbox consumers, and
writable by each organization for its own rows only."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest
from sqlalchemy import select, text, update

from coach import clock, tenancy
from coach.booking import availability, lifecycle
from coach.directory import projection, projection_jobs
from coach.directory.models import CoachProfile, CoachRating, Listing, ListingWord
from coach.extensions import db
from coach.governance.settings import save_settings
from coach.orgs import service as orgs
from coach.orgs.models import ATHLETE
from coach.payments import catalog
from tests.directory_support import DirectoryWorld


@pytest.fixture()
def world(ctx):
    return DirectoryWorld()


def _listings() -> dict[str, Listing]:
    db.session.expire_all()
    return {row.handle: row for row in db.session.scalars(select(Listing))}


def _words(org) -> set[str]:
    return set(db.session.scalars(select(ListingWord.word).where(ListingWord.organization_id == org.id)))


def test_listed_coach_appears_with_what_they_published(world):
    w = world
    w.publish()
    rows = _listings()
    # Kim has no profile; Yara's club does not list: neither appears.
    assert set(rows) == {"maria-santos", "jon-berg"}
    maria = rows["maria-santos"]
    assert (maria.organization_id, maria.org_slug, maria.org_name, maria.display_name) == \
        (w.org.id, "river", "River Academy", "Maria Santos")
    assert maria.headline == "Valorant aim coach for ranked climbers"
    assert maria.excerpt == "Immortal player. I fix crosshair placement and aim routines."
    assert maria.disciplines == ["valorant"] and sorted(maria.skills) == ["aim", "controller"]
    assert maria.tags == ["vod review"] and maria.languages == ["en", "es"]
    assert maria.verified and maria.online and not maria.in_person and maria.timezone == "Europe/Berlin"
    assert (maria.currency, maria.price_min_minor, maria.price_max_minor, maria.price_band) == ("EUR", 4500, 4500, 2)
    assert maria.sessions_delivered == 1 and maria.rating_count == 0 and maria.rating_avg is None
    assert maria.rating_score == Decimal("3.800")  # no reviews: the prior
    assert maria.next_slot_at is not None and maria.next_slot_at > clock.now()
    jon = rows["jon-berg"]
    assert (jon.in_person, jon.location, jon.price_band, jon.verified) == (True, "Berlin", 3, False)
    # The weighted vector: name and headline (A), games and skills (B), tags and languages by name (C).
    ranked = dict(db.session.execute(text(
        "SELECT handle, ts_rank(search, websearch_to_tsquery('simple', 'spanish')) FROM directory_listings")).all())
    assert ranked["maria-santos"] > 0 and ranked["jon-berg"] == 0
    stemmed = db.session.scalar(text("SELECT handle FROM directory_listings WHERE search @@ "
                                     "websearch_to_tsquery('english', 'coaching ranks')"))
    assert stemmed == "maria-santos"
    assert {"valorant", "maria", "santos", "tennis", "serve", "review"} <= _words(w.org)
    assert not _words(w.hill)
    # The profile keeps the computed facts too.
    db.session.refresh(w.maria_profile)
    assert w.maria_profile.sessions_delivered == 1 and w.maria_profile.stats_at is not None
    assert projection.listing_at("river", "maria-santos").id == w.maria_profile.id
    assert projection.listing_at("hill", "yara-young") is None


def test_unlisted_club_never_appears_even_after_its_events(world, job_runner):
    w = world
    with job_runner.paused():
        tenancy.activate(w.hill.id)
        availability.add_rule(w.yara, 0, 0, 60, w.zed)
        w.yara_profile.headline = "Best Valorant aim coach"
        db.session.commit()
        projection.refresh_coach(w.hill.id, w.yara.id)
        projection.refresh_org(w.hill.id)
        db.session.commit()
        job_runner.drain()
    assert "yara-young" not in _listings()
    assert not _words(w.hill)
    # Her club's members still see her computed facts on her profile.
    tenancy.activate(w.hill.id)
    db.session.refresh(w.yara_profile)
    assert w.yara_profile.stats_at is not None and w.yara_profile.sessions_delivered == 0


def test_a_new_organization_is_not_listed_and_a_new_profile_is_listed_once_it_is(world):
    """Listing is the organization's choice, off when it is made (Hill Club was made by the ordinary service and
    never touched); a coach's profile is in by default and each coach may opt out."""
    w = world
    assert w.hill.listed_publicly is False
    assert db.session.execute(text(
        "SELECT column_default FROM information_schema.columns "
        "WHERE table_name = 'organizations' AND column_name = 'listed_publicly'")).scalar() == "false"
    tenancy.activate(w.hill.id)
    assert w.yara_profile.listed is True  # her own switch is on; her club's keeps her out


def test_coach_opt_out_and_role_change_remove_the_listing(world, job_runner):
    w = world
    w.publish()
    with job_runner.paused():
        tenancy.activate(w.org.id)
        w.jon_profile.listed = False
        db.session.commit()
        projection.refresh_coach(w.org.id, w.jon.id)
        orgs.change_role(w.org, w.maria, ATHLETE, w.admin.user)
        db.session.commit()
        job_runner.drain()
    assert _listings() == {}
    assert not _words(w.org)


def test_unlisting_the_org_removes_every_row_at_once_and_listing_brings_them_back(world, job_runner):
    w = world
    w.publish()
    with job_runner.paused():
        tenancy.activate(w.org.id)
        save_settings(w.org, {"listed_publicly": False}, w.admin)
        # Same transaction: gone before any consumer runs.
        assert _listings() == {}
        db.session.commit()
        assert _listings() == {}
        save_settings(w.org, {"listed_publicly": True}, w.admin)
        db.session.commit()
        assert _listings() == {}  # the consumers bring them back
        job_runner.drain()
    assert set(_listings()) == {"maria-santos", "jon-berg"}


def test_renaming_the_org_renames_its_listings(world, job_runner):
    w = world
    w.publish()
    with job_runner.paused():
        tenancy.activate(w.org.id)
        save_settings(w.org, {"name": "River Esports Academy"}, w.admin)
        db.session.commit()
        job_runner.drain()
    assert {row.org_name for row in _listings().values()} == {"River Esports Academy"}


def test_availability_and_bookings_move_the_next_slot(world, job_runner):
    w = world
    w.publish()
    first = _listings()["maria-santos"].next_slot_at
    now = clock.now()
    with job_runner.paused():
        tenancy.activate(w.org.id)
        availability.add_time_off(w.maria, now, now + timedelta(days=5), "Tournament", w.maria)
        db.session.commit()
        job_runner.drain()
    later = _listings()["maria-santos"].next_slot_at
    assert later > first and later >= now + timedelta(days=5)
    with job_runner.paused():
        tenancy.activate(w.org.id)
        availability.set_offering_active(w.aim, False, w.maria)
        db.session.commit()
        job_runner.drain()
    maria = _listings()["maria-santos"]
    assert maria.next_slot_at is None and maria.price_min_minor is None and maria.price_band is None


def test_a_booking_of_the_next_slot_moves_it_and_cancelling_gives_it_back(world, job_runner):
    w = world
    w.publish()
    first = _listings()["maria-santos"].next_slot_at
    with job_runner.paused():
        tenancy.activate(w.org.id)
        booking = lifecycle.request_booking(w.aim, w.ben, first, "", w.ben)
        db.session.commit()
        job_runner.drain()
        assert _listings()["maria-santos"].next_slot_at > first
        lifecycle.transition(booking, "cancel", w.ben)
        db.session.commit()
        job_runner.drain()
    assert _listings()["maria-santos"].next_slot_at == first


def test_rating_fields_follow_coach_ratings(world, job_runner):
    w = world
    w.publish()
    tenancy.activate(w.org.id)
    db.session.add(CoachRating(tenant_id=w.org.id, coach_membership_id=w.maria.id, review_count=2, star_sum=9,
                               stars_4=1, stars_5=1))
    db.session.commit()
    projection.refresh_coach(w.org.id, w.maria.id)
    db.session.commit()
    maria = _listings()["maria-santos"]
    assert maria.rating_count == 2 and maria.rating_avg == Decimal("4.50")
    assert maria.rating_score == projection.bayesian(2, 9) == Decimal("4.000")  # (5 × 3.8 + 9) / 7


def test_rebuild_all_reproduces_the_rows(world):
    w = world
    w.publish()
    columns = [c for c in Listing.__table__.columns.keys() if c != "refreshed_at"]
    before = db.session.execute(text(f"SELECT {', '.join(columns)} FROM directory_listings ORDER BY id")).all()
    words = db.session.execute(text("SELECT * FROM directory_words ORDER BY 1, 2")).all()
    tenancy.activate(w.org.id)
    projection.remove_org(w.org.id)
    db.session.commit()
    assert _listings() == {}
    done = projection.rebuild_all()
    assert (done.organizations, done.listings) == (2, 2)
    after = db.session.execute(text(f"SELECT {', '.join(columns)} FROM directory_listings ORDER BY id")).all()
    assert after == before
    assert db.session.execute(text("SELECT * FROM directory_words ORDER BY 1, 2")).all() == words


def test_an_org_writes_only_its_own_rows_and_anyone_reads_them(world, stack):
    w = world
    w.publish()
    river, hill = str(w.org.id), str(w.hill.id)
    with psycopg.connect(stack.database_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        # No organization set: every listing is readable (the public directory reads this way).
        assert conn.execute("SELECT count(*) FROM directory_listings").fetchone()[0] == 2
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (hill,))
        # Hill may not touch River's rows: updates and deletes find nothing, an insert is refused.
        assert conn.execute("UPDATE directory_listings SET headline = 'hacked' WHERE organization_id = %s",
                            (river,)).rowcount == 0
        assert conn.execute("DELETE FROM directory_listings WHERE organization_id = %s", (river,)).rowcount == 0
        assert conn.execute("DELETE FROM directory_words WHERE organization_id = %s", (river,)).rowcount == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO directory_listings (id, organization_id, coach_membership_id, org_slug, org_name, "
                "handle, display_name, search) VALUES (gen_random_uuid(), %s, gen_random_uuid(), 'river', 'x', "
                "'fake', 'Fake', ''::tsvector)", (river,))
        conn.rollback()
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (hill,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO directory_words (organization_id, word) VALUES (%s, 'zzz')", (river,))
        conn.rollback()
        # River itself may change its rows (the projection's own writes).
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (river,))
        assert conn.execute("UPDATE directory_listings SET headline = headline WHERE organization_id = %s",
                            (river,)).rowcount == 2
        conn.rollback()
    assert _listings()["maria-santos"].headline == "Valorant aim coach for ranked climbers"


def test_a_pack_lowers_the_listed_price_once_its_event_is_consumed(world, job_runner):
    w = world
    w.publish()
    with job_runner.paused():
        tenancy.activate(w.org.id)
        catalog.save_product(w.maria, {"kind": "pack", "title": "Ten aim reviews", "price": "250", "credits": "10",
                                       "validity_days": "120", "offering_ids": [str(w.aim.id)]}, w.maria)
        db.session.commit()
        job_runner.drain()
    maria = _listings()["maria-santos"]
    assert (maria.price_min_minor, maria.price_max_minor, maria.price_band) == (2500, 4500, 1)


def test_the_sweep_refreshes_listings_whose_next_slot_passed(world):
    w = world
    w.publish()
    tenancy.activate(w.org.id)
    past = clock.now() - timedelta(hours=3)
    db.session.execute(update(Listing).where(Listing.organization_id == w.org.id).values(next_slot_at=past))
    db.session.execute(update(Listing).where(Listing.handle == "jon-berg").values(next_slot_at=None))
    db.session.commit()
    assert projection_jobs.sweep_next_slots() == 2
    assert all(row.next_slot_at > clock.now() for row in _listings().values())
    assert projection_jobs.sweep_next_slots() == 0  # nothing stale any more


def test_flask_directory_rebuild_prints_what_it_did(world, app):
    w = world
    w.publish()
    tenancy.activate(w.org.id)
    projection.remove_org(w.org.id)
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["directory", "rebuild"])
    assert result.exit_code == 0, result.output
    assert "2 listed coaches in 2 organizations" in result.output
    assert set(_listings()) == {"maria-santos", "jon-berg"}


def test_a_removed_coach_leaves_the_directory(world, job_runner):
    w = world
    w.publish()
    with job_runner.paused():
        tenancy.activate(w.org.id)
        db.session.delete(w.jon_profile)  # the profile goes with the coach (it names the membership)
        db.session.flush()
        orgs.remove_member(w.org, w.jon, w.admin.user)
        db.session.commit()
        job_runner.drain()
    assert set(_listings()) == {"maria-santos"}
    assert "tennis" not in _words(w.org) and "valorant" in _words(w.org)


def test_a_refresh_that_changes_nothing_keeps_every_listings_version(world):
    """A listing's ``refreshed_at`` is its version (the public search's kept answers and cards are checked
    against it): a refresh writes only the coaches whose listing differs."""
    w = world
    w.publish()
    stamped = {handle: row.refreshed_at for handle, row in _listings().items()}
    assert set(stamped) == {"maria-santos", "jon-berg"}
    tenancy.activate(w.org.id)
    assert projection.refresh_org(w.org.id) == 2
    db.session.commit()  # a transaction of its own: a write would stamp a later now()
    assert {handle: row.refreshed_at for handle, row in _listings().items()} == stamped
    assert "crosshair" not in _words(w.org)
    tenancy.activate(w.org.id)
    db.session.execute(update(CoachProfile).where(CoachProfile.tenant_id == w.org.id,
                                                  CoachProfile.id == w.maria_profile.id)
                       .values(headline="Valorant aim and crosshair placement"))
    projection.refresh_org(w.org.id)
    db.session.commit()
    rows = _listings()
    assert rows["maria-santos"].headline == "Valorant aim and crosshair placement"
    assert rows["maria-santos"].refreshed_at > stamped["maria-santos"]
    assert rows["jon-berg"].refreshed_at == stamped["jon-berg"]
    assert "crosshair" in _words(w.org)  # the organization's words follow a change
