"""Data exports: a person's own data (every organization they belong to) and an organization's whole data.

Asking writes a ``queued`` export and an ``EXPORT_REQUESTED`` event in one transaction; its consumer queues
:func:`build` once that commits. The job claims the export (``queued`` → ``running``, one statement), streams a
ZIP (zipstream-ng) of JSON files, one per domain, and the original media files, straight into storage by a
multipart upload as the bytes come: no file on disk, never the whole archive (nor one media file) in memory.
Progress is written as it goes, each time in a short transaction of its own on a separate connection (the
export's reads hold a server-side cursor on the session's). At the end the export is ``ready`` for seven days and
its link emailed; a sweep deletes what expired.

The link is signed (itsdangerous, a salt per kind) with the export's id and expires with it; the download view
also checks that the export is the caller's (a person's) or that the caller is an admin of its organization.
"""
from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

import zipstream
from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from rq import Retry
from sqlalchemy import Select, and_, or_, select, text, update

from coach import clock, tenancy
from coach.accounts import security_log
from coach.accounts.models import AccountExport, User
from coach.errors import DomainError
from coach.extensions import db
from coach.ids import parse_uuid
from coach.media.storage import StorageError, get_storage
from coach.orgs.models import ADMIN, Membership, Organization
from coach.platform import audit
from coach.platform.jobs import each_tenant, get_app
from coach.platform.mail import queue_email
from coach.platform.outbox import emit
from coach.platform.queues import queue
from coach.privacy.events import EXPORT_REQUESTED
from coach.privacy.models import OrgExport

log = logging.getLogger(__name__)

ACCOUNT, ORGANIZATION = "account", "organization"
KEEP_DAYS = 7  # a ready export (and its link) lives a week
DOWNLOAD_URL_SECONDS = 300  # the signed storage URL a download redirects to
STUCK_AFTER = timedelta(hours=3)  # a "running" export older than this lost its worker: it fails, and may be asked again
JOB_TIMEOUT = 2 * 3600
BUILDING = ("queued", "running")
FAILED_MESSAGE = "We could not make this export. Ask for it again; if it fails again, tell us."
JSON_WEIGHT = 64 * 1024  # a JSON file counts as this many bytes for the progress bar
PROGRESS_EVERY = 0.5  # seconds between progress writes at most
# Columns never exported: secrets and their hashes, whoever's they are, and idempotency plumbing.
SECRET_COLUMNS = frozenset({"password_hash", "totp_secret", "token_hash", "undo_token_hash", "code_hash",
                            "fingerprint", "response_body", "response_headers", "public_key", "credential_id"})
# Tenant tables an organization's export leaves out: delivery plumbing, and the exports themselves.
PLUMBING_TABLES = frozenset({"outbox_events", "processed_events", "idempotency_keys", "org_exports"})

# What an account export holds, in the words of the page and the email.
ACCOUNT_CONTENTS = (
    "profile.json: your account, passkeys and sessions (no password or secret)",
    "memberships.json: the organizations you belong to and your role",
    "security_log.json: your security log",
    "organizations/<name>/spaces.json: your posts, comments, reactions, mentions and spaces",
    "organizations/<name>/chat.json: the chat messages you wrote",
    "organizations/<name>/bookings.json: your sessions, and as a coach your offerings and availability",
    "organizations/<name>/payments.json: your payments, receipts, credits and subscriptions (coaches: earnings)",
    "organizations/<name>/progress.json: your goals, habits, readiness check-ins, signed session records, "
    "skills, workouts, timeline and reports",
    "organizations/<name>/media.json and media/<name>/: your uploads' details and their original files",
    "organizations/<name>/notifications.json: your notifications and notification settings",
    "organizations/<name>/directory.json: your coach profile and what it teaches, the reviews you wrote and "
    "received (with replies) and your rating, the reviews you flagged or found helpful",
)
ORG_CONTENTS = (
    "organization.json and members.json: the organization's settings and its members",
    "<domain>.json: every row of the organization, one file per part of the app (spaces, chat, booking, media, "
    "payments, progress, directory (coach profiles, taxonomy, reviews, ratings), notifications, audit trail...)",
    "media/: the original files of every upload",
)


