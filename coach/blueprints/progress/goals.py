"""Goals pages: an athlete's goals (list, detail with the chart of logged values), the forms to set and change
a goal, log a value, add and complete milestones, and mark a goal done or abandoned.

The athlete manages their own goals; the organization's coaches and admins any athlete's
(``/athletes/<athlete_id>/goals``). Every id of another athlete, or of another organization, is a 404.
"""
from __future__ import annotations

from flask import flash, g, request, url_for
from wtforms import HiddenField, StringField, TextAreaField
from wtforms.validators import Length, Optional

from coach.blueprints.forms import ActionForm, BaseForm, attempt, require_action_form
from coach.blueprints.progress import bp
from coach.extensions import db
from coach.htmx import redirect_after_post, render, wants_fragment
from coach.orgs.models import ADMIN, ATHLETE, COACH
from coach.platform.idempotency import idempotent
from coach.progress import charts, goals
from coach.progress.access import athletes_of, load_athlete
from coach.tenancy import role_required

ROLES = (ADMIN, COACH, ATHLETE)
LIST, DETAIL, FORM = "progress/goals.html", "progress/goal_detail.html", "progress/goal_form.html"


class GoalForm(BaseForm):
    title = StringField("Title", validators=[Length(max=goals.TITLE_MAX, message="At most 160 characters.")])
    description = TextAreaField("Description", validators=[Optional(), Length(max=goals.DESCRIPTION_MAX)])
    target_date = StringField("Target date", render_kw={"type": "date"}, validators=[Length(max=20)])
    metric_unit = StringField("Unit", validators=[Length(max=goals.UNIT_MAX, message="At most 20 characters.")],
                              description="Leave the three metric fields empty for a goal without a number.")
    metric_start = StringField("Start value", render_kw={"inputmode": "decimal"}, validators=[Length(max=40)])
    metric_target = StringField("Target value", render_kw={"inputmode": "decimal"}, validators=[Length(max=40)],
                                description="Below the start for a goal that goes down (a time, a weight).")

    def values(self) -> dict:
        return {name: getattr(self, name).data for name in (
            "title", "description", "target_date", "metric_unit", "metric_start", "metric_target")}


class ValueForm(BaseForm):
    value = StringField("Value", render_kw={"inputmode": "decimal", "autocomplete": "off"},
                        validators=[Length(max=40, message="Enter a number, like 72.5.")])
    logged_on = StringField("Day", render_kw={"type": "date"}, validators=[Length(max=20)])
    note = StringField("Note", validators=[Optional(), Length(max=goals.NOTE_MAX)])


class MilestoneForm(BaseForm):
    title = StringField("Milestone", validators=[Length(max=goals.TITLE_MAX, message="At most 160 characters.")])
    due_date = StringField("Due", render_kw={"type": "date"}, validators=[Length(max=20)])


class StatusForm(BaseForm):
    status = HiddenField()


class DoneForm(BaseForm):
    done = HiddenField()


def _detail(goal, athlete, status: int = 200, value_form=None, milestone_form=None, block=None, oob_summary=False):
    goal_view = goals.view(athlete, goal)
    chart = None
    if goal_view.series:
        # The values logged, and the start and target while the goal still has a metric (it may have lost it
        # since: its values stay).
        bounds = [v for _, v in goal_view.series] + [float(x) for x in (goal.metric_start, goal.metric_target)
                                                      if x is not None]
        low, high = min(bounds), max(bounds)
        chart = charts.line(goal_view.series, y_min=low, y_max=high)
    if value_form is None:
        value_form = ValueForm(formdata=None)
        value_form.logged_on.data = goals.local_today(athlete).isoformat()
    return render(DETAIL, block, status=status, org=g.org, athlete=athlete, view=goal_view, goal=goal, chart=chart,
                  value_form=value_form, milestone_form=milestone_form or MilestoneForm(formdata=None),
                  action_form=ActionForm(formdata=None), may_change=goals.may_change(g.membership, athlete),
                  is_me=g.membership.id == athlete.id, number=goals.number_label, oob_summary=oob_summary,
                  author=goals.author_name(goal) if block is None else "")


# --- pages -------------------------------------------------------------------------------------------------

@bp.get("/goals")
@role_required(*ROLES)
def my_goals():
    """An athlete's own goals; staff choose an athlete."""
    if g.membership.role == ATHLETE:
        return athlete_goals(g.membership.id)
    return render(LIST, org=g.org, athlete=None, athletes=athletes_of(g.membership), goals=[])


@bp.get("/athletes/<athlete_id>/goals")
@role_required(*ROLES)
def athlete_goals(athlete_id):
    athlete = load_athlete(g.membership, athlete_id)
    return render(LIST, org=g.org, athlete=athlete, athletes=[], goals=goals.summary(athlete),
                  is_me=g.membership.id == athlete.id)


@bp.route("/athletes/<athlete_id>/goals/new", methods=["GET", "POST"])
@role_required(*ROLES)
@idempotent
def new_goal(athlete_id):
    athlete = load_athlete(g.membership, athlete_id)
    form = GoalForm()
    status = 422 if form.is_submitted() else 200
    if form.validate_on_submit():
        done = attempt(form, goals.create_goal, athlete, g.membership, form.values())
        if done:
            db.session.commit()
            flash(f"Goal “{done.value.title}” set.", "success")
            return redirect_after_post(url_for("progress.goal", goal_id=done.value.id))
        status = done.status
    return render(FORM, "form", status=status, org=g.org, athlete=athlete, form=form, goal=None)


