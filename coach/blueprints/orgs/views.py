"""Organization picker, creation, home, and accepting invitations."""
from __future__ import annotations

from flask import abort, flash, redirect, request, session, url_for
from flask_login import current_user, login_required

from coach import tenancy
from coach.blueprints.auth import start_session
from coach.blueprints.forms import ActionForm, attempt, require_action_form
from coach.blueprints.orgs import bp
from coach.blueprints.orgs.forms import CreateOrganizationForm, InvitationSignupForm
from coach.extensions import db
from coach.htmx import redirect_after_post, render
from coach.orgs import service
from coach.orgs.models import ROLE_LABELS
from coach.platform.idempotency import idempotent


@bp.get("/")
def index():
    """Where a member lands (after signing in too): the last organization used, else their only one, else the
    picker; the welcome page for visitors."""
    if not current_user.is_authenticated:
        return render("orgs/welcome.html")
    last = service.membership_by_slug(current_user, session.get("last_org") or "")
    if last is not None:
        return redirect(url_for("orgs.home", slug=last.organization.slug))
    session.pop("last_org", None)  # left or removed since: don't send them to a 404
    memberships = service.memberships_of(current_user)
    if len(memberships) == 1:
        return redirect(url_for("orgs.home", slug=memberships[0].organization.slug))
    return redirect(url_for("orgs.picker"))


@bp.get("/orgs")
@login_required
def picker():
    """Switch organization: every organization I belong to."""
    return render("orgs/picker.html", memberships=service.memberships_of(current_user), roles=ROLE_LABELS)


@bp.route("/orgs/new", methods=["GET", "POST"])
@login_required
@idempotent
def create():
    """Create an organization; I become its admin."""
    form = CreateOrganizationForm()
    if form.validate_on_submit() and (created := attempt(form, service.create_organization, current_user,
                                                         form.name.data, form.slug.data, form.timezone.data)):
        db.session.commit()
        flash(f"{created.value.name} is ready. Invite your coaches and athletes.", "success")
        return redirect_after_post(url_for("orgs.home", slug=created.value.slug))
    if not form.is_submitted():
        form.timezone.preselect(request.headers.get("Accept-Language"), known=current_user.timezone)
    return render("orgs/create.html", "form", status=422 if form.errors else 200, form=form)


def _load_invitation(slug: str, token: str):
    """The organization and open invitation behind a link, or an explanatory 404/410 page."""
    org = service.org_by_slug(slug) if len(slug) <= 40 and len(token) <= 100 else None
    if org is None:
        abort(404, "This invitation link is not valid. Ask for a new invitation.")
    tenancy.activate(org.id, current_user.id if current_user.is_authenticated else None)
    return org, service.find_open_invitation(org, token)


@bp.get("/invitations/<slug>/<token>")
def invitation(slug: str, token: str):
    """An invitation: accept it (signed in) or create an account to accept it."""
    org, invitation = _load_invitation(slug, token)
    signup_form = InvitationSignupForm(formdata=None)
    signup_form.timezone.preselect(request.headers.get("Accept-Language"))
    return render("orgs/invitation.html", org=org, invitation=invitation, token=token, roles=ROLE_LABELS,
                  accept_form=ActionForm(), signup_form=signup_form)


@bp.post("/invitations/<slug>/<token>/accept")
@login_required
@idempotent
def invitation_accept(slug: str, token: str):
    """Join the organization as the signed-in user."""
    org, _ = _load_invitation(slug, token)
    require_action_form()
    service.accept_invitation(org, token, current_user)
    db.session.commit()
    flash(f"Welcome to {org.name}!", "success")
    return redirect_after_post(url_for("orgs.home", slug=org.slug))


@bp.post("/invitations/<slug>/<token>/signup")
def invitation_signup(slug: str, token: str):
    """Create an account for the invited address and join in one step."""
    org, invitation = _load_invitation(slug, token)
    form = InvitationSignupForm()
    if form.validate_on_submit():
        joined = attempt(form, service.sign_up_and_accept, org, token, form.password.data, form.display_name.data,
                         form.timezone.data)
        if joined:
            db.session.commit()
            start_session(joined.value)
            flash(f"Welcome to {org.name}!", "success")
            return redirect_after_post(url_for("orgs.home", slug=org.slug))
    return render("orgs/invitation.html", "signup", status=422, org=org, invitation=invitation, token=token,
                  roles=ROLE_LABELS, accept_form=ActionForm(), signup_form=form)
