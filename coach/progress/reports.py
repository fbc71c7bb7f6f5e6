"""Progress reports: asked for (on demand, or every week), built by a background job in stages the page shows as
a moving bar, stored as HTML and PDF in media storage, and emailed (athlete and guardian) with a signed link.
Also the coaches' weekly digest.

The build runs on the ``default`` queue, outside the event's transaction: the consumer of ``REPORT_REQUESTED``
only enqueues it once that transaction commits. The job claims a ``queued`` report (one statement), commits its
progress after every stage, and flips the report to ``ready`` in the same transaction as its emails: a job that
runs twice finds nothing queued and does nothing, so a ready report is never rebuilt nor emailed again.
"""
from __future__ import annotations

import logging
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import current_app, g, render_template
from itsdangerous import BadSignature, URLSafeSerializer
from rq import Retry
from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from coach import tenancy
from coach.accounts.models import User
from coach.booking.models import Booking, Offering
from coach import clock
from coach.extensions import db
from coach.media.storage import get_storage
from coach.ids import parse_uuid
from coach.orgs.models import ADMIN, ATHLETE, COACH, Membership, Organization
from coach.platform import audit
from coach.platform.jobs import after_commit, consumer, each_tenant, get_app
from coach.platform.mail import queue_email
from coach.platform.outbox import emit
from coach.platform.periodic import periodic
from coach.platform.queues import queue
from coach.progress import charts, pdf, programs, proficiency, timeline
from coach.progress import readiness as readiness_service
from coach.progress import goals as goals_service
from coach.progress.access import ProgressError, is_staff, load_athlete
from coach.progress.days import local_today, monday_of, zone_named
from coach.progress.events import REPORT_READY, REPORT_REQUESTED
from coach.progress.models import (
    AthleteProfile, CoachDigest, Goal, ProgressReport, ReadinessCheckin)

log = logging.getLogger(__name__)

MAX_PERIOD_DAYS = 731  # two years (the table's check says the same)
LINK_DAYS = 7  # an emailed link opens the report for a week
FILE_URL_SECONDS = 300  # the signed storage URL a download redirects to
MAX_BUILDING = 3  # reports of one athlete queued or running at once (a button pressed ten times makes three)
STUCK_AFTER = timedelta(minutes=30)  # a "running" report older than this may be retried (its worker died)
FAILED_MESSAGE = "We could not build this report. Try again; if it fails again, tell your coach."
SESSION_STATUSES = ("confirmed", "active", "ended")
WEEKLY_HOUR = 7  # Monday 07:00 in the athlete's (or the coach's) time zone
# Pause after each stage (seconds). 0 in production; the tests slow the job down to watch the bar move.
STAGE_PAUSE = 0.0

# What the job is doing now, and how far along it is (the claim starts at "gather").
STAGES = {
    "gather": (5, "Gathering sessions, skills, goals and check-ins"),
    "charts": (25, "Drawing the charts"),
    "html": (40, "Writing the page"),
    "pdf": (55, "Making the PDF"),
    "store": (70, "Storing the files"),
    "email": (85, "Emailing the link"),
}


# --- asking for a report ------------------------------------------------------------------------------------


def validate_period(start: date | None, end: date | None, today: date) -> None:
    """Refuse a period that is missing, reversed, longer than two years or not over yet (``today`` excluded is
    fine: a report may end today)."""
    if start is None or end is None:
        raise ProgressError("Choose the first and the last day of the report.")
    if end < start:
        raise ProgressError("The last day of the report comes before its first day.")
    if (end - start).days > MAX_PERIOD_DAYS:
        raise ProgressError("A report covers at most two years.")
    if end > today:
        raise ProgressError("A report cannot end in the future.")


athlete_today = local_today


