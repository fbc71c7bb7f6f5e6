"""The public directory's projection: one ``directory_listings`` row per listed coach of a listed organization,
and the organization's ``directory_words`` for correcting misspelt query words.

The projection is the only place rows of every organization are read together, so it holds only what a coach
chose to publish and is written only here, from the organization's own rows, with that organization active:
its policies let an organization write its own rows (``organization_id``) and anyone read them. The outbox
consumers (:mod:`coach.directory.projection_jobs`) call :func:`refresh_coach` / :func:`refresh_org` after every
change that alters what a listing shows; :func:`rebuild_all` (``flask directory rebuild``) makes it again from
scratch. Functions here never commit: the caller's transaction (an event's, a request's) commits once.
"""
from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from babel import Locale, UnknownLocaleError
from flask import current_app, g
from sqlalchemy import cast, delete, func, literal, literal_column, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import REGCONFIG, insert

from coach import clock, money
from coach.accounts.models import User
from coach.booking.models import CoachCalendar
from coach.directory.models import CoachProfile, CoachProfileTerm, CoachRating, DirectoryTerm, Listing, ListingWord
from coach.directory.stats import CoachFacts, coach_facts
from coach.extensions import db
from coach.media.models import MediaItem
from coach.orgs.models import COACH, Membership, Organization
from coach.platform import tenant_context
from coach.platform.jobs import each_tenant
from coach.spaces.markdown import plain_excerpt

EXCERPT_MAX = 300
WORD_MIN, WORD_MAX = 3, 60
# Text search configurations PostgreSQL ships, by the organization's language: stems of the org's language
# match ("coaching" finds "coach"); anything else is read word for word ('simple').
TS_CONFIGS = {
    "ar": "arabic", "ca": "catalan", "da": "danish", "de": "german", "el": "greek", "en": "english",
    "es": "spanish", "eu": "basque", "fi": "finnish", "fr": "french", "ga": "irish", "hi": "hindi",
    "hu": "hungarian", "hy": "armenian", "id": "indonesian", "it": "italian", "lt": "lithuanian",
    "ne": "nepali", "nl": "dutch", "no": "norwegian", "nb": "norwegian", "pt": "portuguese", "ro": "romanian",
    "ru": "russian", "sr": "serbian", "sv": "swedish", "ta": "tamil", "tr": "turkish", "yi": "yiddish",
}
# Price bands in major units of the listing's currency: 0 free, 1 under 30, 2 30 to 60, 3 60 to 100, 4 100+.
BAND_LIMITS = (30, 60, 100)


def ts_config(locale: str | None) -> str:
    """The text search configuration for an organization's locale (``de-AT`` → german), else ``simple``."""
    language = (locale or "").replace("_", "-").split("-")[0].lower()
    return TS_CONFIGS.get(language, "simple")


def bayesian(count: int, star_sum: int) -> Decimal:
    """The rating a coach is ranked by: their reviews' mean pulled toward the prior mean as if they had
    DIRECTORY_RATING_PRIOR_WEIGHT more reviews of DIRECTORY_RATING_PRIOR_MEAN stars (so one 5-star review does
    not outrank fifty 4.8s). Three decimals, as ``rating_score`` stores it."""
    weight = Decimal(current_app.config["DIRECTORY_RATING_PRIOR_WEIGHT"])
    mean = Decimal(str(current_app.config["DIRECTORY_RATING_PRIOR_MEAN"]))
    score = (weight * mean + Decimal(star_sum)) / (weight + Decimal(count)) if weight + count else mean
    return score.quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)


def price_band(minor: int | None, currency: str | None) -> int | None:
    """The band of the lowest price (compared in the currency's major units, whatever the currency)."""
    if minor is None or currency is None:
        return None
    if minor == 0:
        return 0
    major = money.to_decimal(minor, currency)
    return 1 + sum(major >= limit for limit in BAND_LIMITS)


def listing_at(org_slug: str, handle: str) -> Listing | None:
    """The public listing at ``/coaches/<org_slug>/<handle>``, or None (not listed, or no such coach)."""
    return db.session.scalar(select(Listing).where(Listing.org_slug == org_slug, Listing.handle == handle))


# --- refreshing ------------------------------------------------------------------------------------------


def refresh_coach(tenant_id: uuid.UUID, coach_membership_id: uuid.UUID) -> bool:
    """Bring one coach's listing up to date: written when the coach is listed, removed when not.

    :returns: whether the coach is listed now.
    """
    return bool(_project(tenant_id, [coach_membership_id]))


