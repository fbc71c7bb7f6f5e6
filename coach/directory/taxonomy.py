"""The organization's taxonomy: sports or games, and the skills, roles and levels taught under each.

Admins edit it; coaches tick the terms they teach on their profile. A change to the taxonomy changes what every
listing of the organization shows, so each edit emits ``LISTING_CHANGED`` with no coach (the projection
refreshes them all) and is audited.
"""
from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from coach.directory.events import LISTING_CHANGED, PROFILE_CHANGED
from coach.directory.models import TERM_KIND_LABELS, TERM_KINDS, CoachProfile, CoachProfileTerm, DirectoryTerm
from coach.errors import DomainError, NotAllowed
from coach.extensions import db
from coach.ids import parse_uuid
from coach.orgs.models import ADMIN, STAFF, Membership, Organization
from coach.platform import audit
from coach.platform.outbox import emit

NAME_MAX = 60
TERMS_MAX = 500  # per organization: a taxonomy, not a tag cloud
CHILD_KINDS = TERM_KINDS[1:]


class TaxonomyError(DomainError):
    """A taxonomy edit or a profile's choice of terms was refused."""


def slug_of(name: str, limit: int = NAME_MAX) -> str:
    """ASCII letters and digits of ``name`` joined by single hyphens ("Counter-Strike 2" → "counter-strike-2").

    A small NFKD fold rather than a transliteration library (none is installed, and accents are what names here
    mostly carry); a name with no ASCII form at all gives "".
    """
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").lower()
    return re.sub(r"[^a-z0-9]+", "-", folded).strip("-")[:limit].strip("-")


@dataclass
class Discipline:
    """A sport or game with its terms by kind (``skill``, ``role``, ``level``), each list in order."""

    term: DirectoryTerm
    children: dict[str, list[DirectoryTerm]] = field(default_factory=lambda: {k: [] for k in CHILD_KINDS})

    @property
    def all_children(self) -> list[DirectoryTerm]:
        return [t for kind in CHILD_KINDS for t in self.children[kind]]


def terms_tree(org: Organization) -> list[Discipline]:
    """The taxonomy in one query: disciplines in order, each with its skills, roles and levels."""
    rows = db.session.scalars(select(DirectoryTerm).where(DirectoryTerm.tenant_id == org.id).order_by(
        DirectoryTerm.position, func.lower(DirectoryTerm.name)))
    tree: dict[uuid.UUID, Discipline] = {}
    children = []
    for term in rows:
        if term.kind == "discipline":
            tree[term.id] = Discipline(term)
        else:
            children.append(term)
    for term in children:
        if term.parent_id in tree:
            tree[term.parent_id].children[term.kind].append(term)
    return list(tree.values())


def get_term(org: Organization, term_id) -> DirectoryTerm | None:
    ident = parse_uuid(term_id)
    if ident is None:
        return None
    return db.session.scalar(select(DirectoryTerm).where(DirectoryTerm.tenant_id == org.id,
                                                         DirectoryTerm.id == ident))


def _require_admin(org: Organization, actor: Membership) -> None:
    if actor.role != ADMIN or actor.tenant_id != org.id:
        raise NotAllowed("Only the organization's admins edit its taxonomy.")


def _clean_name(name) -> str:
    name = " ".join(str(name or "").split())
    if "\x00" in name:
        raise TaxonomyError("A name cannot contain a NUL character.")
    if not name:
        raise TaxonomyError("Enter a name.")
    if len(name) > NAME_MAX:
        raise TaxonomyError(f"A name has at most {NAME_MAX} characters.")
    return name


def _slug_for(name: str) -> str:
    # A name of letters with no ASCII form ("日本語") still needs an address-safe slug.
    return slug_of(name) or "t-" + uuid.uuid4().hex[:8]


def _taken(org: Organization, kind: str, parent_id, slug: str, except_id=None) -> bool:
    query = select(DirectoryTerm.id).where(DirectoryTerm.tenant_id == org.id, DirectoryTerm.kind == kind,
                                           DirectoryTerm.slug == slug)
    query = query.where(DirectoryTerm.parent_id.is_(None) if parent_id is None
                        else DirectoryTerm.parent_id == parent_id)
    if except_id is not None:
        query = query.where(DirectoryTerm.id != except_id)
    return db.session.scalar(query.limit(1)) is not None


def _flush_unique(message: str) -> None:
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError as exc:  # the same name added at the same moment by another admin
        raise TaxonomyError(message, status=409) from exc


def _taxonomy_changed(org: Organization, action: str, actor: Membership, term: DirectoryTerm, **details) -> None:
    audit.record(f"directory.term_{action}", actor=actor.user, target_type="directory_term", target_id=term.id,
                 tenant_id=org.id, details={"kind": term.kind, "name": term.name, **details})
    emit(LISTING_CHANGED, {"coach_membership_id": None, "reason": "taxonomy"}, tenant_id=org.id)


