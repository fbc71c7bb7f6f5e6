"""The landing page's facet counts come from totals the projection's triggers keep (migration 0023), and they
are always what counting every listing gives: after the projection writes, changes and removes listings, after a
seed of many organizations, after the table is emptied. Nobody but the triggers may write them."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import text
from werkzeug.datastructures import MultiDict

from bench.directory_seed import seed_listings
from coach import clock, tenancy
from coach.directory import projection, search
from coach.extensions import db
from tests.directory_support import DirectoryWorld


def _counted(now) -> dict:
    """Every facet count and the total as counting all listings gives them (the statement used before 0023)."""
    statement = search.facets_statement(search.SearchParams(), search.TextQuery(), now)
    rows = db.session.execute(text(statement.sql), statement.binds)
    return {(f, str(v)): int(n) for f, v, n in rows if n}


def _kept(now) -> dict:
    statement = search.totals_statement(now)
    return {(f, str(v)): int(n) for f, v, n in db.session.execute(text(statement.sql), statement.binds) if n}


def _landing():
    params = search.parse_params(MultiDict())
    return next(st for st in search.statements(params) if st.name == "facets")


def test_the_landing_page_reads_the_kept_totals_and_they_match_a_full_count(ctx):
    now = clock.now()
    statement = search.totals_statement(now)
    assert list(db.session.execute(text(statement.sql), statement.binds)) == [("total", "", 0), ("week", "1", 0)]
    world = DirectoryWorld()
    world.publish()
    counts = _kept(now)
    assert counts == _counted(now)
    # River's two coaches are listed (Hill is not): Valorant and Tennis once each, one verified, one online.
    assert counts[("total", "")] == 2 and counts[("discipline", "valorant")] == 1
    assert counts[("verified", "1")] == 1 and counts[("mode", "online")] == 1 and counts[("lang", "de")] == 1
    assert "directory_facet_totals" in _landing().sql and "unnest" not in _landing().sql
    results = search.search(search.parse_params(MultiDict()))
    assert results.total == 2
    assert [(v.value, v.count) for v in results.facets["discipline"]] == [("tennis", 1), ("valorant", 1)]
    assert [(v.value, v.count) for v in results.facets["week"]] == [("1", 2)]  # both open every day

    # A profile changed (Jon now also speaks English and coaches online): his row is updated, the totals follow.
    tenancy.activate(world.org.id)
    world.jon_profile.languages = ["de", "en"]
    world.jon_profile.online = True
    projection.refresh_org(world.org.id)
    db.session.commit()
    counts = _kept(now)
    assert counts == _counted(now)
    assert counts[("lang", "en")] == 2 and counts[("mode", "online")] == 2 and counts[("total", "")] == 2

    # Maria unlisted: her row goes, and every value only she had with it.
    world.maria_profile.listed = False
    projection.refresh_org(world.org.id)
    db.session.commit()
    counts = _kept(now)
    assert counts == _counted(now)
    assert ("discipline", "valorant") not in counts and ("verified", "1") not in counts
    assert counts[("total", "")] == 1

    # The organization stops listing: nothing is left to count.
    projection.remove_org(world.org.id)
    db.session.commit()
    assert _kept(now) == _counted(now) == {}


def test_many_organizations_written_at_once_then_changed_and_removed_keep_exact_totals(ctx, app, owner_db):
    conn = db.session.connection().connection.driver_connection
    seed_listings(conn, coaches=1_500, orgs=60, seed=30, prior_mean=app.config["DIRECTORY_RATING_PRIOR_MEAN"],
                  prior_weight=app.config["DIRECTORY_RATING_PRIOR_WEIGHT"])
    db.session.commit()
    now = clock.now()
    counts = _kept(now)
    assert counts[("total", "")] == 1_500 and counts == _counted(now)
    assert len([key for key in counts if key[0] == "discipline"]) > 20
    # Each organization's rows written as that organization (its policies insist), 120 statements in one
    # transaction: a change of arrays, flags, ratings and prices, and removals.
    db.session.execute(text("""
        DO $$
        DECLARE
            org uuid;
            changed uuid[] := ARRAY(SELECT id FROM directory_listings ORDER BY id LIMIT 300);
            gone uuid[] := ARRAY(SELECT id FROM directory_listings ORDER BY id DESC LIMIT 200);
        BEGIN
            FOR org IN SELECT DISTINCT organization_id FROM directory_listings LOOP
                PERFORM set_config('app.tenant_id', org::text, true);
                UPDATE directory_listings SET disciplines = disciplines || ARRAY['curling']::varchar[],
                       verified = NOT verified, rating_count = 0, price_band = NULL, online = NOT online
                WHERE organization_id = org AND id = ANY(changed);
                DELETE FROM directory_listings
                WHERE organization_id = org AND id = ANY(gone);
            END LOOP;
            PERFORM set_config('app.tenant_id', '', true);
        END $$"""))
    db.session.commit()
    counts = _kept(now)
    assert counts == _counted(now)
    assert counts[("total", "")] == 1_300 and counts[("discipline", "curling")] == 300
    # "Free this week" from the kept days and the two part days at its ends, at any time of day.
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    for at in (midnight, midnight + timedelta(microseconds=1), now + timedelta(days=2, hours=7)):
        assert _kept(at)[("week", "1")] == _counted(at)[("week", "1")] > 0, at
    # A week later "free this week" counts other listings: it is counted at read time, never kept.
    later = now + timedelta(days=40)
    assert ("week", "1") not in _kept(later) and _kept(later) == _counted(later)
    db.session.commit()  # the session's read locks would make TRUNCATE wait
    owner_db.execute("TRUNCATE directory_listings CASCADE")
    assert _kept(now) == {}


def test_only_the_triggers_write_the_totals(ctx, app_db):
    """The app's role (every organization's requests and jobs) may read the totals, never write them."""
    DirectoryWorld().publish()
    if True:
        conn = app_db
        assert conn.execute("SELECT listings FROM directory_facet_totals WHERE facet = 'total'").fetchone() == (2,)
        for statement in ("UPDATE directory_facet_totals SET listings = 99",
                          "INSERT INTO directory_facet_totals VALUES ('discipline', 'fake', 5)",
                          "DELETE FROM directory_facet_totals"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
            conn.rollback()
        assert conn.execute("SELECT listings FROM directory_facet_totals WHERE facet = 'total'").fetchone() == (2,)


def test_two_writers_of_listings_take_turns_before_locking_any_row(ctx, stack, job_runner):
    """A writer waits for the totals' turn before its statement locks a listing. Taken after the rows (as the first
    version did), this order deadlocked: the first writer updates Maria, the second locks Jon and waits for the
    turn, the first then updates Jon and waits for the second (seen in a fresh-clone run, a test's direct UPDATE
    against the projection's job)."""
    world = DirectoryWorld()
    with job_runner.paused():
        world.publish()
        job_runner.drain()
    river = str(world.org.id)
    rows = dict(db.session.execute(text("SELECT handle, id FROM directory_listings WHERE organization_id = :org"),
                                   {"org": world.org.id}).all())
    maria, jon = str(rows["maria-santos"]), str(rows["jon-berg"])
    db.session.commit()
    url = stack.database_url.replace("postgresql+psycopg://", "postgresql://")
    touch = "UPDATE directory_listings SET headline = headline || '.' WHERE organization_id = %s AND id = %s"
    second_done, failure = threading.Event(), []

    def second_writer():
        try:
            with psycopg.connect(url) as other:
                other.execute("SELECT set_config('app.tenant_id', %s, false)", (river,))
                other.execute(touch, (river, jon))  # waits for the first writer's turn
                other.commit()
        except psycopg.Error as exc:  # a deadlock would end up here or in the first writer
            failure.append(exc)
        finally:
            second_done.set()

    with psycopg.connect(url) as first:
        first.execute("SELECT set_config('app.tenant_id', %s, false)", (river,))
        first.execute(touch, (river, maria))  # the first writer's turn, held to its commit
        waiter = threading.Thread(target=second_writer)
        waiter.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until the second writer is waiting for the turn
            waiting = first.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").fetchone()[0]
            if waiting:
                break
            time.sleep(0.05)
        assert waiting, "the second writer never waited for its turn"
        first.execute(touch, (river, jon))  # would wait for the second writer's row lock if it held one
        first.commit()
    assert second_done.wait(10) and not failure, failure
    waiter.join()
    headlines = dict(db.session.execute(text("SELECT handle, headline FROM directory_listings")).all())
    assert headlines["jon-berg"].endswith("..") and headlines["maria-santos"].endswith(".")
