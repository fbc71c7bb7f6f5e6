"""Booking with credits and payment: the settlement of bookings that will not take place, the ``held`` status
(kept for a checkout, expired by the sweep, given up by the athlete), and the booking pages."""
from __future__ import annotations

import re

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from coach import clock, tenancy
from coach.booking import service
from coach.booking.models import Booking
from coach.extensions import db
from coach.payments import credits, ledger, refunds, settlement
from coach.payments.models import CREDIT, Payment
from coach.platform.models import AuditEvent, OutboxEvent
from tests.payments_support import assert_books_balance
from tests.test_booking_views import OFFERING_FORM, act_for, iso, logged_in, post, text
from tests.test_payments_credits import PackWorld, money_side, remaining  # noqa: F401 - the fixture


@pytest.fixture()
def world(ctx, money_side, quiet):  # noqa: F811 - the imported fixture
    """The background worker stands still: each test delivers the events it means to."""
    return PackWorld()


@pytest.fixture()
def refunded(monkeypatch):
    """The refunds asked for (H3's ``refunds.refund`` stands in: the provider and its ledger are H3's tests)."""
    asked: list[tuple] = []

    def refund(payment, amount_minor, *, reason, actor):
        asked.append((payment.id, amount_minor, reason))
        payment.refunded_minor += amount_minor
        db.session.flush()
        return amount_minor

    monkeypatch.setattr(refunds, "refund", refund, raising=False)
    return asked


def deliver(booking, topic_to: str) -> None:
    """Run the settlement consumer on the booking's latest event of that status, as the worker would."""
    tenancy.activate(booking.tenant_id)
    event = db.session.scalars(select(OutboxEvent).where(
        OutboxEvent.payload["booking_id"].astext == str(booking.id), OutboxEvent.payload["to"].astext == topic_to)
        .order_by(OutboxEvent.created_at.desc())).first()
    assert event is not None, f"no booking.{topic_to} event"
    settlement.booking_ended(event.payload)
    db.session.commit()


def credit_booking(world, grant, starts_at):
    tenancy.activate(world.org.id)
    booking = credits.book_with_credit(world.offering, world.athlete, starts_at, "", world.athlete, grant.id)
    db.session.commit()
    return booking


def paid_booking(world, starts_at, amount=5000):
    """A session paid by card, as the checkout leaves it (the payment row; the earnings are H3's)."""
    tenancy.activate(world.org.id)
    booking = service.request_booking(world.offering, world.athlete, starts_at, "", world.athlete)
    payment = Payment(tenant_id=world.org.id, athlete_membership_id=world.athlete.id,
                      coach_membership_id=world.coach.id, purpose="session", booking_id=booking.id,
                      amount_minor=amount, currency="EUR", method="card", status="paid", paid_at=clock.now(),
                      provider_payment_id=f"pi_{uuid.uuid4().hex}")
    db.session.add(payment)
    db.session.commit()
    return booking, payment


def cancel(world, booking, actor):
    tenancy.activate(world.org.id)
    service.transition(booking, "cancel", actor)
    db.session.commit()


def soon_slot(world):
    """A slot inside the 24-hour cancellation window (a few hours from now)."""
    tenancy.activate(world.org.id)
    return [s for s in world.slots(40, days_ahead=0) if s > clock.now() + timedelta(hours=3)][0]


# --- settlement ----------------------------------------------------------------------------------------------

def test_an_athlete_cancelling_in_good_time_gets_the_credit_back(world):
    grant = world.pack(credits_count=2)
    booking = credit_booking(world, grant, world.slots(1, days_ahead=3)[0])
    cancel(world, booking, world.athlete)
    deliver(booking, "cancelled")
    deliver(booking, "cancelled")  # redelivered: nothing more
    assert remaining(grant) == 2
    assert ledger.balance(world.org.id, "credits_outstanding", CREDIT, grant.id) == -2
    assert_books_balance(world.org.id)


