"""Session records: what a coach writes about one booking (one athlete's session) once it has ended.

A record picks a framework and notes the level observed on any of its skills, with Markdown notes and
homework (sanitised as posts are), attachments and timestamped links into videos. It is a ``draft`` until
signed off; a signed record is locked (this service refuses with a 409, and the database's trigger refuses
anything that gets past it). "Amend" starts version n+1 as a draft (a reason is required) that supersedes the
signed one; signing it makes it the booking's current record. Every sign-off and amendment is audited.

Who: the booking's own coach, or an admin of the organization, writes; every coach and admin reads; the athlete
reads their signed records only (never a draft); schedulers see none.

At sign-off the athlete's current levels (``athlete_skill_levels``) are recomputed from the rows for the skills
the record (and the version it supersedes) observed: the latest *session* wins, so amending an old session never
overwrites what a newer session observed. The timeline gets a "record" entry and ``RECORD_SIGNED`` is emitted.
"""
from __future__ import annotations

import difflib
import uuid
from dataclasses import dataclass, field

from sqlalchemy import and_, delete, exists, func, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.exc import IntegrityError
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import aliased

from coach import clock
from coach.booking.models import Booking
from coach.extensions import db
from coach.ids import parse_uuid
from coach.media import service as media
from coach.media.models import MediaItem
from coach.orgs.models import ADMIN, Membership, Organization
from coach.platform import audit, outbox
from coach.progress import timeline
from coach.progress.access import ProgressError, is_staff, require_staff
from coach.progress.events import RECORD_SIGNED
from coach.progress.frameworks import get_framework, parse_level, structure
from coach.progress.models import (
    DRAFT, SIGNED, AthleteSkillLevel, RecordMedia, RecordSkillLevel, SessionRecord, Skill, SkillFramework)
from coach.spaces import markdown

NOTES_MAX, HOMEWORK_MAX, REASON_MAX, SKILL_NOTE_MAX, LABEL_MAX = 20000, 5000, 500, 500, 200
MAX_MEDIA = 20
MAX_VERSIONS = 1000


# --- reading -------------------------------------------------------------------------------------------

def has_ended(booking: Booking) -> bool:
    """Whether the session took place: ended, or in progress past its end (the sweep has not run yet)."""
    return booking.status == "ended" or (booking.status == "active" and booking.ends_at <= clock.now())


def get_record(tenant_id: uuid.UUID, record_id) -> SessionRecord | None:
    ident = parse_uuid(record_id)
    if ident is None:
        return None
    return db.session.scalar(select(SessionRecord).where(SessionRecord.tenant_id == tenant_id,
                                                         SessionRecord.id == ident))


def booking_of(record: SessionRecord) -> Booking | None:
    """The record's booking; ``None`` once it is gone (its coach left the organization)."""
    if record.booking_id is None:
        return None
    return db.session.scalar(select(Booking).where(Booking.tenant_id == record.tenant_id,
                                                   Booking.id == record.booking_id))


def for_booking(booking: Booking) -> SessionRecord | None:
    """The booking's current record: its highest signed version (``None`` before the first sign-off)."""
    return db.session.scalar(select(SessionRecord).where(
        SessionRecord.tenant_id == booking.tenant_id, SessionRecord.booking_id == booking.id,
        SessionRecord.status == SIGNED).order_by(SessionRecord.version.desc()).limit(1))


def draft_for(booking: Booking) -> SessionRecord | None:
    return db.session.scalar(select(SessionRecord).where(
        SessionRecord.tenant_id == booking.tenant_id, SessionRecord.booking_id == booking.id,
        SessionRecord.status == DRAFT))


def versions(tenant_id: uuid.UUID, booking_id: uuid.UUID | None) -> list[SessionRecord]:
    """Every version of a booking's record, newest first."""
    if booking_id is None:
        return []
    return list(db.session.scalars(select(SessionRecord).where(
        SessionRecord.tenant_id == tenant_id, SessionRecord.booking_id == booking_id)
        .order_by(SessionRecord.version.desc())))


