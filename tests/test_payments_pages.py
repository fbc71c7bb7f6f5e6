"""The pages around the catalogue: a coach's products, the shop, my billing, the admin's payments (filters,
keyset pages, totals, a fixed number of statements), a payment's page, manual payments, the settings; who may
see what, and another organization seeing nothing."""
from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from coach import tenancy
from coach.extensions import db
from coach.orgs.models import ADMIN, ATHLETE, COACH, Membership
from coach.payments import catalog
from coach.payments.models import CreditGrant, Payment, Product, Subscription
from coach.payments.settings import billing_settings
from coach.platform.ratelimit import limiter
from coach.spaces import service as spaces
from tests.booking_support import BookingWorld, make_offering
from tests.conftest import Auth, csrf_from
from tests.factories import add_member, make_user
from tests.fuzz_support import HOSTILE, encode_pairs, shown
from tests.payments_support import assert_books_balance, seed_payment_rows
from tests.querycount import statements_for

UTC = timezone.utc
ROW_RE = re.compile(r'<tr class="payment" id="payment-')


class World(BookingWorld):
    """BookingWorld plus its admin, a second coach and athlete, and clients signed in as each."""

    def __init__(self, app):
        super().__init__()
        tenancy.activate(self.org.id)
        self.admin = db.session.scalar(select(Membership).where(Membership.tenant_id == self.org.id,
                                                                Membership.role == ADMIN))
        self.other_coach = add_member(self.org, make_user(f"coach2-{id(self)}@example.com", "Otto Other"), COACH)
        self.other_athlete = add_member(self.org, make_user(f"ath2-{id(self)}@example.com", "Bea Bystander"),
                                        ATHLETE)
        self.other_offering = make_offering(self.other_coach, title="Otto's session")
        self.app = app
        self.slug = self.org.slug
        self.emails = {m: m.user.email for m in (self.admin, self.coach, self.athlete, self.other_coach,
                                                 self.other_athlete)}

    def client(self, member):
        browser = self.app.test_client()
        Auth(browser).login(self.emails[member])
        return browser

    def url(self, path: str) -> str:
        return f"/o/{self.slug}/billing{path}"

    def pack(self, coach=None, offering=None, **values) -> Product:
        coach = coach or self.coach
        tenancy.activate(self.org.id)
        product = catalog.save_product(coach, {
            "kind": "pack", "title": "5-pack", "price": "200", "credits": "5", "validity_days": "90",
            "offering_ids": [str((offering or self.offering).id)], **values}, coach)
        db.session.commit()
        return product

    def payment(self, product, athlete=None, **values) -> Payment:
        tenancy.activate(self.org.id)
        row = Payment(tenant_id=self.org.id, athlete_membership_id=(athlete or self.athlete).id,
                      coach_membership_id=product.coach_membership_id, purpose=product.kind, product_id=product.id,
                      amount_minor=product.price_minor, currency=product.currency,
                      **{"method": "card", "status": "paid", **values})
        db.session.add(row)
        db.session.commit()
        return row


@pytest.fixture()
def w(ctx, app):
    return World(app)


def html(response, status: int = 200) -> str:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:2000])
    return response.get_data(as_text=True)


def post_form(browser, page: str | None, path: str, data: dict):
    """POST ``path`` with the CSRF token of ``page`` (a form's own page), or of the profile page."""
    token = csrf_from(html(browser.get(page))) if page else Auth(browser).csrf("/profile")
    return browser.post(path, data={"csrf_token": token, **data})


# --- the navigation -------------------------------------------------------------------------------------

def test_billing_in_the_navigation_goes_where_each_role_works(w):
    for member, target in ((w.athlete, "/mine"), (w.coach, "/products"), (w.admin, "/payments")):
        page = html(w.client(member).get(f"/o/{w.slug}/bookings"))
        assert f'<a href="{w.url(target)}">Billing</a>' in page


# --- the coach's products -----------------------------------------------------------------------------

