"""The athlete pages' data: the coach's athlete list, one athlete's timeline a keyset page at a time, private
coach notes, and the consumers that put sessions and video reviews on the timeline.

Who sees what is :mod:`coach.progress.access`'s rule: staff (coaches and admins) see every athlete of the
organization and the coaches-only entries (notes); an athlete sees their own timeline without them.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import aliased

from coach import clock
from coach.accounts.models import User
from coach.booking.events import BOOKING_ENDED
from coach.booking.models import Booking, Offering
from coach.extensions import db
from coach.media.events import MEDIA_REVIEW_COMMENTED
from coach.media.models import MediaComment, MediaItem
from coach.orgs.models import ATHLETE, Membership
from coach.platform.jobs import consumer
from coach.platform.pagination import Page, decode_cursor, newest_first
from coach.progress import charts, goals, habits, proficiency, programs, readiness, timeline
from coach.progress.access import ProgressError, is_staff, require_staff
from coach.progress.days import local_today, monday_of
from coach.progress.models import CoachNote, TimelineEntry
from coach.spaces import markdown

PAGE_SIZE = 20
LIST_LIMIT = 200  # athletes on the coach's list at once; the search narrows a bigger organization
NOTE_MAX = 10000
SEARCH_MAX = 100
RECENT_NOTES = 5
FORMER_MEMBER = "Former member"


week_start = monday_of


# --- the coach's athlete list -------------------------------------------------------------------------------


@dataclass
class AthleteRow:
    athlete: Membership
    flag: object | None  # readiness.Flag: today's readiness well below the athlete's own baseline
    compliance: object | None  # programs.WeekCompliance of this week, None when nothing is scheduled
    goals_at_risk: int
    last_session_at: datetime | None

    @property
    def name(self) -> str:
        return self.athlete.user.display_name


def athlete_list(viewer: Membership, search: str = "") -> list[AthleteRow]:
    """Every athlete of the organization (matching ``search`` in their name or email) with what a coach scans
    for: a readiness flag, this week's program compliance, goals at risk and the last session. A fixed number of
    statements whatever the number of athletes (one per kind, for all of them at once).

    :param search: part of a name or email, case-insensitive; longer input than a name is cut.
    """
    require_staff(viewer)
    tenant_id = viewer.tenant_id
    query = (select(Membership).join(User, User.id == Membership.user_id)
             .where(Membership.tenant_id == tenant_id, Membership.role == ATHLETE))
    # A NUL cannot reach PostgreSQL's text; a search never needs one.
    term = " ".join((search or "").replace("\x00", "").split())[:SEARCH_MAX]
    if term:
        pattern = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(or_(User.display_name.ilike(pattern, escape="\\"), User.email.ilike(pattern, escape="\\")))
    athletes = list(db.session.scalars(query.order_by(func.lower(User.display_name), Membership.id)
                                       .limit(LIST_LIMIT)))
    if not athletes:
        return []
    ids = [athlete.id for athlete in athletes]
    flags = readiness.flags(tenant_id, ids)
    compliance = programs.compliance_for(tenant_id, ids, week_start(local_today(viewer)))
    at_risk = goals.at_risk_for(tenant_id, ids)
    last = dict(db.session.execute(
        select(Booking.athlete_membership_id, func.max(Booking.starts_at))
        .where(Booking.tenant_id == tenant_id, Booking.athlete_membership_id.in_(ids), Booking.status == "ended")
        .group_by(Booking.athlete_membership_id)).all())
    return [AthleteRow(athlete, flags.get(athlete.id), compliance.get(athlete.id), at_risk.get(athlete.id, 0),
                       last.get(athlete.id)) for athlete in athletes]


# --- one athlete's pages -----------------------------------------------------------------------------------

READINESS_DAYS, COMPLIANCE_WEEKS = 28, 8


@dataclass
class Overview:
    """What the athlete page shows (see :func:`overview`)."""

    athlete: Membership
    today: date
    matrix: list
    goals: list
    goals_at_risk: int
    habits: list
    readiness: charts.LineChart
    readiness_flag: object | None
    compliance: list
    compliance_chart: charts.StackedChart
    timeline: Page[TimelineEntry]
    notes: list[NoteView]


def readiness_band(trend: list[tuple[date, float]], today: date) -> tuple[float, float] | None:
    """The athlete's usual readiness: the 14 days before ``today`` (B's baseline), as ``mean ± the drop that
    flags`` (``max(0.75, 1.5 × sd)``), so a dot below the band is a day the coach's flag would fire. ``None``
    with fewer than 7 check-ins in those days (no baseline yet)."""
    first = today - timedelta(days=readiness.BASELINE_DAYS)
    n, mean, sd = readiness.baseline([score for day, score in trend if first <= day < today])
    if n < readiness.BASELINE_MIN or mean is None:
        return None
    drop = max(readiness.MIN_DROP, readiness.SD_FACTOR * (sd or 0.0))
    return max(1.0, mean - drop), min(5.0, mean + drop)


def readiness_chart(athlete: Membership, today: date) -> tuple[charts.LineChart, object | None]:
    """The last 28 days of readiness with the baseline band, and today's flag (from the same rows: one
    statement)."""
    trend = readiness.trend(athlete, days=READINESS_DAYS)
    band = readiness_band(trend, today)
    chart = charts.line(trend, y_min=1, y_max=5, baseline=band, start=today - timedelta(days=READINESS_DAYS - 1),
                        end=today, max_gap_days=1)
    flag = None
    scores = dict(trend)
    if band is not None and today in scores:
        first = today - timedelta(days=readiness.BASELINE_DAYS)
        n, mean, sd = readiness.baseline([s for d, s in trend if first <= d < today])
        if readiness.evaluate(scores[today], n, mean, sd):
            flag = readiness.Flag(athlete.id, today, scores[today], round(mean, 2), round(sd or 0.0, 2), n)
    return chart, flag


def overview(viewer: Membership, athlete: Membership, before: str | None = None) -> Overview:
    """The athlete page: matrix, goals, habits, the readiness and compliance charts, the timeline's first page
    (or the page after ``before``) and, for staff, the latest notes. A fixed number of statements."""
    today = local_today(athlete)
    goal_views = goals.summary(athlete)
    chart, flag = readiness_chart(athlete, today)
    weeks = programs.compliance(athlete, weeks=COMPLIANCE_WEEKS, end=today)
    return Overview(
        athlete=athlete, today=today,
        matrix=proficiency.matrix(athlete),
        goals=goal_views, goals_at_risk=goals.at_risk_count(goal_views), habits=habits.today(athlete),
        readiness=chart, readiness_flag=flag, compliance=weeks,
        compliance_chart=charts.stacked_weeks(weeks),
        timeline=timeline_page(viewer, athlete, before), notes=recent_notes(viewer, athlete))


@dataclass
class Today:
    """An athlete's "Today": what to do and tick today."""

    athlete: Membership
    today: date
    workouts: list
    habits: list
    checkin: object | None
    goals: list
    matrix: list