class ExportError(DomainError):
    """An export cannot be asked for or opened."""


# --- asking ----------------------------------------------------------------------------------------------------


def _building(model, *where) -> bool:
    return db.session.scalar(select(model.id).where(*where, _live(model)).limit(1)) is not None


def _live(model):
    """Queued or running, and not for hours: past that its job was lost (a worker killed twice, a queueing that
    failed after the commit), and the person may ask again."""
    stale = clock.now() - STUCK_AFTER
    return or_(and_(model.status == "queued", model.created_at > stale),
               and_(model.status == "running", model.started_at > stale))


def request_account_export(user: User) -> AccountExport:
    """Ask for an export of ``user``'s own data (one at a time: a second while one is being made is refused)."""
    # The user's row, locked, serializes two clicks in two tabs: one export, one refusal.
    db.session.execute(select(User.id).where(User.id == user.id).with_for_update())
    if _building(AccountExport, AccountExport.user_id == user.id):
        raise ExportError("Your export is being made already. It will be ready in a few minutes; you will get an "
                          "email.", status=409)
    export = AccountExport(id=uuid.uuid4(), user_id=user.id, status="queued", progress=0)
    db.session.add(export)
    db.session.flush()
    security_log.record(user.id, "export.requested", export_id=str(export.id))
    emit(EXPORT_REQUESTED, {"kind": ACCOUNT, "export_id": str(export.id)}, tenant_id=None)
    return export


def request_org_export(org: Organization, admin_membership: Membership) -> OrgExport:
    """Ask for an export of all of ``org``'s data (its admins only; one at a time; audited)."""
    if admin_membership.tenant_id != org.id or admin_membership.role != ADMIN:
        raise ExportError("Only the organization's admins can export it.", status=403)
    db.session.execute(select(Organization.id).where(Organization.id == org.id).with_for_update())
    if _building(OrgExport, OrgExport.tenant_id == org.id):
        raise ExportError("An export of this organization is being made already. Wait for it to finish.",
                          status=409)
    export = OrgExport(id=uuid.uuid4(), tenant_id=org.id, requested_by_membership_id=admin_membership.id,
                       status="queued", progress=0)
    db.session.add(export)
    db.session.flush()
    audit.record("org.export_requested", actor=admin_membership.user, target_type="org_export",
                 target_id=export.id)
    emit(EXPORT_REQUESTED, {"kind": ORGANIZATION, "export_id": str(export.id)}, tenant_id=org.id)
    return export


def account_exports(user: User, limit: int = 10) -> list[AccountExport]:
    return list(db.session.scalars(select(AccountExport).where(AccountExport.user_id == user.id)
                                   .order_by(AccountExport.created_at.desc(), AccountExport.id.desc()).limit(limit)))


def org_exports(org: Organization, limit: int = 10) -> list[OrgExport]:
    return list(db.session.scalars(select(OrgExport).where(OrgExport.tenant_id == org.id)
                                   .order_by(OrgExport.created_at.desc(), OrgExport.id.desc()).limit(limit)))


def load_account_export(user: User, export_id) -> AccountExport:
    """``user``'s export, else 404 (another person's export is as unknown as a missing one)."""
    eid = parse_uuid(str(export_id))
    export = eid and db.session.scalar(select(AccountExport).where(AccountExport.id == eid,
                                                                   AccountExport.user_id == user.id))
    if not export:
        raise ExportError("No such export.", status=404)
    return export


def load_org_export(org: Organization, export_id) -> OrgExport:
    eid = parse_uuid(str(export_id))
    export = eid and db.session.scalar(select(OrgExport).where(OrgExport.tenant_id == org.id, OrgExport.id == eid))
    if not export:
        raise ExportError("No such export.", status=404)
    return export


