"""Manage a booking without logging in: the links of booking emails (see :mod:`coach.booking.manage_links`).

A blueprint of its own (``booking_links``), outside ``/o/<slug>``: whoever holds the link is not signed in, and
the signed token names the organization. Each link is for one booking and one action; the changes are made as
the booking's athlete, through the same calls as the app's own buttons (so the lifecycle's rules and the
payments' cancellation policy apply). A GET never changes anything (mail scanners open links); the forms
keep their CSRF token (an anonymous visitor has a session cookie too).
"""
from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, abort, current_app, flash, g, request, url_for
from flask_login import current_user

from coach import clock, tenancy
from coach.blueprints.booking.views import cancel_booking, move_booking, parse_start, parse_week, week_days
from coach.blueprints.forms import attempt, require_action_form
from coach.booking import manage_links, service
from coach.booking.manage_links import LinkRefused
from coach.extensions import db
from coach.htmx import redirect_after_post, render
from coach.orgs.models import Organization
from coach.payments import policy
from coach.platform.ratelimit import ip_key, limiter
from coach.timezones import clock_time

links = Blueprint("booking_links", __name__)

# One budget per client address for every page and form of these links: a token cannot be guessed (it is
# signed), but nobody should be able to hammer the lookups either.
_limited = limiter.shared_limit(lambda: current_app.config["RATELIMIT_BOOKING_LINKS"], "booking-links",
                                key_func=ip_key)


@links.after_request
def _private(response):
    """The token is in the URL: never sent on as a referrer, kept in a cache or listed by a search engine."""
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _open(token: str, action: str):
    """The link and its booking, with RLS set to the token's organization; refusals are the error page."""
    tenant_id = manage_links.tenant_of(token)
    if tenant_id is None:
        abort(404, manage_links.NOT_VALID)
    tenancy.activate(tenant_id)
    link, booking = manage_links.usable(token, action)
    athlete = booking.athlete.user
    g.viewer_timezone = athlete.timezone  # times read in the athlete's own zone (the page names it)
    return link, booking


@links.errorhandler(LinkRefused)
def _link_refused(refused: LinkRefused):
    """A genuine link that is spent, expired or for another action: a page of its own that says so in words and
    offers the way into the app (the generic error page's big "410 Gone" tells an athlete nothing). A made-up
    token keeps the plain 404."""
    if refused.link is None:  # the app's own error page, as for any refusal
        return render("errors/error.html", "content", status=refused.status, code=refused.status,
                      title="Not found", message=str(refused))
    org = db.session.get(Organization, refused.link.tenant_id)
    in_app = url_for("booking.detail", slug=org.slug, booking_id=refused.link.booking_id) if org else None
    return render("booking/manage/refused.html", status=refused.status, refused=refused, org=org, in_app=in_app)


def _refused(refused: LinkRefused):
    """A POST with a spent, expired or mismatched link: the attempt is audited, then refused."""
    db.session.rollback()
    manage_links.record_refusal(refused)
    db.session.commit()
    raise refused


def _context(link, booking, **extra) -> dict:
    """What every page of a link shows: the booking, in the athlete's zone and on their clock, and the way in."""
    athlete = booking.athlete.user
    org = booking.athlete.organization
    tz = athlete.timezone or "UTC"
    zone, cycle = service.zone(tz), athlete.hour_cycle or 24
    return dict(link=link, booking=booking, org=org, athlete=athlete, coach=booking.coach.user, tz=tz, zone=zone,
                hour_cycle=cycle, hm=lambda instant: clock_time(instant.astimezone(zone), cycle),
                in_app=url_for("booking.detail", slug=org.slug, booking_id=booking.id),
                signed_in_as_athlete=current_user.is_authenticated and current_user.id == athlete.id, **extra)


def _done(booking, message: str):
    """After a change: the booking's own view link (the spent link would only say "already used")."""
    token = manage_links.issue(booking, "view")
    db.session.commit()
    flash(message, "success")
    return redirect_after_post(url_for("booking_links.view", token=token))


@links.get("/b/<token>")
@_limited
def view(token: str):
    """The booking: what, when (in the athlete's zone), with whom, where, its status."""
    link, booking = _open(token, "view")
    return render("booking/manage/view.html", **_context(link, booking, moved=manage_links.moved_to(booking)))


def _cannot_cancel(booking) -> str | None:
    if "cancel" in service.allowed_actions(booking, booking.athlete):
        return None
    if booking.status in ("requested", "confirmed", "held"):
        return "This session has already started: it can no longer be cancelled."
    return f"This booking is {booking.status_label.lower()}: there is nothing to cancel any more."


