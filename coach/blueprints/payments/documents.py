"""Receipts and credit notes: the printable page and the PDF (the athlete their own, admins all)."""
from __future__ import annotations

from flask import abort, g, make_response

from coach.blueprints.payments import bp
from coach.extensions import db
from coach.htmx import render
from coach.orgs.models import ADMIN
from coach.payments import invoices
from coach.payments.models import Payment
from coach.tenancy import role_required


def load_invoice(invoice_id: str):
    """The receipt or credit note, for an admin, the athlete who paid or the coach who was paid (the payment's
    page shows them its documents); 404 for anyone else."""
    invoice = invoices.get(g.org.id, invoice_id) or abort(404)
    if g.membership.role != ADMIN:
        payment = db.session.get(Payment, invoice.payment_id)
        if payment is None or g.membership.id not in (payment.athlete_membership_id, payment.coach_membership_id):
            abort(404)
    return invoice


@bp.get("/receipts/<invoice_id>", endpoint="receipt")
@role_required()
def receipt(invoice_id: str):
    """A receipt or credit note as a page that prints cleanly."""
    invoice = load_invoice(invoice_id)
    return render("payments/receipt.html", org=g.org, invoice=invoice, number=invoices.number_label(invoice),
                  kind_label=invoices.KIND_LABELS[invoice.kind], rate=invoices.rate_label(invoice))


@bp.get("/receipts/<invoice_id>.pdf", endpoint="receipt_pdf")
@role_required()
def receipt_pdf(invoice_id: str):
    """The same as a PDF download."""
    invoice = load_invoice(invoice_id)
    response = make_response(invoices.render_pdf(invoice))
    response.mimetype = "application/pdf"
    response.headers["Content-Disposition"] = f'attachment; filename="{invoices.pdf_filename(invoice)}"'
    return response
