"""Session credits: granted by a paid pack or a plan's period, spent one per booking, given back by the
cancellation policy, expired or revoked with what is left.

A credit can never be spent twice. Spending is one conditional ``UPDATE credit_grants SET credits_remaining =
credits_remaining - 1 WHERE ... AND credits_remaining > 0 AND <not expired> AND <not revoked> RETURNING ...``
in the same transaction as the booking: concurrent spenders of one grant queue on that row's lock, and each
re-reads the row when its turn comes (READ COMMITTED re-checks the WHERE on the newest version), so once the
grant is at zero the others change nothing and get :class:`NoCreditsLeft`. The CHECK
``credits_remaining BETWEEN 0 AND credits_total`` is the net under it. The weekly limit is counted under the
same row lock.

Every change of ``credits_remaining`` is posted to the ledger in the unit ``CREDIT`` in the same transaction
(``credits_outstanding`` of the grant against ``credits_issued``), and the money each credit stands for moves
from ``athlete_prepaid`` of the grant to the coach's earnings when it is spent (:mod:`coach.payments.earnings`),
back when it is returned, and to the organization when credits expire or are revoked (breakage). Services
never commit.
"""
from __future__ import annotations

import logging
import uuid
from datetime import date, datetime, timedelta

from sqlalchemy import and_, exists, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from coach import clock, money
from coach.booking import service as booking
from coach.booking.models import Booking, Offering
from coach.errors import DomainError
from coach.extensions import db
from coach.ids import parse_uuid
from coach.orgs.models import Membership
from coach.payments import earnings, ledger
from coach.payments.events import CREDITS_RETURNED
from coach.payments.models import CREDIT, PACK, CreditGrant, CreditUse, Payment, Product, ProductOffering, Subscription
from coach.platform import audit
from coach.platform.jobs import each_tenant
from coach.platform.outbox import emit
from coach.platform.periodic import periodic

log = logging.getLogger(__name__)


class CreditError(DomainError):
    """A credit that cannot pay for this booking (it does not cover the offering, the week's limit)."""

    status = 422


class NoCreditsLeft(CreditError):
    """The pack had no credit left when the booking reached it (another booking took the last). HTTP 409."""

    status = 409


class GrantNotFound(CreditError):
    """No such pack of this athlete in this organization (another's id reads as missing). HTTP 404."""

    status = 404


# --- granting ----------------------------------------------------------------------------------------

def _unit_value(grant: CreditGrant, remaining_before: int) -> int:
    """What the credit taken when ``remaining_before`` were left is worth: the price split over the credits
    (:func:`coach.money.split`, the last credits take the remainder), so a fully spent pack earns exactly
    what was paid."""
    if not grant.credits_total:
        return 0
    shares = money.split(_paid(grant), grant.credits_total)
    return shares[min(max(grant.credits_total - remaining_before, 0), grant.credits_total - 1)]


def _paid(grant: CreditGrant) -> int:
    if grant.payment_id is None:
        return grant.unit_value_minor * grant.credits_total
    return db.session.scalar(select(Payment.amount_minor).where(Payment.tenant_id == grant.tenant_id,
                                                               Payment.id == grant.payment_id)) or 0


def _existing_grant(payment: Payment) -> CreditGrant | None:
    return db.session.scalar(select(CreditGrant).where(CreditGrant.tenant_id == payment.tenant_id,
                                                       CreditGrant.payment_id == payment.id))


def _grant(payment: Payment, product: Product, *, expires_at: datetime | None,
           subscription: Subscription | None = None, memo: str) -> CreditGrant:
    """The grant of a paid ``payment`` and its ledger transaction (key ``paid:{payment.id}``); idempotent."""
    found = _existing_grant(payment)
    if found is not None:
        return found
    credits = product.credits
    grant = CreditGrant(
        id=uuid.uuid4(), tenant_id=payment.tenant_id, athlete_membership_id=payment.athlete_membership_id,
        product_id=product.id, payment_id=payment.id, subscription_id=subscription.id if subscription else None,
        credits_total=credits, credits_remaining=credits, currency=payment.currency,
        unit_value_minor=payment.amount_minor // credits if credits else 0, weekly_limit=product.weekly_limit,
        expires_at=expires_at)
    try:
        with db.session.begin_nested():
            db.session.add(grant)
            db.session.flush()
    except IntegrityError:  # a concurrent delivery of the same payment granted it first
        found = _existing_grant(payment)
        if found is None:
            raise
        return found
    cur, amount = payment.currency, payment.amount_minor
    lines = [ledger.line("provider_clearing", amount, cur)]
    if credits:
        lines += [ledger.line("athlete_prepaid", -amount, cur, grant.id),
                  ledger.line("credits_issued", credits, CREDIT),
                  ledger.line("credits_outstanding", -credits, CREDIT, grant.id)]
    else:  # a plan that gives access only: nothing is owed as sessions, the organization keeps it
        lines.append(ledger.line("org_commission", -amount, cur))
    ledger.post(payment.tenant_id, f"{product.kind}.paid", f"paid:{payment.id}", lines, memo=memo,
                payment_id=payment.id)
    audit.record("credits.granted", target_type="credit_grant", target_id=grant.id, actor_label="system",
                 tenant_id=payment.tenant_id,
                 details={"product": product.title, "credits": credits, "payment": str(payment.id)})
    return grant


