"""Getting started: the member's checklist (the home page's panel, or a page of its own), hiding it, and the two
steps that are a confirmation rather than a row somewhere (the organization's time zone, one's own profile)."""
from __future__ import annotations

from flask import g, url_for
from flask_login import current_user

from coach.blueprints.forms import require_action_form
from coach.blueprints.orgs import bp
from coach.extensions import db
from coach.governance import onboarding as steps
from coach.htmx import render, swap_or_redirect
from coach.platform.idempotency import idempotent
from coach.tenancy import role_required

PAGE = "orgs/onboarding/page.html"
CONFIRMED = {"timezone": "Time zone confirmed.", "profile": "Thanks: your name and time zone are set."}


def _context() -> dict:
    checklist = steps.checklist(g.org, g.membership, current_user)
    return {"org": g.org, "checklist": checklist, "on_home": steps.visible(g.membership, checklist)}


@bp.get("/o/<slug>/onboarding")
@role_required()
def onboarding(slug: str):
    """The member's first steps: the home page's panel for htmx (empty when it is hidden), else a page."""
    return render(PAGE, "panel", **_context())


@bp.post("/o/<slug>/onboarding/dismiss")
@role_required()
@idempotent
def onboarding_dismiss(slug: str):
    """Hide my checklist from the home page (the page of its own keeps it)."""
    require_action_form()
    steps.dismiss(g.membership)
    db.session.commit()
    return swap_or_redirect(PAGE, "dismissed", url_for("orgs.home", slug=slug),
                            "Checklist hidden. It stays on the Getting started page.")


@bp.post("/o/<slug>/onboarding/confirm/<any(timezone, profile):step>")
@role_required()
@idempotent
def onboarding_confirm(slug: str, step: str):
    """Say the organization's time zone (an admin) or my own name and zone are right as they are."""
    require_action_form()
    if step == "timezone":
        steps.confirm_timezone(g.org, g.membership)
    else:
        steps.confirm_profile(current_user)
    db.session.commit()
    return swap_or_redirect(PAGE, "panel", url_for("orgs.home", slug=slug), CONFIRMED[step], context=_context)
