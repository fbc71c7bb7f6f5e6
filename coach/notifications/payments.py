"""In-app notices of the payments domain: the athlete is told of a refund (the email with its credit note
goes out with the refund itself, so this kind stays in the app by default); the organization's admins are
told of a dispute (money taken back by the card's bank), which needs an answer at the provider."""
from __future__ import annotations

import uuid

from sqlalchemy import select

from coach.extensions import db
from coach.notifications import service
from coach.orgs.models import ADMIN, Membership, Organization
from coach.orgs.service import members_with_role
from coach.money import format as money_label
from coach.payments.events import (CREDITS_RETURNED, PAYMENT_DISPUTED, PAYMENT_FAILED, PAYMENT_REFUNDED,
                                   SUBSCRIPTION_CHANGED)
from coach.payments.models import CreditGrant, Payment, Subscription
from coach.platform.jobs import consumer

def _payment(payload: dict) -> tuple[Payment, Organization] | None:
    payment = db.session.scalar(select(Payment).where(Payment.id == uuid.UUID(payload["payment_id"])))
    if payment is None:
        return None
    return payment, db.session.get(Organization, payment.tenant_id)


@consumer(PAYMENT_REFUNDED)
def tell_athlete_of_refund(payload: dict) -> None:
    """The athlete sees the refund (and its credit note) in the app."""
    found = _payment(payload)
    if found is None:
        return
    payment, org = found
    athlete = db.session.scalar(select(Membership).where(Membership.tenant_id == payment.tenant_id,
                                                         Membership.id == payment.athlete_membership_id))
    note = payload.get("credit_note_id")
    url = f"/o/{org.slug}/billing/receipts/{note}" if note else f"/o/{org.slug}/billing/mine"
    service.notify(athlete, "payment_refunded", dedupe_key=f"refund:{payment.id}:{note or payload['amount_minor']}",
                   title=f"{org.name} refunded {money_label(payload['amount_minor'], payment.currency)}",
                   url=url, body=payload.get("reason") or "", subject_id=payment.id)
    service.announce()


@consumer(PAYMENT_DISPUTED)
def tell_admins_of_dispute(payload: dict) -> None:
    """Every admin of the organization is told: a dispute has a deadline to answer at the provider."""
    found = _payment(payload)
    if found is None:
        return
    payment, org = found
    amount = money_label(payload["amount_minor"], payment.currency)
    for admin in members_with_role(org, ADMIN, limit=200):
        service.notify(admin, "payment_disputed", dedupe_key=f"dispute:{payment.id}:{payload['amount_minor']}",
                       title=f"A payment of {payment.amount_label} is disputed ({amount} taken back)",
                       url=f"/o/{org.slug}/billing/payments/{payment.id}",
                       body="Answer the dispute at the payment provider before its deadline.", subject_id=payment.id)
    service.announce()


@consumer(CREDITS_RETURNED)
def tell_athlete_of_returned_credit(payload: dict) -> None:
    """A cancelled session's credit went back to its pack: the athlete sees it, with what is left."""
    grant = db.session.scalar(select(CreditGrant).where(CreditGrant.id == uuid.UUID(payload["grant_id"])))
    if grant is None:
        return
    org = db.session.get(Organization, grant.tenant_id)
    athlete = db.session.scalar(select(Membership).where(Membership.tenant_id == grant.tenant_id,
                                                         Membership.id == grant.athlete_membership_id))
    left = grant.credits_remaining
    service.notify(athlete, "payment_refunded", dedupe_key=f"credit-returned:{payload['booking_id']}",
                   title=f"Your credit is back in {grant.product.title} ({left} left)",
                   url=f"/o/{org.slug}/billing/mine", body="", subject_id=grant.id)
    service.announce()


def _member(tenant_id, membership_id) -> Membership | None:
    return db.session.scalar(select(Membership).where(Membership.tenant_id == tenant_id,
                                                      Membership.id == membership_id))


@consumer(PAYMENT_FAILED)
def tell_athlete_of_failed_payment(payload: dict) -> None:
    """A declined card (or a payment refused for not matching): the athlete learns it and can try again."""
    found = _payment(payload)
    if found is None:
        return
    payment, org = found
    reason = payload.get("reason") or ""
    service.notify(_member(payment.tenant_id, payment.athlete_membership_id), "payment_problem",
                   dedupe_key=f"payment-failed:{payment.id}:{reason[:80]}",
                   title=f"Your payment of {payment.amount_label} did not go through",
                   url=f"/o/{org.slug}/billing/checkout/{payment.id}", body=reason, subject_id=payment.id)
    service.announce()


# What a plan's change of status tells its subscriber (other changes need no word).
PLAN_NEWS = {
    "past_due": "The payment for {plan} failed: access continues until {grace}, then ends unless it is paid",
    "ended": "{plan} has ended",
}


@consumer(SUBSCRIPTION_CHANGED)
def tell_athlete_of_plan_change(payload: dict) -> None:
    """A renewal that failed (with the grace left), a plan that ended, or one active again after a failure."""
    sub = db.session.scalar(select(Subscription).where(Subscription.id == uuid.UUID(payload["subscription_id"])))
    before, after = payload.get("from"), payload.get("to")
    if sub is None:
        return
    if after in PLAN_NEWS:
        grace = sub.grace_until.strftime("%-d %b %Y") if sub.grace_until else "the grace period ends"
        title = PLAN_NEWS[after].format(plan=sub.product.title, grace=grace)
    elif after == "active" and before == "past_due":
        title = f"{sub.product.title} is paid and active again"
    else:
        return
    org = db.session.get(Organization, sub.tenant_id)
    service.notify(_member(sub.tenant_id, sub.athlete_membership_id), "payment_problem",
                   dedupe_key=f"plan:{sub.id}:{after}:{sub.current_period_end and sub.current_period_end.isoformat()}",
                   title=title, url=f"/o/{org.slug}/billing/mine", body="", subject_id=sub.id)
    service.announce()
