"""Payments in Chromium, through the fake provider's hosted checkout (fakestripe), with its webhooks reaching
the live server (and the background worker applying them), as issue 16's "Done when" describes.

Screenshots go to ``$COACH_SCREENSHOTS`` (``/tmp`` when unset) as ``payments-*.png``.
"""
from __future__ import annotations

import re
import time
from datetime import timedelta, timezone

import pytest
from playwright.sync_api import Page, expect

from coach import clock, tenancy
from coach.extensions import db
from coach.booking import sweeps
from coach.payments import catalog, earnings, subscriptions
from coach.payments.settings import billing_settings
from tests.booking_support import BookingWorld
from tests.e2e import screenshots
from tests.e2e.test_journeys import log_in, watch_csp
from tests.factories import PASSWORD
from tests.payments_support import assert_books_balance

pytestmark = pytest.mark.e2e

snap = screenshots("payments")


def open_org(page: Page, live_server: str, slug: str, email: str) -> None:
    page.goto(f"{live_server}/login?next=/o/{slug}/")
    log_in(page, email, PASSWORD)
    expect(page).to_have_url(f"{live_server}/o/{slug}/")


class PaymentsWorld(BookingWorld):
    """The booking world (Berlin coach, athlete, admin, a €50 offering) with a 5-pack and a monthly plan."""

    def __init__(self):
        super().__init__(price_minor=5000)
        tenancy.activate(self.org.id)
        self.pack = catalog.save_product(self.coach, {
            "kind": "pack", "title": "5 × Technique", "price": "200.00", "credits": "5", "validity_days": "90",
            "offering_ids": [str(self.offering.id)]}, self.coach)
        self.plan = catalog.save_product(self.coach, {
            "kind": "plan", "title": "Monthly technique", "price": "39.00", "credits": "2", "interval": "month",
            "offering_ids": [str(self.offering.id)]}, self.coach)
        db.session.commit()


@pytest.fixture()
def world(ctx):
    return PaymentsWorld()


@pytest.fixture()
def provider_to_live(fake_stripe, live_server):
    """The fake provider's webhooks go to the live server, as Stripe's go to the deployed app."""
    fake_stripe.deliver_to(f"{live_server}/payments/webhook")
    return fake_stripe


def reload_until(page: Page, locator, text: str, *, gone: str | None = None, timeout: float = 20.0) -> None:
    """Reload the page (as the person would) until ``locator`` shows ``text`` (and no longer ``gone``): the
    provider's webhook is applied by the worker a moment after the provider sent it."""
    deadline = time.monotonic() + timeout
    while True:
        page.reload()
        shown = locator.inner_text() if locator.count() else ""
        if text in shown and (gone is None or gone not in shown):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout}s the page still shows {shown!r}, not {text!r}")
        page.wait_for_timeout(300)


def emailed_pdfs(mailbox, address: str, timeout: float = 20.0) -> list:
    """The PDF attachments of the emails to ``address``, waiting up to ``timeout`` for at least one."""
    deadline = time.monotonic() + timeout
    while True:
        pdfs = [part for message in mailbox.to(address) for part in message.iter_attachments()
                if part.get_content_type() == "application/pdf"]
        if pdfs or time.monotonic() > deadline:
            return pdfs
        time.sleep(0.2)


def buy(page: Page, live_server: str, world, product, price: str) -> None:
    """From the athlete's billing page to the coach's shop, Buy, and on to the provider's checkout page."""
    page.goto(f"{live_server}/o/{world.org.slug}/billing/mine")
    page.locator("#buy").get_by_role("link", name="Carla Coach").click()
    expect(page.get_by_role("heading", name="Packs and plans of Carla Coach")).to_be_visible()
    page.locator(f"#product-{product.id}").get_by_role("button", name=f"Buy for {price}").click()
    expect(page.get_by_text("Fake payment provider — no real money")).to_be_visible()


