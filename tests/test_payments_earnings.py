"""Coach earnings in escrow: a paid session's share is pending until the session ended and the dispute window
passed, the sweep makes it available (once), a payout moves it to paid; the coach's earnings page and the
admin's payout report (HTML and CSV)."""
from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from coach import clock, tenancy
from coach.booking import service
from coach.extensions import db
from coach.payments import earnings, ledger, payouts
from coach.orgs.models import Membership
from coach.payments.models import Earning, Payment
from coach.payments.settings import billing_settings
from tests.booking_support import BookingWorld
from tests.conftest import csrf_from
from tests.factories import PASSWORD
from tests.payments_support import assert_books_balance


def priced_world() -> BookingWorld:
    """A booking world whose offering costs €50.00 (set on the row: how the offering form takes a price is
    the booking pages' business)."""
    world = BookingWorld()
    tenancy.activate(world.org.id)
    world.offering.price_minor, world.offering.currency = 5000, "EUR"
    db.session.commit()
    tenancy.activate(world.org.id)
    return world


def paid_session(world: BookingWorld, days_ahead: int = 2, method: str = "manual", slot_index: int = 0):
    """A session booked and paid by hand (the payment row written here; checkout is another slice), with the
    coach's share recorded the way the checkout's completion does."""
    tenancy.activate(world.org.id)
    start = clock.now().replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=days_ahead)
    slot = service.available_slots(world.offering, start, start + timedelta(days=1))[slot_index]
    booking = service.request_booking(world.offering, world.athlete, slot.starts_at, "", world.athlete)
    payment = Payment(tenant_id=world.org.id, athlete_membership_id=world.athlete.id,
                      coach_membership_id=world.coach.id, purpose="session", booking_id=booking.id,
                      amount_minor=world.offering.price_minor, currency=world.offering.currency, method=method,
                      status="paid", reference="cash at the desk" if method == "manual" else "",
                      provider_payment_id="pi_test_1" if method == "card" else None, paid_at=clock.now())
    db.session.add(payment)
    db.session.flush()
    earning = earnings.record_session_payment(payment, booking)
    db.session.commit()
    tenancy.activate(world.org.id)
    return booking, payment, earning


def login(client, email):
    token = csrf_from(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"csrf_token": token, "email": email, "password": PASSWORD})


@pytest.fixture()
def world(ctx):
    return priced_world()


def test_a_paid_session_earns_the_coach_its_share_pending_until_the_window_passed(world):
    booking, payment, earning = paid_session(world)
    assert (earning.gross_minor, earning.commission_minor, earning.net_minor) == (5000, 500, 4500)
    assert earning.status == "pending"
    assert earning.available_at == booking.ends_at + timedelta(hours=48)
    assert ledger.balance(world.org.id, "coach_pending", "EUR", world.coach.id) == -4500
    assert ledger.balance(world.org.id, "org_commission", "EUR") == -500
    # Recording it again (a redelivered webhook) changes nothing.
    again = earnings.record_session_payment(payment, booking)
    db.session.commit()
    assert again.id == earning.id
    tenancy.activate(world.org.id)
    assert ledger.balance(world.org.id, "coach_pending", "EUR", world.coach.id) == -4500
    assert_books_balance(world.org.id)


def test_the_sweep_releases_only_after_the_dispute_window_and_only_once(world):
    booking, _, earning = paid_session(world)
    just_before = booking.ends_at + timedelta(hours=48) - timedelta(seconds=1)
    assert earnings.release_due(world.org.id, now=just_before) == 0
    db.session.commit()
    tenancy.activate(world.org.id)
    after = booking.ends_at + timedelta(hours=48, minutes=1)
    assert earnings.release_due(world.org.id, now=after) == 1
    assert earnings.release_due(world.org.id, now=after) == 0  # idempotent
    db.session.commit()
    tenancy.activate(world.org.id)
    db.session.refresh(earning)
    assert earning.status == "available"
    assert ledger.balance(world.org.id, "coach_pending", "EUR", world.coach.id) == 0
    assert ledger.balance(world.org.id, "coach_available", "EUR", world.coach.id) == -4500
    totals = earnings.summary(world.coach)
    assert [(t.currency, t.pending, t.available, t.paid) for t in totals] == [("EUR", 0, 4500, 0)]
    assert_books_balance(world.org.id)


