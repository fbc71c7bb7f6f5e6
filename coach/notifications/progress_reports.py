"""Notices of progress reports: when a report is ready, the athlete it is about and the member who asked for it
are told in the app (the report's own email, with its link, went to the athlete and their guardian already)."""
from __future__ import annotations

import uuid

from sqlalchemy import select

from coach.extensions import db
from coach.notifications import service
from coach.orgs.models import Membership, Organization
from coach.platform.jobs import consumer
from coach.progress.events import REPORT_READY
from coach.progress.models import ProgressReport


@consumer(REPORT_READY)
def tell_of_ready_report(payload: dict) -> None:
    report = db.session.scalar(select(ProgressReport).where(ProgressReport.id == uuid.UUID(payload["report_id"])))
    if report is None or report.status != "ready":
        return
    org = db.session.get(Organization, report.tenant_id)
    wanted = {report.athlete_membership_id, report.requested_by_membership_id} - {None}
    members = db.session.scalars(select(Membership).where(Membership.tenant_id == report.tenant_id,
                                                          Membership.id.in_(wanted)))
    period = f"{report.period_start:%-d %b %Y} – {report.period_end:%-d %b %Y}"
    for member in members:
        about = "your" if member.id == report.athlete_membership_id else f"{report.athlete.user.display_name}'s"
        service.notify(member, "progress_report", dedupe_key=f"report:{report.id}",
                       title=f"{about[0].upper()}{about[1:]} progress report is ready", body=period,
                       url=f"/o/{org.slug}/progress/athletes/{report.athlete_membership_id}/reports",
                       subject_id=report.id)
    service.announce()
