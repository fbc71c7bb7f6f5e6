"""Buying and coming back: the Buy button (to the provider's checkout), the page the buyer returns to (it
says what the webhook has applied: received, still processing, failed or expired) and the way back from a
checkout left without paying.
"""
from __future__ import annotations

import uuid

from flask import abort, g, redirect, request, url_for
from sqlalchemy import select

from coach.blueprints.forms import ActionForm, attempt, require_action_form
from coach.blueprints.payments import bp
from coach.booking.models import Booking, Offering
from coach.extensions import db
from coach.htmx import redirect_after_post, render
from coach.orgs.models import ATHLETE, STAFF
from coach.payments import checkout
from coach.payments.models import Product
from coach.platform.idempotency import idempotent
from coach.tenancy import role_required

RETURN = "payments/checkout_return.html"
CANCELLED = "payments/checkout_cancelled.html"


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def load_payment(payment_id: str):
    """A payment the member may see: the buyer's own, its coach's, or any for staff; 404 otherwise."""
    payment = checkout.payment_for(g.org.id, payment_id)
    me = g.membership
    if payment is None or not (payment.athlete_membership_id == me.id or payment.coach_membership_id == me.id
                               or me.role in STAFF):
        abort(404)
    return payment


@bp.post("/products/<product_id>/buy")
@role_required(ATHLETE)
@idempotent
def buy(product_id: str):
    """Open the provider's checkout for a pack or a plan and go there (the price is the product's)."""
    pid = _uuid(product_id)
    product = db.session.scalar(select(Product).where(Product.tenant_id == g.org.id, Product.id == pid)) \
        if pid else None
    if product is None:
        abort(404)
    require_action_form()
    done = attempt(None, checkout.start_product_checkout, product, g.membership, g.membership)
    if not done:
        abort(done.status, done.error.message)
    db.session.commit()
    _, url = done.value
    return redirect_after_post(url)


def _state(payment, returned_from: str | None = None) -> dict:
    """What the return page says, from the payment as the webhook left it. ``returned_from``: the checkout id
    the provider put in the success URL (a buyer sent back there has paid: processing until the webhook says)."""
    booking = offering = None
    if payment.booking_id is not None:
        booking = db.session.scalar(select(Booking).where(Booking.tenant_id == payment.tenant_id,
                                                          Booking.id == payment.booking_id))
        offering = db.session.get(Offering, booking.offering_id) if booking else None
    product = db.session.get(Product, payment.product_id) if payment.product_id else None
    if payment.status == "paid":
        state = "refunded" if payment.refunded_minor >= payment.amount_minor and payment.failure_reason else "paid"
    elif payment.status == "pending":
        state = "processing"
    elif payment.status == "failed":
        paid_meanwhile = bool(returned_from) and returned_from == payment.provider_checkout_id
        state = "processing" if paid_meanwhile else "failed"
    else:
        state = "expired"
    return dict(org=g.org, payment=payment, state=state, booking=booking, offering=offering, product=product,
                session_id=returned_from if state == "processing" else None,
                pay_url=checkout.pay_url(payment) if state == "failed" else None,
                action_form=ActionForm(formdata=None))


@bp.get("/checkout/<payment_id>")
@role_required()
def checkout_return(payment_id: str):
    """Where the provider sends the buyer back: received, processing (htmx asks again every 2 s; a plain
    link refreshes without JavaScript), failed (try again) or expired/cancelled (a way back)."""
    # The fragment replaces itself; once it has an answer it no longer asks again.
    return render(RETURN, "status", **_state(load_payment(payment_id), request.args.get("session_id")))


@bp.get("/checkout/<payment_id>/pay")
@role_required()
def checkout_resume(payment_id: str):
    """Back to the provider's page of a checkout still open (the booking's "pay now"), else this payment's page."""
    payment = load_payment(payment_id)
    url = checkout.pay_url(payment) if payment.athlete_membership_id == g.membership.id else None
    return redirect(url or url_for("payments.checkout_return", payment_id=payment.id), 303)


@bp.get("/checkout/<payment_id>/cancelled")
@role_required()
def checkout_cancel(payment_id: str):
    """The buyer left the provider's page without paying: pay after all, or give the time back."""
    payment = load_payment(payment_id)
    context = _state(payment)
    context["pay_url"] = checkout.pay_url(payment)
    return render(CANCELLED, **context)


@bp.post("/checkout/<payment_id>/abandon")
@role_required()
@idempotent
def checkout_abandon(payment_id: str):
    """Give up an unpaid checkout: its held time is freed at once (the booking is cancelled)."""
    payment = load_payment(payment_id)
    require_action_form()
    if payment.athlete_membership_id != g.membership.id and g.membership.role not in STAFF:
        abort(403)
    if payment.booking_id is not None:
        booking = db.session.scalar(select(Booking).where(Booking.tenant_id == g.org.id,
                                                          Booking.id == payment.booking_id))
        done = attempt(None, checkout.cancel_hold, booking, g.membership)
        if not done:
            abort(done.status, done.error.message)
    else:
        checkout.expire(payment, "Cancelled before it was paid.", status="cancelled")
    db.session.commit()
    return redirect_after_post(url_for("payments.checkout_return", payment_id=payment.id))
