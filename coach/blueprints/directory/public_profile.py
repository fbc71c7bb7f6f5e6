"""A listed coach's public profile, ``/coaches/<org_slug>/<handle>``, and booking them from it.

No login: the listing (the public projection) is looked up first, and only a listed coach's organization is then
made active to read what the coach published (see :mod:`coach.directory.public`). An unlisted organization's or
an opted-out coach's address is the same 404 as an unknown one.

Booking a free time from the profile (``/book?offering=&start=``) meets the visitor where they are: a visitor
signs up there (the confirmation link brings them back), a signed-in person joins the organization as an athlete
with one button, and a member goes straight to the organization's own booking form, where notes and payment are.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from flask import abort, flash, redirect, request, url_for
from flask_login import current_user, login_required
from wtforms import Form, HiddenField, StringField
from wtforms.validators import ValidationError

from coach import clock, tenancy
from coach.accounts import service as accounts
from coach.blueprints.directory import public
from coach.blueprints.forms import (NAME_RULES, BaseForm, TimezoneField, email_field, new_password_field,
                                    require_action_form)
from coach.booking.service import zone as zone_of
from coach.directory import joining
from coach.directory import reviews as review_service
from coach.directory import public as listed
from coach.directory.stats import coach_facts
from coach.extensions import db
from coach.htmx import redirect_after_post, render, wants_fragment
from coach.orgs.models import ATHLETE, STAFF
from coach.orgs.service import membership_for
from coach.platform.idempotency import idempotent
from coach.platform.ratelimit import EMAIL_PER_IP, limiter, user_key
from coach.timezones import UnknownTimezone, parse_timezone

UTC = timezone.utc
PAGE = "directory/public_profile.html"
REVIEWS = "directory/_reviews.html"  # slice E's partial
BOOK = "directory/public_book.html"
BOOKING_ROLES = (ATHLETE, *STAFF)  # who may book on the organization's booking form (its role check)
# A person joins an organization from the directory a few times a day at most; more is someone collecting them.
JOIN_LIMIT = "20 per hour"
PHOTO_CACHE_SECONDS = 300  # well within the signed URL's life (MEDIA_URL_TTL_SECONDS, at least ten minutes)


def _accepted(response) -> bool:
    return response.status_code in (204, 303)


# The sign-up here sends an email like /signup does, and draws on the same budget per address (same scope).
email_limit = limiter.shared_limit(EMAIL_PER_IP, "email-ip", methods=["POST"], deduct_when=_accepted)


def printable(form, field) -> None:
    """Refuse control characters in a name (PostgreSQL cannot store NUL; the rest only garble it)."""
    if field.data and not field.data.isprintable():
        raise ValidationError("Use letters, digits, spaces and punctuation only.")


class BookingSignupForm(BaseForm):
    """The sign-up form of /signup, on the booking page (accounts' own form is another blueprint's)."""

    display_name = StringField("Your name", validators=[*NAME_RULES, printable])
    email = email_field()
    password = new_password_field()
    timezone = TimezoneField(default="UTC")


class ZoneForm(Form):
    """"Show times in": a GET form (it changes nothing, so no CSRF token)."""

    tz = TimezoneField("Show times in")


class JoinForm(BaseForm):
    offering = HiddenField()
    start = HiddenField()


# --- loaders --------------------------------------------------------------------------------------------

def load(org_slug: str, handle: str) -> listed.Published:
    """The listed coach at this address with their organization active, or 404 (unknown, unlisted, opted out)."""
    listing = listed.find_listing(org_slug, handle)
    if listing is None:
        abort(404)
    # Safe: the listing proves the organization and the coach chose to publish; only what they published is read.
    tenancy.activate(listing.organization_id)
    return listed.published(listing) or abort(404)


def visitor_zone() -> tuple[str, str | None]:
    """The zone times are shown in: a signed-in person's own, else ``?tz=`` when it names one, else UTC; and a
    notice when ``?tz=`` named none."""
    if current_user.is_authenticated:
        return current_user.timezone or "UTC", None
    asked = request.args.get("tz", "")
    if not asked:
        return "UTC", None
    try:
        return parse_timezone(asked), None
    except UnknownTimezone as exc:
        return "UTC", f"{exc} Times are in UTC."


def zone_arg(tz: str) -> str | None:
    """``tz`` for a link's ``?tz=``, when the next page would not find it by itself."""
    return tz if tz != "UTC" and not current_user.is_authenticated else None