def _product(payment: Payment) -> Product:
    product = db.session.scalar(select(Product).where(Product.tenant_id == payment.tenant_id,
                                                      Product.id == payment.product_id))
    if product is None:
        raise CreditError("This payment is not for a product.")
    return product


def grant_for_payment(payment: Payment) -> CreditGrant:
    """The credits a paid pack gives (valid ``validity_days`` from the payment). Idempotent by the payment:
    a redelivered webhook finds the grant and posts nothing."""
    product = _product(payment)
    if product.kind != PACK:
        raise CreditError("Only a pack's payment grants a pack's credits; a plan's period grants its own.")
    paid_at = payment.paid_at or clock.now()
    return _grant(payment, product, expires_at=paid_at + timedelta(days=product.validity_days or 0),
                  memo=f"{product.title} bought")


def grant_for_period(subscription: Subscription, payment: Payment, period_start: datetime,
                     period_end: datetime) -> CreditGrant:
    """The credits of one paid period of a plan, valid until the period ends.

    With ``rollover`` the credits left from the subscription's earlier periods stay usable for as long as it
    renews: their expiry moves to this period's end (once it stops, they expire with the last period).
    """
    product = _product(payment)
    grant = _grant(payment, product, expires_at=period_end, subscription=subscription,
                   memo=f"{product.title}: {period_start:%Y-%m-%d} to {period_end:%Y-%m-%d}")
    if product.rollover:
        db.session.execute(update(CreditGrant).where(
            CreditGrant.tenant_id == subscription.tenant_id, CreditGrant.subscription_id == subscription.id,
            CreditGrant.id != grant.id, CreditGrant.revoked_at.is_(None), CreditGrant.credits_remaining > 0,
            CreditGrant.expires_at > clock.now(), CreditGrant.expires_at < period_end)
            .values(expires_at=period_end))
    return grant


# --- reading -----------------------------------------------------------------------------------------

def _covers(offering: Offering):
    return exists().where(ProductOffering.tenant_id == offering.tenant_id,
                          ProductOffering.product_id == CreditGrant.product_id,
                          ProductOffering.offering_id == offering.id)


def _live(now: datetime, starts_at: datetime):
    """Not revoked, and valid until at least the session starts (and now)."""
    return and_(CreditGrant.revoked_at.is_(None),
                or_(CreditGrant.expires_at.is_(None), CreditGrant.expires_at > max(now, starts_at)))


def week_start(offering: Offering, starts_at: datetime) -> date:
    """The Monday of the session's week on the coach's calendar (the weekly limit counts by it)."""
    local = starts_at.astimezone(booking.zone(booking.coach_timezone(offering.coach)))
    return local.date() - timedelta(days=local.weekday())


def _used_in_week(grant_id: uuid.UUID, tenant_id: uuid.UUID, week: date) -> int:
    return db.session.scalar(select(func.count()).select_from(CreditUse).where(
        CreditUse.tenant_id == tenant_id, CreditUse.grant_id == grant_id, CreditUse.week_start == week,
        CreditUse.returned_at.is_(None))) or 0


def usable_grants(athlete: Membership, offering: Offering, starts_at: datetime,
                  now: datetime | None = None) -> list[CreditGrant]:
    """The athlete's grants that can pay for ``offering`` at ``starts_at``: covering it, with a credit left,
    valid then, under their weekly limit; the soonest to expire first."""
    now = now or clock.now()
    grants = db.session.scalars(
        select(CreditGrant).where(CreditGrant.tenant_id == athlete.tenant_id,
                                  CreditGrant.athlete_membership_id == athlete.id,
                                  CreditGrant.credits_remaining > 0, _live(now, starts_at), _covers(offering))
        .order_by(CreditGrant.expires_at.asc().nulls_last(), CreditGrant.created_at)).all()
    if any(g.weekly_limit for g in grants):
        week = week_start(offering, starts_at)
        grants = [g for g in grants
                  if not g.weekly_limit or _used_in_week(g.id, g.tenant_id, week) < g.weekly_limit]
    return list(grants)


