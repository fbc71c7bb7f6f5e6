"""Readiness: the score formula, the flag rule (pure, and in one statement for many athletes in their own
zones), one check-in per local day (a second replaces the first), a timeline entry with the note for staff, bad
input refused with a message, another organization sees nothing, and a fixed number of statements."""
from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import event, select

from coach import clock
from coach.extensions import db
from coach.progress import readiness
from coach.progress.access import ProgressError
from coach.progress.models import ReadinessCheckin, TimelineEntry
from tests.conftest import Auth, csrf_from
from tests.progress_support import RiverWorld
from tests.factories import make_org, make_user
from tests.querycount import statements_for

UTC = timezone.utc
GOOD = {"sleep_hours": "8", "energy": "4", "mood": "4", "stress": "2", "soreness": "2", "note": ""}


def test_score_formula():
    assert readiness.score(Decimal(8), 5, 5, 1, 1) == Decimal("5.00")
    assert readiness.score(Decimal(4), 1, 1, 5, 5) == Decimal("1.00")
    assert readiness.score(Decimal(0), 1, 1, 5, 5) == Decimal("1.00")
    assert readiness.score(Decimal(6), 3, 3, 3, 3) == Decimal("3.00")
    assert readiness.score(Decimal("7.5"), 4, 4, 2, 2) == Decimal("4.10")  # (4.5 + 4 + 4 + 4 + 4) / 5
    assert readiness.score(Decimal(12), 4, 4, 2, 2) == Decimal("4.20")  # sleep counts at most 5


def test_flag_rule():
    steady = [4.0] * 10
    n, mean, sd = readiness.baseline(steady)
    assert (n, mean, sd) == (10, 4.0, 0.0)
    assert readiness.evaluate(3.2, n, mean, sd)  # 0.8 below: more than the 0.75 floor
    assert not readiness.evaluate(3.3, n, mean, sd)  # 0.7 below: not enough
    swinging = [2.0, 5.0] * 5  # mean 3.5, sd 1.5: 1.5 × sd = 2.25 is the bar
    n, mean, sd = readiness.baseline(swinging)
    assert not readiness.evaluate(1.5, n, mean, sd) and readiness.evaluate(1.2, n, mean, sd)
    assert not readiness.evaluate(1.0, *readiness.baseline([4.0] * 6))  # fewer than 7 days: no baseline


class World(RiverWorld):
    def __init__(self, app):
        super().__init__(app, ben_tz="America/Los_Angeles")

    def check_in(self, data, htmx=False):
        client = self.browser(self.ana)
        token = csrf_from(client.get(self.url("/readiness")).get_data(as_text=True))
        response = client.post(self.url("/readiness"), data={"csrf_token": token, **data},
                               headers={"HX-Request": "true"} if htmx else {})
        self.act()
        return response

    def history(self, athlete, scores, today):
        """Check-ins on the days before ``today`` (the last score is yesterday's)."""
        for n, value in enumerate(reversed(scores), start=1):
            db.session.add(ReadinessCheckin(tenant_id=self.org.id, athlete_membership_id=athlete.id,
                                            on_date=today - timedelta(days=n), sleep_hours=Decimal(8), energy=4,
                                            mood=4, stress=2, soreness=2, score=Decimal(str(value))))
        db.session.commit()


@pytest.fixture()
def world(app, ctx):
    return World(app)


def rows():
    db.session.expire_all()
    return db.session.scalars(select(ReadinessCheckin)).all()


def test_one_check_in_a_day_a_second_replaces_it_with_its_timeline_entry(world):
    answer = world.check_in({**GOOD, "note": "Knee a bit stiff"})
    assert answer.status_code == 303
    [row] = rows()
    assert row.on_date == readiness.local_today(world.ana) and row.score == Decimal("4.20")
    answer = world.check_in({**GOOD, "sleep_hours": "5", "energy": "2", "note": "Slept badly"}, htmx=True)
    assert answer.status_code == 200 and "Done today" in answer.get_data(as_text=True)
    [row] = rows()
    assert row.sleep_hours == Decimal("5.0") and row.energy == 2 and row.note == "Slept badly"
    [entry] = db.session.scalars(select(TimelineEntry).where(TimelineEntry.kind == "readiness")).all()
    assert entry.title == f"Readiness {row.score:.1f} / 5" and entry.detail == "Slept badly"
    assert not entry.coaches_only
    coach_page = world.browser(world.coach).get(world.url(f"/athletes/{world.ana.id}/readiness"))
    assert "Slept badly" in coach_page.get_data(as_text=True)


