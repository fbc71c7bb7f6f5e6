"""Skill frameworks: the standards an organization measures its athletes against.

A framework has a proficiency scale (2 to 10 labels, level 1 first), areas in order, and in each area skills
in order, each with an optional *required level* (the level that counts as "ready"). The organization's coaches
and admins create, edit and archive frameworks; every member who is an athlete or staff may read them.

A framework travels as CSV (:func:`export_csv`, :func:`import_csv`)::

    scale,Introduced,Practised,Competent,Proficient
    area,skill,description,required_level
    Serve,Flat serve,"Toss in front, full swing",3
    Serve,Kick serve,,

The first row (optional on import: the default scale is used without it) names the scale's labels, level 1
first; the second is the header; each further row is one skill (``required_level`` empty for none). At most
:data:`MAX_CSV_ROWS` skills; the whole file is checked before anything is written.
"""
from __future__ import annotations

import csv
import io
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from coach import clock
from coach.extensions import db
from coach.ids import parse_uuid
from coach.orgs.models import Membership
from coach.platform import audit
from coach.progress.access import ProgressError, require_staff
from coach.progress.models import (DEFAULT_SCALE, RecordSkillLevel, Skill, SkillArea, SkillFramework)

TITLE_MAX, SKILL_TITLE_MAX, DESCRIPTION_MAX, LABEL_MAX = 120, 160, 2000, 40
MIN_SCALE, MAX_SCALE = 2, 10
MAX_AREAS, MAX_SKILLS = 100, 500
MAX_CSV_ROWS, MAX_CSV_BYTES = 500, 512 * 1024
CSV_HEADER = ["area", "skill", "description", "required_level"]


@dataclass
class AreaView:
    area: SkillArea
    skills: list[Skill] = field(default_factory=list)


@dataclass
class FrameworkView:
    framework: SkillFramework
    areas: list[AreaView]

    @property
    def skill_count(self) -> int:
        return sum(len(a.skills) for a in self.areas)

    def skills(self) -> list[Skill]:
        return [s for a in self.areas for s in a.skills]


# --- reading -------------------------------------------------------------------------------------------

def frameworks_of(tenant_id: uuid.UUID, include_archived: bool = False) -> list[SkillFramework]:
    query = select(SkillFramework).where(SkillFramework.tenant_id == tenant_id)
    if not include_archived:
        query = query.where(SkillFramework.archived_at.is_(None))
    return list(db.session.scalars(query.order_by(SkillFramework.archived_at.is_not(None),
                                                  func.lower(SkillFramework.title))))


def skill_counts(tenant_id: uuid.UUID) -> dict[uuid.UUID, int]:
    """How many skills each framework of the organization has (one statement)."""
    return dict(db.session.execute(select(Skill.framework_id, func.count()).where(Skill.tenant_id == tenant_id)
                                   .group_by(Skill.framework_id)).all())


def get_framework(tenant_id: uuid.UUID, framework_id) -> SkillFramework | None:
    ident = parse_uuid(framework_id)
    if ident is None:
        return None
    return db.session.scalar(select(SkillFramework).where(SkillFramework.tenant_id == tenant_id,
                                                          SkillFramework.id == ident))


def get_area(framework: SkillFramework, area_id) -> SkillArea | None:
    ident = parse_uuid(area_id)
    if ident is None:
        return None
    return db.session.scalar(select(SkillArea).where(SkillArea.tenant_id == framework.tenant_id,
                                                     SkillArea.framework_id == framework.id, SkillArea.id == ident))


def get_skill(framework: SkillFramework, skill_id) -> Skill | None:
    ident = parse_uuid(skill_id)
    if ident is None:
        return None
    return db.session.scalar(select(Skill).where(Skill.tenant_id == framework.tenant_id,
                                                 Skill.framework_id == framework.id, Skill.id == ident))


