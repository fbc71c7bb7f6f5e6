"""A coach's schedule: time zone, weekly hours, date overrides, time off, offerings.

The coach manages their own; schedulers and admins manage any coach's. Each
section is a block of ``booking/schedule.html`` that htmx swaps in place.
"""
from __future__ import annotations

from datetime import date
from functools import partial

from flask import abort, flash, g, request, url_for
from flask_login import current_user
from wtforms import ValidationError

from coach import clock
from coach.blueprints.booking import bp
from coach.blueprints.booking.forms import OfferingForm, OverrideForm, RuleForm, TimeOffForm, TimezoneForm
from coach.blueprints.forms import ActionForm, attempt, require_action_form
from coach.booking import service
from coach.booking.slots import wall_to_utc
from coach.extensions import db
from coach.governance import settings as org_settings
from coach.htmx import redirect_after_post, render, swap_or_redirect, trigger
from coach.orgs.models import COACH
from coach.payments.settings import billing_settings
from coach.platform.idempotency import idempotent
from coach.tenancy import role_required
from coach.timezones import minutes_on_clock

SCHEDULE = "booking/schedule.html"


def load_managed_coach(coach_id: str):
    """The coach whose calendar I may manage, or 404 (unknown) / 403 (someone else's)."""
    coach = service.get_coach(g.org, coach_id)
    if coach is None:
        abort(404)
    if not service.manages_calendar(g.membership, coach):
        abort(403)
    return coach


def _page(coach, block: str | None = None, status: int = 200, **forms):
    return render(SCHEDULE, block, status=status, **_page_context(coach, **forms))


def _page_context(coach, **forms) -> dict:
    tz = service.coach_timezone(coach)
    now = clock.now()
    today = now.astimezone(service.zone(tz)).date()
    tz_form = forms.pop("tz_form", None) or TimezoneForm(formdata=None, timezone=tz)
    cycle = current_user.hour_cycle or 24
    override_form = forms.get("override_form") or OverrideForm(formdata=None)
    if cycle == 12:  # the example in the reader's own way of writing times (both ways are read)
        override_form.hours.description = "For example 9am-12pm, 2pm-6pm"
    return dict(org=g.org, coach=coach, tz=tz,
                weekly=service.weekly_rules(coach), weekdays=service.WEEKDAYS,
                label=partial(minutes_on_clock, hour_cycle=cycle),
                overrides=service.upcoming_overrides(coach, today), time_off=service.upcoming_time_off(coach, now),
                offerings=service.offerings_of(coach, include_inactive=True), tz_form=tz_form,
                rule_form=forms.get("rule_form") or RuleForm(formdata=None),
                override_form=override_form,
                time_off_form=forms.get("time_off_form") or TimeOffForm(formdata=None),
                action_form=ActionForm(formdata=None), zone=service.zone(tz))


def _saved(coach, block: str, message: str):
    """After a change: the section in place for htmx, the page again (303) otherwise."""
    db.session.commit()
    trigger("schedule-changed")
    return swap_or_redirect(SCHEDULE, block, url_for("booking.schedule", coach_id=coach.id), message,
                            context=lambda: _page_context(coach))


@bp.get("/coaches/<coach_id>/schedule")
@role_required()
def schedule(coach_id: str):
    """Weekly hours, overrides, time off and offerings of a coach."""
    return _page(load_managed_coach(coach_id))


@bp.get("/schedule")
@role_required(COACH)
def my_schedule():
    """A coach's own schedule."""
    return schedule(str(g.membership.id))


@bp.post("/coaches/<coach_id>/schedule/timezone")
@role_required()
@idempotent
def set_timezone(coach_id: str):
    """The zone the weekly hours are read in."""
    coach = load_managed_coach(coach_id)
    form = TimezoneForm()
    if form.validate_on_submit():
        service.set_coach_timezone(coach, form.timezone.data, g.membership)
        return _saved(coach, "hours", "Time zone saved.")
    return _page(coach, "hours", status=422, tz_form=form)


@bp.post("/coaches/<coach_id>/schedule/rules")
@role_required()
@idempotent
def add_rule(coach_id: str):
    """Add weekly hours to one day."""
    coach = load_managed_coach(coach_id)
    form = RuleForm()
    if form.validate_on_submit() and attempt(form, service.add_rule, coach, int(form.weekday.data),
                                             form.start.minutes, form.end.minutes, g.membership):
        return _saved(coach, "hours", "Hours added.")
    return _page(coach, "hours", status=422, rule_form=form)


@bp.post("/coaches/<coach_id>/schedule/rules/<rule_id>/delete")
@role_required()
@idempotent
def delete_rule(coach_id: str, rule_id: str):
    """Remove weekly hours."""
    coach = load_managed_coach(coach_id)
    require_action_form()
    if not service.delete_rule(coach, rule_id, g.membership):
        abort(404)
    return _saved(coach, "hours", "Hours removed.")


