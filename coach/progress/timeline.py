"""One timeline per athlete: every domain action that matters to their development writes an entry in the
same transaction (``record``), keyed by what it is about, so writing it again (a retried job, an edit) updates
the entry instead of adding one. Pages read it newest first, a keyset page at a time."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert

from coach.extensions import db
from coach.progress.models import TIMELINE_KINDS, TimelineEntry

TITLE_MAX, DETAIL_MAX = 200, 500


def _clip(text: str, limit: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def record(tenant_id: uuid.UUID, athlete_id: uuid.UUID, kind: str, subject_id: uuid.UUID, occurred_at: datetime,
           title: str, detail: str = "", *, coaches_only: bool = False) -> None:
    """Write (or rewrite) the entry for ``(kind, subject_id)``."""
    if kind not in TIMELINE_KINDS:
        raise ValueError(f"unknown timeline kind {kind!r}")
    values = {"title": _clip(title, TITLE_MAX), "detail": _clip(detail, DETAIL_MAX), "occurred_at": occurred_at,
              "coaches_only": coaches_only}
    db.session.execute(
        pg_insert(TimelineEntry)
        .values(id=uuid.uuid4(), tenant_id=tenant_id, athlete_membership_id=athlete_id, kind=kind,
                subject_id=subject_id, **values)
        .on_conflict_do_update(constraint="uq_timeline_entries_subject", set_=values))


def remove(tenant_id: uuid.UUID, kind: str, subject_id: uuid.UUID) -> None:
    """Take the entry of something that no longer exists (or no longer counts) off the timeline."""
    db.session.execute(delete(TimelineEntry).where(TimelineEntry.tenant_id == tenant_id, TimelineEntry.kind == kind,
                                                   TimelineEntry.subject_id == subject_id))
