"""Recording a session's room into the media library: consent, start, the parts as they come, stop.

- Consent is per participant and per room (``room_consents``): given, or withdrawn. The coach may start only
  when everyone in the room now (an open stay seen in the last minute, and the coach) has agreed.
- The coach's browser records the call and uploads it while it goes on, part by part, in order, into a media
  item (an open-ended multipart upload, :func:`coach.media.service.start_open_upload`): a crash loses at most
  the part being buffered. Stop completes the upload with the parts as they came and hands the item to the
  media worker like any upload.
- Withdrawing consent while a recording runs STOPS it (the server finishes it with the parts already stored,
  all recorded while everyone agreed): a browser asked to leave someone out could keep them in the mix (their
  voice through another speaker, a shared screen), so dropping their streams would promise what we cannot check.
- A recording whose browser went silent (no part, no sign of life for :data:`STALE_AFTER`) is finished by a
  sweep with what arrived; the room's end finishes it too (a consumer of ``room.ended``).
- Retention: the finished item is due for deletion after the organization's ``recording_retention_days``
  (none when unset), unless someone keeps it (:func:`coach.media.service.keep`).
- Who sees a recording: staff (the media audience ``staff``), and the session's athletes through a media view
  rule registered here.

Plain functions; the caller commits (relay messages go out after the commit).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import url_for
from sqlalchemy import and_, exists, or_, select, text

from coach import clock
from coach.booking.models import Booking, CoachingSession
from coach.errors import DomainError, NotAllowed
from coach.extensions import db
from coach.ids import parse_uuid
from coach.media import service as media
from coach.media.models import MediaItem
from coach.orgs.models import Membership, Organization
from coach.rooms import relay
from coach.rooms.access import BEFORE, IN_ROOM_STATUSES, OPEN, RoomAccess
from coach.rooms.access import check as check_access
from coach.rooms.models import RoomAttendance, RoomConsent, RoomRecording

RECORDING = "recording"
PRESENT_WITHIN = timedelta(minutes=1)  # a stay seen this recently is someone in the room now
STALE_AFTER = timedelta(minutes=2)  # a recording with no part (nor sign of life) for this long is finished
CONTENT_TYPE = "video/webm"


class RecordingError(DomainError):
    """A recording request that cannot be carried out now; the message is safe to show (409)."""

    status = 409


class NotFound(DomainError):
    status = 404


# --- who is in the room, who agreed -------------------------------------------------------------------

def participants(tenant_id: uuid.UUID, session_id: uuid.UUID) -> list[Membership]:
    """The session's coach, then its athletes in the room (bookings confirmed, under way or just ended)."""
    session = db.session.get(CoachingSession, session_id)
    if session is None:
        return []
    athletes = list(db.session.scalars(
        select(Membership).join(Booking, and_(Booking.tenant_id == Membership.tenant_id,
                                              Booking.athlete_membership_id == Membership.id))
        .where(Booking.tenant_id == tenant_id, Booking.session_id == session_id,
               Booking.status.in_(IN_ROOM_STATUSES)).order_by(Booking.created_at, Booking.id)).unique())
    coach = db.session.get(Membership, session.coach_membership_id)
    return [coach, *(a for a in athletes if a.id != coach.id)]


def consenting(tenant_id: uuid.UUID, session_id: uuid.UUID) -> set[uuid.UUID]:
    """Who has agreed to be recorded in the room (and not taken it back)."""
    return set(db.session.scalars(select(RoomConsent.membership_id).where(
        RoomConsent.tenant_id == tenant_id, RoomConsent.session_id == session_id,
        RoomConsent.withdrawn_at.is_(None))))


def present(tenant_id: uuid.UUID, session_id: uuid.UUID, now: datetime | None = None) -> set[uuid.UUID]:
    """Members in the room now: an open stay whose page was seen within :data:`PRESENT_WITHIN`."""
    now = now or clock.now()
    return set(db.session.scalars(select(RoomAttendance.membership_id).where(
        RoomAttendance.tenant_id == tenant_id, RoomAttendance.session_id == session_id,
        RoomAttendance.left_at.is_(None), RoomAttendance.last_seen_at >= now - PRESENT_WITHIN)))


def running(tenant_id: uuid.UUID, session_id: uuid.UUID) -> RoomRecording | None:
    return db.session.scalar(select(RoomRecording).where(
        RoomRecording.tenant_id == tenant_id, RoomRecording.session_id == session_id,
        RoomRecording.status == RECORDING))


def _name(member: Membership | None) -> str:
    return member.user.display_name if member is not None else "Someone"