def request(athlete: Membership, requested_by: Membership | None, period_start: date | None,
            period_end: date | None) -> ProgressReport:
    """Ask for a report of ``athlete`` over ``period_start..period_end`` (both included); the job builds it.

    ``requested_by`` is a coach or admin of the athlete's organization, or the athlete themselves (anyone else,
    another organization's staff included, gets a 404)."""
    if requested_by is not None:
        if requested_by.tenant_id != athlete.tenant_id:
            raise ProgressError("No such athlete.", status=404)
        if not is_staff(requested_by) and requested_by.id != athlete.id:
            raise ProgressError("No such athlete.", status=404)
    if athlete.role != ATHLETE:
        raise ProgressError("No such athlete.", status=404)
    validate_period(period_start, period_end, athlete_today(athlete))
    building = db.session.scalar(
        select(func.count()).select_from(ProgressReport)
        .where(ProgressReport.tenant_id == athlete.tenant_id, ProgressReport.athlete_membership_id == athlete.id,
               ProgressReport.status.in_(("queued", "running"))))
    if building >= MAX_BUILDING:
        raise ProgressError(f"{MAX_BUILDING} reports of this athlete are being made already. Wait for one to finish.",
                            status=429)
    report = ProgressReport(id=uuid.uuid4(), tenant_id=athlete.tenant_id, athlete_membership_id=athlete.id,
                            requested_by_membership_id=requested_by.id if requested_by else None, kind="on_demand",
                            period_start=period_start, period_end=period_end, status="queued", progress=0,
                            stage="Waiting for a worker")
    db.session.add(report)
    db.session.flush()
    emit(REPORT_REQUESTED, {"report_id": str(report.id)}, tenant_id=athlete.tenant_id)
    return report


def retry(viewer: Membership, report: ProgressReport) -> ProgressReport:
    """Queue a failed report again (or one whose worker died mid-way)."""
    if not can_retry(report):
        raise ProgressError("Only a report that failed can be tried again.", status=409)
    done = db.session.execute(
        update(ProgressReport)
        .where(ProgressReport.tenant_id == report.tenant_id, ProgressReport.id == report.id,
               ProgressReport.status == report.status)
        .values(status="queued", progress=0, stage="Waiting for a worker", error=None, finished_at=None)
    ).rowcount
    if not done:
        raise ProgressError("This report changed meanwhile. Reload the page.", status=409)
    emit(REPORT_REQUESTED, {"report_id": str(report.id)}, tenant_id=report.tenant_id)
    db.session.refresh(report)
    return report


def can_retry(report: ProgressReport) -> bool:
    return report.status == "failed" or (report.status == "running" and report.created_at is not None
                                         and clock.now() - report.created_at > STUCK_AFTER)


def of_athlete(athlete: Membership, limit: int = 50) -> list[ProgressReport]:
    """The athlete's reports, newest first (one statement)."""
    return list(db.session.scalars(
        select(ProgressReport).where(ProgressReport.tenant_id == athlete.tenant_id,
                                     ProgressReport.athlete_membership_id == athlete.id)
        .order_by(ProgressReport.created_at.desc(), ProgressReport.id.desc()).limit(limit)))


def load(viewer: Membership, report_id) -> ProgressReport:
    """The report, if ``viewer`` may see its athlete (staff of the organization, or the athlete); else 404."""
    rid = report_id if isinstance(report_id, uuid.UUID) else parse_uuid(report_id)
    report = rid and db.session.scalar(select(ProgressReport).where(ProgressReport.tenant_id == viewer.tenant_id,
                                                                    ProgressReport.id == rid))
    if not report or (not is_staff(viewer) and report.athlete_membership_id != viewer.id):
        raise ProgressError("No such report.", status=404)
    return report


def profile_of(athlete: Membership) -> AthleteProfile | None:
    return db.session.scalar(select(AthleteProfile).where(AthleteProfile.tenant_id == athlete.tenant_id,
                                                          AthleteProfile.membership_id == athlete.id))


