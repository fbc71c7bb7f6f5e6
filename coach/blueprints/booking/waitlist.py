"""Waitlist pages: a full group session's line (join, my place, leave), and taking a seat offered from it."""
from __future__ import annotations

from flask import abort, flash, g, url_for
from flask_login import current_user
from wtforms.fields.choices import SelectChoice

from coach import clock
from coach.blueprints.booking import bp
from coach.blueprints.booking.forms import WaitlistForm
from coach.blueprints.forms import ActionForm, attempt, require_action_form
from coach.booking import service, waitlist
from coach.extensions import db
from coach.htmx import redirect_after_post, render, swap_or_redirect, trigger
from coach.orgs.models import ATHLETE, STAFF
from coach.orgs.service import members_with_role
from coach.payments import checkout
from coach.platform.idempotency import idempotent
from coach.tenancy import role_required

PAGE = "booking/waitlist.html"


def load_session(session_id: str):
    """A group session of this organization whose line the viewer may see; 404 otherwise."""
    session = waitlist.get_session(g.org, session_id)
    if session is None or session.capacity < 2:
        abort(404)
    return session


def load_entry(entry_id: str):
    """A place in a line that is the viewer's (or that they manage as a scheduler or admin); 404 otherwise."""
    entry = waitlist.get_entry(g.org, entry_id)
    if entry is None or not waitlist.may_act_for(g.membership, entry.athlete_membership_id):
        abort(404)
    return entry


def _page(session, form: WaitlistForm | None = None) -> dict:
    """The session, the viewer's place (or seat) in it, the line for staff, and the join form."""
    offering = service.get_offering(g.org, session.offering_id)
    me = g.membership
    for_others = service.books_for_others(me)
    manages = for_others or offering.coach_membership_id == me.id
    mine = waitlist.open_entry(session, me.id) if me.role == ATHLETE else None
    line = waitlist.line(session) if manages else []
    if form is None:
        form = WaitlistForm()
    if for_others:
        waiting = {e.athlete_membership_id for e in line}
        form.athlete.choices = [SelectChoice(str(m.id), f"{m.user.display_name} ({m.user.email})")
                                for m in members_with_role(g.org, ATHLETE, limit=1000) if m.id not in waiting]
    now = clock.now()
    return dict(org=g.org, session=session, offering=offering, coach=offering.coach, mine=mine,
                place=waitlist.place_of(mine) if mine else None, ordinal=waitlist.ordinal,
                my_booking=_my_booking(session) if me.role == ATHLETE else None, line=line, manages=manages,
                for_others=for_others, may_join=me.role == ATHLETE or for_others,
                full=waitlist.is_full(session), started=session.starts_at <= now,
                takes=waitlist.takes_waitlist(offering), mode=waitlist.mode_of(offering), form=form,
                action_form=ActionForm(), tz=current_user.timezone or "UTC", status_labels=waitlist.STATUS_LABELS,
                book_url=_book_url(session))


def _my_booking(session):
    return waitlist.seat_of(session, g.membership.id)


def _book_url(session) -> str:
    return url_for("booking.book", offering_id=session.offering_id,
                   start=session.starts_at.strftime("%Y-%m-%dT%H:%M:%SZ"))


@bp.get("/sessions/<session_id>/waitlist")
@role_required()
def waitlist_page(session_id: str):
    """A full group session: its seats, my place in its line (or the button to join), the line for staff."""
    return render(PAGE, "waitlist", **_page(load_session(session_id)))


@bp.post("/sessions/<session_id>/waitlist")
@role_required(ATHLETE, *STAFF)
@idempotent
def join_waitlist(session_id: str):
    """Join the line (for myself, or a scheduler for an athlete); a session with a free seat is booked instead."""
    session = load_session(session_id)
    form = WaitlistForm()
    _page(session, form)  # the athlete choices
    if not form.validate_on_submit():
        return render(PAGE, "waitlist", status=422, **_page(session, form))
    athlete = service.get_athlete(g.org, form.athlete.data or g.membership.id)
    if athlete is None:
        form.form_errors.append("Choose an athlete of this organization.")
        return render(PAGE, "waitlist", status=422, **_page(session, form))
    done = attempt(form, waitlist.join, session, athlete, g.membership)
    if not done:
        if done.status == 409 and "free seat" in done.error.message:
            flash("A seat is free in this session: book it here.", "success")
            return redirect_after_post(_book_url(session))
        return render(PAGE, "waitlist", status=done.status, **_page(session, form))
    db.session.commit()
    trigger("booking-changed")
    place = waitlist.ordinal(waitlist.place_of(done.value))
    who = "You are" if athlete.id == g.membership.id else f"{athlete.user.display_name} is"
    return swap_or_redirect(PAGE, "waitlist", url_for("booking.waitlist_page", session_id=session.id),
                            f"{who} {place} in line.", context=lambda: _page(session))


def _act(entry_id: str, action):
    """The viewer's place, the button's form checked, ``action(entry)`` done and committed: ``(entry, what it
    returned)``; a refusal is its 4xx page (nothing written)."""
    entry = load_entry(entry_id)
    require_action_form()
    done = attempt(None, action, entry)
    if not done:
        abort(done.status, done.error.message)
    db.session.commit()
    return entry, done.value


@bp.post("/waitlist/<entry_id>/leave")
@role_required()
@idempotent
def leave_waitlist(entry_id: str):
    """Leave the line (an offered seat is passed on to the next)."""
    entry, _ = _act(entry_id, lambda e: waitlist.leave(e, g.membership))
    session = load_session(entry.session_id)
    trigger("booking-changed")
    return swap_or_redirect(PAGE, "waitlist", url_for("booking.waitlist_page", session_id=session.id),
                            "You left the waitlist." if entry.athlete_membership_id == g.membership.id
                            else "Taken off the waitlist.", context=lambda: _page(session))


@bp.post("/waitlist/<entry_id>/accept")
@role_required()
@idempotent
def accept_offer(entry_id: str):
    """Take the seat offered: booked (or requested) at once; a paid session goes on to its checkout."""
    _, (booking, checkout_url) = _act(entry_id, _take)
    if checkout_url:
        return redirect_after_post(checkout_url)
    trigger("booking-changed")
    flash("The seat is yours: booked." if booking.status == "confirmed"
          else "The seat is yours: requested, the coach confirms it.", "success")
    return redirect_after_post(url_for("booking.detail", booking_id=booking.id))


def _take(entry):
    """``(booking, checkout URL or None)``: a free session's seat is settled; a paid one's goes to checkout."""
    offering = service.get_offering(g.org, entry.offering_id)
    if not offering.price_minor:
        return waitlist.accept(entry, g.membership), None
    session = waitlist.release_for_checkout(entry, g.membership)
    athlete = service.get_athlete(g.org, entry.athlete_membership_id)
    booking, _payment, url = checkout.start_session_checkout(offering, athlete, session.starts_at, "", g.membership)
    waitlist.mark_booked(entry, booking)
    return booking, url
