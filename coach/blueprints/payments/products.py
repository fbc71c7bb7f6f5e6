"""A coach's products: credit packs and subscription plans (create, edit, archive), and their sales.

Coaches manage their own; admins any coach's (``?coach=<membership id>``).
"""
from __future__ import annotations

from flask import abort, flash, g, request, url_for
from wtforms import BooleanField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional

from coach.blueprints.forms import ActionForm, BaseForm, attempt, require_action_form
from coach.blueprints.payments import bp
from coach.booking import service as booking
from coach.extensions import db
from coach.htmx import redirect_after_post, render
from coach.orgs.models import ADMIN, COACH
from coach.payments import catalog
from coach.payments.models import PACK
from coach.payments.settings import billing_settings
from coach.platform.idempotency import idempotent
from coach.tenancy import role_required

LIST, FORM = "payments/products_list.html", "payments/products_form.html"


# --- loaders -----------------------------------------------------------------------------------------------

def load_coach(coach_id: str | None):
    """The coach whose products are managed: myself (a coach), or the one an admin names; 404/403 otherwise."""
    if g.membership.role == COACH and (not coach_id or coach_id == str(g.membership.id)):
        return g.membership
    if g.membership.role != ADMIN:
        abort(403)
    return booking.get_coach(g.org, coach_id) or abort(404)


def load_product(product_id: str):
    """A product I may manage: its coach, or an admin (404 for an unknown id, 403 for another coach's)."""
    product = catalog.get_product(g.org, product_id) or abort(404)
    if g.membership.role != ADMIN and product.coach_membership_id != g.membership.id:
        abort(403)
    return product


class ProductForm(BaseForm):
    """What a product is; the service checks every value (a price in the organization's currency, offerings of
    this coach, the limits of the database) and says what is wrong."""

    kind = SelectField("Kind", choices=[SelectChoice(k, label) for k, label in catalog.KINDS.items()], default=PACK,
                       validate_choice=False)
    title = StringField("Title", validators=[Length(max=catalog.TITLE_MAX, message="At most 120 characters.")])
    description = TextAreaField("Description", validators=[
        Optional(), Length(max=catalog.DESCRIPTION_MAX, message="At most 2,000 characters.")])
    price = StringField("Price", render_kw={"inputmode": "decimal", "autocomplete": "off"},
                        validators=[Length(max=40, message="Write the price like 49.90.")])
    credits = StringField("Credits", render_kw={"inputmode": "numeric"}, validators=[Length(max=10)],
                          description="Sessions a pack holds, or a plan gives each period (0: spaces only).")
    validity_days = StringField("Valid for (days)", render_kw={"inputmode": "numeric"}, validators=[Length(max=10)],
                                description="Packs: the credits expire this many days after purchase.")
    weekly_limit = StringField("Most bookings per week", render_kw={"inputmode": "numeric"},
                               validators=[Length(max=10)], description="Leave empty for no limit.")
    interval = SelectField("Renews", choices=[SelectChoice(k, label) for k, label in catalog.INTERVALS.items()],
                           validate_choice=False)
    rollover = BooleanField("Unused credits roll over to the next period")
    offering_ids = SelectMultipleField("Sessions the credits book", validate_choice=False)
    space_ids = SelectMultipleField("Spaces subscribers join", validate_choice=False)

    def values(self) -> dict:
        return {name: getattr(self, name).data for name in (
            "kind", "title", "description", "price", "credits", "validity_days", "weekly_limit", "interval",
            "rollover", "offering_ids", "space_ids")}


def _form_page(coach, form: ProductForm, product=None, status: int = 200):
    return render(FORM, "form", status=status, org=g.org, coach=coach, form=form, product=product,
                  currency=billing_settings(g.org.id).currency, offerings=catalog.offering_choices(coach),
                  spaces=catalog.space_choices(coach, g.membership))


def _coach_query(coach) -> dict:
    return {} if coach.id == g.membership.id else {"coach": str(coach.id)}


# --- pages -------------------------------------------------------------------------------------------------

@bp.get("/products")
@role_required(COACH, ADMIN)
def products():
    """A coach's packs and plans with their recent sales (an admin without ``?coach`` picks a coach)."""
    if g.membership.role == ADMIN and not request.args.get("coach"):
        return render(LIST, org=g.org, coach=None, coaches=booking.coaches(g.org), items=[], sales=None)
    coach = load_coach(request.args.get("coach"))
    sales = catalog.coach_sales(coach, request.args.get("after"), limit=20)
    return render(LIST, org=g.org, coach=coach, coaches=[], action_form=ActionForm(formdata=None),
                  items=catalog.details(catalog.products_of(coach, include_archived=True)), sales=sales,
                  labels=catalog.labels_for(g.org.id, sales.rows), coach_query=_coach_query(coach))


@bp.route("/products/new", methods=["GET", "POST"])
@role_required(COACH, ADMIN)
@idempotent
def new_product():
    """Create a credit pack or a subscription plan."""
    coach = load_coach(request.args.get("coach"))
    form = ProductForm()
    if request.method == "GET":
        form.kind.data = request.args.get("kind") if request.args.get("kind") in catalog.KINDS else PACK
        form.validity_days.data, form.credits.data = "90", "5"
    status = 422 if form.is_submitted() else 200
    if form.validate_on_submit():
        done = attempt(form, catalog.save_product, coach, form.values(), g.membership)
        if done:
            db.session.commit()
            flash(f"“{done.value.title}” is on sale.", "success")
            return redirect_after_post(url_for("payments.products", **_coach_query(coach)))
        status = done.status
    return _form_page(coach, form, status=status)


@bp.route("/products/<product_id>/edit", methods=["GET", "POST"])
@role_required(COACH, ADMIN)
@idempotent
def edit_product(product_id: str):
    """Change a product (later buyers get the new terms; what was bought stays as bought)."""
    product = load_product(product_id)
    coach = product.coach
    form = ProductForm() if request.method == "POST" else ProductForm(data=catalog.form_values(product))
    status = 422 if form.is_submitted() else 200
    if form.validate_on_submit():
        done = attempt(form, catalog.save_product, coach, form.values(), g.membership, product)
        if done:
            db.session.commit()
            flash("Product saved.", "success")
            return redirect_after_post(url_for("payments.products", **_coach_query(coach)))
        status = done.status
        product = load_product(product_id)
    return _form_page(coach, form, product, status=status)


@bp.post("/products/<product_id>/<any(archive, restore):action>")
@role_required(COACH, ADMIN)
@idempotent
def product_action(product_id: str, action: str):
    """Take a product off sale, or put it back."""
    product = load_product(product_id)
    require_action_form()
    (catalog.archive if action == "archive" else catalog.restore)(product, g.membership)
    db.session.commit()
    flash(f"“{product.title}” is {'archived: no one can buy it now' if action == 'archive' else 'on sale again'}.",
          "success")
    return redirect_after_post(url_for("payments.products", **_coach_query(product.coach)))
