"""The catalogue: the credit packs and subscription plans a coach sells.

A price is typed in the organization's currency (its billing settings) and parsed with :mod:`coach.money`
(each currency's own decimals); nothing else about an amount is ever taken from a form. A product's credits
book only the offerings chosen for it, which must be its coach's own; a plan may also give access to spaces.
Products are archived, never deleted: payments and credit grants keep pointing at them, and an archived
product can no longer be bought.
"""
from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, exists, func, literal, select
from sqlalchemy.exc import IntegrityError

from coach import clock, money
from coach.accounts.models import User
from coach.booking.models import Booking, Offering
from coach.errors import DomainError
from coach.extensions import db
from coach.platform.outbox import emit
from coach.ids import parse_uuid
from coach.orgs.models import ADMIN, COACH, Membership, Organization
from coach.payments.events import PRODUCT_CHANGED
from coach.payments.models import (
    PACK,
    PLAN,
    BillingSettings,
    CreditGrant,
    Invoice,
    LedgerEntry,
    LedgerTransaction,
    Payment,
    Product,
    ProductOffering,
    ProductSpace,
    Subscription,
)
from coach.payments import invoices
from coach.payments.settings import billing_settings
from coach.platform import audit
from coach.platform.pagination import Page, newest_first
from coach.spaces.models import HOST, Space, SpaceMember

KINDS = {PACK: "Credit pack", PLAN: "Subscription plan"}
INTERVALS = {"month": "Monthly", "year": "Yearly"}
TITLE_MAX, DESCRIPTION_MAX = 120, 2000
CREDITS_MAX, VALIDITY_MAX, WEEKLY_LIMIT_MAX = 1000, 1095, 50
PRICE_RE = re.compile(r"-?[0-9][0-9.,\u00a0\u202f' ]{0,30}")


class CatalogError(DomainError):
    """A product that cannot be saved or bought as asked (the message says what to change)."""


@dataclass
class ProductDetails:
    """A product with what its credits book and which spaces it opens (for lists and pages)."""

    product: Product
    offerings: list[Offering]
    spaces: list[Space]


# --- loading ----------------------------------------------------------------------------------------------

def get_product(org: Organization, product_id) -> Product | None:
    """The organization's product with this id (``None`` for an unknown or malformed id)."""
    pid = parse_uuid(product_id)
    if pid is None:
        return None
    return db.session.scalar(select(Product).where(Product.tenant_id == org.id, Product.id == pid))


def products_of(coach: Membership, include_archived: bool = False) -> list[Product]:
    """A coach's products: packs first, then plans, by title (archived ones last when included)."""
    query = select(Product).where(Product.tenant_id == coach.tenant_id, Product.coach_membership_id == coach.id)
    if not include_archived:
        query = query.where(Product.archived_at.is_(None))
    return list(db.session.scalars(query.order_by(Product.archived_at.is_not(None), Product.kind,
                                                  func.lower(Product.title), Product.id)))


def buyable(coach: Membership) -> list[Product]:
    """What an athlete can buy from ``coach``: the coach's products that are not archived."""
    return products_of(coach, include_archived=False)


def ensure_buyable(product: Product) -> Product:
    """``product`` if it can be bought now; :class:`CatalogError` (409) for an archived one."""
    if product.archived_at is not None:
        raise CatalogError(f"“{product.title}” is no longer sold.", status=409)
    return product


def details(products: Iterable[Product]) -> list[ProductDetails]:
    """Each product with its offerings and spaces (two statements, whatever the number of products)."""
    products = list(products)
    if not products:
        return []
    tenant_id, ids = products[0].tenant_id, [p.id for p in products]
    offerings: dict[uuid.UUID, list[Offering]] = defaultdict(list)
    for product_id, offering in db.session.execute(
            select(ProductOffering.product_id, Offering)
            .join(Offering, (Offering.tenant_id == ProductOffering.tenant_id)
                  & (Offering.id == ProductOffering.offering_id))
            .where(ProductOffering.tenant_id == tenant_id, ProductOffering.product_id.in_(ids))
            .order_by(func.lower(Offering.title))):
        offerings[product_id].append(offering)
    spaces: dict[uuid.UUID, list[Space]] = defaultdict(list)
    for product_id, space in db.session.execute(
            select(ProductSpace.product_id, Space)
            .join(Space, (Space.tenant_id == ProductSpace.tenant_id) & (Space.id == ProductSpace.space_id))
            .where(ProductSpace.tenant_id == tenant_id, ProductSpace.product_id.in_(ids))
            .order_by(func.lower(Space.name))):
        spaces[product_id].append(space)
    return [ProductDetails(p, offerings[p.id], spaces[p.id]) for p in products]


