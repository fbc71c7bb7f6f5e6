"""Notices of session records: the athlete is told when their coach signs off a record of their session (or an
amendment of one), with a link to it."""
from __future__ import annotations

import uuid

from sqlalchemy import select

from coach.extensions import db
from coach.notifications import service
from coach.orgs.models import Membership, Organization
from coach.platform.jobs import consumer
from coach.progress.events import RECORD_SIGNED
from coach.progress.models import SessionRecord


@consumer(RECORD_SIGNED)
def tell_athlete_of_record(payload: dict) -> None:
    """The athlete gets a ``session_record`` notice linking to the signed version."""
    record = db.session.scalar(select(SessionRecord).where(SessionRecord.id == uuid.UUID(payload["record_id"])))
    if record is None:
        return
    athlete = db.session.scalar(select(Membership).where(Membership.tenant_id == record.tenant_id,
                                                         Membership.id == record.athlete_membership_id))
    if athlete is None:
        return
    org = db.session.get(Organization, record.tenant_id)
    coach = db.session.scalar(select(Membership).where(Membership.tenant_id == record.tenant_id,
                                                       Membership.id == record.signed_by_membership_id)) \
        if record.signed_by_membership_id else None
    who = coach.user.display_name if coach else "Your coach"
    title = (f"{who} signed off the record of your session" if record.version == 1
             else f"{who} amended the record of your session (version {record.version})")
    body = record.amendment_reason if record.version > 1 else ""
    service.notify(athlete, "session_record", dedupe_key=f"record:{record.id}", title=title,
                   url=f"/o/{org.slug}/progress/records/{record.id}", body=body,
                   actor_id=record.signed_by_membership_id, subject_id=record.id)
    service.announce()
