"""The coach's earnings (pending, available, paid out; a chart per month with its table) and the admin's
payout reports (page and CSV) with the form that records a payout made by hand."""
from __future__ import annotations

from datetime import date

from flask import abort, flash, g, make_response, request, url_for
from flask_login import current_user
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from coach import clock, money
from coach.blueprints.forms import BaseForm, attempt
from coach.blueprints.payments import bp
from coach.extensions import db
from coach.htmx import redirect_after_post, render
from coach.orgs.models import ADMIN, COACH, Membership
from coach.orgs.service import members_with_role
from coach.payments import earnings, payouts
from coach.tenancy import role_required

REPORT = "payments/payouts_report.html"


class PayoutForm(BaseForm):
    coach = StringField("Coach", validators=[DataRequired()])
    start = StringField("From", validators=[DataRequired()])
    end = StringField("To", validators=[DataRequired()])
    reference = StringField("Transfer reference", validators=[
        DataRequired(message="Enter the transfer's reference (e.g. the bank transfer's ID)."),
        Length(max=payouts.REFERENCE_MAX, message=f"Use at most {payouts.REFERENCE_MAX} characters.")],
        description="What the coach finds on their bank statement.")


def load_coach(coach_id: str | None) -> Membership:
    """A coach of this organization (404 for anything else, another organization's included)."""
    for coach in members_with_role(g.org, COACH, limit=1000):
        if str(coach.id) == (coach_id or ""):
            return coach
    abort(404)


def parse_day(value: str | None, default: date) -> date:
    if not value:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        abort(400, "Use dates like 2026-11-30.")


def period(args) -> tuple[date, date]:
    today = clock.now().date()
    start = parse_day(args.get("start"), today.replace(day=1))
    end = parse_day(args.get("end"), today)
    if start > end or (end - start).days > payouts.MAX_PERIOD_DAYS:
        abort(400, f"Choose a period from its start to its end, at most {payouts.MAX_PERIOD_DAYS} days.")
    return start, end


@bp.get("/earnings", endpoint="earnings")
@role_required(COACH, ADMIN)
def earnings_page():
    """My earnings as a coach (an admin may look at a coach's with ?coach=)."""
    if g.membership.role == COACH:
        coach = g.membership
    elif request.args.get("coach"):
        coach = load_coach(request.args.get("coach"))
    else:  # an admin chooses a coach on the payouts page
        return redirect_after_post(url_for("payments.payouts"))
    tz = current_user.timezone or "UTC"
    months = earnings.monthly(coach, tz=tz)
    return render("payments/earnings_coach.html", "earnings", org=g.org, coach=coach, mine=coach.id == g.membership.id,
                  totals=earnings.summary(coach), charts=earnings.chart(months), recent=earnings.recent(coach),
                  tz=tz, statuses=payouts.STATUS_LABELS)


def _report_context(form: PayoutForm | None = None):
    coach_id = request.values.get("coach")
    coaches = members_with_role(g.org, COACH, limit=1000)
    start, end = period(request.values)
    rep = payouts.report(load_coach(coach_id), start, end) if coach_id else None
    if form is None:
        form = PayoutForm(formdata=None, coach=coach_id or "", start=str(start), end=str(end))
    return dict(org=g.org, coaches=coaches, rep=rep, start=start, end=end, form=form, coach_id=coach_id or "")


@bp.get("/payouts", endpoint="payouts")
@role_required(ADMIN)
def payouts_page():
    """A coach's payout report for a period, and the form that records the payout."""
    return render(REPORT, "report", **_report_context())


@bp.get("/payouts.csv")
@role_required(ADMIN)
def payouts_csv():
    """The payout report as a CSV download."""
    start, end = period(request.args)
    rep = payouts.report(load_coach(request.args.get("coach")), start, end)
    response = make_response(payouts.report_csv(rep))
    response.mimetype = "text/csv"
    response.headers["Content-Disposition"] = f'attachment; filename="{payouts.csv_filename(rep)}"'
    return response


@bp.post("/payouts")
@role_required(ADMIN)
def record_payout():
    """Record a payout made by hand: the period's available earnings become paid."""
    form = PayoutForm()
    if form.validate_on_submit():
        coach = load_coach(form.coach.data)
        start, end = period(request.form)
        done = attempt(form, payouts.record, coach, start, end, form.reference.data, g.membership)
        if done:
            db.session.commit()
            total = ", ".join(money.format(p.amount_minor, p.currency) for p in done.value)
            flash(f"Payout recorded for {coach.user.display_name}: {total}.", "success")
            return redirect_after_post(url_for("payments.payouts", coach=coach.id, start=start, end=end))
        status = done.status
    else:
        status = 422
    return render(REPORT, "report", status=status, **_report_context(form))