def structure(framework: SkillFramework) -> FrameworkView:
    """The framework's areas in order, each with its skills in order (two statements)."""
    areas = [AreaView(a) for a in db.session.scalars(
        select(SkillArea).where(SkillArea.tenant_id == framework.tenant_id, SkillArea.framework_id == framework.id)
        .order_by(SkillArea.position, SkillArea.title))]
    by_id = {a.area.id: a for a in areas}
    for skill in db.session.scalars(
            select(Skill).where(Skill.tenant_id == framework.tenant_id, Skill.framework_id == framework.id)
            .order_by(Skill.position, Skill.title)):
        if skill.area_id in by_id:
            by_id[skill.area_id].skills.append(skill)
    return FrameworkView(framework, areas)


# --- validation ----------------------------------------------------------------------------------------

def _title(value: str | None, what: str, limit: int) -> str:
    text = " ".join((value or "").replace("\x00", "").split())
    if not text:
        raise ProgressError(f"Give the {what} a title.")
    if len(text) > limit:
        raise ProgressError(f"A {what} title has at most {limit} characters.")
    return text


def _description(value: str | None) -> str:
    text = (value or "").replace("\x00", "").strip()
    if len(text) > DESCRIPTION_MAX:
        raise ProgressError(f"A description has at most {DESCRIPTION_MAX:,} characters.")
    return text


def parse_scale(value: str | list[str] | None) -> list[str]:
    """The scale's labels, level 1 first: one per line (or a list). 2 to 10 labels, each at most 40 characters,
    no two alike."""
    lines = value if isinstance(value, list) else (value or "").splitlines()
    labels = [" ".join(str(v).replace("\x00", "").split()) for v in lines]
    labels = [v for v in labels if v]
    if not MIN_SCALE <= len(labels) <= MAX_SCALE:
        raise ProgressError(f"A proficiency scale has {MIN_SCALE} to {MAX_SCALE} levels: write one label per line, "
                            "the lowest first.")
    for label in labels:
        if len(label) > LABEL_MAX:
            raise ProgressError(f"A level's label has at most {LABEL_MAX} characters: “{label[:LABEL_MAX]}…”.")
    if len({v.lower() for v in labels}) != len(labels):
        raise ProgressError("Two levels of the scale have the same label.")
    return labels


def parse_level(value, scale_size: int, what: str = "The required level", allow_empty: bool = True) -> int | None:
    """A level of a scale of ``scale_size`` levels from a form or file value ("" → none, when allowed)."""
    text = str(value if value is not None else "").strip()
    if not text:
        if allow_empty:
            return None
        raise ProgressError(f"{what} is missing.")
    if not (text.isascii() and text.isdecimal() and len(text) <= 3) or not 1 <= int(text) <= scale_size:
        raise ProgressError(f"{what} must be a level from 1 to {scale_size} of the scale (not “{text[:20]}”).")
    return int(text)


def _unique_title(tenant_id: uuid.UUID, title: str, exclude: uuid.UUID | None = None) -> None:
    query = select(SkillFramework.id).where(SkillFramework.tenant_id == tenant_id,
                                            func.lower(SkillFramework.title) == title.lower(),
                                            SkillFramework.archived_at.is_(None))
    if exclude is not None:
        query = query.where(SkillFramework.id != exclude)
    if db.session.scalar(query.limit(1)) is not None:
        raise ProgressError(f"A framework called “{title}” exists already: choose another title.", status=409)


def _highest_used_level(framework: SkillFramework) -> int:
    """The highest level the framework's skills require or records observed (a scale may not shrink below)."""
    required = db.session.scalar(select(func.max(Skill.required_level)).where(
        Skill.tenant_id == framework.tenant_id, Skill.framework_id == framework.id)) or 0
    observed = db.session.scalar(select(func.max(RecordSkillLevel.level)).join(
        Skill, (Skill.tenant_id == RecordSkillLevel.tenant_id) & (Skill.id == RecordSkillLevel.skill_id)).where(
        RecordSkillLevel.tenant_id == framework.tenant_id, Skill.framework_id == framework.id)) or 0
    return max(required, observed)


