"""Exercise library and training program pages: the library, the program builder (forms per workout and
exercise that post without JavaScript; htmx swaps a workout in place), copy a week, templates, assignment, the
athlete's workouts (today, the month calendar, the log form), a logged workout with its comments, and the
coaches' compliance page.

Staff (coaches and admins) build and assign; an athlete sees and logs their own workouts. Every id of another
organization, or of another athlete for an athlete, is a 404.
"""
from __future__ import annotations

from datetime import date, timedelta

from flask import abort, flash, g, redirect, render_template, request, url_for

from coach.blueprints.forms import ActionForm, require_action_form
from coach.blueprints.progress import bp
from coach.errors import DomainError
from coach.extensions import db
from coach.htmx import redirect_after_post, render, wants_fragment
from coach.media import service as media
from coach.orgs.models import ADMIN, ATHLETE, COACH
from coach.platform.idempotency import idempotent
from coach.progress import exercises, programs
from coach.progress.access import ProgressError, athletes_of, is_staff, load_athlete
from coach.progress.models import LOG_STATUSES, MAX_EXERCISES_PER_PROGRAM
from coach.spaces import service as spaces
from coach.tenancy import role_required

STAFF = (ADMIN, COACH)
ROLES = (ADMIN, COACH, ATHLETE)
LIST, BUILDER, WORKOUT = "progress/programs.html", "progress/program.html", "progress/program_workout.html"
ASSIGN, LIBRARY, EXERCISE = "progress/program_assign.html", "progress/exercises.html", "progress/exercise.html"
WORKOUTS, CALENDAR = "progress/workouts.html", "progress/workout_calendar.html"
LOG_FORM, LOG_PAGE, COMPLIANCE = "progress/workout_log.html", "progress/workout_log_view.html", \
    "progress/workout_compliance.html"


MULTIPLE = ("athlete_ids", "space_ids")


def _values() -> dict:
    """The posted form as a dict of strings (the first value of a name sent twice; lists for the two multiple
    choices); a NUL anywhere is refused (PostgreSQL would)."""
    require_action_form()
    found: dict = {}
    for key in request.form:
        items = request.form.getlist(key)
        if any("\x00" in item for item in items):
            raise ProgressError("A field contains a NUL character.", status=400)
        found[key] = items if key in MULTIPLE else items[0]
    return found


def _program(program_id: str):
    return programs.get_program(g.membership, program_id)


def _workout(program, workout_id: str):
    return programs.get_workout(g.membership, program, workout_id)


# --- the exercise library ----------------------------------------------------------------------------------

def _library_page(status: int = 200, error: str | None = None, values: dict | None = None):
    items = exercises.library(g.membership, include_archived=True)
    return render(LIBRARY, status=status, org=g.org, items=items, exercise=None,
                  demos=exercises.demo_media(g.membership, items),
                  clips=media.attachable(g.org, g.membership, limit=30), error=error, values=values or {},
                  action_form=ActionForm(formdata=None))


@bp.get("/exercises")
@role_required(*STAFF)
def exercise_library():
    """The organization's exercises, with the form to add one."""
    return _library_page()


@bp.post("/exercises")
@role_required(*STAFF)
@idempotent
def exercise_create():
    values = _values()
    try:
        exercise = exercises.save_exercise(g.membership, values)
    except DomainError as exc:
        db.session.rollback()
        return _library_page(exc.status, str(exc), values)
    db.session.commit()
    flash(f"“{exercise.title}” is in the library.", "success")
    return redirect_after_post(url_for("progress.exercise_library"))


def _exercise_page(exercise, status: int = 200, error: str | None = None):
    return render(EXERCISE, status=status, org=g.org, exercise=exercise,
                  demos=exercises.demo_media(g.membership, [exercise]),
                  clips=media.attachable(g.org, g.membership, limit=30), used=exercises.is_used(exercise),
                  error=error, action_form=ActionForm(formdata=None))


@bp.route("/exercises/<exercise_id>", methods=["GET", "POST"])
@role_required(*STAFF)
@idempotent
def exercise_edit(exercise_id: str):
    exercise = exercises.get_exercise(g.membership, exercise_id)
    if request.method == "GET":
        return _exercise_page(exercise)
    try:
        exercises.save_exercise(g.membership, _values(), exercise)
    except DomainError as exc:
        db.session.rollback()
        return _exercise_page(exercises.get_exercise(g.membership, exercise_id), exc.status, str(exc))
    db.session.commit()
    flash("Exercise saved.", "success")
    return redirect_after_post(url_for("progress.exercise_library"))