def test_a_late_cancellation_forfeits_the_credit_and_the_coach_keeps_the_earning(world):
    grant = world.pack(credits_count=2, price=10000)
    booking = credit_booking(world, grant, soon_slot(world))
    cancel(world, booking, world.athlete)
    deliver(booking, "cancelled")
    assert remaining(grant) == 1
    assert ledger.balance(world.org.id, "coach_pending", "EUR", world.coach.id) == -4500
    assert_books_balance(world.org.id)


@pytest.mark.parametrize("who", ["coach", "scheduler"])
def test_a_cancellation_by_the_coach_or_a_scheduler_always_gives_the_credit_back(world, who):
    grant = world.pack(credits_count=2)
    booking = credit_booking(world, grant, soon_slot(world))
    cancel(world, booking, getattr(world, who))
    deliver(booking, "cancelled")
    assert remaining(grant) == 2
    assert ledger.balance(world.org.id, "coach_pending", "EUR", world.coach.id) == 0
    assert_books_balance(world.org.id)


def test_a_declined_or_expired_request_gives_the_credit_back(world):
    tenancy.activate(world.org.id)
    world.offering.auto_confirm = False
    db.session.commit()
    grant = world.pack(credits_count=2)
    first, second = world.slots(2, days_ahead=3)
    declined = credit_booking(world, grant, first)
    expiring = credit_booking(world, grant, second)
    assert remaining(grant) == 0
    tenancy.activate(world.org.id)
    service.transition(declined, "decline", world.coach)
    db.session.commit()
    deliver(declined, "declined")
    tenancy.activate(world.org.id)
    service.run_due(world.org.id, now=expiring.expires_at + timedelta(seconds=1))
    db.session.commit()
    deliver(expiring, "expired")
    assert remaining(grant) == 2
    assert_books_balance(world.org.id)


def test_a_no_show_with_a_fee_refunds_the_rest_of_the_money(world, refunded):
    tenancy.activate(world.org.id)
    world.offering.late_cancel_policy, world.offering.late_cancel_fee_percent = "fee", 30
    db.session.commit()
    booking, payment = paid_booking(world, soon_slot(world), amount=5000)
    tenancy.activate(world.org.id)
    service.transition(booking, "no_show", world.coach, now=booking.starts_at + timedelta(minutes=10))
    db.session.commit()
    deliver(booking, "no_show")
    deliver(booking, "no_show")
    assert refunded == [(payment.id, 3500, "No-show")]


def test_a_coach_cancellation_of_a_paid_session_refunds_all_of_it(world, refunded):
    booking, payment = paid_booking(world, soon_slot(world), amount=4990)
    cancel(world, booking, world.coach)
    deliver(booking, "cancelled")
    assert refunded == [(payment.id, 4990, "Cancelled by the coach")]


def test_a_late_cancellation_of_a_paid_session_under_forfeit_refunds_nothing(world, refunded):
    booking, _ = paid_booking(world, soon_slot(world))
    cancel(world, booking, world.athlete)
    deliver(booking, "cancelled")
    assert refunded == []


def test_a_rescheduled_booking_is_not_settled(world):
    grant = world.pack(credits_count=2)
    first, second = world.slots(2, days_ahead=3)
    booking = credit_booking(world, grant, first)
    tenancy.activate(world.org.id)
    moved = service.reschedule_booking(booking, second, world.athlete)
    credits.carry_over(booking, moved, world.athlete)
    db.session.commit()
    deliver(booking, "cancelled")
    assert remaining(grant) == 1 and credits.credit_for_booking(moved) is not None
    assert_books_balance(world.org.id)


# --- held ------------------------------------------------------------------------------------------------------

def hold(world, starts_at, minutes=15):
    tenancy.activate(world.org.id)
    booking = service.request_booking(world.offering, world.athlete, starts_at, "", world.athlete,
                                      hold_minutes=minutes)
    db.session.commit()
    return booking


