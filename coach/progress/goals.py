"""Goals of an athlete: a target date, an optional measurable metric with logged values, milestones, and a
status people set (done, abandoned) or the app computes (on track, at risk).

Who: the athlete sets their own goals; the organization's coaches and admins set and change any athlete's.
Nobody else sees them (:func:`coach.progress.access.load_athlete` is the wall in front of every page).

**The "on track" / "at risk" rule** (:func:`assess`, pure):

* done or abandoned: what people said.
* a measurable goal without a logged value: "No data yet".
* a measurable goal whose latest value reached the target (in its direction): "On track".
* a measurable goal with a target date: a least-squares line through the points (the start value on the day
  the goal was made, then every logged value) projected to the target date; "On track" when the projection
  reaches the target, "At risk" otherwise (and when the target date has passed without reaching it).
  Without a target date: "At risk" when the line goes the wrong way, "On track" otherwise.
* without a metric: the share of milestones done against the share of time elapsed between the goal's creation
  and its target date; "At risk" when it lags by more than a quarter of the way (or the date passed with
  milestones left, or with none at all); "On track" otherwise (always, without a target date).

Completing a goal or a milestone writes a timeline entry (kinds ``goal`` and ``milestone``); re-opening takes
it off.
"""
from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select

from coach import clock
from coach.extensions import db
from coach.ids import parse_uuid
from coach.accounts.models import User
from coach.orgs.models import Membership
from coach.progress import timeline
from coach.progress.access import ProgressError, is_staff, load_athlete
from coach.progress.days import local_today, zone_of
from coach.progress.models import Goal, GoalMilestone, GoalValue

TITLE_MAX, DESCRIPTION_MAX, UNIT_MAX, NOTE_MAX = 160, 5000, 20, 500
VALUE_LIMIT = Decimal("9999999999.9999")  # numeric(14, 4): ten digits before the point
MAX_MILESTONES, MAX_VALUES = 50, 5000
LAG_ALLOWED = 0.25  # milestones may lag the calendar by a quarter of the way before "At risk"

ON_TRACK, AT_RISK, DONE, ABANDONED, NO_DATA = "On track", "At risk", "Done", "Abandoned", "No data yet"


@dataclass
class GoalView:
    goal: Goal
    status_label: str
    progress_percent: int | None
    latest_value: Decimal | None
    milestones_done: int
    milestones_total: int
    series: list[tuple[date, float]]
    milestones: list[GoalMilestone] = field(default_factory=list)
    values: list[GoalValue] = field(default_factory=list)

    @property
    def start_label(self) -> str:
        return number_label(self.goal.metric_start)

    @property
    def target_label(self) -> str:
        return number_label(self.goal.metric_target)

    @property
    def latest_label(self) -> str:
        return number_label(self.latest_value)

    @property
    def at_risk(self) -> bool:
        return self.status_label == AT_RISK

    @property
    def status_class(self) -> str:
        return self.status_label.lower().replace(" ", "-")


def number_label(value) -> str:
    """72.5000 → "72.5", 70.0000 → "70"; "" for None."""
    if value is None:
        return ""
    return format(Decimal(value).normalize(), "f")


# --- parsing ---------------------------------------------------------------------------------------------

def parse_number(text, what: str = "The value") -> Decimal:
    """A number people type ("72.5", "72,5", "-3") as a Decimal of at most 4 decimals; a clear refusal for
    anything else ("abc", "inf", "NaN", 1e30)."""
    if isinstance(text, (int, Decimal)):
        raw = str(text)
    else:
        raw = (text or "").strip().replace(" ", "")
    if not raw:
        raise ProgressError(f"{what} is missing: enter a number.")
    if raw.count(",") == 1 and "." not in raw:
        raw = raw.replace(",", ".")
    if len(raw) > 30:
        raise ProgressError(f"{what} is not a number we can store: use at most ten digits before the point.")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ProgressError(f"{what} must be a number, like 72.5.") from None
    if not value.is_finite():
        raise ProgressError(f"{what} must be a number, like 72.5.")
    if abs(value) >= Decimal(10) ** 10:
        raise ProgressError(f"{what} is too large: use at most ten digits before the point.")
    value = value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
    if abs(value) > VALUE_LIMIT:  # 9999999999.99999 rounds up past it
        raise ProgressError(f"{what} is too large: use at most ten digits before the point.")
    return value