@bp.post("/exercises/<exercise_id>/archive")
@role_required(*STAFF)
@idempotent
def exercise_archive(exercise_id: str):
    """Remove an exercise (deleted when unused, archived when a program uses it), or restore an archived one."""
    exercise = exercises.get_exercise(g.membership, exercise_id)
    values = _values()
    if values.get("restore"):
        exercises.restore_exercise(g.membership, exercise)
        message = f"“{exercise.title}” is back in the library."
    else:
        title = exercise.title
        done = exercises.remove_exercise(g.membership, exercise)
        message = (f"“{title}” was deleted." if done == "deleted"
                   else f"“{title}” is archived: programs using it keep it.")
    db.session.commit()
    flash(message, "success")
    return redirect_after_post(url_for("progress.exercise_library"))


# --- programs --------------------------------------------------------------------------------------------

def _list_page(status: int = 200, error: str | None = None, values: dict | None = None):
    archived = request.args.get("archived") == "1"
    return render(LIST, status=status, org=g.org, archived=archived,
                  items=programs.programs_of(g.membership, templates=False, archived=archived),
                  templates=programs.programs_of(g.membership, templates=True, archived=archived),
                  error=error, values=values or {}, action_form=ActionForm(formdata=None))


@bp.get("/programs")
@role_required(*STAFF)
def program_list():
    """Programs and templates, with the form to start one (empty or from a template)."""
    return _list_page()


@bp.post("/programs")
@role_required(*STAFF)
@idempotent
def program_create():
    values = _values()
    try:
        program = programs.create_program(g.membership, values)
    except DomainError as exc:
        db.session.rollback()
        return _list_page(exc.status, str(exc), values)
    db.session.commit()
    return redirect_after_post(url_for("progress.program_builder", program_id=program.id))


def _builder_page(program, status: int = 200, error: str | None = None, error_at: str | None = None):
    return render(BUILDER, status=status, org=g.org, program=program, view=programs.builder(program),
                  library=exercises.library(g.membership), assignments=programs.assignments_of_program(program),
                  days=programs.DAY_NAMES, error=error, error_at=error_at, cap=MAX_EXERCISES_PER_PROGRAM,
                  action_form=ActionForm(formdata=None), prescription=programs.prescription,
                  seconds=programs.format_seconds, kg=programs.format_kg)


@bp.get("/programs/<program_id>")
@role_required(*STAFF)
def program_builder(program_id: str):
    """The builder: every week and day with its workouts and their exercises, each editable in place."""
    return _builder_page(_program(program_id))


def _builder_action(program_id: str, action, anchor: str = "", workout_id: str | None = None, message=None):
    """Run ``action(program, values)``; re-show the builder (or the workout, for htmx) on a refusal."""
    program = _program(program_id)
    values = _values()
    try:
        result = action(program, values)
    except DomainError as exc:
        db.session.rollback()
        program = _program(program_id)
        if workout_id and wants_fragment():
            return _workout_fragment(program, workout_id, exc.status, str(exc))
        return _builder_page(program, exc.status, str(exc), error_at=anchor)
    db.session.commit()
    if workout_id and wants_fragment():
        return _workout_fragment(program, workout_id)
    if message:
        flash(message(result) if callable(message) else message, "success")
    return redirect_after_post(url_for("progress.program_builder", program_id=program.id) + (f"#{anchor}" if anchor
                                                                                             else ""))


def _workout_fragment(program, workout_id: str, status: int = 200, error: str | None = None):
    workout = _workout(program, workout_id)
    view = programs.builder(program)
    return render_template(WORKOUT, org=g.org, program=program, workout=workout, view=view,
                           library=exercises.library(g.membership), error=error, error_at=f"workout-{workout.id}",
                           action_form=ActionForm(formdata=None), prescription=programs.prescription,
                           seconds=programs.format_seconds, kg=programs.format_kg), status


@bp.post("/programs/<program_id>")
@role_required(*STAFF)
@idempotent
def program_update(program_id: str):
    return _builder_action(program_id, lambda p, v: programs.update_program(g.membership, p, v), "details",
                           message="Program saved.")