def test_the_sweep_says_where_each_expired_booking_came_from(world):
    tenancy.activate(world.org.id)
    world.offering.auto_confirm = False
    db.session.commit()
    first, second = world.slots(2, days_ahead=3)
    held = hold(world, first)
    requested = service.request_booking(world.offering, world.athlete, second, "", world.athlete)
    db.session.commit()
    tenancy.activate(world.org.id)
    assert service.run_due(world.org.id, now=requested.expires_at + timedelta(seconds=1)).expired == 2
    db.session.commit()
    for booking, before in ((held, "held"), (requested, "requested")):
        audit = db.session.scalars(select(AuditEvent).where(AuditEvent.target_id == str(booking.id),
                                                            AuditEvent.action == "booking.expired")).one()
        assert audit.details["from"] == before
        event = db.session.scalars(select(OutboxEvent).where(
            OutboxEvent.payload["booking_id"].astext == str(booking.id),
            OutboxEvent.payload["to"].astext == "expired")).one()
        assert event.payload["from"] == before
    # Both gave their time back.
    assert [s.starts_at for s in service.available_slots(world.offering, first, first + timedelta(minutes=1))] \
        == [first]


def test_a_held_place_takes_the_time_and_only_the_athlete_may_give_it_up(world):
    start = world.slots(1, days_ahead=3)[0]
    held = hold(world, start)
    tenancy.activate(world.org.id)
    assert service.available_slots(world.offering, start, start + timedelta(minutes=1)) == []
    assert "cancel" in service.allowed_actions(held, world.athlete)
    assert "cancel" not in service.allowed_actions(held, world.coach)
    assert service.moments_for({"to": "held", "starts_at": held.starts_at.isoformat(),
                                "ends_at": held.ends_at.isoformat(),
                                "expires_at": held.expires_at.isoformat()}) == [held.expires_at]
    cancel(world, held, world.athlete)
    assert db.session.get(Booking, held.id).status == "cancelled"
    # A held booking was never paid: settling it gives nothing back and asks for nothing.
    deliver(held, "cancelled")


def test_the_athletes_upcoming_list_and_the_coachs_show_a_held_place(world):
    held = hold(world, world.slots(1, days_ahead=3)[0])
    tenancy.activate(world.org.id)
    mine = service.session_lists(world.athlete, None, "Europe/Berlin")
    theirs = service.session_lists(world.coach, world.coach, "Europe/Berlin")
    assert [r.id for r in mine["upcoming"]] == [held.id] and mine["upcoming"][0].status_label == "Awaiting payment"
    assert [r.id for r in theirs["upcoming"]] == [held.id] and theirs["pending"] == []


# --- the booking pages -------------------------------------------------------------------------------------------

@pytest.fixture()
def athlete(app, world):
    return logged_in(app, world.athlete.user.email)


@pytest.fixture()
def scheduler(app, world):
    return logged_in(app, world.scheduler.user.email)


def book_path(world, starts_at) -> str:
    return f"/o/{world.org.slug}/offerings/{world.offering.id}/book?start={iso(starts_at)}"


def post_book(browser, world, starts_at, **data):
    return post(browser, world.org.slug, f"/offerings/{world.offering.id}/book", start=iso(starts_at),
                **data)


def test_the_book_page_of_a_priced_offering_offers_the_card_and_each_usable_pack(world, athlete):
    grant = world.pack(credits_count=3)
    start = world.slots(1)[0]
    page = text(athlete.get(book_path(world, start)))
    assert "Pay €50.00 by card" in page
    assert f'value="credit:{grant.id}"' in page and "Use a credit from 3-pack (3 left, expires" in page
    assert "Record a payment by hand" not in page  # the athlete's own page
    assert "later, the session is forfeited" in page


def test_without_card_payments_set_up_no_card_button_is_offered(world, athlete, app, monkeypatch):
    monkeypatch.setitem(app.config, "STRIPE_SECRET_KEY", "")
    page = text(athlete.get(book_path(world, world.slots(1)[0])))
    assert "by card" not in page and "Card payments are not set up here" in page


def test_booking_with_a_credit_says_which_pack_paid_and_what_is_left(world, athlete, owner_db):
    grant = world.pack(credits_count=3)
    start = world.slots(1)[0]
    response = post_book(athlete, world, start, athlete=str(world.athlete.id), pay=f"credit:{grant.id}")
    assert response.status_code == 303
    detail = athlete.get(response.headers["Location"])
    page = text(detail)
    assert "Booked with a credit of 3-pack (2 left)" in page and "1 credit of 3-pack — 2 left" in page
    tenancy.activate(world.org.id)
    assert remaining(grant) == 2
    assert_books_balance(world.org.id)


