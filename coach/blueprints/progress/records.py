"""Session record pages: a booking's record (or the form to start one), the editor of a draft (levels as radio
buttons per skill, by area; notes and homework in Markdown; media and moments of videos), sign-off, amendments
and the versions of a record. Everything works without JavaScript (forms post and 303).

The booking's own coach or an admin writes; every coach and admin reads; the athlete reads their signed records
(a draft, another athlete's record or another organization's id is a 404). The booking page links here through
the ``progress_record_link(booking)`` template global.
"""
from __future__ import annotations

from flask import abort, flash, g, request, url_for

from coach.blueprints.forms import require_action_form
from coach.blueprints.progress import bp
from coach.booking import service as booking_service
from coach.extensions import db
from coach.htmx import redirect_after_post, render
from coach.orgs.models import ADMIN, ATHLETE, COACH
from coach.platform.idempotency import idempotent
from coach.progress import frameworks, records
from coach.progress.access import ProgressError, is_staff
from coach.progress.models import SIGNED
from coach.tenancy import role_required

ROLES = (ADMIN, COACH, ATHLETE)
RECORD, START, VERSIONS = "progress/record.html", "progress/record_start.html", "progress/record_versions.html"


# --- loaders -------------------------------------------------------------------------------------------

def load_booking(booking_id: str):
    """A booking the viewer may see records of: any of the organization's for staff, their own for an athlete."""
    booking = booking_service.get_booking(g.org, booking_id)
    if booking is None or (not is_staff(g.membership) and booking.athlete_membership_id != g.membership.id):
        abort(404)
    return booking


def load_record(record_id: str):
    record = records.get_record(g.org.id, record_id)
    if record is None or not records.may_view(g.membership, record):
        abort(404)
    return record


def _record_page(record, booking=None, status: int = 200, error: str | None = None, posted: dict | None = None):
    p = records.page(record, booking)
    me = g.membership
    editable = record.status != SIGNED and p.booking is not None and records.may_write(me, p.booking)
    amendable = (record.status == SIGNED and p.booking is not None and records.may_write(me, p.booking)
                 and p.draft is None and p.current is not None and p.current.id == record.id)
    return render(RECORD, status=status, org=g.org, p=p, record=record, editable=editable, amendable=amendable,
                  error=error, posted=posted,
                  framework_choices=frameworks.frameworks_of(g.org.id) if editable else [],
                  media_choices=records.media_choices(record, me) if editable else [])


# --- a booking's record --------------------------------------------------------------------------------

@bp.get("/records/booking/<booking_id>")
@role_required(*ROLES)
def record_for_booking(booking_id: str):
    """The booking's record: the draft being written (its writer), else the current signed version; for staff
    who may write and nothing is written yet, the form to start one."""
    booking = load_booking(booking_id)
    me = g.membership
    if is_staff(me):
        draft = records.draft_for(booking)
        current = records.for_booking(booking)
        if draft is not None and (records.may_write(me, booking) or current is None):
            return _record_page(draft, booking)
        if current is not None:
            return _record_page(current, booking)
        return render(START, org=g.org, booking=booking, ended=records.has_ended(booking),
                      may_write=records.may_write(me, booking), framework_choices=frameworks.frameworks_of(g.org.id))
    current = records.for_booking(booking)
    if current is None:
        abort(404, "Your coach has not signed off a record of this session yet.")
    return _record_page(current, booking)


@bp.post("/records/booking/<booking_id>")
@role_required(ADMIN, COACH)
@idempotent
def start_record(booking_id: str):
    """Start the booking's record (a draft) with the framework chosen."""
    booking = load_booking(booking_id)
    require_action_form()
    record = records.start(booking, g.membership, request.form.get("framework_id") or None)
    db.session.commit()
    return redirect_after_post(url_for("progress.record", record_id=record.id))


@bp.get("/records/booking/<booking_id>/versions")
@role_required(*ROLES)
def record_versions(booking_id: str):
    """Every version of the booking's record (athletes: the signed ones), each with who, when and why."""
    booking = load_booking(booking_id)
    shown = [v for v in records.versions(g.org.id, booking.id) if records.may_view(g.membership, v)]
    if not shown:
        abort(404, "This session has no record yet.")
    ids = {i for v in shown for i in (v.coach_membership_id, v.signed_by_membership_id) if i}
    names = records.author_names(g.org.id, ids)
    current_id = next((v.id for v in shown if v.status == SIGNED), None)
    return render(VERSIONS, org=g.org, booking=booking, versions=shown, names=names, current_id=current_id)


# --- a record ------------------------------------------------------------------------------------------

@bp.get("/records/<record_id>")
@role_required(*ROLES)
def record(record_id: str):
    """A record: the editor for a draft its writer may change, the read-only record otherwise."""
    return _record_page(load_record(record_id))


def _levels_from_form() -> tuple[dict, dict]:
    levels = {key[6:]: value for key, value in request.form.items() if key.startswith("level-")}
    notes = {key[5:]: value for key, value in request.form.items() if key.startswith("note-")}
    return levels, notes