# --- the link ----------------------------------------------------------------------------------------------------


def _serializer(kind: str) -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=f"privacy-export-{kind}")


def link_token(kind: str, export) -> str:
    """A token naming this export and its kind (a person's token never opens an organization's export: another
    salt), good until the export expires."""
    expires = export.expires_at or clock.now() + timedelta(days=KEEP_DAYS)
    return _serializer(kind).dumps({"x": str(export.id), "k": kind, "e": int(expires.timestamp())})


def check_token(kind: str, token: str | None, export_id) -> None:
    """Refuse (403 tampered or another export's; 410 expired) unless ``token`` names ``export_id`` of ``kind``."""
    refused = ExportError("This download link is not valid. Open your latest export from the privacy page.",
                          status=403)
    try:
        data = _serializer(kind).loads(token or "")
    except BadSignature:
        raise refused from None
    if not isinstance(data, dict) or data.get("k") != kind or data.get("x") != str(export_id) \
            or not isinstance(data.get("e"), int):
        raise refused
    if data["e"] <= clock.now().timestamp():
        raise ExportError("This download link has expired. Ask for a new export.", status=410)


def download_url(export) -> str:
    """A short-lived signed storage URL of a ready export's ZIP (410 once it expired, 409 while it builds)."""
    if export.status == "expired" or (export.expires_at is not None and export.expires_at <= clock.now()):
        raise ExportError("This export has expired and was deleted. Ask for a new one.", status=410)
    if export.status != "ready" or not export.object_key:
        raise ExportError("This export is not ready.", status=409)
    return get_storage().get_url(export.object_key, DOWNLOAD_URL_SECONDS, content_type="application/zip",
                                 filename=f"coach-export-{export.created_at:%Y-%m-%d}.zip", download=True)


# --- the job -----------------------------------------------------------------------------------------------------


def enqueue_build(kind: str, export_id: str, tenant_id: str | None) -> None:
    queue("default").enqueue(build, kind, export_id, tenant_id, job_timeout=JOB_TIMEOUT, result_ttl=3600,
                             failure_ttl=7 * 86400, retry=Retry(max=1, interval=[60]),
                             description=f"{kind} export {export_id}")


def _model(kind: str):
    return AccountExport if kind == ACCOUNT else OrgExport


def _where(kind: str, export_id: uuid.UUID, tenant_id: uuid.UUID | None) -> list:
    model = _model(kind)
    return [model.id == export_id] + ([OrgExport.tenant_id == tenant_id] if kind == ORGANIZATION else [])


def build(kind: str, export_id: str, tenant_id: str | None) -> str:
    """RQ entry point: build a queued export (``skipped`` when it is not queued: made, running or gone)."""
    app = get_app()
    eid = uuid.UUID(export_id)
    tid = uuid.UUID(tenant_id) if tenant_id else None
    model = _model(kind)
    with app.app_context(), tenancy.acting_for(tid):
        claimed = db.session.execute(
            update(model).where(*_where(kind, eid, tid), model.status == "queued")
            .values(status="running", progress=0, started_at=clock.now(), error=None)).rowcount
        db.session.commit()
        if not claimed:
            return "skipped"
        try:
            _build(kind, eid, tid)
        except Exception:
            db.session.rollback()
            log.exception("%s export %s failed", kind, export_id)
            with tenancy.acting_for(tid):
                db.session.execute(update(model).where(*_where(kind, eid, tid))
                                   .values(status="failed", error=FAILED_MESSAGE, finished_at=clock.now()))
                db.session.commit()
            return "failed"
        return "ready"


@dataclass
class Entry:
    """One file of the ZIP: its name, how to produce its bytes (called when the stream reaches it), its weight
    on the progress bar, and whether it is worth compressing."""

    arcname: str
    produce: Callable[[], Iterator[bytes]]
    weight: int = JSON_WEIGHT
    compress: bool = True