def test_a_priced_offering_is_not_booked_without_saying_how_to_pay(world, athlete, owner_db):
    response = post_book(athlete, world, world.slots(1)[0], athlete=str(world.athlete.id))
    assert response.status_code == 422 and "Choose how to pay the €50.00." in text(response)
    act_for(owner_db, world.org)
    assert owner_db.execute("SELECT count(*) FROM bookings").fetchone()[0] == 0


def test_another_organizations_pack_is_refused_as_not_found(world, athlete, owner_db):
    theirs_id = PackWorld().pack(credits_count=2).id
    response = post_book(athlete, world, world.slots(1)[0], athlete=str(world.athlete.id),
                         pay=f"credit:{theirs_id}")
    assert response.status_code == 404 and "That pack was not found" in text(response)
    act_for(owner_db, world.org)
    assert owner_db.execute("SELECT count(*) FROM bookings").fetchone()[0] == 0


def test_a_pack_with_no_credit_left_gets_a_clear_409(world, athlete):
    grant = world.pack(credits_count=1)
    first, second = world.slots(2)
    credit_booking(world, grant, first)
    response = post_book(athlete, world, second, athlete=str(world.athlete.id), pay=f"credit:{grant.id}")
    assert response.status_code == 409 and "3-pack has no credits left" not in text(response)
    assert "1-pack has no credits left. Choose another way to pay." in text(response)


def test_paying_by_card_holds_the_time_and_sends_the_athlete_to_the_checkout(world, athlete, fake_stripe):
    start = world.slots(1)[0]
    response = post_book(athlete, world, start, athlete=str(world.athlete.id), pay="card")
    assert response.status_code == 303 and response.headers["Location"].startswith(fake_stripe.url)
    tenancy.activate(world.org.id)
    held = db.session.scalars(select(Booking)).one()
    assert held.status == "held"
    page = text(athlete.get(f"/o/{world.org.slug}/bookings/{held.id}"))
    assert "Awaiting payment — " in page and "pay now" in page and "the time is kept until" in page
    # The athlete gives the held place up: it is cancelled and its time free again.
    cancelled = post(athlete, world.org.slug, f"/bookings/{held.id}/cancel")
    assert cancelled.status_code == 303
    db.session.rollback()
    tenancy.activate(world.org.id)
    assert db.session.get(Booking, held.id).status == "cancelled"
    assert db.session.scalars(select(Payment)).one().status == "cancelled"


def test_a_scheduler_records_a_payment_by_hand(world, scheduler):
    start = world.slots(1)[0]
    page = text(scheduler.get(book_path(world, start)))
    assert "Record a payment by hand" in page
    # Enter in the reference field submits the form's first button: it must record the payment, not start a card
    # checkout in the scheduler's browser.
    assert re.findall(r'name="pay" value="([^"]+)"', page)[0] == "manual"
    response = post_book(scheduler, world, start, athlete=str(world.athlete.id), pay="manual", reference="Cash #17")
    assert response.status_code == 303
    page = text(scheduler.get(response.headers["Location"]))
    assert "Paid €50.00 by hand" in page
    tenancy.activate(world.org.id)
    booking = db.session.scalars(select(Booking)).one()
    assert booking.status == "confirmed"  # the world's offering confirms at once
    assert_books_balance(world.org.id)
    # Once its receipt is issued (the payments.paid job), the booking page links it.
    from coach.payments import invoices
    from coach.payments.models import Payment

    receipt = invoices.issue(db.session.scalars(select(Payment)).one())
    db.session.commit()
    page = text(scheduler.get(response.headers["Location"]))
    assert f"/billing/receipts/{receipt.id}" in page and ">receipt</a>" in page


def test_an_athlete_cannot_record_a_payment_by_hand(world, athlete, owner_db):
    response = post_book(athlete, world, world.slots(1)[0], athlete=str(world.athlete.id), pay="manual",
                         reference="trust me")
    assert response.status_code == 422
    act_for(owner_db, world.org)
    assert owner_db.execute("SELECT count(*) FROM payments").fetchone()[0] == 0


