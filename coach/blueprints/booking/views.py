"""Booking pages: find a coach, pick a time in the week calendar, book; sessions and their actions."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import NamedTuple
from urllib.parse import quote

from flask import abort, current_app, flash, g, make_response, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import select
from wtforms import Form, HiddenField, SelectField
from wtforms.fields.choices import SelectChoice

from coach import clock
from coach.accounts import service as accounts
from coach.blueprints.booking import bp
from coach.blueprints.booking.forms import BookForm
from coach.blueprints.booking.rows import row_links, rows_html
from coach.blueprints.forms import ActionForm, BaseForm, TimezoneField, attempt, org_path, require_action_form
from coach.booking import ics, service, waitlist
from coach.booking.service import BookingError
from coach.extensions import db
from coach.htmx import redirect_after_post, render, swap_or_redirect, trigger, wants_fragment
from coach.orgs.models import ATHLETE, COACH, STAFF
from coach.orgs.service import members_with_role
from coach.payments import checkout, credits, policy
from coach.payments.models import Invoice, Payment
from coach.platform.idempotency import idempotent
from coach.tenancy import role_required
from coach.timezones import UnknownTimezone, clock_time, parse_timezone, zone_abbreviations

UTC = timezone.utc
DETAIL = "booking/detail.html"
# Rows of bookings, each rendered once per version and viewer (sessions page, a booking's page, an action's answer).
bp.add_app_template_global(rows_html, "booking_rows")
# Their links, for pages of other blueprints that show rows (the home page's sessions and requests).
bp.add_app_template_global(row_links, "booking_row_links")
DONE = {"confirm": "Confirmed.", "decline": "Declined.", "cancel": "Cancelled.", "no_show": "Marked as a no-show."}


# --- loaders: the object or a 404/403 -----------------------------------------------------------------

def load_offering(offering_id: str, bookable: bool = True):
    offering = service.get_offering(g.org, offering_id)
    if offering is None or (bookable and not offering.active):
        abort(404)
    return offering


def load_booking(booking_id: str):
    booking = service.get_booking(g.org, booking_id)
    if booking is None or not service.may_view(g.membership, booking):
        abort(404)
    return booking


def viewer_tz() -> str:
    return current_user.timezone or "UTC"


def parse_week(value: str | None, tz: str | None = None) -> date:
    """The Monday of ``?week=YYYY-MM-DD`` (any day of that week), or this week's Monday in the viewer's zone
    (or ``tz``)."""
    today = clock.now().astimezone(service.zone(tz or viewer_tz())).date()
    if value:
        try:
            day = date.fromisoformat(value)
        except ValueError:
            abort(400, "Use a week like 2026-11-23.")
        if abs((day - today).days) > 800:
            abort(400, "That week is too far away.")
    else:
        day = today
    return day - timedelta(days=day.weekday())


def parse_start(value: str | None) -> datetime:
    """The UTC instant of ``?start=``; 400 unless it has a zone and lies within the calendar's reach."""
    try:
        start = datetime.fromisoformat((value or "").replace("Z", "+00:00"))
        # Out of reach, the week around it would step past year 1 or 9999.
        if start.tzinfo is None or abs(start - clock.now()) > timedelta(days=800):
            raise ValueError(value)
        return start.astimezone(UTC)
    except (ValueError, OverflowError):
        abort(400, "That time is not valid. Choose a time from the calendar.")


class WeekSlot(NamedTuple):
    """A slot as the week calendar shows it, worked out once per slot in Python rather than in the template."""

    label: str  # the start on the viewer's clock, "09:30"
    start: str  # the start in UTC, as the booking form takes it
    start_query: str  # the same, quoted for the link's query
    seats_left: int | None
    full_session: str | None = None  # a full group session's id: it takes a waitlist ("Full · waitlist")