class Progress:
    """The progress bar of one export: bytes of the plan done, written at most every half second, each write a
    short transaction of its own on a separate connection (with the organization's setting for RLS)."""

    def __init__(self, kind: str, export_id: uuid.UUID, tenant_id: uuid.UUID | None, total: int):
        self.model, self.where = _model(kind), _where(kind, export_id, tenant_id)
        self.tenant_id, self.total, self.done, self.shown, self.at = tenant_id, max(total, 1), 0, 0, 0.0

    def add(self, amount: int) -> None:
        self.done += amount
        # 99 at most: 100 is the export's "ready", written with it.
        percent = min(99, int(99 * self.done / self.total))
        if percent > self.shown and time.monotonic() - self.at >= PROGRESS_EVERY:
            self.write(percent)

    def write(self, percent: int) -> None:
        with db.engine.begin() as conn:
            if self.tenant_id is not None:
                conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(self.tenant_id)})
            conn.execute(update(self.model).where(*self.where, self.model.status == "running")
                         .values(progress=percent))
        self.shown, self.at = percent, time.monotonic()


def _build(kind: str, eid: uuid.UUID, tid: uuid.UUID | None) -> None:
    model = _model(kind)
    export = db.session.scalar(select(model).where(*_where(kind, eid, tid)))
    if kind == ACCOUNT:
        user = db.session.get(User, export.user_id)
        entries, key = account_plan(user), f"exports/accounts/{user.id}/{eid}.zip"
    else:
        org = db.session.get(Organization, tid)
        # Under the organization's own folder, so closing it (which deletes that folder) takes its exports too.
        entries, key = org_plan(org), f"{tid}/exports/{eid}.zip"
    db.session.commit()  # the plan's reads are done: the stream starts a transaction of its own
    progress = Progress(kind, eid, tid, sum(entry.weight for entry in entries))
    size = get_storage().upload_stream(zip_stream(entries, progress), key, "application/zip")
    try:
        tenancy.activate(tid)
        export = db.session.scalar(select(model).where(*_where(kind, eid, tid)).with_for_update())
        if export is None or export.status != "running":  # deleted or failed meanwhile: keep nothing
            raise LookupError("the export is gone")
        now = clock.now()
        export.status, export.progress, export.object_key, export.size_bytes = "ready", 100, key, size
        export.finished_at, export.expires_at = now, now + timedelta(days=KEEP_DAYS)
        _email(kind, export)
        db.session.commit()
    except Exception:
        db.session.rollback()
        get_storage().delete([key])  # no row points at it: it would never be swept
        raise


def zip_stream(entries: list[Entry], progress: Progress | None = None) -> Iterator[bytes]:
    """The ZIP of ``entries``, as bytes while it is made (each entry's producer runs when the stream reaches
    it). JSON is deflated; media files, already compressed, are stored."""
    archive = zipstream.ZipStream(compress_type=zipstream.ZIP_DEFLATED, sized=False)
    for entry in entries:
        archive.add(_counted(entry, progress), entry.arcname,
                    compress_type=zipstream.ZIP_DEFLATED if entry.compress else zipstream.ZIP_STORED)
    yield from archive


def _counted(entry: Entry, progress: Progress | None) -> Iterator[bytes]:
    produced = 0
    for chunk in entry.produce():
        if chunk:
            yield chunk
            produced += len(chunk)
            if progress is not None and not entry.compress:  # a large file moves the bar as it goes
                progress.add(len(chunk))
    if progress is not None:
        progress.add(entry.weight - produced if not entry.compress else entry.weight)


