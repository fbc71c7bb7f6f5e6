"""Outbox topics of the athlete development domain (see :mod:`coach.platform.events`)."""
from __future__ import annotations

from coach.platform.events import Topic

RECORD_SIGNED = Topic("progress.record_signed", "record_id; athlete_membership_id; version")
PROGRAM_ASSIGNED = Topic("progress.program_assigned", "assignment_id; athlete_membership_id")
WORKOUT_LOGGED = Topic("progress.workout_logged", "log_id; athlete_membership_id; status")
WORKOUT_COMMENTED = Topic("progress.workout_commented", "comment_id; log_id")
# A report to build (on demand or weekly): its job renders HTML and PDF, stores them and emails the link.
REPORT_REQUESTED = Topic("progress.report_requested", "report_id")
# A report is built and stored (its email went out in the same transaction): the in-app notice.
REPORT_READY = Topic("progress.report_ready", "report_id; athlete_membership_id")
