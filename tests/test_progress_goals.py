"""Goals: the on-track / at-risk rule (pure), metric values that are not numbers, milestones that complete and
un-complete (with their timeline entries), done / abandoned set by people, who sees what (the athlete and the
organization's staff; a second organization nothing), and a fixed number of statements per page."""
from __future__ import annotations

import re
import uuid
from datetime import date, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select

from coach import clock
from coach.extensions import db
from coach.progress import goals
from coach.progress.access import ProgressError
from coach.progress.models import Goal, GoalMilestone, GoalValue, TimelineEntry
from tests.conftest import Auth, csrf_from
from tests.progress_support import RiverWorld
from tests.factories import add_member, make_org, make_user
from tests.querycount import statements_for

UTC = timezone.utc
START = date(2027, 1, 1)


def goal_row(**kw) -> Goal:
    values = {"status": "active", "target_date": START + timedelta(days=100), "metric_unit": "kg",
              "metric_start": Decimal(100), "metric_target": Decimal(80), "direction": "down"}
    values.update(kw)
    return Goal(title="Cut", **values)


# --- the rule (pure) -------------------------------------------------------------------------------------

def test_a_trend_that_reaches_the_target_in_time_is_on_track():
    goal = goal_row()
    values = [(START + timedelta(days=10), Decimal(98)), (START + timedelta(days=20), Decimal(96))]
    # 0.2 kg a day from 100: 80 on day 100, the target date.
    assert goals.assess(goal, values, 0, 0, START + timedelta(days=20), START) == (goals.ON_TRACK, 20)


def test_a_trend_too_slow_for_the_target_date_is_at_risk():
    goal = goal_row()
    values = [(START + timedelta(days=10), Decimal("99.5")), (START + timedelta(days=30), Decimal(99))]
    label, percent = goals.assess(goal, values, 0, 0, START + timedelta(days=30), START)
    assert (label, percent) == (goals.AT_RISK, 5)


def test_a_trend_going_the_wrong_way_is_at_risk_even_without_a_date():
    goal = goal_row(target_date=None)
    values = [(START + timedelta(days=5), Decimal(101)), (START + timedelta(days=9), Decimal(102))]
    assert goals.assess(goal, values, 0, 0, START + timedelta(days=9), START)[0] == goals.AT_RISK
    better = [(START + timedelta(days=5), Decimal(99))]
    assert goals.assess(goal, better, 0, 0, START + timedelta(days=9), START)[0] == goals.ON_TRACK


def test_reached_target_passed_date_and_no_data():
    goal = goal_row()
    assert goals.assess(goal, [], 0, 0, START, START) == (goals.NO_DATA, 0)
    reached = [(START + timedelta(days=3), Decimal(79))]
    assert goals.assess(goal, reached, 0, 0, START + timedelta(days=3), START) == (goals.ON_TRACK, 100)
    late = [(START + timedelta(days=50), Decimal(85))]
    assert goals.assess(goal, late, 0, 0, START + timedelta(days=101), START)[0] == goals.AT_RISK
    assert goals.assess(goal_row(status="done"), [], 0, 0, START, START) == (goals.DONE, 100)
    assert goals.assess(goal_row(status="abandoned"), late, 0, 0, START, START)[0] == goals.ABANDONED


def test_without_a_metric_milestones_are_weighed_against_time():
    goal = goal_row(metric_unit=None, metric_start=None, metric_target=None, direction=None)
    halfway = START + timedelta(days=50)
    assert goals.assess(goal, [], 2, 4, halfway, START) == (goals.ON_TRACK, 50)
    assert goals.assess(goal, [], 1, 4, halfway, START) == (goals.ON_TRACK, 25)  # a quarter behind is allowed
    assert goals.assess(goal, [], 0, 4, halfway + timedelta(days=10), START) == (goals.AT_RISK, 0)
    assert goals.assess(goal, [], 3, 4, START + timedelta(days=101), START)[0] == goals.AT_RISK
    assert goals.assess(goal, [], 0, 0, halfway, START) == (goals.ON_TRACK, None)


@pytest.mark.parametrize("text", ["abc", "inf", "-Infinity", "NaN", "1e30", "12345678901", "", "1.2.3", "0x10"])
def test_values_that_are_not_numbers_are_refused_with_a_message(text):
    with pytest.raises(ProgressError) as refused:
        goals.parse_number(text)
    assert refused.value.status == 422
    assert re.search(r"must be a number|too large|is missing", str(refused.value))