def refresh_coaches(tenant_id: uuid.UUID, coach_membership_ids: Iterable[uuid.UUID]) -> int:
    """:func:`refresh_coach` for several coaches of one organization at once; how many are listed now."""
    ids = list(coach_membership_ids)
    return _project(tenant_id, ids) if ids else 0


def refresh_org(tenant_id: uuid.UUID) -> int:
    """Bring every listing of the organization up to date (rows of members no longer coaching go).

    :returns: how many of its coaches are listed now.
    """
    return _project(tenant_id, None)


def remove_org(tenant_id: uuid.UUID) -> int:
    """Take every listing of the organization out of the directory (it stopped listing, or is closing).

    :returns: how many listings went.
    """
    _act_for(tenant_id)
    removed = db.session.execute(delete(Listing).where(Listing.organization_id == tenant_id)).rowcount
    db.session.execute(delete(ListingWord).where(ListingWord.organization_id == tenant_id))
    return removed


@dataclass(frozen=True)
class Rebuilt:
    organizations: int
    listings: int


def rebuild_all() -> Rebuilt:
    """Project every organization again, each in its own transaction (a failure is logged and stays in its
    organization; the others are rebuilt)."""
    org_ids = list(db.session.scalars(select(Organization.id).order_by(Organization.created_at, Organization.id)))
    listed = each_tenant(org_ids, refresh_org, "directory rebuild")
    return Rebuilt(len(org_ids), listed)


def _act_for(tenant_id: uuid.UUID) -> None:
    """The projection writes an organization's rows as that organization (its policies insist)."""
    if g.get("tenant_id") != tenant_id:
        tenant_context.activate(tenant_id)


def _is_open(org: Organization | None) -> bool:
    return org is not None and org.listed_publicly and org.closing_requested_at is None


def _project(tenant_id: uuid.UUID, coach_ids: list[uuid.UUID] | None) -> int:
    """Write the listings of ``coach_ids`` (None: every coach of the organization) and remove the rest of them.

    A fixed number of statements for any number of coaches (plus the next-slot look-ups of
    :func:`coach.directory.stats.coach_facts`), so a whole organization costs little more than one coach.
    """
    _act_for(tenant_id)
    # One organization's refreshes take turns: its words are recomputed from its rows, and two refreshes
    # writing them at once would each miss the other's listing.
    db.session.execute(text("SELECT pg_advisory_xact_lock(hashtext('directory:' || :org))"), {"org": str(tenant_id)})
    org = db.session.get(Organization, tenant_id)
    now = clock.now()
    if not _is_open(org):
        _remove(tenant_id, coach_ids)
        _refresh_stats(tenant_id, coach_ids, now)
        return 0
    query = (select(Membership, User, CoachProfile)
             .join(User, User.id == Membership.user_id)
             .join(CoachProfile, (CoachProfile.tenant_id == Membership.tenant_id)
                   & (CoachProfile.coach_membership_id == Membership.id), isouter=True)
             .where(Membership.tenant_id == tenant_id, Membership.role == COACH))
    if coach_ids is not None:
        query = query.where(Membership.id.in_(coach_ids))
    rows = db.session.execute(query).all()
    facts = coach_facts(tenant_id, [m.id for m, _, p in rows if p is not None], now)
    # Stored on every profile, listed or not: the profile page shows them too.
    for membership, _, profile in rows:
        if profile is not None:
            _store_stats(profile, facts[membership.id], now)
    listed = [(m, u, p) for m, u, p in rows
              if p is not None and p.listed and p.headline.strip() and u.erased_at is None]
    values = _listing_values(org, listed, facts) if listed else []
    keep = [v["id"] for v in values]
    written = 0
    removed = db.session.execute(
        delete(Listing).where(Listing.organization_id == tenant_id, Listing.id.not_in(keep),
                              *(() if coach_ids is None else (Listing.coach_membership_id.in_(coach_ids),)))
    ).rowcount
    if values:
        # A coach whose profile was made again, or a handle now used by another profile, leaves an old row
        # on the coach or the address: it goes first (the address and the coach are unique).
        db.session.execute(delete(Listing).where(
            Listing.organization_id == tenant_id, Listing.id.not_in(keep),
            Listing.coach_membership_id.in_([v["coach_membership_id"] for v in values])
            | Listing.handle.in_([v["handle"] for v in values])))
        statement = insert(Listing).values(values)
        columns = {name: statement.excluded[name] for name in values[0] if name != "id"}
        # A listing whose every column is as it was keeps its row and its version (``refreshed_at``): the
        # public search's kept answers and cards stay good after a refresh that changed nothing.
        shown = [name for name in columns if name != "refreshed_at"]
        changed = tuple_(*(Listing.__table__.c[name] for name in shown)).is_distinct_from(
            tuple_(*(statement.excluded[name] for name in shown)))
        written = db.session.execute(statement.on_conflict_do_update(
            index_elements=[Listing.id], set_=columns, where=changed)).rowcount
    if written or removed:
        _refresh_words(tenant_id)
    return len(values)


