"""The room's recording: consent (a form that works without JavaScript), and the coach's recorder's JSON
exchange (``static/js/recorder.js``): start, a signed URL for each part in order, the part stored, a sign of
life, stop. JSON refusals are ``{"error": message}`` with their status (409 out of order or stopped, 413 no room),
as ``static/js/media.js`` reads them."""
from __future__ import annotations

from flask import abort, flash, g, jsonify, render_template, request, url_for

from coach.blueprints.forms import require_action_form
from coach.blueprints.json_answers import answers_json
from coach.blueprints.rooms import bp
from coach.errors import DomainError
from coach.extensions import db
from coach.htmx import redirect_after_post, wants_fragment
from coach.platform.idempotency import idempotent
from coach.rooms import recording as rec
from coach.media import service as media
from coach.rooms.access import IN_ROOM_STATUSES, RoomAccess
from coach.tenancy import role_required

PARTIAL = "rooms/_recording.html"


def recording_context(access: RoomAccess) -> dict:
    """The recording panel's context for the room page (``room.html`` includes ``_recording.html``)."""
    if not access.may_enter:
        return {"recording_panel": None}
    panel = rec.panel(access, g.membership)
    return {"recording_panel": panel, "recording_urls": _urls(access, panel.running)}


def booking_recordings(booking) -> list[rec.RecordingView]:
    """The booking page's links to its session's recordings the viewer may open (none for a booking that never
    had a room; one statement, then media's view rule per recording)."""
    if booking.status not in IN_ROOM_STATUSES or g.get("membership") is None:
        return []
    return [view for view in rec.recordings_for(booking.tenant_id, booking.session_id)
            if media.can_view(view.media, g.membership)]


bp.add_app_template_global(booking_recordings, "booking_recordings")


def _urls(access: RoomAccess, recording=None) -> dict:
    sid = access.session_id
    urls = {"consent": url_for("rooms.consent", session_id=sid), "panel": url_for("rooms.recording_panel",
                                                                                   session_id=sid),
            "start": url_for("rooms.start_recording", session_id=sid)}
    if recording is not None:
        urls.update(_recording_urls(recording))
    return urls


def _recording_urls(recording) -> dict:
    sid, rid = recording.session_id, recording.id
    return {"parts_url": url_for("rooms.recording_part", session_id=sid, recording_id=rid),
            "alive_url": url_for("rooms.recording_alive", session_id=sid, recording_id=rid),
            "stop_url": url_for("rooms.stop_recording", session_id=sid, recording_id=rid),
            "page_url": url_for("media.item", media_id=recording.media_id)}


def _partial(access: RoomAccess) -> str:
    return render_template(PARTIAL, access=access, is_coach=access.is_coach, me=g.membership,
                           **recording_context(access))


def _access(session_id: str) -> RoomAccess:
    access = rec.access_for(g.org.id, session_id, g.membership)
    if access.role is None:
        abort(403, "This room is for the session's coach and athletes.")
    return access


def _recording(access: RoomAccess, recording_id: str):
    found = rec.get(g.org.id, access.session_id, recording_id)
    if found is None:
        abort(404)
    return found


def _json() -> dict:
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


@bp.get("/<session_id>/room/recording")
@role_required()
def recording_panel(session_id: str):
    """The recording panel alone (the room's pages fetch it again when someone's consent or the recording
    changes)."""
    return _partial(_access(session_id))


@bp.post("/<session_id>/room/consent")
@role_required()
@idempotent
def consent(session_id: str):
    """Give (``given=1``) or withdraw (``given=0``) my agreement to be recorded; withdrawing stops a recording."""
    access = _access(session_id)
    require_action_form()
    given = request.form.get("given") == "1"
    try:
        rec.set_consent(access, g.membership, given)
    except DomainError as exc:
        db.session.rollback()
        if wants_fragment():
            return jsonify(error=str(exc)), exc.status
        flash(str(exc), "error")
        return redirect_after_post(url_for("rooms.room", session_id=access.session_id))
    db.session.commit()
    if wants_fragment():
        return _partial(_access(session_id))
    flash("You agreed to be recorded." if given else "You withdrew your agreement to be recorded.", "success")
    return redirect_after_post(url_for("rooms.room", session_id=access.session_id))


@bp.post("/<session_id>/room/recording")
@role_required()
@idempotent
@answers_json
def start_recording(session_id: str):
    """JSON: the coach starts recording → the recording, its media item and where to send the parts."""
    access = _access(session_id)
    started = rec.start(access, g.membership)
    db.session.commit()
    return jsonify({"recording_id": str(started.id), "media_id": str(started.media_id),
                    # The smallest part storage takes (S3: 5 MiB): a crashed browser loses at most what it held.
                    "part_bytes": media.open_part_floor(),
                    "started_at": started.started_at.isoformat(), **_recording_urls(started)}), 201


@bp.post("/<session_id>/room/recording/<recording_id>/parts")
@role_required()
@answers_json
def recording_part(session_id: str, recording_id: str):
    """JSON ``{number, size}`` → a signed URL for that part (the next one in order, or the same one again).
    Once storage has it, the recorder posts to ``<this URL>/<number>/done``."""
    access = _access(session_id)
    data = _json()
    signed = rec.part_url(access, _recording(access, recording_id), data.get("number"), data.get("size"))
    db.session.commit()
    return jsonify(signed)


@bp.post("/<session_id>/room/recording/<recording_id>/parts/<int:number>/done")
@role_required()
@answers_json
def recording_part_done(session_id: str, recording_id: str, number: int):
    """JSON: part ``number`` is stored (storage is asked); the recording's counts move."""
    access = _access(session_id)
    done = rec.part_stored(access, _recording(access, recording_id), number)
    db.session.commit()
    return jsonify({"parts_received": done.parts_received, "bytes_received": done.bytes_received})


@bp.post("/<session_id>/room/recording/<recording_id>/alive")
@role_required()
@answers_json
def recording_alive(session_id: str, recording_id: str):
    """JSON: the recorder is still going; answers the recording's status (stopped by someone else: stop too)."""
    access = _access(session_id)
    found = rec.alive(access, _recording(access, recording_id))
    db.session.commit()
    return jsonify({"status": found.status})


@bp.post("/<session_id>/room/recording/<recording_id>/stop")
@role_required()
@idempotent
@answers_json
def stop_recording(session_id: str, recording_id: str):
    """JSON: the coach stops; the item goes to processing and opens on its review page."""
    access = _access(session_id)
    stopped = rec.stop(access, _recording(access, recording_id), g.membership)
    db.session.commit()
    body = {"status": stopped.status, "parts_received": stopped.parts_received,
            "page_url": url_for("media.item", media_id=stopped.media_id)}
    if stopped.status == "failed":
        return jsonify(body | {"error": stopped.failure_reason}), 422
    return jsonify(body)