def _flush_unique(framework: SkillFramework) -> None:
    """Flush, turning a title taken meanwhile (the unique index) into the same 409 as the check before."""
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError:
        raise ProgressError(f"A framework called “{framework.title}” exists already: choose another title.",
                            status=409) from None


def _audit(actor: Membership, action: str, framework: SkillFramework, **details) -> None:
    audit.record(action, actor=actor.user, target_type="skill_framework", target_id=framework.id,
                 details={"title": framework.title, **details}, tenant_id=framework.tenant_id)


# --- frameworks ----------------------------------------------------------------------------------------

def create_framework(tenant_id: uuid.UUID, actor: Membership, title: str, description: str = "",
                     scale: str | list[str] | None = None) -> SkillFramework:
    require_staff(actor)
    title = _title(title, "framework", TITLE_MAX)
    labels = parse_scale(scale if scale else list(DEFAULT_SCALE))
    _unique_title(tenant_id, title)
    framework = SkillFramework(tenant_id=tenant_id, title=title, description=_description(description), scale=labels)
    db.session.add(framework)
    _flush_unique(framework)
    _audit(actor, "progress.framework_created", framework)
    return framework


def update_framework(framework: SkillFramework, actor: Membership, title: str, description: str,
                     scale: str | list[str]) -> SkillFramework:
    """Change the title, description or scale. A scale may gain or rename levels; it may not lose a level that a
    skill requires or a record observed."""
    require_staff(actor)
    title = _title(title, "framework", TITLE_MAX)
    labels = parse_scale(scale)
    if framework.archived_at is None:
        _unique_title(framework.tenant_id, title, exclude=framework.id)
    if len(labels) < len(framework.scale):
        used = _highest_used_level(framework)
        if used > len(labels):
            raise ProgressError(f"Level {used} is in use (a skill requires it or a record observed it): the scale "
                                f"needs at least {used} levels.")
    framework.title, framework.description, framework.scale = title, _description(description), labels
    _flush_unique(framework)
    _audit(actor, "progress.framework_updated", framework)
    return framework


def archive(framework: SkillFramework, actor: Membership) -> None:
    """Take a framework out of use: no new record picks it; its records and the athletes' levels stay."""
    require_staff(actor)
    if framework.archived_at is None:
        framework.archived_at = clock.now()
        db.session.flush()
        _audit(actor, "progress.framework_archived", framework)


def restore(framework: SkillFramework, actor: Membership) -> None:
    require_staff(actor)
    if framework.archived_at is not None:
        _unique_title(framework.tenant_id, framework.title, exclude=framework.id)
        framework.archived_at = None
        _flush_unique(framework)
        _audit(actor, "progress.framework_restored", framework)


def _editable(framework: SkillFramework, actor: Membership) -> None:
    require_staff(actor)
    if framework.archived_at is not None:
        raise ProgressError("This framework is archived: restore it to change it.", status=409)


# --- areas and skills ----------------------------------------------------------------------------------

def _next_position(model, *where) -> int:
    return (db.session.scalar(select(func.max(model.position)).where(*where)) or 0) + 1


def add_area(framework: SkillFramework, actor: Membership, title: str) -> SkillArea:
    _editable(framework, actor)
    title = _title(title, "area", TITLE_MAX)
    where = (SkillArea.tenant_id == framework.tenant_id, SkillArea.framework_id == framework.id)
    if db.session.scalar(select(func.count()).select_from(SkillArea).where(*where)) >= MAX_AREAS:
        raise ProgressError(f"A framework has at most {MAX_AREAS} areas.")
    area = SkillArea(tenant_id=framework.tenant_id, framework_id=framework.id, title=title,
                     position=_next_position(SkillArea, *where))
    db.session.add(area)
    db.session.flush()
    return area


def rename_area(framework: SkillFramework, area: SkillArea, actor: Membership, title: str) -> SkillArea:
    _editable(framework, actor)
    area.title = _title(title, "area", TITLE_MAX)
    db.session.flush()
    return area


