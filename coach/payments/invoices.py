"""Receipts and credit notes: gapless numbers, the seller's and buyer's details as they were when issued,
tax worked out of tax-inclusive prices, a printable page and a PDF (fpdf2: pure Python, its core fonts).

A receipt is issued when a payment is paid (the consumer of ``payments.paid`` below) and emailed with its
PDF; a credit note for each refund (:mod:`coach.payments.refunds`). Numbers come from
:func:`coach.payments.settings.next_invoice_number`: the settings row stays locked until the transaction
ends, so concurrent issuers queue and a rolled-back invoice gives its number back.
"""
from __future__ import annotations

import uuid
from decimal import ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo

from fpdf import FPDF
from sqlalchemy import select

from coach import money
from coach.booking.models import Booking, Offering
from coach.extensions import db
from coach.orgs.models import Membership, Organization
from coach.payments.events import PAYMENT_PAID
from coach.payments.models import Invoice, Payment, Product
from coach.payments.settings import billing_settings, next_invoice_number
from coach.platform.jobs import consumer
from coach.platform.mail import queue_email

RECEIPT, CREDIT_NOTE = "receipt", "credit_note"
KIND_LABELS = {RECEIPT: "Receipt", CREDIT_NOTE: "Credit note"}
# The PDF's core fonts draw Windows-1252 (which has €, £, ¥ and typographic quotes); anything else is
# written another way (an amount with its ISO code, a name with "?").
PDF_ENCODING = "windows-1252"


def tax_of(total_minor: int, rate_bps: int) -> int:
    """The tax inside a tax-inclusive ``total_minor``: total − round(total / (1 + rate))."""
    if not rate_bps:
        return 0
    net = (Decimal(total_minor) / (1 + Decimal(rate_bps) / 10_000)).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    return total_minor - int(net)


def number_label(invoice: Invoice) -> str:
    return f"{invoice.number:06d}"


def _description(payment: Payment) -> str:
    if payment.purpose == "session" and payment.booking_id:
        row = db.session.execute(
            select(Offering.title, Booking.starts_at)
            .join(Offering, (Offering.tenant_id == Booking.tenant_id) & (Offering.id == Booking.offering_id))
            .where(Booking.tenant_id == payment.tenant_id, Booking.id == payment.booking_id)).first()
        if row:
            org = db.session.get(Organization, payment.tenant_id)
            local = row.starts_at.astimezone(ZoneInfo(org.timezone or "UTC"))
            return f"{row.title}, session on {local:%Y-%m-%d %H:%M} ({org.timezone or 'UTC'})"
        return "Coaching session"
    title = db.session.scalar(select(Product.title).where(Product.tenant_id == payment.tenant_id,
                                                          Product.id == payment.product_id))
    what = "credit pack" if payment.purpose == "pack" else "plan"
    return f"{title} ({what})" if title else what.capitalize()


def _new(payment: Payment, kind: str, total: int, lines: list[dict]) -> Invoice:
    t = payment.tenant_id
    settings = billing_settings(t)
    org = db.session.get(Organization, t)
    athlete = db.session.scalar(select(Membership).where(Membership.tenant_id == t,
                                                         Membership.id == payment.athlete_membership_id))
    tax = tax_of(total, settings.tax_rate_bps) if total >= 0 else -tax_of(-total, settings.tax_rate_bps)
    invoice = Invoice(
        id=uuid.uuid4(), tenant_id=t, number=next_invoice_number(t), kind=kind, payment_id=payment.id,
        buyer_name=athlete.user.display_name, buyer_email=athlete.user.email,
        seller_name=settings.seller_name or org.name, seller_address=settings.seller_address,
        seller_tax_id=settings.seller_tax_id, lines=lines, subtotal_minor=total - tax, tax_minor=tax,
        total_minor=total, tax_rate_bps=settings.tax_rate_bps, tax_label=settings.tax_label,
        currency=payment.currency)
    db.session.add(invoice)
    db.session.flush()
    return invoice


def receipt_of(payment: Payment) -> Invoice | None:
    return db.session.scalar(select(Invoice).where(Invoice.tenant_id == payment.tenant_id,
                                                   Invoice.payment_id == payment.id, Invoice.kind == RECEIPT))