def may_write(member: Membership, booking: Booking) -> bool:
    return member.role == ADMIN or (is_staff(member) and member.id == booking.coach_membership_id)


def may_view(member: Membership, record: SessionRecord) -> bool:
    """Staff read every record; the athlete their own signed ones."""
    if is_staff(member):
        return True
    return record.status == SIGNED and record.athlete_membership_id == member.id


# The athlete may watch what their signed records link to (media decides with this rule too).
@media.grants_view
def _record_media_view(member: Membership, media_id: uuid.UUID):
    return exists(select(RecordMedia.id).join(SessionRecord, and_(
        SessionRecord.tenant_id == RecordMedia.tenant_id, SessionRecord.id == RecordMedia.record_id)).where(
        RecordMedia.tenant_id == member.tenant_id, RecordMedia.media_id == media_id,
        SessionRecord.athlete_membership_id == member.id, SessionRecord.status == SIGNED))


@dataclass
class LevelChange:
    before: int | None
    after: int | None


@dataclass
class RecordPage:
    """Everything the record's page shows, loaded with a fixed number of statements."""

    record: SessionRecord
    booking: Booking | None
    framework: SkillFramework | None
    areas: list  # frameworks.AreaView
    levels: dict[uuid.UUID, RecordSkillLevel]
    media: list[tuple[RecordMedia, MediaItem]]
    versions: list[SessionRecord]
    previous: SessionRecord | None = None
    changes: dict[uuid.UUID, LevelChange] = field(default_factory=dict)
    names: dict[uuid.UUID, str] = field(default_factory=dict)
    # What the text of this version changed since the one it supersedes: (section, [(sign, line)]) with sign
    # "+" (added), "-" (removed) or " " (context).
    text_changes: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)

    @property
    def current(self) -> SessionRecord | None:
        return next((v for v in self.versions if v.status == SIGNED), None)

    @property
    def draft(self) -> SessionRecord | None:
        return next((v for v in self.versions if v.status == DRAFT), None)

    def name(self, membership_id) -> str:
        return self.names.get(membership_id, "Former member") if membership_id else "Former member"


def author_names(tenant_id: uuid.UUID, ids) -> dict[uuid.UUID, str]:
    """Display names of the members with these ids (one statement; a member who left is simply missing)."""
    ids = [i for i in ids if i]
    if not ids:
        return {}
    return {m.id: m.user.display_name for m in db.session.scalars(select(Membership).where(
        Membership.tenant_id == tenant_id, Membership.id.in_(ids)))}


def page(record: SessionRecord, booking: Booking | None = None) -> RecordPage:
    """The record with its booking, framework (areas and skills), levels, media, versions and what changed since
    the version it supersedes."""
    booking = booking or booking_of(record)
    framework = get_framework(record.tenant_id, record.framework_id) if record.framework_id else None
    areas = structure(framework).areas if framework else []
    all_versions = versions(record.tenant_id, record.booking_id) or [record]
    previous = next((v for v in all_versions if v.id == record.supersedes_id), None)
    ids = [record.id] + ([previous.id] if previous else [])
    rows = list(db.session.scalars(select(RecordSkillLevel).where(RecordSkillLevel.tenant_id == record.tenant_id,
                                                                  RecordSkillLevel.record_id.in_(ids))))
    levels = {r.skill_id: r for r in rows if r.record_id == record.id}
    changes: dict[uuid.UUID, LevelChange] = {}
    if previous is not None:
        before = {r.skill_id: r.level for r in rows if r.record_id == previous.id}
        for skill_id in set(before) | set(levels):
            after = levels[skill_id].level if skill_id in levels else None
            if before.get(skill_id) != after:
                changes[skill_id] = LevelChange(before.get(skill_id), after)
    attached = list(db.session.execute(
        select(RecordMedia, MediaItem).join(MediaItem, and_(MediaItem.tenant_id == RecordMedia.tenant_id,
                                                            MediaItem.id == RecordMedia.media_id))
        .where(RecordMedia.tenant_id == record.tenant_id, RecordMedia.record_id == record.id)
        .order_by(RecordMedia.at_ms.nulls_first(), RecordMedia.label)))
    author_ids = {i for v in all_versions for i in (v.coach_membership_id, v.signed_by_membership_id) if i}
    names = author_names(record.tenant_id, author_ids)
    text_changes = []
    if previous is not None:
        for section, before, after in (("Notes", previous.notes_md, record.notes_md),
                                       ("Homework", previous.homework_md, record.homework_md)):
            if before != after:
                text_changes.append((section, _line_diff(before, after)))
    return RecordPage(record, booking, framework, areas, levels, attached, all_versions, previous, changes, names,
                      text_changes)