def test_offering_prices_are_read_in_the_organizations_currency(world, app, owner_db):
    tenancy.activate(world.org.id)
    from coach.payments.settings import billing_settings

    billing_settings(world.org.id).currency = "JPY"
    db.session.commit()
    coach = logged_in(app, world.coach.user.email)
    path = f"/offerings/{world.offering.id}/edit"
    refused = post(coach, world.org.slug, path, **dict(OFFERING_FORM, price="49.5"))
    assert refused.status_code == 422 and "JPY amounts have no decimals." in text(refused)
    saved = post(coach, world.org.slug, path, **dict(OFFERING_FORM, price="5,000", late_cancel_policy="fee",
                                                     late_cancel_fee_percent="30"))
    assert saved.status_code == 303
    act_for(owner_db, world.org)
    assert owner_db.execute("SELECT price_minor, currency, late_cancel_policy, late_cancel_fee_percent "
                            "FROM offerings").fetchone() == (5000, "JPY", "fee", 30)
    form = text(coach.get(f"/o/{world.org.slug}{path}"))
    assert 'value="5000"' in form and "Price (JPY)" in form


def test_a_late_cancel_fee_outside_0_to_100_is_refused(world, app):
    coach = logged_in(app, world.coach.user.email)
    for value in ("101", "-1", "1000000000000000000000000000000"):
        refused = post(coach, world.org.slug, f"/offerings/{world.offering.id}/edit",
                       **dict(OFFERING_FORM, late_cancel_policy="fee", late_cancel_fee_percent=value))
        assert refused.status_code == 422 and "A fee between 0 and 100 per cent." in text(refused), value


def test_a_session_paid_by_card_and_cancelled_by_the_coach_is_refunded_in_full(world, athlete, fake_stripe):
    """The whole way: the book page's card checkout, paid at the provider, completed; the coach cancels; the
    settlement refunds through the provider and takes the coach's pending share back."""
    from coach.payments import checkout

    response = post_book(athlete, world, world.slots(1, days_ahead=3)[0], athlete=str(world.athlete.id), pay="card")
    assert response.status_code == 303
    tenancy.activate(world.org.id)
    payment = db.session.scalars(select(Payment)).one()
    intent = fake_stripe.pay(payment.provider_checkout_id)["payment_intent"]
    tenancy.activate(world.org.id)
    checkout.complete(payment, provider_payment_id=intent, amount_minor=5000, currency="EUR")
    db.session.commit()
    booking = db.session.scalars(select(Booking)).one()
    assert booking.status == "confirmed"
    assert ledger.balance(world.org.id, "coach_pending", "EUR", world.coach.id) == -4500
    page = text(athlete.get(f"/o/{world.org.slug}/bookings/{booking.id}"))
    assert "Paid €50.00 by card" in page
    cancel(world, booking, world.coach)
    deliver(booking, "cancelled")
    db.session.rollback()
    tenancy.activate(world.org.id)
    assert db.session.get(Payment, payment.id).refunded_minor == 5000
    assert ledger.balance(world.org.id, "coach_pending", "EUR", world.coach.id) == 0
    assert "€50.00 refunded" in text(athlete.get(f"/o/{world.org.slug}/bookings/{booking.id}"))
    assert_books_balance(world.org.id)


def test_a_session_paid_by_card_is_not_moved_but_one_paid_with_a_credit_is(world, athlete):
    grant = world.pack(credits_count=2)
    first, second, third, fourth = world.slots(4, days_ahead=3)
    by_card, _ = paid_booking(world, first)
    refused = post_book(athlete, world, second, athlete=str(world.athlete.id), reschedule=str(by_card.id))
    assert refused.status_code == 422 and "A session paid by card cannot be moved" in text(refused)
    by_credit = credit_booking(world, grant, third)
    moved = post_book(athlete, world, fourth, athlete=str(world.athlete.id), reschedule=str(by_credit.id))
    assert moved.status_code == 303
    page = text(athlete.get(moved.headers["Location"]))
    assert "1 credit of 2-pack — 1 left" in page
    tenancy.activate(world.org.id)
    assert remaining(grant) == 1
    assert_books_balance(world.org.id)