def _names(members: list[Membership]) -> str:
    names = [_name(m) for m in members]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def missing_consent(tenant_id: uuid.UUID, session_id: uuid.UUID, coach_id: uuid.UUID,
                    now: datetime | None = None) -> list[Membership]:
    """Who is in the room now (the coach always counts) and has not agreed, in the participants' order."""
    needed = present(tenant_id, session_id, now) | {coach_id}
    agreed = consenting(tenant_id, session_id)
    return [m for m in participants(tenant_id, session_id) if m.id in needed and m.id not in agreed]


def set_consent(access: RoomAccess, member: Membership, given: bool, now: datetime | None = None) -> RoomConsent:
    """Give or withdraw ``member``'s agreement to be recorded; every page in the room hears of it.

    Withdrawing while a recording runs stops it (see the module's notes).
    """
    if access.role is None:
        raise NotAllowed("Only the people in this session give or withdraw consent to record it.")
    if given and access.state not in (BEFORE, OPEN):
        raise RecordingError("This room is closed: there is nothing to record any more.")
    now = now or clock.now()
    row = db.session.scalar(select(RoomConsent).where(
        RoomConsent.tenant_id == member.tenant_id, RoomConsent.session_id == access.session_id,
        RoomConsent.membership_id == member.id).with_for_update())
    if row is None:
        row = RoomConsent(id=uuid.uuid4(), tenant_id=member.tenant_id, session_id=access.session_id,
                          membership_id=member.id, given_at=now, withdrawn_at=None if given else now)
        db.session.add(row)
    elif given and row.withdrawn_at is not None:
        row.given_at, row.withdrawn_at = now, None
    elif not given and row.withdrawn_at is None:
        row.withdrawn_at = now
    db.session.flush()
    relay.publish_after_commit(member.tenant_id, access.session_id, {
        "type": "consent", "member": str(member.id), "name": _name(member), "given": given})
    if not given:
        current = running(member.tenant_id, access.session_id)
        if current is not None:
            finish(current, now, reason="consent", by=_name(member))
    return row


# --- start, parts, stop -------------------------------------------------------------------------------

def _title(org: Organization, session: CoachingSession, people: list[Membership]) -> str:
    athletes = [m for m in people if m.id != session.coach_membership_id] or people
    when = session.starts_at.astimezone(ZoneInfo(org.timezone or "UTC"))
    stamp = f"{when.day} {when:%b %Y %H:%M}"
    names = _names(athletes)
    if len(names) > 150:
        names = names[:148].rstrip() + "…"
    return f"Session with {names} — {stamp}"


def start(access: RoomAccess, coach: Membership, now: datetime | None = None) -> RoomRecording:
    """Start recording the room into a new media item (``uploading``, origin ``recording``).

    :raises NotAllowed: not the session's coach.
    :raises RecordingError: the room is not open, someone in it has not agreed, or a recording runs already.
    :raises coach.media.service.QuotaExceeded: no room for even one part.
    """
    if not access.is_coach:
        raise NotAllowed("Only the session's coach starts a recording.")
    if access.state != OPEN:
        raise RecordingError("The room is not open: recording is possible only during the session.")
    now = now or clock.now()
    tenant_id = coach.tenant_id
    # One start at a time per room (the unique index would refuse the second anyway, with a less kind error).
    db.session.execute(text("SELECT pg_advisory_xact_lock(hashtext('room-recording'), hashtext(:sid))"),
                       {"sid": str(access.session_id)})
    if running(tenant_id, access.session_id) is not None:
        raise RecordingError("This session is already being recorded.")
    missing = missing_consent(tenant_id, access.session_id, access.coach_id, now)
    if missing:
        verb = "has" if len(missing) == 1 else "have"
        raise RecordingError(f"Everyone in the room must agree to be recorded first: {_names(missing)} {verb} not "
                             "agreed yet.")
    org = db.session.get(Organization, tenant_id)
    session = db.session.get(CoachingSession, access.session_id)
    when = session.starts_at.astimezone(ZoneInfo(org.timezone or "UTC"))
    item = media.start_open_upload(org, coach, f"session-{when:%Y-%m-%d-%H%M}.webm", CONTENT_TYPE,
                                   title=_title(org, session, participants(tenant_id, session.id)),
                                   audience="staff", origin="recording", now=now)
    recording = RoomRecording(id=uuid.uuid4(), tenant_id=tenant_id, session_id=session.id, media_id=item.id,
                              started_by_membership_id=coach.id, status=RECORDING, started_at=now,
                              parts_received=0, bytes_received=0)
    db.session.add(recording)
    db.session.flush()
    relay.publish_after_commit(tenant_id, session.id, {
        "type": "recording", "status": "started", "by": _name(coach), "media": str(item.id),
        "recording": str(recording.id), "started_at": now.isoformat()})
    return recording