def _line_diff(before: str, after: str, context: int = 1) -> list[tuple[str, str]]:
    """The changed lines (with ``context`` lines around each change) of two texts."""
    lines = []
    for group in difflib.SequenceMatcher(None, before.splitlines(), after.splitlines()).get_grouped_opcodes(context):
        for tag, i1, i2, j1, j2 in group:
            old, new = before.splitlines()[i1:i2], after.splitlines()[j1:j2]
            if tag == "equal":
                lines += [(" ", line) for line in old]
            else:
                lines += [("-", line) for line in old] + [("+", line) for line in new]
    return lines


def media_choices(record: SessionRecord, member: Membership, limit: int = 30) -> list[MediaItem]:
    """What the writer may attach: recent ready media of the writer or of the athlete (one statement)."""
    return list(db.session.scalars(select(MediaItem).where(
        MediaItem.tenant_id == record.tenant_id,
        MediaItem.owner_membership_id.in_([member.id, record.athlete_membership_id]),
        MediaItem.status.in_(("ready", "processing"))).order_by(MediaItem.created_at.desc()).limit(limit)))


# --- writing -------------------------------------------------------------------------------------------

def _require_writer(member: Membership, booking: Booking | None) -> None:
    require_staff(member)
    if booking is None:
        raise ProgressError("This session's booking is gone (its coach left the organization): its record can no "
                            "longer change.", status=409)
    if not may_write(member, booking):
        raise ProgressError("Only the session's coach or an admin can write its record.", status=403)


def _require_draft(record: SessionRecord) -> None:
    if record.status != DRAFT:
        raise ProgressError(f"Version {record.version} is signed off and locked: amend it to change it.",
                            status=409)


def start(booking: Booking, actor: Membership, framework_id=None, *, live: bool = False) -> SessionRecord:
    """The booking's draft record (the existing draft if there is one): only once the session has ended, and
    only one first version (after that, amend).

    :param live: the coach is taking notes in the session's room while it is under way (the room decided it is
        open): a confirmed or active booking may start its draft before the end."""
    _require_writer(actor, booking)
    if not has_ended(booking) and not (live and booking.status in ("confirmed", "active")):
        raise ProgressError("A session record can be written once the session has ended.", status=409)
    existing = draft_for(booking)
    if existing is not None:
        return existing
    if for_booking(booking) is not None:
        raise ProgressError("This session's record is signed off already: amend it to change it.", status=409)
    framework = _usable_framework(booking.tenant_id, framework_id) if framework_id else None
    record = SessionRecord(tenant_id=booking.tenant_id, booking_id=booking.id,
                           athlete_membership_id=booking.athlete_membership_id, coach_membership_id=actor.id,
                           framework_id=framework.id if framework else None, version=1, status=DRAFT,
                           session_at=booking.starts_at)
    try:
        with db.session.begin_nested():  # another start of the same booking may have won meanwhile
            db.session.add(record)
            db.session.flush()
    except IntegrityError:
        existing = draft_for(booking)
        if existing is None:
            raise ProgressError("This session's record was started meanwhile: reload the page.", status=409) from None
        return existing
    return record