def test_a_shorter_dispute_window_releases_sooner(world):
    tenancy.activate(world.org.id)
    billing_settings(world.org.id).dispute_window_hours = 0
    db.session.commit()
    booking, _, earning = paid_session(world)
    assert earning.available_at == booking.ends_at
    assert earnings.release_due(world.org.id, now=booking.ends_at) == 1
    db.session.commit()
    tenancy.activate(world.org.id)
    assert_books_balance(world.org.id)


def test_the_periodic_sweep_releases_for_every_organization_and_not_the_future(world, monkeypatch):
    booking, _, earning = paid_session(world)
    later = booking.ends_at + timedelta(hours=49)
    other = priced_world()
    _, _, other_earning = paid_session(other, days_ahead=3)
    monkeypatch.setattr(clock, "now", lambda: later)
    assert earnings.sweep_all() == 1  # the other's session ends a day later: still pending
    tenancy.activate(world.org.id)
    assert db.session.get(Earning, earning.id).status == "available"
    assert_books_balance(world.org.id)
    tenancy.activate(other.org.id)
    assert db.session.get(Earning, other_earning.id).status == "pending"
    assert_books_balance(other.org.id)


def test_a_payout_moves_available_to_paid_and_cannot_be_recorded_twice(world):
    booking, _, earning = paid_session(world)
    paid_session(world, days_ahead=3)  # still pending at payout time: not paid out
    earnings.release_due(world.org.id, now=booking.ends_at + timedelta(hours=49))
    db.session.commit()
    tenancy.activate(world.org.id)
    day = booking.starts_at.date()
    actor = _admin(world)
    made = payouts.record(world.coach, day - timedelta(days=1), day + timedelta(days=5), "SEPA 2026-12-01", actor)
    db.session.commit()
    tenancy.activate(world.org.id)
    assert [(p.amount_minor, p.currency, p.reference) for p in made] == [(4500, "EUR", "SEPA 2026-12-01")]
    db.session.refresh(earning)
    assert earning.status == "paid" and earning.payout_id == made[0].id
    assert ledger.balance(world.org.id, "coach_available", "EUR", world.coach.id) == 0
    assert [(t.pending, t.available, t.paid) for t in earnings.summary(world.coach)] == [(4500, 0, 4500)]
    with pytest.raises(payouts.PayoutError, match="Nothing is available"):
        payouts.record(world.coach, day - timedelta(days=1), day + timedelta(days=5), "again", actor)
    db.session.rollback()
    tenancy.activate(world.org.id)
    assert_books_balance(world.org.id)


def test_a_payout_needs_a_reference_and_a_period_in_order(world):
    actor = _admin(world)
    today = clock.now().date()
    with pytest.raises(payouts.PayoutError, match="reference"):
        payouts.record(world.coach, today, today, "   ", actor)
    with pytest.raises(payouts.PayoutError, match="start must not be after"):
        payouts.record(world.coach, today, today - timedelta(days=1), "x", actor)


def test_the_payout_report_sums_sessions_gross_commission_refunds_and_net(world):
    from coach.payments import refunds

    booking, payment, _ = paid_session(world)
    paid_session(world, days_ahead=3)
    refunds.refund(payment, 1000, reason="started late", actor=_admin(world))
    db.session.commit()
    tenancy.activate(world.org.id)
    day = booking.starts_at.date()
    rep = payouts.report(world.coach, day, day + timedelta(days=2))
    [total] = rep.totals
    assert (total.sessions, total.gross, total.refunds) == (2, 10000, 1000)
    assert total.commission == 1000 - 100 and total.net == 9000 - 900
    assert total.commission + total.net + total.refunds == total.gross
    rows = list(csv.reader(io.StringIO(payouts.report_csv(rep))))
    assert rows[0] == ["date", "offering", "athlete", "status", "currency", "gross", "commission", "refunds", "net"]
    assert rows[1][2] == "Arno Athlete" and rows[1][5:] == ["50.00", "4.00", "10.00", "36.00"]
    assert rows[-1][0] == "total (2 sessions delivered)" and rows[-1][5:] == ["100.00", "9.00", "10.00", "81.00"]
    assert_books_balance(world.org.id)


