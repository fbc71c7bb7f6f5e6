"""The catalogue: packs and plans priced in the organization's currency, covering the coach's own offerings,
archived rather than deleted; and the billing settings' rules."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from coach import tenancy
from coach.extensions import db
from coach.orgs.models import ADMIN, COACH, Membership
from coach.payments import catalog
from coach.payments.catalog import CatalogError
from coach.payments.models import Payment, Product, ProductOffering, ProductSpace
from coach.payments.settings import billing_settings
from coach.platform.models import AuditEvent
from coach.spaces import service as spaces
from tests.booking_support import BookingWorld, make_offering
from tests.factories import add_member, make_user
from tests.payments_support import assert_books_balance

PACK = dict(kind="pack", title="5 × technique", description="Five sessions", price="200.00", credits="5",
            validity_days="90", weekly_limit="")


@pytest.fixture()
def world(ctx):
    w = BookingWorld()
    tenancy.activate(w.org.id)
    w.admin = db.session.scalar(select(Membership).where(Membership.tenant_id == w.org.id, Membership.role == ADMIN))
    w.other_coach = add_member(w.org, make_user(f"coach2-{id(w)}@example.com", "Otto Other"), COACH)
    w.other_offering = make_offering(w.other_coach, title="Other's session")
    w.second = BookingWorld()
    tenancy.activate(w.second.org.id)
    w.second_offering_id = w.second.offering.id
    w.second_admin = db.session.scalar(select(Membership).where(Membership.tenant_id == w.second.org.id,
                                                                Membership.role == ADMIN))
    tenancy.activate(w.org.id)
    return w


def pack_values(w, **changes) -> dict:
    return {**PACK, "offering_ids": [str(w.offering.id)], **changes}


def count(model, tenant_id) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(model.tenant_id == tenant_id))


def test_a_pack_is_priced_in_the_organizations_currency_and_covers_the_chosen_offerings(world):
    w = world
    product = catalog.save_product(w.coach, pack_values(w, price="49.90", price_minor="1"), w.coach)
    db.session.commit()
    assert (product.price_minor, product.currency, product.credits, product.validity_days) == (4990, "EUR", 5, 90)
    assert product.price_label == "€49.90"
    [item] = catalog.details(catalog.products_of(w.coach))
    assert [o.id for o in item.offerings] == [w.offering.id]
    assert db.session.scalar(select(AuditEvent.action).where(AuditEvent.tenant_id == w.org.id,
                                                            AuditEvent.action == "product.created"))
    assert_books_balance(w.org.id)


def test_a_yen_price_has_no_decimals(world):
    w = world
    billing_settings(w.org.id).currency = "JPY"
    product = catalog.save_product(w.coach, pack_values(w, price="5,000"), w.coach)
    assert (product.price_minor, product.currency, product.price_label) == (5000, "JPY", "¥5,000")
    with pytest.raises(CatalogError, match="no decimals"):
        catalog.save_product(w.coach, pack_values(w, price="5000.50"), w.coach)


@pytest.mark.parametrize("changes, message", [
    (dict(price="-5"), "cannot be negative"),
    (dict(price="0"), "above zero"),
    (dict(price="9999999999"), "more than"),
    (dict(price="12.345"), "at most 2 decimals"),
    (dict(price="lots"), "is not an amount"),
    (dict(credits="0"), "between 1 and 1,000"),
    (dict(credits="abc"), "whole number"),
    (dict(validity_days=""), "Enter the validity"),
    (dict(validity_days="5000"), "between 1 and 1,095"),
    (dict(weekly_limit="99"), "between 1 and 50"),
    (dict(title="   "), "title"),
    (dict(kind="bundle"), "credit pack or a subscription plan"),
    (dict(offering_ids=[]), "at least one offering"),
    (dict(offering_ids=["not-a-uuid"]), "from the list"),
])
def test_bad_values_are_refused_with_a_message_and_nothing_is_written(world, changes, message):
    w = world
    with pytest.raises(CatalogError, match=message):
        catalog.save_product(w.coach, pack_values(w, **changes), w.coach)
    db.session.rollback()
    tenancy.activate(w.org.id)
    assert count(Product, w.org.id) == 0


def test_another_coachs_or_organizations_offering_cannot_be_covered(world):
    w = world
    own, foreigners = str(w.offering.id), (w.other_offering.id, w.second_offering_id, uuid.uuid4())
    tenancy.activate(w.org.id)
    for foreign in foreigners:
        with pytest.raises(CatalogError, match="Choose offerings of Carla Coach"):
            catalog.save_product(w.coach, pack_values(w, offering_ids=[own, str(foreign)]), w.coach)
        db.session.rollback()
        tenancy.activate(w.org.id)
    assert count(Product, w.org.id) == 0 and count(ProductOffering, w.org.id) == 0


def test_a_plan_renews_and_may_open_the_coachs_spaces(world):
    w = world
    hosted = spaces.create_space(w.org, w.coach, "Members' corner", "", "private")
    foreign = spaces.create_space(w.org, w.other_coach, "Otto's room", "", "open")
    values = dict(kind="plan", title="Monthly", price="50", credits="2", interval="month", rollover="y",
                  offering_ids=[str(w.offering.id)], space_ids=[str(hosted.id)])
    plan = catalog.save_product(w.coach, values, w.coach)
    db.session.commit()
    assert (plan.interval, plan.rollover, plan.validity_days, plan.price_label) == ("month", True, None, "€50.00 / month")
    assert [s.id for s in catalog.details([plan])[0].spaces] == [hosted.id]
    with pytest.raises(CatalogError, match="Choose spaces from the list"):
        catalog.save_product(w.coach, {**values, "space_ids": [str(foreign.id)]}, w.coach)
    db.session.rollback()
    tenancy.activate(w.org.id)
    # An admin may attach any space of the organization to a coach's plan.
    catalog.save_product(w.coach, {**values, "space_ids": [str(foreign.id)]}, w.admin, plan)
    assert [s.id for s in catalog.details([plan])[0].spaces] == [foreign.id]
    with pytest.raises(CatalogError, match="monthly or yearly"):
        catalog.save_product(w.coach, {**values, "interval": "week"}, w.coach)
    db.session.rollback()
    tenancy.activate(w.org.id)
    with pytest.raises(CatalogError, match="credits, access to spaces, or both"):
        catalog.save_product(w.coach, {**values, "credits": "0", "space_ids": []}, w.coach)


def test_editing_keeps_the_kind_and_replaces_the_offerings(world):
    w = world
    second = make_offering(w.coach, title="Video review")
    product = catalog.save_product(w.coach, pack_values(w), w.coach)
    db.session.commit()
    catalog.save_product(w.coach, pack_values(w, kind="plan", price="180", offering_ids=[str(second.id)]),
                         w.coach, product)
    db.session.commit()
    assert (product.kind, product.price_minor) == ("pack", 18000)
    assert [o.id for o in catalog.details([product])[0].offerings] == [second.id]
    assert count(ProductOffering, w.org.id) == 1
    # Another coach's product is not this coach's to change.
    with pytest.raises(CatalogError, match="another coach"):
        catalog.save_product(w.other_coach, pack_values(w), w.other_coach, product)


def test_an_archived_product_is_not_for_sale_but_is_kept(world):
    w = world
    product = catalog.save_product(w.coach, pack_values(w), w.coach)
    catalog.archive(product, w.coach)
    db.session.commit()
    assert catalog.buyable(w.coach) == []
    assert catalog.products_of(w.coach, include_archived=True) == [product]
    with pytest.raises(CatalogError, match="no longer sold") as refused:
        catalog.ensure_buyable(product)
    assert refused.value.status == 409
    catalog.restore(product, w.coach)
    assert catalog.buyable(w.coach) == [product]
    assert [c.id for c, n in catalog.sellers(w.org)] == [w.coach.id]


def test_another_organization_sees_none_of_the_products(world):
    w = world
    product_id = catalog.save_product(w.coach, pack_values(w), w.coach).id
    db.session.commit()
    tenancy.activate(w.second.org.id)
    assert catalog.get_product(w.second.org, product_id) is None
    assert catalog.products_of(w.second.coach) == [] and catalog.sellers(w.second.org) == []
    assert db.session.scalar(select(func.count()).select_from(Product)) == 0
    assert db.session.scalar(select(func.count()).select_from(ProductSpace)) == 0


def test_settings_are_saved_within_their_ranges(world):
    w = world
    values = dict(currency="GBP", commission_bps=1500, tax_rate_bps=2000, tax_label="VAT", seller_name="Club Ltd",
                  seller_address="1 High St", seller_tax_id="GB123", dispute_window_hours=72, grace_days=3,
                  coaches_may_refund=True)
    saved = catalog.save_settings(w.org.id, values, w.admin)
    db.session.commit()
    assert (saved.currency, saved.commission_bps, saved.grace_days, saved.coaches_may_refund) == ("GBP", 1500, 3, True)
    with pytest.raises(CatalogError, match="outside what the settings allow"):
        catalog.save_settings(w.org.id, {**values, "commission_bps": 10001}, w.admin)
    db.session.rollback()
    tenancy.activate(w.org.id)
    with pytest.raises(CatalogError, match="not a currency code"):
        catalog.save_settings(w.org.id, {**values, "currency": "XXY"}, w.admin)
    db.session.rollback()
    tenancy.activate(w.org.id)
    assert billing_settings(w.org.id).commission_bps == 1500


def test_the_currency_is_fixed_once_a_payment_exists(world):
    w = world
    product = catalog.save_product(w.coach, pack_values(w), w.coach)
    db.session.add(Payment(tenant_id=w.org.id, athlete_membership_id=w.athlete.id, coach_membership_id=w.coach.id,
                           purpose="pack", product_id=product.id, amount_minor=product.price_minor, currency="EUR",
                           method="card", status="pending"))
    db.session.commit()
    with pytest.raises(CatalogError, match="currency stays EUR") as refused:
        catalog.save_settings(w.org.id, {"currency": "USD", "grace_days": 5}, w.admin)
    assert refused.value.status == 409
    db.session.rollback()
    tenancy.activate(w.org.id)
    # The rest may still change.
    catalog.save_settings(w.org.id, {"currency": "EUR", "grace_days": 5}, w.admin)
    db.session.commit()
    assert (billing_settings(w.org.id).currency, billing_settings(w.org.id).grace_days) == ("EUR", 5)
    # The other organization's settings and payments are its own.
    tenancy.activate(w.second.org.id)
    assert not catalog.has_payments(w.second.org.id)
    catalog.save_settings(w.second.org.id, {"currency": "USD"}, w.second_admin)
    assert billing_settings(w.second.org.id).currency == "USD"


def test_the_demo_organization_sells_a_pack_and_a_plan(app, ctx):
    result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    from coach.orgs.service import org_by_slug

    org = org_by_slug("northside")
    tenancy.activate(org.id)
    settings = billing_settings(org.id)
    assert (settings.currency, settings.commission_bps, settings.tax_rate_bps) == ("EUR", 1500, 1900)
    [(maria, count_on_sale)] = catalog.sellers(org)
    assert maria.user.email == "maria.coach@northside.example" and count_on_sale == 2
    pack, plan = catalog.details(catalog.buyable(maria))
    assert (pack.product.kind, pack.product.credits, pack.product.price_label) == ("pack", 5, "€270.00")
    assert (plan.product.kind, plan.product.interval, plan.product.price_label) == ("plan", "month", "€99.00 / month")
    titles = {"1:1 technique session", "Group conditioning"}
    assert {o.title for o in pack.offerings} == titles == {o.title for o in plan.offerings}
