"""Coach profiles, the public coach directory and reviews.

- Profiles: one per coach of an organization (headline, Markdown bio, photo and intro video from media,
  languages, experience, certifications, where they coach, free tags, the coach's own opt-out from the
  public directory, an admin's verification, and the computed response time and sessions delivered).
- The organization's taxonomy: sports or games (``discipline``) and, under each, the skills, roles and
  levels its coaches teach; a profile links the terms it teaches.
- Reviews: one per ended booking, by its athlete, with the coach's one public reply, members' flags and
  "helpful" votes; per coach, the aggregates kept with the review in one transaction.
- The public directory's projection (``directory_listings``, ``directory_words``): one row per listed coach
  of a listed organization, holding only what the coach published. It is the one place rows of every
  organization are read together, so it is not a tenant table: its ``organization_id`` is not
  ``tenant_id``, anyone may read it, and an organization may write only its own rows (RLS forced).
- Pending sign-ups remember where to continue (a booking started from the directory).

Revision ID: 0021_directory
Revises: 0020_rooms
Created: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, TSVECTOR, UUID

from rls import APP_ROLE, TENANT_PREDICATE, tenant_columns, tenant_fk, tenant_table

revision = "0021_directory"
down_revision = "0020_rooms"
branch_labels = None
depends_on = None

OWN_LISTING = TENANT_PREDICATE.replace("tenant_id =", "organization_id =", 1)


def _ts(name, nullable=True, default=False):
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable,
                     server_default=sa.func.now() if default else None)


def _uuid(name, nullable=False):
    return sa.Column(name, UUID(as_uuid=True), nullable=nullable)


def _texts(name, length):
    return sa.Column(name, ARRAY(sa.String(length)), nullable=False, server_default="{}")


def upgrade():
    # pg_trgm is a trusted extension: the owner may create it in its own database.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")

    op.create_table(
        "coach_profiles",
        *tenant_columns("coach_profiles"),
        _uuid("coach_membership_id"),
        sa.Column("handle", sa.String(60), nullable=False),
        sa.Column("headline", sa.String(120), nullable=False, server_default=""),
        sa.Column("bio_source", sa.Text, nullable=False, server_default=""),
        sa.Column("bio_html", sa.Text, nullable=False, server_default=""),
        _uuid("photo_media_id", nullable=True),
        _uuid("intro_media_id", nullable=True),
        _texts("languages", 8),
        sa.Column("years_experience", sa.SmallInteger),
        sa.Column("certifications", sa.Text, nullable=False, server_default=""),
        _texts("tags", 40),
        sa.Column("location", sa.String(120), nullable=False, server_default=""),
        sa.Column("online", sa.Boolean, nullable=False, server_default="true"),
        sa.Column("in_person", sa.Boolean, nullable=False, server_default="false"),
        # The coach's own choice: listed in the public directory when the organization lists its coaches.
        sa.Column("listed", sa.Boolean, nullable=False, server_default="true"),
        _ts("verified_at"),
        _uuid("verified_by_membership_id", nullable=True),
        sa.Column("verification_note", sa.String(500), nullable=False, server_default=""),
        # Computed from bookings (coach.directory.stats): the median minutes to answer a request, sessions held.
        sa.Column("response_minutes", sa.Integer),
        sa.Column("sessions_delivered", sa.Integer, nullable=False, server_default="0"),
        _ts("stats_at"),
        _ts("created_at", nullable=False, default=True),
        _ts("updated_at", nullable=False, default=True),
        tenant_fk(["coach_membership_id"], "memberships", "fk_coach_profiles_coach"),
        tenant_fk(["photo_media_id"], "media_items", "fk_coach_profiles_photo", ondelete="SET NULL (photo_media_id)"),
        tenant_fk(["intro_media_id"], "media_items", "fk_coach_profiles_intro", ondelete="SET NULL (intro_media_id)"),
        tenant_fk(["verified_by_membership_id"], "memberships", "fk_coach_profiles_verified_by",
                  ondelete="SET NULL (verified_by_membership_id)"),
        sa.UniqueConstraint("tenant_id", "coach_membership_id", name="uq_coach_profiles_coach"),
        sa.UniqueConstraint("tenant_id", "handle", name="uq_coach_profiles_handle"),
        sa.CheckConstraint("handle ~ '^[a-z0-9]([a-z0-9-]{0,58}[a-z0-9])?$'", name="handle_format"),
        sa.CheckConstraint("char_length(bio_source) <= 5000", name="bio_length"),
        sa.CheckConstraint("char_length(certifications) <= 1000", name="certifications_length"),
        sa.CheckConstraint("years_experience IS NULL OR years_experience BETWEEN 0 AND 80", name="years_range"),
        sa.CheckConstraint("cardinality(languages) <= 12 AND cardinality(tags) <= 20", name="list_sizes"),
        sa.CheckConstraint("(verified_at IS NULL) OR (verification_note <> '')", name="verified_with_note"),
    )
    tenant_table("coach_profiles")

    op.create_table(
        "directory_terms",
        *tenant_columns("directory_terms"),
        # 'discipline' (a sport or game); 'skill', 'role' and 'level' belong to one discipline.
        sa.Column("kind", sa.String(10), nullable=False),
        _uuid("parent_id", nullable=True),
        sa.Column("name", sa.String(60), nullable=False),
        sa.Column("slug", sa.String(60), nullable=False),
        sa.Column("position", sa.SmallInteger, nullable=False, server_default="0"),
        _ts("created_at", nullable=False, default=True),
        tenant_fk(["parent_id"], "directory_terms", "fk_directory_terms_parent"),
        sa.CheckConstraint("kind IN ('discipline', 'skill', 'role', 'level')", name="kind_valid"),
        sa.CheckConstraint("(kind = 'discipline') = (parent_id IS NULL)", name="parent_by_kind"),
        sa.CheckConstraint("slug ~ '^[a-z0-9]([a-z0-9-]*[a-z0-9])?$'", name="slug_format"),
    )
    op.execute("CREATE UNIQUE INDEX uq_directory_terms_slug ON directory_terms "
               "(tenant_id, kind, parent_id, slug) NULLS NOT DISTINCT")
    tenant_table("directory_terms")

    op.create_table(
        "coach_profile_terms",
        *tenant_columns("coach_profile_terms"),
        _uuid("profile_id"),
        _uuid("term_id"),
        tenant_fk(["profile_id"], "coach_profiles", "fk_coach_profile_terms_profile"),
        tenant_fk(["term_id"], "directory_terms", "fk_coach_profile_terms_term"),
        sa.UniqueConstraint("tenant_id", "profile_id", "term_id", name="uq_coach_profile_terms"),
    )
    op.create_index("ix_coach_profile_terms_term", "coach_profile_terms", ["tenant_id", "term_id"])
    tenant_table("coach_profile_terms")

    op.create_table(
        "reviews",
        *tenant_columns("reviews"),
        _uuid("booking_id"),
        _uuid("coach_membership_id"),
        _uuid("athlete_membership_id"),
        sa.Column("stars", sa.SmallInteger, nullable=False),
        sa.Column("body", sa.Text, nullable=False, server_default=""),
        sa.Column("status", sa.String(8), nullable=False, server_default="visible"),
        _ts("created_at", nullable=False, default=True),
        _ts("updated_at", nullable=False, default=True),
        _ts("editable_until", nullable=False),
        sa.Column("reply_body", sa.Text),
        _ts("replied_at"),
        _uuid("replied_by_membership_id", nullable=True),
        _ts("hidden_at"),
        _uuid("hidden_by_membership_id", nullable=True),
        sa.Column("hidden_reason", sa.String(300), nullable=False, server_default=""),
        sa.Column("helpful_count", sa.Integer, nullable=False, server_default="0"),
        # Open flags not yet dealt with by a moderator (the moderation queue).
        sa.Column("open_flags", sa.Integer, nullable=False, server_default="0"),
        tenant_fk(["booking_id"], "bookings", "fk_reviews_booking"),
        tenant_fk(["coach_membership_id"], "memberships", "fk_reviews_coach"),
        tenant_fk(["athlete_membership_id"], "memberships", "fk_reviews_athlete"),
        tenant_fk(["replied_by_membership_id"], "memberships", "fk_reviews_replied_by",
                  ondelete="SET NULL (replied_by_membership_id)"),
        tenant_fk(["hidden_by_membership_id"], "memberships", "fk_reviews_hidden_by",
                  ondelete="SET NULL (hidden_by_membership_id)"),
        sa.UniqueConstraint("tenant_id", "booking_id", name="uq_reviews_booking"),
        sa.CheckConstraint("stars BETWEEN 1 AND 5", name="stars_range"),
        sa.CheckConstraint("char_length(body) <= 5000", name="body_length"),
        sa.CheckConstraint("reply_body IS NULL OR char_length(reply_body) BETWEEN 1 AND 2000", name="reply_length"),
        sa.CheckConstraint("status IN ('visible', 'hidden')", name="status_valid"),
        sa.CheckConstraint("(status = 'hidden') = (hidden_at IS NOT NULL)", name="hidden_when"),
        sa.CheckConstraint("helpful_count >= 0 AND open_flags >= 0", name="counts_not_negative"),
    )
    op.create_index("ix_reviews_coach_newest", "reviews",
                    ["tenant_id", "coach_membership_id", sa.text("created_at DESC"), sa.text("id DESC")],
                    postgresql_where=sa.text("status = 'visible'"))
    op.create_index("ix_reviews_coach_helpful", "reviews",
                    ["tenant_id", "coach_membership_id", sa.text("helpful_count DESC"), sa.text("created_at DESC"),
                     sa.text("id DESC")],
                    postgresql_where=sa.text("status = 'visible'"))
    op.create_index("ix_reviews_flagged", "reviews", ["tenant_id", "updated_at"],
                    postgresql_where=sa.text("open_flags > 0"))
    op.create_index("ix_reviews_athlete", "reviews", ["tenant_id", "athlete_membership_id"])
    tenant_table("reviews")

    op.create_table(
        "review_flags",
        *tenant_columns("review_flags"),
        _uuid("review_id"),
        _uuid("membership_id"),
        sa.Column("reason", sa.String(300), nullable=False, server_default=""),
        _ts("created_at", nullable=False, default=True),
        _ts("resolved_at"),
        tenant_fk(["review_id"], "reviews", "fk_review_flags_review"),
        tenant_fk(["membership_id"], "memberships", "fk_review_flags_member"),
        sa.UniqueConstraint("tenant_id", "review_id", "membership_id", name="uq_review_flags_member"),
    )
    tenant_table("review_flags")

    op.create_table(
        "review_votes",
        *tenant_columns("review_votes"),
        _uuid("review_id"),
        _uuid("membership_id"),
        _ts("created_at", nullable=False, default=True),
        tenant_fk(["review_id"], "reviews", "fk_review_votes_review"),
        tenant_fk(["membership_id"], "memberships", "fk_review_votes_member"),
        sa.UniqueConstraint("tenant_id", "review_id", "membership_id", name="uq_review_votes_member"),
    )
    tenant_table("review_votes")

    op.create_table(
        "coach_ratings",
        *tenant_columns("coach_ratings"),
        _uuid("coach_membership_id"),
        sa.Column("review_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("star_sum", sa.Integer, nullable=False, server_default="0"),
        *[sa.Column(f"stars_{n}", sa.Integer, nullable=False, server_default="0") for n in range(1, 6)],
        _ts("updated_at", nullable=False, default=True),
        tenant_fk(["coach_membership_id"], "memberships", "fk_coach_ratings_coach"),
        sa.UniqueConstraint("tenant_id", "coach_membership_id", name="uq_coach_ratings_coach"),
        sa.CheckConstraint("review_count = stars_1 + stars_2 + stars_3 + stars_4 + stars_5", name="count_adds_up"),
        sa.CheckConstraint("star_sum = stars_1 + 2 * stars_2 + 3 * stars_3 + 4 * stars_4 + 5 * stars_5",
                           name="sum_adds_up"),
        sa.CheckConstraint("least(stars_1, stars_2, stars_3, stars_4, stars_5) >= 0", name="counts_not_negative"),
    )
    tenant_table("coach_ratings")

    # --- the public projection -----------------------------------------------------------------------
    op.create_table(
        "directory_listings",
        # The coach's profile id: the public address of the listing.
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("organization_id", UUID(as_uuid=True), sa.ForeignKey("organizations.id", ondelete="CASCADE"),
                  nullable=False),
        _uuid("coach_membership_id"),
        sa.Column("org_slug", sa.String(40), nullable=False),
        sa.Column("org_name", sa.String(120), nullable=False),
        sa.Column("handle", sa.String(60), nullable=False),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("headline", sa.String(120), nullable=False, server_default=""),
        sa.Column("excerpt", sa.String(300), nullable=False, server_default=""),
        sa.Column("photo_key", sa.String(300)),
        _texts("disciplines", 60),
        _texts("skills", 60),
        _texts("tags", 40),
        _texts("languages", 8),
        sa.Column("online", sa.Boolean, nullable=False, server_default="true"),
        sa.Column("in_person", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("location", sa.String(120), nullable=False, server_default=""),
        sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
        sa.Column("verified", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("currency", sa.String(3)),
        sa.Column("price_min_minor", sa.Integer),
        sa.Column("price_max_minor", sa.Integer),
        # 0 free, 1 under 30, 2 30-60, 3 60-100, 4 100 and more (in the listing's currency's major units).
        sa.Column("price_band", sa.SmallInteger),
        sa.Column("rating_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("rating_avg", sa.Numeric(3, 2)),
        sa.Column("rating_score", sa.Numeric(5, 3), nullable=False, server_default="0"),
        _ts("next_slot_at"),
        sa.Column("response_minutes", sa.Integer),
        sa.Column("sessions_delivered", sa.Integer, nullable=False, server_default="0"),
        sa.Column("search", TSVECTOR, nullable=False),
        # Names, headline, disciplines, skills and tags in lower case, for trigram matching of typos and prefixes.
        sa.Column("search_text", sa.Text, nullable=False, server_default=""),
        _ts("refreshed_at", nullable=False, default=True),
        sa.UniqueConstraint("organization_id", "coach_membership_id", name="uq_directory_listings_coach"),
        sa.UniqueConstraint("org_slug", "handle", name="uq_directory_listings_address"),
        sa.CheckConstraint("price_band IS NULL OR price_band BETWEEN 0 AND 4", name="price_band_range"),
    )
    op.execute("CREATE INDEX ix_directory_listings_search ON directory_listings USING gin (search)")
    op.execute("CREATE INDEX ix_directory_listings_trgm ON directory_listings USING gin (search_text gin_trgm_ops)")
    for column in ("disciplines", "skills", "languages"):
        op.execute(f"CREATE INDEX ix_directory_listings_{column} ON directory_listings USING gin ({column})")
    op.create_index("ix_directory_listings_rating", "directory_listings",
                    [sa.text("rating_score DESC"), sa.text("id")])
    op.create_index("ix_directory_listings_price", "directory_listings", ["price_min_minor", "id"])
    op.create_index("ix_directory_listings_soonest", "directory_listings", ["next_slot_at", "id"])
    op.create_index("ix_directory_listings_org", "directory_listings", ["organization_id"])

    # Every word of every listing's searchable text, for correcting a misspelt query word ("valorrant").
    op.create_table(
        "directory_words",
        sa.Column("organization_id", UUID(as_uuid=True), sa.ForeignKey("organizations.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("word", sa.String(60), nullable=False),
        sa.Column("listings", sa.Integer, nullable=False, server_default="1"),
        sa.PrimaryKeyConstraint("organization_id", "word", name="pk_directory_words"),
    )
    op.execute("CREATE INDEX ix_directory_words_trgm ON directory_words USING gin (word gin_trgm_ops)")

    for table in ("directory_listings", "directory_words"):
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE}")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        # Published for anyone to read; each organization writes its own rows only.
        op.execute(f"CREATE POLICY public_read ON {table} FOR SELECT USING (true)")
        op.execute(f"CREATE POLICY own_insert ON {table} FOR INSERT WITH CHECK ({OWN_LISTING})")
        op.execute(f"CREATE POLICY own_update ON {table} FOR UPDATE USING ({OWN_LISTING}) WITH CHECK ({OWN_LISTING})")
        op.execute(f"CREATE POLICY own_delete ON {table} FOR DELETE USING ({OWN_LISTING})")

    # --- a sign-up started from a booking continues there once confirmed --------------------------------
    op.add_column("pending_signups", sa.Column("continue_to", sa.String(500)))


def downgrade():
    op.drop_column("pending_signups", "continue_to")
    op.drop_table("directory_words")
    op.drop_table("directory_listings")
    for table in ("coach_ratings", "review_votes", "review_flags", "reviews", "coach_profile_terms",
                  "directory_terms", "coach_profiles"):
        op.drop_table(table)