def credit_for_booking(booking_row: Booking) -> tuple[CreditGrant, int] | None:
    """The grant that paid for ``booking_row`` and its credits left now, or ``None`` if no credit paid it
    (or the credit was given back)."""
    found = db.session.execute(
        select(CreditGrant).join(CreditUse, and_(CreditUse.tenant_id == CreditGrant.tenant_id,
                                                 CreditUse.grant_id == CreditGrant.id))
        .where(CreditUse.tenant_id == booking_row.tenant_id, CreditUse.booking_id == booking_row.id,
               CreditUse.returned_at.is_(None))).scalar()
    return (found, found.credits_remaining) if found is not None else None


def grant_of_use(booking_row: Booking) -> CreditUse | None:
    """The credit use of ``booking_row`` (returned or not)."""
    return db.session.scalar(select(CreditUse).where(CreditUse.tenant_id == booking_row.tenant_id,
                                                     CreditUse.booking_id == booking_row.id))


def grants_of(athlete: Membership) -> list[CreditGrant]:
    """Every grant of the athlete, newest first (for "My billing")."""
    return list(db.session.scalars(select(CreditGrant).where(
        CreditGrant.tenant_id == athlete.tenant_id, CreditGrant.athlete_membership_id == athlete.id)
        .order_by(CreditGrant.created_at.desc())))


# --- spending and giving back --------------------------------------------------------------------------

def _load_grant(offering: Offering, athlete: Membership, grant_id) -> CreditGrant:
    grant_uuid = parse_uuid(grant_id)
    grant = None if grant_uuid is None else db.session.scalar(select(CreditGrant).where(
        CreditGrant.tenant_id == offering.tenant_id, CreditGrant.id == grant_uuid,
        CreditGrant.athlete_membership_id == athlete.id))
    if grant is None:
        raise GrantNotFound("That pack was not found among the athlete's credits.")
    return grant


def _spend(grant: CreditGrant, offering: Offering, starts_at: datetime, now: datetime) -> int:
    """Take one credit of ``grant`` (its row stays locked until the transaction ends); the credits that were
    left before. :raises NoCreditsLeft: nothing left, expired or revoked by the time the row was reached."""
    left = db.session.execute(
        update(CreditGrant).where(CreditGrant.tenant_id == grant.tenant_id, CreditGrant.id == grant.id,
                                  CreditGrant.credits_remaining > 0, _live(now, starts_at))
        .values(credits_remaining=CreditGrant.credits_remaining - 1)
        .returning(CreditGrant.credits_remaining)
        .execution_options(synchronize_session=False)).scalar()
    if left is None:
        db.session.refresh(grant)
        if grant.revoked_at is not None:
            raise NoCreditsLeft(f"{grant.product.title} was withdrawn; it cannot pay for sessions.")
        if grant.expires_at is not None and grant.expires_at <= max(now, starts_at):
            raise NoCreditsLeft(f"{grant.product.title} expires before this session; choose another way to pay.")
        raise NoCreditsLeft(f"{grant.product.title} has no credits left. Choose another way to pay.")
    return left + 1


def book_with_credit(offering: Offering, athlete: Membership, starts_at: datetime, note: str, actor: Membership,
                     grant_id, now: datetime | None = None) -> Booking:
    """Book ``athlete`` into ``offering`` at ``starts_at`` paid with one credit of ``grant_id``.

    The credit, the booking, its credit use, the ledger's CREDIT transaction (``credit-spent:{booking.id}``)
    and the coach's earning from the credit's value (``earned:{booking.id}``) are written together, or (a
    refusal) none of them.

    :raises GrantNotFound: not a grant of this athlete in this organization.
    :raises CreditError: the pack does not cover the offering, or the week's limit is reached.
    :raises NoCreditsLeft: the last credit was taken meanwhile (or the pack expired or was withdrawn).
    """
    now = now or clock.now()
    grant = _load_grant(offering, athlete, grant_id)
    if not db.session.scalar(select(_covers(offering))):
        raise CreditError(f"{grant.product.title} does not cover {offering.title}.")
    if starts_at.tzinfo is None:
        raise booking.BookingError("That time is not valid.")
    with db.session.begin_nested():
        remaining_before = _spend(grant, offering, starts_at, now)
        week = week_start(offering, starts_at)
        if grant.weekly_limit and _used_in_week(grant.id, grant.tenant_id, week) >= grant.weekly_limit:
            raise CreditError(f"{grant.product.title} books at most {grant.weekly_limit} session"
                              f"{'s' if grant.weekly_limit > 1 else ''} a week; that week is full.")
        placed = booking.request_booking(offering, athlete, starts_at, note, actor, now=now)
        _record_use(grant, placed, week, remaining_before, actor)
    db.session.refresh(grant)
    return placed


