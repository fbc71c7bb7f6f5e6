"""The organization's exercise library: a title, a description and an optional demo clip from media.

An exercise used by a program is archived instead of deleted (programs and logs keep pointing at it); an
archived exercise is no longer offered to new workouts and its title is free again.
"""
from __future__ import annotations

import uuid

from sqlalchemy import exists, func, select

from coach import clock
from coach.extensions import db
from coach.ids import parse_uuid
from coach.media import service as media
from coach.media.models import MediaItem
from coach.orgs.models import Membership
from coach.progress.access import ProgressError, require_staff
from coach.progress.models import Exercise, WorkoutExercise

TITLE_MAX, DESCRIPTION_MAX = 120, 2000
LIBRARY_LIMIT = 2000


def library(viewer: Membership, include_archived: bool = False) -> list[Exercise]:
    """The organization's exercises by title (active ones, or every one)."""
    query = select(Exercise).where(Exercise.tenant_id == viewer.tenant_id)
    if not include_archived:
        query = query.where(Exercise.archived_at.is_(None))
    return list(db.session.scalars(query.order_by(Exercise.archived_at.is_not(None), func.lower(Exercise.title))
                                   .limit(LIBRARY_LIMIT)))


def get_exercise(viewer: Membership, exercise_id) -> Exercise:
    """An exercise of the viewer's organization, or a 404."""
    ident = exercise_id if isinstance(exercise_id, uuid.UUID) else parse_uuid(exercise_id)
    found = None if ident is None else db.session.scalar(
        select(Exercise).where(Exercise.tenant_id == viewer.tenant_id, Exercise.id == ident))
    if found is None:
        raise ProgressError("No such exercise.", status=404)
    return found


def demo_media(viewer: Membership, exercises: list[Exercise]) -> dict[uuid.UUID, MediaItem]:
    """The demo clips of ``exercises`` the viewer may watch, by media id (one statement)."""
    ids = {e.demo_media_id for e in exercises if e.demo_media_id}
    if not ids:
        return {}
    items = db.session.scalars(select(MediaItem).where(MediaItem.tenant_id == viewer.tenant_id,
                                                       MediaItem.id.in_(ids)))
    return {i.id: i for i in items if media.can_view(i, viewer)}


def _clean_title(title: str | None) -> str:
    title = " ".join((title or "").split())
    if not title:
        raise ProgressError("Give the exercise a title.")
    if len(title) > TITLE_MAX:
        raise ProgressError(f"An exercise's title has at most {TITLE_MAX} characters.")
    return title


def _demo(viewer: Membership, raw) -> uuid.UUID | None:
    if raw in (None, ""):
        return None
    ident = parse_uuid(raw)
    item = None if ident is None else db.session.scalar(
        select(MediaItem).where(MediaItem.tenant_id == viewer.tenant_id, MediaItem.id == ident))
    if item is None or not media.can_view(item, viewer):
        raise ProgressError("Choose a demo clip from the media you can see.")
    if item.kind != "video":
        raise ProgressError("A demo clip must be a video.")
    return item.id


def save_exercise(viewer: Membership, values: dict, exercise: Exercise | None = None) -> Exercise:
    """Create an exercise (``exercise`` None) or change one: a unique title among the active ones."""
    require_staff(viewer)
    title = _clean_title(values.get("title"))
    description = (values.get("description") or "").strip()
    if len(description) > DESCRIPTION_MAX:
        raise ProgressError(f"A description has at most {DESCRIPTION_MAX:,} characters.")
    demo_id = _demo(viewer, values.get("demo_media_id"))
    clash = select(Exercise.id).where(Exercise.tenant_id == viewer.tenant_id, Exercise.archived_at.is_(None),
                                      func.lower(Exercise.title) == title.lower())
    if exercise is not None:
        clash = clash.where(Exercise.id != exercise.id)
    if (exercise is None or exercise.archived_at is None) and db.session.scalar(clash) is not None:
        raise ProgressError(f"The library already has an exercise called “{title}”.", status=409)
    if exercise is None:
        exercise = Exercise(id=uuid.uuid4(), tenant_id=viewer.tenant_id, created_by_membership_id=viewer.id)
        db.session.add(exercise)
    exercise.title, exercise.description, exercise.demo_media_id = title, description, demo_id
    db.session.flush()
    return exercise


def is_used(exercise: Exercise) -> bool:
    return bool(db.session.scalar(select(exists().where(WorkoutExercise.tenant_id == exercise.tenant_id,
                                                        WorkoutExercise.exercise_id == exercise.id))))


def remove_exercise(viewer: Membership, exercise: Exercise) -> str:
    """Delete an unused exercise; archive one a program uses. Returns ``"deleted"`` or ``"archived"``."""
    require_staff(viewer)
    if is_used(exercise):
        if exercise.archived_at is None:
            exercise.archived_at = clock.now()
            db.session.flush()
        return "archived"
    db.session.delete(exercise)
    db.session.flush()
    return "deleted"


def restore_exercise(viewer: Membership, exercise: Exercise) -> Exercise:
    require_staff(viewer)
    if exercise.archived_at is not None:
        clash = db.session.scalar(select(Exercise.id).where(
            Exercise.tenant_id == viewer.tenant_id, Exercise.archived_at.is_(None),
            func.lower(Exercise.title) == exercise.title.lower()))
        if clash is not None:
            raise ProgressError(f"Another active exercise is called “{exercise.title}”: rename one first.",
                                status=409)
        exercise.archived_at = None
        db.session.flush()
    return exercise
