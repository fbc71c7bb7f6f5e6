"""Organization admin: members and their roles, invitations."""
from __future__ import annotations

from flask import abort, flash, g, url_for

from coach.blueprints.admin import bp
from coach.blueprints.admin.forms import InviteForm, RoleForm
from coach.blueprints.forms import ActionForm, attempt, require_action_form
from coach.extensions import db
from coach.htmx import redirect_after_post, render, trigger
from coach.ids import parse_uuid
from coach.orgs import service
from coach.orgs.models import ADMIN, ROLE_LABELS
from coach.platform.idempotency import idempotent
from coach.tenancy import role_required


def _load_membership(membership_id: str):
    """A member of this organization, or 404."""
    ident = parse_uuid(membership_id)
    membership = service.get_membership(g.org, ident) if ident else None
    if membership is None:
        abort(404)
    return membership


def _load_invitation(invitation_id: str):
    """An invitation of this organization, or 404."""
    ident = parse_uuid(invitation_id)
    invitation = service.get_invitation(g.org, ident) if ident else None
    if invitation is None:
        abort(404)
    return invitation


def _members_page(status: int = 200, invite_form: InviteForm | None = None, block: str | None = None):
    return render("admin/members.html", block, status=status, org=g.org, me=g.membership,
                  members=service.members(g.org), invitations=service.pending_invitations(g.org),
                  roles=ROLE_LABELS, invite_form=invite_form or InviteForm(formdata=None),
                  role_form=RoleForm(formdata=None), action_form=ActionForm(formdata=None))


@bp.get("/members")
@role_required(ADMIN)
def members():
    """Members with their roles, and pending invitations."""
    return _members_page()


@bp.post("/members/<membership_id>/role")
@role_required(ADMIN)
@idempotent
def change_role(membership_id: str):
    """Give a member another role."""
    membership = _load_membership(membership_id)
    form = RoleForm()
    if not form.validate_on_submit():
        flash("Choose one of the listed roles.", "error")
        return _members_page(status=422, block="members")
    changed = attempt(None, service.change_role, g.org, membership, form.role.data, actor=g.membership.user)
    if not changed:
        flash(str(changed.error), "error")
        return _members_page(status=changed.status, block="members")
    db.session.commit()
    trigger("members-changed")
    if membership.id == g.membership.id and membership.role != ADMIN:
        # The members page is admin-only now: send them where they still may go.
        flash(f"You are now {ROLE_LABELS[membership.role].lower()} in {g.org.name}.", "success")
        return redirect_after_post(url_for("orgs.home", slug=g.org.slug))
    flash(f"{membership.user.display_name} is now {ROLE_LABELS[membership.role].lower()}.", "success")
    return redirect_after_post(url_for("admin.members"))


@bp.post("/members/<membership_id>/remove")
@role_required(ADMIN)
@idempotent
def remove_member(membership_id: str):
    """Remove a member from the organization (their account stays)."""
    membership = _load_membership(membership_id)
    require_action_form()
    name, leaving = membership.user.display_name, membership.id == g.membership.id
    removed = attempt(None, service.remove_member, g.org, membership, actor=g.membership.user)
    if not removed:
        flash(str(removed.error), "error")
        return _members_page(status=removed.status, block="members")
    db.session.commit()
    if leaving:  # this organization is a 404 for them now
        flash(f"You left {g.org.name}.", "success")
        return redirect_after_post(url_for("orgs.picker"))
    flash(f"{name} was removed from {g.org.name}.", "success")
    return redirect_after_post(url_for("admin.members"))


@bp.post("/invitations")
@role_required(ADMIN)
@idempotent
def invite():
    """Invite someone by email with a role."""
    form = InviteForm()
    if form.validate_on_submit() and attempt(form, service.invite, g.org, g.membership, form.email.data,
                                             form.role.data):
        db.session.commit()
        flash(f"Invitation sent to {form.email.data.strip().lower()}.", "success")
        return redirect_after_post(url_for("admin.members"))
    return _members_page(status=422, invite_form=form, block="invite")


@bp.post("/invitations/<invitation_id>/resend")
@role_required(ADMIN)
@idempotent
def resend_invitation(invitation_id: str):
    """Send the invitation again with a fresh link."""
    invitation = _load_invitation(invitation_id)
    require_action_form()
    sent = attempt(None, service.resend_invitation, g.org, invitation, g.membership.user)
    if sent:
        db.session.commit()
        flash(f"Invitation sent again to {invitation.email}.", "success")
    else:
        flash(str(sent.error), "error")
    return redirect_after_post(url_for("admin.members"))


@bp.post("/invitations/<invitation_id>/revoke")
@role_required(ADMIN)
@idempotent
def revoke_invitation(invitation_id: str):
    """Withdraw an invitation; its link stops working."""
    invitation = _load_invitation(invitation_id)
    require_action_form()
    revoked = attempt(None, service.revoke_invitation, invitation, actor=g.membership.user)
    if revoked:
        db.session.commit()
        flash(f"Invitation to {invitation.email} revoked.", "success")
    else:
        flash(str(revoked.error), "error")
    return redirect_after_post(url_for("admin.members"))