def parse_date(text, what: str = "The date", required: bool = False) -> date | None:
    if isinstance(text, date):
        return text
    raw = (text or "").strip()
    if not raw:
        if required:
            raise ProgressError(f"{what} is missing.")
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ProgressError(f"{what} must be a date like 2027-03-31.") from None


def _title(text: str, limit: int = TITLE_MAX) -> str:
    title = " ".join((text or "").split())
    if not title:
        raise ProgressError("Give it a title.")
    if len(title) > limit:
        raise ProgressError(f"Use at most {limit} characters for the title.")
    return title


# --- reading ---------------------------------------------------------------------------------------------

def may_change(actor: Membership, athlete: Membership) -> bool:
    return actor.tenant_id == athlete.tenant_id and (actor.id == athlete.id or is_staff(actor))


def _require_change(actor: Membership, athlete: Membership) -> None:
    if not may_change(actor, athlete):
        raise ProgressError("Only the athlete and the organization's coaches can change this goal.", status=403)


def get_goal(athlete: Membership, goal_id) -> Goal:
    """A goal of ``athlete`` (already checked as visible to the viewer), or a 404."""
    goal_uuid = parse_uuid(goal_id) if not isinstance(goal_id, uuid.UUID) else goal_id
    goal = goal_uuid and db.session.scalar(select(Goal).where(
        Goal.tenant_id == athlete.tenant_id, Goal.athlete_membership_id == athlete.id, Goal.id == goal_uuid))
    if not goal:
        raise ProgressError("No such goal.", status=404)
    return goal


def load(viewer: Membership, goal_id) -> tuple[Goal, Membership]:
    """A goal ``viewer`` may see (their own, or any athlete's for staff) and its athlete; 404 otherwise."""
    goal_uuid = parse_uuid(goal_id) if not isinstance(goal_id, uuid.UUID) else goal_id
    goal = goal_uuid and db.session.scalar(select(Goal).where(Goal.tenant_id == viewer.tenant_id,
                                                              Goal.id == goal_uuid))
    if not goal:
        raise ProgressError("No such goal.", status=404)
    return goal, load_athlete(viewer, goal.athlete_membership_id)


