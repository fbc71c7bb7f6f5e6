"""Payments for the people who run the money: every payment with filters and totals (admins), one payment with
its ledger and invoices (admins, its coach, its athlete), and a payment recorded by hand (admins and coaches)."""
from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import abort, flash, g, request, url_for
from wtforms import DateField, HiddenField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from coach.blueprints.forms import BaseForm, attempt
from coach.blueprints.payments import bp
from coach.booking import service as booking
from coach.extensions import db
from coach.htmx import redirect_after_post, render
from coach.ids import parse_uuid
from coach.orgs.models import ADMIN, ATHLETE, COACH
from coach.orgs.service import members_with_role
from coach.payments import catalog, checkout
from coach.payments.models import CARD, MANUAL, PAYMENT_STATUS_LABELS, PURPOSES
from coach.platform.idempotency import idempotent
from coach.platform.pagination import decode_cursor
from coach.tenancy import role_required

PURPOSE_LABELS = {"session": "Session", "pack": "Credit pack", "plan": "Plan"}
METHOD_LABELS = {CARD: "Card", MANUAL: "By hand"}


def _choices(labels: dict) -> list[SelectChoice]:
    return [SelectChoice("", "Any"), *(SelectChoice(k, v) for k, v in labels.items())]


class PaymentFilterForm(BaseForm):
    """The payments list's filters (a GET form: no CSRF token)."""

    class Meta:
        csrf = False

    status = SelectField("Status", choices=_choices(PAYMENT_STATUS_LABELS), validators=[Optional()])
    method = SelectField("Method", choices=_choices(METHOD_LABELS), validators=[Optional()])
    purpose = SelectField("For", choices=_choices({k: PURPOSE_LABELS[k] for k in PURPOSES}), validators=[Optional()])
    coach = SelectField("Coach", validate_choice=False, validators=[Optional()])
    since = DateField("From", validators=[Optional()])
    until = DateField("Until (inclusive)", validators=[Optional()])
    after = HiddenField(validators=[Optional(), Length(max=200)])

    def validate_coach(self, field):
        if field.data and parse_uuid(field.data) is None:
            raise ValidationError("Choose a coach from the list.")

    def validate_until(self, field):
        if field.data and self.since.data and field.data < self.since.data:
            raise ValidationError("The end comes before the start.")

    def as_filter(self, tz: str) -> catalog.PaymentFilter:
        zone = ZoneInfo(tz)
        return catalog.PaymentFilter(
            status=self.status.data or None, method=self.method.data or None, purpose=self.purpose.data or None,
            coach_id=parse_uuid(self.coach.data) if self.coach.data else None,
            since=datetime.combine(self.since.data, time.min, zone) if self.since.data else None,
            until=datetime.combine(self.until.data + timedelta(days=1), time.min, zone) if self.until.data else None)

    def query(self) -> dict:
        """The filters as the page was asked for (for the next page's link)."""
        return {name: (self[name].raw_data[0] if self[name].raw_data else None) or None
                for name in ("status", "method", "purpose", "coach", "since", "until")}


@bp.get("/payments")
@role_required(ADMIN)
def admin_payments():
    """Every payment of the organization, newest first, filtered; totals over everything the filters match."""
    form = PaymentFilterForm(request.args)
    coaches = booking.coaches(g.org)
    form.coach.choices = [SelectChoice("", "Any"), *(SelectChoice(str(c.id), c.user.display_name) for c in coaches)]
    context = dict(org=g.org, form=form, coaches=coaches, filters=form.query())
    if not form.validate():
        return render("payments/admin_payments.html", "rows", status=422, page=None, totals=[], labels=None,
                      **context)
    if form.after.data and decode_cursor(form.after.data) is None:
        abort(400, "That page link is not valid.")
    flt = form.as_filter(g.org.timezone)
    page = catalog.payments_page(g.org, flt, form.after.data or None)
    return render("payments/admin_payments.html", "rows", page=page, totals=catalog.payment_totals(g.org, flt),
                  labels=catalog.labels_for(g.org.id, page.rows), **context)


@bp.get("/payments/<payment_id>")
@role_required()
def payment(payment_id: str):
    """One payment: what, who, amounts, its ledger transactions and invoices, and a refund link if allowed."""
    found = catalog.get_payment(g.org, payment_id)
    if found is None or not catalog.may_view_payment(g.membership, found):
        abort(404)
    show_ledger = g.membership.role == ADMIN or g.membership.id == found.coach_membership_id
    return render("payments/admin_payment.html", org=g.org, payment=found, **catalog.payment_subject(found),
                  ledger=catalog.payment_ledger(found) if show_ledger else None,
                  invoices=catalog.invoices_by_payment(g.org.id, [found.id])[found.id],
                  may_refund=catalog.may_refund(g.membership, found))


class ManualPaymentForm(BaseForm):
    athlete = SelectField("Athlete", validate_choice=False, validators=[DataRequired(message="Choose the athlete.")])
    product = SelectField("Pack or plan", validate_choice=False,
                          validators=[DataRequired(message="Choose what was bought.")])
    reference = StringField("Reference", description="The bank transfer's reference, the cash receipt number…",
                            validators=[DataRequired(message="Enter a reference (a payment by hand needs one)."),
                                        Length(max=120, message="At most 120 characters.")])


def _manual_choices(form: ManualPaymentForm) -> None:
    form.athlete.choices = [SelectChoice(str(m.id), f"{m.user.display_name} ({m.user.email})")
                            for m in members_with_role(g.org, ATHLETE, limit=1000)]
    if g.membership.role == COACH:
        products = [(g.membership, p) for p in catalog.buyable(g.membership)]
    else:
        products = [(c, p) for c in booking.coaches(g.org) for p in catalog.buyable(c)]
    form.product.choices = [SelectChoice(str(p.id), f"{p.title} · {p.price_label} ({c.user.display_name})")
                            for c, p in products]


def _record(form: ManualPaymentForm):
    athlete = booking.get_athlete(g.org, form.athlete.data)
    product = catalog.get_product(g.org, form.product.data)
    if athlete is None:
        raise catalog.CatalogError("Choose an athlete of this organization.")
    if product is None or (g.membership.role == COACH and product.coach_membership_id != g.membership.id):
        raise catalog.CatalogError("Choose one of the packs or plans in the list.")
    catalog.ensure_buyable(product)
    return checkout.record_manual_payment(athlete=athlete, actor=g.membership, reference=form.reference.data.strip(),
                                          product=product)


@bp.route("/payments/manual", methods=["GET", "POST"])
@role_required(ADMIN, COACH)
@idempotent
def record_payment():
    """Record a pack or plan paid by hand (cash, bank transfer): the price is the product's, never typed."""
    form = ManualPaymentForm()
    _manual_choices(form)
    status = 422 if form.is_submitted() else 200
    if form.validate_on_submit():
        done = attempt(form, _record, form)
        if done:
            db.session.commit()
            flash(f"Recorded: {done.value.amount_label} from {done.value.athlete.user.display_name}.", "success")
            return redirect_after_post(url_for("payments.payment", payment_id=done.value.id))
        status = done.status
    return render("payments/admin_manual.html", "form", status=status, org=g.org, form=form)
