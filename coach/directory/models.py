"""Profiles, the taxonomy, reviews, ratings and the public projection (constraints: migration 0021).

Every table here is a tenant table except :class:`Listing` and :class:`ListingWord`, the public directory's
projection: anyone may read them, an organization may write only its own rows (``organization_id``, RLS
forced), and they hold only what a coach chose to publish.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, Numeric, SmallInteger, String, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from coach.dbutil import TenantScoped, tenant_fk, tenant_relationship
from coach.extensions import db
from coach.orgs.models import Membership

TERM_KINDS = ("discipline", "skill", "role", "level")
TERM_KIND_LABELS = {"discipline": "Sport or game", "skill": "Skill", "role": "Role", "level": "Level"}
REVIEW_STATUSES = ("visible", "hidden")
# Limits the forms, services and migration agree on.
HEADLINE_MAX, BIO_MAX, CERTIFICATIONS_MAX, LOCATION_MAX = 120, 5000, 1000, 120
LANGUAGES_MAX, TAGS_MAX, TAG_MAX = 12, 20, 40
REVIEW_BODY_MAX, REPLY_MAX, FLAG_REASON_MAX = 5000, 2000, 300


class CoachProfile(TenantScoped, db.Model):
    """What a coach tells athletes about themselves, and what the organization verified and computed."""

    __tablename__ = "coach_profiles"
    __table_args__ = (
        tenant_fk("coach_membership_id", "memberships", "fk_coach_profiles_coach"),
        tenant_fk("photo_media_id", "media_items", "fk_coach_profiles_photo", ondelete="SET NULL (photo_media_id)"),
        tenant_fk("intro_media_id", "media_items", "fk_coach_profiles_intro", ondelete="SET NULL (intro_media_id)"),
        tenant_fk("verified_by_membership_id", "memberships", "fk_coach_profiles_verified_by",
                  ondelete="SET NULL (verified_by_membership_id)"),
    )

    coach_membership_id: Mapped[uuid.UUID] = mapped_column()
    handle: Mapped[str] = mapped_column(String(60))
    headline: Mapped[str] = mapped_column(String(HEADLINE_MAX), default="")
    bio_source: Mapped[str] = mapped_column(Text, default="")
    bio_html: Mapped[str] = mapped_column(Text, default="")
    photo_media_id: Mapped[uuid.UUID | None] = mapped_column()
    intro_media_id: Mapped[uuid.UUID | None] = mapped_column()
    languages: Mapped[list[str]] = mapped_column(ARRAY(String(8)), default=list)
    years_experience: Mapped[int | None] = mapped_column(SmallInteger)
    certifications: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(TAG_MAX)), default=list)
    location: Mapped[str] = mapped_column(String(LOCATION_MAX), default="")
    online: Mapped[bool] = mapped_column(Boolean, default=True)
    in_person: Mapped[bool] = mapped_column(Boolean, default=False)
    listed: Mapped[bool] = mapped_column(Boolean, default=True)
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    verified_by_membership_id: Mapped[uuid.UUID | None] = mapped_column()
    verification_note: Mapped[str] = mapped_column(String(500), default="")
    response_minutes: Mapped[int | None] = mapped_column(Integer)
    sessions_delivered: Mapped[int] = mapped_column(Integer, default=0)
    stats_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    coach: Mapped[Membership] = tenant_relationship("CoachProfile", "coach_membership_id", "Membership")

    @property
    def verified(self) -> bool:
        return self.verified_at is not None


class DirectoryTerm(TenantScoped, db.Model):
    """A sport or game of the organization's taxonomy, or a skill, role or level under one."""

    __tablename__ = "directory_terms"
    __table_args__ = (tenant_fk("parent_id", "directory_terms", "fk_directory_terms_parent"),)

    kind: Mapped[str] = mapped_column(String(10))
    parent_id: Mapped[uuid.UUID | None] = mapped_column()
    name: Mapped[str] = mapped_column(String(60))
    slug: Mapped[str] = mapped_column(String(60))
    position: Mapped[int] = mapped_column(SmallInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CoachProfileTerm(TenantScoped, db.Model):
    """A term of the taxonomy a profile's coach teaches."""

    __tablename__ = "coach_profile_terms"
    __table_args__ = (tenant_fk("profile_id", "coach_profiles", "fk_coach_profile_terms_profile"),
                      tenant_fk("term_id", "directory_terms", "fk_coach_profile_terms_term"))

    profile_id: Mapped[uuid.UUID] = mapped_column()
    term_id: Mapped[uuid.UUID] = mapped_column()


class Review(TenantScoped, db.Model):
    """An athlete's review of one ended booking, with the coach's one public reply."""

    __tablename__ = "reviews"
    __table_args__ = (
        tenant_fk("booking_id", "bookings", "fk_reviews_booking"),
        tenant_fk("coach_membership_id", "memberships", "fk_reviews_coach"),
        tenant_fk("athlete_membership_id", "memberships", "fk_reviews_athlete"),
        tenant_fk("replied_by_membership_id", "memberships", "fk_reviews_replied_by",
                  ondelete="SET NULL (replied_by_membership_id)"),
        tenant_fk("hidden_by_membership_id", "memberships", "fk_reviews_hidden_by",
                  ondelete="SET NULL (hidden_by_membership_id)"),
    )

    booking_id: Mapped[uuid.UUID] = mapped_column()
    coach_membership_id: Mapped[uuid.UUID] = mapped_column()
    athlete_membership_id: Mapped[uuid.UUID] = mapped_column()
    stars: Mapped[int] = mapped_column(SmallInteger)
    body: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(8), default="visible")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    editable_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reply_body: Mapped[str | None] = mapped_column(Text)
    replied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    replied_by_membership_id: Mapped[uuid.UUID | None] = mapped_column()
    hidden_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    hidden_by_membership_id: Mapped[uuid.UUID | None] = mapped_column()
    hidden_reason: Mapped[str] = mapped_column(String(300), default="")
    helpful_count: Mapped[int] = mapped_column(Integer, default=0)
    open_flags: Mapped[int] = mapped_column(Integer, default=0)

    athlete: Mapped[Membership] = tenant_relationship("Review", "athlete_membership_id", "Membership")


