"""Receipts: gapless numbers even with concurrent issuers, the seller's details from the billing settings and the
buyer's from the athlete, tax worked out of tax-inclusive prices, a PDF that draws the currency (or its ISO
code), the receipt emailed with its PDF once a payment is paid, and the page (the athlete's own, admins all)."""
from __future__ import annotations

import re
import uuid
import zlib

import pytest
from sqlalchemy import select

from coach import clock, money, tenancy
from coach.extensions import db
from coach.payments import invoices
from coach.payments.events import PAYMENT_PAID
from coach.orgs.models import ADMIN, Membership
from coach.payments.models import Invoice, Payment, Product
from coach.payments.settings import billing_settings
from coach.platform.mail import queue_email, send_email
from coach.platform.models import Email
from coach.platform.outbox import emit
from tests.factories import add_member, make_user
from tests.test_booking_service import race
from tests.test_payments_earnings import login, paid_session, priced_world


@pytest.fixture()
def world(ctx):
    return priced_world()


def pack_payments(world, n: int, currency: str = "EUR", price: int = 20000) -> list[Payment]:
    tenancy.activate(world.org.id)
    pack = Product(tenant_id=world.org.id, coach_membership_id=world.coach.id, kind="pack", title="5-pack",
                   price_minor=price, currency=currency, credits=5, validity_days=90)
    db.session.add(pack)
    db.session.flush()
    payments = [Payment(tenant_id=world.org.id, athlete_membership_id=world.athlete.id,
                        coach_membership_id=world.coach.id, purpose="pack", product_id=pack.id, amount_minor=price,
                        currency=currency, method="manual", status="paid", reference=f"cash {i}",
                        paid_at=clock.now()) for i in range(n)]
    db.session.add_all(payments)
    db.session.commit()
    tenancy.activate(world.org.id)
    return payments


def pdf_text(pdf: bytes) -> str:
    """The text drawn in a PDF's (deflated) content streams, as Windows-1252."""
    out = []
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            out.append(zlib.decompress(stream).decode("cp1252", "replace"))
        except zlib.error:
            out.append(stream.decode("cp1252", "replace"))
    return "\n".join(out)


def test_a_receipt_has_the_sellers_and_buyers_details_and_the_tax_inside_the_price(world):
    settings = billing_settings(world.org.id)
    settings.seller_name, settings.seller_address, settings.seller_tax_id = "Ace Tennis GmbH", "Hauptstr. 1\nBerlin", \
        "DE123456789"
    settings.tax_rate_bps, settings.tax_label = 1900, "MwSt"
    db.session.commit()
    [payment] = pack_payments(world, 1, price=5000)
    receipt = invoices.issue(payment)
    assert invoices.issue(payment).id == receipt.id  # once per payment
    db.session.commit()
    assert (receipt.number, receipt.kind) == (1, "receipt")
    assert (receipt.seller_name, receipt.seller_tax_id) == ("Ace Tennis GmbH", "DE123456789")
    assert (receipt.buyer_name, receipt.buyer_email) == ("Arno Athlete", world.athlete.user.email)
    # 50.00 including 19 %: 42.02 + 7.98
    assert (receipt.subtotal_minor, receipt.tax_minor, receipt.total_minor) == (4202, 798, 5000)
    assert receipt.lines == [{"description": "5-pack (credit pack)", "quantity": 1, "unit_minor": 5000,
                              "total_minor": 5000}]
    assert invoices.tax_of(10000, 2000) == 1667 and invoices.tax_of(999, 0) == 0


def test_concurrent_issuers_take_gapless_numbers_without_duplicates_and_a_rollback_gives_one_back(world, app):
    payments = pack_payments(world, 8)
    ids = [p.id for p in payments]

    def issuer(pid, fail=False):
        def work(ready):
            payment = db.session.get(Payment, pid)
            ready()
            number = invoices.issue(payment).number
            if fail:
                raise RuntimeError("rolled back after taking a number")
            return number
        return work

    results = race(app, world.org.id, [issuer(pid, fail=(i == 3)) for i, pid in enumerate(ids)])
    numbers = sorted(r for r in results if isinstance(r, int))
    assert numbers == list(range(1, 8))
    tenancy.activate(world.org.id)
    db.session.expire_all()
    stored = sorted(db.session.scalars(select(Invoice.number).where(Invoice.tenant_id == world.org.id)))
    assert stored == list(range(1, 8))
    assert billing_settings(world.org.id).next_invoice_number == 8


def test_the_pdf_draws_the_euro_sign_and_falls_back_to_the_iso_code(world):
    [eur] = pack_payments(world, 1)
    receipt = invoices.issue(eur)
    db.session.commit()
    tenancy.activate(world.org.id)
    pdf = invoices.render_pdf(receipt)
    assert pdf.startswith(b"%PDF-")
    text = pdf_text(pdf)
    assert "Receipt 000001" in text and "€200.00" in text and "Arno Athlete" in text
    assert b"WinAnsiEncoding" in pdf
    # The Indian rupee sign is not in the core fonts: the amount is written with its code.
    assert invoices.pdf_money(123450, "INR") == "1234.50 INR"
    assert invoices.pdf_money(-500, "INR") == "-5.00 INR"
    assert invoices.pdf_money(5000, "JPY") == money.format(5000, "JPY") == "¥5,000"
    assert invoices.pdf_text("Zoë Łukasz") == "Zoë ?ukasz"


