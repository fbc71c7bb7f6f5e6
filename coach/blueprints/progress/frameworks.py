"""Skill framework pages: the list, a framework with its areas and skills (and, for coaches and admins, the
forms to change them), the framework form (title, description, the proficiency scale), archive and restore,
CSV export and import.

Coaches and admins (the organization's staff) create and edit frameworks: they are the ones who write session
records against them. Athletes read them (what they are measured against); schedulers do not see them.
"""
from __future__ import annotations

from flask import Response, abort, flash, g, request, url_for
from flask_wtf.file import FileField
from wtforms import StringField, TextAreaField
from wtforms.validators import Length, Optional

from coach.blueprints.forms import BaseForm, attempt, require_action_form
from coach.blueprints.progress import bp
from coach.extensions import db
from coach.htmx import redirect_after_post, render
from coach.orgs.models import ADMIN, ATHLETE, COACH
from coach.platform.idempotency import idempotent
from coach.progress import frameworks
from coach.progress.access import ProgressError, is_staff
from coach.tenancy import role_required

ROLES = (ADMIN, COACH, ATHLETE)
LIST, DETAIL, FORM = "progress/frameworks.html", "progress/framework.html", "progress/framework_form.html"
SKILL_FORM, IMPORT = "progress/framework_skill.html", "progress/framework_import.html"


# --- loaders -------------------------------------------------------------------------------------------

def load_framework(framework_id: str):
    framework = frameworks.get_framework(g.org.id, framework_id)
    if framework is None or (framework.archived_at is not None and not is_staff(g.membership)):
        abort(404)
    return framework


def load_area(framework, area_id: str):
    return frameworks.get_area(framework, area_id) or abort(404)


def load_skill(framework, skill_id: str):
    return frameworks.get_skill(framework, skill_id) or abort(404)


class FrameworkForm(BaseForm):
    title = StringField("Title", validators=[Length(max=frameworks.TITLE_MAX, message="At most 120 characters.")])
    description = TextAreaField("Description", validators=[
        Optional(), Length(max=frameworks.DESCRIPTION_MAX, message="At most 2,000 characters.")])
    scale = TextAreaField("Proficiency scale", render_kw={"rows": 6}, validators=[Length(max=1000)],
                          description="One level per line, the lowest first: 2 to 10 levels.")


class SkillForm(BaseForm):
    title = StringField("Skill", validators=[Length(max=frameworks.SKILL_TITLE_MAX,
                                                    message="At most 160 characters.")])
    description = TextAreaField("Description", render_kw={"rows": 3}, validators=[
        Optional(), Length(max=frameworks.DESCRIPTION_MAX, message="At most 2,000 characters.")])
    required_level = StringField("Required level", render_kw={"inputmode": "numeric"}, validators=[Length(max=3)],
                                 description="The level that counts as ready (empty: no requirement).")
    area_id = StringField("Area")


class ImportForm(BaseForm):
    title = StringField("Title of the new framework",
                        validators=[Length(max=frameworks.TITLE_MAX, message="At most 120 characters.")])
    file = FileField("CSV file")


def _detail(framework, status: int = 200, error: str | None = None):
    return render(DETAIL, status=status, org=g.org, view=frameworks.structure(framework), framework=framework,
                  staff=is_staff(g.membership), error=error)


# --- pages -------------------------------------------------------------------------------------------------

@bp.get("/frameworks", endpoint="frameworks")
@role_required(*ROLES)
def frameworks_list():
    """The organization's frameworks (staff: the archived ones too)."""
    staff = is_staff(g.membership)
    return render(LIST, org=g.org, items=frameworks.frameworks_of(g.org.id, include_archived=staff),
                  counts=frameworks.skill_counts(g.org.id), staff=staff)


@bp.route("/frameworks/new", methods=["GET", "POST"])
@role_required(ADMIN, COACH)
@idempotent
def new_framework():
    form = FrameworkForm()
    if request.method == "GET":
        form.scale.data = "\n".join(frameworks.DEFAULT_SCALE)
    status = 422 if form.is_submitted() else 200
    if form.validate_on_submit():
        done = attempt(form, frameworks.create_framework, g.org.id, g.membership, form.title.data,
                       form.description.data, form.scale.data)
        if done:
            db.session.commit()
            flash(f"“{done.value.title}” is ready: add its areas and skills.", "success")
            return redirect_after_post(url_for("progress.framework", framework_id=done.value.id))
        status = done.status
    return render(FORM, status=status, org=g.org, form=form, framework=None)


@bp.get("/frameworks/<framework_id>")
@role_required(*ROLES)
def framework(framework_id: str):
    """A framework's scale, areas and skills; the forms to change them for staff."""
    return _detail(load_framework(framework_id))


@bp.route("/frameworks/<framework_id>/edit", methods=["GET", "POST"])
@role_required(ADMIN, COACH)
@idempotent
def edit_framework(framework_id: str):
    framework = load_framework(framework_id)
    form = FrameworkForm() if request.method == "POST" else FrameworkForm(
        data={"title": framework.title, "description": framework.description, "scale": "\n".join(framework.scale)})
    status = 422 if form.is_submitted() else 200
    if form.validate_on_submit():
        done = attempt(form, frameworks.update_framework, framework, g.membership, form.title.data,
                       form.description.data, form.scale.data)
        if done:
            db.session.commit()
            flash("Framework saved.", "success")
            return redirect_after_post(url_for("progress.framework", framework_id=framework.id))
        status = done.status
        framework = load_framework(framework_id)
    return render(FORM, status=status, org=g.org, form=form, framework=framework)


