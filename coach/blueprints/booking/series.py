"""Recurring series: plan and preview the conflicts, book; a series' page; cancel or move from one occurrence on.

The plan is a GET form (a preview writes nothing, so it is a link that can be reloaded or shared); booking it is a
POST that carries the same fields and the digest of the occurrences shown (see :mod:`coach.booking.series`).
"""
from __future__ import annotations

from datetime import date, timedelta, timezone

from flask import abort, flash, g, request, url_for
from wtforms import DateField, HiddenField, IntegerField, RadioField, SelectField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from coach import clock
from coach.blueprints.booking import bp
from coach.blueprints.booking.forms import TimeOfDayField
from coach.blueprints.booking.views import load_offering, parse_start, viewer_tz
from coach.blueprints.forms import BaseForm, attempt
from coach.booking import series as series_service
from coach.booking import service
from coach.booking.models import BookingSeries
from coach.booking.series import MAX_INTERVAL_WEEKS, MAX_OCCURRENCES, MAX_SHIFT_WEEKS
from coach.booking.slots import wall_to_utc
from coach.extensions import db
from coach.htmx import redirect_after_post, render, trigger
from coach.orgs.models import ATHLETE, COACH, STAFF
from coach.orgs.service import members_with_role
from coach.platform.idempotency import idempotent
from coach.tenancy import role_required

UTC = timezone.utc
PLAN = "booking/series_plan.html"
SHOW = "booking/series.html"
MOVE = "booking/series_move.html"
FIRST_DATE_REACH_DAYS = 730


# --- forms -------------------------------------------------------------------------------------------

class SeriesForm(BaseForm):
    """What a series is: who, from when, how often, until when. Times are on the coach's clock."""

    athlete = SelectField("Athlete", validate_choice=False,
                          validators=[InputRequired(message="Choose an athlete.")])
    first_date = DateField("First session", validators=[InputRequired(message="Enter the date of the first session.")])
    first_time = TimeOfDayField("At")
    every = IntegerField("Every … weeks", default=1, validators=[
        InputRequired(message="Enter how many weeks apart."),
        NumberRange(1, MAX_INTERVAL_WEEKS, message=f"Repeat every 1 to {MAX_INTERVAL_WEEKS} weeks.")])
    ends = RadioField("Ends", default="count", choices=[SelectChoice("count", "After a number of sessions"),
                                                         SelectChoice("until", "On a date")])
    count = IntegerField("Number of sessions", default=8, validators=[
        Optional(), NumberRange(1, MAX_OCCURRENCES, message=f"A series has 1 to {MAX_OCCURRENCES} sessions.")])
    until = DateField("Last date", validators=[Optional()])
    note = TextAreaField("Note for the athlete", validators=[
        Optional(), Length(max=service.NOTE_MAX, message=f"A note can have at most {service.NOTE_MAX:,} characters.")])
    expected = HiddenField()

    def validate(self, extra_validators=None) -> bool:
        # Which end is required depends on ``ends``: checked here, as ``Optional`` ends a field's own chain.
        valid = super().validate(extra_validators)
        # Within the calendar's reach (the week arithmetic of a far date would step past year 9999).
        if self.first_date.data and abs((self.first_date.data - clock.now().date()).days) > FIRST_DATE_REACH_DAYS:
            self.first_date.errors = [*self.first_date.errors, "Choose a first date within the next two years."]
            valid = False
        if self.ends.data == "count" and self.count.data is None and not self.count.errors:
            self.count.errors = [*self.count.errors, "Enter the number of sessions."]
            valid = False
        if self.ends.data == "until" and not self.until.errors:
            if self.until.data is None:
                self.until.errors = [*self.until.errors, "Enter the date of the last session."]
                valid = False
            elif self.first_date.data and self.until.data < self.first_date.data:
                self.until.errors = [*self.until.errors, "The last date is before the first session."]
                valid = False
        return valid

    def ending(self) -> tuple[int | None, date | None]:
        return (self.count.data, None) if self.ends.data == "count" else (None, self.until.data)


class CancelFromForm(BaseForm):
    start = IntegerField(validators=[InputRequired(), NumberRange(1, MAX_OCCURRENCES)])