def test_a_coach_puts_a_pack_on_sale_and_a_posted_amount_changes_nothing(w):
    coach = w.client(w.coach)
    response = post_form(coach, w.url("/products/new"), w.url("/products/new"), {
        "kind": "pack", "title": "Ten sessions", "price": "450.00", "price_minor": "1", "amount_minor": "1",
        "credits": "10", "validity_days": "180", "offering_ids": str(w.offering.id)})
    assert response.status_code == 303 and response.headers["Location"].endswith("/billing/products")
    tenancy.activate(w.org.id)
    product = db.session.scalar(select(Product).where(Product.tenant_id == w.org.id))
    assert (product.price_minor, product.currency, product.credits) == (45000, "EUR", 10)
    page = html(coach.get(w.url("/products")))
    assert "Ten sessions" in page and "€450.00" in page and "Technique session" in page


def test_another_coachs_offering_in_the_form_is_a_message_not_a_500(w):
    coach = w.client(w.coach)
    for foreign in (str(w.other_offering.id), str(uuid.uuid4()), "1 OR 1=1"):
        response = post_form(coach, w.url("/products/new"), w.url("/products/new"), {
            "kind": "pack", "title": "Sneaky", "price": "10", "credits": "1", "validity_days": "30",
            "offering_ids": [str(w.offering.id), foreign]})
        page = html(response, 422)
        assert "Choose offerings of Carla Coach" in page or "Choose offerings from the list" in page
    for bad, message in (({"price": "-3"}, "cannot be negative"), ({"price": "1e400"}, "Price:"),
                         ({"credits": "0"}, "between 1 and 1,000"), ({"kind": "plan", "interval": "day"},
                                                                      "monthly or yearly")):
        response = post_form(coach, w.url("/products/new"), w.url("/products/new"), {
            "kind": "pack", "title": "Bad", "price": "10", "credits": "1", "validity_days": "30",
            "offering_ids": str(w.offering.id), **bad})
        assert message in html(response, 422)
    tenancy.activate(w.org.id)
    assert db.session.scalar(select(func.count()).select_from(Product)) == 0


def test_the_product_form_as_an_htmx_fragment_has_no_layout(w):
    coach = w.client(w.coach)
    token = csrf_from(html(coach.get(w.url("/products/new"))))
    response = coach.post(w.url("/products/new"), headers={"HX-Request": "true", "HX-Target": "product-form"},
                          data={"csrf_token": token, "kind": "pack", "title": "", "price": "", "credits": "1",
                                "validity_days": "1", "offering_ids": str(w.offering.id)})
    page = html(response, 422)
    assert "<html" not in page and 'id="product-form"' in page and "title" in page


def test_products_are_edited_and_archived_by_their_coach_or_an_admin_only(w):
    product = w.pack()
    coach, other, athlete, admin = (w.client(m) for m in (w.coach, w.other_coach, w.athlete, w.admin))
    edit = w.url(f"/products/{product.id}/edit")
    assert "200.00" in html(coach.get(edit))
    assert other.get(edit).status_code == 403 and athlete.get(w.url("/products")).status_code == 403
    assert athlete.get(edit).status_code == 403
    assert coach.get(w.url(f"/products/{uuid.uuid4()}/edit")).status_code == 404
    assert coach.get(w.url("/products/not-an-id/edit")).status_code == 404
    response = post_form(admin, edit, edit, {"kind": "plan", "title": "5-pack (new price)", "price": "180",
                                             "credits": "5", "validity_days": "60",
                                             "offering_ids": str(w.offering.id)})
    assert response.status_code == 303 and f"coach={w.coach.id}" in response.headers["Location"]
    assert "€180.00" in html(admin.get(w.url(f"/products?coach={w.coach.id}")))
    picker = html(admin.get(w.url("/products")))
    assert "Choose a coach" in picker and f"/products?coach={w.coach.id}" in picker
    assert admin.get(w.url(f"/products?coach={w.athlete.id}")).status_code == 404
    assert admin.get(w.url("/products/new")).status_code == 404  # new for whom?
    assert other.get(w.url(f"/products?coach={w.coach.id}")).status_code == 403
    assert other.get(w.url(f"/products/new?coach={w.coach.id}")).status_code == 403
    shop = w.url(f"/coaches/{w.coach.id}")
    assert "5-pack (new price)" in html(athlete.get(shop))
    archive = w.url(f"/products/{product.id}/archive")
    assert post_form(other, w.url("/products/new"), archive, {}).status_code == 403
    assert post_form(coach, w.url("/products"), archive, {}).status_code == 303
    assert "5-pack" not in html(athlete.get(shop)).split("<main")[1]
    assert "Archived" in html(coach.get(w.url("/products")))
    tenancy.activate(w.org.id)
    assert db.session.get(Product, product.id).kind == "pack"