def _observed_count(tenant_id: uuid.UUID, skill_ids: list[uuid.UUID]) -> int:
    if not skill_ids:
        return 0
    return db.session.scalar(select(func.count()).select_from(RecordSkillLevel).where(
        RecordSkillLevel.tenant_id == tenant_id, RecordSkillLevel.skill_id.in_(skill_ids)))


def remove_area(framework: SkillFramework, area: SkillArea, actor: Membership) -> None:
    """Delete an area and its skills, unless a record observed one of them (those records keep their levels:
    archive the framework and start a new one instead)."""
    _editable(framework, actor)
    skills = list(db.session.scalars(select(Skill).where(Skill.tenant_id == framework.tenant_id,
                                                         Skill.area_id == area.id)))
    if _observed_count(framework.tenant_id, [s.id for s in skills]):
        raise ProgressError(f"Skills of “{area.title}” are in session records, so the area stays. Rename it, or "
                            "archive the framework and start a new one.", status=409)
    for skill in skills:
        db.session.delete(skill)
    db.session.flush()
    db.session.delete(area)
    db.session.flush()


def _skill_values(framework: SkillFramework, title: str, description: str, required_level) -> tuple:
    return (_title(title, "skill", SKILL_TITLE_MAX), _description(description),
            parse_level(required_level, len(framework.scale)))


def add_skill(framework: SkillFramework, area: SkillArea, actor: Membership, title: str, description: str = "",
              required_level=None) -> Skill:
    _editable(framework, actor)
    title, description, required = _skill_values(framework, title, description, required_level)
    if db.session.scalar(select(func.count()).select_from(Skill).where(
            Skill.tenant_id == framework.tenant_id, Skill.framework_id == framework.id)) >= MAX_SKILLS:
        raise ProgressError(f"A framework has at most {MAX_SKILLS} skills.")
    skill = Skill(tenant_id=framework.tenant_id, framework_id=framework.id, area_id=area.id, title=title,
                  description=description, required_level=required,
                  position=_next_position(Skill, Skill.tenant_id == framework.tenant_id, Skill.area_id == area.id))
    db.session.add(skill)
    db.session.flush()
    return skill


def update_skill(framework: SkillFramework, skill: Skill, actor: Membership, title: str, description: str,
                 required_level, area: SkillArea | None = None) -> Skill:
    _editable(framework, actor)
    skill.title, skill.description, skill.required_level = _skill_values(framework, title, description,
                                                                         required_level)
    if area is not None and area.id != skill.area_id:
        skill.area_id = area.id
        skill.position = _next_position(Skill, Skill.tenant_id == framework.tenant_id, Skill.area_id == area.id)
    db.session.flush()
    return skill


def remove_skill(framework: SkillFramework, skill: Skill, actor: Membership) -> None:
    _editable(framework, actor)
    if _observed_count(framework.tenant_id, [skill.id]):
        raise ProgressError(f"“{skill.title}” is in session records, so it stays. Edit it, or archive the framework "
                            "and start a new one.", status=409)
    db.session.delete(skill)
    db.session.flush()


def move(framework: SkillFramework, item: SkillArea | Skill, actor: Membership, delta: int) -> None:
    """Move an area among its framework's areas, or a skill within its area, one place up (-1) or down (+1)."""
    _editable(framework, actor)
    if isinstance(item, SkillArea):
        siblings = list(db.session.scalars(select(SkillArea).where(
            SkillArea.tenant_id == framework.tenant_id, SkillArea.framework_id == framework.id)
            .order_by(SkillArea.position, SkillArea.title)))
    else:
        siblings = list(db.session.scalars(select(Skill).where(
            Skill.tenant_id == framework.tenant_id, Skill.area_id == item.area_id)
            .order_by(Skill.position, Skill.title)))
    index = next(i for i, s in enumerate(siblings) if s.id == item.id)
    target = index + delta
    if 0 <= target < len(siblings):
        siblings[index], siblings[target] = siblings[target], siblings[index]
    for position, sibling in enumerate(siblings, start=1):
        sibling.position = position
    db.session.flush()