def _record_use(grant: CreditGrant, placed: Booking, week: date, remaining_before: int,
                actor: Membership | None) -> None:
    db.session.add(CreditUse(tenant_id=grant.tenant_id, grant_id=grant.id, booking_id=placed.id, week_start=week))
    db.session.flush()
    ledger.post(grant.tenant_id, "credit.spent", f"credit-spent:{placed.id}", [
        ledger.line("credits_outstanding", 1, CREDIT, grant.id), ledger.line("credits_issued", -1, CREDIT)],
        booking_id=placed.id, memo=f"{placed.offering.title}", actor_membership_id=actor.id if actor else None)
    value = _unit_value(grant, remaining_before)
    if value:
        earnings.accrue(placed, value, grant.currency, source=("athlete_prepaid", grant.id),
                        key=f"earned:{placed.id}", grant_id=grant.id)
    audit.record("credits.spent", actor=actor.user if actor else None, target_type="booking",
                 target_id=placed.id, details={"grant": str(grant.id), "left": remaining_before - 1})


def carry_over(old: Booking, new: Booking, actor: Membership | None) -> bool:
    """A rescheduled booking keeps the credit that paid for the one it replaces (no policy applies: the
    session moved, it was not cancelled). False when no credit paid for ``old``."""
    use = db.session.scalar(select(CreditUse).where(CreditUse.tenant_id == old.tenant_id,
                                                    CreditUse.booking_id == old.id,
                                                    CreditUse.returned_at.is_(None)).with_for_update())
    if use is None:
        return False
    grant = db.session.get(CreditGrant, use.grant_id)
    return_credit(old)
    db.session.refresh(grant)
    _record_use(grant, new, week_start(new.offering, new.starts_at), _take_back(grant), actor)
    return True


def _take_back(grant: CreditGrant) -> int:
    """Take the credit just returned again, whatever the grant's dates (a move, not a new booking)."""
    left = db.session.execute(update(CreditGrant).where(
        CreditGrant.tenant_id == grant.tenant_id, CreditGrant.id == grant.id, CreditGrant.credits_remaining > 0)
        .values(credits_remaining=CreditGrant.credits_remaining - 1).returning(CreditGrant.credits_remaining)
        .execution_options(synchronize_session=False)).scalar()
    if left is None:
        raise NoCreditsLeft(f"{grant.product.title} has lapsed; the new time needs another way to pay.")
    return left + 1


def return_credit(booking_row: Booking, now: datetime | None = None) -> bool:
    """Give back the credit that paid for ``booking_row`` (once: a second call finds it returned and does
    nothing). The money it stood for goes back from the coach's earnings to the pack. A credit given back to
    a pack that has expired or was withdrawn meanwhile lapses at once, like the rest of that pack.

    :returns: whether a credit went back.
    """
    now = now or clock.now()
    grant_id = db.session.execute(
        update(CreditUse).where(CreditUse.tenant_id == booking_row.tenant_id, CreditUse.booking_id == booking_row.id,
                                CreditUse.returned_at.is_(None))
        .values(returned_at=now).returning(CreditUse.grant_id).execution_options(synchronize_session=False)).scalar()
    if grant_id is None:
        return False
    db.session.execute(update(CreditGrant).where(CreditGrant.tenant_id == booking_row.tenant_id,
                                                 CreditGrant.id == grant_id)
                       .values(credits_remaining=CreditGrant.credits_remaining + 1)
                       .execution_options(synchronize_session=False))
    ledger.post(booking_row.tenant_id, "credit.returned", f"credit-returned:{booking_row.id}", [
        ledger.line("credits_outstanding", -1, CREDIT, grant_id), ledger.line("credits_issued", 1, CREDIT)],
        booking_id=booking_row.id)
    if _has_earning(booking_row):
        earnings.reverse(booking_row, destination=("athlete_prepaid", grant_id), key=f"unearned:{booking_row.id}")
    grant = db.session.get(CreditGrant, grant_id)
    db.session.refresh(grant)
    emit(CREDITS_RETURNED, {"grant_id": str(grant_id), "booking_id": str(booking_row.id)})
    audit.record("credits.returned", actor_label="system", target_type="booking", target_id=booking_row.id,
                 details={"grant": str(grant_id), "left": grant.credits_remaining})
    if grant.revoked_at is not None or (grant.expires_at is not None and grant.expires_at <= now):
        _lapse(grant, "expired", f"expired:{grant.id}:returned:{booking_row.id}")
    return True