def update_settings(viewer: Membership, athlete: Membership, guardian_email: str | None, weekly_report: bool
                    ) -> AthleteProfile:
    """Set the guardian's email (blank: none) and the weekly report opt-in of ``athlete``."""
    load_athlete(viewer, athlete.id)
    email = (guardian_email or "").strip() or None
    if email is not None and (len(email) > 254 or "@" not in email.strip("@") or any(c.isspace() for c in email)):
        raise ProgressError("Enter a valid email address for the guardian, or leave it blank.")
    before = profile_of(athlete)
    previous = before.guardian_email if before is not None else None
    if email != previous:
        # A guardian follows a (often young) athlete's reports: the organization's staff decide who that is.
        if not is_staff(viewer):
            raise ProgressError("Only your coaches can change the guardian's email.", status=403)
        audit.record("progress.guardian_changed", actor=viewer.user, target_type="membership", target_id=athlete.id,
                     details={"from": previous, "to": email})
    values = {"guardian_email": email, "weekly_report": bool(weekly_report), "updated_at": clock.now()}
    db.session.execute(
        pg_insert(AthleteProfile)
        .values(id=uuid.uuid4(), tenant_id=athlete.tenant_id, membership_id=athlete.id, **values)
        .on_conflict_do_update(constraint="uq_athlete_profiles_member", set_=values))
    db.session.expire_all()
    return profile_of(athlete)


# --- the link in the email -----------------------------------------------------------------------------------


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="progress-report-link")


def link_token(report: ProgressReport, issued: datetime | None = None) -> str:
    """A token that opens this one report's PDF, without logging in, for ``LINK_DAYS`` days."""
    expires = int(((issued or clock.now()) + timedelta(days=LINK_DAYS)).timestamp())
    return _serializer().dumps({"r": str(report.id), "t": str(report.tenant_id), "e": expires})


def read_token(token: str | None, report_id) -> uuid.UUID:
    """The organization a valid, unexpired token of report ``report_id`` belongs to; else a 403 ProgressError."""
    refused = ProgressError("This link is invalid or has expired. Ask for the report again.", status=403)
    try:
        data = _serializer().loads(token or "")
    except BadSignature:
        raise refused from None
    if not isinstance(data, dict) or data.get("r") != str(report_id) or not isinstance(data.get("e"), int):
        raise refused
    if data["e"] < clock.now().timestamp():
        raise refused
    tenant = parse_uuid(data.get("t"))
    if tenant is None:
        raise refused
    return tenant


def report_by_id(tenant_id: uuid.UUID, report_id) -> ProgressReport | None:
    rid = parse_uuid(str(report_id))
    return rid and db.session.scalar(select(ProgressReport).where(ProgressReport.tenant_id == tenant_id,
                                                                  ProgressReport.id == rid))


def file_url(report: ProgressReport, kind: str) -> str:
    """A signed, expiring storage URL of the report's PDF (a download)."""
    if report.status != "ready" or not report.pdf_key:
        raise ProgressError("This report is not ready yet.", status=409)
    return get_storage().get_url(report.pdf_key, FILE_URL_SECONDS, content_type="application/pdf",
                                 filename=filename(report), download=kind == "download")


def html_bytes(report: ProgressReport) -> bytes:
    """The stored HTML of a ready report (streamed by the view: storage serves HTML only as a download)."""
    if report.status != "ready" or not report.html_key:
        raise ProgressError("This report is not ready yet.", status=409)
    with tempfile.TemporaryDirectory(prefix="coach-report-") as tmp:
        path = Path(tmp) / "report.html"
        get_storage().download(report.html_key, path)
        return path.read_bytes()


def filename(report: ProgressReport) -> str:
    return f"progress-report-{report.period_start:%Y%m%d}-{report.period_end:%Y%m%d}.pdf"


# --- what a report says --------------------------------------------------------------------------------------


@dataclass
class SessionLine:
    starts_at: datetime
    title: str
    coach: str
    status: str


@dataclass
class GoalLine:
    title: str
    status_label: str
    progress_percent: int | None
    latest_value: str
    milestones_done: int
    milestones_total: int