@bp.post("/frameworks/<framework_id>/<any(archive, restore):action>")
@role_required(ADMIN, COACH)
@idempotent
def framework_action(framework_id: str, action: str):
    framework = load_framework(framework_id)
    require_action_form()
    (frameworks.archive if action == "archive" else frameworks.restore)(framework, g.membership)
    db.session.commit()
    flash(f"“{framework.title}” is {'archived: new records cannot use it' if action == 'archive' else 'in use again'}.",
          "success")
    return redirect_after_post(url_for("progress.frameworks"))


def _change(framework, action, *args):
    """Run a change of the framework's areas or skills: back to the framework, or its page with the message."""
    require_action_form()
    try:
        action(*args)
    except ProgressError as exc:
        db.session.rollback()
        return _detail(load_framework(str(framework.id)), status=exc.status, error=str(exc))
    db.session.commit()
    return redirect_after_post(url_for("progress.framework", framework_id=framework.id))


@bp.post("/frameworks/<framework_id>/areas")
@role_required(ADMIN, COACH)
@idempotent
def add_area(framework_id: str):
    framework = load_framework(framework_id)
    return _change(framework, frameworks.add_area, framework, g.membership, request.form.get("title", ""))


@bp.post("/frameworks/<framework_id>/areas/<area_id>")
@role_required(ADMIN, COACH)
@idempotent
def rename_area(framework_id: str, area_id: str):
    framework = load_framework(framework_id)
    area = load_area(framework, area_id)
    return _change(framework, frameworks.rename_area, framework, area, g.membership, request.form.get("title", ""))


@bp.post("/frameworks/<framework_id>/areas/<area_id>/<any(up, down, delete):action>")
@role_required(ADMIN, COACH)
@idempotent
def area_action(framework_id: str, area_id: str, action: str):
    framework = load_framework(framework_id)
    area = load_area(framework, area_id)
    if action == "delete":
        return _change(framework, frameworks.remove_area, framework, area, g.membership)
    return _change(framework, frameworks.move, framework, area, g.membership, -1 if action == "up" else 1)


@bp.post("/frameworks/<framework_id>/areas/<area_id>/skills")
@role_required(ADMIN, COACH)
@idempotent
def add_skill(framework_id: str, area_id: str):
    framework = load_framework(framework_id)
    area = load_area(framework, area_id)
    return _change(framework, frameworks.add_skill, framework, area, g.membership, request.form.get("title", ""),
                   request.form.get("description", ""), request.form.get("required_level", ""))


@bp.route("/frameworks/<framework_id>/skills/<skill_id>/edit", methods=["GET", "POST"])
@role_required(ADMIN, COACH)
@idempotent
def edit_skill(framework_id: str, skill_id: str):
    framework = load_framework(framework_id)
    skill = load_skill(framework, skill_id)
    view = frameworks.structure(framework)
    form = SkillForm() if request.method == "POST" else SkillForm(data={
        "title": skill.title, "description": skill.description, "area_id": str(skill.area_id),
        "required_level": str(skill.required_level or "")})
    status = 422 if form.is_submitted() else 200
    if form.validate_on_submit():
        area = load_area(framework, form.area_id.data) if form.area_id.data else None
        done = attempt(form, frameworks.update_skill, framework, skill, g.membership, form.title.data,
                       form.description.data, form.required_level.data, area)
        if done:
            db.session.commit()
            flash("Skill saved.", "success")
            return redirect_after_post(url_for("progress.framework", framework_id=framework.id))
        status = done.status
        framework = load_framework(framework_id)
        skill = load_skill(framework, skill_id)
        view = frameworks.structure(framework)
    return render(SKILL_FORM, status=status, org=g.org, form=form, framework=framework, skill=skill, view=view)


@bp.post("/frameworks/<framework_id>/skills/<skill_id>/<any(up, down, delete):action>")
@role_required(ADMIN, COACH)
@idempotent
def skill_action(framework_id: str, skill_id: str, action: str):
    framework = load_framework(framework_id)
    skill = load_skill(framework, skill_id)
    if action == "delete":
        return _change(framework, frameworks.remove_skill, framework, skill, g.membership)
    return _change(framework, frameworks.move, framework, skill, g.membership, -1 if action == "up" else 1)


# --- CSV -----------------------------------------------------------------------------------------------

@bp.get("/frameworks/<framework_id>/export.csv")
@role_required(*ROLES)
def export_framework(framework_id: str):
    framework = load_framework(framework_id)
    name = "".join(c if c.isalnum() else "-" for c in framework.title.lower()).strip("-")[:60] or "framework"
    return Response(frameworks.export_csv(framework), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


@bp.route("/frameworks/import", methods=["GET", "POST"])
@role_required(ADMIN, COACH)
@idempotent
def import_framework():
    """A new framework from a CSV file: all of it, or nothing and the first problem (with its line)."""
    form = ImportForm()
    status = 422 if form.is_submitted() else 200
    if form.validate_on_submit():
        upload = form.file.data
        data = upload.read(frameworks.MAX_CSV_BYTES + 1) if upload else b""
        done = attempt(form, frameworks.import_csv, g.org.id, g.membership, form.title.data, data)
        if done:
            db.session.commit()
            flash(f"“{done.value.title}” is imported.", "success")
            return redirect_after_post(url_for("progress.framework", framework_id=done.value.id))
        status = done.status
    return render(IMPORT, status=status, org=g.org, form=form, max_rows=frameworks.MAX_CSV_ROWS)