def test_a_paid_payment_gets_its_receipt_by_email_with_the_pdf_attached(world, mailbox):
    [payment] = pack_payments(world, 1)
    emit(PAYMENT_PAID, {"payment_id": str(payment.id)}, tenant_id=world.org.id)
    db.session.commit()
    message = mailbox.wait_for(world.athlete.user.email, timeout=20)
    assert "Your receipt" in message["Subject"] and "€200.00" in message["Subject"]
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == "receipt-000001.pdf"
    assert attachment.get_content().startswith(b"%PDF-")
    tenancy.activate(world.org.id)
    db.session.expire_all()
    [receipt] = db.session.scalars(select(Invoice)).all()
    assert receipt.payment_id == payment.id
    # Delivered: the stored copy keeps the envelope only (bodies and files cleared).
    email = db.session.scalar(select(Email).where(Email.subject.like("Your receipt%")))
    assert email.sent_at is not None and email.attachments is None and email.body_text == ""
    # A redelivered event issues nothing more.
    invoices.send_receipt({"payment_id": str(payment.id)})
    db.session.commit()
    tenancy.activate(world.org.id)
    assert len(db.session.scalars(select(Invoice)).all()) == 1


def test_queued_attachments_are_stored_and_sent_as_mime_parts(world, mailbox, quiet):
    email = queue_email("someone@example.com", "Files", "receipt", org=world.org,
                        invoice=Invoice(buyer_name="X", seller_name="Y", lines=[], total_minor=0, tax_rate_bps=0,
                                        currency="EUR", tax_minor=0),
                        payment=Payment(amount_minor=0, currency="EUR"), number="000000", url="/",
                        attachments=[{"filename": "../notes.txt", "content_type": "text/plain", "data": b"hello"}])
    db.session.commit()
    stored = db.session.get(Email, email.id)
    assert stored.attachments == [{"filename": ".._notes.txt", "content_type": "text/plain", "data": "aGVsbG8="}]
    send_email({"email_id": str(email.id)})
    db.session.commit()
    message = mailbox.wait_for("someone@example.com")
    [part] = list(message.iter_attachments())
    assert part.get_filename() == ".._notes.txt" and part.get_content() == "hello"
    assert db.session.get(Email, email.id).attachments is None


# --- pages -----------------------------------------------------------------------------------------------

def test_the_athlete_reads_their_receipt_and_downloads_the_pdf(world, client):
    _, payment, _ = paid_session(world)
    receipt = invoices.issue(payment)
    db.session.commit()
    slug, rid = world.org.slug, receipt.id
    login(client, world.athlete.user.email)
    page = client.get(f"/o/{slug}/billing/receipts/{rid}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Receipt 000001" in html and "€50.00" in html and "Technique session" in html
    # The stylesheet by its plain name, or its fingerprinted copy once the static build has run (make test does).
    assert " style=" not in html and re.search(r"css/payments(-[0-9a-f]{32})?\.css", html)
    pdf = client.get(f"/o/{slug}/billing/receipts/{rid}.pdf")
    assert pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF-")
    assert 'filename="receipt-000001.pdf"' in pdf.headers["Content-Disposition"]


def test_the_coach_who_was_paid_and_admins_read_the_receipt_too(world, app):
    _, payment, _ = paid_session(world)
    receipt = invoices.issue(payment)
    db.session.commit()
    url = f"/o/{world.org.slug}/billing/receipts/{receipt.id}"
    admin = db.session.scalar(select(Membership).where(Membership.tenant_id == world.org.id,
                                                       Membership.role == ADMIN)).user.email
    for email in (world.coach.user.email, admin):
        client = app.test_client()
        login(client, email)
        assert "Receipt 000001" in client.get(url).get_data(as_text=True), email


def test_receipts_are_hidden_from_other_athletes_and_other_organizations(world, app):
    _, payment, _ = paid_session(world)
    receipt = invoices.issue(payment)
    db.session.commit()
    slug, rid = world.org.slug, receipt.id
    stranger = add_member(world.org, make_user()).user.email  # an athlete of the same organization
    other = priced_world()
    theirs, outsider = other.org.slug, other.athlete.user.email
    tenancy.activate(other.org.id)
    assert db.session.scalar(select(Invoice.id).where(Invoice.id == rid)) is None  # row security
    for email, url in ((stranger, f"/o/{slug}/billing/receipts/{rid}"),
                       (stranger, f"/o/{slug}/billing/receipts/{rid}.pdf"),
                       (outsider, f"/o/{theirs}/billing/receipts/{rid}"),
                       (outsider, f"/o/{slug}/billing/receipts/{rid}"),
                       (outsider, f"/o/{theirs}/billing/receipts/{uuid.uuid4()}")):
        client = app.test_client()
        login(client, email)
        assert client.get(url).status_code == 404, (email, url)