@dataclass
class ReportData:
    org_name: str
    athlete_name: str
    period_start: date
    period_end: date
    generated_on: date
    kind: str
    sessions: list[SessionLine] = field(default_factory=list)
    session_count: int = 0
    changes: list[proficiency.SkillChange] = field(default_factory=list)
    goals: list[GoalLine] = field(default_factory=list)
    weeks: list[programs.WeekCompliance] = field(default_factory=list)
    readiness: list[tuple[date, float]] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"Progress report: {self.athlete_name}"

    @property
    def period_label(self) -> str:
        return f"{self.period_start.day} {self.period_start:%b %Y} to {self.period_end.day} {self.period_end:%b %Y}"

    @property
    def compliance_percent(self) -> int | None:
        due = sum(w.done + w.partial + w.missed for w in self.weeks)
        if not due:
            return None
        return round(100 * sum(w.done + 0.5 * w.partial for w in self.weeks) / due)

    @property
    def readiness_average(self) -> float | None:
        return round(sum(v for _, v in self.readiness) / len(self.readiness), 2) if self.readiness else None


def _bounds(athlete: Membership, start: date, end: date) -> tuple[datetime, datetime]:
    zone = zone_named(athlete.user.timezone)
    return (datetime.combine(start, datetime.min.time(), zone),
            datetime.combine(end + timedelta(days=1), datetime.min.time(), zone))


def _sessions(athlete: Membership, start: date, end: date) -> tuple[int, list[SessionLine]]:
    """Sessions in the period (confirmed, running or ended bookings), newest first; at most 100 listed."""
    t = athlete.tenant_id
    since, until = _bounds(athlete, start, end)
    rows = db.session.execute(
        select(Booking.starts_at, Offering.title, Booking.status, Booking.coach_membership_id,
               func.count().over().label("total"))
        .join(Offering, (Offering.tenant_id == Booking.tenant_id) & (Offering.id == Booking.offering_id))
        .where(Booking.tenant_id == t, Booking.athlete_membership_id == athlete.id,
               Booking.status.in_(SESSION_STATUSES), Booking.starts_at >= since, Booking.starts_at < until)
        .order_by(Booking.starts_at.desc()).limit(100)).all()
    if not rows:
        return 0, []
    names = _names(t, {row.coach_membership_id for row in rows})
    zone = zone_named(athlete.user.timezone)  # the athlete's local day and time
    return rows[0].total, [SessionLine(row.starts_at.astimezone(zone), row.title,
                                       names.get(row.coach_membership_id, "Former member"), row.status)
                           for row in rows]


def _names(tenant_id: uuid.UUID, ids) -> dict[uuid.UUID, str]:
    ids = [i for i in ids if i]
    if not ids:
        return {}
    return {m.id: m.user.display_name for m in db.session.scalars(
        select(Membership).where(Membership.tenant_id == tenant_id, Membership.id.in_(ids)))}


def _skill_changes(athlete: Membership, start: date, end: date) -> list[proficiency.SkillChange]:
    """Skills whose level changed in the period (slice A's rule: the level before it, the last one in it)."""
    return proficiency.changes(athlete, start, end)


def _goals(athlete: Membership) -> list[GoalLine]:
    """The athlete's goals with their status (slice B's ``goals.summary``: on track, at risk, done...)."""
    return [GoalLine(v.goal.title, v.status_label, v.progress_percent,
                     "" if v.latest_value is None else _fmt(v.latest_value, v.goal.metric_unit),
                     v.milestones_done, v.milestones_total) for v in goals_service.summary(athlete)]


def _fmt(value, unit: str | None) -> str:
    shown = charts.format_number(float(value))
    return f"{shown} {unit}".strip() if unit else shown