@bp.post("/programs/<program_id>/archive")
@role_required(*STAFF)
@idempotent
def program_archive(program_id: str):
    program = _program(program_id)
    values = _values()
    programs.set_archived(g.membership, program, not values.get("restore"))
    db.session.commit()
    flash("Program restored." if values.get("restore") else "Program archived: its assignments go on.", "success")
    return redirect_after_post(url_for("progress.program_builder", program_id=program.id))


@bp.post("/programs/<program_id>/copy-week")
@role_required(*STAFF)
@idempotent
def program_copy_week(program_id: str):
    return _builder_action(
        program_id, lambda p, v: (programs.copy_week(g.membership, p, v.get("from_week"), v.get("to_week")),
                                  v.get("to_week")), "copy-week",
        message=lambda r: f"{r[0]} workout{'s' if r[0] != 1 else ''} copied to week {r[1]}.")


@bp.post("/programs/<program_id>/template")
@role_required(*STAFF)
@idempotent
def program_save_template(program_id: str):
    """Save a deep copy of the program as a template (or, from a template, start a program)."""
    program = _program(program_id)
    values = _values()
    try:
        copy = programs.deep_copy(g.membership, program, values.get("title") or program.title,
                                  is_template=not program.is_template)
    except DomainError as exc:
        db.session.rollback()
        return _builder_page(_program(program_id), exc.status, str(exc), error_at="template")
    db.session.commit()
    flash("Saved as a template." if copy.is_template else "Program started from the template.", "success")
    return redirect_after_post(url_for("progress.program_builder", program_id=copy.id))


@bp.post("/programs/<program_id>/workouts")
@role_required(*STAFF)
@idempotent
def workout_add(program_id: str):
    return _builder_action(program_id, lambda p, v: programs.add_workout(g.membership, p, v),
                           f"week-{request.form.get('week', '1')}" if request.form.get('week', '').isdigit() else "",
                           message=lambda w: f"“{w.title}” added.")


@bp.post("/programs/<program_id>/workouts/<workout_id>")
@role_required(*STAFF)
@idempotent
def workout_update(program_id: str, workout_id: str):
    return _builder_action(program_id, lambda p, v: programs.update_workout(g.membership, _workout(p, workout_id), v),
                           f"workout-{workout_id}", workout_id, message="Workout saved.")


@bp.post("/programs/<program_id>/workouts/<workout_id>/delete")
@role_required(*STAFF)
@idempotent
def workout_delete(program_id: str, workout_id: str):
    return _builder_action(program_id, lambda p, v: programs.delete_workout(g.membership, _workout(p, workout_id)),
                           f"workout-{workout_id}", message="Workout removed.")


@bp.post("/programs/<program_id>/workouts/<workout_id>/move")
@role_required(*STAFF)
@idempotent
def workout_move(program_id: str, workout_id: str):
    return _builder_action(program_id, lambda p, v: programs.move_workout(
        g.membership, _workout(p, workout_id), v.get("direction", "")), f"workout-{workout_id}")


@bp.post("/programs/<program_id>/workouts/<workout_id>/lines")
@role_required(*STAFF)
@idempotent
def line_add(program_id: str, workout_id: str):
    """Add an exercise to a workout (htmx: the workout is swapped in place)."""
    return _builder_action(program_id, lambda p, v: programs.add_line(g.membership, p, _workout(p, workout_id), v),
                           f"workout-{workout_id}", workout_id)


@bp.post("/programs/<program_id>/workouts/<workout_id>/lines/<line_id>")
@role_required(*STAFF)
@idempotent
def line_update(program_id: str, workout_id: str, line_id: str):
    return _builder_action(program_id, lambda p, v: programs.update_line(
        g.membership, programs.get_line(g.membership, _workout(p, workout_id), line_id), v),
        f"workout-{workout_id}", workout_id)


@bp.post("/programs/<program_id>/workouts/<workout_id>/lines/<line_id>/delete")
@role_required(*STAFF)
@idempotent
def line_delete(program_id: str, workout_id: str, line_id: str):
    return _builder_action(program_id, lambda p, v: programs.delete_line(
        g.membership, programs.get_line(g.membership, _workout(p, workout_id), line_id)),
        f"workout-{workout_id}", workout_id)


@bp.post("/programs/<program_id>/workouts/<workout_id>/lines/<line_id>/move")
@role_required(*STAFF)
@idempotent
def line_move(program_id: str, workout_id: str, line_id: str):
    return _builder_action(program_id, lambda p, v: programs.move_line(
        g.membership, programs.get_line(g.membership, _workout(p, workout_id), line_id), v.get("direction", "")),
        f"workout-{workout_id}", workout_id)


