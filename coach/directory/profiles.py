"""Coach profiles: made on first edit, validated field by field, verified by admins.

A profile is what a coach tells athletes (and, when listed, the public directory) about themselves. Every change
writes the row and a ``PROFILE_CHANGED`` outbox event in the caller's transaction, so the public listing follows
it; services never commit. Plain fields keep what was typed, HTML included, as text (templates escape it); only
the bio is Markdown, rendered and sanitised once when saved (``coach.spaces.markdown.render``, as posts are).
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace

from babel import Locale
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from coach import clock
from coach.directory import taxonomy
from coach.directory.events import PROFILE_CHANGED
from coach.directory.models import (
    BIO_MAX,
    CERTIFICATIONS_MAX,
    HEADLINE_MAX,
    LANGUAGES_MAX,
    LOCATION_MAX,
    TAG_MAX,
    TAGS_MAX,
    CoachProfile,
)
from coach.errors import DomainError, NotAllowed
from coach.extensions import db
from coach.ids import parse_uuid
from coach.media.models import MediaItem
from coach.orgs.models import ADMIN, COACH, STAFF, Membership, Organization
from coach.platform import audit
from coach.platform.outbox import emit
from coach.spaces.markdown import render as render_markdown

HANDLE_MAX = 60
YEARS_MAX = 80
NOTE_MAX = 500
CERTIFICATION_LINE_MAX = 200

# ISO 639-1 codes (two letters) with their English names, from Babel's CLDR data: the list is fixed by the
# installed Babel, so a code saved today is shown with its name tomorrow.
LANGUAGES: dict[str, str] = dict(sorted(
    ((code, name) for code, name in Locale("en").languages.items() if re.fullmatch(r"[a-z]{2}", code)),
    key=lambda pair: pair[1].lower()))


class ProfileError(DomainError):
    """A profile value was refused; ``fields`` maps each form field to what is wrong with it."""

    def __init__(self, fields: Mapping[str, str]):
        self.fields = dict(fields)
        first = next(iter(self.fields.values()), "Check the profile.")
        super().__init__(first if len(self.fields) == 1 else "Some fields need attention: " + first)


# --- reading ------------------------------------------------------------------------------------------

def profile_of(org: Organization, coach: Membership) -> CoachProfile | None:
    """The profile of ``coach`` in ``org``, or ``None`` before the coach's first edit."""
    return db.session.scalar(select(CoachProfile).where(CoachProfile.tenant_id == org.id,
                                                        CoachProfile.coach_membership_id == coach.id))


def get_coach(org: Organization, coach_id) -> Membership | None:
    """A coach of ``org`` by membership id (anything else, a malformed id included, is ``None``)."""
    ident = parse_uuid(coach_id)
    if ident is None:
        return None
    return db.session.scalar(select(Membership).where(Membership.tenant_id == org.id, Membership.id == ident,
                                                      Membership.role == COACH))


def may_edit(actor: Membership, coach: Membership) -> bool:
    """The coach themself, or the organization's admins and schedulers."""
    return actor.tenant_id == coach.tenant_id and (actor.id == coach.id or actor.role in STAFF)


@dataclass(frozen=True)
class PublicStatus:
    """Whether a coach's profile is published in the public directory and, when not, why (in the coach's words)."""

    listed: bool
    why_not: str = ""


def public_status(org: Organization, coach: Membership, profile: CoachProfile | None) -> PublicStatus:
    """The projection's rule for who is listed (``projection._project``), read from the organization's own rows, so
    the profile page can say it at once (the public page follows when the projection's consumer has run)."""
    if not org.listed_publicly:
        return PublicStatus(False, f"{org.name} does not list its coaches in the public coach directory.")
    if org.closing_requested_at is not None:
        return PublicStatus(False, f"{org.name} is closing: its coaches are out of the public coach directory.")
    if profile is None or not profile.headline.strip():
        return PublicStatus(False, "Not in the public coach directory yet: the profile needs a headline.")
    if not profile.listed:
        return PublicStatus(False, "Not in the public coach directory: the coach chose to stay out of it.")
    if coach.user.erased_at is not None:
        return PublicStatus(False, "Not in the public coach directory.")
    return PublicStatus(True)


