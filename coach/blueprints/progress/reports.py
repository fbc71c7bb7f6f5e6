"""Progress reports: an athlete's reports with their progress bars (polling while they build), the request form,
the guardian's email and weekly opt-out, the stored HTML page, the PDF download, retry, and the emailed link."""
from __future__ import annotations

from datetime import timedelta

from flask import abort, g, make_response, redirect, request
from wtforms import BooleanField, DateField, EmailField
from wtforms.validators import Email, InputRequired, Length, Optional

from coach.blueprints.forms import ActionForm, BaseForm, attempt, require_action_form
from coach.blueprints.progress import bp
from coach.errors import DomainError
from coach.extensions import db
from coach.htmx import redirect_after_post, render, wants_fragment
from coach.platform import tenant_context
from coach.platform.idempotency import idempotent
from coach.progress import reports
from coach.progress.access import ProgressError, is_staff, load_athlete
from coach.tenancy import role_required

# The stored page is ours but served as a document of its own: no script, nothing from elsewhere, sandboxed.
REPORT_CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; frame-ancestors 'self'; sandbox"


class RequestForm(BaseForm):
    period_start = DateField("First day", validators=[InputRequired(message="Choose the first day.")])
    period_end = DateField("Last day", validators=[InputRequired(message="Choose the last day.")])


class SettingsForm(BaseForm):
    guardian_email = EmailField("Guardian's email", validators=[
        Optional(), Length(max=254, message="An email address has at most 254 characters."),
        Email(message="Enter a valid email address.", check_deliverability=False)],
        description="Reports are emailed to this address too. Leave blank for none.")
    weekly_report = BooleanField("Email a report every Monday (the week before)")


def _page(athlete, form=None, settings=None, status=200):
    today = reports.athlete_today(athlete)
    if form is None:
        form = RequestForm(formdata=None, period_start=today - timedelta(days=27), period_end=today)
    profile = reports.profile_of(athlete)
    if settings is None:
        settings = SettingsForm(formdata=None, guardian_email=profile.guardian_email if profile else "",
                                weekly_report=profile.weekly_report if profile else True)
    return render("progress/reports.html", ("request_form", "settings_form"), status=status, org=g.org,
                  athlete=athlete, own=athlete.id == g.membership.id, staff=is_staff(g.membership),
                  items=reports.of_athlete(athlete), form=form, settings=settings, action=ActionForm(), today=today)


@bp.get("/athletes/<athlete_id>/reports", endpoint="reports")
@role_required()
def reports_page(athlete_id: str):
    return _page(load_athlete(g.membership, athlete_id))


@bp.post("/athletes/<athlete_id>/reports", endpoint="report_request")
@role_required()
@idempotent
def report_request(athlete_id: str):
    athlete = load_athlete(g.membership, athlete_id)
    form = RequestForm()
    if not form.validate_on_submit():
        return _page(athlete, form=form, status=422)
    done = attempt(form, reports.request, athlete, g.membership, form.period_start.data, form.period_end.data)
    if not done:
        return _page(athlete, form=form, status=done.status)
    db.session.commit()
    # The new report is the list's first line. (No "#report-..." in the URL: htmx's redirect to the page's own URL
    # with only a fragment added would scroll instead of loading the page.)
    return redirect_after_post(request.path)


@bp.post("/athletes/<athlete_id>/reports/settings", endpoint="report_settings")
@role_required()
@idempotent
def report_settings(athlete_id: str):
    athlete = load_athlete(g.membership, athlete_id)
    settings = SettingsForm()
    if not settings.validate_on_submit():
        return _page(athlete, settings=settings, status=422)
    done = attempt(settings, reports.update_settings, g.membership, athlete, settings.guardian_email.data,
                   settings.weekly_report.data)
    if not done:
        return _page(athlete, settings=settings, status=done.status)
    db.session.commit()
    return redirect_after_post(request.path.rsplit("/", 1)[0])


@bp.get("/reports/<report_id>/status", endpoint="report_status")
@role_required()
def report_status(report_id: str):
    """One report's line: a fragment for the page's poll (every second while it builds), or a small page."""
    report = reports.load(g.membership, report_id)
    return render("progress/report_status.html", "status", org=g.org, report=report, action=ActionForm(),
                  can_retry=reports.can_retry(report))


@bp.post("/reports/<report_id>/retry", endpoint="report_retry")
@role_required()
@idempotent
def report_retry(report_id: str):
    require_action_form()
    report = reports.load(g.membership, report_id)
    reports.retry(g.membership, report)
    db.session.commit()
    if wants_fragment():  # the line swaps itself in place (and polls again)
        return render("progress/report_status.html", "status", org=g.org, report=report, action=ActionForm(),
                      can_retry=False)
    return redirect_after_post(f"/o/{g.org.slug}/progress/athletes/{report.athlete_membership_id}/reports")


@bp.get("/reports/<report_id>", endpoint="report_view")
@role_required()
def report_view(report_id: str):
    """The stored HTML page of a ready report, streamed after checking the viewer may see the athlete."""
    report = reports.load(g.membership, report_id)
    body = reports.html_bytes(report)
    response = make_response(body)
    response.mimetype = "text/html"
    response.headers["Content-Security-Policy"] = REPORT_CSP
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/reports/<report_id>/pdf", endpoint="report_pdf")
@role_required()
def report_pdf(report_id: str):
    """The PDF: a redirect to a signed storage URL that lives five minutes."""
    report = reports.load(g.membership, report_id)
    return redirect(reports.file_url(report, "download"), 303)


@bp.get("/reports/<report_id>/link", endpoint="report_link")
def report_link(report_id: str):
    """The emailed link: its token (signed, 7 days) opens this one report's PDF, logged in or not (a guardian has
    no account). Anything else about the athlete still needs a login."""
    try:
        tenant_id = reports.read_token(request.args.get("token"), report_id)
    except DomainError as exc:
        abort(exc.status)
    if g.get("org") is not None and g.org.id != tenant_id:
        abort(403)
    with tenant_context.acting_for(tenant_id):
        report = reports.report_by_id(tenant_id, report_id)
        if report is None:
            abort(404)
        try:
            url = reports.file_url(report, "inline")
        except ProgressError as exc:
            abort(exc.status)
    response = redirect(url, 303)
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
