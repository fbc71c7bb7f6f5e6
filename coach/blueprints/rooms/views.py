"""The room page of a session: the call while it is open, when it opens before, what happened after; ending it.

The page is the only one that lets the browser use the camera, the microphone and screen capture (its own
``Permissions-Policy``). A permissions policy belongs to the document, so a boosted click into the room (an
htmx swap of the body of a page that forbade the camera) is answered with a full page load instead.
"""
from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from babel.dates import format_timedelta
from flask import abort, flash, g, make_response, redirect, url_for

from coach import clock
from coach.blueprints.forms import require_action_form
from coach.blueprints.rooms import bp
from coach.blueprints.rooms.panel import panel_context
from coach.blueprints.rooms.recording import recording_context
from coach.booking import service as booking_service
from coach.extensions import db, htmx_ext
from coach.htmx import redirect_after_post, render, wants_fragment
from coach.platform.idempotency import idempotent
from coach.rooms import access as room_access
from coach.rooms import service
from coach.tenancy import role_required

TEMPLATE = "rooms/room.html"
# The room page may use the camera, the microphone and screen capture; nothing else the app forbids.
ROOM_PERMISSIONS = "camera=(self), microphone=(self), display-capture=(self), geolocation=(), payment=()"
NOT_A_PARTICIPANT = "This room is for the session's coach and athletes."


def load_access(session_id: str) -> room_access.RoomAccess:
    """My access to the room of ``session_id``: 404 for no such session here, 403 for a member who is not in it
    (a cancelled session still shows its coach and booked athletes that it was cancelled)."""
    access = room_access.check(g.org.id, session_id, g.membership.id)
    if access is None:
        abort(404)
    if access.role is None and not (access.state == room_access.CANCELLED
                                    and service.had_place(access, g.membership.id)):
        abort(403, NOT_A_PARTICIPANT)
    return access


def opens_in(moment: datetime, now: datetime) -> str:
    """"in 12 minutes", "in 3 hours", "in 1 day" (the room's wait, in words)."""
    return format_timedelta(moment - now, add_direction=True, threshold=1.5, locale="en")


def room_context(access: room_access.RoomAccess) -> dict:
    """Everything the page and its partials (call, recording, panel) render from."""
    page = service.room_page(access)
    now = clock.now()
    context = dict(org=g.org, access=access, session=page.session, offering=page.offering, bookings=page.bookings,
                   participants=page.participants, me=g.membership, is_coach=access.is_coach, now=now,
                   opens_in=opens_in(access.opens_at, now), booking=service.my_booking(page, g.membership),
                   socket_url=socket_path(access))
    if access.state == room_access.AFTER:
        context.update(attendance=service.attendance_summary(g.org.id, access.session_id, now),
                       recordings=service.recordings(g.org.id, access.session_id))
    # The partials' own context (slices D and E): one call each, added by their owners.
    context.update(panel_context(access, page.bookings))
    context.update(recording_context(access))
    return context


def socket_path(access: room_access.RoomAccess) -> str:
    """The room socket's path (a websocket rule's URL comes out absolute, ``ws://host/...``: the page's script
    makes it ws: or wss: from the page's own address, which a proxy in front cannot get wrong)."""
    return urlsplit(url_for("rooms.socket", session_id=access.session_id)).path


def booking_room(booking) -> dict | None:
    """The booking page's line about the session's room, for a viewer who is in it: "Join the room" while open,
    when it opens before, who attended and for how long after (no statement for a booking that is not in a room;
    one or two otherwise). ``None``: no line."""
    if booking.status not in room_access.IN_ROOM_STATUSES or g.get("membership") is None:
        return None
    access = room_access.check(booking.tenant_id, booking.session_id, g.membership.id)
    if access is None or access.role is None or access.state == room_access.CANCELLED:
        return None
    line = dict(access=access, url=url_for("rooms.room", session_id=booking.session_id))
    if access.state == room_access.AFTER:
        summary = service.attendance_summary(booking.tenant_id, booking.session_id)
        if not summary:
            return None  # nobody used the room (an in-person session, one from before rooms): nothing to say
        line["attended"] = [(member.user.display_name, summary.get(member.id))
                            for member in (booking.coach, booking.athlete)]
    return line


bp.add_app_template_global(booking_room, "booking_room")


@bp.get("/<session_id>/room")
@role_required()
def room(session_id: str):
    """The session's room: the call while open, when it opens before, attendance and recordings after."""
    if htmx_ext and htmx_ext.boosted:
        return _full_load(url_for("rooms.room", session_id=session_id))
    access = load_access(session_id)
    if wants_fragment() and access.state != room_access.BEFORE:
        return _full_load(url_for("rooms.room", session_id=session_id))  # the wait is over: the page it became
    response = render(TEMPLATE, "room_state", **room_context(access))
    response.headers["Permissions-Policy"] = ROOM_PERMISSIONS
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/booking/<booking_id>/room", endpoint="booking_room")
@role_required()
def booking_room_redirect(booking_id: str):
    """The room of a booking's session (the sessions list's rows know their booking, not its session)."""
    booking = booking_service.get_booking(g.org, booking_id)
    if booking is None or not booking_service.may_view(g.membership, booking):
        abort(404)
    return redirect(url_for("rooms.room", session_id=booking.session_id), 303)


def _full_load(location: str):
    """Make htmx load ``location`` as a new document (its own permissions policy, the call's scripts)."""
    response = make_response("", 200)
    response.headers["HX-Redirect"] = location
    return response


@bp.post("/<session_id>/room/end")
@role_required()
@idempotent
def end(session_id: str):
    """The coach ends the room for everyone; back to the room page, which now tells what happened."""
    access = load_access(session_id)
    require_action_form()
    if service.end_room(access, g.membership):
        flash("The room has ended for everyone.", "success")
    db.session.commit()
    return redirect_after_post(url_for("rooms.room", session_id=access.session_id))