def language_names(codes) -> list[str]:
    return [LANGUAGES.get(code, code) for code in codes or ()]


# --- handles ------------------------------------------------------------------------------------------

def handle_base(name: str) -> str:
    """``name`` as a handle: ASCII letters and digits joined by single hyphens ("José García" → "jose-garcia"),
    short enough to take a "-NN" suffix; a name with no ASCII form gives "coach"."""
    return taxonomy.slug_of(name, HANDLE_MAX - 4) or "coach"


def _free_handle(tenant_id: uuid.UUID, base: str) -> str:
    taken = set(db.session.scalars(select(CoachProfile.handle).where(
        CoachProfile.tenant_id == tenant_id, CoachProfile.handle.like(f"{base}%"))))
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def ensure_profile(coach: Membership) -> CoachProfile:
    """The coach's profile, made (with a handle from their name, unique in the organization) if they have none."""
    if coach.role != COACH:
        raise DomainError("Only coaches have a coach profile.")
    found = db.session.scalar(select(CoachProfile).where(CoachProfile.tenant_id == coach.tenant_id,
                                                         CoachProfile.coach_membership_id == coach.id))
    if found is not None:
        return found
    for _ in range(3):
        profile = CoachProfile(id=uuid.uuid4(), tenant_id=coach.tenant_id, coach_membership_id=coach.id,
                               handle=_free_handle(coach.tenant_id, handle_base(coach.user.display_name)),
                               languages=[], tags=[])
        try:
            with db.session.begin_nested():  # a concurrent first edit (or handle) wins; read theirs or retry
                db.session.add(profile)
                db.session.flush()
            return profile
        except IntegrityError:
            found = db.session.scalar(select(CoachProfile).where(CoachProfile.tenant_id == coach.tenant_id,
                                                                 CoachProfile.coach_membership_id == coach.id))
            if found is not None:
                return found
    raise DomainError("The profile could not be created just now. Try again.", status=409)


# --- validation ---------------------------------------------------------------------------------------

@dataclass
class _Checker:
    errors: dict[str, str] = field(default_factory=dict)

    def text(self, values: Mapping, name: str, limit: int, label: str, strip: bool = True) -> str:
        raw = values.get(name)
        value = "" if raw is None else str(raw)
        if strip:
            value = value.strip()
        value = value.replace("\r\n", "\n")
        if "\x00" in value:
            self.errors[name] = f"{label} cannot contain a NUL character."
        elif len(value) > limit:
            self.errors[name] = f"{label}: at most {limit:,} characters (this has {len(value):,})."
        return value


def _as_list(raw) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [raw]
    return [str(item) for item in raw]


def _languages(check: _Checker, raw) -> list[str]:
    codes: list[str] = []
    for code in _as_list(raw):
        code = code.strip().lower()
        if not code:
            continue
        if code not in LANGUAGES:
            check.errors["languages"] = "Choose languages from the list."
            return []
        if code not in codes:
            codes.append(code)
    if len(codes) > LANGUAGES_MAX:
        check.errors["languages"] = f"Choose at most {LANGUAGES_MAX} languages."
    return codes


def _tags(check: _Checker, raw) -> list[str]:
    """Free tags, from a list or one comma-separated string: trimmed, lower-cased, each once."""
    parts = [p for item in _as_list(raw) for p in item.split(",")]
    tags: list[str] = []
    for part in parts:
        tag = " ".join(part.split()).lower()
        if not tag:
            continue
        if "\x00" in tag:
            check.errors["tags"] = "Tags cannot contain a NUL character."
            return []
        if len(tag) > TAG_MAX:
            check.errors["tags"] = f"Each tag has at most {TAG_MAX} characters (“{tag[:20]}…” is longer)."
            return []
        if tag not in tags:
            tags.append(tag)
    if len(tags) > TAGS_MAX:
        check.errors["tags"] = f"At most {TAGS_MAX} tags (this has {len(tags)})."
    return tags