def _admin(world):
    from coach.orgs.models import ADMIN, Membership

    return db.session.scalar(select(Membership).where(Membership.tenant_id == world.org.id,
                                                      Membership.role == ADMIN))


# --- pages -----------------------------------------------------------------------------------------------

def test_the_coach_sees_pending_available_paid_and_a_chart_with_its_table(world, client):
    booking, _, _ = paid_session(world)
    slug = world.org.slug
    login(client, world.coach.user.email)
    page = client.get(f"/o/{slug}/billing/earnings")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "€45.00" in html and "Pending" in html and "Available" in html and "Paid out" in html
    assert "<svg" in html and 'role="img"' in html and "<table" in html
    assert " style=" not in html and "<script>" not in html
    month = booking.starts_at.strftime("%b %Y")
    assert re.search(rf"<th[^>]*>{month}</th>\s*<td[^>]*>€45.00</td>", html)
    # A fragment for htmx has no layout.
    fragment = client.get(f"/o/{slug}/billing/earnings", headers={"HX-Request": "true"})
    assert "<html" not in fragment.get_data(as_text=True)


def test_an_athlete_cannot_see_earnings_or_payouts(world, client):
    login(client, world.athlete.user.email)
    assert client.get(f"/o/{world.org.slug}/billing/earnings").status_code == 403
    assert client.get(f"/o/{world.org.slug}/billing/payouts").status_code == 403


