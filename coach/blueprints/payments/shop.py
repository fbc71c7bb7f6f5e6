"""The athlete's side: a coach's packs and plans to buy, and "My billing" (credits, subscriptions, payments)."""
from __future__ import annotations

from flask import abort, flash, g, request, url_for

from coach.blueprints.forms import ActionForm, attempt, require_action_form
from coach.blueprints.payments import bp
from coach.booking import service as booking
from coach.extensions import db
from coach.htmx import redirect_after_post, render
from coach.orgs.models import ADMIN
from coach.payments import catalog, subscriptions
from coach.platform.idempotency import idempotent
from coach.platform.pagination import decode_cursor
from coach.tenancy import role_required

SUBSCRIPTION_ACTIONS = {"cancel": "The plan ends at the end of this period.", "resume": "The plan renews again."}


def load_subscription(subscription_id: str):
    """A subscription I may change: my own (an admin: anyone's); 404 otherwise."""
    subscription = catalog.get_subscription(g.org, subscription_id)
    if subscription is None or (subscription.athlete_membership_id != g.membership.id
                                and g.membership.role != ADMIN):
        abort(404)
    return subscription


@bp.get("/coaches/<coach_id>")
@role_required()
def shop(coach_id: str):
    """A coach's credit packs and plans, each with a Buy button (the checkout is a POST)."""
    coach = booking.get_coach(g.org, coach_id) or abort(404)
    subscribed = {s.product_id for s in catalog.my_subscriptions(g.membership) if s.status in ("active", "past_due")}
    return render("payments/shop_coach.html", org=g.org, coach=coach, action_form=ActionForm(formdata=None),
                  items=catalog.details(catalog.buyable(coach)), subscribed=subscribed)


@bp.get("/mine")
@role_required()
def mine():
    """My billing: packs and credits, subscriptions, payment history with receipts."""
    after = request.args.get("after")
    if after and decode_cursor(after) is None:
        abort(400, "That page link is not valid.")
    history = catalog.my_payments(g.membership, after)
    return render("payments/shop_mine.html", "history", org=g.org, grants=catalog.my_grants(g.membership),
                  subscriptions=catalog.my_subscriptions(g.membership), history=history,
                  labels=catalog.labels_for(g.org.id, history.rows),
                  invoices=catalog.invoices_by_payment(g.org.id, [p.id for p in history.rows]),
                  sellers=catalog.sellers(g.org), action_form=ActionForm(formdata=None))


@bp.post("/subscriptions/<subscription_id>/<any(cancel, resume):action>")
@role_required()
@idempotent
def subscription_action(subscription_id: str, action: str):
    """Cancel a plan at the end of its period, or resume it before then."""
    subscription = load_subscription(subscription_id)
    require_action_form()
    change = subscriptions.cancel_at_period_end if action == "cancel" else subscriptions.resume
    done = attempt(None, change, subscription, g.membership)
    if done:
        db.session.commit()
        flash(SUBSCRIPTION_ACTIONS[action], "success")
    else:
        flash(done.error.message, "error")
    return redirect_after_post(url_for("payments.mine"))