def week_days(offering, week: date, tz: str, reschedule=None, hour_cycle: int = 24) -> tuple[dict, str]:
    """The week's free slots grouped by the dates of zone ``tz``, and the coach's zone (``reschedule``: the
    booking being moved, whose own time counts as free; ``hour_cycle``: the clock of the labels, 12 or 24)."""
    window = service.week_window(week, tz)
    slots, coach_tz = service.week_slots(offering, *window,
                                         ignore_session=reschedule.session_id if reschedule and offering.capacity == 1
                                         else None)
    zone = service.zone(tz)
    days = {week + timedelta(days=i): [] for i in range(7)}
    fulls = waitlist.full_sessions(offering, *window) if reschedule is None else []
    kept = {full.starts_at for full in fulls}  # a free seat the line keeps shows as full, not as a free slot
    for slot in slots:
        if slot.starts_at in kept:
            continue
        local, start = slot.starts_at.astimezone(zone), slot.starts_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        days.setdefault(local.date(), []).append(WeekSlot(clock_time(local, hour_cycle), start, quote(start),
                                                          slot.seats_left))
    for full in fulls:
        local, start = full.starts_at.astimezone(zone), full.starts_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        day = days.setdefault(local.date(), [])
        day.append(WeekSlot(clock_time(local, hour_cycle), start, quote(start), 0, str(full.id)))
        day.sort(key=lambda s: s.start)
    return days, coach_tz


def shown_tz() -> tuple[str, str | None]:
    """The zone booking pages show times in: ``?tz=`` when it names one (a city will do), else the viewer's;
    and the notice when ``?tz=`` named none."""
    asked = request.args.get("tz", "")
    if not asked:
        return viewer_tz(), None
    try:
        return parse_timezone(asked), None
    except UnknownTimezone as exc:
        return viewer_tz(), f"{exc} Times are in your own zone, {viewer_tz().replace('_', ' ')}."


class ZoneSwitchForm(Form):
    """The week calendar's zone switcher: a GET form, so no CSRF token (it changes nothing)."""

    tz = TimezoneField("Show times in")


class HourCycleForm(BaseForm):
    """The 12/24-hour toggle of the week calendar, and where the calendar was (its week and zone)."""

    hour_cycle = SelectField(choices=[SelectChoice(24, "24-hour"), SelectChoice(12, "12-hour")], coerce=int)
    week = HiddenField()
    tz = HiddenField()
    reschedule = HiddenField()


def week_context(offering, week: date, reschedule=None, tz: str | None = None, tz_notice: str | None = None,
                 first_free: bool = False) -> dict:
    """Everything the week calendar needs: the week's slots grouped by the dates of zone ``tz`` (the viewer's by
    default), on the viewer's clock.

    :param first_free: no week was asked for: when this week has no free time, open on the first week (within
        the booking horizon) that has, and say why.
    """
    mine = viewer_tz()
    tz = tz or mine
    zone = service.zone(tz)
    days, coach_tz = week_days(offering, week, tz, reschedule, current_user.hour_cycle)
    this_week = parse_week(None, tz)
    skipped = None
    if first_free and not any(days.values()):
        ignore = reschedule.session_id if reschedule and offering.capacity == 1 else None
        slot = service.first_free_slot(offering, service.week_window(week, tz)[1], ignore_session=ignore)
        if slot is not None:
            skipped, local = week, slot.starts_at.astimezone(zone).date()
            week = local - timedelta(days=local.weekday())
            days, coach_tz = week_days(offering, week, tz, reschedule, current_user.hour_cycle)
    window = service.week_window(week, tz)
    return dict(offering=offering, coach=offering.coach, week=week, days=days, zone=zone, tz=tz,
                tz_abbr=zone_abbreviations(tz, window[0], window[1] - timedelta(minutes=1)), my_tz=mine,
                tz_notice=tz_notice, skipped_week=skipped,
                zone_form=ZoneSwitchForm(formdata=None, tz=tz), hour_form=HourCycleForm(formdata=None),
                coach_tz=coach_tz, reschedule=reschedule, preview_only=g.membership.role == COACH,
                prev_week=week - timedelta(days=7) if week > this_week else None,
                next_week=week + timedelta(days=7), this_week=this_week,
                today_local=clock.now().astimezone(zone).date())


# --- finding a coach and a time ----------------------------------------------------------------------

@bp.get("/book")
@role_required()
def coaches():
    """Every coach of the organization with how many offerings each has."""
    return render("booking/coaches.html", org=g.org, coaches=service.bookable_coaches(g.org))