def parse_start(value: str | None) -> datetime:
    """The UTC instant of ``start``: 400 unless it is a time with its zone, in the future and within reach."""
    try:
        start = datetime.fromisoformat((value or "").strip().replace("Z", "+00:00"))
        if start.tzinfo is None or abs(start - clock.now()) > timedelta(days=800):
            raise ValueError(value)
    except (ValueError, OverflowError):
        abort(400, "That time is not valid. Choose one of the free times on the coach's profile.")
    if start <= clock.now():
        abort(400, "That time has passed. Choose one of the coach's next free times.")
    return start.astimezone(UTC)


def utc_text(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the profile --------------------------------------------------------------------------------------------

@public.get("/<org_slug>/<handle>")
def profile(org_slug: str, handle: str):
    """A listed coach's public profile: who they are, what they offer, their next free times and reviews (a page
    of them: ``?order=`` newest or helpful, ``?cursor=`` where the "More" link left off)."""
    pub = load(org_slug, handle)
    tz, notice = visitor_zone()
    zone_form = ZoneForm(formdata=None, tz=tz)
    if not current_user.is_authenticated and "tz" not in request.args:
        zone_form.tz.preselect(request.headers.get("Accept-Language"))
    facts = coach_facts(pub.org.id, [pub.coach.id], with_next_slot=False)[pub.coach.id]
    return render(PAGE, about=listed.profile_page(pub), pub=pub, listing=pub.listing, profile=pub.profile,
                  facts=facts, tz=tz, zone=zone_of(tz), tz_notice=notice, zone_form=zone_form, tz_arg=zone_arg(tz),
                  **_reviews(pub, request.args.get("cursor"), request.args.get("order")))


@public.get("/<org_slug>/<handle>/reviews")
def reviews(org_slug: str, handle: str):
    """The next page of the coach's visible reviews: the "More" link's rows for htmx, else the profile with them."""
    if not wants_fragment():
        return profile(org_slug, handle)
    pub = load(org_slug, handle)
    return render(REVIEWS, "review_rows", **_reviews(pub, request.args.get("cursor"), request.args.get("order")))


def _reviews(pub: listed.Published, cursor: str | None, order: str | None) -> dict:
    """What slice E's partials (``_rating_chart.html``, ``_reviews.html``) need, for a visitor (no member)."""
    page = review_service.reviews_page(pub.org.id, pub.coach.id, order or "newest", cursor)
    address = dict(org_slug=pub.listing.org_slug, handle=pub.listing.handle)
    more_url = url_for(".reviews", **address, order=page.order, cursor=page.next_cursor) if page.next_cursor else None
    rating = review_service.rating_of(pub.org.id, pub.coach.id)
    # The newest/most helpful switch only once there is something to order.
    ordered = rating is not None and rating.review_count > 1
    return dict(rating=rating, reviews_page=page, more_url=more_url, coach_name=pub.listing.display_name, member=None,
                reviews_url=url_for(".profile", **address) if ordered else None)


@public.get("/<org_slug>/<handle>/photo")
def photo(org_slug: str, handle: str):
    """The profile photo: a short-cached redirect to a short-lived signed URL of its thumbnail."""
    url = listed.photo_url(load(org_slug, handle)) or abort(404)
    response = redirect(url, 302)
    response.headers["Cache-Control"] = f"public, max-age={PHOTO_CACHE_SECONDS}"
    return response


# --- booking from the profile -------------------------------------------------------------------------------

def _chosen(org_slug: str, handle: str, offering_id: str | None, start: str | None):
    pub = load(org_slug, handle)
    offering = listed.bookable_offering(pub, offering_id) or abort(404)
    return pub, offering, parse_start(start)


def _book_page(pub, offering, starts_at, status: int = 200, **context):
    tz, notice = visitor_zone()
    return render(BOOK, "book", status=status, pub=pub, listing=pub.listing, offering=offering, starts_at=starts_at,
                  ends_at=starts_at + timedelta(minutes=offering.duration_minutes), start=utc_text(starts_at),
                  where=listed.OfferingTimes(offering).where,
                  tz=tz, zone=zone_of(tz), tz_notice=notice, tz_arg=zone_arg(tz), **context)


def _taken(pub, offering, starts_at):
    """409: the time is no longer free; the next free ones instead (never a form that would fail)."""
    return _book_page(pub, offering, starts_at, 409, taken=True,
                      slots=listed.next_slots(offering, clock.now()))


@public.route("/<org_slug>/<handle>/book", methods=["GET", "POST"])
@email_limit
def book(org_slug: str, handle: str):
    """Start booking a free time: sign up (visitors), join (signed in), or on to the booking form (members)."""
    # The sign-up form posts to this same address, query included.
    pub, offering, starts_at = _chosen(org_slug, handle, request.args.get("offering"), request.args.get("start"))
    if not listed.is_free(offering, starts_at):
        return _taken(pub, offering, starts_at)
    if current_user.is_authenticated:
        if request.method == "POST":  # signed in meanwhile (another tab): the page shows what is next
            return redirect_after_post(request.url)
        membership = membership_for(pub.org, current_user)
        if membership is not None and membership.role in BOOKING_ROLES:
            return redirect(url_for("booking.book", slug=pub.org.slug, offering_id=offering.id,
                                    start=utc_text(starts_at)))
        if membership is not None:  # a coach of the organization: not one who books sessions
            return _book_page(pub, offering, starts_at, membership=membership)
        return _book_page(pub, offering, starts_at,
                          join_form=JoinForm(formdata=None, offering=str(offering.id), start=utc_text(starts_at)))
    form = BookingSignupForm()
    if form.validate_on_submit():
        continue_to = url_for(".book", org_slug=org_slug, handle=handle, offering=offering.id,
                              start=utc_text(starts_at))
        accounts.request_signup(form.email.data, form.password.data, form.display_name.data, form.timezone.data,
                                continue_to=continue_to)
        db.session.commit()
        return redirect_after_post(url_for("accounts.check_email", email=accounts.normalize_email(form.email.data)))
    if not form.is_submitted():
        form.timezone.preselect(request.headers.get("Accept-Language"))
    login_url = url_for("accounts.login", next=url_for(".book", org_slug=org_slug, handle=handle,
                                                        offering=offering.id, start=utc_text(starts_at)))
    return _book_page(pub, offering, starts_at, 422 if form.errors else 200, form=form, login_url=login_url)


@public.post("/<org_slug>/<handle>/join")
@login_required
@idempotent
@limiter.limit(JOIN_LIMIT, key_func=user_key, scope="directory-join")
def join(org_slug: str, handle: str):
    """Join the coach's organization as an athlete, then on to its booking form for the chosen time."""
    require_action_form()
    pub, offering, starts_at = _chosen(org_slug, handle, request.form.get("offering"), request.form.get("start"))
    membership = joining.join_as_athlete(pub.org, current_user, listing=pub.listing)
    db.session.commit()
    if membership.role not in BOOKING_ROLES:
        flash(f"You are a {membership.role} of {pub.org.name}: book from its own pages.", "info")
        return redirect_after_post(url_for(".profile", org_slug=org_slug, handle=handle))
    flash(f"You joined {pub.org.name} as an athlete. Add a note and book.", "success")
    return redirect_after_post(url_for("booking.book", slug=pub.org.slug, offering_id=offering.id,
                                       start=utc_text(starts_at)))
