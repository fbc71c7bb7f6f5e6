"""The room's side panel: the booking's conversation (the direct one between the coach and that booking's athlete)
and the coach's notes on the session (the draft of its progress record).

The panel is part of the room page (``panel_context`` gives the page what ``rooms/_panel.html`` needs) and a
fragment of its own: in a group session the coach switches athlete with a tab that htmx swaps in place (a page
load would end the call); without JavaScript the same tab is a link to the room page. The conversation is the
chat page's markup, so the page's chat socket (``static/js/chat.js``) follows it and sends its composer; without
JavaScript the composer posts to ``chat.send``, which comes back here (``next``). The notes save as the coach types
(htmx) or with the Save button (a plain post, 303 back to the room). Athletes never see the notes.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from flask import abort, flash, g, redirect, request, url_for
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from wtforms import TextAreaField
from wtforms.validators import Length

from coach.blueprints.forms import BaseForm
from coach.blueprints.rooms import bp
from coach.booking import service as booking_service
from coach.booking.models import Booking
from coach.chat import render as messages_html
from coach.chat import service as chat
from coach.chat.models import Conversation
from coach.extensions import db
from coach.htmx import fragment_block, redirect_after_post, render, swap_or_redirect
from coach.ids import parse_uuid
from coach.orgs.models import Membership
from coach.progress import records
from coach.progress.access import ProgressError
from coach.progress.models import DRAFT, SIGNED, SessionRecord
from coach.rooms import access as room_access
from coach.rooms import service as rooms
from coach.tenancy import role_required

PANEL = "rooms/_panel.html"
# The panel shows the newest messages only; "Open in chat" has the rest (and the attachments' composer).
PANEL_MESSAGES = 30
EXPIRED = "This form was incomplete or expired. Reload the page and try again."


class NotesForm(BaseForm):
    notes = TextAreaField("Notes", validators=[Length(max=records.NOTES_MAX, message=(
        f"The notes have at most {records.NOTES_MAX:,} characters."))])


@dataclass
class Tab:
    booking: Booking
    name: str
    url: str  # the room page with this athlete's panel (no JavaScript)
    fragment_url: str  # the panel alone (htmx swaps it in)
    current: bool
    # The athlete's conversation with the coach (None before its first message) and what the coach has not read
    # in it: the tab's badge, which the chat socket's unread pushes (`#unread-<conversation id>`) keep current.
    conversation_id: uuid.UUID | None = None
    unread: int = 0


@dataclass
class Notes:
    """The coach's notes on one athlete's session: the draft being written, else the signed record (read-only)."""

    booking: Booking
    draft: SessionRecord | None
    signed: SessionRecord | None
    form: NotesForm
    full_url: str
    action: str

    @property
    def editable(self) -> bool:
        return self.draft is not None or self.signed is None


@dataclass
class Panel:
    booking: Booking
    other: Membership
    conversation: Conversation
    messages: list
    articles: str
    chat_url: str
    back: str  # where the no-JavaScript composer and notes come back to
    open: str = "chat"  # the section shown open: "chat", or "notes" (back from saving them without JavaScript)
    client_id: str = field(default_factory=lambda: str(uuid.uuid4()))  # the composer's first message (chat.js)
    tabs: list[Tab] = field(default_factory=list)
    notes: Notes | None = None

    @property
    def older(self) -> bool:
        return bool(self.messages) and self.messages[0].seq > 1


# --- loaders ---------------------------------------------------------------------------------------

def load_access(session_id: str) -> room_access.RoomAccess:
    """The member's access to the room; 404 for a session this organization does not have."""
    access = room_access.check(g.org.id, session_id, g.membership.id)
    if access is None:
        abort(404)
    return access


def load_notes_booking(session_id: str, booking_id: str) -> tuple[room_access.RoomAccess, Booking]:
    """The booking whose notes the coach of the session writes from the room (while it is open or after)."""
    access = load_access(session_id)
    if not access.is_coach or access.state not in (room_access.OPEN, room_access.AFTER):
        abort(403, "Only the session's coach writes notes here, while the room is open or after it.")
    booking = booking_service.get_booking(g.org, booking_id)
    if booking is None or booking.session_id != access.session_id or booking.status not in room_access.IN_ROOM_STATUSES:
        abort(404)
    return access, booking


# --- the panel's context -----------------------------------------------------------------------------

def _shown(access, bookings: list[Booking]) -> Booking | None:
    """The booking the panel is about: the athlete's own; for the coach the one ``?with=`` names, else the first."""
    me = g.membership
    if not access.is_coach:
        return next((b for b in bookings if b.athlete_membership_id == me.id), None)
    wanted = parse_uuid(request.args.get("with"))
    return next((b for b in bookings if b.id == wanted), bookings[0] if bookings else None)