def test_athlete_buys_a_five_pack_through_the_fake_checkout(page, live_server, world, provider_to_live,
                                                            mailbox):
    athlete_email = world.athlete.user.email
    csp = watch_csp(page)
    open_org(page, live_server, world.org.slug, athlete_email)

    # The provider's page (labelled as fake) shows what is bought and the price from the server.
    buy(page, live_server, world, world.pack, "€200.00")
    expect(page.get_by_test_id("amount")).to_have_text("€200.00")
    expect(page.get_by_text("5 × Technique")).to_be_visible()
    snap(page, "checkout")

    # Paid: the browser comes back to the app, which waits for the webhook (the truth) to say so.
    page.get_by_role("button", name="Pay €200.00").click()
    expect(page).to_have_url(re.compile(rf"{live_server}/o/{world.org.slug}/billing/checkout/"))
    expect(page.get_by_role("heading", name="Payment received")).to_be_visible(timeout=20_000)
    expect(page.get_by_text("Your 5 credits are ready to book with.")).to_be_visible()
    completed = provider_to_live.events("checkout.session.completed")
    assert len(completed) == 1 and completed[0]["delivery"]["status"] == 200
    snap(page, "paid")

    # My billing lists the pack with its five credits.
    page.get_by_role("link", name="My billing").last.click()
    row = page.locator("#credits tr.grant")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("5 × Technique")
    expect(row).to_contain_text("5 of 5")
    snap(page, "billing")

    # The receipt is emailed with its PDF.
    pdfs = emailed_pdfs(mailbox, athlete_email)
    assert len(pdfs) == 1 and pdfs[0].get_content().startswith(b"%PDF")
    assert csp == []
    assert_books_balance(world.org.id)


def test_a_subscription_renews_then_fails_and_access_ends_after_grace(page, live_server, world, provider_to_live):
    open_org(page, live_server, world.org.slug, world.athlete.user.email)
    buy(page, live_server, world, world.plan, "€39.00")
    expect(page.get_by_text("Monthly technique (every month)")).to_be_visible()
    page.get_by_role("button", name="Pay €39.00").click()
    expect(page.get_by_role("heading", name="Payment received")).to_be_visible(timeout=20_000)
    expect(page.get_by_text("Your subscription to Monthly technique is active.")).to_be_visible()
    sub_id = provider_to_live.events("checkout.session.completed")[0]["data"]["object"]["subscription"]

    page.get_by_role("link", name="My billing").last.click()
    row = page.locator("#subscriptions tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Monthly technique")
    expect(row).to_contain_text("Active")
    grant = page.locator("#credits tr.grant")
    expect(grant).to_have_count(1)
    expect(grant).to_contain_text("2 of 2")
    first_period = row.locator("td").nth(2).inner_text()

    # The next month is paid: a new period and its credits.
    provider_to_live.renew(sub_id, outcome="paid")
    assert all(e["delivery"]["status"] == 200 for e in provider_to_live.events())
    reload_until(page, row, "Active", gone=first_period)
    # The renewal is a payment of its own in the history (the new period's credits start with the period).
    # invoice.paid (the payment) and customer.subscription.updated (the period) are two webhooks, each applied by
    # its own job: the new period can show a moment before the payment does, so wait for the payment too.
    history = page.locator("#history tbody tr")
    reload_until(page, history.nth(1), "€39.00")
    expect(history).to_have_count(2)
    expect(history.first).to_contain_text("€39.00")
    snap(page, "renewed")

    # The month after, the card fails: past due, access kept until the grace period ends.
    provider_to_live.renew(sub_id, outcome="failed")
    reload_until(page, row, "Payment failed — access until")
    snap(page, "past-due")

    # Time passes beyond the grace period: the sweep ends access and cancels at the provider.
    tenancy.activate(world.org.id)
    grace_over = clock.now() + timedelta(days=billing_settings(world.org.id).grace_days, hours=1)
    assert subscriptions.end_due(world.org.id, now=grace_over) == 1
    db.session.commit()
    provider_to_live.flush()
    assert provider_to_live.object(sub_id)["status"] == "canceled"
    page.reload()
    expect(row).to_contain_text("Ended")
    expect(row.get_by_role("button")).to_have_count(0)
    snap(page, "ended")
    assert_books_balance(world.org.id)


