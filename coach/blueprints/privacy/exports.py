"""Exporting data: a person's own (every organization they belong to) and an organization's (its admins)."""
from __future__ import annotations

from flask import abort, flash, g, redirect, request, url_for
from flask_login import current_user, login_required

from coach.blueprints.forms import ActionForm, attempt, require_action_form
from coach.blueprints.privacy import bp, org
from coach.errors import DomainError
from coach.extensions import db
from coach.htmx import redirect_after_post, render
from coach.orgs.models import ADMIN
from coach.platform.idempotency import idempotent
from coach.privacy import exports
from coach.tenancy import role_required


def _download_link(kind: str, endpoint: str):
    """A template helper: the signed download URL of a ready export (the same link the email carries)."""
    return lambda export: url_for(endpoint, export_id=export.id, token=exports.link_token(kind, export))


def _account_page(form: ActionForm | None = None, status: int = 200):
    return render("privacy/account.html", "export_section", status=status, form=form or ActionForm(),
                  items=exports.account_exports(current_user), contents=exports.ACCOUNT_CONTENTS,
                  download=_download_link(exports.ACCOUNT, "privacy.export_download"),
                  status_endpoint="privacy.export_status", page_url=url_for("privacy.account"))


def _download(kind: str, export_id: str, load):
    """Check the link's signature, then load the export (the caller's, or their organization's), then redirect
    to a short-lived signed storage URL of its ZIP; a refusal is its 4xx page."""
    try:
        exports.check_token(kind, request.args.get("token"), export_id)
        url = exports.download_url(load())
    except DomainError as exc:
        abort(exc.status, exc.message)
    response = redirect(url, 303)
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("", endpoint="account")
@login_required
def account():
    """The privacy page: export my data (and deleting the account, slice E's section)."""
    return _account_page()


@bp.post("/exports", endpoint="request_export")
@login_required
@idempotent
def request_export():
    """Ask for an export of my data; a second one while one is being made is refused with the reason."""
    require_action_form()
    form = ActionForm()
    done = attempt(form, exports.request_account_export, current_user)
    if not done:
        return _account_page(form, status=done.status)
    db.session.commit()
    flash("Your export is being made. We will email you the link when it is ready.", "success")
    return redirect_after_post(url_for("privacy.account"))


@bp.get("/exports/<export_id>/status", endpoint="export_status")
@login_required
def export_status(export_id: str):
    """One export's line: the fragment its poll swaps in (every 2 s while it is made), or a small page."""
    export = exports.load_account_export(current_user, export_id)
    return render("privacy/export_status.html", "status", export=export,
                  download=_download_link(exports.ACCOUNT, "privacy.export_download"),
                  status_endpoint="privacy.export_status", page_url=url_for("privacy.account"))


@bp.get("/exports/<export_id>/download", endpoint="export_download")
@login_required
def export_download(export_id: str):
    """The emailed (or shown) link: a valid signature for this export, the caller's own export, then a redirect
    to a short-lived signed storage URL of the ZIP."""
    return _download(exports.ACCOUNT, export_id, lambda: exports.load_account_export(current_user, export_id))


# --- an organization's export (its admins) ---------------------------------------------------------------------


def _org_page(form: ActionForm | None = None, status: int = 200):
    return render("privacy/organization.html", "export_section", status=status, org=g.org,
                  form=form or ActionForm(), items=exports.org_exports(g.org), contents=exports.ORG_CONTENTS,
                  download=_download_link(exports.ORGANIZATION, "org_privacy.export_download"),
                  status_endpoint="org_privacy.export_status", page_url=url_for("org_privacy.index"))


@org.get("", endpoint="index")
@role_required(ADMIN)
def org_index():
    """The organization's privacy page: export everything (and closing it, slice E's section)."""
    return _org_page()


@org.post("/exports", endpoint="request_export")
@role_required(ADMIN)
@idempotent
def org_request_export():
    """Ask for an export of the whole organization."""
    require_action_form()
    form = ActionForm()
    done = attempt(form, exports.request_org_export, g.org, g.membership)
    if not done:
        return _org_page(form, status=done.status)
    db.session.commit()
    flash("The export is being made. We will email you the link when it is ready.", "success")
    return redirect_after_post(url_for("org_privacy.index"))


@org.get("/exports/<export_id>/status", endpoint="export_status")
@role_required(ADMIN)
def org_export_status(export_id: str):
    """One export's line, for the poll."""
    export = exports.load_org_export(g.org, export_id)
    return render("privacy/export_status.html", "status", org=g.org, export=export,
                  download=_download_link(exports.ORGANIZATION, "org_privacy.export_download"),
                  status_endpoint="org_privacy.export_status", page_url=url_for("org_privacy.index"))


@org.get("/exports/<export_id>/download", endpoint="export_download")
@role_required(ADMIN)
def org_export_download(export_id: str):
    """The emailed link: a valid signature for this organization's export, and the caller one of its admins."""
    return _download(exports.ORGANIZATION, export_id, lambda: exports.load_org_export(g.org, export_id))