def add_term(org: Organization, kind: str, name: str, actor: Membership, parent_id=None) -> DirectoryTerm:
    """A new sport or game (``kind="discipline"``), or a skill, role or level under discipline ``parent_id``."""
    _require_admin(org, actor)
    if kind not in TERM_KINDS:
        raise TaxonomyError("Choose a sport or game, a skill, a role or a level.", status=400)
    name = _clean_name(name)
    parent = None
    if kind != "discipline":
        parent = get_term(org, parent_id)
        if parent is None or parent.kind != "discipline":
            raise TaxonomyError("Choose the sport or game it belongs to.", status=400)
    count = db.session.scalar(select(func.count()).select_from(DirectoryTerm).where(DirectoryTerm.tenant_id == org.id))
    if count >= TERMS_MAX:
        raise TaxonomyError(f"The taxonomy holds at most {TERMS_MAX} terms.")
    slug = _slug_for(name)
    parent_id = parent.id if parent else None
    label = TERM_KIND_LABELS[kind].lower()
    if _taken(org, kind, parent_id, slug):
        raise TaxonomyError(f"There is already a {label} “{name}”{' under ' + parent.name if parent else ''}.")
    position = db.session.scalar(select(func.coalesce(func.max(DirectoryTerm.position), -1) + 1).where(
        DirectoryTerm.tenant_id == org.id, DirectoryTerm.kind == kind,
        DirectoryTerm.parent_id.is_(None) if parent_id is None else DirectoryTerm.parent_id == parent_id))
    term = DirectoryTerm(id=uuid.uuid4(), tenant_id=org.id, kind=kind, parent_id=parent_id, name=name, slug=slug,
                         position=min(position, 32000))
    db.session.add(term)
    _flush_unique(f"There is already a {label} “{name}”.")
    _taxonomy_changed(org, "added", actor, term, parent=parent.name if parent else None)
    return term


def rename_term(term: DirectoryTerm, name: str, actor: Membership) -> DirectoryTerm:
    org = db.session.get(Organization, term.tenant_id)
    _require_admin(org, actor)
    name = _clean_name(name)
    if name == term.name:
        return term
    slug = _slug_for(name)
    if _taken(org, term.kind, term.parent_id, slug, except_id=term.id):
        raise TaxonomyError(f"There is already a {TERM_KIND_LABELS[term.kind].lower()} “{name}” here.")
    before = term.name
    term.name, term.slug = name, slug
    _flush_unique(f"There is already a {TERM_KIND_LABELS[term.kind].lower()} “{name}” here.")
    _taxonomy_changed(org, "renamed", actor, term, before=before)
    return term


def move_term(term: DirectoryTerm, step: int, actor: Membership) -> DirectoryTerm:
    """Move a term one place up (``step=-1``) or down (``+1``) among its siblings."""
    org = db.session.get(Organization, term.tenant_id)
    _require_admin(org, actor)
    siblings = list(db.session.scalars(select(DirectoryTerm).where(
        DirectoryTerm.tenant_id == org.id, DirectoryTerm.kind == term.kind,
        DirectoryTerm.parent_id.is_(None) if term.parent_id is None else DirectoryTerm.parent_id == term.parent_id,
    ).order_by(DirectoryTerm.position, func.lower(DirectoryTerm.name))))
    index = next(i for i, t in enumerate(siblings) if t.id == term.id)
    other = index + (1 if step > 0 else -1)
    if not 0 <= other < len(siblings):
        return term
    siblings[index], siblings[other] = siblings[other], siblings[index]
    for position, sibling in enumerate(siblings):
        sibling.position = position
    db.session.flush()
    _taxonomy_changed(org, "moved", actor, term, position=other)
    return term


def usage(org: Organization, term: DirectoryTerm) -> int:
    """How many profiles link the term (or, for a discipline, it or any term under it)."""
    ids = [term.id] + ([t for t in db.session.scalars(select(DirectoryTerm.id).where(
        DirectoryTerm.tenant_id == org.id, DirectoryTerm.parent_id == term.id))] if term.kind == "discipline" else [])
    return db.session.scalar(select(func.count(func.distinct(CoachProfileTerm.profile_id))).where(
        CoachProfileTerm.tenant_id == org.id, CoachProfileTerm.term_id.in_(ids))) or 0