@bp.get("/goals/<goal_id>")
@role_required(*ROLES)
def goal(goal_id):
    found, athlete = goals.load(g.membership, goal_id)
    return _detail(found, athlete)


@bp.route("/goals/<goal_id>/edit", methods=["GET", "POST"])
@role_required(*ROLES)
@idempotent
def edit_goal(goal_id):
    found, athlete = goals.load(g.membership, goal_id)
    form = GoalForm(obj=None)
    if request.method == "GET":
        form.title.data, form.description.data = found.title, found.description
        form.target_date.data = found.target_date.isoformat() if found.target_date else ""
        form.metric_unit.data = found.metric_unit or ""
        form.metric_start.data = goals.number_label(found.metric_start)
        form.metric_target.data = goals.number_label(found.metric_target)
    status = 422 if form.is_submitted() else 200
    if form.validate_on_submit():
        done = attempt(form, goals.update_goal, found, athlete, g.membership, form.values())
        if done:
            db.session.commit()
            flash("Goal saved.", "success")
            return redirect_after_post(url_for("progress.goal", goal_id=found.id))
        status = done.status
    return render(FORM, "form", status=status, org=g.org, athlete=athlete, form=form, goal=found)


@bp.post("/goals/<goal_id>/status")
@role_required(*ROLES)
@idempotent
def goal_status(goal_id):
    found, athlete = goals.load(g.membership, goal_id)
    form = StatusForm()
    if not form.validate_on_submit():
        require_action_form()
    goals.set_status(found, athlete, g.membership, form.status.data or "")
    db.session.commit()
    flash({"done": "Goal reached: well done!", "abandoned": "Goal set aside.",
           "active": "Goal re-opened."}[found.status], "success")
    return redirect_after_post(url_for("progress.goal", goal_id=found.id))


@bp.post("/goals/<goal_id>/delete")
@role_required(*ROLES)
@idempotent
def delete_goal(goal_id):
    found, athlete = goals.load(g.membership, goal_id)
    require_action_form()
    goals.delete_goal(found, athlete, g.membership)
    db.session.commit()
    flash("Goal deleted.", "success")
    return redirect_after_post(url_for("progress.athlete_goals", athlete_id=athlete.id))


@bp.post("/goals/<goal_id>/values")
@role_required(*ROLES)
@idempotent
def log_value(goal_id):
    found, athlete = goals.load(g.membership, goal_id)
    form = ValueForm()
    if form.validate_on_submit():
        done = attempt(form, goals.log_value, found, athlete, g.membership, form.value.data, form.logged_on.data,
                       form.note.data)
        if done:
            db.session.commit()
            flash("Value logged.", "success")
            return redirect_after_post(url_for("progress.goal", goal_id=found.id))
        return _detail(found, athlete, status=done.status, value_form=form, block="values")
    return _detail(found, athlete, status=422, value_form=form, block="values")


@bp.post("/goals/<goal_id>/values/<value_id>/delete")
@role_required(*ROLES)
@idempotent
def delete_value(goal_id, value_id):
    found, athlete = goals.load(g.membership, goal_id)
    require_action_form()
    goals.delete_value(found, athlete, g.membership, value_id)
    db.session.commit()
    flash("Value removed.", "success")
    return redirect_after_post(url_for("progress.goal", goal_id=found.id))


@bp.post("/goals/<goal_id>/milestones")
@role_required(*ROLES)
@idempotent
def add_milestone(goal_id):
    found, athlete = goals.load(g.membership, goal_id)
    form = MilestoneForm()
    if form.validate_on_submit():
        done = attempt(form, goals.add_milestone, found, athlete, g.membership, form.title.data, form.due_date.data)
        if done:
            db.session.commit()
            return redirect_after_post(url_for("progress.goal", goal_id=found.id))
        return _detail(found, athlete, status=done.status, milestone_form=form, block="milestones")
    return _detail(found, athlete, status=422, milestone_form=form, block="milestones")


@bp.post("/goals/<goal_id>/milestones/<milestone_id>")
@role_required(*ROLES)
@idempotent
def milestone(goal_id, milestone_id):
    """Complete (``done=1``) or un-complete (``done=0``) a milestone."""
    found, athlete = goals.load(g.membership, goal_id)
    form = DoneForm()
    if not form.validate_on_submit():
        require_action_form()
    row = goals.get_milestone(found, milestone_id)
    goals.set_milestone(found, athlete, g.membership, row, form.done.data == "1")
    db.session.commit()
    if wants_fragment():
        return _detail(found, athlete, block="milestones", oob_summary=True)
    return redirect_after_post(url_for("progress.goal", goal_id=found.id))


@bp.post("/goals/<goal_id>/milestones/<milestone_id>/delete")
@role_required(*ROLES)
@idempotent
def delete_milestone(goal_id, milestone_id):
    found, athlete = goals.load(g.membership, goal_id)
    require_action_form()
    goals.delete_milestone(found, athlete, g.membership, goals.get_milestone(found, milestone_id))
    db.session.commit()
    return redirect_after_post(url_for("progress.goal", goal_id=found.id))
