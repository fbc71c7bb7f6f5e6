"""The admin's billing settings: currency, commission, tax, seller details, windows, refunds by coaches."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from functools import lru_cache

from flask import flash, g, request, url_for
from wtforms import BooleanField, DecimalField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, ValidationError

from coach import money
from coach.blueprints.forms import BaseForm, attempt
from coach.blueprints.payments import bp
from coach.extensions import db
from coach.htmx import redirect_after_post, render
from coach.orgs.models import ADMIN
from coach.payments import catalog
from coach.payments.settings import billing_settings
from coach.platform.idempotency import idempotent
from coach.tenancy import role_required

TEMPLATE = "payments/settings_form.html"


@lru_cache(maxsize=1)
def currency_choices() -> list[SelectChoice]:
    """Every ISO currency Babel knows, by code, with its English name."""
    return [SelectChoice(code, f"{code} — {money.name(code)}") for code in sorted(money.currencies())]


class PercentField(DecimalField):
    """A percentage with at most two decimals (stored as basis points); "NaN" and "Infinity" are not one."""

    def process_formdata(self, valuelist):
        super().process_formdata(valuelist)
        if self.data is not None and not self.data.is_finite():
            self.data = None
            raise ValueError("Enter a percentage like 10 or 7.5.")

    def pre_validate(self, form):
        try:
            if self.data is not None and self.data != self.data.quantize(Decimal("0.01")):
                raise ValidationError("Use at most two decimals.")
        except InvalidOperation as exc:
            raise ValidationError("Enter a percentage like 10 or 7.5.") from exc

    @property
    def basis_points(self) -> int:
        return int(self.data * 100)


class SettingsForm(BaseForm):
    currency = SelectField("Currency", choices=currency_choices, description=(
        "Prices, payments and receipts are in this currency. It cannot change once a payment was taken."))
    commission_percent = PercentField("Commission (%)", places=2, description=(
        "The organization's share of every session and credit; the coach earns the rest."), validators=[
        InputRequired(message="Enter the commission (0 for none)."),
        NumberRange(0, 100, message="Between 0 and 100 percent.")])
    tax_percent = PercentField("Tax rate (%)", places=2, description="Prices include it; receipts show it.",
                               validators=[InputRequired(message="Enter the tax rate (0 for none)."),
                                           NumberRange(0, 50, message="Between 0 and 50 percent.")])
    tax_label = StringField("Tax label", description="VAT, GST, sales tax…", validators=[
        DataRequired(message="Name the tax (e.g. VAT)."), Length(max=40, message="At most 40 characters.")])
    seller_name = StringField("Seller name (on receipts)", validators=[
        Optional(), Length(max=200, message="At most 200 characters.")])
    seller_address = TextAreaField("Seller address", validators=[
        Optional(), Length(max=1000, message="At most 1,000 characters.")])
    seller_tax_id = StringField("Seller tax id", validators=[
        Optional(), Length(max=40, message="At most 40 characters.")])
    dispute_window_hours = IntegerField("Dispute window (hours)", description=(
        "How long after a session its earnings stay pending before the coach can be paid."), validators=[
        InputRequired(message="Enter the hours (0 for none)."),
        NumberRange(0, 2160, message="Between 0 and 2,160 hours (90 days).")])
    grace_days = IntegerField("Grace after a failed renewal (days)", validators=[
        InputRequired(message="Enter the days (0 for none)."), NumberRange(0, 60, message="Between 0 and 60 days.")])
    coaches_may_refund = BooleanField("Coaches may refund their own sales")

    def fill_from(self, settings) -> None:
        for name in ("currency", "tax_label", "seller_name", "seller_address", "seller_tax_id",
                     "dispute_window_hours", "grace_days", "coaches_may_refund"):
            getattr(self, name).data = getattr(settings, name)
        self.commission_percent.data = Decimal(settings.commission_bps) / 100
        self.tax_percent.data = Decimal(settings.tax_rate_bps) / 100

    def values(self) -> dict:
        return dict(currency=self.currency.data, commission_bps=self.commission_percent.basis_points,
                    tax_rate_bps=self.tax_percent.basis_points, tax_label=self.tax_label.data.strip(),
                    seller_name=(self.seller_name.data or "").strip(),
                    seller_address=(self.seller_address.data or "").strip(),
                    seller_tax_id=(self.seller_tax_id.data or "").strip(),
                    dispute_window_hours=self.dispute_window_hours.data, grace_days=self.grace_days.data,
                    coaches_may_refund=bool(self.coaches_may_refund.data))


@bp.route("/settings", methods=["GET", "POST"])
@role_required(ADMIN)
@idempotent
def settings():
    """Billing settings of the organization (admins)."""
    current = billing_settings(g.org.id)
    form = SettingsForm()
    if request.method == "GET":
        form.fill_from(current)
    status = 200
    if form.validate_on_submit():
        saved = attempt(form, catalog.save_settings, g.org.id, form.values(), g.membership)
        if saved:
            db.session.commit()
            flash("Billing settings saved.", "success")
            return redirect_after_post(url_for("payments.settings"))
        status = saved.status
        current = billing_settings(g.org.id)
    elif form.is_submitted():
        status = 422
    return render(TEMPLATE, "form", status=status, org=g.org, form=form, current=current,
                  locked=catalog.has_payments(g.org.id))
