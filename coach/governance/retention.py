"""Data retention: chat messages and audit events older than an organization keeps them are deleted daily.

Per organization with a retention set, acting for it (RLS on as for any request), in batches of
:data:`BATCH` rows, one transaction per batch, so a large first run neither holds locks for long nor
builds one huge transaction. Each run that deleted something is audited with its counts.

Chat: a message's attachments rows go with it (the media items stay in the library: they are their
owners'); read positions are sequence numbers, and those of members with one move past the deleted
messages, so what nobody can read any more does not count as unread. The audit trail is append-only for everyone; only
``audit_events_expire`` (migration 0016), a SECURITY DEFINER function, deletes from it, and only the
active organization's events older than that organization's own ``audit_retention_days``.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, func, literal, select, text, union
from sqlalchemy.dialects.postgresql import insert

from coach import clock
from coach.chat.models import Conversation, ConversationRead, Message, MessageAttachment
from coach.extensions import db
from coach.orgs.models import Organization
from coach.platform import audit
from coach.spaces.models import SpaceMember

BATCH = 1000


def retention_tenants() -> list[uuid.UUID]:
    """Organizations that keep chat or the audit trail for a limited time (``organizations`` has no RLS)."""
    return list(db.session.scalars(select(Organization.id).where(
        (Organization.chat_retention_days.is_not(None)) | (Organization.audit_retention_days.is_not(None)))
        .order_by(Organization.id)))


def delete_old_messages(tenant_id: uuid.UUID, days: int, now: datetime, batch: int = BATCH) -> int:
    """Delete one batch of the organization's chat messages older than ``days``; how many went."""
    cutoff = now - timedelta(days=days)
    rows = db.session.execute(select(Message.id, Message.conversation_id, Message.seq).where(
        Message.tenant_id == tenant_id, Message.created_at < cutoff).order_by(Message.created_at).limit(batch)).all()
    if not rows:
        return 0
    ids = [row.id for row in rows]
    db.session.execute(delete(MessageAttachment).where(MessageAttachment.tenant_id == tenant_id,
                                                       MessageAttachment.message_id.in_(ids)))
    deleted = db.session.execute(delete(Message).where(Message.tenant_id == tenant_id, Message.id.in_(ids))).rowcount
    # What nobody can read any more is not unread: read positions move past the deleted messages.
    newest: dict[uuid.UUID, int] = {}
    for row in rows:
        newest[row.conversation_id] = max(newest.get(row.conversation_id, 0), row.seq)
    for conversation_id, seq in newest.items():
        _read_past(tenant_id, conversation_id, seq)
    return deleted


def _read_past(tenant_id: uuid.UUID, conversation_id: uuid.UUID, seq: int) -> None:
    """Every participant of the conversation (its two members, or its space's) has read at least up to ``seq``."""
    conversation = select(Conversation).where(Conversation.tenant_id == tenant_id,
                                              Conversation.id == conversation_id).subquery()
    participants = union(
        select(conversation.c.member_low_id.label("membership_id")).where(conversation.c.member_low_id.is_not(None)),
        select(conversation.c.member_high_id).where(conversation.c.member_high_id.is_not(None)),
        select(SpaceMember.membership_id).join(conversation, SpaceMember.space_id == conversation.c.space_id)
        .where(SpaceMember.tenant_id == tenant_id)).subquery()
    rows = select(func.gen_random_uuid(), literal(tenant_id), literal(conversation_id), participants.c.membership_id,
                  literal(seq))
    upsert = insert(ConversationRead).from_select(
        ["id", "tenant_id", "conversation_id", "membership_id", "last_read_seq"], rows)
    db.session.execute(upsert.on_conflict_do_update(
        index_elements=["tenant_id", "conversation_id", "membership_id"],
        set_={"last_read_seq": upsert.excluded.last_read_seq},
        where=ConversationRead.last_read_seq < upsert.excluded.last_read_seq))


def delete_old_audit_events(batch: int = BATCH) -> int:
    """Delete one batch of the active organization's audit events older than it keeps them."""
    return db.session.execute(text("SELECT audit_events_expire(:batch)"), {"batch": batch}).scalar_one()


def _drain(step) -> int:
    """Run ``step()`` (one batch) and commit until a batch comes back short; the total."""
    total = 0
    while True:
        done = step()
        db.session.commit()
        total += done
        if done < BATCH:
            return total


def _record(action: str, tenant_id: uuid.UUID, count: int, key: str, noun: str, days: int) -> None:
    """One audit event for a run that deleted ``count`` rows ("retention.chat_deleted: 1,234 messages older than
    90 days")."""
    audit.record(action, target_type="organization", target_id=tenant_id, tenant_id=tenant_id,
                 details={key: count, "older_than_days": days, "summary": f"{count:,} {noun} older than {days} days"})


def apply_retention(tenant_id: uuid.UUID, now: datetime | None = None) -> int:
    """Apply the active organization's retention; audited with the counts. How many rows were deleted."""
    now = now or clock.now()
    org = db.session.get(Organization, tenant_id)
    if org is None:
        return 0
    chat_days, audit_days = org.chat_retention_days, org.audit_retention_days
    messages = _drain(lambda: delete_old_messages(tenant_id, chat_days, now)) if chat_days else 0
    if messages:
        _record("retention.chat_deleted", tenant_id, messages, "messages", "messages", chat_days)
    events = _drain(delete_old_audit_events) if audit_days else 0
    if events:
        _record("retention.audit_deleted", tenant_id, events, "events", "audit events", audit_days)
    return messages + events