def _compliance(athlete: Membership, start: date, end: date) -> list[programs.WeekCompliance]:
    """Program compliance per week of the period (slice C's ``programs.compliance``; at most its 104 weeks, the
    latest); nothing when no workout was scheduled in it."""
    weeks = min(104, (monday_of(end) - monday_of(start)).days // 7 + 1)
    found = programs.compliance(athlete, weeks=weeks, end=end)
    return found if any(week.scheduled for week in found) else []


def _readiness(athlete: Membership, start: date, end: date) -> list[tuple[date, float]]:
    """Readiness scores of the period, one per day; over three months, one per week (its mean)."""
    rows = db.session.execute(
        select(ReadinessCheckin.on_date, ReadinessCheckin.score)
        .where(ReadinessCheckin.tenant_id == athlete.tenant_id, ReadinessCheckin.athlete_membership_id == athlete.id,
               ReadinessCheckin.on_date >= start, ReadinessCheckin.on_date <= end)
        .order_by(ReadinessCheckin.on_date)).all()
    series = [(row.on_date, float(row.score)) for row in rows]
    if (end - start).days <= 92:
        return series
    buckets: dict[date, list[float]] = {}
    for day, value in series:
        buckets.setdefault(monday_of(day), []).append(value)
    return [(week, round(sum(vs) / len(vs), 2)) for week, vs in sorted(buckets.items())]


def gather(report: ProgressReport) -> ReportData:
    """Everything the report says, read in a fixed number of statements."""
    athlete = report.athlete
    org = db.session.get(Organization, report.tenant_id)
    count, sessions = _sessions(athlete, report.period_start, report.period_end)
    return ReportData(
        org_name=org.name, athlete_name=athlete.user.display_name, period_start=report.period_start,
        period_end=report.period_end, generated_on=athlete_today(athlete), kind=report.kind,
        sessions=sessions, session_count=count,
        changes=_skill_changes(athlete, report.period_start, report.period_end),
        goals=_goals(athlete), weeks=_compliance(athlete, report.period_start, report.period_end),
        readiness=_readiness(athlete, report.period_start, report.period_end))


@dataclass
class ReportCharts:
    readiness: charts.LineChart | None
    compliance: charts.StackedChart | None


def draw(data: ReportData) -> ReportCharts:
    """The charts' geometry (the same for the page and the PDF)."""
    readiness = charts.line(data.readiness, y_min=1, y_max=5, width=600, height=160, start=data.period_start,
                            end=data.period_end, max_gap_days=3 if (data.period_end - data.period_start).days <= 92
                            else 15) if data.readiness else None
    weeks = [(w.week_start, w.done, w.partial, w.missed) for w in data.weeks][-26:]
    compliance = charts.stacked_weeks(weeks, width=600, height=160) if weeks else None
    return ReportCharts(readiness, compliance)


def render_html(data: ReportData, drawn: ReportCharts) -> str:
    return render_template("progress/report_document.html", data=data, charts=drawn)


# --- the job ------------------------------------------------------------------------------------------------


@consumer(REPORT_REQUESTED)
def _requested(payload: dict) -> None:
    """Consumer of ``progress.report_requested``: queue the build once the event's transaction commits."""
    tenant_id, report_id = str(g.tenant_id), payload["report_id"]
    after_commit(lambda: enqueue_build(tenant_id, report_id))


def enqueue_build(tenant_id: str, report_id: str) -> None:
    queue("default").enqueue(build, tenant_id, report_id, job_timeout=600, result_ttl=3600,
                             failure_ttl=7 * 86400, retry=Retry(max=1, interval=[30]),
                             description=f"progress report {report_id}")


def _stage(tenant_id: uuid.UUID, report_id: uuid.UUID, name: str) -> None:
    progress, label = STAGES[name]
    db.session.execute(update(ProgressReport)
                       .where(ProgressReport.tenant_id == tenant_id, ProgressReport.id == report_id,
                              ProgressReport.status == "running")
                       .values(progress=progress, stage=label))
    db.session.commit()
    if STAGE_PAUSE:
        time.sleep(STAGE_PAUSE)


def build(tenant_id: str, report_id: str) -> str:
    """RQ entry point: build a queued report (``skipped`` when it is not queued: built, running or gone)."""
    app = get_app()
    tid, rid = uuid.UUID(tenant_id), uuid.UUID(report_id)
    with app.app_context(), tenancy.acting_for(tid):
        claimed = db.session.execute(
            update(ProgressReport)
            .where(ProgressReport.tenant_id == tid, ProgressReport.id == rid, ProgressReport.status == "queued")
            .values(status="running", progress=STAGES["gather"][0], stage=STAGES["gather"][1], error=None)).rowcount
        db.session.commit()
        if not claimed:
            return "skipped"
        try:
            _build(tid, rid)
        except Exception:
            db.session.rollback()
            log.exception("progress report %s failed", report_id)
            db.session.execute(update(ProgressReport)
                               .where(ProgressReport.tenant_id == tid, ProgressReport.id == rid)
                               .values(status="failed", stage="Failed", error=FAILED_MESSAGE, finished_at=clock.now()))
            db.session.commit()
            return "failed"
        return "ready"


def _build(tid: uuid.UUID, rid: uuid.UUID) -> None:

    report = db.session.get(ProgressReport, rid)
    data = gather(report)
    _stage(tid, rid, "charts")
    drawn = draw(data)
    _stage(tid, rid, "html")
    html = render_html(data, drawn)
    _stage(tid, rid, "pdf")
    document = pdf.render(data, drawn)
    _stage(tid, rid, "store")
    storage = get_storage()
    prefix = f"reports/{tid}/{rid}"
    with tempfile.TemporaryDirectory(prefix="coach-report-") as tmp:
        html_path, pdf_path = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        html_path.write_text(html, encoding="utf-8")
        pdf_path.write_bytes(document)
        storage.upload_file(html_path, f"{prefix}/report.html", "text/html; charset=utf-8")
        storage.upload_file(pdf_path, f"{prefix}/report.pdf", "application/pdf")
    _stage(tid, rid, "email")
    report = db.session.scalar(select(ProgressReport).where(ProgressReport.tenant_id == tid, ProgressReport.id == rid)
                               .with_for_update())
    if report is None or report.status != "running":
        db.session.rollback()
        return
    report.html_key, report.pdf_key, report.pdf_bytes = f"{prefix}/report.html", f"{prefix}/report.pdf", len(document)
    _email(report, data)
    stamp = clock.now()
    report.status, report.progress, report.stage = "ready", 100, "Ready"
    report.finished_at = report.emailed_at = stamp
    timeline.record(tid, report.athlete_membership_id, "report", report.id, stamp,
                    f"{'Weekly progress' if report.kind == 'weekly' else 'Progress'} report ready",
                    data.period_label)
    emit(REPORT_READY, {"report_id": str(report.id), "athlete_membership_id": str(report.athlete_membership_id)})
    db.session.commit()


def _email(report: ProgressReport, data: ReportData) -> None:
    """The link to the athlete, and to the guardian if one is set (in the transaction that marks it ready)."""
    athlete = report.athlete
    org = db.session.get(Organization, report.tenant_id)
    profile = profile_of(athlete)
    token = link_token(report)
    link = f"/o/{org.slug}/progress/reports/{report.id}/link?token={token}"
    page = f"/o/{org.slug}/progress/athletes/{athlete.id}/reports"
    subject = f"{'Weekly progress' if report.kind == 'weekly' else 'Progress'} report: {data.athlete_name}, " \
              f"{data.period_label}"
    recipients = [(athlete.user.email, athlete.user.display_name, False)]
    if profile is not None and profile.guardian_email and \
            profile.guardian_email.lower() != athlete.user.email.lower():
        recipients.append((profile.guardian_email, None, True))
    for address, name, guardian in recipients:
        queue_email(address, subject, "progress_report", org=org, data=data, link=link, page=page, name=name,
                    guardian=guardian, days=LINK_DAYS, compliance=data.compliance_percent,
                    readiness=data.readiness_average)


# --- weekly reports and the coaches' digest -----------------------------------------------------------------


def _duemonday_of(zone_name: str | None, at: datetime) -> date | None:
    """The Monday (local) when ``at`` is a Monday at or after 07:00 in that zone: its previous week is due."""
    local = at.astimezone(zone_named(zone_name))
    if local.weekday() != 0 or local.hour < WEEKLY_HOUR:
        return None
    return local.date()


def weekly_reports_for(tenant_id: uuid.UUID, at: datetime | None = None) -> int:
    """Create (once per athlete and week: the partial unique index) the weekly report of every athlete of the
    organization whose Monday 07:00 has come and who did not opt out; emit each new one."""
    at = at or clock.now()
    athletes = db.session.execute(
        select(Membership.id, Membership.user_id, AthleteProfile.weekly_report)
        .outerjoin(AthleteProfile, (AthleteProfile.tenant_id == Membership.tenant_id)
                   & (AthleteProfile.membership_id == Membership.id))
        .where(Membership.tenant_id == tenant_id, Membership.role == ATHLETE)).all()
    zones = _zones([row.user_id for row in athletes])
    created = 0
    for row in athletes:
        if row.weekly_report is False:
            continue
        monday = _duemonday_of(zones.get(row.user_id), at)
        if monday is None:
            continue
        start = monday - timedelta(days=7)
        new_id = db.session.execute(
            pg_insert(ProgressReport)
            .values(id=uuid.uuid4(), tenant_id=tenant_id, athlete_membership_id=row.id, kind="weekly",
                    period_start=start, period_end=start + timedelta(days=6), status="queued", progress=0,
                    stage="Waiting for a worker")
            .on_conflict_do_nothing(index_elements=["tenant_id", "athlete_membership_id", "period_start"],
                                    index_where=text("kind = 'weekly'"))
            .returning(ProgressReport.id)).scalar()
        if new_id is not None:
            emit(REPORT_REQUESTED, {"report_id": str(new_id)}, tenant_id=tenant_id)
            created += 1
    return created


def _zones(user_ids) -> dict[uuid.UUID, str]:
    ids = list(set(user_ids))
    if not ids:
        return {}
    return dict(db.session.execute(select(User.id, User.timezone).where(User.id.in_(ids))).all())


@dataclass
class DigestLine:
    athlete_id: uuid.UUID
    name: str
    sessions: int
    compliance: int | None
    scheduled: int
    flagged: bool
    readiness: list[float | None]
    sparkline: str
    goals_at_risk: int
    goals_active: int

    @property
    def compliance_bar(self) -> list[bool]:
        """Ten cells, filled for each 10 % of compliance (a table-drawn bar: mail clients strip SVG)."""
        filled = 0 if self.compliance is None else round(self.compliance / 10)
        return [n < filled for n in range(10)]


SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float | None], low: float = 1.0, high: float = 5.0) -> str:
    """``▁▃▇`` for values on ``low..high``; a day without a value is ``·``."""
    out = []
    for value in values:
        if value is None:
            out.append("·")
            continue
        share = (min(max(value, low), high) - low) / (high - low)
        out.append(SPARK[min(len(SPARK) - 1, int(share * len(SPARK)))])
    return "".join(out)