def delete_term(term: DirectoryTerm, actor: Membership) -> None:
    """Delete a term and the profiles' links to it; a discipline takes its skills, roles and levels with it."""
    org = db.session.get(Organization, term.tenant_id)
    _require_admin(org, actor)
    ids = [term.id]
    if term.kind == "discipline":
        ids += list(db.session.scalars(select(DirectoryTerm.id).where(DirectoryTerm.tenant_id == org.id,
                                                                      DirectoryTerm.parent_id == term.id)))
    links = db.session.execute(delete(CoachProfileTerm).where(CoachProfileTerm.tenant_id == org.id,
                                                              CoachProfileTerm.term_id.in_(ids))).rowcount
    db.session.execute(delete(DirectoryTerm).where(DirectoryTerm.tenant_id == org.id,
                                                   DirectoryTerm.parent_id == term.id))
    _taxonomy_changed(org, "deleted", actor, term, children=len(ids) - 1, profile_links=links)
    db.session.delete(term)
    db.session.flush()


# --- a profile's terms ------------------------------------------------------------------------------------

def profile_term_ids(profile: CoachProfile) -> set[uuid.UUID]:
    return set(db.session.scalars(select(CoachProfileTerm.term_id).where(
        CoachProfileTerm.tenant_id == profile.tenant_id, CoachProfileTerm.profile_id == profile.id)))


def profile_terms(profile) -> list[Discipline]:
    """The taxonomy pruned to what ``profile`` teaches: its disciplines, each with its chosen terms."""
    chosen = profile_term_ids(profile)
    org = db.session.get(Organization, profile.tenant_id)
    return [_pruned(d, chosen) for d in terms_tree(org)
            if d.term.id in chosen or any(t.id in chosen for t in d.all_children)]


def pruned_tree(org: Organization, chosen: set[uuid.UUID]) -> list[Discipline]:
    """The taxonomy pruned to ``chosen`` term ids (the preview shows unsaved choices this way)."""
    return [_pruned(d, chosen) for d in terms_tree(org)
            if d.term.id in chosen or any(t.id in chosen for t in d.all_children)]


def _pruned(discipline: Discipline, chosen: set[uuid.UUID]) -> Discipline:
    return Discipline(discipline.term, {kind: [t for t in terms if t.id in chosen]
                                        for kind, terms in discipline.children.items()})


def check_term_ids(org: Organization, term_ids: Iterable) -> set[uuid.UUID]:
    """``term_ids`` as the organization's terms, with the discipline of each chosen skill, role or level added.

    :raises TaxonomyError: (400) an id that is not one of the organization's terms.
    """
    wanted: set[uuid.UUID] = set()
    for raw in term_ids or ():
        ident = raw if isinstance(raw, uuid.UUID) else parse_uuid(str(raw).strip())
        if ident is None:
            raise TaxonomyError("One of the chosen sports, games or skills is not in this organization's list.",
                                status=400)
        wanted.add(ident)
    if len(wanted) > TERMS_MAX:
        raise TaxonomyError("Too many terms chosen.", status=400)
    if not wanted:
        return set()
    found = {t.id: t for t in db.session.scalars(select(DirectoryTerm).where(
        DirectoryTerm.tenant_id == org.id, DirectoryTerm.id.in_(wanted)))}
    if len(found) != len(wanted):
        raise TaxonomyError("One of the chosen sports, games or skills is not in this organization's list.",
                            status=400)
    return wanted | {t.parent_id for t in found.values() if t.parent_id is not None}


def set_profile_terms(profile: CoachProfile, term_ids: Iterable, actor: Membership,
                      emit_change: bool = True) -> set[uuid.UUID]:
    """Replace the terms ``profile`` teaches with ``term_ids`` (the organization's only; see
    :func:`check_term_ids`).

    :param emit_change: ``False`` when the caller (saving the whole profile) emits ``PROFILE_CHANGED`` itself.
    """
    if actor.tenant_id != profile.tenant_id or (actor.id != profile.coach_membership_id and actor.role not in STAFF):
        raise NotAllowed("Only the coach and the organization's staff edit this profile.")
    org = db.session.get(Organization, profile.tenant_id)
    wanted = check_term_ids(org, term_ids)
    current = profile_term_ids(profile)
    if current - wanted:
        db.session.execute(delete(CoachProfileTerm).where(CoachProfileTerm.tenant_id == profile.tenant_id,
                                                          CoachProfileTerm.profile_id == profile.id,
                                                          CoachProfileTerm.term_id.in_(current - wanted)))
    for term_id in wanted - current:
        db.session.add(CoachProfileTerm(id=uuid.uuid4(), tenant_id=profile.tenant_id, profile_id=profile.id,
                                        term_id=term_id))
    db.session.flush()
    if emit_change and wanted != current:
        emit(PROFILE_CHANGED, {"coach_membership_id": str(profile.coach_membership_id),
                               "profile_id": str(profile.id), "what": "terms"}, tenant_id=profile.tenant_id)
    return wanted