def test_numbers_people_type_are_read():
    assert goals.parse_number("72,5") == Decimal("72.5")
    assert goals.parse_number(" -3 ") == Decimal(-3)
    assert goals.parse_number("9999999999.12345") == Decimal("9999999999.1235")
    assert goals.number_label(Decimal("70.0000")) == "70"


# --- the world -------------------------------------------------------------------------------------------

class World(RiverWorld):
    def __init__(self, app):
        super().__init__(app, ben_tz=None)

    def post(self, member, path, data=None, page=None, htmx=False):
        client = self.browser(member)
        token = csrf_from(client.get(self.url(page or path)).get_data(as_text=True))
        response = client.post(self.url(path), data={"csrf_token": token, **(data or {})},
                               headers={"HX-Request": "true"} if htmx else {})
        self.act()
        return response

    def goal(self, athlete, actor=None, **values):
        self.act()
        made = goals.create_goal(athlete, actor or athlete, {"title": "Serve", **values})
        db.session.commit()
        return made


@pytest.fixture()
def world(app, ctx):
    return World(app)


def test_athlete_sets_a_measurable_goal_and_logs_values(world):
    target = (goals.local_today(world.ana) + timedelta(days=60)).isoformat()
    answer = world.post(world.ana, f"/athletes/{world.ana.id}/goals/new",
                        {"title": "5 km under 25 min", "target_date": target, "metric_unit": "min",
                         "metric_start": "28", "metric_target": "25"})
    assert answer.status_code == 303
    goal = db.session.scalar(select(Goal).where(Goal.title == "5 km under 25 min"))
    assert goal.direction == "down" and goal.created_by_membership_id == world.ana.id
    for text in ("abc", "NaN", "inf", "1e300"):
        refused = world.post(world.ana, f"/goals/{goal.id}/values", {"value": text}, page=f"/goals/{goal.id}")
        assert refused.status_code == 422
        assert re.search(r"must be a number|too large", refused.get_data(as_text=True))
    future = (goals.local_today(world.ana) + timedelta(days=2)).isoformat()
    refused = world.post(world.ana, f"/goals/{goal.id}/values", {"value": "27", "logged_on": future},
                         page=f"/goals/{goal.id}")
    assert refused.status_code == 422 and "has not come yet" in refused.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.scalars(select(GoalValue)).all() == []
    assert world.post(world.ana, f"/goals/{goal.id}/values", {"value": "27,5"},
                      page=f"/goals/{goal.id}").status_code == 303
    page = world.browser(world.ana).get(world.url(f"/goals/{goal.id}")).get_data(as_text=True)
    assert "27.5" in page and 'class="chart-svg"' in page and " style=" not in page
    assert "16% of the way" in page


def test_staff_set_a_goal_for_an_athlete(world):
    answer = world.post(world.coach, f"/athletes/{world.ana.id}/goals/new", {"title": "Read the game"})
    assert answer.status_code == 303
    goal = db.session.scalar(select(Goal).where(Goal.title == "Read the game"))
    assert goal.athlete_membership_id == world.ana.id and goal.created_by_membership_id == world.coach.id
    assert not goal.measurable and goal.direction is None
    mine = world.browser(world.ana).get(world.url("/goals")).get_data(as_text=True)
    assert "Read the game" in mine and "On track" in mine


def test_direction_and_metric_are_validated(world):
    for values, message in [({"metric_unit": "kg", "metric_start": "80"}, "unit, a start value and a target"),
                            ({"metric_unit": "kg", "metric_start": "80", "metric_target": "80"}, "must differ"),
                            ({"metric_unit": "kg", "metric_start": "x", "metric_target": "80"}, "must be a number"),
                            ({"metric_unit": "kg", "metric_start": "70", "metric_target": "80", "direction": "down"},
                             "goes up, not down"),
                            ({"target_date": "2001-01-01"}, "already passed"), ({"title": " "}, "title")]:
        with pytest.raises(ProgressError, match=message):
            goals.create_goal(world.ana, world.ana, {"title": "Weight", **values})
        db.session.rollback()