def digest_lines(tenant_id: uuid.UUID, week_start: date) -> list[DigestLine]:
    """One line per athlete of the organization for the week ``week_start..+6`` (a fixed number of statements:
    one per kind, whatever the number of athletes)."""
    week_end = week_start + timedelta(days=6)
    athletes = list(db.session.scalars(select(Membership).where(Membership.tenant_id == tenant_id,
                                                                Membership.role == ATHLETE)
                                       .order_by(Membership.created_at)))
    if not athletes:
        return []
    ids = [a.id for a in athletes]
    zones = {a.id: zone_named(a.user.timezone) for a in athletes}
    since = datetime.combine(week_start - timedelta(days=1), datetime.min.time(), ZoneInfo("UTC"))
    until = datetime.combine(week_end + timedelta(days=2), datetime.min.time(), ZoneInfo("UTC"))
    sessions: dict[uuid.UUID, int] = {}
    for row in db.session.execute(
            select(Booking.athlete_membership_id, Booking.starts_at)
            .where(Booking.tenant_id == tenant_id, Booking.athlete_membership_id.in_(ids),
                   Booking.status.in_(SESSION_STATUSES), Booking.starts_at >= since, Booking.starts_at < until)):
        sessions[row.athlete_membership_id] = sessions.get(row.athlete_membership_id, 0)
        if week_start <= row.starts_at.astimezone(zones[row.athlete_membership_id]).date() <= week_end:
            sessions[row.athlete_membership_id] += 1
    scores: dict[uuid.UUID, dict[date, float]] = {}
    baseline_from = week_start - timedelta(days=14)
    for row in db.session.execute(
            select(ReadinessCheckin.athlete_membership_id, ReadinessCheckin.on_date, ReadinessCheckin.score)
            .where(ReadinessCheckin.tenant_id == tenant_id, ReadinessCheckin.athlete_membership_id.in_(ids),
                   ReadinessCheckin.on_date >= baseline_from, ReadinessCheckin.on_date <= week_end)):
        scores.setdefault(row.athlete_membership_id, {})[row.on_date] = float(row.score)
    # Goals at risk by slice B's rule (three statements for everyone), of the athlete's active goals.
    risky = goals_service.at_risk_for(tenant_id, ids)
    active = dict(db.session.execute(
        select(Goal.athlete_membership_id, func.count())
        .where(Goal.tenant_id == tenant_id, Goal.athlete_membership_id.in_(ids), Goal.status == "active")
        .group_by(Goal.athlete_membership_id)).all())
    at_risk = {athlete_id: (risky.get(athlete_id, 0), count) for athlete_id, count in active.items()}
    compliance = programs.compliance_for(tenant_id, ids, week_start)
    lines = []
    for athlete in athletes:
        by_day = scores.get(athlete.id, {})
        week = [by_day.get(week_start + timedelta(days=n)) for n in range(7)]
        risk, active = at_risk.get(athlete.id, (0, 0))
        done = compliance.get(athlete.id)
        lines.append(DigestLine(athlete.id, athlete.user.display_name, sessions.get(athlete.id, 0),
                                done.percent if done else None, done.scheduled if done else 0,
                                _flagged(by_day, week_start), week, sparkline(week), risk, active))
    return lines