def today_for(athlete: Membership) -> Today:
    """The athlete's own start page: today's workouts, habits, readiness check-in, goals and matrix."""
    return Today(athlete=athlete, today=local_today(athlete), workouts=programs.today(athlete),
                 habits=habits.today(athlete), checkin=readiness.today(athlete), goals=goals.summary(athlete),
                 matrix=proficiency.matrix(athlete))


# --- the timeline -------------------------------------------------------------------------------------------


def timeline_page(viewer: Membership, athlete: Membership, before: str | None = None,
                  limit: int = PAGE_SIZE) -> Page[TimelineEntry]:
    """One page of ``athlete``'s timeline, newest first, continuing after the cursor ``before`` (the last entry
    of the previous page). Coaches-only entries (notes) are left out unless ``viewer`` is staff.

    :raises ProgressError: 400 for a cursor that is not one this page gave (edited by hand, cut short).
    """
    if before and decode_cursor(before) is None:
        raise ProgressError("That page of the timeline does not exist. Start again from the newest.", status=400)
    query = select(TimelineEntry).where(TimelineEntry.tenant_id == athlete.tenant_id,
                                        TimelineEntry.athlete_membership_id == athlete.id)
    if not is_staff(viewer):
        query = query.where(TimelineEntry.coaches_only.is_(False))
    return newest_first(query, TimelineEntry.occurred_at, TimelineEntry.id, before or None, limit)


# --- coach notes --------------------------------------------------------------------------------------------


@dataclass
class NoteView:
    note: CoachNote
    author_name: str