def issue(payment: Payment, kind: str = RECEIPT) -> Invoice:
    """The payment's receipt, with the next number (once per payment: asking again returns it).

    Prices include tax: the line is the amount paid, the tax is worked out of it at the organization's rate.
    """
    if kind != RECEIPT:
        raise ValueError("credit notes are issued per refund: issue_credit_note()")
    # The payment's lock makes "is there a receipt yet" and the issue one step for concurrent consumers.
    db.session.execute(select(Payment.id).where(Payment.tenant_id == payment.tenant_id, Payment.id == payment.id)
                       .with_for_update())
    existing = receipt_of(payment)
    if existing is not None:
        return existing
    amount = payment.amount_minor
    return _new(payment, RECEIPT, amount, [{"description": _description(payment), "quantity": 1,
                                            "unit_minor": amount, "total_minor": amount}])


def issue_credit_note(payment: Payment, amount_minor: int, reason: str) -> Invoice:
    """A credit note for one refund of ``payment`` (negative amounts, its own number)."""
    receipt = receipt_of(payment)
    ref = f" (receipt {number_label(receipt)})" if receipt else ""
    line = {"description": f"Refund: {_description(payment)}{ref}. {reason}"[:300], "quantity": 1,
            "unit_minor": -amount_minor, "total_minor": -amount_minor}
    return _new(payment, CREDIT_NOTE, -amount_minor, [line])


def get(tenant_id: uuid.UUID, invoice_id) -> Invoice | None:
    try:
        iid = uuid.UUID(str(invoice_id))
    except ValueError:
        return None
    return db.session.scalar(select(Invoice).where(Invoice.tenant_id == tenant_id, Invoice.id == iid))


def of_payments(tenant_id: uuid.UUID, payment_ids) -> dict[uuid.UUID, list[Invoice]]:
    """Every receipt and credit note of the given payments, by payment (for billing pages: one query)."""
    ids = list(payment_ids)
    found: dict[uuid.UUID, list[Invoice]] = {pid: [] for pid in ids}
    if ids:
        for invoice in db.session.scalars(select(Invoice).where(Invoice.tenant_id == tenant_id,
                                                                Invoice.payment_id.in_(ids))
                                          .order_by(Invoice.number)):
            found[invoice.payment_id].append(invoice)
    return found


def of_athlete(athlete: Membership, limit: int = 100) -> list[Invoice]:
    """The athlete's receipts and credit notes, newest first."""
    return list(db.session.scalars(
        select(Invoice).join(Payment, (Payment.tenant_id == Invoice.tenant_id) & (Payment.id == Invoice.payment_id))
        .where(Invoice.tenant_id == athlete.tenant_id, Payment.athlete_membership_id == athlete.id)
        .order_by(Invoice.number.desc()).limit(limit)))


# --- the PDF -------------------------------------------------------------------------------------------

def pdf_text(value: str) -> str:
    """``value`` as the core fonts can draw it (characters outside Windows-1252 become "?")."""
    return value.encode(PDF_ENCODING, "replace").decode(PDF_ENCODING)


def pdf_money(minor: int, currency: str) -> str:
    """The amount with its symbol when the core fonts have it ("€49.90"), else with its ISO code."""
    shown = money.format(minor, currency)
    try:
        shown.encode(PDF_ENCODING)
        return shown
    except UnicodeEncodeError:
        return f"{'-' if minor < 0 else ''}{money.plain(abs(minor), currency)} {currency}"


def rate_label(invoice: Invoice) -> str:
    return f"{Decimal(invoice.tax_rate_bps) / 100:f}".rstrip("0").rstrip(".") + " %"