def test_the_admin_downloads_the_payout_csv_and_records_the_payout(world, client):
    booking, _, earning = paid_session(world)
    earnings.release_due(world.org.id, now=booking.ends_at + timedelta(hours=49))
    db.session.commit()
    slug, day = world.org.slug, booking.starts_at.date()
    login(client, _admin(world).user.email)
    query = f"coach={world.coach.id}&start={day}&end={day}"
    page = client.get(f"/o/{slug}/billing/payouts?{query}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "€45.00" in html and "Record payout" in html
    download = client.get(f"/o/{slug}/billing/payouts.csv?{query}")
    assert download.mimetype == "text/csv"
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert "36.00" not in download.get_data(as_text=True) and "45.00" in download.get_data(as_text=True)
    token = csrf_from(html)
    done = client.post(f"/o/{slug}/billing/payouts", data={"csrf_token": token, "coach": str(world.coach.id),
                                                           "start": str(day), "end": str(day),
                                                           "reference": "TRX-991"})
    assert done.status_code == 303
    tenancy.activate(world.org.id)
    assert db.session.get(Earning, earning.id).status == "paid"
    again = client.post(f"/o/{slug}/billing/payouts", data={"csrf_token": token, "coach": str(world.coach.id),
                                                            "start": str(day), "end": str(day),
                                                            "reference": "TRX-992"})
    assert again.status_code == 422 and "Nothing is available" in again.get_data(as_text=True)
    bad = client.get(f"/o/{slug}/billing/payouts?coach={world.coach.id}&start=2026-13-01&end={day}")
    assert bad.status_code == 400
    unnamed = client.post(f"/o/{slug}/billing/payouts", data={"csrf_token": token, "coach": str(world.coach.id),
                                                              "start": str(day), "end": str(day), "reference": ""})
    assert unnamed.status_code == 422 and "Enter the transfer&#39;s reference" in unnamed.get_data(as_text=True)
    # An admin's earnings link leads to the payouts page, where a coach is chosen.
    assert client.get(f"/o/{slug}/billing/earnings").headers["Location"].endswith(f"/o/{slug}/billing/payouts")
    coach_page = client.get(f"/o/{slug}/billing/earnings?coach={world.coach.id}").get_data(as_text=True)
    assert "Earnings of Carla Coach" in coach_page and "Paid out" in coach_page
    tenancy.activate(world.org.id)
    assert_books_balance(world.org.id)


def test_another_organization_sees_none_of_the_earnings(world, app):
    paid_session(world)
    mine, coach_id, mine_id = world.org.slug, world.coach.id, world.org.id
    other = priced_world()
    theirs, their_coach, their_admin = other.org.slug, other.coach.user.email, _admin(other).user.email
    coach_client, admin_client = app.test_client(), app.test_client()
    login(coach_client, their_coach)
    html = coach_client.get(f"/o/{theirs}/billing/earnings").get_data(as_text=True)
    assert "€45.00" not in html and "No earnings yet" in html
    assert coach_client.get(f"/o/{mine}/billing/earnings").status_code == 404
    login(admin_client, their_admin)
    assert admin_client.get(f"/o/{theirs}/billing/payouts?coach={coach_id}").status_code == 404
    assert admin_client.get(f"/o/{theirs}/billing/earnings?coach={coach_id}").status_code == 404
    tenancy.activate(other.org.id)
    assert earnings.summary(Membership(id=coach_id, tenant_id=mine_id)) == []  # row security hides them


# --- credits (the credits module calls these) -------------------------------------------------------------

def _grant_with_prepaid(world, value: int = 4000):
    """A pack of 5 bought for 5 x ``value`` (the rows and ledger lines the credits module writes)."""
    from coach.payments.models import CREDIT, CreditGrant, Product

    t = world.org.id
    tenancy.activate(t)
    pack = Product(tenant_id=t, coach_membership_id=world.coach.id, kind="pack", title="5-pack",
                   price_minor=5 * value, currency="EUR", credits=5, validity_days=90)
    db.session.add(pack)
    db.session.flush()
    grant = CreditGrant(tenant_id=t, athlete_membership_id=world.athlete.id, product_id=pack.id, credits_total=5,
                        credits_remaining=5, unit_value_minor=value, currency="EUR")
    db.session.add(grant)
    db.session.flush()
    ledger.post(t, "pack.paid", f"test-pack-{grant.id}", [
        ledger.line("provider_clearing", 5 * value, "EUR"), ledger.line("athlete_prepaid", -5 * value, "EUR", grant.id),
        ledger.line("credits_issued", 5, CREDIT), ledger.line("credits_outstanding", -5, CREDIT, grant.id)])
    return grant


def test_a_session_booked_with_a_credit_earns_from_the_prepaid_money_and_a_returned_credit_takes_it_back(world):
    grant = _grant_with_prepaid(world)
    tenancy.activate(world.org.id)
    start = clock.now().replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=2)
    slot = service.available_slots(world.offering, start, start + timedelta(days=1))[0]
    booking = service.request_booking(world.offering, world.athlete, slot.starts_at, "", world.athlete)
    earning = earnings.accrue(booking, grant.unit_value_minor, "EUR", source=("athlete_prepaid", grant.id),
                              key=f"earned:{booking.id}", grant_id=grant.id)
    db.session.commit()
    t = world.org.id
    tenancy.activate(t)
    assert (earning.net_minor, earning.grant_id) == (3600, grant.id)
    assert ledger.balance(t, "athlete_prepaid", "EUR", grant.id) == -16000
    assert ledger.balance(t, "coach_pending", "EUR", world.coach.id) == -3600
    assert_books_balance(t)
    back = earnings.reverse(booking, destination=("athlete_prepaid", grant.id), key=f"unearned:{booking.id}")
    again = earnings.reverse(booking, destination=("athlete_prepaid", grant.id), key=f"unearned:{booking.id}")
    db.session.commit()
    tenancy.activate(t)
    assert (back, again) == (4000, 0)
    assert ledger.balance(t, "athlete_prepaid", "EUR", grant.id) == -20000
    assert ledger.balance(t, "coach_pending", "EUR", world.coach.id) == 0
    assert ledger.balance(t, "org_commission", "EUR") == 0
    db.session.refresh(earning)
    assert earning.status == "reversed"
    assert_books_balance(t)