def _usable_framework(tenant_id: uuid.UUID, framework_id) -> SkillFramework:
    framework = get_framework(tenant_id, framework_id)
    if framework is None:
        raise ProgressError("Choose a framework from the list.", status=404)
    if framework.archived_at is not None:
        raise ProgressError(f"“{framework.title}” is archived: choose another framework.")
    return framework


def _text(value: str | None, limit: int, what: str) -> str:
    text = (value or "").replace("\r\n", "\n").strip()
    if "\x00" in text:
        raise ProgressError(f"The {what} cannot contain a NUL character.")
    if len(text) > limit:
        raise ProgressError(f"The {what} have at most {limit:,} characters.")
    return text


def save_draft(record: SessionRecord, actor: Membership, *, framework_id=None, levels: dict | None = None,
               skill_notes: dict | None = None, notes_md: str = "", homework_md: str = "") -> SessionRecord:
    """Write the draft's framework, levels (skill id → level, "" for not observed), notes and homework.

    Every level is checked against the framework's scale and every skill must be one of the framework's;
    changing the framework drops the levels of the former one."""
    booking = booking_of(record)
    _require_writer(actor, booking)
    _require_draft(record)
    notes_md = _text(notes_md, NOTES_MAX, "notes")
    homework_md = _text(homework_md, HOMEWORK_MAX, "homework notes")
    framework = None
    if framework_id:
        framework = (get_framework(record.tenant_id, framework_id) if str(framework_id) == str(record.framework_id)
                     else _usable_framework(record.tenant_id, framework_id))
        if framework is None:
            raise ProgressError("Choose a framework from the list.", status=404)
    chosen: list[tuple[uuid.UUID, int, str]] = []
    if framework is not None and levels:
        skills = {s.id: s for s in db.session.scalars(select(Skill).where(
            Skill.tenant_id == record.tenant_id, Skill.framework_id == framework.id))}
        skill_notes = skill_notes or {}
        for raw_id, raw_level in levels.items():
            skill_id = parse_uuid(raw_id)
            skill = skills.get(skill_id) if skill_id else None
            if skill is None:
                raise ProgressError("A level was given for a skill that is not in this framework.")
            level = parse_level(raw_level, len(framework.scale), what=f"The level of “{skill.title}”")
            note = " ".join(str(skill_notes.get(raw_id) or "").replace("\x00", "").split())
            if len(note) > SKILL_NOTE_MAX:
                raise ProgressError(f"The note on “{skill.title}” has at most {SKILL_NOTE_MAX} characters.")
            if level is not None:
                chosen.append((skill.id, level, note))
    record.framework_id = framework.id if framework else None
    record.notes_md, record.notes_html = notes_md, markdown.render(notes_md) if notes_md else ""
    record.homework_md, record.homework_html = homework_md, markdown.render(homework_md) if homework_md else ""
    record.coach_membership_id = actor.id
    record.updated_at = clock.now()
    db.session.execute(delete(RecordSkillLevel).where(RecordSkillLevel.tenant_id == record.tenant_id,
                                                      RecordSkillLevel.record_id == record.id))
    db.session.add_all([RecordSkillLevel(tenant_id=record.tenant_id, record_id=record.id, skill_id=skill_id,
                                         level=level, note=note) for skill_id, level, note in chosen])
    db.session.flush()
    return record