def _flagged(by_day: dict[date, float], week_start: date) -> bool:
    """Slice B's readiness rule applied to the week's last check-in: well below the 14 days before it."""
    days = [d for d in by_day if week_start <= d <= week_start + timedelta(days=6)]
    if not days:
        return False
    last = max(days)
    n, mean, sd = readiness_service.baseline([v for d, v in by_day.items()
                                              if last - timedelta(days=readiness_service.BASELINE_DAYS) <= d < last])
    return readiness_service.evaluate(by_day[last], n, mean, sd)


def digests_for(tenant_id: uuid.UUID, at: datetime | None = None) -> int:
    """Email each coach and admin whose Monday 07:00 has come their digest of last week, once: the
    ``coach_digests`` row is inserted first (ON CONFLICT DO NOTHING) and only the inserter sends."""
    at = at or clock.now()
    staff = list(db.session.scalars(select(Membership).where(Membership.tenant_id == tenant_id,
                                                             Membership.role.in_((COACH, ADMIN)))))
    org = db.session.get(Organization, tenant_id)
    sent = 0
    lines_by_week: dict[date, list[DigestLine]] = {}
    for coach in staff:
        monday = _duemonday_of(coach.user.timezone, at)
        if monday is None:
            continue
        week_start = monday - timedelta(days=7)
        inserted = db.session.execute(
            pg_insert(CoachDigest)
            .values(id=uuid.uuid4(), tenant_id=tenant_id, coach_membership_id=coach.id, week_start=week_start)
            .on_conflict_do_nothing(constraint="uq_coach_digests_week").returning(CoachDigest.id)).scalar()
        if inserted is None:
            continue
        if week_start not in lines_by_week:
            lines_by_week[week_start] = digest_lines(tenant_id, week_start)
        lines = lines_by_week[week_start]
        if not lines:
            continue
        queue_email(coach.user.email, f"Your athletes last week ({week_start:%d %b}): {org.name}", "coach_digest",
                    org=org, coach=coach, lines=lines, week_start=week_start,
                    week_end=week_start + timedelta(days=6), page=f"/o/{org.slug}/progress")
        sent += 1
    return sent


def _organizations() -> list[uuid.UUID]:
    return list(db.session.scalars(select(Organization.id).order_by(Organization.id)))


@periodic(every=900, name="progress_weekly")
def weekly_sweep() -> int:
    """Every 15 minutes: the weekly reports and the coaches' digests that are due (each organization in its own
    transaction; running it twice, or twice at once, sends nothing twice)."""
    tenants = _organizations()
    db.session.commit()
    return each_tenant(tenants, lambda t: weekly_reports_for(t) + digests_for(t), "weekly progress reports")