def get(tenant_id: uuid.UUID, session_id: uuid.UUID, recording_id) -> RoomRecording | None:
    rid = parse_uuid(recording_id)
    if rid is None:
        return None
    return db.session.scalar(select(RoomRecording).where(
        RoomRecording.tenant_id == tenant_id, RoomRecording.session_id == session_id, RoomRecording.id == rid))


def _recording_item(recording: RoomRecording) -> MediaItem:
    return db.session.get(MediaItem, recording.media_id)


def _may_send(access: RoomAccess, recording: RoomRecording) -> None:
    if not access.is_coach:
        raise NotAllowed("Only the session's coach sends the recording.")
    if recording.status != RECORDING:
        raise RecordingError("The recording has stopped.")


def part_url(access: RoomAccess, recording: RoomRecording, number, size, now: datetime | None = None) -> dict:
    """A signed URL for the next part (see :func:`coach.media.service.open_part_url` for the rules)."""
    _may_send(access, recording)
    now = now or clock.now()
    signed = media.open_part_url(_recording_item(recording), number, size, now)
    recording.last_part_at = now
    db.session.flush()
    return signed


def part_stored(access: RoomAccess, recording: RoomRecording, number, now: datetime | None = None) -> RoomRecording:
    """The browser stored part ``number``: storage is asked, and the recording's counts move."""
    _may_send(access, recording)
    now = now or clock.now()
    item = media.confirm_open_part(_recording_item(recording), number, now)
    recording.parts_received = media.open_parts_stored(item)
    recording.bytes_received = item.size_bytes or 0
    recording.last_part_at = now
    db.session.flush()
    return recording


def alive(access: RoomAccess, recording: RoomRecording, now: datetime | None = None) -> RoomRecording:
    """The recorder is still going (a quiet screen fills a part slowly): the crash sweep leaves it alone."""
    if access.is_coach and recording.status == RECORDING:
        recording.last_part_at = now or clock.now()
        db.session.flush()
    return recording


def stop(access: RoomAccess, recording: RoomRecording, actor: Membership,
         now: datetime | None = None) -> RoomRecording:
    """The coach stops the recording: the upload is completed and handed to processing. Stopping twice is fine."""
    if not access.is_coach:
        raise NotAllowed("Only the session's coach stops the recording.")
    return finish(recording, now or clock.now(), reason="stopped", by=_name(actor))


def finish(recording: RoomRecording, now: datetime, reason: str, by: str | None = None) -> RoomRecording:
    """Finish a running recording with the parts stored (the coach's stop, a withdrawn consent, the room's end,
    a browser gone silent); the item goes to processing (nothing stored: it is deleted) and, once finished,
    is due for deletion after the organization's retention. Everyone in the room hears it stopped."""
    recording = db.session.scalars(select(RoomRecording).where(
        RoomRecording.tenant_id == recording.tenant_id, RoomRecording.id == recording.id)
        .with_for_update().execution_options(populate_existing=True)).one()
    if recording.status != RECORDING:
        return recording
    item = media.finish_open_upload(_recording_item(recording), now)
    recording.stopped_at = now
    recording.parts_received = media.open_parts_stored(item) if item.status != "deleting" else 0
    recording.bytes_received = (item.size_bytes or 0) if item.status != "deleting" else 0
    if item.status == "processing":
        recording.status = "finished"
        days = db.session.get(Organization, recording.tenant_id).recording_retention_days
        item.expires_at = now + timedelta(days=days) if days else None
    else:
        recording.status = "failed"
        recording.failure_reason = (item.failure_reason or "Nothing was recorded.")[:300]
    db.session.flush()
    relay.publish_after_commit(recording.tenant_id, recording.session_id, {
        "type": "recording", "status": "stopped", "by": by or "", "media": str(item.id),
        "recording": str(recording.id), "reason": reason, "saved": recording.status == "finished"})
    return recording


def finish_stale(tenant_id: uuid.UUID, now: datetime | None = None) -> int:
    """Recordings of this organization whose browser went silent: finished with what arrived."""
    now = now or clock.now()
    stale = list(db.session.scalars(select(RoomRecording).where(
        RoomRecording.tenant_id == tenant_id, RoomRecording.status.in_((RECORDING, "finishing")),
        or_(RoomRecording.last_part_at < now - STALE_AFTER,
            and_(RoomRecording.last_part_at.is_(None), RoomRecording.started_at < now - STALE_AFTER)))))
    for recording in stale:
        finish(recording, now, reason="silent")
    return len(stale)