@bp.post("/coaches/<coach_id>/schedule/overrides")
@role_required()
@idempotent
def set_override(coach_id: str):
    """Replace one date's hours, or close it."""
    coach = load_managed_coach(coach_id)
    form = OverrideForm()
    if form.validate_on_submit():
        try:
            intervals = form.intervals()
        except ValidationError as exc:
            form.hours.errors = [str(exc)]
        else:
            saved = attempt(None, service.set_override, coach, form.on_date.data, intervals, g.membership)
            if saved:
                return _saved(coach, "overrides", "Date saved.")
            form.hours.errors = [saved.error.message]
    return _page(coach, "overrides", status=422, override_form=form)


@bp.post("/coaches/<coach_id>/schedule/overrides/<on_date>/delete")
@role_required()
@idempotent
def delete_override(coach_id: str, on_date: str):
    """Back to the weekly hours on that date."""
    coach = load_managed_coach(coach_id)
    require_action_form()
    try:
        day = date.fromisoformat(on_date)
    except ValueError:
        abort(404)
    if not service.clear_override(coach, day):
        abort(404)
    return _saved(coach, "overrides", "Date back to weekly hours.")


@bp.post("/coaches/<coach_id>/schedule/time-off")
@role_required()
@idempotent
def add_time_off(coach_id: str):
    """Block a range of days or hours (read in the coach's zone)."""
    coach = load_managed_coach(coach_id)
    form = TimeOffForm()
    if form.validate_on_submit():
        zone = service.zone(service.coach_timezone(coach))
        starts = wall_to_utc(form.starts.data.date(), form.starts.data.hour * 60 + form.starts.data.minute, zone)
        ends = wall_to_utc(form.ends.data.date(), form.ends.data.hour * 60 + form.ends.data.minute, zone)
        added = attempt(None, service.add_time_off, coach, starts, ends, form.reason.data or "", g.membership)
        if added:
            return _saved(coach, "time_off", "Time off added.")
        form.ends.errors = [added.error.message]
    return _page(coach, "time_off", status=422, time_off_form=form)


@bp.post("/coaches/<coach_id>/schedule/time-off/<time_off_id>/delete")
@role_required()
@idempotent
def delete_time_off(coach_id: str, time_off_id: str):
    """Remove time off."""
    coach = load_managed_coach(coach_id)
    require_action_form()
    if not service.delete_time_off(coach, time_off_id, g.membership):
        abort(404)
    return _saved(coach, "time_off", "Time off removed.")


# --- offerings ---------------------------------------------------------------------------------------

@bp.route("/coaches/<coach_id>/offerings/new", methods=["GET", "POST"])
@role_required()
@idempotent
def new_offering(coach_id: str):
    """Create an offering."""
    coach = load_managed_coach(coach_id)
    form = OfferingForm(currency=org_currency())
    if request.method == "GET":  # the organization's default cancellation policy (its settings page)
        for name, value in org_settings.offering_defaults(g.org).items():
            getattr(form, name).data = value
    return _save_offering_form(coach, form, None)


@bp.route("/offerings/<offering_id>/edit", methods=["GET", "POST"])
@role_required()
@idempotent
def edit_offering(offering_id: str):
    """Change an offering; booked sessions keep the terms they were booked with."""
    offering = service.get_offering(g.org, offering_id) or abort(404)
    coach = load_managed_coach(str(offering.coach_membership_id))
    form = OfferingForm(currency=org_currency())
    if request.method == "GET":
        form.fill_from(offering)
    return _save_offering_form(coach, form, offering)


def org_currency() -> str:
    """Offerings are priced in the organization's currency (its billing settings)."""
    return billing_settings(g.org.id).currency


def _save_offering_form(coach, form: OfferingForm, offering):
    saved = form.validate_on_submit() and attempt(form, service.save_offering, coach, form.values(), g.membership,
                                                  offering)
    if saved:
        db.session.commit()
        flash(f"{saved.value.title} saved.", "success")
        return redirect_after_post(url_for("booking.schedule", coach_id=coach.id))
    return render("booking/offering_form.html", "form", status=422 if form.errors else 200, org=g.org,
                  coach=coach, form=form, offering=offering)


@bp.post("/offerings/<offering_id>/<any(archive, restore):action>")
@role_required()
@idempotent
def toggle_offering(offering_id: str, action: str):
    """Archive an offering (no new bookings) or restore it."""
    offering = service.get_offering(g.org, offering_id) or abort(404)
    coach = load_managed_coach(str(offering.coach_membership_id))
    require_action_form()
    service.set_offering_active(offering, action == "restore", g.membership)
    return _saved(coach, "offerings", "Offering archived." if action == "archive" else "Offering restored.")