def _least_squares(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """(slope, intercept) of the least-squares line, or None when every point is on the same day."""
    n = len(points)
    if n < 2:
        return None
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx
    return slope, mean_y - slope * mean_x


def assess(goal: Goal, values: list[tuple[date, Decimal]], milestones_done: int, milestones_total: int,
           today: date, created_on: date) -> tuple[str, int | None]:
    """(status label, progress percent or None) by the rule in the module's docstring. Pure."""
    if goal.status == "done":
        return DONE, 100
    if goal.status == "abandoned":
        return ABANDONED, _percent(goal, values) if goal.measurable else _milestone_percent(
            milestones_done, milestones_total)
    if goal.measurable:
        if not values:
            return NO_DATA, 0
        percent = _percent(goal, values)
        start, target = float(goal.metric_start), float(goal.metric_target)
        sign = 1 if goal.direction == "up" else -1
        latest = float(values[-1][1])
        if sign * (latest - target) >= 0:
            return ON_TRACK, percent
        points = [(0.0, start)] + [((d - created_on).days, float(v)) for d, v in values]
        fit = _least_squares(points)
        if goal.target_date is None:
            if fit is None:
                return (ON_TRACK if sign * (latest - start) >= 0 else AT_RISK), percent
            return (ON_TRACK if sign * fit[0] >= 0 else AT_RISK), percent
        if goal.target_date < today:
            return AT_RISK, percent
        if fit is None:
            return _against_time(percent / 100, created_on, goal.target_date, today), percent
        slope, intercept = fit
        projected = intercept + slope * (goal.target_date - created_on).days
        return (ON_TRACK if sign * (projected - target) >= 0 else AT_RISK), percent
    percent = _milestone_percent(milestones_done, milestones_total)
    if goal.target_date is None:
        return ON_TRACK, percent
    if goal.target_date < today:
        return AT_RISK, percent
    if milestones_total == 0:
        return ON_TRACK, None
    return _against_time(milestones_done / milestones_total, created_on, goal.target_date, today), percent


def _against_time(done_share: float, start: date, end: date, today: date) -> str:
    span = max((end - start).days, 1)
    elapsed = min(max((today - start).days / span, 0.0), 1.0)
    return AT_RISK if done_share < elapsed - LAG_ALLOWED else ON_TRACK


def _percent(goal: Goal, values) -> int | None:
    if not values:
        return 0
    start, target = goal.metric_start, goal.metric_target
    share = (values[-1][1] - start) / (target - start)
    return int(max(0, min(100, math.floor(share * 100))))


def _milestone_percent(done: int, total: int) -> int | None:
    return None if total == 0 else done * 100 // total


def _created_on(goal: Goal, zone: ZoneInfo) -> date:
    return (goal.created_at or clock.now()).astimezone(zone).date()


def _views(athlete: Membership, goals: list[Goal], values: list,
           milestones: list[GoalMilestone]) -> list[GoalView]:
    """``values``: GoalValue rows, or rows with their ``goal_id``, ``logged_on`` and ``value``, in order."""
    zone = zone_of(athlete)
    today = local_today(athlete)
    by_goal_values: dict[uuid.UUID, list] = {}
    for v in values:
        by_goal_values.setdefault(v.goal_id, []).append(v)
    by_goal_ms: dict[uuid.UUID, list[GoalMilestone]] = {}
    for m in milestones:
        by_goal_ms.setdefault(m.goal_id, []).append(m)
    views = []
    for goal in goals:
        rows = by_goal_values.get(goal.id, [])
        ms = by_goal_ms.get(goal.id, [])
        done = sum(1 for m in ms if m.completed_at is not None)
        pairs = [(v.logged_on, v.value) for v in rows]
        label, percent = assess(goal, pairs, done, len(ms), today, _created_on(goal, zone))
        views.append(GoalView(goal=goal, status_label=label, progress_percent=percent,
                              latest_value=rows[-1].value if rows else None, milestones_done=done,
                              milestones_total=len(ms), series=[(d, float(v)) for d, v in pairs],
                              milestones=ms, values=rows))
    return views


def _value_order():
    return (GoalValue.goal_id, GoalValue.logged_on, GoalValue.created_at, GoalValue.id)


def summary(athlete: Membership) -> list[GoalView]:
    """Every goal of ``athlete``: active ones first (soonest target first), then done and abandoned ones
    (newest first), with status, progress, values and milestones. Three statements."""
    goals = list(db.session.scalars(select(Goal).where(
        Goal.tenant_id == athlete.tenant_id, Goal.athlete_membership_id == athlete.id).order_by(
        (Goal.status != "active"), Goal.target_date.asc().nulls_last(), Goal.created_at.desc())))
    if not goals:
        return []
    ids = [g.id for g in goals]
    # Plain (goal_id, logged_on, value) rows, not ORM objects: the athlete page reads hundreds of them and
    # only the goal's own page (``view``) needs a value's id and note.
    values = db.session.execute(select(GoalValue.goal_id, GoalValue.logged_on, GoalValue.value).where(
        GoalValue.tenant_id == athlete.tenant_id, GoalValue.goal_id.in_(ids)).order_by(*_value_order())).all()
    milestones = list(db.session.scalars(select(GoalMilestone).where(
        GoalMilestone.tenant_id == athlete.tenant_id, GoalMilestone.goal_id.in_(ids)).order_by(
        GoalMilestone.goal_id, GoalMilestone.position, GoalMilestone.title)))
    return _views(athlete, goals, values, milestones)


def view(athlete: Membership, goal: Goal) -> GoalView:
    """One goal with its values (oldest first) and milestones. Two statements."""
    values = list(db.session.scalars(select(GoalValue).where(
        GoalValue.tenant_id == goal.tenant_id, GoalValue.goal_id == goal.id).order_by(*_value_order())))
    milestones = list(db.session.scalars(select(GoalMilestone).where(
        GoalMilestone.tenant_id == goal.tenant_id, GoalMilestone.goal_id == goal.id).order_by(
        GoalMilestone.position, GoalMilestone.title)))
    return _views(athlete, [goal], values, milestones)[0]


def author_name(goal: Goal) -> str:
    """Who set the goal: their name, or "Former member" once they left the organization."""
    if goal.created_by_membership_id is None:
        return "Former member"
    member = db.session.scalar(select(Membership).where(Membership.tenant_id == goal.tenant_id,
                                                        Membership.id == goal.created_by_membership_id))
    return member.user.display_name if member is not None else "Former member"


def at_risk_count(views: list[GoalView]) -> int:
    return sum(1 for v in views if v.at_risk)


def at_risk_for(tenant_id: uuid.UUID, athlete_ids) -> dict[uuid.UUID, int]:
    """How many active goals of each athlete are at risk (for the coach's list and digest): three statements
    whatever the number of athletes (goals with their athlete's zone, then values, then milestones)."""
    ids = list(athlete_ids)
    if not ids:
        return {}
    rows = db.session.execute(
        select(Goal, User.timezone).join(Membership, (Membership.tenant_id == Goal.tenant_id)
                                         & (Membership.id == Goal.athlete_membership_id))
        .join(User, User.id == Membership.user_id)
        .where(Goal.tenant_id == tenant_id, Goal.athlete_membership_id.in_(ids), Goal.status == "active")).all()
    if not rows:
        return {}
    goal_ids = [goal.id for goal, _ in rows]
    values: dict[uuid.UUID, list[tuple[date, Decimal]]] = {}
    for goal_id, day, value in db.session.execute(select(GoalValue.goal_id, GoalValue.logged_on, GoalValue.value).where(
            GoalValue.tenant_id == tenant_id, GoalValue.goal_id.in_(goal_ids)).order_by(*_value_order())):
        values.setdefault(goal_id, []).append((day, value))
    milestones: dict[uuid.UUID, list[int]] = {}
    for goal_id, done in db.session.execute(
            select(GoalMilestone.goal_id, GoalMilestone.completed_at.is_not(None)).where(
                GoalMilestone.tenant_id == tenant_id, GoalMilestone.goal_id.in_(goal_ids))):
        counts = milestones.setdefault(goal_id, [0, 0])
        counts[0] += bool(done)
        counts[1] += 1
    now = clock.now()
    out: dict[uuid.UUID, int] = {}
    for goal, tz in rows:
        zone = ZoneInfo(tz or "UTC")
        done, total = milestones.get(goal.id, [0, 0])
        label, _ = assess(goal, values.get(goal.id, []), done, total, now.astimezone(zone).date(),
                          _created_on(goal, zone))
        if label == AT_RISK:
            out[goal.athlete_membership_id] = out.get(goal.athlete_membership_id, 0) + 1
    return out


# --- changing --------------------------------------------------------------------------------------------

def _metric(values: dict) -> tuple[str | None, Decimal | None, Decimal | None, str | None]:
    unit = " ".join((values.get("metric_unit") or "").split())
    start_text, target_text = values.get("metric_start"), values.get("metric_target")
    given = [bool(unit), bool((str(start_text or "")).strip()), bool((str(target_text or "")).strip())]
    if not any(given):
        return None, None, None, None
    if not all(given):
        raise ProgressError("A measurable goal needs a unit, a start value and a target value (or none of them).")
    if len(unit) > UNIT_MAX:
        raise ProgressError(f"Use at most {UNIT_MAX} characters for the unit.")
    start = parse_number(start_text, "The start value")
    target = parse_number(target_text, "The target value")
    if start == target:
        raise ProgressError("The target must differ from the start value.")
    direction = "up" if target > start else "down"
    wanted = (values.get("direction") or "").strip()
    if wanted and wanted != direction:
        raise ProgressError("The target is {} the start value, so the goal goes {}, not {}.".format(
            "above" if direction == "up" else "below", direction, wanted))
    return unit, start, target, direction


def _description(text: str) -> str:
    text = (text or "").strip()
    if len(text) > DESCRIPTION_MAX:
        raise ProgressError(f"Use at most {DESCRIPTION_MAX:,} characters for the description.")
    return text


def create_goal(athlete: Membership, actor: Membership, values: dict) -> Goal:
    """A new goal of ``athlete`` (``values``: title, description, target_date, metric_unit, metric_start,
    metric_target, optional direction that must agree with start and target)."""
    _require_change(actor, athlete)
    title = _title(values.get("title"))
    target_date = parse_date(values.get("target_date"), "The target date")
    today = local_today(athlete)
    if target_date is not None and target_date < today:
        raise ProgressError("The target date has already passed: choose today or a later day.")
    unit, start, target, direction = _metric(values)
    goal = Goal(id=uuid.uuid4(), tenant_id=athlete.tenant_id, athlete_membership_id=athlete.id,
                created_by_membership_id=actor.id, title=title, description=_description(values.get("description")),
                target_date=target_date, metric_unit=unit, metric_start=start, metric_target=target,
                direction=direction, status="active", created_at=clock.now())
    db.session.add(goal)
    db.session.flush()
    return goal


def update_goal(goal: Goal, athlete: Membership, actor: Membership, values: dict) -> Goal:
    """Change a goal's title, description, target date and metric."""
    _require_change(actor, athlete)
    goal.title = _title(values.get("title"))
    goal.description = _description(values.get("description"))
    goal.target_date = parse_date(values.get("target_date"), "The target date")
    goal.metric_unit, goal.metric_start, goal.metric_target, goal.direction = _metric(values)
    db.session.flush()
    return goal


def set_status(goal: Goal, athlete: Membership, actor: Membership, status: str) -> Goal:
    """Mark a goal done (a timeline entry), abandoned, or active again (the entry comes off)."""
    _require_change(actor, athlete)
    if status not in ("active", "done", "abandoned"):
        raise ProgressError("Choose done, abandoned or active.", status=400)
    if status == goal.status:
        return goal
    now = clock.now()
    goal.status = status
    goal.completed_at = now if status == "done" else None
    if status == "done":
        timeline.record(goal.tenant_id, goal.athlete_membership_id, "goal", goal.id, now, f"Goal reached: {goal.title}",
                        goal.description)
    else:
        timeline.remove(goal.tenant_id, "goal", goal.id)
    db.session.flush()
    return goal


def delete_goal(goal: Goal, athlete: Membership, actor: Membership) -> None:
    _require_change(actor, athlete)
    ms_ids = list(db.session.scalars(select(GoalMilestone.id).where(
        GoalMilestone.tenant_id == goal.tenant_id, GoalMilestone.goal_id == goal.id)))
    for ms_id in ms_ids:
        timeline.remove(goal.tenant_id, "milestone", ms_id)
    timeline.remove(goal.tenant_id, "goal", goal.id)
    db.session.execute(delete(GoalValue).where(GoalValue.tenant_id == goal.tenant_id, GoalValue.goal_id == goal.id))
    db.session.execute(delete(GoalMilestone).where(GoalMilestone.tenant_id == goal.tenant_id,
                                                   GoalMilestone.goal_id == goal.id))
    db.session.delete(goal)
    db.session.flush()


def log_value(goal: Goal, athlete: Membership, actor: Membership, value, logged_on=None, note: str = "") -> GoalValue:
    """Log a measured value (a number: anything else is refused with a clear message) for a day that is not in
    the future (the athlete's today by default)."""
    _require_change(actor, athlete)
    if not goal.measurable:
        raise ProgressError("This goal has no metric: add a unit, start and target to log values.")
    if goal.status != "active":
        raise ProgressError("This goal is closed: re-open it to log values.", status=409)
    number = parse_number(value)
    today = local_today(athlete)
    day = parse_date(logged_on, "The day") or today
    if day > today:
        raise ProgressError("That day has not come yet: log values for today or earlier.")
    note = " ".join((note or "").split())
    if len(note) > NOTE_MAX:
        raise ProgressError(f"Use at most {NOTE_MAX} characters for the note.")
    count = db.session.scalar(select(func.count()).select_from(GoalValue).where(
        GoalValue.tenant_id == goal.tenant_id, GoalValue.goal_id == goal.id))
    if count >= MAX_VALUES:
        raise ProgressError(f"A goal holds at most {MAX_VALUES:,} values.")
    row = GoalValue(id=uuid.uuid4(), tenant_id=goal.tenant_id, goal_id=goal.id, value=number, logged_on=day,
                    note=note, logged_by_membership_id=actor.id, created_at=clock.now())
    db.session.add(row)
    db.session.flush()
    return row


def delete_value(goal: Goal, athlete: Membership, actor: Membership, value_id) -> None:
    _require_change(actor, athlete)
    value_uuid = parse_uuid(value_id)
    row = value_uuid and db.session.scalar(select(GoalValue).where(
        GoalValue.tenant_id == goal.tenant_id, GoalValue.goal_id == goal.id, GoalValue.id == value_uuid))
    if not row:
        raise ProgressError("No such value.", status=404)
    db.session.delete(row)
    db.session.flush()


def get_milestone(goal: Goal, milestone_id) -> GoalMilestone:
    ms_uuid = parse_uuid(milestone_id) if not isinstance(milestone_id, uuid.UUID) else milestone_id
    row = ms_uuid and db.session.scalar(select(GoalMilestone).where(
        GoalMilestone.tenant_id == goal.tenant_id, GoalMilestone.goal_id == goal.id, GoalMilestone.id == ms_uuid))
    if not row:
        raise ProgressError("No such milestone.", status=404)
    return row


def add_milestone(goal: Goal, athlete: Membership, actor: Membership, title: str, due_date=None) -> GoalMilestone:
    _require_change(actor, athlete)
    title = _title(title)
    due = parse_date(due_date, "The due date")
    last = db.session.execute(select(func.count(), func.coalesce(func.max(GoalMilestone.position), -1)).where(
        GoalMilestone.tenant_id == goal.tenant_id, GoalMilestone.goal_id == goal.id)).one()
    if last[0] >= MAX_MILESTONES:
        raise ProgressError(f"A goal has at most {MAX_MILESTONES} milestones.")
    row = GoalMilestone(id=uuid.uuid4(), tenant_id=goal.tenant_id, goal_id=goal.id, title=title,
                        position=min(last[1] + 1, 32000), due_date=due)
    db.session.add(row)
    db.session.flush()
    return row


def set_milestone(goal: Goal, athlete: Membership, actor: Membership, milestone: GoalMilestone,
                  done: bool) -> GoalMilestone:
    """Complete a milestone (a timeline entry) or un-complete it (the entry comes off)."""
    _require_change(actor, athlete)
    if done and milestone.completed_at is None:
        milestone.completed_at = clock.now()
        timeline.record(goal.tenant_id, goal.athlete_membership_id, "milestone", milestone.id, milestone.completed_at,
                        f"Milestone reached: {milestone.title}", f"Goal: {goal.title}")
    elif not done and milestone.completed_at is not None:
        milestone.completed_at = None
        timeline.remove(goal.tenant_id, "milestone", milestone.id)
    db.session.flush()
    return milestone


def delete_milestone(goal: Goal, athlete: Membership, actor: Membership, milestone: GoalMilestone) -> None:
    _require_change(actor, athlete)
    timeline.remove(goal.tenant_id, "milestone", milestone.id)
    db.session.delete(milestone)
    db.session.flush()