@bp.get("/coaches/<coach_id>")
@role_required()
def coach_page(coach_id: str):
    """A coach's offerings."""
    coach = service.get_coach(g.org, coach_id) or abort(404)
    return render("booking/coach.html", org=g.org, coach=coach, offerings=service.offerings_of(coach),
                  manages=service.manages_calendar(g.membership, coach))


@bp.get("/offerings/<offering_id>")
@role_required()
def calendar(offering_id: str):
    """The week calendar of an offering: one week of slots, previous/next week in place."""
    offering = load_offering(offering_id)
    reschedule = _load_reschedule(request.args.get("reschedule"), offering)
    tz, notice = shown_tz()
    asked = request.args.get("week")
    spelled = None if notice else _zone_spelled_as_named(offering, tz)
    if spelled and not wants_fragment():
        return redirect(spelled)
    response = render("booking/calendar.html", "calendar", org=g.org,
                      **week_context(offering, parse_week(asked, tz), reschedule, tz, notice, first_free=not asked))
    if spelled:  # the switcher's week, swapped in place: the address it pushes names the zone as the page does
        response.headers["HX-Push-Url"] = spelled
    return response


def _zone_spelled_as_named(offering, tz: str) -> str | None:
    """This week's address with the zone's own name when ``?tz=`` spelled it otherwise (``tokyo``, an old name
    like ``Asia/Calcutta``), so the address bar, a copied link and the week's links agree; ``None`` when it already
    does."""
    asked = request.args.get("tz")
    if not asked or asked == tz:
        return None
    kept = {name: request.args[name] for name in ("week", "reschedule") if request.args.get(name)}
    return url_for("booking.calendar", offering_id=offering.id, **kept, tz=tz)


@bp.post("/offerings/<offering_id>/clock")
@role_required()
@idempotent
def set_clock(offering_id: str):
    """The 12/24-hour toggle: saved for the member's every page; the week again, in place for htmx."""
    offering = load_offering(offering_id)
    form = HourCycleForm()
    if not form.validate_on_submit():
        abort(400, "Choose a 12-hour or a 24-hour clock, and reload the page if this stays.")
    accounts.set_hour_cycle(current_user, form.hour_cycle.data)
    db.session.commit()
    reschedule = _load_reschedule(form.reschedule.data, offering)
    try:
        tz = parse_timezone(form.tz.data) if form.tz.data else None
    except UnknownTimezone:
        tz = None
    week = parse_week(form.week.data, tz)
    if wants_fragment():
        return render("booking/calendar.html", "calendar", org=g.org, **week_context(offering, week, reschedule, tz))
    args = {"week": week.isoformat(), "tz": tz if tz and tz != viewer_tz() else None,
            "reschedule": reschedule.id if reschedule else None}
    return redirect_after_post(url_for("booking.calendar", offering_id=offering.id, **args))


def _load_reschedule(booking_id: str | None, offering):
    if not booking_id:
        return None
    booking = load_booking(booking_id)
    if booking.offering_id != offering.id:  # a booking moves within its own offering only
        abort(404)
    if "reschedule" not in service.allowed_actions(booking, g.membership):
        abort(409, "This booking can no longer be rescheduled.")
    return booking


def _athletes_for_form(form: BookForm):
    if service.books_for_others(g.membership):
        form.athlete.choices = [SelectChoice(str(m.id), f"{m.user.display_name} ({m.user.email})")
                                for m in members_with_role(g.org, ATHLETE, limit=1000)]
    else:
        form.athlete.choices = [SelectChoice(str(g.membership.id), current_user.display_name)]
        if not form.is_submitted():  # a posted id stays as sent: _place refuses anyone else's
            form.athlete.data = str(g.membership.id)


