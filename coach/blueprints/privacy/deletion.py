"""Deleting an account (after a grace period) and closing an organization.

The forms are sections of the privacy pages (``privacy/_account_deletion.html``, ``privacy/_org_closing.html``);
a refusal is flashed on the page it came from, re-shown with the refusal's status.
"""
from __future__ import annotations

from flask import flash, g, url_for
from flask_login import current_user, login_required
from wtforms import BooleanField, StringField
from wtforms.validators import Length

from coach.blueprints.auth import fresh_auth_required
from coach.blueprints.forms import BaseForm, attempt, require_action_form
from coach.blueprints.privacy import bp, org
from coach.blueprints.privacy.exports import _account_page, _org_page
from coach.extensions import db
from coach.htmx import redirect_after_post
from coach.orgs.models import ADMIN
from coach.platform.idempotency import idempotent
from coach.privacy import closing, deletion
from coach.tenancy import role_required


class DeletionForm(BaseForm):
    erase_content = BooleanField("Also remove the text of my posts, comments and messages")


class ClosingForm(BaseForm):
    slug = StringField("Type the organization's address to confirm", validators=[Length(max=40)])


def _refused(done, page, form: BaseForm):
    for message in [*form.form_errors, *[e for errors in form.errors.values() for e in errors]] or ["Try again."]:
        flash(message, "error")
    return page(status=done.status if done is not None else 400)


def _act(form: BaseForm, page, back: str, told, action, *args):
    """Run ``action(*args)`` for a valid form, commit, flash ``told(result)`` and go to ``back`` (an endpoint); a
    refusal re-shows ``page`` with its message and status."""
    done = attempt(form, action, *args) if form.validate_on_submit() else None
    if not done:
        return _refused(done, page, form)
    db.session.commit()
    flash(told(done.value), "success")
    return redirect_after_post(url_for(back))


@bp.post("/deletion", endpoint="request_deletion")
@login_required
@fresh_auth_required
@idempotent
def request_deletion():
    """Schedule my account's deletion in 14 days (asked again while pending: refused, it is already scheduled)."""
    form = DeletionForm()
    return _act(form, _account_page, "privacy.account",
                lambda user: f"Your account will be deleted on {deletion.due_label(user)}. Sign in before then to "
                "keep it; every other session was signed out.",
                deletion.request_deletion, current_user, form.erase_content.data)


@bp.post("/deletion/cancel", endpoint="cancel_deletion")
@login_required
@idempotent
def cancel_deletion():
    """Keep my account after all."""
    require_action_form()
    kept = deletion.cancel_deletion(current_user)
    db.session.commit()
    flash("Your account will not be deleted." if kept else "Your account was not scheduled for deletion.",
          "success")
    return redirect_after_post(url_for("privacy.account"))


@org.post("/closing", endpoint="request_closing")
@role_required(ADMIN)
@fresh_auth_required
@idempotent
def request_closing():
    """Close the organization in 14 days (an admin who typed its address); every member is emailed."""
    form = ClosingForm()
    return _act(form, _org_page, "org_privacy.index",
                lambda org: f"{org.name} will close on {closing.closes_on(org)}. Every member was emailed; you can "
                "cancel until then.", closing.request_closing, g.org, current_user, form.slug.data)


@org.post("/closing/cancel", endpoint="cancel_closing")
@role_required(ADMIN)
@idempotent
def cancel_closing():
    """Keep the organization open (an admin, before the closing day)."""
    return _act(ClosingForm(), _org_page, "org_privacy.index",
                lambda org: f"{org.name} stays open. Every member was emailed.", closing.cancel_closing, g.org,
                current_user)