def book_with(page: Page, live_server: str, world, starts_at, button) -> str:
    """Open the book page of ``starts_at`` and press ``button`` (a way to pay); the booking's id."""
    start = starts_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    page.goto(f"{live_server}/o/{world.org.slug}/offerings/{world.offering.id}/book?start={start}")
    page.get_by_role("button", name=button).click()
    expect(page).to_have_url(re.compile(rf"/o/{world.org.slug}/bookings/[0-9a-f-]{{36}}$"))
    return page.url.rsplit("/", 1)[1]


def test_pack_credits_book_two_sessions_one_cancelled_in_time_the_other_delivered_and_earned(
        browser, page, live_server, world, provider_to_live):
    slug = world.org.slug
    open_org(page, live_server, slug, world.athlete.user.email)
    buy(page, live_server, world, world.pack, "€200.00")
    page.get_by_role("button", name="Pay €200.00").click()
    expect(page.get_by_role("heading", name="Payment received")).to_be_visible(timeout=20_000)

    # Two sessions booked with the pack; each page says which pack paid and how many credits remain.
    first, second = world.first_slot(days_ahead=3), world.first_slot(days_ahead=4)
    kept = book_with(page, live_server, world, first.starts_at,
                     re.compile(r"^Use a credit from 5 × Technique \(5 left"))
    expect(page.locator("dd.paid")).to_contain_text("1 credit of 5 × Technique — 4 left")
    cancelled = book_with(page, live_server, world, second.starts_at,
                          re.compile(r"^Use a credit from 5 × Technique \(4 left"))
    expect(page.locator("dd.paid")).to_contain_text("1 credit of 5 × Technique — 3 left")
    snap(page, "booked-with-credit")

    # Cancelled days ahead (outside the 24-hour window): the credit comes back.
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator(f"#booking-{cancelled}").get_by_role("button", name="Cancel").click()
    expect(page.locator(f"#booking-{cancelled} .badge")).to_have_text("Cancelled")
    page.goto(f"{live_server}/o/{slug}/billing/mine")
    reload_until(page, page.locator("#credits tr.grant"), "4 of 5")  # the settlement runs as a job

    # The coach accepts the other; its share is pending until the session is over and the window passed.
    coach_context = browser.new_context()
    try:
        coach = coach_context.new_page()
        open_org(coach, live_server, slug, world.coach.user.email)
        coach.goto(f"{live_server}/o/{slug}/bookings/{kept}")
        coach.locator(f"#booking-{kept}").get_by_role("button", name="Accept").click()
        expect(coach.locator(f"#booking-{kept} .badge")).to_have_text("Confirmed")
        coach.goto(f"{live_server}/o/{slug}/billing/earnings")
        totals = coach.locator("#earnings .stat")
        expect(totals.filter(has_text="Pending")).to_contain_text("€36.00")  # €40 a credit, 10 % commission
        expect(totals.filter(has_text="Available")).to_contain_text("€0.00")
        snap(coach, "earnings-pending")

        # The session takes place; two days (the dispute window) after it ended the share is available.
        tenancy.activate(world.org.id)
        after = first.ends_at + timedelta(hours=1)
        assert sweeps.run_due(world.org.id, now=after).ended == 1
        assert earnings.release_due(world.org.id, now=after + timedelta(days=2)) == 1
        db.session.commit()
        coach.reload()
        expect(totals.filter(has_text="Pending")).to_contain_text("€0.00")
        expect(totals.filter(has_text="Available")).to_contain_text("€36.00")
        snap(coach, "earnings-available")
    finally:
        coach_context.close()
    assert_books_balance(world.org.id)