@pytest.mark.parametrize("change, message", [
    ({"sleep_hours": "25"}, "between 0 and 24"), ({"sleep_hours": "-1"}, "between 0 and 24"),
    ({"sleep_hours": "abc"}, "number of hours"), ({"sleep_hours": "NaN"}, "between 0 and 24"),
    ({"sleep_hours": ""}, "how many hours"), ({"energy": "6"}, "energy from 1 to 5"),
    ({"mood": "x"}, "mood from 1 to 5"), ({"soreness": "0"}, "soreness from 1 to 5"),
    ({"note": "x" * 1001}, "1,000 characters"),
])
def test_bad_input_is_refused_with_a_message(world, change, message):
    answer = world.check_in({**GOOD, **change})
    assert answer.status_code == 422 and message in answer.get_data(as_text=True)
    assert rows() == []


def test_only_the_athlete_checks_in(world):
    with pytest.raises(ProgressError) as refused:
        readiness.check_in(world.ana, world.coach, GOOD)
    assert refused.value.status == 403
    client = world.browser(world.coach)
    token = csrf_from(client.get(world.url(f"/athletes/{world.ana.id}/habits/new")).get_data(as_text=True))
    assert client.post(world.url("/readiness"), data={"csrf_token": token, **GOOD}).status_code == 403
    world.act()
    assert rows() == []


def test_flags_in_one_statement_each_athlete_in_their_zone(world, monkeypatch):
    # 06:00 UTC: the 10th in Berlin, still the 9th in Los Angeles.
    now = datetime(2027, 5, 10, 6, 0, tzinfo=UTC)
    monkeypatch.setattr(clock, "now", lambda: now)
    world.history(world.ana, [4.0, 4.2, 3.8, 4.0, 4.1, 3.9, 4.0], date(2027, 5, 10))
    world.history(world.ben, [4.0, 4.2, 3.8, 4.0, 4.1, 3.9, 4.0], date(2027, 5, 9))
    readiness.check_in(world.ana, world.ana, {**GOOD, "sleep_hours": "5", "energy": "2", "mood": "3"})  # 3.0
    readiness.check_in(world.ben, world.ben, GOOD)  # 4.2
    db.session.commit()
    assert {r.athlete_membership_id: r.on_date for r in rows()} == \
        {world.ana.id: date(2027, 5, 10), world.ben.id: date(2027, 5, 9)}
    seen = []
    world.act()
    db.session.scalar(select(ReadinessCheckin.id).limit(1))  # the transaction (and its tenant settings) begins
    ids = [world.ana.id, world.ben.id, world.coach.id]
    engine = db.engine
    me = threading.get_ident()

    def count(conn, cursor, statement, *args):
        if threading.get_ident() == me:  # not the background relay's outbox claims on the same engine
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        flags = readiness.flags(world.org.id, ids)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(seen) == 1, seen
    assert list(flags) == [world.ana.id]
    flag = flags[world.ana.id]
    assert flag.score == 3.0 and flag.baseline == 4.0 and flag.days == 7
    assert "below their 14-day baseline" in flag.label
    assert readiness.flag(world.ben) is None
    page = world.browser(world.coach).get(world.url(f"/athletes/{world.ana.id}/readiness")).get_data(as_text=True)
    assert "Flag" in page and 'class="chart-svg"' in page and 'class="chart-band"' in page and " style=" not in page
    assert [d for d, _ in readiness.trend(world.ana, days=28)][-1] == date(2027, 5, 10)


def test_another_organization_sees_nothing(world):
    world.check_in({**GOOD, "note": "private"})
    zed = make_user("zed@example.com", "Zed Stranger")
    make_org(zed, slug="hill", name="Hill Club")
    world.act()
    client = world.app.test_client()
    assert Auth(client).login("zed@example.com").status_code == 303
    assert client.get(f"/o/hill/progress/athletes/{world.ana.id}/readiness").status_code == 404
    assert client.get(f"/o/river/progress/athletes/{world.ana.id}/readiness").status_code == 404
    assert "private" not in client.get("/o/hill/progress/readiness").get_data(as_text=True)
    world.act()
    assert readiness.flags(world.org.id, [world.ana.id]) == {}


def test_readiness_page_is_a_fixed_number_of_statements(world):
    today = readiness.local_today(world.ana)
    counts = []
    for size in (10, 20):
        db.session.execute(ReadinessCheckin.__table__.delete())
        world.history(world.ana, [3.5] * size, today)
        counts.append((statements_for(world.app, world.browser(world.ana), world.url("/readiness")),
                       statements_for(world.app, world.browser(world.coach),
                                      world.url(f"/athletes/{world.ana.id}/readiness"))))
        world.act()
    assert counts[0] == counts[1]
    assert counts[0] == (6, 7)