def _years(check: _Checker, raw) -> int | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        years = int(str(raw).strip())
    except ValueError:
        check.errors["years_experience"] = "Years of experience: a whole number from 0 to 80, or empty."
        return None
    if not 0 <= years <= YEARS_MAX:
        check.errors["years_experience"] = f"Years of experience: between 0 and {YEARS_MAX}."
        return None
    return years


def _flag(raw) -> bool:
    if isinstance(raw, str):
        return raw.strip().lower() in ("y", "yes", "on", "true", "1")
    return bool(raw)


def eligible_media(coach: Membership, actor: Membership, kind: str,
                   current: uuid.UUID | None = None) -> list[MediaItem]:
    """Ready media items of ``kind`` ("image" or "video") that may go on the coach's profile: the coach's own,
    those of the staff member editing it (an admin may upload a coach's photo for them), and the one chosen now
    (whoever chose it: keeping it is always allowed)."""
    mine = MediaItem.owner_membership_id.in_({coach.id, actor.id})
    return list(db.session.scalars(select(MediaItem).where(
        MediaItem.tenant_id == coach.tenant_id, or_(mine, MediaItem.id == current) if current else mine,
        MediaItem.kind == kind, MediaItem.status == "ready").order_by(MediaItem.created_at.desc()).limit(50)))


def _media(check: _Checker, name: str, raw, coach: Membership, actor: Membership, kind: str,
           current: uuid.UUID | None) -> uuid.UUID | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    ident = raw if isinstance(raw, uuid.UUID) else parse_uuid(str(raw).strip())
    what = "photo" if kind == "image" else "intro video"
    item = None
    if ident is not None:
        item = db.session.scalar(select(MediaItem).where(MediaItem.tenant_id == coach.tenant_id,
                                                         MediaItem.id == ident))
    if item is None or (item.owner_membership_id not in (coach.id, actor.id) and item.id != current):
        check.errors[name] = f"Choose the {what} from your own media library."
        return None
    if item.kind != kind:
        check.errors[name] = f"The {what} must be {'an image' if kind == 'image' else 'a video'}."
        return None
    if item.status != "ready":
        check.errors[name] = f"That {what} is not ready yet ({item.status}); choose it once it is processed."
        return None
    return item.id


def clean_values(coach: Membership, values: Mapping, actor: Membership, profile: CoachProfile | None = None) -> dict:
    """Every value of ``values`` for ``coach``'s profile checked and normalised, keyed by the profile's columns.

    :param profile: the profile as saved: its current photo and video may stay whoever chose them.

    :raises ProfileError: with a message per refused field (nothing is changed).
    """
    check = _Checker()
    clean = {
        "headline": " ".join(check.text(values, "headline", HEADLINE_MAX, "Headline").split()),
        "bio_source": check.text(values, "bio", BIO_MAX, "About you"),
        "certifications": "\n".join(
            line.strip() for line in check.text(values, "certifications", CERTIFICATIONS_MAX,
                                                "Certifications").split("\n") if line.strip()),
        "location": " ".join(check.text(values, "location", LOCATION_MAX, "Location").split()),
        "languages": _languages(check, values.get("languages")),
        "tags": _tags(check, values.get("tags")),
        "years_experience": _years(check, values.get("years_experience")),
        "online": _flag(values.get("online")),
        "in_person": _flag(values.get("in_person")),
        "listed": _flag(values.get("listed")),
        "photo_media_id": _media(check, "photo_media_id", values.get("photo_media_id"), coach, actor, "image",
                                 profile.photo_media_id if profile else None),
        "intro_media_id": _media(check, "intro_media_id", values.get("intro_media_id"), coach, actor, "video",
                                 profile.intro_media_id if profile else None),
    }
    if any(len(line) > CERTIFICATION_LINE_MAX for line in clean["certifications"].split("\n")):
        check.errors.setdefault("certifications",
                                f"One certification per line, each at most {CERTIFICATION_LINE_MAX} characters.")
    if not (clean["online"] or clean["in_person"]):
        check.errors["online"] = "Say whether you coach online, in person or both."
    if check.errors:
        raise ProfileError(check.errors)
    clean["bio_html"] = render_markdown(clean["bio_source"]) if clean["bio_source"] else ""
    return clean


# --- writing ------------------------------------------------------------------------------------------