def _email(kind: str, export) -> None:
    """The link (in the transaction that marks the export ready)."""
    token = link_token(kind, export)
    if kind == ACCOUNT:
        user = db.session.get(User, export.user_id)
        security_log.record(user.id, "export.ready", export_id=str(export.id))
        tenancy.activate(None)  # a platform email: no organization's outbox
        queue_email(user.email, "Your data export is ready", "privacy_export", name=user.display_name,
                    org=None, contents=ACCOUNT_CONTENTS, days=KEEP_DAYS, size=export.size_bytes,
                    link=f"/account/privacy/exports/{export.id}/download?token={token}", page="/account/privacy")
        return
    org = db.session.get(Organization, export.tenant_id)
    asker = export.requested_by_membership_id and db.session.scalar(
        select(Membership).where(Membership.tenant_id == org.id, Membership.id == export.requested_by_membership_id))
    audit.record("org.export_ready", target_type="org_export", target_id=export.id,
                 details={"size_bytes": export.size_bytes})
    if asker is not None:
        queue_email(asker.user.email, f"The export of {org.name} is ready", "privacy_export",
                    name=asker.user.display_name, org=org, contents=ORG_CONTENTS, days=KEEP_DAYS,
                    size=export.size_bytes, link=f"/o/{org.slug}/privacy/exports/{export.id}/download?token={token}",
                    page=f"/o/{org.slug}/privacy")


# --- what goes in ------------------------------------------------------------------------------------------------


def _plain(value):
    if isinstance(value, (uuid.UUID, Decimal)):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (bytes, memoryview)):
        return None  # binary columns are keys and hashes: not the person's data
    return str(value)


def _row_json(row) -> bytes:
    return json.dumps({k: v for k, v in row.items() if k not in SECRET_COLUMNS}, default=_plain,
                      ensure_ascii=False).encode()


def json_file(sections: list[tuple[str, Select]], tenant_id: uuid.UUID | None = None,
              user_id: uuid.UUID | None = None) -> Callable[[], Iterator[bytes]]:
    """A producer of one JSON object ``{"<section>": [rows...], ...}``, written row by row as the database sends
    them (``yield_per``), acting for ``tenant_id`` so RLS applies."""

    def produce() -> Iterator[bytes]:
        tenancy.activate(tenant_id, user_id)
        yield b"{"
        for n, (name, query) in enumerate(sections):
            yield f'{"," if n else ""}\n"{name}": ['.encode()
            rows = db.session.execute(query.execution_options(yield_per=500)).mappings()
            for i, row in enumerate(rows):
                yield (b",\n  " if i else b"\n  ") + _row_json(row)
            yield b"]"
        yield b"\n}\n"

    return produce


def _bytes_of(data: bytes) -> Callable[[], Iterator[bytes]]:
    return lambda: iter([data])


def _media_file(key: str) -> Callable[[], Iterator[bytes]]:
    return lambda: get_storage().read_chunks(key)


_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def _safe_name(name: str | None) -> str:
    return (_UNSAFE.sub("_", name or "").strip(" .") or "file")[:80]


def _tables():
    return db.metadata.tables


def _media_entries(tenant_id: uuid.UUID, folder: str, owner_id: uuid.UUID | None = None) -> list[Entry]:
    """The originals of the organization's uploads (``owner_id``'s only, if given) that are in storage."""
    items = _tables()["media_items"]
    query = select(items.c.id, items.c.filename, items.c.original_key).where(
        items.c.tenant_id == tenant_id, items.c.original_key.is_not(None), items.c.deleted_at.is_(None),
        items.c.status.in_(("processing", "ready", "failed")))
    if owner_id is not None:
        query = query.where(items.c.owner_membership_id == owner_id)
    storage, entries = get_storage(), []
    for row in db.session.execute(query.order_by(items.c.created_at, items.c.id)):
        size = storage.size_of(row.original_key)
        if size is None:  # never stored, or gone: nothing to copy
            continue
        entries.append(Entry(f"{folder}/{row.id}-{_safe_name(row.filename)}", _media_file(row.original_key),
                             weight=max(size, 1), compress=False))
    return entries