@bp.post("/records/<record_id>")
@role_required(ADMIN, COACH)
@idempotent
def save_record(record_id: str):
    """Save the draft (``action=save``), change its framework (``action=framework``) or save and sign it off
    (``action=sign``)."""
    record = load_record(record_id)
    require_action_form()
    levels, notes = _levels_from_form()
    action = request.form.get("action", "save")
    framework_id = request.form.get("framework_id") or None
    try:
        if action == "framework":
            keep = framework_id == str(record.framework_id)
            records.save_draft(record, g.membership, framework_id=framework_id,
                               levels=levels if keep else {}, skill_notes=notes if keep else {},
                               notes_md=request.form.get("notes_md", ""),
                               homework_md=request.form.get("homework_md", ""))
        else:
            records.save_draft(record, g.membership, framework_id=framework_id, levels=levels, skill_notes=notes,
                               notes_md=request.form.get("notes_md", ""),
                               homework_md=request.form.get("homework_md", ""))
            if action == "sign":
                records.sign(record, g.membership)
    except ProgressError as exc:
        db.session.rollback()
        record = load_record(record_id)
        posted = {"levels": levels, "notes": notes, "notes_md": request.form.get("notes_md", ""),
                  "homework_md": request.form.get("homework_md", "")}
        return _record_page(record, status=exc.status, error=str(exc),
                            posted=posted if record.status != SIGNED else None)
    db.session.commit()
    if action == "sign":
        flash(f"Version {record.version} is signed off: the athlete can read it now.", "success")
    elif action == "framework":
        flash("Framework changed.", "success")
    else:
        flash("Draft saved.", "success")
    return redirect_after_post(url_for("progress.record", record_id=record.id))


@bp.post("/records/<record_id>/sign")
@role_required(ADMIN, COACH)
@idempotent
def sign_record(record_id: str):
    """Sign the draft off as it was saved."""
    record = load_record(record_id)
    require_action_form()
    records.sign(record, g.membership)
    db.session.commit()
    flash(f"Version {record.version} is signed off: the athlete can read it now.", "success")
    return redirect_after_post(url_for("progress.record", record_id=record.id))


@bp.post("/records/<record_id>/amend")
@role_required(ADMIN, COACH)
@idempotent
def amend_record(record_id: str):
    """Start the next version of a signed record, with the reason."""
    record = load_record(record_id)
    require_action_form()
    try:
        new = records.amend(record, g.membership, request.form.get("reason", ""))
    except ProgressError as exc:
        db.session.rollback()
        return _record_page(load_record(record_id), status=exc.status, error=str(exc))
    db.session.commit()
    flash(f"Version {new.version} is a draft: change what needs changing and sign it off.", "success")
    return redirect_after_post(url_for("progress.record", record_id=new.id))


@bp.post("/records/<record_id>/discard")
@role_required(ADMIN, COACH)
@idempotent
def discard_record(record_id: str):
    """Throw the draft away."""
    record = load_record(record_id)
    require_action_form()
    booking_id = record.booking_id
    records.discard(record, g.membership)
    db.session.commit()
    flash("Draft discarded.", "success")
    return redirect_after_post(url_for("progress.record_for_booking", booking_id=booking_id))


@bp.post("/records/<record_id>/media")
@role_required(ADMIN, COACH)
@idempotent
def add_record_media(record_id: str):
    """Attach a media item, or a moment of a video, to the draft."""
    record = load_record(record_id)
    require_action_form()
    try:
        records.add_media(record, g.membership, request.form.get("media_id"), request.form.get("moment"),
                          request.form.get("label", ""))
    except ProgressError as exc:
        db.session.rollback()
        return _record_page(load_record(record_id), status=exc.status, error=str(exc))
    db.session.commit()
    flash("Attached.", "success")
    return redirect_after_post(url_for("progress.record", record_id=record.id) + "#media")


@bp.post("/records/<record_id>/media/<link_id>/delete")
@role_required(ADMIN, COACH)
@idempotent
def remove_record_media(record_id: str, link_id: str):
    record = load_record(record_id)
    require_action_form()
    records.remove_media(record, g.membership, link_id)
    db.session.commit()
    flash("Removed.", "success")
    return redirect_after_post(url_for("progress.record", record_id=record.id) + "#media")


# --- the booking page's link ---------------------------------------------------------------------------

def progress_record_link(booking) -> str | None:
    """Where the booking page's "Session record" link goes, or ``None`` for no link: for an ended session,
    staff always (write or read), the athlete once a record is signed (one statement, only for ended ones)."""
    me = g.get("membership")
    if me is None or not records.has_ended(booking):
        return None
    if is_staff(me):
        return url_for("progress.record_for_booking", booking_id=booking.id)
    if me.id == booking.athlete_membership_id and records.for_booking(booking) is not None:
        return url_for("progress.record_for_booking", booking_id=booking.id)
    return None


bp.add_app_template_global(progress_record_link, "progress_record_link")