# --- the shop and my billing ------------------------------------------------------------------------

def test_the_shop_shows_a_coachs_packs_and_plans_with_buy_buttons(w):
    w.pack()
    tenancy.activate(w.org.id)
    space = spaces.create_space(w.org, w.coach, "Inner circle", "", "private")
    catalog.save_product(w.coach, {"kind": "plan", "title": "Monthly club", "price": "39", "credits": "0",
                                   "interval": "month", "space_ids": [str(space.id)]}, w.coach)
    db.session.commit()
    page = html(w.client(w.athlete).get(w.url(f"/coaches/{w.coach.id}")))
    assert "5-pack" in page and "€200.00" in page and "valid 90 days" in page
    assert "Monthly club" in page and "€39.00 / month" in page and "Inner circle" in page
    # Buying posts to the checkout, not boosted: the answer leaves for the payment provider's page.
    buy = re.findall(r'<form method="post" action="([^"]+/buy)" hx-boost="false">', page)
    assert len(buy) == 2 and "Buy for €200.00" in page
    # Coaches and admins look at the shop; only athletes buy.
    assert "/buy" not in html(w.client(w.coach).get(w.url(f"/coaches/{w.coach.id}")))
    assert w.client(w.athlete).get(w.url(f"/coaches/{w.athlete.id}")).status_code == 404
    assert w.client(w.athlete).get(w.url("/coaches/not-an-id")).status_code == 404


def _seed(w):
    tenancy.activate(w.org.id)
    space = spaces.create_space(w.org, w.coach, "Plan space", "", "private")
    booked = w.first_slot()
    from coach.booking import service as booking

    tenancy.activate(w.org.id)
    b = booking.request_booking(w.offering, w.athlete, booked.starts_at, "", w.athlete)
    db.session.flush()
    rows = seed_payment_rows(w.org, w.coach, w.athlete, w.offering, space, b)
    db.session.commit()
    return rows


def test_my_billing_shows_my_credits_subscriptions_and_receipts_and_nobody_elses(w):
    rows = _seed(w)
    page = html(w.client(w.athlete).get(w.url("/mine")))
    assert "5-pack" in page and "<strong>4</strong> of 5" in page and "Technique session" in page
    assert "monthly" in page and "Cancel at period end" in page
    assert f"Receipt {rows['invoice'].number}" in page and "€200.00" in page
    assert f'href="/o/{w.slug}/billing/receipts/{rows["invoice"].id}"' in page
    other = html(w.client(w.other_athlete).get(w.url("/mine")))
    assert "No packs or credits yet." in other and "No subscriptions." in other and "No payments yet." in other
    assert_books_balance(w.org.id)