def test_admin_refunds_a_card_paid_session_partly_and_both_sides_see_it(browser, page, live_server, world,
                                                                        provider_to_live, mailbox):
    slug, athlete_email = world.org.slug, world.athlete.user.email
    open_org(page, live_server, slug, athlete_email)

    # A single session paid by card: the time is held while the athlete is on the provider's page.
    slot = world.first_slot(days_ahead=3)
    start = slot.starts_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    page.goto(f"{live_server}/o/{slug}/offerings/{world.offering.id}/book?start={start}")
    page.get_by_role("button", name="Pay €50.00 by card").click()
    expect(page.get_by_text("Fake payment provider — no real money")).to_be_visible()
    expect(page.get_by_test_id("amount")).to_have_text("€50.00")
    page.get_by_role("button", name="Pay €50.00").click()
    expect(page.get_by_role("heading", name="Payment received")).to_be_visible(timeout=20_000)
    expect(page.get_by_role("link", name="See the booking")).to_be_visible()

    # The admin finds the payment and refunds €20.00 of it with a reason.
    admin_context = browser.new_context()
    try:
        admin = admin_context.new_page()
        admin_csp = watch_csp(admin)
        open_org(admin, live_server, slug, f"admin-{id(world)}@example.com")
        admin.goto(f"{live_server}/o/{slug}/billing/payments")
        admin.locator("tr.payment").filter(has_text="€50.00").get_by_role("link").first.click()
        expect(admin.get_by_role("heading", name="Payment of €50.00")).to_be_visible()
        admin.get_by_role("link", name="Refund").click()
        admin.get_by_label("Amount to refund").fill("20.00")
        admin.get_by_label("Reason").fill("The court was closed for the first 25 minutes.")
        admin.get_by_role("button", name="Refund").click()
        expect(admin.get_by_text("Refunded €20.00; the athlete was told by email.")).to_be_visible()
        facts = admin.locator("dl.facts")
        expect(facts).to_contain_text("€20.00")
        expect(facts).to_contain_text("Still refundable")
        expect(facts).to_contain_text("€30.00")
        snap(admin, "refunded-admin")
        assert admin_csp == []
    finally:
        admin_context.close()

    # The provider made the refund (and told the app); the athlete sees it on the booking and in billing.
    refunded = provider_to_live.events("charge.refunded")
    assert [e["data"]["object"]["amount_refunded"] for e in refunded] == [2000]
    assert refunded[0]["delivery"]["status"] == 200
    page.goto(f"{live_server}/o/{slug}/billing/mine")
    expect(page.locator("#history")).to_contain_text("€20.00 refunded")
    snap(page, "refunded-athlete")
    # The refund's email goes out through the outbox and a worker: wait for it as a person would.
    deadline = time.monotonic() + 20
    while not any("court was closed" in mailbox.text(m) for m in mailbox.to(athlete_email)):
        assert time.monotonic() < deadline, [m["Subject"] for m in mailbox.to(athlete_email)]
        time.sleep(0.1)
    assert_books_balance(world.org.id)


def test_a_declined_card_then_a_successful_retry_ends_paid(page, live_server, world, provider_to_live):
    open_org(page, live_server, world.org.slug, world.athlete.user.email)
    buy(page, live_server, world, world.pack, "€200.00")
    page.get_by_role("button", name="Decline").click()
    expect(page.get_by_role("heading", name="Your card was declined")).to_be_visible()
    failed = provider_to_live.events("payment_intent.payment_failed")
    assert len(failed) == 1 and failed[0]["delivery"]["status"] == 200

    page.get_by_role("link", name="Try again").click()
    page.get_by_role("button", name="Pay €200.00").click()
    expect(page.get_by_role("heading", name="Payment received")).to_be_visible(timeout=20_000)
    assert_books_balance(world.org.id)