class MoveForm(BaseForm):
    """Where occurrence ``start`` and the later ones go: a weekday and a time on the coach's clock, in each one's
    own week or shifted by whole weeks."""

    start = IntegerField("From occurrence", validators=[InputRequired(), NumberRange(1, MAX_OCCURRENCES)])
    weekday = SelectField("New day", coerce=int, choices=[SelectChoice(i, day) for i, day in
                                                          enumerate(service.WEEKDAYS)],
                          validators=[InputRequired(message="Choose a day of the week.")])
    time = TimeOfDayField("New time")
    weeks = SelectField("Which week", coerce=int, default=0, choices=[
        SelectChoice(n, "Each in its own week" if n == 0 else
                     f"{abs(n)} week{'s' if abs(n) != 1 else ''} {'later' if n > 0 else 'earlier'}")
        for n in [0, *range(1, MAX_SHIFT_WEEKS + 1), *range(-1, -5, -1)]])
    expected = HiddenField()


def _read_form(cls, asked: str):
    """A GET's form reads the query (no token: a preview writes nothing) once it has the field ``asked``; a
    POST's form the body, with CSRF. ``(form, submitted)``."""
    if request.method == "GET":
        submitted = asked in request.args
        return cls(formdata=request.args if submitted else None, meta={"csrf": False}), submitted
    return cls(), True


# --- loaders -----------------------------------------------------------------------------------------

def _load_managed_offering(offering_id: str):
    offering = load_offering(offering_id)
    if not service.manages_calendar(g.membership, offering.coach):
        abort(403, "Only the coach or a scheduler of the organization can book a recurring series.")
    return offering


def load_series(series_id: str) -> BookingSeries:
    series = series_service.get_series(g.org.id, series_id)
    if series is None or not series_service.may_view(g.membership, series):
        abort(404)
    return series


def _load_managed_series(series_id: str) -> BookingSeries:
    series = load_series(series_id)
    if not service.manages_calendar(g.membership, series.coach):
        abort(403, "Only the coach or a scheduler of the organization can change a recurring series.")
    return series


# --- a new series ------------------------------------------------------------------------------------

@bp.route("/offerings/<offering_id>/series", methods=["GET", "POST"])
@role_required(COACH, *STAFF)
@idempotent
def series_plan(offering_id: str):
    """Plan a recurring series for an athlete, preview every occurrence and its conflicts, then book it."""
    offering = _load_managed_offering(offering_id)
    tz = service.coach_timezone(offering.coach)
    form, submitted = _read_form(SeriesForm, "first_date")
    form.athlete.choices = [SelectChoice(str(m.id), f"{m.user.display_name} ({m.user.email})")
                            for m in members_with_role(g.org, ATHLETE, limit=1000)]
    if not submitted:
        _prefill(form, offering, tz)
    preview, status = None, 200
    if submitted and form.validate():
        athlete = service.get_athlete(g.org, form.athlete.data)
        first_start = wall_to_utc(form.first_date.data, form.first_time.minutes, service.zone(tz))
        if request.method == "POST":
            done = attempt(form, series_service.book, offering, athlete, first_start, form.every.data,
                           *form.ending(), form.expected.data or "", g.membership, note=form.note.data or "") \
                if athlete else None
            if done:
                db.session.commit()
                trigger("booking-changed")
                flash(f"Booked {done.value.occurrences} sessions of a {series_service.series_label(done.value)} "
                      "series.", "success")
                return redirect_after_post(url_for("booking.series_detail", series_id=done.value.id))
            status = done.status if done is not None else 422
        if athlete is None:
            form.athlete.errors = ["Choose an athlete of this organization."]
            status = 422
        else:
            planned = attempt(form, series_service.plan, offering, athlete, first_start, form.every.data,
                              *form.ending(), g.membership)
            preview = planned.value if planned else None
            status = max(status, planned.status)
    elif form.errors:
        status = 422
    return render(PLAN, "plan", status=status, org=g.org, offering=offering, coach=offering.coach, form=form,
                  coach_tz=tz, preview=preview, query=request.args if request.method == "GET" else request.form,
                  zone=service.zone(tz))


