"""Habits and readiness pages: an athlete's habits with today's one-tap ticks, streaks and the year heat map;
the forms to set, change and archive a habit; the daily readiness check-in and its history.

The athlete ticks their own habits and checks in their own readiness; the organization's coaches and admins see
any athlete's (``/athletes/<athlete_id>/habits``, ``/athletes/<athlete_id>/readiness``) and set habits for them.
A tick is a plain POST answered with a 303 without JavaScript; with htmx the habit's row swaps in place.
"""
from __future__ import annotations

from datetime import timedelta

from flask import flash, g, render_template, request, url_for
from wtforms import HiddenField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional

from coach.blueprints.forms import ActionForm, BaseForm, attempt, org_path, require_action_form
from coach.blueprints.progress import bp
from coach.extensions import db
from coach.htmx import redirect_after_post, render, wants_fragment
from coach.orgs.models import ADMIN, ATHLETE, COACH
from coach.platform.idempotency import idempotent
from coach.progress import athletes, charts, habits, readiness
from coach.progress.access import athletes_of, is_staff, load_athlete
from coach.progress.models import DAILY, WEEKLY
from coach.tenancy import role_required

ROLES = (ADMIN, COACH, ATHLETE)
PAGE, FORM, DETAIL = "progress/habits.html", "progress/habit_form.html", "progress/habit_detail.html"
ITEM, READINESS = "progress/habit_item.html", "progress/readiness.html"


class HabitForm(BaseForm):
    title = StringField("Habit", validators=[Length(max=habits.TITLE_MAX, message="At most 120 characters.")])
    frequency = SelectField("How often", choices=[SelectChoice(DAILY, "Every day"),
                                                  SelectChoice(WEEKLY, "A number of times a week")],
                            default=DAILY, validate_choice=False)
    times_per_week = StringField("Times a week", render_kw={"inputmode": "numeric"}, validators=[Length(max=5)],
                                 description="1 to 7, for a weekly habit.")
    reminder = StringField("Reminder", render_kw={"type": "time"}, validators=[Length(max=8)],
                           description="A reminder at this time of the athlete's day; leave empty for none.")

    def values(self) -> dict:
        return {name: getattr(self, name).data for name in ("title", "frequency", "times_per_week", "reminder")}


class TickForm(BaseForm):
    next = HiddenField()
    on_date = HiddenField()  # a day of the past week (today when empty)


class ReadinessForm(BaseForm):
    sleep_hours = StringField("Sleep (hours)", validators=[Length(max=10)])
    energy = StringField("Energy", validators=[Length(max=2)])
    mood = StringField("Mood", validators=[Length(max=2)])
    stress = StringField("Stress", validators=[Length(max=2)])
    soreness = StringField("Soreness", validators=[Length(max=2)])
    note = TextAreaField("Note", validators=[Optional(), Length(max=readiness.NOTE_MAX,
                                                                message="Use at most 1,000 characters.")])
    next = HiddenField()

    def values(self) -> dict:
        return {name: getattr(self, name).data for name in (
            "sleep_hours", "energy", "mood", "stress", "soreness", "note")}


def _back(target: str | None, default: str) -> str:
    return target if org_path(target, g.org.slug) else default


def _page(athlete, status: int = 200, readiness_errors=None, readiness_values=None):
    is_me = g.membership.id == athlete.id
    today = habits.today(athlete)
    return render(PAGE, "readiness_form" if readiness_errors else None, status=status, org=g.org, athlete=athlete,
                  is_me=is_me, habits=today, heatmap=habits.heatmap(athlete, among=[item.habit for item in today]),
                  readiness_today=readiness.today(athlete), readiness_flag=readiness.flag(athlete),
                  readiness_errors=readiness_errors or [], readiness_values=readiness_values or {},
                  may_change=is_me or is_staff(g.membership))


# --- habits ------------------------------------------------------------------------------------------------

@bp.get("/habits")
@role_required(*ROLES)
def my_habits():
    """An athlete's own habits and readiness; staff choose an athlete."""
    if g.membership.role == ATHLETE:
        return _page(g.membership)
    return render(PAGE, org=g.org, athlete=None, athletes=athletes_of(g.membership))


@bp.get("/athletes/<athlete_id>/habits")
@role_required(*ROLES)
def athlete_habits(athlete_id):
    return _page(load_athlete(g.membership, athlete_id))


@bp.route("/athletes/<athlete_id>/habits/new", methods=["GET", "POST"])
@role_required(*ROLES)
@idempotent
def new_habit(athlete_id):
    athlete = load_athlete(g.membership, athlete_id)
    form = HabitForm()
    status = 422 if form.is_submitted() else 200
    if form.validate_on_submit():
        done = attempt(form, habits.create_habit, athlete, g.membership, form.values())
        if done:
            db.session.commit()
            flash(f"Habit “{done.value.title}” added.", "success")
            return redirect_after_post(url_for("progress.athlete_habits", athlete_id=athlete.id))
        status = done.status
    return render(FORM, "form", status=status, org=g.org, athlete=athlete, form=form, habit=None)