def sellers(org: Organization) -> list[tuple[Membership, int]]:
    """Coaches with products on sale, with how many (one statement), by name."""
    rows = db.session.execute(
        select(Membership, func.count(Product.id))
        .join(Product, (Product.tenant_id == Membership.tenant_id) & (Product.coach_membership_id == Membership.id))
        .join(Membership.user)
        .where(Membership.tenant_id == org.id, Membership.role == COACH, Product.archived_at.is_(None))
        .group_by(Membership.id, User.display_name).order_by(func.lower(User.display_name)))
    return [(m, n) for m, n in rows]


def offering_choices(coach: Membership) -> list[Offering]:
    """The offerings a product of ``coach`` may cover: the coach's own that are active."""
    return list(db.session.scalars(select(Offering).where(
        Offering.tenant_id == coach.tenant_id, Offering.coach_membership_id == coach.id,
        Offering.active.is_(True)).order_by(func.lower(Offering.title))))


def space_choices(coach: Membership, actor: Membership) -> list[Space]:
    """The spaces a plan of ``coach`` may open: those the coach hosts or created; an admin may pick any."""
    query = select(Space).where(Space.tenant_id == coach.tenant_id)
    if actor.role != ADMIN:
        hosted = select(SpaceMember.space_id).where(SpaceMember.tenant_id == coach.tenant_id,
                                                    SpaceMember.membership_id == coach.id, SpaceMember.role == HOST)
        query = query.where((Space.created_by_membership_id == coach.id) | Space.id.in_(hosted))
    return list(db.session.scalars(query.order_by(func.lower(Space.name))))


# --- changing ---------------------------------------------------------------------------------------------

def _int(values: dict, name: str, label: str, low: int, high: int, required: bool = True) -> int | None:
    raw = values.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if required:
            raise CatalogError(f"Enter the {label}.")
        return None
    try:
        number = int(str(raw).strip()) if not isinstance(raw, int) else raw
    except ValueError:
        raise CatalogError(f"The {label} must be a whole number.") from None
    if not low <= number <= high:
        raise CatalogError(f"The {label} must be between {low:,} and {high:,}.")
    return number


def _ids(raw, what: str) -> list[uuid.UUID]:
    if raw is None:
        return []
    if isinstance(raw, (str, uuid.UUID)):
        raw = [raw]
    result = []
    for value in raw:
        ident = parse_uuid(value)
        if ident is None:
            raise CatalogError(f"Choose {what} from the list.")
        if ident not in result:
            result.append(ident)
    return result


def _own_offerings(coach: Membership, ids: list[uuid.UUID]) -> list[uuid.UUID]:
    if not ids:
        return []
    found = set(db.session.scalars(select(Offering.id).where(
        Offering.tenant_id == coach.tenant_id, Offering.coach_membership_id == coach.id, Offering.id.in_(ids))))
    if len(found) != len(ids):
        raise CatalogError(f"Choose offerings of {coach.user.display_name}: one of those chosen is not theirs.")
    return ids


def _allowed_spaces(coach: Membership, actor: Membership, ids: list[uuid.UUID]) -> list[uuid.UUID]:
    if not ids:
        return []
    allowed = {s.id for s in space_choices(coach, actor)}
    if not set(ids) <= allowed:
        raise CatalogError("Choose spaces from the list: one of those chosen cannot be given with this plan.")
    return ids


def _price(text, currency: str) -> int:
    """A typed price in minor units of ``currency``: digits and separators only ("NaN", "inf" and exponents
    parse as decimals but are not prices)."""
    raw = str(text or "").strip()
    if raw and not PRICE_RE.fullmatch(raw):
        raise CatalogError(f"Price: {raw[:40]!r} is not an amount; write it like 49.90.")
    try:
        return money.parse(raw, currency, allow_zero=False)
    except money.MoneyError as exc:
        raise CatalogError(f"Price: {exc}") from None