def test_an_athlete_cancels_and_resumes_a_plan_from_my_billing(w):
    rows = _seed(w)
    tenancy.activate(w.org.id)
    sub = db.session.get(Subscription, rows["subscription"].id)
    sub.provider_subscription_id = None  # recorded by hand: nothing to tell the provider
    db.session.commit()
    athlete = w.client(w.athlete)
    cancel = w.url(f"/subscriptions/{sub.id}/cancel")
    assert post_form(w.client(w.other_athlete), None, cancel, {}).status_code == 404
    response = post_form(athlete, w.url("/mine"), cancel, {})
    assert response.status_code == 303
    page = html(athlete.get(w.url("/mine")))
    assert "The plan ends at the end of this period." in page and "Resume" in page
    post_form(athlete, w.url("/mine"), w.url(f"/subscriptions/{sub.id}/resume"), {})
    page = html(athlete.get(w.url("/mine")))
    assert "The plan renews again." in page and "Cancel at period end" in page
    # Resuming what is not set to end is a message, not a 500.
    post_form(athlete, w.url("/mine"), w.url(f"/subscriptions/{sub.id}/resume"), {})
    assert "nothing to resume" in html(athlete.get(w.url("/mine")))
    assert athlete.post(cancel, data={}).status_code == 400  # no CSRF token
    assert_books_balance(w.org.id)


# --- a payment's page ---------------------------------------------------------------------------------

def test_a_payment_page_shows_its_ledger_and_invoices_to_those_who_may_see_it(w):
    rows = _seed(w)
    path = w.url(f"/payments/{rows['payment'].id}")
    admin_page = html(w.client(w.admin).get(path))
    assert "Payment of €200.00" in admin_page and "Receipt 1" in admin_page
    assert "provider clearing" in admin_page and "athlete prepaid" in admin_page and "5 credits" in admin_page
    # The pack's credit spent on a booking is part of the payment's story: its coach's share moved there.
    assert "<code>credit.used</code>" in admin_page and "coach pending" in admin_page and "€36.00" in admin_page
    coach_page = html(w.client(w.coach).get(path))
    assert "provider clearing" in coach_page
    athlete_page = html(w.client(w.athlete).get(path))
    assert "Payment of €200.00" in athlete_page and "provider clearing" not in athlete_page
    for outsider in (w.other_athlete, w.other_coach):
        assert w.client(outsider).get(path).status_code == 404
    assert w.client(w.admin).get(w.url("/payments/nope")).status_code == 404
    refund = f"/payments/{rows['payment'].id}/refund"
    assert refund in admin_page
    assert refund not in coach_page and refund not in athlete_page  # coaches may not refund by default
    tenancy.activate(w.org.id)
    billing_settings(w.org.id).coaches_may_refund = True
    db.session.commit()
    assert refund in html(w.client(w.coach).get(path))
    assert refund not in html(w.client(w.other_coach).get(w.url("/payments/" + str(rows["payment"].id))), 404)


def test_another_organization_sees_none_of_it(w):
    rows = _seed(w)
    payment_id, pack_id, coach_id = rows["payment"].id, rows["pack"].id, w.coach.id
    second = BookingWorld()
    tenancy.activate(second.org.id)
    admin2 = db.session.scalar(select(Membership).where(Membership.tenant_id == second.org.id,
                                                        Membership.role == ADMIN))
    browser = w.app.test_client()
    Auth(browser).login(admin2.user.email)
    slug2 = second.org.slug
    page = html(browser.get(f"/o/{slug2}/billing/payments"))
    assert "No payments match." in page
    assert browser.get(f"/o/{slug2}/billing/payments/{payment_id}").status_code == 404
    assert browser.get(f"/o/{slug2}/billing/products/{pack_id}/edit").status_code == 404
    assert browser.get(f"/o/{slug2}/billing/coaches/{coach_id}").status_code == 404
    # And the first organization's pages are not reachable by its admin at all.
    assert browser.get(w.url("/payments")).status_code == 404


# --- the admin's payments list ------------------------------------------------------------------------