# --- assignment ----------------------------------------------------------------------------------------

def _assign_page(program, status: int = 200, error: str | None = None, values: dict | None = None):
    values = values or {"start": programs.monday_of(programs.local_today(g.membership)).isoformat()}
    return render(ASSIGN, status=status, org=g.org, program=program, athletes=athletes_of(g.membership),
                  spaces=[s.space for s in spaces.spaces_for(g.org, g.membership)], error=error, values=values,
                  action_form=ActionForm(formdata=None))


@bp.route("/programs/<program_id>/assign", methods=["GET", "POST"])
@role_required(*STAFF)
@idempotent
def program_assign(program_id: str):
    """Assign to one athlete or a group (chosen athletes and/or a space's athletes) from the Monday of a week."""
    program = _program(program_id)
    if request.method == "GET":
        return _assign_page(program)
    values = _values()
    try:
        made = programs.assign(g.membership, program, values.get("athlete_ids", []), values.get("space_ids", []),
                               values.get("start"))
    except DomainError as exc:
        db.session.rollback()
        return _assign_page(_program(program_id), exc.status, str(exc), values)
    db.session.commit()
    flash(f"Assigned to {len(made)} athlete{'s' if len(made) != 1 else ''}." if made
          else "Everyone chosen already has this program from that week.", "success")
    return redirect_after_post(url_for("progress.program_builder", program_id=program.id) + "#assignments")


@bp.post("/assignments/<assignment_id>/end")
@role_required(*STAFF)
@idempotent
def assignment_end(assignment_id: str):
    require_action_form()
    assignment = programs.get_assignment(g.membership, assignment_id)
    programs.end_assignment(g.membership, assignment)
    db.session.commit()
    flash("Assignment ended: nothing more is scheduled; what was logged stays.", "success")
    return redirect_after_post(url_for("progress.program_builder", program_id=assignment.program_id) + "#assignments")


# --- the athlete's workouts ----------------------------------------------------------------------------

def _athlete():
    """The athlete whose workouts are shown: myself (an athlete), or ``athlete_id`` for staff (None without it:
    staff then go to the compliance page, which links every athlete's calendar)."""
    if g.membership.role == ATHLETE:
        return g.membership
    athlete_id = request.args.get("athlete_id")
    return load_athlete(g.membership, athlete_id) if athlete_id else None


def _day(raw, default: date) -> date:
    if not raw:
        return default
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        abort(404)
    if abs(day.year - default.year) > 5:
        abort(404)
    return day


@bp.get("/workouts")
@role_required(*ROLES)
def workouts():
    """Today's workouts (in the athlete's zone) with a "Log it" link each, and the next seven days."""
    athlete = _athlete()
    if athlete is None:
        return redirect(url_for("progress.workout_compliance"), 303)
    today = programs.local_today(athlete)
    on = _day(request.args.get("on"), today)
    upcoming = [s for s in programs.schedule(athlete, on + timedelta(days=1), on + timedelta(days=7))]
    return render(WORKOUTS, org=g.org, athlete=athlete, on=on, today=today, today_workouts=programs.today(athlete, on),
                  upcoming=upcoming, statuses=LOG_STATUSES, prescription=programs.prescription,
                  is_me=athlete.id == g.membership.id)


@bp.get("/workouts/calendar")
@role_required(*ROLES)
def workout_calendar():
    """A month of the athlete's workouts (Monday first), each linking to its log."""
    athlete = _athlete()
    if athlete is None:
        return redirect(url_for("progress.workout_compliance"), 303)
    today = programs.local_today(athlete)
    raw = request.args.get("month") or ""
    try:
        first = date.fromisoformat(f"{raw}-01") if raw else today.replace(day=1)
    except ValueError:
        abort(404)
    if abs(first.year - today.year) > 5:
        abort(404)
    previous = (first - timedelta(days=1)).replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return render(CALENDAR, org=g.org, athlete=athlete, first=first, weeks=programs.month(athlete, first),
                  today=today, previous=previous, following=following, statuses=LOG_STATUSES,
                  days=programs.DAY_NAMES, athlete_query={} if athlete.id == g.membership.id
                  else {"athlete_id": str(athlete.id)})


def _lines_from_form(values: dict) -> dict:
    """``line-<id>-<field>`` inputs → {line id: {field: value}}."""
    lines: dict[str, dict] = {}
    for key, value in values.items():
        if key.startswith("line-") and key.count("-") >= 2:
            _, rest = key.split("-", 1)
            line_id, _, name = rest.rpartition("-")
            lines.setdefault(line_id, {})[name] = value
    return lines