def _prefill(form: SeriesForm, offering, tz: str) -> None:
    """Start from ``?start=`` (a time chosen in the calendar) or the coach's next free time."""
    zone = service.zone(tz)
    start = parse_start(request.args["start"]) if request.args.get("start") else None
    if start is None:
        now = clock.now()
        free = service.available_slots(offering, now, now + timedelta(days=14), tz=tz)
        start = free[0].starts_at if free else None
    if start is not None:
        local = start.astimezone(zone)
        form.first_date.data = local.date()
        form.first_time.data = local.strftime("%H:%M")


@bp.get("/series/<series_id>")
@role_required()
def series_detail(series_id: str):
    """A series: every occurrence with its status; for the coach and staff, cancel or move from one on."""
    series = load_series(series_id)
    return render(SHOW, "occurrences", **_series_context(series))


def _series_context(series: BookingSeries, error: str | None = None) -> dict:
    rows = series_service.occurrences(series)
    now = clock.now()
    tz = viewer_tz()
    return dict(org=g.org, series=series, rows=rows, now=now, error=error, zone=service.zone(tz), tz=tz,
                label=series_service.series_label(series), live=sum(1 for b in rows if b.is_live),
                manages=service.manages_calendar(g.membership, series.coach) and series.status == "active")


@bp.post("/series/<series_id>/cancel")
@role_required(COACH, *STAFF)
@idempotent
def series_cancel(series_id: str):
    """Cancel one occurrence and every later one, in one go."""
    series = _load_managed_series(series_id)
    form = CancelFromForm()
    if not form.validate_on_submit():
        abort(400, "This form was incomplete or expired. Reload the page and try again.")
    done = attempt(None, series_service.cancel_from, series, form.start.data, g.membership)
    if not done:
        return render(SHOW, "occurrences", status=done.status,
                      **_series_context(load_series(series_id), done.error.message))
    db.session.commit()
    trigger("booking-changed")
    flash(f"Cancelled {done.value} session{'s' if done.value != 1 else ''} from occurrence {form.start.data} on.",
          "success")
    return redirect_after_post(url_for("booking.series_detail", series_id=series.id))


@bp.route("/series/<series_id>/move", methods=["GET", "POST"])
@role_required(COACH, *STAFF)
@idempotent
def series_move(series_id: str):
    """Move one occurrence and the later ones to another weekday, time or week: preview, then all or nothing."""
    series = _load_managed_series(series_id)
    form, submitted = _read_form(MoveForm, "weekday")
    if not submitted:
        _prefill_move(form, series)
        return render(MOVE, "move", org=g.org, series=series, form=form, preview=None,
                      label=series_service.series_label(series))
    preview, status = None, 200
    if form.validate():
        if request.method == "POST":
            done = attempt(form, series_service.move_from, series, form.start.data, form.weekday.data,
                           form.time.minutes, form.expected.data or "", g.membership, weeks=form.weeks.data)
            if done:
                db.session.commit()
                trigger("booking-changed")
                flash(f"Moved {len(done.value.occurrences)} sessions.", "success")
                return redirect_after_post(url_for("booking.series_detail", series_id=series.id))
            status = done.status
        planned = attempt(form, series_service.plan_move, series, form.start.data, form.weekday.data,
                          form.time.minutes, g.membership, weeks=form.weeks.data)
        preview = planned.value if planned else None
        status = max(status, planned.status)
    else:
        status = 422
    return render(MOVE, "move", status=status, org=g.org, series=series, form=form, preview=preview,
                  label=series_service.series_label(series))


def _prefill_move(form: MoveForm, series: BookingSeries) -> None:
    start = request.args.get("start", type=int) or 1
    form.start.data = start
    zone = service.zone(series.timezone)
    first = next((b for b in series_service.occurrences(series) if b.series_index >= start and b.is_live), None)
    if first is not None:
        local = first.starts_at.astimezone(zone)
        form.weekday.data, form.time.data = local.weekday(), local.strftime("%H:%M")


def series_line(booking) -> dict | None:
    """For a booking's page: "Occurrence 3 of 8 of a weekly series", with the series' link."""
    if booking.series_id is None:
        return None
    series = db.session.get(BookingSeries, booking.series_id)
    if series is None:
        return None
    return dict(series=series, index=booking.series_index, label=series_service.series_label(series),
                manages=service.manages_calendar(g.membership, series.coach) and booking.is_live
                and booking.starts_at > clock.now())


bp.add_app_template_global(series_line, "series_line")