def test_the_payments_list_filters_pages_and_totals(w):
    pack = w.pack()
    other_pack = w.pack(coach=w.other_coach, offering=w.other_offering, title="Otto's pack", price="50")
    for _ in range(27):
        w.payment(pack)
    w.payment(pack, status="failed", failure_reason="card declined")
    w.payment(other_pack, method="manual", reference="bank 42", refunded_minor=1000)
    admin = w.client(w.admin)
    first = html(admin.get(w.url("/payments")))
    assert len(ROW_RE.findall(first)) == 25
    # Totals cover everything matched, not only the page: 27 × 200 + 50 paid, 10 refunded.
    assert "€5,450.00" in first and "€10.00" in first and "€5,440.00" in first
    cursor = re.search(r'href="[^"]*after=([^"&]+)', first).group(1)
    second = html(admin.get(w.url(f"/payments?after={cursor}")))
    assert len(ROW_RE.findall(second)) == 4 and "Older payments" not in second
    failed = html(admin.get(w.url("/payments?status=failed")))
    assert len(ROW_RE.findall(failed)) == 1 and "Failed" in failed
    manual = html(admin.get(w.url(f"/payments?method=manual&coach={w.other_coach.id}")))
    assert len(ROW_RE.findall(manual)) == 1 and "bank 42" in manual and "Partly refunded" in manual
    today = datetime.now(UTC).date()
    assert len(ROW_RE.findall(html(admin.get(w.url(f"/payments?since={today + timedelta(days=2)}"))))) == 0
    assert len(ROW_RE.findall(html(admin.get(w.url(f"/payments?purpose=pack&until={today + timedelta(days=1)}")))))\
        == 25
    # Bad filters are messages, a bad cursor a 400; never a 500.
    assert "Not a valid choice" in html(admin.get(w.url("/payments?status=bogus")), 422)
    assert "Choose a coach" in html(admin.get(w.url("/payments?coach=x")), 422)
    assert "before the start" in html(admin.get(w.url(f"/payments?since={today}&until={today - timedelta(days=3)}")),
                                      422)
    assert admin.get(w.url("/payments?since=2026-13-45")).status_code == 422
    assert admin.get(w.url("/payments?after=garbage")).status_code == 400
    fragment = html(admin.get(w.url("/payments?status=paid"), headers={"HX-Request": "true"}))
    assert "<html" not in fragment and 'id="payment-rows"' in fragment
    for member in (w.coach, w.athlete):
        assert w.client(member).get(w.url("/payments")).status_code == 403


def test_the_payments_list_is_a_fixed_number_of_statements(w):
    pack = w.pack()
    other_pack = w.pack(coach=w.other_coach, offering=w.other_offering, title="Otto's pack")
    admin = w.client(w.admin)
    counts = []
    for size in (3, 6):
        for i in range(size):
            w.payment(pack if i % 2 else other_pack, athlete=w.athlete if i % 3 else w.other_athlete)
        assert admin.get(w.url("/payments")).status_code == 200  # warm up
        counts.append(statements_for(w.app, admin, w.url("/payments")))
    assert counts[0] == counts[1], counts
    # The floor every page pays (the session's user, organization and membership; the nav's badges), the
    # coaches for the filter, the page of payments, the totals, the rows' coach and product names.
    assert counts[0] == 6, counts


# --- manual payments ----------------------------------------------------------------------------------

def test_an_admin_records_a_pack_paid_by_bank_transfer(w, quiet):
    pack = w.pack()
    admin = w.client(w.admin)
    page = w.url("/payments/manual")
    response = post_form(admin, page, page, {"athlete": str(w.athlete.id), "product": str(pack.id),
                                             "reference": "SEPA 2026-12-06", "amount_minor": "1"})
    assert response.status_code == 303, html(response, 303)
    tenancy.activate(w.org.id)
    payment = db.session.scalar(select(Payment).where(Payment.tenant_id == w.org.id))
    assert (payment.amount_minor, payment.method, payment.status, payment.reference) == (
        20000, "manual", "paid", "SEPA 2026-12-06")
    assert response.headers["Location"].endswith(f"/billing/payments/{payment.id}")
    grant = db.session.scalar(select(CreditGrant).where(CreditGrant.tenant_id == w.org.id))
    assert (grant.credits_total, grant.credits_remaining) == (5, 5)
    assert "<strong>5</strong> of 5" in html(w.client(w.athlete).get(w.url("/mine")))
    assert_books_balance(w.org.id)