def validate(coach: Membership, values: dict, actor: Membership, kind: str) -> dict:
    """The product's columns from ``values`` as typed (strings are fine), or :class:`CatalogError`.

    :param values: ``title``, ``description``, ``price`` (text, in the organization's currency), ``credits``,
        ``validity_days`` (packs), ``weekly_limit`` (optional), ``interval`` and ``rollover`` (plans),
        ``offering_ids``, ``space_ids`` (plans). Any amount other than ``price`` is ignored.
    """
    if kind not in KINDS:
        raise CatalogError("Choose a credit pack or a subscription plan.")
    title = (values.get("title") or "").strip()
    if not 1 <= len(title) <= TITLE_MAX:
        raise CatalogError(f"Give the product a title of at most {TITLE_MAX} characters.")
    description = (values.get("description") or "").strip()
    if len(description) > DESCRIPTION_MAX:
        raise CatalogError(f"A description has at most {DESCRIPTION_MAX:,} characters.")
    currency = billing_settings(coach.tenant_id).currency
    price_minor = _price(values.get("price"), currency)
    row = dict(kind=kind, title=title, description=description, price_minor=price_minor, currency=currency,
               weekly_limit=_int(values, "weekly_limit", "weekly limit", 1, WEEKLY_LIMIT_MAX, required=False))
    if kind == PACK:
        row.update(credits=_int(values, "credits", "number of credits", 1, CREDITS_MAX),
                   validity_days=_int(values, "validity_days", "validity (days)", 1, VALIDITY_MAX),
                   interval=None, rollover=False)
    else:
        interval = values.get("interval")
        if interval not in INTERVALS:
            raise CatalogError("Choose how often the plan renews: monthly or yearly.")
        row.update(credits=_int(values, "credits", "credits per period", 0, CREDITS_MAX), validity_days=None,
                   interval=interval, rollover=bool(values.get("rollover")))
    offering_ids = _own_offerings(coach, _ids(values.get("offering_ids"), "offerings"))
    space_ids = _allowed_spaces(coach, actor, _ids(values.get("space_ids"), "spaces")) if kind == PLAN else []
    if row["credits"] and not offering_ids:
        raise CatalogError("Choose at least one offering the credits can book.")
    if kind == PLAN and not row["credits"] and not space_ids:
        raise CatalogError("A plan gives credits, access to spaces, or both: choose at least one.")
    if not row["credits"]:
        offering_ids, row["weekly_limit"] = [], None
    return dict(row, offering_ids=offering_ids, space_ids=space_ids)


def save_product(coach: Membership, values: dict, actor: Membership, product: Product | None = None) -> Product:
    """Create a product of ``coach`` or update ``product`` from ``values`` as typed (see :func:`validate`).

    A product keeps its kind once created (its buyers hold grants or subscriptions of that kind). The price
    changes what later buyers pay only.

    :raises CatalogError: anything the form can fix; nothing is written then.
    """
    if product is not None and product.coach_membership_id != coach.id:
        raise CatalogError("This product belongs to another coach.", status=403)
    if coach.role != COACH:
        raise CatalogError("Only coaches sell packs and plans.")
    kind = product.kind if product is not None else values.get("kind")
    row = validate(coach, values, actor, kind)
    offering_ids, space_ids = row.pop("offering_ids"), row.pop("space_ids")
    created = product is None
    if product is None:
        product = Product(id=uuid.uuid4(), tenant_id=coach.tenant_id, coach_membership_id=coach.id)
        db.session.add(product)
    for name, value in row.items():
        setattr(product, name, value)
    try:
        with db.session.begin_nested():
            db.session.flush()
            _replace_links(product, ProductOffering, ProductOffering.offering_id, "offering_id", offering_ids)
            _replace_links(product, ProductSpace, ProductSpace.space_id, "space_id", space_ids)
    except IntegrityError as exc:  # the CHECKs of migration 0014 agree with validate(); this is the net
        raise CatalogError("Some values are outside what a product allows. Check the form.") from exc
    audit.record("product.created" if created else "product.updated", actor=actor.user, target_type="product",
                 target_id=product.id, tenant_id=product.tenant_id,
                 details={"title": product.title, "kind": product.kind,
                          "price": money.format(product.price_minor, product.currency)})
    _product_changed(product)
    return product


def _product_changed(product: Product) -> None:
    emit(PRODUCT_CHANGED, {"product_id": str(product.id), "coach_membership_id": str(product.coach_membership_id)},
         tenant_id=product.tenant_id)