def panel_context(access, bookings: list[Booking]) -> dict:
    """What ``rooms/_panel.html`` needs, for the room page and the panel's fragment: ``panel`` (None when the
    member has nothing to show, an outsider's view).

    The first time a coach and an athlete meet here their conversation is made and committed (the composer
    posts to it and the socket follows it): the caller's loaded rows are then read again when used.
    """
    if access.is_coach and len(bookings) > 1:  # the tabs, by name (bookings made together have no order)
        bookings = sorted(bookings, key=lambda b: (b.athlete.user.display_name.casefold(), str(b.id)))
    booking = _shown(access, bookings) if access.may_enter else None
    if booking is None:
        return {"panel": None}
    me = g.membership
    other = booking.athlete if access.is_coach else booking.coach
    if other is None or other.id == me.id:  # nobody to write to (a coach booked on their own session)
        return {"panel": None}
    conversation = chat.direct_with(g.org, me, other)
    if not conversation.last_seq:
        db.session.commit()  # find-or-create: made now (or empty), kept for the composer and the socket
    rows = chat.history_rows(conversation, limit=PANEL_MESSAGES)
    chat_url = url_for("chat.conversation", conversation_id=conversation.id)
    articles = messages_html.articles(
        rows, base=chat_url, mine_id=me.id, tz=current_user.timezone or "UTC", hour_cycle=current_user.hour_cycle or 24,
        csrf=generate_csrf(),
        attachments=chat.attachments_of(g.org.id, [r.id for r in rows if r.has_media]))
    back = url_for("rooms.room", session_id=access.session_id, **({"with": booking.id} if access.is_coach else {}))
    panel = Panel(booking=booking, other=other, conversation=conversation, messages=rows, articles=articles,
                  chat_url=chat_url, back=back, open="notes" if request.args.get("panel") == "notes" else "chat")
    if access.is_coach:
        if len(bookings) > 1:
            panel.tabs = _tabs(access, bookings, booking)
        panel.notes = _notes(access, booking)
    return {"panel": panel}


def _tabs(access, bookings: list[Booking], shown: Booking) -> list[Tab]:
    """A tab per athlete of a group session, each with its conversation's unread count (one statement)."""
    unread = chat.direct_unread(g.org, g.membership, [b.athlete_membership_id for b in bookings])
    tabs = []
    for b in bookings:
        conversation_id, count = unread.get(b.athlete_membership_id, (None, 0))
        tabs.append(Tab(booking=b, name=b.athlete.user.display_name,
                        url=url_for("rooms.room", session_id=access.session_id, **{"with": b.id}) + "#room-panel",
                        fragment_url=url_for("rooms.panel", session_id=access.session_id, **{"with": b.id}),
                        current=b.id == shown.id, conversation_id=conversation_id, unread=count))
    return tabs


def _notes(access, booking: Booking, form: NotesForm | None = None) -> Notes:
    """The booking's draft and signed record (one statement: its versions, newest first)."""
    versions = records.versions(booking.tenant_id, booking.id)
    draft = next((v for v in versions if v.status == DRAFT), None)
    signed = next((v for v in versions if v.status == SIGNED), None)
    if form is None:
        form = NotesForm(formdata=None, notes=draft.notes_md if draft else "")
    return Notes(booking=booking, draft=draft, signed=signed, form=form,
                 full_url=url_for("progress.record_for_booking", booking_id=booking.id),
                 action=url_for("rooms.notes", session_id=access.session_id, booking_id=booking.id))


# --- routes ------------------------------------------------------------------------------------------

@bp.get("/<session_id>/room/panel")
@role_required()
def panel(session_id: str):
    """The panel alone (a group session's athlete tab); without htmx, the room page showing it."""
    access = load_access(session_id)
    if not access.may_enter:
        abort(403, "This room is for the session's coach and athletes, while it is open.")
    if fragment_block(PANEL, "panel") is None:
        return redirect(url_for("rooms.room", session_id=session_id, **{"with": request.args.get("with")})
                        + "#room-panel")
    page = rooms.room_page(access)
    return render(PANEL, "panel", **panel_context(access, page.bookings))


@bp.post("/<session_id>/room/notes/<booking_id>")
@role_required()
def notes(session_id: str, booking_id: str):
    """Save the coach's notes on one athlete's session: as they type (htmx answers with the "Saved" line) or with
    the Save button (303 back to the room).

    No idempotency key: saving the same text twice leaves the same notes, and an autosave per pause in typing
    must not need a fresh key each time.
    """
    access, booking = load_notes_booking(session_id, booking_id)
    form = NotesForm()
    back = url_for("rooms.room", session_id=access.session_id, panel="notes", **{"with": booking.id}) + "#room-notes"
    error, status = None, 422
    if not form.validate_on_submit():
        error = form.notes.errors[0] if form.notes.errors else EXPIRED
    else:
        try:
            record = records.draft_for(booking) or records.start(booking, g.membership, live=True)
            records.save_notes(record, g.membership, form.notes.data or "")
        except ProgressError as exc:
            db.session.rollback()
            error, status = str(exc), exc.status
    if error is None:
        db.session.commit()
        return swap_or_redirect(PANEL, "notes_status", back, "Notes saved.",
                                context=lambda: {"notes": _notes(access, booking, form)})
    if fragment_block(PANEL, "notes_status") is None:
        flash(error, "error")  # the room page shows it; the signed record or the limit is why
        return redirect_after_post(back)
    return render(PANEL, "notes_status", status=status, notes=_notes(access, booking, form), error=error)