def test_manual_payment_refusals_are_messages(w):
    pack = w.pack()
    others = w.pack(coach=w.other_coach, offering=w.other_offering, title="Otto's pack")
    page = w.url("/payments/manual")
    coach = w.client(w.coach)
    form = html(coach.get(page))
    assert "5-pack" in form and "Otto's pack" not in form
    for data, message in (
            ({"product": str(others.id)}, "Choose one of the packs or plans"),
            ({"product": str(uuid.uuid4())}, "Choose one of the packs or plans"),
            ({"athlete": str(w.coach.id)}, "Choose an athlete"),
            ({"reference": ""}, "Enter a reference")):
        response = post_form(coach, page, page, {"athlete": str(w.athlete.id), "product": str(pack.id),
                                                 "reference": "cash", **data})
        assert message in html(response, 422)
    catalog.archive(db.session.get(Product, pack.id), w.coach)
    db.session.commit()
    response = post_form(w.client(w.admin), page, page, {"athlete": str(w.athlete.id), "product": str(pack.id),
                                                          "reference": "cash"})
    assert "no longer sold" in html(response, 409)
    assert w.client(w.athlete).get(page).status_code == 403
    tenancy.activate(w.org.id)
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 0


# --- settings -----------------------------------------------------------------------------------------

def test_an_admin_changes_the_billing_settings_within_their_ranges(w):
    admin = w.client(w.admin)
    page = w.url("/settings")
    form = html(admin.get(page))
    assert "JPY — Japanese Yen" in form and 'value="10.00"' in form
    values = {"currency": "CHF", "commission_percent": "12.5", "tax_percent": "8.1", "tax_label": "MWST",
              "seller_name": "Club AG", "seller_address": "Bahnhofstrasse 1", "seller_tax_id": "CHE-123",
              "dispute_window_hours": "72", "grace_days": "5", "coaches_may_refund": "y"}
    assert post_form(admin, page, page, values).status_code == 303
    tenancy.activate(w.org.id)
    saved = billing_settings(w.org.id)
    assert (saved.currency, saved.commission_bps, saved.tax_rate_bps, saved.coaches_may_refund) == (
        "CHF", 1250, 810, True)
    for bad, message in (({"commission_percent": "150"}, "Between 0 and 100"),
                         ({"tax_percent": "NaN"}, "percentage"), ({"commission_percent": "1.234"}, "two decimals"),
                         ({"grace_days": "61"}, "Between 0 and 60"), ({"dispute_window_hours": "-1"}, "2,160"),
                         ({"currency": "ZZZ"}, "Not a valid choice"), ({"tax_label": ""}, "Name the tax")):
        assert message in html(post_form(admin, page, page, {**values, **bad}), 422)
    assert w.client(w.coach).get(page).status_code == 403
    assert w.client(w.athlete).get(page).status_code == 403


def test_the_currency_cannot_change_once_a_payment_exists(w):
    w.payment(w.pack())
    admin = w.client(w.admin)
    page = w.url("/settings")
    assert "can no longer change" in html(admin.get(page))
    response = post_form(admin, page, page, {"currency": "USD", "commission_percent": "10", "tax_percent": "0",
                                             "tax_label": "VAT", "dispute_window_hours": "48", "grace_days": "7"})
    assert "The currency stays EUR" in html(response, 409)
    tenancy.activate(w.org.id)
    assert billing_settings(w.org.id).currency == "EUR"