def _person_sections(t: uuid.UUID, m: uuid.UUID) -> dict[str, list[tuple[str, Select]]]:
    """What is about or by membership ``m`` of organization ``t``, per domain (one JSON file each)."""
    T = _tables()

    def rows(name: str, *where):
        table = T[name]
        return select(table).where(table.c.tenant_id == t, *where)

    def by(name: str, column: str):  # the table's rows whose ``column`` is the member
        return rows(name, T[name].c[column] == m)

    def ids(name: str, *where):
        table = T[name]
        return select(table.c.id).where(table.c.tenant_id == t, *where)

    c = {name: T[name].c for name in T}
    my_posts = ids("posts", c["posts"].author_membership_id == m)
    my_payments = ids("payments", or_(c["payments"].athlete_membership_id == m,
                                      c["payments"].coach_membership_id == m))
    my_grants = ids("credit_grants", c["credit_grants"].athlete_membership_id == m)
    my_goals = ids("goals", c["goals"].athlete_membership_id == m)
    my_habits = ids("habits", c["habits"].athlete_membership_id == m)
    my_logs = ids("workout_logs", c["workout_logs"].athlete_membership_id == m)
    my_records = ids("session_records", c["session_records"].athlete_membership_id == m,
                     c["session_records"].signed_at.is_not(None))
    my_profiles = ids("coach_profiles", c["coach_profiles"].coach_membership_id == m)
    my_terms = select(c["coach_profile_terms"].term_id).where(c["coach_profile_terms"].tenant_id == t,
                                                              c["coach_profile_terms"].profile_id.in_(my_profiles))
    return {
        "spaces": [
            ("spaces", rows("spaces", c["spaces"].id.in_(
                select(c["space_members"].space_id).where(c["space_members"].tenant_id == t,
                                                          c["space_members"].membership_id == m)))),
            ("space_memberships", by("space_members", "membership_id")),
            ("posts", by("posts", "author_membership_id")),
            ("post_revisions", rows("post_revisions", c["post_revisions"].post_id.in_(my_posts))),
            ("comments", by("comments", "author_membership_id")),
            ("reactions", by("reactions", "membership_id")),
            ("mentions", by("post_mentions", "membership_id")),
            ("flags", by("flags", "membership_id")),
        ],
        "chat": [
            ("messages", by("messages", "author_membership_id")),
            ("conversation_reads", by("conversation_reads", "membership_id")),
        ],
        "bookings": [
            ("bookings", rows("bookings", or_(c["bookings"].athlete_membership_id == m,
                                              c["bookings"].coach_membership_id == m,
                                              c["bookings"].booked_by_membership_id == m))),
            ("offerings", by("offerings", "coach_membership_id")),
            ("calendar", by("coach_calendars", "coach_membership_id")),
            ("availability_rules", by("availability_rules", "coach_membership_id")),
            ("availability_overrides", rows("availability_overrides",
                                            c["availability_overrides"].coach_membership_id == m)),
            ("time_off", by("time_off", "coach_membership_id")),
        ],
        "payments": [
            ("payments", rows("payments", c["payments"].id.in_(my_payments))),
            ("receipts", rows("invoices", c["invoices"].payment_id.in_(my_payments))),
            ("credits", by("credit_grants", "athlete_membership_id")),
            ("credit_uses", rows("credit_uses", c["credit_uses"].grant_id.in_(my_grants))),
            ("subscriptions", by("subscriptions", "athlete_membership_id")),
            ("products", by("products", "coach_membership_id")),
            ("earnings", by("earnings", "coach_membership_id")),
            ("payouts", by("payouts", "coach_membership_id")),
        ],
        "progress": [
            ("profile", by("athlete_profiles", "membership_id")),
            ("goals", by("goals", "athlete_membership_id")),
            ("goal_values", rows("goal_values", c["goal_values"].goal_id.in_(my_goals))),
            ("goal_milestones", rows("goal_milestones", c["goal_milestones"].goal_id.in_(my_goals))),
            ("habits", by("habits", "athlete_membership_id")),
            ("habit_checkins", rows("habit_checkins", c["habit_checkins"].habit_id.in_(my_habits))),
            ("readiness_checkins", by("readiness_checkins", "athlete_membership_id")),
            # Records are the athlete's once signed (drafts are the coach's working notes).
            ("session_records", rows("session_records", c["session_records"].id.in_(my_records))),
            ("record_skill_levels", rows("record_skill_levels", c["record_skill_levels"].record_id.in_(my_records))),
            ("skill_levels", by("athlete_skill_levels", "athlete_membership_id")),
            ("program_assignments", by("program_assignments", "athlete_membership_id")),
            ("workout_logs", by("workout_logs", "athlete_membership_id")),
            ("workout_log_exercises", rows("workout_log_exercises", c["workout_log_exercises"].log_id.in_(my_logs))),
            ("workout_comments", rows("workout_comments", or_(c["workout_comments"].author_membership_id == m,
                                                              c["workout_comments"].log_id.in_(my_logs)))),
            ("timeline", rows("timeline_entries", c["timeline_entries"].athlete_membership_id == m,
                              c["timeline_entries"].coaches_only.is_(False))),
            ("reports", by("progress_reports", "athlete_membership_id")),
            # Coaches' private notes about an athlete are the organization's (its export has them); the notes a
            # coach wrote are theirs.
            ("coach_notes_written", by("coach_notes", "author_membership_id")),
        ],
        "media": [
            ("media_items", by("media_items", "owner_membership_id")),
            ("review_comments", by("media_comments", "author_membership_id")),
        ],
        "notifications": [
            ("notifications", by("notifications", "membership_id")),
            ("preferences", by("notification_preferences", "membership_id")),
        ],
        # Reviews received are about the coach (with the athletes' words, as the coach's own pages show them).
        "directory": [
            ("coach_profiles", by("coach_profiles", "coach_membership_id")),
            ("profile_terms", rows("directory_terms", c["directory_terms"].id.in_(my_terms))),
            ("reviews_written", by("reviews", "athlete_membership_id")),
            ("reviews_received", by("reviews", "coach_membership_id")),
            ("rating", by("coach_ratings", "coach_membership_id")),
            ("review_flags", by("review_flags", "membership_id")),
            ("helpful_votes", by("review_votes", "membership_id")),
        ],
    }