def save_notes(record: SessionRecord, actor: Membership, notes_md: str) -> SessionRecord:
    """Write the draft's notes alone, as the room's panel saves them while the coach types: its framework, levels
    and homework stay as the full record's page left them (:func:`save_draft` writes them all)."""
    booking = booking_of(record)
    _require_writer(actor, booking)
    # The row locked, as sign() does: a sign-off meanwhile is found here (a 409), not by the lock trigger.
    status = db.session.scalar(select(SessionRecord.status).where(
        SessionRecord.tenant_id == record.tenant_id, SessionRecord.id == record.id).with_for_update())
    if status is None:
        raise ProgressError("This draft was discarded meanwhile: reload the page.", status=404)
    if status != DRAFT:
        record.status = status
    _require_draft(record)
    notes_md = _text(notes_md, NOTES_MAX, "notes")
    record.notes_md, record.notes_html = notes_md, markdown.render(notes_md) if notes_md else ""
    record.coach_membership_id = actor.id
    record.updated_at = clock.now()
    db.session.flush()
    return record


def add_media(record: SessionRecord, actor: Membership, media_id, moment: str | None = None,
              label: str = "") -> RecordMedia:
    """Attach a media item the writer may view, or link a moment of a video (``moment`` like "1:23" or "83.4",
    within the video's duration)."""
    booking = booking_of(record)
    _require_writer(actor, booking)
    _require_draft(record)
    item = media.get_item(db.session.get(Organization, record.tenant_id), media_id)
    if item is None or not media.can_view(item, actor) or item.status not in ("ready", "processing"):
        raise ProgressError("Choose a media item you can see.", status=404)
    at_ms = None
    if moment and str(moment).strip():
        if item.kind != "video":
            raise ProgressError("Only a video has moments: leave the time empty to attach the whole item.")
        at_ms = media.parse_moment(moment)
        if at_ms is None:
            raise ProgressError("Write the moment like 1:23 or 83.4 (seconds).")
        limit = item.duration_ms if item.duration_ms else 86_400_000
        if at_ms > limit:
            raise ProgressError(f"The moment is past the end of the video ({item.duration_label}).")
    label = " ".join((label or "").replace("\x00", "").split())
    if len(label) > LABEL_MAX:
        raise ProgressError(f"A label has at most {LABEL_MAX} characters.")
    count = db.session.scalar(select(func.count()).select_from(RecordMedia).where(
        RecordMedia.tenant_id == record.tenant_id, RecordMedia.record_id == record.id))
    if count >= MAX_MEDIA:
        raise ProgressError(f"A record has at most {MAX_MEDIA} attachments and moments.")
    link = RecordMedia(tenant_id=record.tenant_id, record_id=record.id, media_id=item.id, at_ms=at_ms,
                       label=label)
    db.session.add(link)
    db.session.flush()
    return link


def remove_media(record: SessionRecord, actor: Membership, link_id) -> None:
    booking = booking_of(record)
    _require_writer(actor, booking)
    _require_draft(record)
    ident = parse_uuid(link_id)
    link = db.session.scalar(select(RecordMedia).where(
        RecordMedia.tenant_id == record.tenant_id, RecordMedia.record_id == record.id,
        RecordMedia.id == ident)) if ident else None
    if link is None:
        raise ProgressError("No such attachment.", status=404)
    db.session.delete(link)
    db.session.flush()


def discard(record: SessionRecord, actor: Membership) -> None:
    """Throw a draft away (a first draft, or an amendment not signed)."""
    booking = booking_of(record)
    _require_writer(actor, booking)
    _require_draft(record)
    db.session.execute(delete(RecordMedia).where(RecordMedia.tenant_id == record.tenant_id,
                                                 RecordMedia.record_id == record.id))
    db.session.execute(delete(RecordSkillLevel).where(RecordSkillLevel.tenant_id == record.tenant_id,
                                                      RecordSkillLevel.record_id == record.id))
    db.session.delete(record)
    db.session.flush()