@bp.get("/habits/<habit_id>")
@role_required(*ROLES)
def habit(habit_id):
    found, athlete = habits.load(g.membership, habit_id)
    return render(DETAIL, org=g.org, athlete=athlete, habit=found, item=habits.today_of(athlete, found),
                  heatmap=habits.heatmap(athlete, found), is_me=g.membership.id == athlete.id,
                  reminder=habits.reminder_label(found), action_form=ActionForm(formdata=None),
                  recent=habits.recent_days(athlete, found) if g.membership.id == athlete.id else [])


@bp.route("/habits/<habit_id>/edit", methods=["GET", "POST"])
@role_required(*ROLES)
@idempotent
def edit_habit(habit_id):
    found, athlete = habits.load(g.membership, habit_id)
    form = HabitForm()
    if request.method == "GET":
        form.title.data, form.frequency.data = found.title, found.frequency
        form.times_per_week.data = str(found.times_per_week or "")
        form.reminder.data = habits.reminder_label(found)
    status = 422 if form.is_submitted() else 200
    if form.validate_on_submit():
        done = attempt(form, habits.update_habit, found, athlete, g.membership, form.values())
        if done:
            db.session.commit()
            flash("Habit saved.", "success")
            return redirect_after_post(url_for("progress.habit", habit_id=found.id))
        status = done.status
    return render(FORM, "form", status=status, org=g.org, athlete=athlete, form=form, habit=found)


@bp.post("/habits/<habit_id>/archive")
@role_required(*ROLES)
@idempotent
def archive_habit(habit_id):
    found, athlete = habits.load(g.membership, habit_id)
    require_action_form()
    habits.archive_habit(found, athlete, g.membership)
    db.session.commit()
    flash(f"“{found.title}” archived: its check-ins stay in the heat map of all habits.", "success")
    return redirect_after_post(url_for("progress.athlete_habits", athlete_id=athlete.id))


def _tick(habit_id, action):
    found, athlete = habits.load(g.membership, habit_id)
    form = TickForm()
    if not form.validate_on_submit():
        require_action_form()
    back = _back(form.next.data, url_for("progress.athlete_habits", athlete_id=athlete.id))
    if wants_fragment():
        done = attempt(None, action, found, athlete, g.membership, form.on_date.data or None)
        if done:
            db.session.commit()
        status = done.status
        return render(ITEM, status=status, item=habits.today_of(athlete, found), athlete=athlete,
                      error=str(done.error) if done.error else None, next=back)
    action(found, athlete, g.membership, form.on_date.data or None)  # a refusal is the error page, with its message
    db.session.commit()
    return redirect_after_post(back)


@bp.post("/habits/<habit_id>/check")
@role_required(*ROLES)
@idempotent
def check_habit(habit_id):
    """Tick a habit for today (the athlete's today)."""
    return _tick(habit_id, habits.check_in)


@bp.post("/habits/<habit_id>/untick")
@role_required(*ROLES)
@idempotent
def untick_habit(habit_id):
    """Take today's tick back."""
    return _tick(habit_id, habits.untick)


# --- readiness ---------------------------------------------------------------------------------------------

def _readiness_page(athlete, status: int = 200, errors=None, values=None):
    history = readiness.history(athlete, limit=60)
    trend = readiness.trend(athlete, days=28)
    end = readiness.local_today(athlete)
    chart = charts.line(trend, y_min=1, y_max=5, baseline=athletes.readiness_band(trend, end),
                        start=end - timedelta(days=27), end=end, max_gap_days=1)
    return render(READINESS, "readiness_form" if errors else None, status=status, org=g.org, athlete=athlete,
                  is_me=g.membership.id == athlete.id, history=history, chart=chart,
                  readiness_today=readiness.today(athlete), readiness_flag=readiness.flag(athlete),
                  readiness_errors=errors or [], readiness_values=values or {})


@bp.get("/readiness")
@role_required(*ROLES)
def my_readiness():
    if g.membership.role == ATHLETE:
        return _readiness_page(g.membership)
    return render(READINESS, org=g.org, athlete=None, athletes=athletes_of(g.membership))


@bp.get("/athletes/<athlete_id>/readiness")
@role_required(*ROLES)
def athlete_readiness(athlete_id):
    return _readiness_page(load_athlete(g.membership, athlete_id))


@bp.post("/readiness")
@role_required(ATHLETE)
@idempotent
def check_in_readiness():
    """Today's readiness check-in (a second one today replaces the first)."""
    athlete = g.membership
    form = ReadinessForm()
    back = _back(form.next.data, url_for("progress.my_readiness"))
    if form.validate_on_submit():
        done = attempt(form, readiness.check_in, athlete, athlete, form.values())
        if done:
            db.session.commit()
            if wants_fragment():
                return render_template("progress/readiness_done.html", athlete=athlete, readiness_today=done.value,
                                       readiness_errors=[], readiness_values={}, is_me=True, next=back)
            flash(f"Checked in: readiness {done.value.score:.1f} of 5.", "success")
            return redirect_after_post(back)
        errors, status = form.form_errors, done.status
    else:
        errors = [f"{form[name].label.text}: {message}" for name, messages in form.errors.items() for message in
                  messages] or ["The form was incomplete: try again."]
        status = 422
    return _readiness_page(athlete, status=status, errors=errors, values=form.values())