def _readme(title: str, contents: tuple[str, ...], files: list[str]) -> bytes:
    lines = [title, "", "What is inside:", *(f"- {line}" for line in contents), "",
             "Times are UTC (ISO 8601); money is in minor units (cents) with its currency.", "", "Files:",
             *(f"  {name}" for name in files), ""]
    return "\n".join(lines).encode()


def account_plan(user: User) -> list[Entry]:
    """The files of ``user``'s export: account-wide ones, then each organization's (acting for each in turn so
    RLS applies), then the original media files."""
    T = _tables()
    users, sessions, passkeys, events = T["users"], T["user_sessions"], T["passkeys"], T["security_events"]
    tenancy.activate(None, user.id)
    memberships = db.session.execute(
        select(Membership.id, Membership.tenant_id, Membership.role, Membership.created_at, Organization.name,
               Organization.slug)
        .join(Organization, Organization.id == Membership.tenant_id)
        .where(Membership.user_id == user.id).order_by(Organization.name)).all()
    listing = json.dumps([{"organization": row.name, "slug": row.slug, "role": row.role, "membership_id": row.id,
                           "joined": row.created_at} for row in memberships], default=_plain, indent=1).encode()
    entries = [
        Entry("profile.json", json_file([
            ("account", select(users).where(users.c.id == user.id)),
            ("passkeys", select(passkeys.c.name, passkeys.c.created_at, passkeys.c.last_used_at)
             .where(passkeys.c.user_id == user.id)),
            ("sessions", select(sessions).where(sessions.c.user_id == user.id).order_by(sessions.c.created_at))])),
        Entry("memberships.json", _bytes_of(listing)),
        Entry("security_log.json", json_file([
            ("events", select(events).where(events.c.user_id == user.id).order_by(events.c.created_at))])),
    ]
    media: list[Entry] = []
    for row in memberships:
        folder = _safe_name(row.slug)
        for domain, sections in _person_sections(row.tenant_id, row.id).items():
            entries.append(Entry(f"organizations/{folder}/{domain}.json", json_file(sections, row.tenant_id, user.id)))
        tenancy.activate(row.tenant_id, user.id)
        media += _media_entries(row.tenant_id, f"media/{folder}", owner_id=row.id)
    tenancy.activate(None, user.id)
    entries += media
    readme = _readme(f"Your data from Coach ({user.email}), exported {clock.now():%Y-%m-%d %H:%M} UTC.",
                     ACCOUNT_CONTENTS, [e.arcname for e in entries])
    return [Entry("README.txt", _bytes_of(readme)), *entries]