def test_milestones_complete_and_uncomplete_with_timeline_entries(world):
    goal = world.goal(world.ana, world.coach)
    assert world.post(world.coach, f"/goals/{goal.id}/milestones", {"title": "Toss drill"},
                      page=f"/goals/{goal.id}").status_code == 303
    milestone = db.session.scalar(select(GoalMilestone))
    answer = world.post(world.ana, f"/goals/{goal.id}/milestones/{milestone.id}", {"done": "1"},
                        page=f"/goals/{goal.id}", htmx=True)
    assert answer.status_code == 200 and 'id="milestones"' in answer.get_data(as_text=True)
    assert "1 of 1 done" in answer.get_data(as_text=True)
    entries = db.session.scalars(select(TimelineEntry).where(TimelineEntry.kind == "milestone")).all()
    assert [e.title for e in entries] == ["Milestone reached: Toss drill"]
    assert world.post(world.ana, f"/goals/{goal.id}/milestones/{milestone.id}", {"done": "0"},
                      page=f"/goals/{goal.id}").status_code == 303
    db.session.expire_all()
    assert db.session.get(GoalMilestone, milestone.id).completed_at is None
    assert db.session.scalars(select(TimelineEntry).where(TimelineEntry.kind == "milestone")).all() == []
    # Done, then re-opened: the goal's entry comes and goes.
    assert world.post(world.ana, f"/goals/{goal.id}/status", {"status": "done"}, page=f"/goals/{goal.id}")\
        .status_code == 303
    assert [e.title for e in db.session.scalars(select(TimelineEntry).where(TimelineEntry.kind == "goal"))] == \
        ["Goal reached: Serve"]
    assert world.post(world.ana, f"/goals/{goal.id}/status", {"status": "active"}, page=f"/goals/{goal.id}")\
        .status_code == 303
    db.session.expire_all()
    assert db.session.get(Goal, goal.id).completed_at is None
    assert db.session.scalars(select(TimelineEntry).where(TimelineEntry.kind == "goal")).all() == []
    assert world.post(world.ana, f"/goals/{goal.id}/status", {"status": "won"}, page=f"/goals/{goal.id}")\
        .status_code == 400


def test_only_the_athlete_and_staff_see_a_goal(world):
    goal = world.goal(world.ana)
    coach_view = world.browser(world.coach).get(world.url(f"/goals/{goal.id}"))
    assert coach_view.status_code == 200 and "Set by Ana Alves" in coach_view.get_data(as_text=True)
    assert world.browser(world.ben).get(world.url(f"/goals/{goal.id}")).status_code == 404
    assert world.browser(world.ben).get(world.url(f"/athletes/{world.ana.id}/goals")).status_code == 404
    assert world.browser(world.ben).get(world.url(f"/athletes/{world.ana.id}/goals/new")).status_code == 404
    assert world.browser(world.ana).get(world.url(f"/goals/{uuid.uuid4()}")).status_code == 404
    assert world.browser(world.ana).get(world.url("/goals/not-an-id")).status_code == 404
    scheduler = add_member(world.org, make_user("sol@example.com", "Sol Scheduler"), "scheduler")
    for path in (f"/goals/{goal.id}", f"/athletes/{world.ana.id}/goals", "/goals", "/habits", "/readiness"):
        assert world.browser(scheduler).get(world.url(path)).status_code == 403
    zed = make_user("zed@example.com", "Zed Stranger")
    make_org(zed, slug="hill", name="Hill Club")
    world.act()
    client = world.app.test_client()
    assert Auth(client).login("zed@example.com").status_code == 303
    for path in (f"/goals/{goal.id}", f"/athletes/{world.ana.id}/goals"):
        assert client.get(f"/o/hill/progress{path}").status_code == 404
        assert client.get(f"/o/river/progress{path}").status_code == 404
    token = Auth(client).csrf("/profile")
    assert client.post(f"/o/hill/progress/goals/{goal.id}/values", data={"csrf_token": token, "value": "1"})\
        .status_code == 404
    assert client.post(f"/o/hill/progress/goals/{goal.id}/status", data={"csrf_token": token, "status": "done"})\
        .status_code == 404
    world.act()
    db.session.expire_all()
    assert db.session.get(Goal, goal.id).status == "active"


def test_at_risk_for_counts_per_athlete(world, monkeypatch):
    goal = world.goal(world.ana, metric_unit="kg", metric_start="100", metric_target="80",
                      target_date=(goals.local_today(world.ana) + timedelta(days=20)).isoformat())
    world.goal(world.ben)
    later = clock.now() + timedelta(days=10)
    db.session.add(GoalValue(tenant_id=world.org.id, goal_id=goal.id, value=Decimal("99.5"),
                             logged_on=goals.local_today(world.ana) + timedelta(days=10)))
    db.session.commit()
    monkeypatch.setattr(clock, "now", lambda: later)
    assert goals.at_risk_for(world.org.id, [world.ana.id, world.ben.id]) == {world.ana.id: 1}
    [view] = goals.summary(world.ana)
    assert view.status_label == goals.AT_RISK and view.series and view.latest_label == "99.5"


