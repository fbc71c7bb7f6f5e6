"""Refunding a payment: the form (amount, reason) for admins, and for the payment's coach when the
organization allows it."""
from __future__ import annotations

from flask import abort, flash, g, url_for
from werkzeug.routing import BuildError
from wtforms import StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from coach import money
from coach.blueprints.forms import BaseForm, attempt
from coach.blueprints.payments import bp
from coach.extensions import db
from coach.htmx import redirect_after_post, render
from coach.orgs.models import ADMIN, COACH
from coach.payments import refunds
from coach.platform.idempotency import idempotent
from coach.tenancy import role_required

FORM = "payments/refund_form.html"


class RefundForm(BaseForm):
    amount = StringField("Amount to refund", validators=[DataRequired(message="Enter an amount.")])
    reason = TextAreaField("Reason", validators=[
        DataRequired(message="Say why (the athlete reads it)."),
        Length(max=refunds.REASON_MAX, message=f"Use at most {refunds.REASON_MAX} characters.")],
        description="The athlete reads it in the refund's email and credit note.")


def load_refundable(payment_id: str):
    """The payment, if this member may refund it (404 when it is not this organization's, 403 otherwise)."""
    payment = refunds.get_payment(g.org.id, payment_id) or abort(404)
    if not refunds.may_refund(g.membership, payment):
        abort(403)
    return payment


def _back(payment) -> str:
    try:
        return url_for("payments.payment", payment_id=payment.id)
    except BuildError:  # the payments admin page is another module's; until it exists, stay here
        return url_for("payments.refund", payment_id=payment.id)


def _parse_amount(form: RefundForm, currency: str) -> int:
    return money.parse(form.amount.data, currency, allow_zero=False)


@bp.route("/payments/<payment_id>/refund", methods=["GET", "POST"], endpoint="refund")
@role_required(ADMIN, COACH)
@idempotent
def refund_page(payment_id: str):
    """Refund part or all of a payment (the provider first, then our books)."""
    payment = load_refundable(payment_id)
    form = RefundForm()
    status = 200
    if form.validate_on_submit():
        done = attempt(form, lambda: refunds.refund(payment, _parse_amount(form, payment.currency),
                                                    reason=form.reason.data, actor=g.membership))
        if done:
            db.session.commit()
            flash(f"Refunded {money.format(_parse_amount(form, payment.currency), payment.currency)}; "
                  "the athlete was told by email.", "success")
            return redirect_after_post(_back(payment))
        status = done.status
        payment = load_refundable(payment_id)
    elif form.is_submitted():
        status = 422
    elif payment.refundable_minor:
        form.amount.data = money.plain(payment.refundable_minor, payment.currency)
    return render(FORM, "form", status=status, org=g.org, payment=payment, form=form,
                  history=refunds.refunds_of(payment), back=_back(payment))
