"""The audit trail: ``record`` appends one event in the caller's transaction.

The table is append-only (the runtime role may only INSERT and SELECT; a trigger
refuses UPDATE and DELETE for everyone), so what is written here stays.
"""
from __future__ import annotations

import csv
import io
import ipaddress
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from flask import g, has_request_context, request
from sqlalchemy import select

from coach.extensions import db
from coach.platform.models import AuditEvent
from coach.platform.pagination import Page, newest_first

PAGE_SIZE = 50


def _client_ip() -> str | None:
    if not has_request_context() or not request.remote_addr:
        return None
    try:
        return str(ipaddress.ip_address(request.remote_addr))
    except ValueError:
        return None


def record(action: str, *, actor=None, target_type: str | None = None, target_id=None,
           details: dict | None = None, tenant_id: uuid.UUID | None = None, actor_label: str | None = None) -> None:
    """Append an audit event for the active organization (or ``tenant_id``; ``None`` = platform event).

    :param actor: the user who acted (defaults to nobody, e.g. a failed login).
    """
    if tenant_id is None:
        tenant_id = g.get("tenant_id")
    db.session.add(AuditEvent(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        actor_user_id=actor.id if actor is not None else None,
        actor_label=actor_label or (actor.email if actor is not None else None),
        action=action,
        target_type=target_type,
        target_id=str(target_id) if target_id is not None else None,
        details=details or {},
        ip=_client_ip(),
        request_id=g.get("request_id"),
    ))
    db.session.flush()


@dataclass
class AuditFilter:
    actor: str | None = None  # email or part of it
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _filtered(tenant_id: uuid.UUID, flt: AuditFilter):
    query = select(AuditEvent).where(AuditEvent.tenant_id == tenant_id)
    if flt.actor:
        query = query.where(AuditEvent.actor_label.ilike(f"%{_escape_like(flt.actor)}%", escape="\\"))
    if flt.action:
        query = query.where(AuditEvent.action == flt.action)
    if flt.since:
        query = query.where(AuditEvent.created_at >= flt.since)
    if flt.until:
        query = query.where(AuditEvent.created_at < flt.until)
    return query


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def page(tenant_id: uuid.UUID, flt: AuditFilter, after: str | None = None) -> Page[AuditEvent]:
    """One page, newest first, after the cursor ``after`` (the last row of the page before)."""
    return newest_first(_filtered(tenant_id, flt), AuditEvent.created_at, AuditEvent.id, after, PAGE_SIZE)


def actions(tenant_id: uuid.UUID) -> list[str]:
    return list(db.session.scalars(select(AuditEvent.action).where(AuditEvent.tenant_id == tenant_id)
                                   .distinct().order_by(AuditEvent.action)))


def export_csv(tenant_id: uuid.UUID, flt: AuditFilter):
    """Yield the filtered trail as CSV text, in chunks (streamed, keyset-paged)."""
    header = ["time", "actor", "action", "target_type", "target_id", "details", "ip", "request_id"]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    after = None
    while True:
        batch = page(tenant_id, flt, after)
        for e in batch.rows:
            writer.writerow([e.created_at.isoformat(), _csv_safe(e.actor_label or ""), e.action,
                             e.target_type or "", e.target_id or "", _csv_safe(json.dumps(e.details, sort_keys=True)),
                             e.ip or "", e.request_id or ""])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        after = batch.next_cursor
        if after is None:
            return


def _csv_safe(value: str) -> str:
    """Keep spreadsheet programs from running a cell as a formula."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
