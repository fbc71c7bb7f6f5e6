"""Organization admin: the audit trail and the System page (queues, failed jobs, outbox)."""
from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import Response, abort, flash, g, request, stream_with_context, url_for

from coach.blueprints.admin import bp
from coach.blueprints.admin.forms import AuditFilterForm
from coach.blueprints.forms import ActionForm, require_action_form
from coach.clock import now
from coach.extensions import db
from coach.htmx import redirect_after_post, render
from coach.ids import parse_uuid
from coach.orgs.models import ADMIN
from coach.platform import audit, system
from coach.platform.idempotency import idempotent
from coach.platform.pagination import decode_cursor
from coach.tenancy import role_required


def _audit_filter(form: AuditFilterForm) -> audit.AuditFilter:
    zone = ZoneInfo(g.org.timezone)
    since = datetime.combine(form.since.data, time.min, zone) if form.since.data else None
    until = datetime.combine(form.until.data + timedelta(days=1), time.min, zone) if form.until.data else None
    return audit.AuditFilter(actor=(form.actor.data or "").strip() or None,
                             action=(form.action.data or "").strip() or None, since=since, until=until)


@bp.get("/audit")
@role_required(ADMIN)
def audit_log():
    """The audit trail, newest first, filtered by actor, action and dates; keyset paged."""
    form = AuditFilterForm(request.args)
    if not form.validate():
        # The htmx filter swaps only the rows, so they carry the messages too.
        return render("admin/audit.html", "rows", status=422, org=g.org, form=form, events=[], next_cursor=None,
                      actions=audit.actions(g.org.id))
    if form.after.data and decode_cursor(form.after.data) is None:
        abort(400, "That page link is not valid.")
    page = audit.page(g.org.id, _audit_filter(form), form.after.data or None)
    return render("admin/audit.html", "rows", org=g.org, form=form, events=page.rows, next_cursor=page.next_cursor,
                  actions=audit.actions(g.org.id))


@bp.get("/audit.csv")
@role_required(ADMIN)
def audit_csv():
    """The filtered audit trail as a CSV download."""
    form = AuditFilterForm(request.args)
    if not form.validate():
        abort(400, "Check the filters: " + "; ".join(e for errs in form.errors.values() for e in errs))
    chunks = audit.export_csv(g.org.id, _audit_filter(form))
    filename = f"audit-{g.org.slug}-{now().astimezone(ZoneInfo(g.org.timezone)):%Y%m%d}.csv"
    return Response(stream_with_context(chunks), content_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@bp.get("/system")
@role_required(ADMIN)
def system_page():
    """This organization's background work: its waiting events, failed jobs and dead letters.

    Platform-wide figures (every organization's queues and outbox) are the operators' (``/metrics``,
    ``rq info``): an organization's admins see their own organization only."""
    problems = []
    try:
        failed = system.failed_jobs(g.org.id)
    except Exception:  # Redis away: say so, keep the page
        failed = []
        problems.append("Redis does not answer: failed jobs cannot be listed right now.")
    return render("admin/system.html", org=g.org, failed=failed, problems=problems,
                  outbox=system.org_outbox_stats(g.org.id), dead=system.dead_letters(g.org.id),
                  action_form=ActionForm(formdata=None))


@bp.post("/system/dead-letters/<event_id>/retry")
@role_required(ADMIN)
@idempotent
def retry_dead_letter(event_id: str):
    """Put a dead outbox event back in line."""
    require_action_form()
    ident = parse_uuid(event_id)
    if ident is None or not system.retry_dead_letter(g.org.id, ident):
        abort(404)
    audit.record("outbox.retried", actor=g.membership.user, target_type="outbox_event", target_id=event_id)
    db.session.commit()
    flash("The event will be delivered again.", "success")
    return redirect_after_post(url_for("admin.system_page"))


@bp.post("/system/jobs/<job_id>/<action>")
@role_required(ADMIN)
@idempotent
def failed_job_action(job_id: str, action: str):
    """Retry or discard a failed job of this organization."""
    if action not in ("retry", "discard") or len(job_id) > 100:
        abort(404)
    require_action_form()
    done = (system.retry_failed_job if action == "retry" else system.discard_failed_job)(g.org.id, job_id)
    if not done:
        abort(404)
    audit.record(f"job.{action}", actor=g.membership.user, target_type="job", target_id=job_id)
    db.session.commit()
    flash("Job queued again." if action == "retry" else "Job discarded.", "success")
    return redirect_after_post(url_for("admin.system_page"))