def add_note(viewer: Membership, athlete: Membership, body: str) -> CoachNote:
    """A private note about ``athlete`` (Markdown, sanitised), with its coaches-only timeline entry.

    :raises ProgressError: 403 for anyone but staff, 422 for an empty or too long note.
    """
    require_staff(viewer)
    text = (body or "").replace("\r\n", "\n").strip()
    if not text:
        raise ProgressError("Write the note first.")
    if len(text) > NOTE_MAX:
        raise ProgressError(f"A note can be at most {NOTE_MAX:,} characters.")
    if "\x00" in text:
        raise ProgressError("A note cannot contain a NUL character.")
    now = clock.now()
    note = CoachNote(id=uuid.uuid4(), tenant_id=athlete.tenant_id, athlete_membership_id=athlete.id,
                     author_membership_id=viewer.id, body_md=text, body_html=markdown.render(text), created_at=now)
    db.session.add(note)
    db.session.flush()
    timeline.record(athlete.tenant_id, athlete.id, "note", note.id, now, f"Note by {viewer.user.display_name}",
                    markdown.plain_excerpt(text, 300), coaches_only=True)
    return note


def recent_notes(viewer: Membership, athlete: Membership, limit: int = RECENT_NOTES) -> list[NoteView]:
    """The latest notes about ``athlete`` with their authors (one statement); none for anyone but staff."""
    if not is_staff(viewer):
        return []
    author = aliased(Membership)
    rows = db.session.execute(
        select(CoachNote, User.display_name)
        .outerjoin(author, (author.tenant_id == CoachNote.tenant_id) & (author.id == CoachNote.author_membership_id))
        .outerjoin(User, User.id == author.user_id)
        .where(CoachNote.tenant_id == athlete.tenant_id, CoachNote.athlete_membership_id == athlete.id)
        .order_by(CoachNote.created_at.desc(), CoachNote.id.desc()).limit(limit)).all()
    return [NoteView(note, name or FORMER_MEMBER) for note, name in rows]


# --- consumers: what other domains put on the timeline --------------------------------------------------------


def _athlete(tenant_id: uuid.UUID, member_id) -> Membership | None:
    if not member_id:
        return None
    member = db.session.scalar(select(Membership).where(Membership.tenant_id == tenant_id,
                                                        Membership.id == uuid.UUID(str(member_id))))
    return member if member is not None and member.role == ATHLETE else None


@consumer(BOOKING_ENDED)
def session_on_timeline(payload: dict) -> None:
    """An ended session goes on its athlete's timeline (once: the entry is keyed by the booking)."""
    row = db.session.execute(
        select(Booking, Offering.title, User.display_name)
        .join(Offering, (Offering.tenant_id == Booking.tenant_id) & (Offering.id == Booking.offering_id))
        .outerjoin(Membership, (Membership.tenant_id == Booking.tenant_id)
                   & (Membership.id == Booking.coach_membership_id))
        .outerjoin(User, User.id == Membership.user_id)
        .where(Booking.id == uuid.UUID(payload["booking_id"]))).first()
    if row is None:
        return
    booking, offering_title, coach_name = row
    if booking.status != "ended" or _athlete(booking.tenant_id, booking.athlete_membership_id) is None:
        return
    minutes = max(1, round((booking.ends_at - booking.starts_at).total_seconds() / 60))
    timeline.record(booking.tenant_id, booking.athlete_membership_id, "session", booking.id, booking.starts_at,
                    f"Session: {offering_title}", f"{minutes} min with {coach_name or FORMER_MEMBER}")


@consumer(MEDIA_REVIEW_COMMENTED)
def review_on_timeline(payload: dict) -> None:
    """A review comment on a video an athlete owns goes on their timeline: one entry per video, brought up to the
    latest comment (the video's review is one thing that happened, however many comments it has)."""
    item = db.session.get(MediaItem, uuid.UUID(payload["media_id"]))
    comment = db.session.get(MediaComment, uuid.UUID(payload["comment_id"]))
    if item is None or comment is None or item.status == "deleting" or comment.deleted_at is not None:
        return
    if _athlete(item.tenant_id, item.owner_membership_id) is None:
        return
    shown = db.session.scalar(select(TimelineEntry.occurred_at).where(
        TimelineEntry.tenant_id == item.tenant_id, TimelineEntry.kind == "review", TimelineEntry.subject_id == item.id))
    if shown is not None and shown > comment.created_at:
        return  # a later comment is on the timeline already (events may arrive out of order)
    author = comment.author.user.display_name if comment.author is not None else FORMER_MEMBER
    seconds = comment.at_ms // 1000
    timeline.record(item.tenant_id, item.owner_membership_id, "review", item.id, comment.created_at,
                    f"Video review: {item.title}",
                    f"{author} at {seconds // 60}:{seconds % 60:02d}: {markdown.plain_excerpt(comment.body, 300)}")