@links.get("/b/<token>/cancel")
@_limited
def cancel(token: str):
    """Ask before cancelling: what it is, whether it is late, what the policy gives back."""
    link, booking = _open(token, "cancel")
    problem = _cannot_cancel(booking)
    return render("booking/manage/cancel.html", status=409 if problem else 200,
                  **_context(link, booking, problem=problem, **_cancel_terms(booking)))


def _cancel_terms(booking) -> dict:
    """Whether cancelling now is late, and what the cancellation policy then gives back (paid sessions)."""
    paid = policy.paid_by(booking) != policy.FREE
    return dict(late=service.is_late_cancellation(booking, clock.now()),
                outcome=policy.outcome(policy.ATHLETE_CANCEL, booking).summary if paid else None)


@links.post("/b/<token>/cancel")
@_limited
def cancel_now(token: str):
    """Cancel the booking as its athlete, spending the link in the same transaction."""
    require_action_form()
    try:
        link, booking = _open(token, "cancel")
    except LinkRefused as refused:
        return _refused(refused)
    athlete = booking.athlete
    done = attempt(None, manage_links.carry_out, link, booking, lambda: cancel_booking(booking, athlete))
    if not done:
        if isinstance(done.error, LinkRefused):
            return _refused(done.error)
        link, booking = _open(token, "cancel")
        return render("booking/manage/cancel.html", status=409, **_context(
            link, booking, problem=done.error.message, **_cancel_terms(booking)))
    return _done(booking, "Cancelled. The coach is told.")


# --- reschedule ----------------------------------------------------------------------------------------------

def _cannot_move(booking) -> str | None:
    if "reschedule" not in service.allowed_actions(booking, booking.athlete):
        if booking.status in ("requested", "confirmed"):
            return "This session has already started: it can no longer be moved."
        return f"This booking is {booking.status_label.lower()}: it can no longer be moved."
    if policy.paid_by(booking) == policy.MONEY:
        return ("A session paid by card cannot be moved: cancel it (the cancellation policy applies) and book "
                "the new time in the app.")
    return None


def _reschedule_page(link, booking, week, starts_at=None, problem=None, error=None, status=200):
    """The offering's free times of one week in the athlete's zone, and the chosen one to confirm."""
    ctx = _context(link, booking, problem=problem, error=error, starts_at=starts_at)
    if problem is None:
        this_week = parse_week(None, ctx["tz"])
        days, coach_tz = week_days(booking.offering, week, ctx["tz"], booking, ctx["hour_cycle"])
        ctx.update(week=week, days=days, coach_tz=coach_tz, this_week=this_week, next_week=week + timedelta(days=7),
                   prev_week=week - timedelta(days=7) if week > this_week else None,
                   ends_at=starts_at + timedelta(minutes=booking.offering.duration_minutes) if starts_at else None)
    return render("booking/manage/reschedule.html", "manage", status=status, **ctx)


@links.get("/b/<token>/reschedule")
@_limited
def reschedule(token: str):
    """Pick a new time (``?week=``), then confirm it (``?start=``): both plain links, nothing changes yet."""
    link, booking = _open(token, "reschedule")
    problem = _cannot_move(booking)
    tz = booking.athlete.user.timezone or "UTC"
    starts_at = parse_start(request.args["start"]) if request.args.get("start") else None
    # The week asked for, else the chosen time's, else the booking's own (its neighbours are the likely moves).
    around = starts_at or max(booking.starts_at, clock.now())
    week = parse_week(request.args.get("week") or around.astimezone(service.zone(tz)).date().isoformat(), tz)
    return _reschedule_page(link, booking, week, starts_at, problem=problem, status=409 if problem else 200)


@links.post("/b/<token>/reschedule")
@_limited
def reschedule_now(token: str):
    """Move the booking to the posted time as its athlete, spending the link in the same transaction; a time
    taken meanwhile changes nothing (the link still works)."""
    require_action_form()
    try:
        link, booking = _open(token, "reschedule")
    except LinkRefused as refused:
        return _refused(refused)
    starts_at = parse_start(request.form.get("start"))
    athlete = booking.athlete
    done = attempt(None, manage_links.carry_out, link, booking,
                   lambda: move_booking(booking, starts_at, None, athlete))
    if done:
        moved = done.value
        return _done(moved, "Moved: the new time is confirmed." if moved.status == "confirmed"
                     else "Moved. The coach confirms the new time.")
    if isinstance(done.error, LinkRefused):
        return _refused(done.error)
    link, booking = _open(token, "reschedule")
    tz = booking.athlete.user.timezone or "UTC"
    week = parse_week(starts_at.astimezone(service.zone(tz)).date().isoformat(), tz)
    status = 409 if isinstance(done.error, service.SlotTaken) else done.error.status
    return _reschedule_page(link, booking, week, problem=_cannot_move(booking), error=done.error.message,
                            status=status)