def _log_page(form, status: int = 200, error: str | None = None, values: dict | None = None):
    athlete = load_athlete(g.membership, form.assignment.athlete_membership_id)
    clips = media.attachable(g.org, g.membership, limit=20) if athlete.id == g.membership.id else []
    return render(LOG_FORM, status=status, org=g.org, form=form, athlete=athlete, statuses=LOG_STATUSES,
                  error=error, values=values, clips=clips, today=programs.local_today(athlete),
                  prescription=programs.prescription, seconds=programs.format_seconds, kg=programs.format_kg,
                  is_me=athlete.id == g.membership.id, action_form=ActionForm(formdata=None))


@bp.route("/workouts/<assignment_id>/<workout_id>", methods=["GET", "POST"])
@role_required(*ROLES)
@idempotent
def workout_log(assignment_id: str, workout_id: str):
    """The log form of a scheduled workout (what was done per exercise, status, RPE, note, a video)."""
    form = programs.log_form(g.membership, assignment_id, workout_id)
    if request.method == "GET":
        return _log_page(form)
    values = _values()
    values["lines"] = _lines_from_form(values)
    try:
        log = programs.log_workout(g.membership, assignment_id, workout_id, values)
    except DomainError as exc:
        db.session.rollback()
        return _log_page(programs.log_form(g.membership, assignment_id, workout_id), exc.status, str(exc), values)
    db.session.commit()
    flash("Workout logged." if log.logged_at == log.updated_at else "Log updated.", "success")
    return redirect_after_post(url_for("progress.workout_log_view", log_id=log.id))


def _log_view(log, status: int = 200, error: str | None = None, body: str = ""):
    form = programs.log_form(g.membership, log.assignment_id, log.workout_id)
    video = None
    if log.media_id:
        item = media.get_item(g.org, log.media_id)
        video = item if item is not None and media.can_view(item, g.membership) else None
    return render(LOG_PAGE, status=status, org=g.org, form=form, log=log, comments=programs.comments(log),
                  statuses=LOG_STATUSES, video=video, video_urls=media.urls(video) if video else {},
                  error=error, body=body, prescription=programs.prescription, seconds=programs.format_seconds,
                  kg=programs.format_kg,
                  is_me=log.athlete_membership_id == g.membership.id, action_form=ActionForm(formdata=None))


@bp.get("/workouts/logs/<log_id>")
@role_required(*ROLES)
def workout_log_view(log_id: str):
    """A logged workout: what was prescribed and done, the video, and the comment thread."""
    return _log_view(programs.get_log(g.membership, log_id))


@bp.post("/workouts/logs/<log_id>/comments")
@role_required(*ROLES)
@idempotent
def workout_comment(log_id: str):
    log = programs.get_log(g.membership, log_id)
    values = _values()
    try:
        comment = programs.add_comment(g.membership, log, values.get("body"))
    except DomainError as exc:
        db.session.rollback()
        return _log_view(programs.get_log(g.membership, log_id), exc.status, str(exc), values.get("body") or "")
    db.session.commit()
    return redirect_after_post(url_for("progress.workout_log_view", log_id=log.id) + f"#comment-{comment.id}")


# --- compliance ------------------------------------------------------------------------------------------

COMPLIANCE_WEEKS = 6


@bp.get("/compliance")
@role_required(*STAFF)
def workout_compliance():
    """Compliance per athlete per week (the last six weeks up to ``?week=``): done, partly done, missed."""
    if not is_staff(g.membership):
        abort(403)
    today = programs.local_today(g.membership)
    last = programs.monday_of(_day(request.args.get("week"), today))
    first = last - timedelta(days=7 * (COMPLIANCE_WEEKS - 1))
    athletes = athletes_of(g.membership)
    grid = programs.compliance_grid(g.org.id, [a.id for a in athletes], first, COMPLIANCE_WEEKS)
    mondays = [first + timedelta(days=7 * i) for i in range(COMPLIANCE_WEEKS)]
    return render(COMPLIANCE, org=g.org, athletes=athletes, grid=grid, mondays=mondays,
                  previous=last - timedelta(days=7 * COMPLIANCE_WEEKS),
                  following=last + timedelta(days=7 * COMPLIANCE_WEEKS) if last < programs.monday_of(today)
                  else None)