def _domain_of(table_name: str) -> str:
    """The domain a tenant table belongs to (the package of its model): one JSON file per domain."""
    for mapper in db.Model.registry.mappers:
        if mapper.local_table is not None and mapper.local_table.name == table_name:
            domain = mapper.class_.__module__.split(".")[1]
            return "audit" if domain == "platform" else domain
    return "other"


def org_plan(org: Organization) -> list[Entry]:
    """The files of ``org``'s export: its settings, members, every tenant table's rows grouped by domain, and the
    original files of its uploads (acting for the organization: RLS shows its rows and no other's)."""
    T = _tables()
    tenancy.activate(org.id)
    orgs, users, memberships = T["organizations"], T["users"], T["memberships"]
    by_domain: dict[str, list[tuple[str, Select]]] = {}
    for table in db.metadata.sorted_tables:
        if "tenant_id" not in table.c or table.name in PLUMBING_TABLES or table.name == "memberships":
            continue
        by_domain.setdefault(_domain_of(table.name), []).append(
            (table.name, select(table).where(table.c.tenant_id == org.id)))
    entries = [
        Entry("organization.json", json_file([("organization", select(orgs).where(orgs.c.id == org.id))], org.id)),
        Entry("members.json", json_file([("members", select(
            memberships, users.c.email, users.c.display_name, users.c.timezone)
            .join(users, users.c.id == memberships.c.user_id)
            .where(memberships.c.tenant_id == org.id).order_by(memberships.c.created_at))], org.id)),
    ]
    entries += [Entry(f"{domain}.json", json_file(sections, org.id)) for domain, sections in sorted(by_domain.items())]
    entries += _media_entries(org.id, "media")
    readme = _readme(f"The data of {org.name} on Coach, exported {clock.now():%Y-%m-%d %H:%M} UTC.", ORG_CONTENTS,
                     [e.arcname for e in entries])
    return [Entry("README.txt", _bytes_of(readme)), *entries]


# --- expiry ------------------------------------------------------------------------------------------------------


def _expire(model, where: list) -> int:
    """Delete the objects of ``model``'s exports past their time and mark them expired; fail the ones whose job
    was lost (queued or running for hours)."""
    now = clock.now()
    done = 0
    for export in db.session.scalars(select(model).where(*where, model.status == "ready", model.expires_at <= now)
                                     .with_for_update(skip_locked=True)):
        if export.object_key:
            try:
                get_storage().delete([export.object_key])
            except StorageError:
                log.exception("could not delete the expired export %s", export.id)
                continue
        export.status, export.object_key = "expired", None
        done += 1
    db.session.execute(update(model).where(*where, model.status.in_(BUILDING), ~_live(model))
                       .values(status="failed", error=FAILED_MESSAGE, finished_at=now))
    return done


def expire_account_exports() -> int:
    tenancy.deactivate()
    done = _expire(AccountExport, [])
    db.session.commit()
    return done


def expire_org_exports() -> int:
    # Under RLS no organization's exports are visible without acting for it: look in each, one transaction each.
    tenants = list(db.session.scalars(select(Organization.id).order_by(Organization.id)))
    db.session.commit()
    return each_tenant(tenants, lambda t: _expire(OrgExport, [OrgExport.tenant_id == t]), "expiring exports")
