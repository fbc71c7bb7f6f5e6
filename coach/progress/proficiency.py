"""An athlete's proficiency: the current level on each skill (kept at sign-off in ``athlete_skill_levels``),
measured against each skill's required level, what changed over a period, and one skill's history.

Only the *current* version of each session's record counts (an amended record's earlier versions are history
of the record, not of the athlete)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, exists, select

from coach.extensions import db
from coach.ids import parse_uuid
from coach.progress import records
from coach.orgs.models import Membership
from coach.progress.models import (AthleteSkillLevel, RecordSkillLevel, Skill, SkillArea,
                                   SkillFramework)


@dataclass
class SkillCell:
    skill_id: uuid.UUID
    title: str
    description: str
    level: int | None
    required_level: int | None
    label: str            # "3 · Competent", or "Not observed"
    required_label: str   # "3 · Competent", or "" with no requirement
    met: bool             # no requirement, or the level reaches it
    observed_at: datetime | None


@dataclass
class AreaMatrix:
    title: str
    skills: list[SkillCell] = field(default_factory=list)


@dataclass
class FrameworkMatrix:
    framework: SkillFramework
    areas: list[AreaMatrix]
    missing: list[SkillCell]  # skills below their required level: what stands between the athlete and "ready"

    @property
    def ready(self) -> bool:
        return not self.missing

    @property
    def to_go(self) -> int:
        return len(self.missing)

    @property
    def observed(self) -> int:
        return sum(1 for a in self.areas for s in a.skills if s.level is not None)

    @property
    def skill_count(self) -> int:
        return sum(len(a.skills) for a in self.areas)


@dataclass
class SkillChange:
    skill_title: str
    framework_title: str
    old_level: int | None
    new_level: int
    label: str
    at: datetime


def _zone(member: Membership) -> ZoneInfo:
    try:
        return ZoneInfo(member.user.timezone or "UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def matrix(athlete: Membership) -> list[FrameworkMatrix]:
    """Per framework that has a skill observed for ``athlete`` (or that is the organization's only framework):
    its areas and skills with the athlete's level against the required one. Three statements at most."""
    t = athlete.tenant_id
    observed = exists(select(AthleteSkillLevel.id).join(Skill, and_(
        Skill.tenant_id == AthleteSkillLevel.tenant_id, Skill.id == AthleteSkillLevel.skill_id)).where(
        AthleteSkillLevel.tenant_id == t, AthleteSkillLevel.athlete_membership_id == athlete.id,
        Skill.framework_id == SkillFramework.id))
    rows = list(db.session.execute(select(SkillFramework, observed.label("observed"))
                                   .where(SkillFramework.tenant_id == t)
                                   .order_by(SkillFramework.title)))
    active = [f for f, _ in rows if f.archived_at is None]
    shown = [f for f, seen in rows if seen or (len(active) == 1 and f is active[0])]
    if not shown:
        return []
    ids = [f.id for f in shown]
    skills = list(db.session.execute(
        select(Skill, SkillArea.title).join(SkillArea, and_(SkillArea.tenant_id == Skill.tenant_id,
                                                            SkillArea.id == Skill.area_id))
        .where(Skill.tenant_id == t, Skill.framework_id.in_(ids))
        .order_by(SkillArea.position, SkillArea.title, SkillArea.id, Skill.position, Skill.title)))
    levels = {row.skill_id: row for row in db.session.scalars(select(AthleteSkillLevel).where(
        AthleteSkillLevel.tenant_id == t, AthleteSkillLevel.athlete_membership_id == athlete.id))}
    result = []
    for framework in shown:
        areas: dict[uuid.UUID, AreaMatrix] = {}
        missing = []
        for skill, area_title in skills:
            if skill.framework_id != framework.id:
                continue
            current = levels.get(skill.id)
            level = current.level if current else None
            met = skill.required_level is None or (level is not None and level >= skill.required_level)
            cell = SkillCell(skill.id, skill.title, skill.description, level, skill.required_level,
                             framework.level_label(level),
                             framework.level_label(skill.required_level) if skill.required_level else "",
                             met, current.observed_at if current else None)
            areas.setdefault(skill.area_id, AreaMatrix(area_title)).skills.append(cell)
            if not met:
                missing.append(cell)
        result.append(FrameworkMatrix(framework, list(areas.values()), missing))
    return result


def _current_records(tenant_id: uuid.UUID, athlete_id: uuid.UUID):
    return records.current_records(tenant_id, athlete_id)


def changes(athlete: Membership, start: date, end: date) -> list[SkillChange]:
    """The skills whose level changed in sessions from ``start`` to ``end`` (dates in the athlete's zone, both
    included): the level before the period and the last one in it, oldest change first. One statement."""
    zone = _zone(athlete)
    since = datetime.combine(start, time(0), zone)
    until = datetime.combine(end + timedelta(days=1), time(0), zone)
    current = _current_records(athlete.tenant_id, athlete.id)
    rows = db.session.execute(
        select(RecordSkillLevel.skill_id, RecordSkillLevel.level, current.c.session_at, Skill.title,
               SkillFramework)
        .join(current, current.c.id == RecordSkillLevel.record_id)
        .join(Skill, and_(Skill.tenant_id == RecordSkillLevel.tenant_id, Skill.id == RecordSkillLevel.skill_id))
        .join(SkillFramework, and_(SkillFramework.tenant_id == Skill.tenant_id,
                                   SkillFramework.id == Skill.framework_id))
        .where(RecordSkillLevel.tenant_id == athlete.tenant_id, current.c.session_at < until)
        .order_by(current.c.session_at, current.c.signed_at)).all()
    before: dict[uuid.UUID, int] = {}
    after: dict[uuid.UUID, tuple] = {}
    for skill_id, level, at, title, framework in rows:
        if at < since:
            before[skill_id] = level
        else:
            after[skill_id] = (level, at, title, framework)
    out = [SkillChange(title, framework.title, before.get(skill_id), level, framework.level_label(level), at)
           for skill_id, (level, at, title, framework) in after.items() if before.get(skill_id) != level]
    return sorted(out, key=lambda c: (c.at, c.framework_title, c.skill_title))


def history(athlete: Membership, skill_id) -> list[tuple[datetime, int, uuid.UUID]]:
    """Every level observed on one skill, oldest first: ``(when the session took place, level, record id)``."""
    ident = parse_uuid(skill_id)
    if ident is None:
        return []
    current = _current_records(athlete.tenant_id, athlete.id)
    return [tuple(r) for r in db.session.execute(
        select(current.c.session_at, RecordSkillLevel.level, current.c.id)
        .join(current, current.c.id == RecordSkillLevel.record_id)
        .where(RecordSkillLevel.tenant_id == athlete.tenant_id, RecordSkillLevel.skill_id == ident)
        .order_by(current.c.session_at)).all()]