@bp.route("/offerings/<offering_id>/book", methods=["GET", "POST"])
@role_required(ATHLETE, *STAFF)
@idempotent
def book(offering_id: str):
    """Confirm a chosen time with a note (and, for schedulers, the athlete) and how to pay, then book it."""
    offering = load_offering(offering_id)
    form = BookForm()
    _athletes_for_form(form)
    if request.method == "GET":
        form.start.data = request.args.get("start", "")
        form.reschedule.data = request.args.get("reschedule", "")
        if service.books_for_others(g.membership):  # whose credits the page offers
            form.athlete.data = request.args.get("athlete") or form.athlete.data
    starts_at = parse_start(form.start.data)
    reschedule = _load_reschedule(form.reschedule.data, offering)
    if reschedule is not None:
        form.athlete.data = str(reschedule.athlete_membership_id)
    status, taken, check, line_session = 200, False, None, None
    ignore = reschedule.session_id if reschedule is not None and offering.capacity == 1 else None
    if request.method == "GET":
        # Taken since the calendar was read (or past, or out of the coach's hours now): say so before the form.
        # A 200: the page answers what was asked (what about this time?); the POST of a taken time is the 409.
        check = service.check_time(offering, starts_at, ignore_session=ignore)
        taken = not check.free
    elif form.validate_on_submit():
        placed = attempt(form, _place, offering, form, starts_at, reschedule)
        if placed:
            booking, checkout_url = placed.value
            db.session.commit()
            if checkout_url:  # the provider's checkout page; the time is held meanwhile
                return redirect_after_post(checkout_url)
            trigger("booking-changed")
            flash(_booked_message(booking), "success")
            return redirect_after_post(url_for("booking.detail", booking_id=booking.id))
        status, taken = placed.status, isinstance(placed.error, service.SlotTaken)
        line_session = getattr(placed.error, "session_id", None)  # seats kept for a waitlist: offer to join it
        if taken:
            check = service.check_time(offering, starts_at, ignore_session=ignore)
    elif form.errors:
        status = 422
    tz, notice = shown_tz()
    week = starts_at.astimezone(service.zone(tz)).date()
    return render("booking/book.html", "form", status=status, org=g.org, form=form, starts_at=starts_at,
                  ends_at=starts_at + timedelta(minutes=offering.duration_minutes), taken=taken,
                  unavailable=check if check is not None and not check.free else None,
                  alternatives=_alternatives(check, tz, reschedule), line_session=line_session,
                  choose_athlete=service.books_for_others(g.membership) and reschedule is None,
                  **_pay_context(offering, form, starts_at, reschedule),
                  **week_context(offering, week - timedelta(days=week.weekday()), reschedule, tz, notice))


def _alternatives(check, tz: str, reschedule) -> list[tuple[str, str]]:
    """The free times nearest to a time that cannot be booked, as (label on the viewer's clock, book link)."""
    if check is None or check.free:
        return []
    zone = service.zone(tz)
    args = {"reschedule": reschedule.id if reschedule else None, "tz": tz if tz != viewer_tz() else None}
    return [(f"{slot.starts_at.astimezone(zone).strftime('%a %-d %b')}, "
             f"{clock_time(slot.starts_at.astimezone(zone), current_user.hour_cycle)} "
             f"{zone_abbreviations(tz, slot.starts_at, slot.starts_at)}",
             url_for("booking.book", offering_id=request.view_args["offering_id"],
                     start=slot.starts_at.strftime("%Y-%m-%dT%H:%M:%SZ"), **args))
            for slot in check.alternatives]


def _pay_context(offering, form: BookForm, starts_at: datetime, reschedule) -> dict:
    """The ways to pay the book page offers: by card, a credit of each usable pack, by hand (schedulers)."""
    priced = bool(offering.price_minor) and reschedule is None
    athlete = service.get_athlete(g.org, form.athlete.data) if priced and form.athlete.data else None
    return dict(priced=priced, grants=credits.usable_grants(athlete, offering, starts_at) if athlete else [],
                record_by_hand=priced and service.books_for_others(g.membership))


def _booked_message(booking) -> str:
    paid = credits.credit_for_booking(booking)
    credit = f" with a credit of {paid[0].product.title} ({paid[1]} left)" if paid else ""
    if booking.status == "confirmed":
        return f"Booked{credit}: the coach confirmed it."
    return f"Requested{credit}: you will see here when the coach answers."