def test_goal_pages_are_a_fixed_number_of_statements(world):
    def grow():
        made = world.goal(world.ana, metric_unit="kg", metric_start="100", metric_target="80")
        for n in range(3):
            db.session.add(GoalValue(tenant_id=world.org.id, goal_id=made.id, value=Decimal(99 - n),
                                     logged_on=goals.local_today(world.ana) - timedelta(days=n)))
            db.session.add(GoalMilestone(tenant_id=world.org.id, goal_id=made.id, title=f"Step {n}", position=n))
        db.session.commit()
        return made

    counts = []
    for _ in range(2):
        made = grow()
        grow()
        browser = world.browser(world.ana)
        browser.get(world.url("/goals"))
        counts.append((statements_for(world.app, browser, world.url("/goals")),
                       statements_for(world.app, world.browser(world.coach), world.url(f"/goals/{made.id}"))))
        world.act()
    assert counts[0] == counts[1]
    assert counts[0] == (6, 7)



HOSTILE = ["\x00", "9" * 31, "-1e999", "sNaN", "2027-02-30", "99:99", "x" * 20_000, "‮1", "", "0001-01-01"]


def test_hostile_input_is_refused_never_a_server_error(world):
    goal = world.goal(world.ana, metric_unit="kg", metric_start="100", metric_target="80")
    milestone = goals.add_milestone(goal, world.ana, world.ana, "Step")
    db.session.commit()
    forms = {
        f"/athletes/{world.ana.id}/goals/new": {"title": "T", "description": "", "target_date": "", "metric_unit": "kg",
                                                "metric_start": "1", "metric_target": "2"},
        f"/goals/{goal.id}/edit": {"title": "T", "target_date": "", "metric_unit": "kg", "metric_start": "1",
                                   "metric_target": "2"},
        f"/goals/{goal.id}/values": {"value": "1", "logged_on": "", "note": ""},
        f"/goals/{goal.id}/milestones": {"title": "M", "due_date": ""},
        f"/goals/{goal.id}/milestones/{milestone.id}": {"done": "1"},
        f"/goals/{goal.id}/status": {"status": "active"},
    }
    client = world.browser(world.ana)
    token = csrf_from(client.get(world.url(f"/goals/{goal.id}")).get_data(as_text=True))
    for path, plausible in forms.items():
        for name in plausible:
            for value in HOSTILE:
                response = client.post(world.url(path), data={"csrf_token": token, **plausible, name: value},
                                       headers={"HX-Request": "true"} if len(value) % 2 else {})
                assert response.status_code < 500, (path, name, value[:20], response.status_code)
    world.act()


def test_a_goal_outlives_the_coach_who_set_it(world, owner_db):
    goal = world.goal(world.ana, world.coach)
    assert "Set by Maria Santos" in world.browser(world.ana).get(world.url(f"/goals/{goal.id}")).get_data(as_text=True)
    owner_db.execute("SELECT set_config('app.tenant_id', %s, false)", [str(world.org.id)])
    assert owner_db.execute("DELETE FROM memberships WHERE id = %s", (world.coach.id,)).rowcount == 1
    page = world.browser(world.ana).get(world.url(f"/goals/{goal.id}"))
    assert page.status_code == 200 and "Set by Former member" in page.get_data(as_text=True)


def test_a_goal_whose_metric_was_removed_keeps_its_values_and_refuses_new_ones(world):
    goal = world.goal(world.ana, metric_unit="min", metric_start="28", metric_target="25")
    assert world.post(world.ana, f"/goals/{goal.id}/values", {"value": "27"},
                      page=f"/goals/{goal.id}").status_code == 303
    goals.update_goal(db.session.get(Goal, goal.id), world.ana, world.ana,
                      {"title": "Serve", "metric_unit": "", "metric_start": "", "metric_target": ""})
    db.session.commit()
    assert world.browser(world.ana).get(world.url(f"/goals/{goal.id}")).status_code == 200
    refused = world.post(world.ana, f"/goals/{goal.id}/values", {"value": "26"}, page=f"/goals/{goal.id}")
    assert refused.status_code == 422 and "has no metric" in refused.get_data(as_text=True)