def test_my_billing_is_a_fixed_number_of_statements_and_pages_its_history(w):
    pack = w.pack()
    athlete = w.client(w.athlete)
    counts = []
    for size in (2, 30):
        tenancy.activate(w.org.id)
        for _ in range(size):
            payment = w.payment(pack)
            db.session.add(CreditGrant(tenant_id=w.org.id, athlete_membership_id=w.athlete.id, product_id=pack.id,
                                       payment_id=payment.id, credits_total=5, credits_remaining=5,
                                       currency="EUR"))
        db.session.commit()
        assert athlete.get(w.url("/mine")).status_code == 200  # warm up
        counts.append(statements_for(w.app, athlete, w.url("/mine")))
    assert counts[0] == counts[1], counts
    # The floor, then grants, their offerings and spaces, subscriptions, payments, their names, their
    # invoices, and the coaches selling packs.
    assert counts[0] == 10, counts
    page = html(athlete.get(w.url("/mine")))
    assert page.count('<tr id="payment-') == 25
    cursor = re.search(r'href="[^"]*mine\?after=([^"&]+)"', page).group(1)
    older = html(athlete.get(w.url(f"/mine?after={cursor}"), headers={"HX-Request": "true", "HX-Target": "history"}))
    assert "<html" not in older and older.count('<tr id="payment-') == 7
    assert athlete.get(w.url("/mine?after=not-a-cursor")).status_code == 400


def test_the_billing_navigation_offers_each_role_its_pages(w):
    coach_nav = html(w.client(w.coach).get(w.url("/products")))
    assert f'href="{w.url("/earnings")}"' in coach_nav and f'href="{w.url("/payments/manual")}"' in coach_nav
    admin_nav = html(w.client(w.admin).get(w.url("/payments")))
    for target in ("/payouts", "/settings", "/payments/manual", "/mine"):
        assert f'href="{w.url(target)}"' in admin_nav
    athlete_nav = html(w.client(w.athlete).get(w.url("/mine")))
    assert f'href="{w.url("/earnings")}"' not in athlete_nav and f'href="{w.url("/settings")}"' not in athlete_nav


# --- hostile input --------------------------------------------------------------------------------------

# A cross-section of tests/fuzz_support.HOSTILE: NUL, surrogates and invalid UTF-8, bidi, huge and odd
# numbers, bad dates and ids, markup, and lengths around the limits.
SOME_HOSTILE = [HOSTILE[i] for i in range(0, len(HOSTILE), 5)] + [
    b"x" * 121, b"x" * 2001, "\U0001F600".encode() * 121, b"9" * 5000, b"1e400", b"12.345", b"-0.01"]


def _sent(browser, method: str, path: str, pairs: list[tuple[str, bytes]]):
    body = encode_pairs(pairs)
    if method == "GET":
        return browser.get(f"{path}?{body}")
    return browser.post(path, data=body, content_type="application/x-www-form-urlencoded")


def test_billing_forms_and_filters_survive_hostile_input(w, monkeypatch):
    monkeypatch.setattr(limiter, "enabled", False)  # hundreds of requests a minute from one account
    pack = w.pack()
    coach, admin, athlete = w.client(w.coach), w.client(w.admin), w.client(w.athlete)
    forms = [
        (coach, "POST", w.url("/products/new"), dict(
            kind=b"pack", title=b"Pack", description=b"", price=b"20", credits=b"2", validity_days=b"30",
            weekly_limit=b"", interval=b"month", rollover=b"y", offering_ids=str(w.offering.id).encode(),
            space_ids=b"")),
        (coach, "POST", w.url(f"/products/{pack.id}/edit"), dict(
            kind=b"pack", title=b"Pack", price=b"20", credits=b"2", validity_days=b"30",
            offering_ids=str(w.offering.id).encode())),
        (admin, "POST", w.url("/settings"), dict(
            currency=b"EUR", commission_percent=b"10", tax_percent=b"0", tax_label=b"VAT", seller_name=b"",
            seller_address=b"", seller_tax_id=b"", dispute_window_hours=b"48", grace_days=b"7",
            coaches_may_refund=b"")),
        (admin, "POST", w.url("/payments/manual"), dict(
            athlete=str(w.athlete.id).encode(), product=str(pack.id).encode(), reference=b"cash")),
        (admin, "GET", w.url("/payments"), dict(status=b"paid", method=b"card", purpose=b"pack",
                                                 coach=str(w.coach.id).encode(), since=b"2026-01-01",
                                                 until=b"2026-12-31", after=b"")),
        (athlete, "GET", w.url("/mine"), dict(after=b"")),
        (admin, "GET", w.url("/products"), dict(coach=str(w.coach.id).encode(), after=b"")),
    ]
    failures = []
    for browser, method, path, plausible in forms:
        token = Auth(browser).csrf("/profile").encode()
        for name in plausible:
            for value in SOME_HOSTILE:
                pairs = [(k, value if k == name else v) for k, v in plausible.items()]
                if method == "POST":
                    pairs.append(("csrf_token", token))
                response = _sent(browser, method, path, pairs)
                if response.status_code >= 500:
                    failures.append((path, name, shown(value), response.status_code))
    assert not failures, failures[:10]
    for action in ("cancel", "resume", "delete"):
        assert post_form(athlete, None, w.url(f"/subscriptions/{uuid.uuid4()}/{action}"), {}).status_code == 404
    assert_books_balance(w.org.id)