# --- CSV -----------------------------------------------------------------------------------------------

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: str) -> str:
    """A cell a spreadsheet shows as text (never a formula)."""
    return "'" + value if value and value.startswith(FORMULA_START) else value


def _uncell(value: str) -> str:
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_START) else value


def export_csv(framework: SkillFramework) -> str:
    view = structure(framework)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["scale", *(_cell(label) for label in framework.scale)])
    writer.writerow(CSV_HEADER)
    for area in view.areas:
        for skill in area.skills:
            writer.writerow([_cell(area.area.title), _cell(skill.title), _cell(skill.description),
                             skill.required_level or ""])
    return out.getvalue()


@dataclass
class ParsedFramework:
    scale: list[str]
    areas: dict[str, list[tuple[str, str, int | None]]]  # area title → (skill, description, required level)

    @property
    def skill_count(self) -> int:
        return sum(len(v) for v in self.areas.values())


def parse_csv(data: bytes) -> ParsedFramework:
    """The framework a CSV file describes, or a :class:`ProgressError` naming the first problem (and its line)."""
    if not data or not data.strip():
        raise ProgressError("The file is empty: export a framework to see the format.")
    if len(data) > MAX_CSV_BYTES:
        raise ProgressError(f"The file is too large (at most {MAX_CSV_BYTES // 1024} KB).", status=413)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ProgressError("The file is not UTF-8 text: save it as “CSV UTF-8” and try again.") from None
    if "\x00" in text:
        raise ProgressError("The file is not a CSV text file.")
    try:
        rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    except csv.Error as exc:
        raise ProgressError(f"The file is not readable CSV ({exc}).") from None
    if not rows:
        raise ProgressError("The file is empty: export a framework to see the format.")
    scale = list(DEFAULT_SCALE)
    line = 0
    if rows[0] and rows[0][0].strip().lower() == "scale":
        try:
            scale = parse_scale([_uncell(c) for c in rows[0][1:]])
        except ProgressError as exc:
            raise ProgressError(f"Line 1 (the scale): {exc}") from None
        rows, line = rows[1:], 1
    if not rows:
        raise ProgressError("The file has no header row: area,skill,description,required_level.")
    header = [c.strip().lower() for c in rows[0]]
    while header and not header[-1]:
        header.pop()
    if header != CSV_HEADER:
        raise ProgressError(f"Line {line + 1}: the columns must be {','.join(CSV_HEADER)} (found "
                            f"“{','.join(header)[:80]}”).")
    body = rows[1:]
    if not body:
        raise ProgressError("The file has no skills: add one row per skill under the header.")
    if len(body) > MAX_CSV_ROWS:
        raise ProgressError(f"The file has {len(body)} skills; a framework has at most {MAX_CSV_ROWS}.", status=413)
    areas: dict[str, list[tuple[str, str, int | None]]] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    for number, row in enumerate(body, start=line + 2):
        if len(row) > len(CSV_HEADER) and any(c.strip() for c in row[len(CSV_HEADER):]):
            raise ProgressError(f"Line {number}: too many cells (the columns are {','.join(CSV_HEADER)}).")
        area, skill, description, level = [_uncell(c) for c in (row + [""] * 4)[:4]]
        try:
            area = _title(area, "area", TITLE_MAX)
            skill = _title(skill, "skill", SKILL_TITLE_MAX)
            description = _description(description)
            required = parse_level(level, len(scale))
        except ProgressError as exc:
            raise ProgressError(f"Line {number}: {exc}") from None
        key = (area.lower(), skill.lower())
        if key in seen:
            raise ProgressError(f"Line {number}: “{skill}” is already in “{area}”.")
        seen.add(key)
        match = next((a for a in areas if a.lower() == area.lower()), area)
        areas[match].append((skill, description, required))
    if len(areas) > MAX_AREAS:
        raise ProgressError(f"A framework has at most {MAX_AREAS} areas.")
    return ParsedFramework(scale, dict(areas))


