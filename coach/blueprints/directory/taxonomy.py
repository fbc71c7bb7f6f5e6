"""The organization's taxonomy editor (admins): sports or games, and their skills, roles and levels."""
from __future__ import annotations

from flask import abort, flash, g, url_for
from wtforms import HiddenField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional

from coach.blueprints.directory import bp
from coach.blueprints.forms import BaseForm, attempt
from coach.directory import taxonomy as terms
from coach.directory.models import TERM_KIND_LABELS, TERM_KINDS
from coach.extensions import db
from coach.htmx import redirect_after_post, render
from coach.orgs.models import ADMIN
from coach.platform.idempotency import idempotent
from coach.tenancy import role_required

PAGE = "directory/taxonomy.html"
CONFIRM = "directory/taxonomy_delete.html"


class TermForm(BaseForm):
    # The service checks the name (it says what is wrong); the lengths here only keep huge posts out early.
    name = StringField("Name", validators=[Length(max=1000)], render_kw={"maxlength": terms.NAME_MAX})
    kind = SelectField("Kind", choices=[SelectChoice(k, TERM_KIND_LABELS[k]) for k in TERM_KINDS],
                       validate_choice=False)
    parent_id = HiddenField(validators=[Optional(), Length(max=64)])


class RenameForm(BaseForm):
    name = StringField("New name", validators=[Length(max=1000)], render_kw={"maxlength": terms.NAME_MAX})


class MoveForm(BaseForm):
    step = HiddenField()


def load_term(term_id: str):
    return terms.get_term(g.org, term_id) or abort(404)


def _page(status: int = 200, form: TermForm | None = None, error: str | None = None, failed_id=None):
    return render(PAGE, status=status, org=g.org, tree=terms.terms_tree(g.org),
                  form=form or TermForm(formdata=None), error=error, failed_id=failed_id,
                  child_kinds=[(k, TERM_KIND_LABELS[k]) for k in terms.CHILD_KINDS])


def _done(message: str):
    db.session.commit()
    flash(message, "success")
    return redirect_after_post(url_for("directory.taxonomy"))


@bp.route("/admin/taxonomy", methods=["GET", "POST"])
@role_required(ADMIN)
@idempotent
def taxonomy():
    """The taxonomy; a POST adds a sport or game, or a skill, role or level under one."""
    if not TermForm().is_submitted():
        return _page()
    form = TermForm()
    if not form.validate():
        return _page(400 if getattr(form, "csrf_token", None) is not None and form.csrf_token.errors else 422, form,
                     "Check the name.")
    added = attempt(form, terms.add_term, g.org, form.kind.data, form.name.data, g.membership,
                    parent_id=form.parent_id.data or None)
    if not added:
        return _page(added.status, form, str(added.error), failed_id=form.parent_id.data)
    return _done(f"Added “{added.value.name}”.")


@bp.post("/admin/taxonomy/<term_id>/rename")
@role_required(ADMIN)
@idempotent
def rename_term(term_id: str):
    """Rename a term (profiles keep it: they link the term, not its name)."""
    term = load_term(term_id)
    form = RenameForm()
    if not form.validate():
        abort(400, "This form was incomplete or expired. Reload the page and try again.")
    done = attempt(form, terms.rename_term, term, form.name.data, g.membership)
    if not done:
        return _page(done.status, error=str(done.error), failed_id=str(term.id))
    return _done(f"Renamed to “{term.name}”.")


@bp.post("/admin/taxonomy/<term_id>/move")
@role_required(ADMIN)
@idempotent
def move_term(term_id: str):
    """Move a term up or down among its siblings."""
    term = load_term(term_id)
    form = MoveForm()
    if not form.validate() or form.step.data not in ("up", "down"):
        abort(400, "This form was incomplete or expired. Reload the page and try again.")
    terms.move_term(term, -1 if form.step.data == "up" else 1, g.membership)
    return _done(f"Moved “{term.name}”.")


@bp.route("/admin/taxonomy/<term_id>/delete", methods=["GET", "POST"])
@role_required(ADMIN)
@idempotent
def delete_term(term_id: str):
    """Confirm, then delete a term (a sport or game with everything under it) and profiles' links to it."""
    term = load_term(term_id)
    form = MoveForm()
    if not form.is_submitted():
        children = [t for d in terms.terms_tree(g.org) if d.term.id == term.id for t in d.all_children]
        return render(CONFIRM, org=g.org, term=term, children=children, used_by=terms.usage(g.org, term),
                      form=MoveForm(formdata=None), kind_label=TERM_KIND_LABELS[term.kind])
    if not form.validate():
        abort(400, "This form was incomplete or expired. Reload the page and try again.")
    name = term.name
    terms.delete_term(term, g.membership)
    return _done(f"Deleted “{name}”.")