# --- the journey through the provider -------------------------------------------------------------------

def test_without_card_payments_set_up_the_shop_says_who_records_a_payment(w, monkeypatch):
    monkeypatch.setitem(w.app.config, "STRIPE_SECRET_KEY", "")
    w.pack()
    page = html(w.client(w.athlete).get(w.url(f"/coaches/{w.coach.id}")))
    assert "5-pack" in page and "/buy" not in page and "Card payments are not set up here" in page


def test_an_athlete_buys_from_the_shop_and_manages_the_plan_on_my_billing(w, fake_stripe, quiet):
    """Buy buttons of the shop page → the fake provider's checkout → paid (the webhook) → My billing shows the
    credits and receipt; the plan is cancelled at period end and resumed at the provider too."""
    fake_stripe.deliver_to_app(w.app)
    w.pack()
    tenancy.activate(w.org.id)
    catalog.save_product(w.coach, {"kind": "plan", "title": "Monthly club", "price": "39", "credits": "2",
                                   "interval": "month", "offering_ids": [str(w.offering.id)]}, w.coach)
    db.session.commit()
    athlete = w.client(w.athlete)
    shop = html(athlete.get(w.url(f"/coaches/{w.coach.id}")))
    token = csrf_from(shop)
    for action in re.findall(r'<form method="post" action="([^"]+/buy)" hx-boost="false">', shop):
        answer = athlete.post(action, data={"csrf_token": token})
        assert answer.status_code == 303 and answer.headers["Location"].startswith(fake_stripe.url)
        fake_stripe.pay(re.search(r"(cs_[A-Za-z0-9_]+)", answer.headers["Location"]).group(1))
    fake_stripe.flush()
    quiet.drain()
    mine = html(athlete.get(w.url("/mine")))
    assert "<strong>5</strong> of 5" in mine and "<strong>2</strong> of 2" in mine
    assert mine.count(">Paid<") == 2 and "Monthly club" in mine and "Active" in mine
    assert len(re.findall(r'href="[^"]+/billing/receipts/[0-9a-f-]{36}">Receipt \d+</a>', mine)) == 2
    tenancy.activate(w.org.id)
    sub = db.session.scalar(select(Subscription).where(Subscription.tenant_id == w.org.id))
    cancel = w.url(f"/subscriptions/{sub.id}/cancel")
    assert re.search(f'action="{re.escape(cancel)}"', mine)
    assert post_form(athlete, None, cancel, {}).status_code == 303
    assert fake_stripe.object(sub.provider_subscription_id)["cancel_at_period_end"] is True
    assert "Resume" in html(athlete.get(w.url("/mine")))
    shop = html(athlete.get(w.url(f"/coaches/{w.coach.id}")))
    assert "You subscribe to this plan." in shop and len(re.findall(r'action="[^"]+/buy"', shop)) == 1
    assert post_form(athlete, None, w.url(f"/subscriptions/{sub.id}/resume"), {}).status_code == 303
    assert fake_stripe.object(sub.provider_subscription_id)["cancel_at_period_end"] is False
    quiet.drain()
    assert_books_balance(w.org.id)
