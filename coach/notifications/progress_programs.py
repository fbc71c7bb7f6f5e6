"""Notices of training programs: the athlete is told of a program assigned to them; the coach who assigned it
of a workout logged; the other side of a comment on a logged workout (the athlete when staff comment; the
assigning coach and the staff already in the thread when the athlete comments)."""
from __future__ import annotations

import uuid

from sqlalchemy import select

from coach.extensions import db
from coach.notifications import service
from coach.orgs.models import Membership, Organization
from coach.platform.jobs import consumer
from coach.progress.events import PROGRAM_ASSIGNED, WORKOUT_COMMENTED, WORKOUT_LOGGED
from coach.progress.models import (LOG_STATUSES, Program, ProgramAssignment, ProgramWorkout, WorkoutComment,
                                   WorkoutLog)


def _member(tenant_id: uuid.UUID, member_id: uuid.UUID | None) -> Membership | None:
    if member_id is None:
        return None
    return db.session.scalar(select(Membership).where(Membership.tenant_id == tenant_id, Membership.id == member_id))


def _assignment(tenant_id: uuid.UUID, assignment_id: uuid.UUID) -> tuple[ProgramAssignment, Program] | None:
    row = db.session.execute(select(ProgramAssignment, Program).join(Program, (
        Program.tenant_id == ProgramAssignment.tenant_id) & (Program.id == ProgramAssignment.program_id))
        .where(ProgramAssignment.tenant_id == tenant_id, ProgramAssignment.id == assignment_id)).first()
    return None if row is None else (row[0], row[1])


@consumer(PROGRAM_ASSIGNED)
def tell_athlete_of_program(payload: dict) -> None:
    """The athlete sees the new program, with a link to their workouts."""
    assignment = db.session.scalar(select(ProgramAssignment).where(
        ProgramAssignment.id == uuid.UUID(payload["assignment_id"])))
    if assignment is None:
        return
    found = _assignment(assignment.tenant_id, assignment.id)
    org = db.session.get(Organization, assignment.tenant_id)
    athlete = _member(assignment.tenant_id, assignment.athlete_membership_id)
    if found is None or athlete is None:
        return
    _, program = found
    coach = _member(assignment.tenant_id, assignment.assigned_by_membership_id)
    by = f" from {coach.user.display_name}" if coach is not None else ""
    service.notify(athlete, "program_assigned", dedupe_key=f"program:{assignment.id}",
                   title=f"New program{by}: {program.title}",
                   url=f"/o/{org.slug}/progress/workouts/calendar?month={assignment.start_date:%Y-%m}",
                   body=f"{program.weeks} week{'s' if program.weeks != 1 else ''} from "
                        f"{assignment.start_date:%A %d %B %Y}.",
                   actor_id=assignment.assigned_by_membership_id, subject_id=assignment.id)
    service.announce()


@consumer(WORKOUT_LOGGED)
def tell_coach_of_log(payload: dict) -> None:
    """The coach who assigned the program sees the athlete's log (nobody when they left)."""
    log = db.session.scalar(select(WorkoutLog).where(WorkoutLog.id == uuid.UUID(payload["log_id"])))
    if log is None:
        return
    found = _assignment(log.tenant_id, log.assignment_id)
    if found is None:
        return
    assignment, _ = found
    coach = _member(log.tenant_id, assignment.assigned_by_membership_id)
    athlete = _member(log.tenant_id, log.athlete_membership_id)
    workout = db.session.scalar(select(ProgramWorkout).where(ProgramWorkout.tenant_id == log.tenant_id,
                                                             ProgramWorkout.id == log.workout_id))
    if coach is None or athlete is None or workout is None:
        return
    org = db.session.get(Organization, log.tenant_id)
    rpe = f" · RPE {log.rpe}" if log.rpe else ""
    service.notify(coach, "workout_logged", dedupe_key=f"workout-log:{log.id}",
                   title=f"{athlete.user.display_name}: {workout.title} — {LOG_STATUSES[log.status].lower()}{rpe}",
                   url=f"/o/{org.slug}/progress/workouts/logs/{log.id}", body=log.note,
                   actor_id=athlete.id, subject_id=log.id)
    service.announce()


@consumer(WORKOUT_COMMENTED)
def tell_other_side_of_comment(payload: dict) -> None:
    """Staff commented: the athlete is told. The athlete commented: the assigning coach and every staff member
    who already commented on the log are told."""
    comment = db.session.scalar(select(WorkoutComment).where(WorkoutComment.id == uuid.UUID(payload["comment_id"])))
    if comment is None:
        return
    log = db.session.scalar(select(WorkoutLog).where(WorkoutLog.tenant_id == comment.tenant_id,
                                                     WorkoutLog.id == comment.log_id))
    if log is None:
        return
    org = db.session.get(Organization, log.tenant_id)
    author = _member(log.tenant_id, comment.author_membership_id)
    workout_title = db.session.scalar(select(ProgramWorkout.title).where(
        ProgramWorkout.tenant_id == log.tenant_id, ProgramWorkout.id == log.workout_id)) or "a workout"
    who = author.user.display_name if author is not None else "A former member"
    url = f"/o/{org.slug}/progress/workouts/logs/{log.id}#comment-{comment.id}"
    if comment.author_membership_id != log.athlete_membership_id:
        recipients = [_member(log.tenant_id, log.athlete_membership_id)]
    else:
        found = _assignment(log.tenant_id, log.assignment_id)
        ids = {found[0].assigned_by_membership_id} if found is not None else set()
        ids |= set(db.session.scalars(select(WorkoutComment.author_membership_id).where(
            WorkoutComment.tenant_id == log.tenant_id, WorkoutComment.log_id == log.id,
            WorkoutComment.author_membership_id.is_not(None),
            WorkoutComment.author_membership_id != log.athlete_membership_id)))
        ids.discard(None)
        recipients = list(db.session.scalars(select(Membership).where(
            Membership.tenant_id == log.tenant_id, Membership.id.in_(ids)))) if ids else []
    for member in recipients:
        if member is None:
            continue
        service.notify(member, "workout_comment", dedupe_key=f"workout-comment:{comment.id}",
                       title=f"{who} commented on {workout_title}", url=url, body=comment.body,
                       actor_id=comment.author_membership_id, subject_id=log.id)
    service.announce()
