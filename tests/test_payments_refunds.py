"""Refunds and disputes: at most what is refundable (a clear 422 otherwise), the coach's and the organization's
shares taken back in proportion (from pending, or from available once released), a full refund of a session
to come cancels it, a credit note and an email for each refund, refunds made at the provider and disputes
booked once; who may refund; the refund page."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from coach import tenancy
from coach.booking.models import Booking
from coach.errors import DomainError, NotAllowed
from coach.extensions import db
from coach.orgs.models import ADMIN, COACH, Membership
from coach.payments import earnings, invoices, ledger, provider, refunds
from coach.payments.models import Earning, Invoice, Payment
from coach.payments.settings import billing_settings
from coach.platform.models import Email
from tests.conftest import csrf_from
from tests.factories import add_member, make_user
from tests.payments_support import assert_books_balance
from tests.test_payments_earnings import login, paid_session, priced_world


@pytest.fixture()
def world(ctx, quiet):
    """(The background worker stands still: the emails stay as queued, attachments included.)"""
    return priced_world()


def admin_of(world) -> Membership:
    tenancy.activate(world.org.id)
    return db.session.scalar(select(Membership).where(Membership.tenant_id == world.org.id, Membership.role == ADMIN))


def reload(model, id_, org_id):
    tenancy.activate(org_id)
    db.session.expire_all()
    return db.session.get(model, id_)


def test_a_partial_refund_takes_the_shares_back_in_proportion_and_keeps_the_booking(world):
    booking, payment, earning = paid_session(world)
    n = refunds.refund(payment, 1000, reason="Started 15 minutes late", actor=admin_of(world))
    db.session.commit()
    t = world.org.id
    assert n == 1
    payment = reload(Payment, payment.id, t)
    assert (payment.refunded_minor, payment.refundable_minor, payment.status_label) == (1000, 4000, "Partly refunded")
    assert reload(Earning, earning.id, t).reversed_minor == 900
    assert ledger.balance(t, "coach_pending", "EUR", world.coach.id) == -3600
    assert ledger.balance(t, "org_commission", "EUR") == -400
    assert ledger.balance(t, "provider_clearing", "EUR") == 4000
    assert reload(Booking, booking.id, t).status == "requested"
    [note] = db.session.scalars(select(Invoice).where(Invoice.kind == "credit_note")).all()
    assert (note.total_minor, note.payment_id) == (-1000, payment.id)
    assert "Started 15 minutes late" in note.lines[0]["description"]
    [mail] = db.session.scalars(select(Email).where(Email.subject.like("%refunded%"))).all()
    assert mail.to_address == world.athlete.user.email and "€10.00" in mail.subject
    assert "Started 15 minutes late" in mail.body_text
    assert mail.attachments[0]["content_type"] == "application/pdf"
    assert mail.attachments[0]["filename"] == f"credit-note-{invoices.number_label(note)}.pdf"
    assert_books_balance(t)


def test_a_full_refund_cancels_the_session_to_come_and_reverses_the_whole_earning(world):
    booking, payment, earning = paid_session(world)
    refunds.refund(payment, 1001, reason="first", actor=admin_of(world))
    refunds.refund(payment, 3999, reason="the rest", actor=admin_of(world))
    db.session.commit()
    t = world.org.id
    earning = reload(Earning, earning.id, t)
    assert (earning.reversed_minor, earning.status) == (4500, "reversed")
    assert ledger.balance(t, "coach_pending", "EUR", world.coach.id) == 0
    assert ledger.balance(t, "org_commission", "EUR") == 0
    assert reload(Booking, booking.id, t).status == "cancelled"
    assert reload(Payment, payment.id, t).status_label == "Refunded"
    assert_books_balance(t)


def test_more_than_is_refundable_is_refused_with_the_reason_and_nothing_changes(world):
    _, payment, _ = paid_session(world)
    refunds.refund(payment, 4000, reason="most", actor=admin_of(world))
    db.session.commit()
    tenancy.activate(world.org.id)
    with pytest.raises(refunds.RefundError, match=r"At most €10.00 can be refunded") as refused:
        refunds.refund(payment, 1001, reason="too much", actor=admin_of(world))
    assert refused.value.status == 422
    db.session.rollback()
    for amount in (0, -5):
        with pytest.raises(refunds.RefundError, match="above zero"):
            refunds.refund(payment, amount, reason="x", actor=admin_of(world))
        db.session.rollback()
    assert reload(Payment, payment.id, world.org.id).refunded_minor == 4000
    assert_books_balance(world.org.id)


def test_after_the_window_a_refund_comes_from_the_available_balance(world):
    booking, payment, earning = paid_session(world)
    earnings.release_due(world.org.id, now=booking.ends_at + timedelta(hours=49))
    db.session.commit()
    tenancy.activate(world.org.id)
    refunds.refund(payment, 2000, reason="goodwill", actor=admin_of(world))
    db.session.commit()
    t = world.org.id
    assert ledger.balance(t, "coach_available", "EUR", world.coach.id) == -2700
    assert ledger.balance(t, "coach_pending", "EUR", world.coach.id) == 0
    assert reload(Earning, earning.id, t).status == "available"
    assert_books_balance(t)


def test_only_admins_refund_unless_coaches_may_refund_their_own(world):
    _, payment, _ = paid_session(world)
    other_coach = add_member(world.org, make_user(), COACH)
    tenancy.activate(world.org.id)
    coach = db.session.get(Membership, world.coach.id)
    with pytest.raises(NotAllowed):
        refunds.refund(payment, 100, reason="x", actor=coach)
    db.session.rollback()
    tenancy.activate(world.org.id)
    billing_settings(world.org.id).coaches_may_refund = True
    db.session.commit()
    tenancy.activate(world.org.id)
    assert not refunds.may_refund(db.session.get(Membership, other_coach.id), payment)
    assert not refunds.may_refund(db.session.get(Membership, world.athlete.id), payment)
    refunds.refund(payment, 100, reason="my call", actor=db.session.get(Membership, world.coach.id))
    db.session.commit()
    assert reload(Payment, payment.id, world.org.id).refunded_minor == 100
    assert_books_balance(world.org.id)


def test_a_refund_made_at_the_provider_is_booked_once_by_its_cumulative_amount(world):
    booking, payment, _ = paid_session(world, method="card")
    assert refunds.record_provider_refund(payment, 1500) == 1500
    assert refunds.record_provider_refund(payment, 1500) == 0  # the same event again
    db.session.commit()
    tenancy.activate(world.org.id)
    assert refunds.record_provider_refund(payment, 2000) == 500  # a second refund there
    db.session.commit()
    payment = reload(Payment, payment.id, world.org.id)
    assert payment.refunded_minor == 2000
    assert reload(Booking, booking.id, world.org.id).status == "requested"
    assert len(db.session.scalars(select(Invoice).where(Invoice.kind == "credit_note")).all()) == 2
    assert_books_balance(world.org.id)


def test_a_dispute_takes_the_money_back_once_and_limits_later_refunds(world):
    _, payment, _ = paid_session(world, method="card")
    assert refunds.record_dispute(payment, "dp_1", 3000) == 3000
    assert refunds.record_dispute(payment, "dp_1", 3000) == 0
    db.session.commit()
    t = world.org.id
    payment = reload(Payment, payment.id, t)
    assert (payment.disputed_minor, payment.refundable_minor) == (3000, 2000)
    assert ledger.balance(t, "coach_pending", "EUR", world.coach.id) == -1800
    with pytest.raises(refunds.RefundError, match="disputed €30.00"):
        refunds.refund(payment, 2001, reason="x", actor=admin_of(world))
    db.session.rollback()
    tenancy.activate(t)
    assert_books_balance(t)


def test_a_card_refund_goes_to_the_provider_first_with_a_key_from_our_refund_number(world, monkeypatch):
    _, payment, _ = paid_session(world, method="card")
    calls = []
    monkeypatch.setattr(provider, "refund", lambda intent, amount, *, reason, idempotency_key, **kw:
                        calls.append((intent, amount, idempotency_key)) or f"re_{len(calls)}")
    refunds.refund(payment, 500, reason="a", actor=admin_of(world))
    refunds.refund(payment, 700, reason="b", actor=admin_of(world))
    db.session.commit()
    assert [(c[0], c[1]) for c in calls] == [("pi_test_1", 500), ("pi_test_1", 700)]
    assert calls[0][2].endswith(f"{payment.id}-1") and calls[1][2].endswith(f"{payment.id}-2")

    def refuse(*args, **kwargs):
        raise provider.ProviderError("The card network is down.")

    tenancy.activate(world.org.id)
    monkeypatch.setattr(provider, "refund", refuse)
    with pytest.raises(DomainError) as failed:
        refunds.refund(payment, 100, reason="c", actor=admin_of(world))
    assert failed.value.status == 502
    db.session.rollback()
    assert reload(Payment, payment.id, world.org.id).refunded_minor == 1200
    assert_books_balance(world.org.id)


# --- the page -----------------------------------------------------------------------------------------

def test_the_admin_refunds_through_the_form_and_too_much_gets_a_422_with_the_reason(world, client):
    _, payment, _ = paid_session(world)
    slug, pid, admin_email = world.org.slug, payment.id, admin_of(world).user.email
    login(client, admin_email)
    url = f"/o/{slug}/billing/payments/{pid}/refund"
    page = client.get(url)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'value="50.00"' in html and "€50.00" in html
    token = csrf_from(html)
    too_much = client.post(url, data={"csrf_token": token, "amount": "60", "reason": "no"})
    assert too_much.status_code == 422 and "At most €50.00 can be refunded" in too_much.get_data(as_text=True)
    nonsense = client.post(url, data={"csrf_token": token, "amount": "ten", "reason": "no"},
                           headers={"HX-Request": "true"})
    assert nonsense.status_code == 422 and "not an amount" in nonsense.get_data(as_text=True)
    assert "<html" not in nonsense.get_data(as_text=True)
    done = client.post(url, data={"csrf_token": token, "amount": "12.50", "reason": "Court was wet"})
    assert done.status_code == 303
    assert reload(Payment, pid, world.org.id).refunded_minor == 1250
    assert_books_balance(world.org.id)


def test_athletes_coaches_without_permission_and_other_organizations_cannot_refund(world, app):
    _, payment, _ = paid_session(world)
    slug, pid = world.org.slug, payment.id
    athlete_email, coach_email = world.athlete.user.email, world.coach.user.email
    other = priced_world()
    other_slug, other_admin = other.org.slug, admin_of(other).user.email
    for email, url, status in ((athlete_email, f"/o/{slug}/billing/payments/{pid}/refund", 403),
                               (coach_email, f"/o/{slug}/billing/payments/{pid}/refund", 403),
                               (other_admin, f"/o/{other_slug}/billing/payments/{pid}/refund", 404)):
        client = app.test_client()
        login(client, email)
        assert client.get(url).status_code == status, email
    assert reload(Payment, pid, world.org.id).refunded_minor == 0


def test_refunding_a_pack_takes_the_money_back_from_its_unspent_prepaid_balance(world):
    from tests.test_payments_earnings import _grant_with_prepaid

    grant = _grant_with_prepaid(world, value=4000)
    payment = Payment(tenant_id=world.org.id, athlete_membership_id=world.athlete.id,
                      coach_membership_id=world.coach.id, purpose="pack", product_id=grant.product_id,
                      amount_minor=20000, currency="EUR", method="manual", status="paid", reference="cash")
    db.session.add(payment)
    db.session.flush()
    grant.payment_id = payment.id
    db.session.commit()
    tenancy.activate(world.org.id)
    refunds.refund(payment, 8000, reason="two sessions not needed", actor=admin_of(world))
    db.session.commit()
    t = world.org.id
    tenancy.activate(t)
    assert ledger.balance(t, "athlete_prepaid", "EUR", grant.id) == -12000
    assert ledger.balance(t, "provider_clearing", "EUR") == 12000
    assert reload(Payment, payment.id, t).refunded_minor == 8000
    assert_books_balance(t)


def test_a_refund_after_the_payout_makes_the_available_balance_negative_and_the_page_says_so(world, app):
    from coach.payments import payouts

    booking, payment, earning = paid_session(world)
    earnings.release_due(world.org.id, now=booking.ends_at + timedelta(hours=49))
    day = booking.starts_at.date()
    payouts.record(world.coach, day, day, "TRX-1", admin_of(world))
    db.session.commit()
    tenancy.activate(world.org.id)
    refunds.refund(payment, 5000, reason="never happened", actor=admin_of(world))
    db.session.commit()
    t = world.org.id
    tenancy.activate(t)
    assert ledger.balance(t, "coach_available", "EUR", world.coach.id) == 4500  # the coach owes it back
    assert reload(Earning, earning.id, t).status == "paid"
    assert reload(Booking, booking.id, t).status == "cancelled"
    [totals] = earnings.summary(db.session.get(Membership, world.coach.id))
    assert (totals.available, totals.paid) == (-4500, 4500)
    client = app.test_client()
    login(client, world.coach.user.email)
    html = client.get(f"/o/{world.org.slug}/billing/earnings").get_data(as_text=True)
    assert "-€45.00" in html and "The available balance is negative" in html
    tenancy.activate(t)
    assert_books_balance(t)
    # The next session's payout nets the debt: €45.00 earned, €45.00 owed, nothing left to pay.
    later, _, _ = paid_session(world, days_ahead=3)
    earnings.release_due(t, now=later.ends_at + timedelta(hours=49))
    db.session.commit()
    tenancy.activate(t)
    with pytest.raises(payouts.PayoutError, match="Nothing is available"):
        payouts.record(world.coach, later.starts_at.date(), later.starts_at.date(), "TRX-2", admin_of(world))
    db.session.rollback()
    tenancy.activate(t)
    assert ledger.balance(t, "coach_available", "EUR", world.coach.id) == 0
    assert_books_balance(t)


def test_the_athlete_is_told_in_the_app_and_admins_of_a_dispute(world):
    from coach.notifications import payments as notices
    from coach.notifications.models import Notification

    _, payment, _ = paid_session(world)
    refunds.refund(payment, 1000, reason="Rain", actor=None)
    refunds.record_dispute(payment, "dp_9", 500)
    db.session.commit()
    t = world.org.id
    tenancy.activate(t)
    note = db.session.scalar(select(Invoice).where(Invoice.kind == "credit_note"))
    payload = {"payment_id": str(payment.id), "amount_minor": 1000, "reason": "Rain", "credit_note_id": str(note.id)}
    notices.tell_athlete_of_refund(payload)
    notices.tell_athlete_of_refund(payload)  # delivered twice: told once
    notices.tell_admins_of_dispute({"payment_id": str(payment.id), "amount_minor": 500})
    db.session.commit()
    tenancy.activate(t)
    told = {(n.membership_id, n.kind): n for n in db.session.scalars(select(Notification))}
    refund_notice = told[(world.athlete.id, "payment_refunded")]
    assert refund_notice.title == f"{world.org.name} refunded €10.00" and refund_notice.body == "Rain"
    assert refund_notice.url == f"/o/{world.org.slug}/billing/receipts/{note.id}"
    assert told[(admin_of(world).id, "payment_disputed")].title.startswith("A payment of €50.00 is disputed")
    assert len(told) == 2
    assert_books_balance(t)


def test_a_card_payment_is_refunded_at_the_provider_once_per_refund(world, fake_stripe):
    from coach import clock

    _, payment, _ = paid_session(world, method="card")
    t = world.org.id
    made = provider.create_checkout(
        mode="payment", title="Technique session", amount_minor=5000, currency="EUR",
        customer_email=world.athlete.user.email, success_url="http://coach.test/ok?c={CHECKOUT_SESSION_ID}",
        cancel_url="http://coach.test/no", metadata={"tenant_id": str(t), "payment_id": str(payment.id)},
        expires_at=clock.now() + timedelta(hours=1))
    intent = fake_stripe.pay(made.id)["payment_intent"]
    tenancy.activate(t)
    payment.provider_payment_id = intent
    db.session.commit()
    tenancy.activate(t)
    refunds.refund(payment, 2000, reason="late start", actor=admin_of(world))
    db.session.commit()
    tenancy.activate(t)
    refunds.refund(payment, 3000, reason="the rest", actor=admin_of(world))
    db.session.commit()
    [*_, last] = fake_stripe.events("charge.refunded")
    assert last["data"]["object"]["amount_refunded"] == 5000
    assert len(fake_stripe.events("charge.refunded")) == 2
    # The provider's own event about our refunds adds nothing (its cumulative amount is what we booked).
    tenancy.activate(t)
    assert refunds.record_provider_refund(payment, 5000) == 0
    assert reload(Payment, payment.id, t).refunded_minor == 5000
    assert_books_balance(t)


def test_concurrent_refunds_queue_on_the_payment_and_never_give_back_more_than_was_paid(world, app):
    from tests.test_booking_service import race

    _, payment, _ = paid_session(world)
    t, pid, admin_id = world.org.id, payment.id, admin_of(world).id

    def refunder(ready):
        found = db.session.get(Payment, pid)
        actor = db.session.get(Membership, admin_id)
        ready()
        return refunds.refund(found, 3000, reason="race", actor=actor)

    results = race(app, t, [refunder] * 4)
    assert sum(isinstance(r, int) for r in results) == 1
    assert all(isinstance(r, refunds.RefundError) for r in results if not isinstance(r, int))
    assert reload(Payment, pid, t).refunded_minor == 3000
    assert len(db.session.scalars(select(Invoice).where(Invoice.kind == "credit_note")).all()) == 1
    assert_books_balance(t)


def test_a_pack_refunded_in_full_loses_its_credits_left(world):
    from coach.payments.models import CreditGrant
    from tests.test_payments_earnings import _grant_with_prepaid

    grant = _grant_with_prepaid(world, value=4000)
    payment = Payment(tenant_id=world.org.id, athlete_membership_id=world.athlete.id,
                      coach_membership_id=world.coach.id, purpose="pack", product_id=grant.product_id,
                      amount_minor=20000, currency="EUR", method="manual", status="paid", reference="cash")
    db.session.add(payment)
    db.session.flush()
    grant.payment_id = payment.id
    db.session.commit()
    tenancy.activate(world.org.id)
    refunds.refund(payment, 20000, reason="changed my mind", actor=admin_of(world))
    db.session.commit()
    t = world.org.id
    grant = reload(CreditGrant, grant.id, t)
    assert grant.revoked_at is not None and grant.credits_remaining == 0
    assert ledger.balance(t, "athlete_prepaid", "EUR", grant.id) == 0
    assert ledger.balance(t, "provider_clearing", "EUR") == 0
    assert ledger.balance(t, "org_commission", "EUR") == 0
    assert_books_balance(t)