def import_csv(tenant_id: uuid.UUID, actor: Membership, title: str, data: bytes,
               description: str = "") -> SkillFramework:
    """A new framework titled ``title`` from a CSV file (see the module's docstring); all of it or nothing."""
    require_staff(actor)
    parsed = parse_csv(data)
    framework = create_framework(tenant_id, actor, title, description, parsed.scale)
    _write_structure(framework, parsed.areas)
    _audit(actor, "progress.framework_imported", framework, skills=parsed.skill_count)
    return framework


def _write_structure(framework: SkillFramework, areas: dict[str, list[tuple[str, str, int | None]]]) -> None:
    t = framework.tenant_id
    area_rows = [SkillArea(id=uuid.uuid4(), tenant_id=t, framework_id=framework.id, title=title, position=i)
                 for i, title in enumerate(areas, start=1)]
    db.session.add_all(area_rows)
    db.session.flush()
    db.session.add_all([
        Skill(tenant_id=t, framework_id=framework.id, area_id=area.id, title=skill, description=description,
              required_level=required, position=j)
        for area, skills in zip(area_rows, areas.values())
        for j, (skill, description, required) in enumerate(skills, start=1)])
    db.session.flush()


# --- demo data -----------------------------------------------------------------------------------------

EXAMPLES = (
    ("Tennis fundamentals", "The strokes and movement a club player needs before match play.",
     ["Introduced", "Practised", "Competent", "Proficient"],
     {"Serve": [("Flat serve", "Continental grip, toss in front, full swing.", 3),
                ("Kick serve", "Brush up the back of the ball; lands deep and high.", 3),
                ("Second-serve consistency", "8 of 10 second serves in.", 4)],
      "Forehand": [("Topspin rally ball", "Cross-court, above the net, past the service line.", 3),
                   ("Inside-out forehand", "Run around the backhand and hit to the opponent's backhand.", 2),
                   ("Approach shot", "Low slice or drive, then follow it to the net.", 3)],
      "Movement": [("Split step", "Land as the opponent strikes.", 4),
                   ("Recovery to the centre", "Back to the middle of the possible angles after each shot.", 3)]}),
    ("Valorant aim & game sense", "Mechanics and decisions for a ranked Valorant player.",
     ["Iron", "Bronze", "Silver", "Gold", "Platinum", "Diamond"],
     {"Aim": [("Crosshair placement", "Head level, pre-aimed at common angles.", 4),
              ("Counter-strafing", "Stop before shooting; first bullet accurate.", 4),
              ("Spray control", "Vandal and Phantom sprays within a head-sized area at 15 m.", 3)],
      "Game sense": [("Minimap awareness", "Calls enemy positions from sound and map.", 4),
                     ("Economy", "Buys with the team; knows when to save.", 3),
                     ("Trading", "Positions to trade a teammate's death within two seconds.", 4)],
      "Utility": [("Lineups", "Three post-plant lineups per site of one map.", 3),
                  ("Flash timing", "Pops flashes for an entry, not at them.", 3)]}),
)


def seed_examples(org, actor: Membership | None = None) -> list[SkillFramework]:
    """Two example frameworks for the demo organization (tennis, and an esports one); skipped when a framework
    with that title exists already. Written directly (no audit): the demo command calls it."""
    made = []
    for title, description, scale, areas in EXAMPLES:
        exists = db.session.scalar(select(SkillFramework.id).where(
            SkillFramework.tenant_id == org.id, func.lower(SkillFramework.title) == title.lower()))
        if exists is not None:
            continue
        framework = SkillFramework(tenant_id=org.id, title=title, description=description, scale=list(scale))
        db.session.add(framework)
        db.session.flush()
        _write_structure(framework, areas)
        made.append(framework)
    return made
