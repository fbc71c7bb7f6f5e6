"""Subscriptions to plans: activation, renewals, failed payments with a grace period, cancel at period end and
resume, and the end of access (credits of each paid period, and the plan's spaces while access lasts).

States (``subscriptions.status``)::

    incomplete ── first payment ──▶ active ── invoice failed ──▶ past_due ── grace over (sweep) ──▶ ended
        │                             ▲  │                          │
        └─ checkout expired ─▶ ended  │  └── deleted / period over ─┼──────────────────────────────▶ ended
                                      └──── invoice paid ───────────┘

Every change is a compare-and-swap on the status seen, so a replayed or reordered provider event changes
nothing twice; each paid period is one payment (unique by the provider's invoice id) with one credit grant.
Services never commit.
"""
from __future__ import annotations

import calendar
import logging
import uuid
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError

from coach import clock
from coach.errors import DomainError, NotAllowed
from coach.extensions import db
from coach.orgs.models import ADMIN, Membership
from coach.payments import credits, provider
from coach.payments.events import PAYMENT_PAID, SUBSCRIPTION_CHANGED
from coach.payments.models import CARD, PLAN, Payment, Product, ProductSpace, Subscription, SubscriptionSpaceGrant
from coach.payments.settings import billing_settings
from coach.platform import audit
from coach.platform.jobs import after_commit, consumer, each_tenant
from coach.platform.outbox import emit
from coach.platform.periodic import periodic
from coach.spaces import service as spaces
from coach.spaces.models import Space

log = logging.getLogger(__name__)
UTC = timezone.utc
ACCESS = ("active", "past_due")  # the statuses that give access (credits granted, spaces)


class SubscriptionError(DomainError):
    pass


