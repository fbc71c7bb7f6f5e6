"""What a coach's public profile shows, and the free times booking from it starts with.

A public profile is found through the projection (``directory_listings``: anyone may read it). Only then is
the coach's own organization read, with that organization active (the caller runs ``tenancy.activate``): the
listing proves that the organization and the coach chose to publish. Read from it are the profile's published
fields, the coach's active offerings (never their meeting links or locations), their free slots and the media
the coach picked for the profile (photo, intro video), nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select

from coach import clock
from coach.booking import service as booking
from coach.booking.models import Offering
from coach.booking.slots import Slot
from coach.directory import profiles, projection, taxonomy
from coach.directory.joining import listing_is_live
from coach.directory.models import CoachProfile, Listing
from coach.directory.taxonomy import Discipline
from coach.extensions import db
from coach.media import service as media
from coach.media.models import MediaItem
from coach.orgs.models import COACH, Membership, Organization

SLOTS_SHOWN = 6  # free times per offering on the profile, and offered instead of a taken one
OFFERINGS_SHOWN = 12


@dataclass(frozen=True)
class Published:
    """A listed coach whose organization is active for this request."""

    listing: Listing
    org: Organization
    profile: CoachProfile
    coach: Membership


@dataclass
class OfferingTimes:
    offering: Offering
    slots: list[Slot] = field(default_factory=list)

    @property
    def where(self) -> str:
        """Online, in person or both: never the place or the link itself (those are for booked athletes)."""
        online, in_person = bool(self.offering.meeting_url), bool(self.offering.location)
        if online == in_person:
            return "Online or in person" if online else "Where: ask the coach"
        return "Online" if online else "In person"


@dataclass
class ProfilePage:
    """What the profile card (``directory/_profile_card.html``, slice A's) and the booking box show."""

    published: Published
    coach_tz: str
    offerings: list[OfferingTimes]
    terms: list[Discipline]
    languages: list[str]
    photo: MediaItem | None  # ready
    video: MediaItem | None  # ready, a video


def find_listing(org_slug: str, handle: str) -> Listing | None:
    """The projection's row for ``/coaches/<org_slug>/<handle>`` (no tenant needed: the projection is public)."""
    if not (0 < len(org_slug) <= 40 and 0 < len(handle) <= 60):
        return None  # longer than any address the projection holds
    return projection.listing_at(org_slug, handle)


def published(listing: Listing) -> Published | None:
    """The organization's own rows behind ``listing`` (its organization active), or ``None`` when they no longer
    publish it (the projection may lag a moment behind an opt-out or an unlisting)."""
    org = db.session.get(Organization, listing.organization_id)
    if org is None or not listing_is_live(org, listing):
        return None
    profile = db.session.scalar(select(CoachProfile).where(CoachProfile.tenant_id == org.id,
                                                           CoachProfile.id == listing.id))
    coach = booking.get_coach(org, listing.coach_membership_id)
    if profile is None or coach is None or coach.role != COACH:
        return None
    return Published(listing, org, profile, coach)


def horizon_end(now: datetime) -> datetime:
    return now + timedelta(days=current_app.config["DIRECTORY_SLOT_HORIZON_DAYS"])


def next_slots(offering: Offering, now: datetime, coach_tz: str | None = None, limit: int = SLOTS_SHOWN) -> list[Slot]:
    """The offering's next free times within the directory's horizon (UTC)."""
    return booking.available_slots(offering, now, horizon_end(now), now=now, tz=coach_tz)[:limit]


def profile_page(pub: Published, now: datetime | None = None) -> ProfilePage:
    """Everything the public profile shows besides the listing and the reviews."""
    now = now or clock.now()
    coach_tz = booking.coach_timezone(pub.coach)
    offerings = [OfferingTimes(o, next_slots(o, now, coach_tz))
                 for o in booking.offerings_of(pub.coach)[:OFFERINGS_SHOWN]]
    photo, video = _profile_media(pub)
    return ProfilePage(pub, coach_tz, offerings, taxonomy.profile_terms(pub.profile),
                       profiles.language_names(pub.profile.languages), photo,
                       video if video is not None and video.kind == "video" else None)


def bookable_offering(pub: Published, offering_id: str | None) -> Offering | None:
    """The coach's active offering ``offering_id``, or ``None`` (unknown, another coach's, archived)."""
    offering = booking.get_offering(pub.org, offering_id) if offering_id else None
    if offering is None or offering.coach_membership_id != pub.coach.id or not offering.active:
        return None
    return offering


def is_free(offering: Offering, starts_at: datetime, now: datetime | None = None) -> bool:
    """Whether a booking of ``offering`` may start at ``starts_at`` now (the same rules as the booking form)."""
    return any(slot.starts_at == starts_at for slot in
               booking.available_slots(offering, starts_at, starts_at + timedelta(seconds=1), now=now or clock.now()))


def photo_url(pub: Published) -> str | None:
    """A short-lived signed URL of the profile photo's thumbnail, or ``None`` without one."""
    photo, _intro = _profile_media(pub)
    return media.thumb_url(photo) if photo is not None else None


def _profile_media(pub: Published) -> tuple[MediaItem | None, MediaItem | None]:
    ids = [i for i in (pub.profile.photo_media_id, pub.profile.intro_media_id) if i is not None]
    if not ids:
        return None, None
    items = {item.id: item for item in db.session.scalars(select(MediaItem).where(
        MediaItem.tenant_id == pub.org.id, MediaItem.id.in_(ids), MediaItem.deleted_at.is_(None),
        MediaItem.status == "ready"))}
    return items.get(pub.profile.photo_media_id), items.get(pub.profile.intro_media_id)