def _place(offering, form: BookForm, starts_at: datetime, reschedule):
    """Book as the form says; ``(booking, the checkout's URL or None)``."""
    if reschedule is not None:
        return move_booking(reschedule, starts_at, form.note.data, g.membership), None
    athlete = service.get_athlete(g.org, form.athlete.data)
    if athlete is None or (athlete.id != g.membership.id and not service.books_for_others(g.membership)):
        raise BookingError("Choose an athlete of this organization.")
    note = form.note.data or ""
    if not offering.price_minor:
        return service.request_booking(offering, athlete, starts_at, note, g.membership), None
    pay = form.pay.data or ""
    if pay == "card":
        booking, _payment, url = checkout.start_session_checkout(offering, athlete, starts_at, note, g.membership)
        return booking, url
    if pay == "credit" or pay.startswith("credit:"):
        grant_id = pay.partition(":")[2]
        if not grant_id:
            usable = credits.usable_grants(athlete, offering, starts_at)
            if not usable:
                raise credits.CreditError(f"{athlete.user.display_name} has no credit that covers this session.")
            grant_id = usable[0].id
        return credits.book_with_credit(offering, athlete, starts_at, note, g.membership, grant_id), None
    if pay == "manual" and service.books_for_others(g.membership):
        booking = service.request_booking(offering, athlete, starts_at, note, g.membership,
                                          hold_minutes=current_app.config["PAYMENT_HOLD_MINUTES"])
        checkout.record_manual_payment(athlete=athlete, actor=g.membership, reference=form.reference.data or "",
                                       booking=booking)
        db.session.refresh(booking)
        return booking, None
    raise BookingError(f"Choose how to pay the {offering.price_label}.")


def move_booking(booking, starts_at: datetime, note: str | None, actor):
    """Reschedule as ``actor``; a credit moves with the booking. Money paid stays with the booking it paid for,
    so a session paid by card is cancelled (by the policy) and booked again instead. (Also the emailed
    reschedule link's, :mod:`.manage`.)"""
    if policy.paid_by(booking) == policy.MONEY:
        raise BookingError("A session paid by card cannot be moved: cancel it (the cancellation policy applies) "
                           "and book the new time.")
    moved = service.reschedule_booking(booking, starts_at, actor, note=note or "")
    credits.carry_over(booking, moved, actor)
    return moved


def cancel_booking(booking, actor):
    """Cancel as ``actor``: a held booking's open checkout and payment end with it; a paid one is refunded by
    the cancellation policy (payments' consumer of the cancel). (Also the emailed cancel link's.)"""
    if booking.status == "held":
        return checkout.cancel_hold(booking, actor)
    return service.transition(booking, "cancel", actor)


# --- sessions ----------------------------------------------------------------------------------------

@bp.get("/bookings")
@role_required()
def sessions():
    """My sessions: requests to answer, today, upcoming and past, as coach and as athlete."""
    coach = g.membership if g.membership.role == COACH else None
    if request.args.get("coach") and service.books_for_others(g.membership):
        coach = service.get_coach(g.org, request.args["coach"]) or abort(404)
    return render("booking/sessions.html", "lists", org=g.org, coach=coach, me=g.membership, links=row_links(),
                  may_book=g.membership.role in (ATHLETE, *STAFF),
                  coaches=service.coaches(g.org) if service.books_for_others(g.membership) else [],
                  waitlist_places=waitlist.places_of(g.membership) if g.membership.role == ATHLETE else [],
                  **service.session_lists(g.membership, coach, viewer_tz()))



@bp.get("/bookings/<booking_id>")
@role_required()
def detail(booking_id: str):
    """One booking: when, with whom, its status, and what I can do with it."""
    return render(DETAIL, **_detail_context(load_booking(booking_id)))


def _detail_context(booking, error: str | None = None) -> dict:
    return dict(org=g.org, booking=booking, me=g.membership, error=error, links=row_links(), my_tz=viewer_tz(),
                coach_tz=service.coach_timezone(booking.coach),
                row=service.session_row(booking, g.membership, service.zone(viewer_tz())),
                paid=_paid_context(booking))