def from_unix(value) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value not in (None, "") else None


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` that many calendar months later (the 31st becomes the month's last day)."""
    years, index = divmod(moment.month - 1 + months, 12)
    year, month = moment.year + years, index + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def next_period(product: Product, start: datetime) -> tuple[datetime, datetime]:
    return start, add_months(start, 12 if product.interval == "year" else 1)


def _set(sub: Subscription, seen: tuple[str, ...], status: str, **values) -> bool:
    """Compare-and-swap the status (from one of ``seen``); emits ``SUBSCRIPTION_CHANGED`` when it moved."""
    before = sub.status
    changed = db.session.execute(
        update(Subscription).where(Subscription.tenant_id == sub.tenant_id, Subscription.id == sub.id,
                                   Subscription.status.in_(seen))
        .values(status=status, **values).returning(Subscription.id)).scalar()
    db.session.refresh(sub)
    if changed is not None and before != status:
        emit(SUBSCRIPTION_CHANGED, {"subscription_id": str(sub.id), "from": before, "to": status},
             tenant_id=sub.tenant_id)
    return changed is not None


def _lock(sub: Subscription) -> Subscription:
    db.session.execute(select(Subscription.id).where(Subscription.tenant_id == sub.tenant_id,
                                                     Subscription.id == sub.id).with_for_update())
    db.session.refresh(sub)
    return sub


def by_provider_id(tenant_id: uuid.UUID, provider_subscription_id: str | None) -> Subscription | None:
    if not provider_subscription_id:
        return None
    return db.session.scalar(select(Subscription).where(
        Subscription.tenant_id == tenant_id, Subscription.provider_subscription_id == provider_subscription_id))


# --- activation and renewals ---------------------------------------------------------------------------


def activate(payment: Payment, *, provider_subscription_id: str | None = None,
             provider_customer_id: str | None = None,
             period: tuple[datetime, datetime] | None = None) -> Subscription:
    """The plan's first payment arrived: the subscription is active for its first period, with that period's
    credits and the plan's spaces (called by :func:`coach.payments.checkout.complete`)."""
    sub = _lock(db.session.get(Subscription, payment.subscription_id))
    product = db.session.get(Product, sub.product_id)
    start, end = period or next_period(product, payment.paid_at or clock.now())
    values = {"current_period_start": start, "current_period_end": end, "grace_until": None, "ended_at": None}
    if provider_subscription_id:
        values["provider_subscription_id"] = provider_subscription_id
    if provider_customer_id:
        values["provider_customer_id"] = provider_customer_id
    _set(sub, ("incomplete", "ended"), "active", **values)
    credits.grant_for_period(sub, payment, start, end)
    grant_spaces(sub)
    return sub


def link_provider(payment: Payment, provider_subscription_id: str | None, provider_customer_id: str | None,
                  period: tuple[datetime, datetime] | None) -> None:
    """A later event of the first payment names the provider's subscription (or the exact period): note it."""
    sub = db.session.get(Subscription, payment.subscription_id)
    if sub is None:
        return
    values = {}
    if provider_subscription_id and not sub.provider_subscription_id:
        values["provider_subscription_id"] = provider_subscription_id
    if provider_customer_id and not sub.provider_customer_id:
        values["provider_customer_id"] = provider_customer_id
    if values:
        db.session.execute(update(Subscription).where(Subscription.tenant_id == sub.tenant_id,
                                                      Subscription.id == sub.id).values(**values))
        db.session.refresh(sub)


def abandon(payment: Payment) -> None:
    """The first payment's checkout expired or was cancelled: the subscription never started."""
    sub = db.session.get(Subscription, payment.subscription_id)
    if sub is not None:
        _set(sub, ("incomplete",), "ended", ended_at=clock.now())


def renew(sub: Subscription, *, invoice_id: str, provider_payment_id: str | None, amount_minor: int, currency: str,
          period: tuple[datetime, datetime]) -> str:
    """A renewal invoice was paid: one payment for the period (by the invoice id, once), its credits, and
    access again (a ``past_due`` subscription is active again)."""
    _lock(sub)
    if db.session.scalar(select(Payment.id).where(Payment.tenant_id == sub.tenant_id,
                                                Payment.provider_invoice_id == invoice_id)) is not None:
        return "renewal already recorded"
    product = db.session.get(Product, sub.product_id)
    currency = (currency or "").upper()
    if int(amount_minor) != product.price_minor or currency != product.currency:
        if provider_payment_id and int(amount_minor) > 0:
            provider.refund(provider_payment_id, int(amount_minor), reason="amount_mismatch",
                            idempotency_key=f"mismatch:{invoice_id}")
        return (f"refused: the renewal was {amount_minor} {currency}, the plan costs {product.price_minor} "
                f"{product.currency}; money sent back")
    payment = Payment(id=uuid.uuid4(), tenant_id=sub.tenant_id, athlete_membership_id=sub.athlete_membership_id,
                      coach_membership_id=product.coach_membership_id, purpose=PLAN, product_id=product.id,
                      subscription_id=sub.id, amount_minor=product.price_minor, currency=product.currency,
                      method=CARD, status="paid", provider_payment_id=provider_payment_id,
                      provider_invoice_id=invoice_id, paid_at=clock.now())
    try:
        with db.session.begin_nested():
            db.session.add(payment)
            db.session.flush()
    except IntegrityError:
        return "renewal already recorded"
    start, end = period
    _set(sub, ("active", "past_due", "ended"), "active", grace_until=None, ended_at=None,
         current_period_start=start, current_period_end=max(end, sub.current_period_end or end))
    credits.grant_for_period(sub, payment, start, end)
    grant_spaces(sub)
    emit(PAYMENT_PAID, {"payment_id": str(payment.id)}, tenant_id=sub.tenant_id)
    return f"renewed until {end.date().isoformat()}"


def payment_failed(sub: Subscription, reason: str = "") -> str:
    """A renewal could not be charged: ``past_due`` with access until ``grace_until`` (the organization's
    grace days); the provider keeps retrying, and a paid retry makes it active again."""
    _lock(sub)
    grace = timedelta(days=billing_settings(sub.tenant_id).grace_days)
    if _set(sub, ("active",), "past_due", grace_until=clock.now() + grace):
        return f"past due: access until {sub.grace_until.isoformat()}"
    return f"no change ({sub.status})"


def synchronise(sub: Subscription, obj: dict) -> str:
    """``customer.subscription.updated``: cancel at period end and the period as the provider says."""
    _lock(sub)
    if obj.get("status") in ("canceled", "incomplete_expired"):
        return end(sub, "ended at the provider")
    values = {}
    if "cancel_at_period_end" in obj and bool(obj["cancel_at_period_end"]) != sub.cancel_at_period_end:
        values["cancel_at_period_end"] = bool(obj["cancel_at_period_end"])
    period_end = from_unix(obj.get("current_period_end"))
    if period_end and sub.status in ACCESS and (sub.current_period_end is None or period_end > sub.current_period_end):
        values["current_period_end"] = period_end
        values["current_period_start"] = from_unix(obj.get("current_period_start")) or sub.current_period_start
    if not values:
        return "no change"
    db.session.execute(update(Subscription).where(Subscription.tenant_id == sub.tenant_id,
                                                  Subscription.id == sub.id).values(**values))
    db.session.refresh(sub)
    return "updated: " + ", ".join(sorted(values))


def end(sub: Subscription, reason: str, *, cancel_at_provider: bool = False) -> str:
    """Access ends: ``ended``, the spaces it added taken away. Credits already granted stay until they expire."""
    _lock(sub)
    if not _set(sub, ("incomplete", "active", "past_due"), "ended", ended_at=clock.now(), grace_until=None):
        return f"no change ({sub.status})"
    revoke_spaces(sub)
    audit.record("subscription.ended", actor=None, actor_label="system", target_type="subscription",
                 target_id=sub.id, details={"reason": reason})
    provider_id = sub.provider_subscription_id
    if cancel_at_provider and provider_id:
        after_commit(lambda: _cancel_at_provider(provider_id))
    return f"ended ({reason})"


def _cancel_at_provider(provider_subscription_id: str) -> None:
    try:
        provider.cancel_subscription(provider_subscription_id)
    except Exception as exc:
        log.warning("cancelling subscription %s at the provider failed: %s", provider_subscription_id, exc)


# --- the athlete's buttons ----------------------------------------------------------------------------


def _may_manage(sub: Subscription, actor: Membership) -> None:
    if actor.tenant_id != sub.tenant_id or (actor.id != sub.athlete_membership_id and actor.role != ADMIN):
        raise NotAllowed("Only the subscriber or an admin changes this subscription.")


def _provider_flag(sub: Subscription, flag: bool) -> None:
    if not sub.provider_subscription_id:
        return
    try:
        provider.set_cancel_at_period_end(sub.provider_subscription_id, flag)
    except DomainError:
        raise
    except Exception as exc:
        log.warning("set_cancel_at_period_end(%s) failed: %s", sub.provider_subscription_id, exc)
        raise SubscriptionError("The payment provider cannot be reached right now. Try again in a minute.",
                                status=503) from exc


def cancel_at_period_end(subscription: Subscription, actor: Membership) -> Subscription:
    """Stop renewing: access lasts until the period's end, then the subscription ends."""
    _may_manage(subscription, actor)
    _lock(subscription)
    if subscription.status not in ACCESS:
        raise SubscriptionError(f"This subscription is {subscription.status_label.lower()}: nothing to cancel.")
    if subscription.cancel_at_period_end:
        return subscription
    _provider_flag(subscription, True)
    subscription.cancel_at_period_end = True
    db.session.flush()
    audit.record("subscription.cancel_at_period_end", actor=actor.user, target_type="subscription",
                 target_id=subscription.id, details={})
    return subscription


def resume(subscription: Subscription, actor: Membership) -> Subscription:
    """Undo :func:`cancel_at_period_end` while the period lasts."""
    _may_manage(subscription, actor)
    _lock(subscription)
    if subscription.status not in ACCESS or not subscription.cancel_at_period_end:
        raise SubscriptionError("This subscription is not set to end: there is nothing to resume.")
    _provider_flag(subscription, False)
    subscription.cancel_at_period_end = False
    db.session.flush()
    audit.record("subscription.resumed", actor=actor.user, target_type="subscription",
                 target_id=subscription.id, details={})
    return subscription


# --- the plan's spaces --------------------------------------------------------------------------------


def grant_spaces(sub: Subscription) -> int:
    """Make the subscriber a member of each of the plan's spaces (noting whether we added them)."""
    athlete = db.session.get(Membership, sub.athlete_membership_id)
    added = 0
    for space in db.session.scalars(select(Space).join(ProductSpace, (ProductSpace.space_id == Space.id) & (
            ProductSpace.tenant_id == Space.tenant_id)).where(ProductSpace.tenant_id == sub.tenant_id,
                                                              ProductSpace.product_id == sub.product_id)).all():
        grant = db.session.scalar(select(SubscriptionSpaceGrant).where(
            SubscriptionSpaceGrant.tenant_id == sub.tenant_id, SubscriptionSpaceGrant.subscription_id == sub.id,
            SubscriptionSpaceGrant.space_id == space.id))
        if grant is not None and grant.revoked_at is None:
            continue
        was_member = spaces.space_membership(space, athlete) is not None
        if not was_member:
            spaces.admit(space, athlete)
            added += 1
        if grant is None:
            db.session.add(SubscriptionSpaceGrant(tenant_id=sub.tenant_id, subscription_id=sub.id,
                                                  space_id=space.id, added_member=not was_member))
        else:
            grant.revoked_at, grant.added_member = None, not was_member
        db.session.flush()
    return added


def revoke_spaces(sub: Subscription) -> int:
    """Access ended: leave the spaces the subscription added (never one the athlete was in before)."""
    athlete = db.session.get(Membership, sub.athlete_membership_id)
    removed = 0
    for grant in db.session.scalars(select(SubscriptionSpaceGrant).where(
            SubscriptionSpaceGrant.tenant_id == sub.tenant_id, SubscriptionSpaceGrant.subscription_id == sub.id,
            SubscriptionSpaceGrant.revoked_at.is_(None))).all():
        grant.revoked_at = clock.now()
        if grant.added_member and not _kept_by_another(sub, grant.space_id):
            space = db.session.get(Space, grant.space_id)
            try:
                with db.session.begin_nested():
                    spaces.leave(space, athlete)
                removed += 1
            except DomainError as exc:  # e.g. made host meanwhile: they stay
                log.info("subscriber %s stays in space %s: %s", athlete.id, space.id, exc)
    db.session.flush()
    return removed


def _kept_by_another(sub: Subscription, space_id: uuid.UUID) -> bool:
    """Another subscription of the same athlete still gives this space."""
    return db.session.scalar(select(SubscriptionSpaceGrant.id).join(Subscription, (
        Subscription.id == SubscriptionSpaceGrant.subscription_id) & (
        Subscription.tenant_id == SubscriptionSpaceGrant.tenant_id)).where(
        SubscriptionSpaceGrant.tenant_id == sub.tenant_id, SubscriptionSpaceGrant.space_id == space_id,
        SubscriptionSpaceGrant.revoked_at.is_(None), SubscriptionSpaceGrant.subscription_id != sub.id,
        Subscription.athlete_membership_id == sub.athlete_membership_id, Subscription.status.in_(ACCESS))
        .limit(1)) is not None


@consumer(SUBSCRIPTION_CHANGED)
def _note_change(payload: dict) -> None:
    """The status change in the worker's log (telling the athlete is the notifications' part: they may add a
    consumer of their own)."""
    log.info("subscription %s: %s -> %s", payload.get("subscription_id"), payload.get("from"), payload.get("to"))


# --- the sweep ----------------------------------------------------------------------------------------


def end_due(tenant_id: uuid.UUID, now: datetime | None = None) -> int:
    """End access that is over: ``past_due`` past its grace (and cancel at the provider, which would retry),
    and periods that ended with no renewal coming (cancelled at period end, or paid by hand)."""
    now = now or clock.now()
    done = 0
    for sub in db.session.scalars(select(Subscription).where(
            Subscription.tenant_id == tenant_id, Subscription.status == "past_due",
            Subscription.grace_until <= now).limit(500)).all():
        done += end(sub, "payment failed and the grace period is over", cancel_at_provider=True).startswith("ended")
    for sub in db.session.scalars(select(Subscription).where(
            Subscription.tenant_id == tenant_id, Subscription.status == "active",
            Subscription.current_period_end <= now,
            Subscription.cancel_at_period_end | Subscription.provider_subscription_id.is_(None)).limit(500)).all():
        done += end(sub, "the period is over and it does not renew").startswith("ended")
    return done


@periodic(every=300, name="sweep_subscriptions")
def sweep_subscriptions() -> int:
    return each_tenant(due_tenants(), end_due, "subscription sweep")


def due_tenants(now: datetime | None = None) -> list[uuid.UUID]:
    """Organizations with access to end (the migration's narrow definer function)."""
    return list(db.session.scalars(text("SELECT subscriptions_due_tenants(:now)"), {"now": now or clock.now()}))