def render_pdf(invoice: Invoice) -> bytes:
    """The receipt or credit note as a one-page A4 PDF."""
    pdf = FPDF(format="A4")
    pdf.core_fonts_encoding = PDF_ENCODING
    pdf.set_title(f"{KIND_LABELS[invoice.kind]} {number_label(invoice)}")
    pdf.set_creator("Coach")
    pdf.add_page()
    pdf.set_margins(20, 20, 20)
    width = pdf.w - 40

    def text(value: str, size: int = 10, style: str = "", align: str = "L", w: float = 0, ln: bool = True):
        pdf.set_font("helvetica", style=style, size=size)
        pdf.cell(w or width, 6, pdf_text(value), align=align, new_x="LMARGIN" if ln else "RIGHT",
                 new_y="NEXT" if ln else "TOP")

    text(f"{KIND_LABELS[invoice.kind]} {number_label(invoice)}", 18, "B")
    text(f"Issued {invoice.issued_at:%Y-%m-%d}")
    pdf.ln(4)
    text("From", 9, "B")
    for part in [invoice.seller_name, *invoice.seller_address.splitlines()]:
        if part.strip():
            text(part.strip())
    if invoice.seller_tax_id:
        text(f"Tax ID: {invoice.seller_tax_id}")
    pdf.ln(2)
    text("To", 9, "B")
    text(invoice.buyer_name)
    text(invoice.buyer_email)
    pdf.ln(4)
    cols = (width * 0.55, width * 0.1, width * 0.175, width * 0.175)
    for label, w, align in zip(("Description", "Qty", "Unit price", "Amount"), cols, "LRRR"):
        text(label, 9, "B", align, w, ln=False)
    pdf.ln(7)
    for line in invoice.lines:
        pdf.set_font("helvetica", size=10)
        y = pdf.get_y()
        pdf.multi_cell(cols[0], 6, pdf_text(str(line["description"])), new_x="RIGHT", new_y="TOP")
        bottom = pdf.get_y()
        pdf.set_xy(20 + cols[0], y)
        text(str(line["quantity"]), w=cols[1], align="R", ln=False)
        text(pdf_money(line["unit_minor"], invoice.currency), w=cols[2], align="R", ln=False)
        text(pdf_money(line["total_minor"], invoice.currency), w=cols[3], align="R", ln=False)
        pdf.set_xy(20, max(bottom, y + 6) + 1)
    pdf.ln(3)
    label_w = cols[0] + cols[1] + cols[2]
    for label, amount, style in (("Subtotal", invoice.subtotal_minor, ""),
                                 (f"{invoice.tax_label} {rate_label(invoice)}", invoice.tax_minor, ""),
                                 ("Total", invoice.total_minor, "B")):
        text(label, 10, style, "R", label_w, ln=False)
        text(pdf_money(amount, invoice.currency), 10, style, "R", cols[3])
    pdf.ln(6)
    text("Prices include tax." if invoice.tax_rate_bps else "No tax charged.", 9)
    return bytes(pdf.output())


def pdf_filename(invoice: Invoice) -> str:
    return f"{invoice.kind.replace('_', '-')}-{number_label(invoice)}.pdf"


# --- emails --------------------------------------------------------------------------------------------

def _path(org: Organization, invoice: Invoice) -> str:
    return f"/o/{org.slug}/billing/receipts/{invoice.id}"


def _email(payment: Payment, invoice: Invoice, template: str, subject: str, **context) -> None:
    org = db.session.get(Organization, payment.tenant_id)
    queue_email(invoice.buyer_email, subject, template, org=org, invoice=invoice, payment=payment,
                number=number_label(invoice), url=_path(org, invoice), kind_label=KIND_LABELS[invoice.kind],
                attachments=[{"filename": pdf_filename(invoice), "content_type": "application/pdf",
                              "data": render_pdf(invoice)}], **context)


def email_receipt(payment: Payment, invoice: Invoice) -> None:
    org = db.session.get(Organization, payment.tenant_id)
    _email(payment, invoice, "receipt", f"Your receipt from {org.name} ({payment.amount_label})")


def email_refund(payment: Payment, amount_minor: int, reason: str, note: Invoice) -> None:
    org = db.session.get(Organization, payment.tenant_id)
    shown = money.format(amount_minor, payment.currency)
    _email(payment, note, "refund", f"{org.name} refunded {shown}", amount=shown, reason=reason)


@consumer(PAYMENT_PAID)
def send_receipt(payload: dict) -> None:
    """Consumer of ``payments.paid``: issue the payment's receipt and email it with its PDF (once: a payment
    that already has its receipt is left alone)."""
    payment = db.session.scalar(select(Payment).where(Payment.id == uuid.UUID(payload["payment_id"]))
                                .with_for_update())
    if payment is None or payment.status != "paid" or receipt_of(payment) is not None:
        return
    invoice = issue(payment)
    email_receipt(payment, invoice)