def _paid_context(booking) -> dict:
    """How the booking was paid, for its page: the credit (and what is left of its pack), the payments with
    their receipts, and for a held booking the way back to its open checkout."""
    payments = list(db.session.scalars(select(Payment).where(
        Payment.tenant_id == booking.tenant_id, Payment.booking_id == booking.id).order_by(Payment.created_at)))
    receipts = {inv.payment_id: inv for inv in db.session.scalars(select(Invoice).where(
        Invoice.tenant_id == booking.tenant_id, Invoice.kind == "receipt",
        Invoice.payment_id.in_([p.id for p in payments])))} if payments else {}
    pending = next((p for p in payments if p.status == "pending"), None)
    resume = None
    if booking.status == "held" and pending is not None and g.membership.id == booking.athlete_membership_id:
        resume = checkout.pay_url(pending)
    return dict(credit=credits.credit_for_booking(booking), payments=[p for p in payments if p.status == "paid"],
                receipts=receipts, pending=pending, resume=resume)


@bp.post("/bookings/<booking_id>/<any(confirm, decline, cancel, no_show):action>")
@role_required()
@idempotent
def act(booking_id: str, action: str):
    """Confirm, decline, cancel or mark a no-show; the row in place for htmx, back to the page otherwise."""
    booking = load_booking(booking_id)
    require_action_form()
    if action == "cancel":
        done = attempt(None, cancel_booking, booking, g.membership)
    else:
        done = attempt(None, service.transition, booking, action, g.membership)
    if not done:
        # The row as it is now, with why not: in place for htmx, on the booking's page otherwise.
        return render(DETAIL, "row", status=409, **_detail_context(load_booking(booking_id), done.error.message))
    db.session.commit()
    trigger("booking-changed")
    return swap_or_redirect(DETAIL, "row", _back_to(booking), DONE[action], context=lambda: _detail_context(booking))


def _back_to(booking) -> str:
    target = request.form.get("next", "")
    if org_path(target, g.org.slug):
        return target
    return url_for("booking.detail", booking_id=booking.id)


# --- calendar files ----------------------------------------------------------------------------------

def _ics_response(body: bytes, filename: str, disposition: str = "attachment", cache: str = "private, no-cache"):
    """A calendar file with an ETag of its content: a client that sends it back in ``If-None-Match`` gets a
    304 without the body while nothing in the file changed (the file is still built to know that).

    ``private, no-cache`` by default: the person's own browser may keep the file but asks again each time
    (the app-wide ``no-store`` would leave it nothing to revalidate).
    """
    response = make_response(body)
    response.headers["Content-Type"] = "text/calendar; charset=utf-8"
    response.headers["Content-Disposition"] = f'{disposition}; filename="{filename}"'
    response.headers["Cache-Control"] = cache
    response.add_etag()
    return response.make_conditional(request)


@bp.get("/bookings/<booking_id>.ics")
@role_required()
def booking_ics(booking_id: str):
    """One booking as a calendar file."""
    booking = load_booking(booking_id)
    return _ics_response(ics.calendar([booking], g.membership, current_app.config["APP_BASE_URL"], g.org.slug,
                                      f"{g.org.name}: {booking.offering.title}"), f"booking-{booking.id}.ics")


@bp.get("/calendar-feed")
@role_required()
def feed_settings():
    """The secret subscription address of my sessions, and how to use it."""
    return render("booking/feed.html", org=g.org, has_feed=service.has_feed(g.membership), secret=None,
                  action_form=ActionForm())


@bp.post("/calendar-feed")
@role_required()
def feed_regenerate():
    """Issue a new subscription address; the previous one stops working."""
    require_action_form()
    secret = service.regenerate_feed(g.membership)
    db.session.commit()
    return render("booking/feed.html", "feed", org=g.org, has_feed=True, secret=secret, action_form=ActionForm())


@bp.get("/calendar/<token>.ics")
def feed(token: str):
    """The subscription feed itself, fetched by calendar apps with the secret in the URL."""
    org = g.feed_org
    owner = service.feed_owner(org, token)
    if owner is None:
        abort(404)
    body = ics.calendar(service.feed_bookings(owner), owner, current_app.config["APP_BASE_URL"], org.slug,
                        f"{org.name} sessions")
    # Calendar apps poll every few minutes to hours: after 5 minutes they ask again, and get a 304 when
    # nothing changed.
    response = _ics_response(body, "coach.ics", disposition="inline", cache="private, max-age=300")
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