def sign(record: SessionRecord, actor: Membership) -> SessionRecord:
    """Sign the draft off: it is locked from now on and becomes the booking's current record."""
    booking = booking_of(record)
    _require_writer(actor, booking)
    # Lock the row alone (not the athlete it joins): two sign-offs of one draft, the second finds it signed.
    status = db.session.scalar(select(SessionRecord.status).where(
        SessionRecord.tenant_id == record.tenant_id, SessionRecord.id == record.id).with_for_update())
    if status is None:
        raise ProgressError("This draft was discarded meanwhile.", status=404)
    if status != DRAFT:
        record.status = status
    _require_draft(record)
    observed = list(db.session.scalars(select(RecordSkillLevel.skill_id).where(
        RecordSkillLevel.tenant_id == record.tenant_id, RecordSkillLevel.record_id == record.id)))
    if not observed and not record.notes_md and not record.homework_md:
        raise ProgressError("There is nothing to sign off yet: note a level, notes or homework first.")
    if record.framework_id is None and observed:
        raise ProgressError("Choose the framework of the levels observed.")
    now = clock.now()
    record.status, record.signed_at, record.signed_by_membership_id = SIGNED, now, actor.id
    record.updated_at = now
    db.session.flush()
    touched = set(observed)
    if record.supersedes_id is not None:
        touched |= set(db.session.scalars(select(RecordSkillLevel.skill_id).where(
            RecordSkillLevel.tenant_id == record.tenant_id, RecordSkillLevel.record_id == record.supersedes_id)))
    recompute_levels(record.tenant_id, record.athlete_membership_id, touched)
    title = f"Session record signed off ({booking.offering.title})" if record.version == 1 else \
        f"Session record amended, version {record.version} ({booking.offering.title})"
    detail = f"{len(observed)} skill level{'s' if len(observed) != 1 else ''} observed" if observed else ""
    # One entry per session: the current version's (it links to that version's page).
    if record.supersedes_id is not None:
        timeline.remove(record.tenant_id, "record", record.supersedes_id)
    timeline.record(record.tenant_id, record.athlete_membership_id, "record", record.id, record.session_at,
                    title, detail)
    audit.record("progress.record_signed", actor=actor.user, target_type="session_record", target_id=record.id,
                 details={"booking_id": str(record.booking_id), "version": record.version,
                          "skills": len(observed)}, tenant_id=record.tenant_id)
    outbox.emit(RECORD_SIGNED, {"record_id": str(record.id), "athlete_membership_id":
                                str(record.athlete_membership_id), "version": record.version},
                tenant_id=record.tenant_id)
    return record


def amend(record: SessionRecord, actor: Membership, reason: str) -> SessionRecord:
    """Start version n+1 of the booking's current signed record as a draft (same content to edit), with why."""
    booking = booking_of(record)
    _require_writer(actor, booking)
    reason = " ".join((reason or "").replace("\x00", "").split())
    if not reason:
        raise ProgressError("Say why the record is amended.")
    if len(reason) > REASON_MAX:
        raise ProgressError(f"The reason has at most {REASON_MAX} characters.")
    if record.status != SIGNED:
        raise ProgressError("This version is a draft: edit it instead.", status=409)
    if draft_for(booking) is not None:
        raise ProgressError("An amendment is being written already: finish or discard it first.", status=409)
    current = for_booking(booking)
    if current is None or current.id != record.id:
        raise ProgressError("Only the current version can be amended.", status=409)
    if record.version >= MAX_VERSIONS:
        raise ProgressError("This record has too many versions to amend again.", status=409)
    framework_id = record.framework_id
    if framework_id is not None:
        framework = get_framework(record.tenant_id, framework_id)
        framework_id = framework.id if framework and framework.archived_at is None else framework_id
    new = SessionRecord(tenant_id=record.tenant_id, booking_id=record.booking_id,
                        athlete_membership_id=record.athlete_membership_id, coach_membership_id=actor.id,
                        framework_id=framework_id, version=record.version + 1, status=DRAFT,
                        notes_md=record.notes_md, notes_html=record.notes_html, homework_md=record.homework_md,
                        homework_html=record.homework_html, amendment_reason=reason, supersedes_id=record.id,
                        session_at=record.session_at)
    try:
        with db.session.begin_nested():  # two amendments at once: the second finds the first's draft
            db.session.add(new)
            db.session.flush()
    except IntegrityError:
        raise ProgressError("An amendment is being written already: finish or discard it first.",
                            status=409) from None
    for row in db.session.scalars(select(RecordSkillLevel).where(RecordSkillLevel.tenant_id == record.tenant_id,
                                                                 RecordSkillLevel.record_id == record.id)):
        db.session.add(RecordSkillLevel(tenant_id=record.tenant_id, record_id=new.id, skill_id=row.skill_id,
                                        level=row.level, note=row.note))
    for row in db.session.scalars(select(RecordMedia).where(RecordMedia.tenant_id == record.tenant_id,
                                                            RecordMedia.record_id == record.id)):
        db.session.add(RecordMedia(tenant_id=record.tenant_id, record_id=new.id, media_id=row.media_id,
                                   at_ms=row.at_ms, label=row.label))
    db.session.flush()
    audit.record("progress.record_amended", actor=actor.user, target_type="session_record", target_id=new.id,
                 details={"booking_id": str(record.booking_id), "version": new.version,
                          "supersedes": str(record.id), "reason": reason}, tenant_id=record.tenant_id)
    return new