def _require_editor(profile: CoachProfile, actor: Membership) -> None:
    if not may_edit(actor, profile.coach):
        raise NotAllowed("Only the coach and the organization's staff edit this profile.")


def _changed(profile: CoachProfile, what: str) -> None:
    profile.updated_at = clock.now()
    db.session.flush()
    emit(PROFILE_CHANGED, {"coach_membership_id": str(profile.coach_membership_id), "profile_id": str(profile.id),
                           "what": what}, tenant_id=profile.tenant_id)


def preview(coach: Membership, profile: CoachProfile | None, values: Mapping, actor: Membership) -> SimpleNamespace:
    """What the coach's profile would show with ``values``, written nowhere (the editor's live preview); works
    before the profile exists.

    :raises ProfileError: as :func:`save_profile` would.
    """
    if not may_edit(actor, coach):
        raise NotAllowed("Only the coach and the organization's staff edit this profile.")
    clean = clean_values(coach, values, actor, profile)
    verified_at = profile.verified_at if profile else None
    return SimpleNamespace(
        id=profile.id if profile else None, tenant_id=coach.tenant_id, coach_membership_id=coach.id, coach=coach,
        handle=profile.handle if profile else handle_base(coach.user.display_name), verified_at=verified_at,
        verified=verified_at is not None, verification_note=profile.verification_note if profile else "", **clean)


def media_of(tenant_id: uuid.UUID, *media_ids) -> list[MediaItem | None]:
    """The ready media items with these ids (``None`` for a missing id, or an item gone or not ready)."""
    wanted = [i for i in media_ids if i is not None]
    found = {}
    if wanted:
        found = {m.id: m for m in db.session.scalars(select(MediaItem).where(
            MediaItem.tenant_id == tenant_id, MediaItem.id.in_(wanted), MediaItem.status == "ready"))}
    return [found.get(i) if i is not None else None for i in media_ids]


def save_profile(profile: CoachProfile, values: Mapping, actor: Membership) -> CoachProfile:
    """Validate and store ``values`` (the editor's fields); ``term_ids`` among them replaces the taxonomy links.

    :raises ProfileError: a refused value (nothing is written); :class:`NotAllowed` for anyone but the coach and
        staff.
    """
    _require_editor(profile, actor)
    clean = clean_values(profile.coach, values, actor, profile)
    if "term_ids" in values:
        taxonomy.set_profile_terms(profile, values["term_ids"], actor, emit_change=False)
    for column, value in clean.items():
        setattr(profile, column, value)
    _changed(profile, "profile")
    return profile


def set_listed(profile: CoachProfile, listed: bool, actor: Membership) -> CoachProfile:
    """The coach's own choice to appear in the public directory (when the organization lists its coaches)."""
    _require_editor(profile, actor)
    if profile.listed != bool(listed):
        profile.listed = bool(listed)
        _changed(profile, "listed")
    return profile


def set_verification(profile: CoachProfile, verified: bool, note: str, actor: Membership) -> CoachProfile:
    """Verify a coach (with a note saying what was checked) or remove the verification; admins only, audited."""
    if actor.role != ADMIN or actor.tenant_id != profile.tenant_id:
        raise NotAllowed("Only the organization's admins verify coaches.")
    note = " ".join((note or "").split())
    if "\x00" in note:
        raise ProfileError({"note": "The note cannot contain a NUL character."})
    if len(note) > NOTE_MAX:
        raise ProfileError({"note": f"The note has at most {NOTE_MAX} characters."})
    if verified and not note:
        raise ProfileError({"note": "Say what you checked (identity, certificates…) in the note."})
    before = profile.verified_at is not None
    if verified:
        profile.verified_at, profile.verified_by_membership_id = clock.now(), actor.id
        profile.verification_note = note
    else:
        profile.verified_at = profile.verified_by_membership_id = None
        profile.verification_note = ""
    audit.record("directory.coach_verified" if verified else "directory.verification_removed",
                 actor=actor.user, target_type="coach_profile", target_id=profile.id, tenant_id=profile.tenant_id,
                 details={"coach_membership_id": str(profile.coach_membership_id), "note": note,
                          "was_verified": before})
    _changed(profile, "verification")
    return profile
