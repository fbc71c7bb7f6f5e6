"""The operators' console: organizations' sizes and activity, queues, failed jobs, the outbox, slow routes.

Platform admins only (``flask platform-admin grant``); for everyone else, signed in or not, every URL here is
a 404, so the console's existence is not revealed. CSRF is checked after that gate (the blueprint is exempt
from the app-wide check, which would otherwise answer 400 before it).
"""
from __future__ import annotations

from flask import abort, flash, request, url_for
from flask_login import current_user

from coach.blueprints.forms import ActionForm, require_action_form
from coach.blueprints.operator import bp
from coach.extensions import csrf, db
from coach.governance import operator
from coach.htmx import redirect_after_post, render
from coach.platform.idempotency import idempotent

csrf.exempt(bp)


@bp.before_request
def _platform_admins_only():
    if not (current_user.is_authenticated and current_user.platform_admin):
        abort(404)
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()


@bp.get("/", strict_slashes=False)  # no redirect from /platform that would tell a stranger it exists
def index():
    """Every organization's figures, the queues, failed jobs, the outbox and the slowest routes."""
    problems = []
    orgs = operator.organizations()
    try:
        queues, failed = operator.queues(), operator.failed_jobs(orgs)
    except Exception:  # Redis away: say so, keep the page
        queues, failed = [], []
        problems.append("Redis does not answer: queues and failed jobs cannot be shown right now.")
    return render("operator/index.html", orgs=orgs, queues=queues, failed=failed, outbox=operator.outbox(),
                  routes=operator.slowest_routes(), multiprocess=operator.multiprocess_metrics(),
                  problems=problems, sessions_days=operator.SESSIONS_DAYS, action_form=ActionForm(formdata=None))


@bp.post("/jobs/<job_id>/<action>")
@idempotent
def job_action(job_id: str, action: str):
    """Retry or delete any organization's failed job."""
    if action not in ("retry", "delete") or len(job_id) > 100:
        abort(404)
    require_action_form()
    done = (operator.retry_job if action == "retry" else operator.delete_job)(job_id, current_user)
    if not done:
        abort(404, "No such failed job (it may have been retried or deleted already).")
    db.session.commit()
    flash("Job queued again." if action == "retry" else "Job deleted.", "success")
    return redirect_after_post(url_for("operator.index") + "#failed-jobs")