def current_records(tenant_id: uuid.UUID, athlete_id: uuid.UUID):
    """The athlete's current records (signed, and not superseded by a signed amendment) as a subquery of
    ``id, session_at, signed_at``: what counts for the athlete's levels. Works for records whose booking is gone."""
    newer = aliased(SessionRecord)
    return (select(SessionRecord.id, SessionRecord.session_at, SessionRecord.signed_at)
            .where(SessionRecord.tenant_id == tenant_id, SessionRecord.athlete_membership_id == athlete_id,
                   SessionRecord.status == SIGNED,
                   ~exists(select(newer.id).where(newer.tenant_id == SessionRecord.tenant_id,
                                                  newer.supersedes_id == SessionRecord.id, newer.status == SIGNED)))
            ).subquery()


def recompute_levels(tenant_id: uuid.UUID, athlete_id: uuid.UUID, skill_ids) -> None:
    """Set the athlete's current level on each of ``skill_ids`` from the rows: the level of the latest session
    (by when it took place) whose current signed version observed the skill; none if no such session."""
    skill_ids = list(skill_ids)
    if not skill_ids:
        return
    current = current_records(tenant_id, athlete_id)
    latest = list(db.session.execute(
        select(RecordSkillLevel.skill_id, RecordSkillLevel.level, current.c.id, current.c.session_at)
        .join(current, current.c.id == RecordSkillLevel.record_id)
        .where(RecordSkillLevel.tenant_id == tenant_id, RecordSkillLevel.skill_id.in_(skill_ids))
        .ext(distinct_on(RecordSkillLevel.skill_id))
        .order_by(RecordSkillLevel.skill_id, current.c.session_at.desc(), current.c.signed_at.desc())).all())
    now = clock.now()
    found = set()
    for skill_id, level, record_id, session_at in latest:
        found.add(skill_id)
        values = {"level": level, "record_id": record_id, "observed_at": session_at, "updated_at": now}
        db.session.execute(
            pg_insert(AthleteSkillLevel)
            .values(id=uuid.uuid4(), tenant_id=tenant_id, athlete_membership_id=athlete_id, skill_id=skill_id,
                    **values)
            .on_conflict_do_update(constraint="uq_athlete_skill_levels_pair", set_=values))
    gone = [s for s in skill_ids if s not in found]
    if gone:
        db.session.execute(delete(AthleteSkillLevel).where(
            AthleteSkillLevel.tenant_id == tenant_id, AthleteSkillLevel.athlete_membership_id == athlete_id,
            AthleteSkillLevel.skill_id.in_(gone)))