def _replace_links(product: Product, model, column, name: str, ids: list[uuid.UUID]) -> None:
    db.session.execute(delete(model).where(model.tenant_id == product.tenant_id, model.product_id == product.id,
                                           column.not_in(ids) if ids else True))
    existing = set(db.session.scalars(select(column).where(model.tenant_id == product.tenant_id,
                                                           model.product_id == product.id)))
    for ident in ids:
        if ident not in existing:
            db.session.add(model(id=uuid.uuid4(), tenant_id=product.tenant_id, product_id=product.id,
                                 **{name: ident}))
    db.session.flush()


def archive(product: Product, actor: Membership) -> None:
    """Take a product off sale. What was bought stays valid (grants keep their credits, subscriptions run on)."""
    if product.archived_at is None:
        product.archived_at = clock.now()
        db.session.flush()
        audit.record("product.archived", actor=actor.user, target_type="product", target_id=product.id,
                     tenant_id=product.tenant_id, details={"title": product.title})
        _product_changed(product)


def restore(product: Product, actor: Membership) -> None:
    """Put an archived product on sale again."""
    if product.archived_at is not None:
        product.archived_at = None
        db.session.flush()
        audit.record("product.restored", actor=actor.user, target_type="product", target_id=product.id,
                     tenant_id=product.tenant_id, details={"title": product.title})
        _product_changed(product)


def form_values(product: Product) -> dict:
    """A product as its edit form shows it (the price as plain text in its currency)."""
    linked = details([product])[0]
    return dict(kind=product.kind, title=product.title, description=product.description,
                price=money.plain(product.price_minor, product.currency), credits=product.credits,
                validity_days=product.validity_days, weekly_limit=product.weekly_limit,
                interval=product.interval or "month", rollover=product.rollover,
                offering_ids=[str(o.id) for o in linked.offerings], space_ids=[str(s.id) for s in linked.spaces])


# --- the pages around the catalogue: my billing, the admin's payments, a payment, the settings -------------

PAGE_SIZE = 25
SETTINGS_FIELDS = ("currency", "commission_bps", "tax_rate_bps", "tax_label", "seller_name", "seller_address",
                   "seller_tax_id", "dispute_window_hours", "grace_days", "coaches_may_refund")


@dataclass
class PaymentFilter:
    """The admin's filters of the payments list (``None`` = any)."""

    status: str | None = None
    method: str | None = None
    purpose: str | None = None
    coach_id: uuid.UUID | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


@dataclass
class Totals:
    """Sums over the filtered payments of one currency."""

    currency: str
    count: int
    paid_minor: int
    refunded_minor: int
    disputed_minor: int

    @property
    def net_minor(self) -> int:
        return self.paid_minor - self.refunded_minor - self.disputed_minor


def _filtered(tenant_id: uuid.UUID, flt: PaymentFilter):
    query = select(Payment).where(Payment.tenant_id == tenant_id)
    if flt.status:
        query = query.where(Payment.status == flt.status)
    if flt.method:
        query = query.where(Payment.method == flt.method)
    if flt.purpose:
        query = query.where(Payment.purpose == flt.purpose)
    if flt.coach_id:
        query = query.where(Payment.coach_membership_id == flt.coach_id)
    if flt.since:
        query = query.where(Payment.created_at >= flt.since)
    if flt.until:
        query = query.where(Payment.created_at < flt.until)
    return query


def payments_page(org: Organization, flt: PaymentFilter, after: str | None = None,
                  limit: int = PAGE_SIZE) -> Page[Payment]:
    """One page of the organization's payments, newest first (keyset on ``(created_at, id)``)."""
    return newest_first(_filtered(org.id, flt), Payment.created_at, Payment.id, after, limit)


def payment_totals(org: Organization, flt: PaymentFilter) -> list[Totals]:
    """Per currency over everything the filters match (one statement): how many, paid, refunded, disputed."""
    matched = _filtered(org.id, flt).subquery()
    paid = matched.c.status == "paid"
    rows = db.session.execute(
        select(matched.c.currency, func.count(),
               func.coalesce(func.sum(matched.c.amount_minor).filter(paid), 0),
               func.coalesce(func.sum(matched.c.refunded_minor).filter(paid), 0),
               func.coalesce(func.sum(matched.c.disputed_minor).filter(paid), 0))
        .group_by(matched.c.currency).order_by(matched.c.currency))
    return [Totals(c, n, int(p), int(r), int(d)) for c, n, p, r, d in rows]