def _has_earning(booking_row: Booking) -> bool:
    return bool(db.session.scalar(text("SELECT count(*) FROM earnings WHERE tenant_id = :t AND booking_id = :b"),
                                  {"t": booking_row.tenant_id, "b": booking_row.id}))


# --- expiry and revocation ------------------------------------------------------------------------------

def _lapse(grant: CreditGrant, kind: str, key: str) -> int:
    """Take every credit left of ``grant`` (locked) and post it: the credits back to ``credits_issued``, the
    money they stood for from the pack to the organization (breakage). How many credits lapsed."""
    left = db.session.execute(text(
        "UPDATE credit_grants g SET credits_remaining = 0 FROM (SELECT id, credits_remaining FROM credit_grants "
        "WHERE tenant_id = :t AND id = :g FOR UPDATE) old WHERE g.tenant_id = :t AND g.id = old.id "
        "RETURNING old.credits_remaining"), {"t": grant.tenant_id, "g": grant.id}).scalar() or 0
    prepaid = -ledger.balance(grant.tenant_id, "athlete_prepaid", grant.currency, grant.id)
    if not left and not prepaid:
        return 0
    lines = [ledger.line("credits_outstanding", left, CREDIT, grant.id), ledger.line("credits_issued", -left, CREDIT)]
    if prepaid > 0:
        lines += [ledger.line("athlete_prepaid", prepaid, grant.currency, grant.id),
                  ledger.line("org_commission", -prepaid, grant.currency)]
    ledger.post(grant.tenant_id, f"credits.{kind}", key, lines, memo=f"{left} credit(s) {kind}")
    db.session.refresh(grant)
    return left


def revoke(grant: CreditGrant, reason: str, actor: Membership | None = None, now: datetime | None = None) -> int:
    """Withdraw ``grant`` (its pack was refunded, a mistake): its credits left lapse now, booked sessions
    stay booked. Idempotent. How many credits lapsed."""
    now = now or clock.now()
    changed = db.session.execute(update(CreditGrant).where(
        CreditGrant.tenant_id == grant.tenant_id, CreditGrant.id == grant.id, CreditGrant.revoked_at.is_(None))
        .values(revoked_at=now).returning(CreditGrant.id).execution_options(synchronize_session=False)).scalar()
    db.session.refresh(grant)
    if changed is None:
        return 0
    lapsed = _lapse(grant, "revoked", f"revoked:{grant.id}")
    audit.record("credits.revoked", actor=actor.user if actor else None,
                 actor_label=None if actor else "system", target_type="credit_grant", target_id=grant.id,
                 details={"reason": reason[:300], "credits": lapsed})
    return lapsed


def expire_due(tenant_id: uuid.UUID, now: datetime | None = None) -> int:
    """Lapse the credits left of every grant of the organization that expired. Idempotent."""
    now = now or clock.now()
    due = db.session.scalars(select(CreditGrant).where(
        CreditGrant.tenant_id == tenant_id, CreditGrant.credits_remaining > 0, CreditGrant.revoked_at.is_(None),
        CreditGrant.expires_at <= now)).all()
    done = 0
    for grant in due:
        lapsed = _lapse(grant, "expired", f"expired:{grant.id}")
        if lapsed:
            audit.record("credits.expired", actor_label="system", target_type="credit_grant", target_id=grant.id,
                         tenant_id=tenant_id, details={"credits": lapsed})
            done += 1
    return done


def _due_tenants(now: datetime) -> list[uuid.UUID]:
    # Grants are under RLS: until a definer function finds the organizations with grants due (requested),
    # every organization is visited; each visit is one indexed query (ix_credit_grants_expiry).
    if db.session.scalar(text("SELECT to_regproc('public.credit_grants_due_tenants')")) is not None:
        return list(db.session.scalars(text("SELECT credit_grants_due_tenants(:now)"), {"now": now}))
    return list(db.session.scalars(text("SELECT id FROM organizations")))


@periodic(every=600, name="expire_credits")
def sweep_expired() -> int:
    """Credits of packs and plan periods that expired: lapse them, one organization per transaction."""
    now = clock.now()
    return each_tenant(_due_tenants(now), lambda tenant_id: expire_due(tenant_id, now), "credit expiry")
