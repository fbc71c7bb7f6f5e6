"""Organization admin: members and their roles, invitations."""
from __future__ import annotations

import uuid

from flask import abort, flash, g, url_for

from coach.blueprints.admin.forms import ActionForm, InviteForm, RoleForm
from coach.extensions import db
from coach.htmx import redirect_after_post, render, trigger
from coach.orgs import service
from coach.platform.idempotency import idempotent
from coach.orgs.models import ROLE_LABELS
from coach.orgs.service import OrgError
from coach.tenancy import role_required
from coach.blueprints.admin import bp



def _load_membership(membership_id: str):
    membership = service.get_membership(g.org, _uuid_or_404(membership_id))
    if membership is None:
        abort(404)
    return membership


def _load_invitation(invitation_id: str):
    invitation = service.get_invitation(g.org, _uuid_or_404(invitation_id))
    if invitation is None:
        abort(404)
    return invitation


def _uuid_or_404(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        abort(404)


def _members_page(status: int = 200, invite_form: InviteForm | None = None, block: str | None = None):
    return render("admin/members.html", block, status=status, org=g.org, me=g.membership,
                  members=service.members(g.org), invitations=service.pending_invitations(g.org),
                  roles=ROLE_LABELS, invite_form=invite_form or InviteForm(formdata=None),
                  role_form=RoleForm(formdata=None), action_form=ActionForm(formdata=None))


@bp.get("/members")
@role_required("admin")
def members():
    """Members with their roles, and pending invitations."""
    return _members_page()


@bp.post("/members/<membership_id>/role")
@role_required("admin")
def change_role(membership_id: str):
    """Give a member another role."""
    membership = _load_membership(membership_id)
    form = RoleForm()
    if not form.validate_on_submit():
        flash("Choose one of the listed roles.", "error")
        return _members_page(status=422, block="members")
    try:
        service.change_role(g.org, membership, form.role.data, actor=g.membership.user)
    except OrgError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return _members_page(status=422, block="members")
    db.session.commit()
    trigger("members-changed")
    if membership.id == g.membership.id and membership.role != "admin":
        # The members page is admin-only now: send them where they still may go.
        flash(f"You are now {ROLE_LABELS[membership.role].lower()} in {g.org.name}.", "success")
        return redirect_after_post(url_for("orgs.home", slug=g.org.slug))
    flash(f"{membership.user.display_name} is now {ROLE_LABELS[membership.role].lower()}.", "success")
    return redirect_after_post(url_for("admin.members"))


@bp.post("/members/<membership_id>/remove")
@role_required("admin")
def remove_member(membership_id: str):
    """Remove a member from the organization (their account stays)."""
    membership = _load_membership(membership_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    name, leaving = membership.user.display_name, membership.id == g.membership.id
    try:
        service.remove_member(g.org, membership, actor=g.membership.user)
    except OrgError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return _members_page(status=422, block="members")
    db.session.commit()
    if leaving:  # this organization is a 404 for them now
        flash(f"You left {g.org.name}.", "success")
        return redirect_after_post(url_for("orgs.picker"))
    flash(f"{name} was removed from {g.org.name}.", "success")
    return redirect_after_post(url_for("admin.members"))


@bp.post("/invitations")
@role_required("admin")
@idempotent
def invite():
    """Invite someone by email with a role."""
    form = InviteForm()
    if form.validate_on_submit():
        try:
            service.invite(g.org, g.membership, form.email.data, form.role.data)
        except OrgError as exc:
            db.session.rollback()
            form.email.errors.append(str(exc))
        else:
            db.session.commit()
            flash(f"Invitation sent to {form.email.data.strip().lower()}.", "success")
            return redirect_after_post(url_for("admin.members"))
    return _members_page(status=422, invite_form=form, block="invite")


@bp.post("/invitations/<invitation_id>/resend")
@role_required("admin")
@idempotent
def resend_invitation(invitation_id: str):
    """Send the invitation again with a fresh link."""
    invitation = _load_invitation(invitation_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        service.resend_invitation(g.org, invitation, g.membership.user)
    except OrgError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        db.session.commit()
        flash(f"Invitation sent again to {invitation.email}.", "success")
    return redirect_after_post(url_for("admin.members"))


@bp.post("/invitations/<invitation_id>/revoke")
@role_required("admin")
def revoke_invitation(invitation_id: str):
    """Withdraw an invitation; its link stops working."""
    invitation = _load_invitation(invitation_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        service.revoke_invitation(invitation, actor=g.membership.user)
    except OrgError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        db.session.commit()
        flash(f"Invitation to {invitation.email} revoked.", "success")
    return redirect_after_post(url_for("admin.members"))