@dataclass
class Labels:
    """Names the payment rows show: coaches by membership id, products by id (one statement)."""

    coaches: dict[uuid.UUID, str]
    products: dict[uuid.UUID, str]

    def coach(self, payment: Payment) -> str:
        return self.coaches.get(payment.coach_membership_id, "") if payment.coach_membership_id else ""

    def what(self, payment: Payment) -> str:
        if payment.purpose == "session":
            return "Session"
        title = self.products.get(payment.product_id, "")
        return f"{KINDS.get(payment.purpose, payment.purpose)}: {title}" if title else KINDS.get(payment.purpose, "")


def labels_for(tenant_id: uuid.UUID, payments: Iterable[Payment]) -> Labels:
    payments = list(payments)
    coach_ids = {p.coach_membership_id for p in payments if p.coach_membership_id}
    product_ids = {p.product_id for p in payments if p.product_id}
    if not coach_ids and not product_ids:
        return Labels({}, {})
    coaches = (select(Membership.id, User.display_name).join(User, User.id == Membership.user_id)
               .where(Membership.tenant_id == tenant_id, Membership.id.in_(coach_ids)))
    products = (select(Product.id, Product.title)
                .where(Product.tenant_id == tenant_id, Product.id.in_(product_ids)))
    rows = db.session.execute(select(literal("c"), coaches.subquery())
                              .union_all(select(literal("p"), products.subquery()))).all()
    return Labels({i: n for k, i, n in rows if k == "c"}, {i: n for k, i, n in rows if k == "p"})


def invoices_by_payment(tenant_id: uuid.UUID, payment_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[Invoice]]:
    """The receipts and credit notes of these payments, by payment, in number order (one statement)."""
    return invoices.of_payments(tenant_id, payment_ids)


def get_payment(org: Organization, payment_id) -> Payment | None:
    pid = parse_uuid(payment_id)
    if pid is None:
        return None
    return db.session.scalar(select(Payment).where(Payment.tenant_id == org.id, Payment.id == pid))


def may_view_payment(viewer: Membership, payment: Payment) -> bool:
    """Admins see every payment; a coach the payments for their own sessions and products; an athlete theirs."""
    return viewer.role == ADMIN or viewer.id in (payment.athlete_membership_id, payment.coach_membership_id)


def may_refund(viewer: Membership, payment: Payment) -> bool:
    """Whether the refund page is for ``viewer``: admins, and the payment's coach if the organization allows."""
    if payment.refundable_minor <= 0:
        return False
    if viewer.role == ADMIN:
        return True
    return (viewer.id == payment.coach_membership_id
            and billing_settings(payment.tenant_id).coaches_may_refund)


@dataclass
class LedgerView:
    transaction: LedgerTransaction
    entries: list[LedgerEntry]


def payment_ledger(payment: Payment) -> list[LedgerView]:
    """The ledger transactions of a payment with their entries, oldest first: those naming the payment, its
    booking's (a session), and those moving the credits it bought (spent, returned, expired: a pack or plan)."""
    where = LedgerTransaction.payment_id == payment.id
    if payment.booking_id is not None:
        where = where | (LedgerTransaction.booking_id == payment.booking_id)
    if payment.product_id is not None:
        grants = select(CreditGrant.id).where(CreditGrant.tenant_id == payment.tenant_id,
                                              CreditGrant.payment_id == payment.id)
        where = where | LedgerTransaction.id.in_(
            select(LedgerEntry.transaction_id).where(LedgerEntry.tenant_id == payment.tenant_id,
                                                     LedgerEntry.ref_id.in_(grants)))
    rows = db.session.execute(
        select(LedgerTransaction, LedgerEntry)
        .join(LedgerEntry, (LedgerEntry.tenant_id == LedgerTransaction.tenant_id)
              & (LedgerEntry.transaction_id == LedgerTransaction.id))
        .where(LedgerTransaction.tenant_id == payment.tenant_id, where)
        .order_by(LedgerTransaction.created_at, LedgerTransaction.id, LedgerEntry.amount.desc(), LedgerEntry.id))
    views: dict[uuid.UUID, LedgerView] = {}
    for txn, entry in rows:
        views.setdefault(txn.id, LedgerView(txn, [])).entries.append(entry)
    return list(views.values())