def _remove(tenant_id: uuid.UUID, coach_ids: list[uuid.UUID] | None) -> int:
    """Delete the listings of ``coach_ids`` (None: all) of an organization that does not list."""
    query = delete(Listing).where(Listing.organization_id == tenant_id)
    if coach_ids is not None:
        query = query.where(Listing.coach_membership_id.in_(coach_ids))
    removed = db.session.execute(query).rowcount
    if removed:
        _refresh_words(tenant_id)
    return removed


def _refresh_stats(tenant_id: uuid.UUID, coach_ids: list[uuid.UUID] | None, now: datetime) -> None:
    """Keep the profiles' response time and sessions delivered current in an organization that does not list
    (its members' own search shows them): two grouped statements, no slot look-ups."""
    query = select(CoachProfile).where(CoachProfile.tenant_id == tenant_id)
    if coach_ids is not None:
        query = query.where(CoachProfile.coach_membership_id.in_(coach_ids))
    profiles = list(db.session.scalars(query))
    if profiles:
        facts = coach_facts(tenant_id, [p.coach_membership_id for p in profiles], now, with_next_slot=False)
        for profile in profiles:
            _store_stats(profile, facts[profile.coach_membership_id], now)


def _store_stats(profile: CoachProfile, facts: CoachFacts, now: datetime) -> None:
    if (profile.response_minutes, profile.sessions_delivered) != (facts.response_minutes,
                                                                    facts.sessions_delivered) \
            or profile.stats_at is None:
        db.session.execute(update(CoachProfile).where(
            CoachProfile.tenant_id == profile.tenant_id, CoachProfile.id == profile.id).values(
            response_minutes=facts.response_minutes, sessions_delivered=facts.sessions_delivered, stats_at=now))