class ReviewFlag(TenantScoped, db.Model):
    """A member's report of a review to the organization's moderators."""

    __tablename__ = "review_flags"
    __table_args__ = (tenant_fk("review_id", "reviews", "fk_review_flags_review"),
                      tenant_fk("membership_id", "memberships", "fk_review_flags_member"))

    review_id: Mapped[uuid.UUID] = mapped_column()
    membership_id: Mapped[uuid.UUID] = mapped_column()
    reason: Mapped[str] = mapped_column(String(FLAG_REASON_MAX), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ReviewVote(TenantScoped, db.Model):
    """A member found a review helpful."""

    __tablename__ = "review_votes"
    __table_args__ = (tenant_fk("review_id", "reviews", "fk_review_votes_review"),
                      tenant_fk("membership_id", "memberships", "fk_review_votes_member"))

    review_id: Mapped[uuid.UUID] = mapped_column()
    membership_id: Mapped[uuid.UUID] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CoachRating(TenantScoped, db.Model):
    """A coach's visible reviews counted: changed in the transaction that changes a review (and checked against
    the rows by :func:`coach.directory.reviews.check_ratings`)."""

    __tablename__ = "coach_ratings"
    __table_args__ = (tenant_fk("coach_membership_id", "memberships", "fk_coach_ratings_coach"),)

    coach_membership_id: Mapped[uuid.UUID] = mapped_column()
    review_count: Mapped[int] = mapped_column(Integer, default=0)
    star_sum: Mapped[int] = mapped_column(Integer, default=0)
    stars_1: Mapped[int] = mapped_column(Integer, default=0)
    stars_2: Mapped[int] = mapped_column(Integer, default=0)
    stars_3: Mapped[int] = mapped_column(Integer, default=0)
    stars_4: Mapped[int] = mapped_column(Integer, default=0)
    stars_5: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    @property
    def distribution(self) -> list[int]:
        """Counts for 1 to 5 stars."""
        return [self.stars_1, self.stars_2, self.stars_3, self.stars_4, self.stars_5]


class Listing(db.Model):
    """One listed coach in the public directory (a projection: written by :mod:`coach.directory.projection`)."""

    __tablename__ = "directory_listings"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)  # the coach's profile id
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    coach_membership_id: Mapped[uuid.UUID] = mapped_column()
    org_slug: Mapped[str] = mapped_column(String(40))
    org_name: Mapped[str] = mapped_column(String(120))
    handle: Mapped[str] = mapped_column(String(60))
    display_name: Mapped[str] = mapped_column(String(100))
    headline: Mapped[str] = mapped_column(String(120), default="")
    excerpt: Mapped[str] = mapped_column(String(300), default="")
    photo_key: Mapped[str | None] = mapped_column(String(300))
    disciplines: Mapped[list[str]] = mapped_column(ARRAY(String(60)), default=list)
    skills: Mapped[list[str]] = mapped_column(ARRAY(String(60)), default=list)
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(40)), default=list)
    languages: Mapped[list[str]] = mapped_column(ARRAY(String(8)), default=list)
    online: Mapped[bool] = mapped_column(Boolean, default=True)
    in_person: Mapped[bool] = mapped_column(Boolean, default=False)
    location: Mapped[str] = mapped_column(String(120), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    currency: Mapped[str | None] = mapped_column(String(3))
    price_min_minor: Mapped[int | None] = mapped_column(Integer)
    price_max_minor: Mapped[int | None] = mapped_column(Integer)
    price_band: Mapped[int | None] = mapped_column(SmallInteger)
    rating_count: Mapped[int] = mapped_column(Integer, default=0)
    rating_avg: Mapped[Decimal | None] = mapped_column(Numeric(3, 2))
    rating_score: Mapped[Decimal] = mapped_column(Numeric(5, 3), default=0)
    next_slot_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    response_minutes: Mapped[int | None] = mapped_column(Integer)
    sessions_delivered: Mapped[int] = mapped_column(Integer, default=0)
    search: Mapped[str] = mapped_column(TSVECTOR)
    search_text: Mapped[str] = mapped_column(Text, default="")
    refreshed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ListingWord(db.Model):
    """A word of an organization's listings, for correcting misspelt query words (trigram similarity)."""

    __tablename__ = "directory_words"

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"),
                                                       primary_key=True)
    word: Mapped[str] = mapped_column(String(60), primary_key=True)
    listings: Mapped[int] = mapped_column(Integer, default=1)