def payment_subject(payment: Payment) -> dict:
    """What a payment was for: the product, or the booking's offering and time; and the coach (one statement)."""
    product = offering = booking = coach = None
    if payment.product_id is not None:
        product = db.session.get(Product, payment.product_id)
    if payment.booking_id is not None:
        found = db.session.execute(select(Booking, Offering).join(
            Offering, (Offering.tenant_id == Booking.tenant_id) & (Offering.id == Booking.offering_id))
            .where(Booking.tenant_id == payment.tenant_id, Booking.id == payment.booking_id)).first()
        if found is not None:
            booking, offering = found
    if payment.coach_membership_id is not None:
        coach = db.session.scalar(select(Membership).where(Membership.tenant_id == payment.tenant_id,
                                                           Membership.id == payment.coach_membership_id))
    return dict(product=product, booking=booking, offering=offering, coach=coach)


@dataclass
class GrantView:
    grant: CreditGrant
    offerings: list[Offering]

    @property
    def usable(self) -> bool:
        g = self.grant
        return (g.credits_remaining > 0 and g.revoked_at is None
                and (g.expires_at is None or g.expires_at > clock.now()))


def my_grants(athlete: Membership) -> list[GrantView]:
    """The athlete's packs and plan credits, usable first, newest first (two statements)."""
    grants = list(db.session.scalars(select(CreditGrant).where(
        CreditGrant.tenant_id == athlete.tenant_id, CreditGrant.athlete_membership_id == athlete.id)
        .order_by(CreditGrant.created_at.desc(), CreditGrant.id.desc()).limit(200)))
    by_product = {d.product.id: d.offerings for d in details({g.product.id: g.product for g in grants}.values())}
    views = [GrantView(g, by_product.get(g.product_id, [])) for g in grants]
    return sorted(views, key=lambda v: not v.usable)


def my_subscriptions(athlete: Membership) -> list[Subscription]:
    """The athlete's subscriptions, live ones first."""
    return list(db.session.scalars(select(Subscription).where(
        Subscription.tenant_id == athlete.tenant_id, Subscription.athlete_membership_id == athlete.id)
        .order_by((Subscription.status == "ended"), Subscription.created_at.desc()).limit(100)))


def get_subscription(org: Organization, subscription_id) -> Subscription | None:
    sid = parse_uuid(subscription_id)
    if sid is None:
        return None
    return db.session.scalar(select(Subscription).where(Subscription.tenant_id == org.id,
                                                        Subscription.id == sid))


def my_payments(athlete: Membership, after: str | None = None, limit: int = PAGE_SIZE) -> Page[Payment]:
    """The athlete's payment history, newest first (keyset paged)."""
    query = select(Payment).where(Payment.tenant_id == athlete.tenant_id,
                                  Payment.athlete_membership_id == athlete.id)
    return newest_first(query, Payment.created_at, Payment.id, after, limit)


def coach_sales(coach: Membership, after: str | None = None, limit: int = PAGE_SIZE) -> Page[Payment]:
    """Payments for a coach's sessions and products, newest first (keyset paged)."""
    query = select(Payment).where(Payment.tenant_id == coach.tenant_id, Payment.coach_membership_id == coach.id)
    return newest_first(query, Payment.created_at, Payment.id, after, limit)


def has_payments(tenant_id: uuid.UUID) -> bool:
    return bool(db.session.scalar(select(exists().where(Payment.tenant_id == tenant_id))))


def save_settings(tenant_id: uuid.UUID, values: dict, actor: Membership) -> BillingSettings:
    """Change the organization's billing settings from validated ``values`` (columns of :data:`SETTINGS_FIELDS`).

    The currency is fixed once any payment exists: the books, grants and receipts are in it.

    :raises CatalogError: a changed currency after payments, or a value outside what the settings allow.
    """
    settings = billing_settings(tenant_id)
    try:
        currency = money.check_currency(values.get("currency") or settings.currency)
    except money.MoneyError as exc:
        raise CatalogError(str(exc)) from None
    if currency != settings.currency and has_payments(tenant_id):
        raise CatalogError(f"The currency stays {settings.currency}: payments were already taken in it "
                           "(the books, credits and receipts are in that currency).", status=409)
    before = {name: getattr(settings, name) for name in SETTINGS_FIELDS}
    for name in SETTINGS_FIELDS:
        if name in values and name != "currency":
            setattr(settings, name, values[name])
    settings.currency = currency
    settings.updated_at = clock.now()
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError as exc:
        raise CatalogError("Some values are outside what the settings allow. Check the form.") from exc
    changed = {name: str(getattr(settings, name)) for name in SETTINGS_FIELDS
               if getattr(settings, name) != before[name]}
    if changed:
        audit.record("billing.settings_changed", actor=actor.user, target_type="billing_settings",
                     target_id=settings.id, tenant_id=tenant_id, details=changed)
    return settings