def _listing_values(org: Organization, listed: list, facts: dict[uuid.UUID, CoachFacts]) -> list[dict]:
    tenant_id = org.id
    profile_ids = [p.id for _, _, p in listed]
    coach_ids = [m.id for m, _, _ in listed]
    terms: dict[uuid.UUID, dict[str, list[str]]] = defaultdict(lambda: {"disciplines": [], "skills": []})
    for profile_id, kind, name in db.session.execute(
            select(CoachProfileTerm.profile_id, DirectoryTerm.kind, DirectoryTerm.name)
            .join(DirectoryTerm, (DirectoryTerm.tenant_id == CoachProfileTerm.tenant_id)
                  & (DirectoryTerm.id == CoachProfileTerm.term_id))
            .where(CoachProfileTerm.tenant_id == tenant_id, CoachProfileTerm.profile_id.in_(profile_ids))
            .order_by(DirectoryTerm.position, DirectoryTerm.name)):
        # Skills, roles and levels are one facet: what the coach teaches within the sport or game.
        bucket = terms[profile_id]["disciplines" if kind == "discipline" else "skills"]
        if name.lower() not in bucket:
            bucket.append(name.lower())
    ratings = {r.coach_membership_id: r for r in db.session.scalars(select(CoachRating).where(
        CoachRating.tenant_id == tenant_id, CoachRating.coach_membership_id.in_(coach_ids)))}
    zones = dict(db.session.execute(select(CoachCalendar.coach_membership_id, CoachCalendar.timezone).where(
        CoachCalendar.tenant_id == tenant_id, CoachCalendar.coach_membership_id.in_(coach_ids))).all())
    photo_ids = [p.photo_media_id for _, _, p in listed if p.photo_media_id]
    photos = {item.id: item for item in db.session.scalars(select(MediaItem).where(
        MediaItem.tenant_id == tenant_id, MediaItem.id.in_(photo_ids)))} if photo_ids else {}
    config = ts_config(org.locale)
    values = []
    for membership, user, profile in listed:
        fact = facts[membership.id]
        rating = ratings.get(membership.id)
        count, star_sum = (rating.review_count, rating.star_sum) if rating else (0, 0)
        photo = photos.get(profile.photo_media_id)
        photo_key = (photo.derived_keys or {}).get("thumb") if photo is not None and photo.status == "ready" \
            else None
        disciplines, skills = terms[profile.id]["disciplines"], terms[profile.id]["skills"]
        tags = [t.lower() for t in profile.tags]
        languages = list(profile.languages)
        excerpt = plain_excerpt(profile.bio_source or "", EXCERPT_MAX)
        display_name = user.display_name
        weighted = {"A": f"{display_name} {profile.headline}", "B": " ".join(disciplines + skills),
                    "C": " ".join(tags + _language_names(languages, org.locale)), "D": excerpt}
        values.append({
            "id": profile.id, "organization_id": tenant_id, "coach_membership_id": membership.id,
            "org_slug": org.slug, "org_name": org.name, "handle": profile.handle, "display_name": display_name,
            "headline": profile.headline, "excerpt": excerpt, "photo_key": photo_key,
            "disciplines": disciplines, "skills": skills, "tags": tags, "languages": languages,
            "online": profile.online, "in_person": profile.in_person, "location": profile.location,
            "timezone": zones.get(membership.id) or user.timezone or "UTC", "verified": profile.verified,
            "currency": fact.currency, "price_min_minor": fact.price_min_minor,
            "price_max_minor": fact.price_max_minor, "price_band": price_band(fact.price_min_minor, fact.currency),
            "rating_count": count,
            "rating_avg": (Decimal(star_sum) / count).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
            if count else None,
            "rating_score": bayesian(count, star_sum), "next_slot_at": fact.next_slot_at,
            "response_minutes": fact.response_minutes, "sessions_delivered": fact.sessions_delivered,
            "search": search_vector(config, weighted),
            "search_text": " ".join([display_name, profile.headline, *disciplines, *skills, *tags]).lower(),
            "refreshed_at": func.now(),
        })
    return values


def search_vector(config: str, weighted: dict[str, str]):
    """The weighted ``tsvector``: each part under the organization's configuration (stems of its language)
    and under ``simple`` (the words as written, so a query in another language, or a name, still matches)."""
    parts = []
    for weight, part in weighted.items():
        for name in dict.fromkeys((config, "simple")):
            # The weight is a "char" constant of ours (A to D), not input: written into the statement.
            parts.append(func.setweight(func.to_tsvector(cast(literal(name), REGCONFIG), part),
                                        literal_column(f"'{weight}'::\"char\"")))
    vector = parts[0]
    for part in parts[1:]:
        vector = vector.op("||")(part)
    return vector


def _language_names(codes: Iterable[str], locale: str | None) -> list[str]:
    """Each language's name in English and in the organization's language ("es" → Spanish, Spanisch)."""
    names: list[str] = []
    for tag in dict.fromkeys(("en", (locale or "en").replace("-", "_"))):
        try:
            known = Locale.parse(tag).languages
        except (UnknownLocaleError, ValueError):
            continue
        names.extend(known[code] for code in codes if code in known and known[code] not in names)
    return names


def _refresh_words(tenant_id: uuid.UUID) -> None:
    """Recompute the organization's words (3 to 60 letters) from its listings' searchable text."""
    db.session.execute(text("""
        WITH words AS (
            SELECT word, count(DISTINCT l.id) AS listings
            FROM directory_listings l, regexp_split_to_table(l.search_text, '[^[:alnum:]]+') AS word
            WHERE l.organization_id = :org AND char_length(word) BETWEEN :low AND :high
            GROUP BY word),
        gone AS (
            DELETE FROM directory_words d WHERE d.organization_id = :org
              AND NOT EXISTS (SELECT 1 FROM words w WHERE w.word = d.word))
        INSERT INTO directory_words (organization_id, word, listings)
        SELECT :org, word, listings FROM words
        ON CONFLICT (organization_id, word) DO UPDATE SET listings = excluded.listings
        WHERE directory_words.listings IS DISTINCT FROM excluded.listings
    """), {"org": tenant_id, "low": WORD_MIN, "high": WORD_MAX})