def stale_tenants(now: datetime | None = None) -> list[uuid.UUID]:
    cutoff = (now or clock.now()) - STALE_AFTER
    return list(db.session.scalars(text("SELECT * FROM room_recordings_stale_tenants(:before)"), {"before": cutoff}))


def room_ended(tenant_id: uuid.UUID, session_id: uuid.UUID, by: str | None = None,
               now: datetime | None = None) -> RoomRecording | None:
    """The coach ended the room: a running recording is finished with what arrived."""
    current = running(tenant_id, session_id)
    if current is None:
        return None
    return finish(current, now or clock.now(), reason="ended", by=by)


# --- what pages show ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RecordingView:
    """A session's recording as the booking page and the room's after-page list it."""

    recording: RoomRecording
    media: MediaItem

    @property
    def media_id(self) -> uuid.UUID:
        return self.media.id

    @property
    def title(self) -> str:
        return self.media.title

    @property
    def status_label(self) -> str:
        return {"ready": "ready to review", "processing": "processing", "uploading": "recording now",
                "failed": "could not be processed"}.get(self.media.status, self.media.status)

    @property
    def expires_at(self) -> datetime | None:
        return self.media.expires_at

    @property
    def url(self) -> str:
        """The recording's review page (in the current organization's request)."""
        return url_for("media.item", media_id=self.media.id)


def recordings_for(tenant_id: uuid.UUID, session_id: uuid.UUID) -> list[RecordingView]:
    """The session's recordings that still have a media item, oldest first (one statement). The pages link
    each to ``media.item``; whether the viewer may open it is media's rule (staff, and the session's athletes)."""
    rows = db.session.execute(
        select(RoomRecording, MediaItem).join(MediaItem, and_(MediaItem.tenant_id == RoomRecording.tenant_id,
                                                              MediaItem.id == RoomRecording.media_id))
        .where(RoomRecording.tenant_id == tenant_id, RoomRecording.session_id == session_id,
               MediaItem.status.not_in(("deleting",)), RoomRecording.status != "failed")
        .order_by(RoomRecording.started_at, RoomRecording.id)).all()
    return [RecordingView(recording, item) for recording, item in rows]


@dataclass(frozen=True)
class RecordingPanel:
    """What the room's recording panel shows one member."""

    participants: list[Membership]
    agreed: set[uuid.UUID]
    i_agreed: bool
    is_coach: bool
    running: RoomRecording | None
    missing: list[Membership]
    retention_days: int | None

    @property
    def can_start(self) -> bool:
        return self.is_coach and self.running is None and not self.missing

    @property
    def reason(self) -> str:
        if self.running is not None:
            return "The session is being recorded."
        if self.missing:
            verb = "has" if len(self.missing) == 1 else "have"
            return f"Recording needs everyone's agreement: {_names(self.missing)} {verb} not agreed yet."
        return "Everyone in the room has agreed to be recorded."


def panel(access: RoomAccess, member: Membership, now: datetime | None = None) -> RecordingPanel:
    tenant_id = member.tenant_id
    agreed = consenting(tenant_id, access.session_id)
    return RecordingPanel(
        participants=participants(tenant_id, access.session_id), agreed=agreed, i_agreed=member.id in agreed,
        is_coach=access.is_coach, running=running(tenant_id, access.session_id),
        missing=missing_consent(tenant_id, access.session_id, access.coach_id, now),
        retention_days=db.session.get(Organization, tenant_id).recording_retention_days)


def access_for(tenant_id: uuid.UUID, session_id, member: Membership) -> RoomAccess:
    """The member's access to the room, or :class:`NotFound` (a session of another organization reads as none)."""
    found = check_access(tenant_id, session_id, member.id)
    if found is None:
        raise NotFound("There is no such session.")
    return found


# Media asks this when someone who is not staff opens a recording: the session's athletes may.
@media.grants_view
def _session_recording_view(member: Membership, media_id: uuid.UUID):
    return exists(select(RoomRecording.id).where(
        RoomRecording.tenant_id == member.tenant_id, RoomRecording.media_id == media_id,
        exists().where(Booking.tenant_id == RoomRecording.tenant_id, Booking.session_id == RoomRecording.session_id,
                       Booking.athlete_membership_id == member.id, Booking.status.in_(IN_ROOM_STATUSES))))
