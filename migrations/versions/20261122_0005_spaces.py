"""Spaces: spaces and their members, posts (with revisions), comments, reactions, mentions, flags.

Revision ID: 0005_spaces
Revises: 0004_booking
Created: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

from rls import tenant_columns, tenant_fk, tenant_table

revision = "0005_spaces"
down_revision = "0004_booking"
branch_labels = None
depends_on = None

REACTIONS = "('like', 'celebrate', 'support', 'insightful', 'funny')"


def upgrade():
    op.create_table(
        "spaces",
        *tenant_columns("spaces"),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("description", sa.String(500), nullable=False, server_default=""),
        sa.Column("visibility", sa.String(16), nullable=False),
        sa.Column("created_by_membership_id", UUID(as_uuid=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("last_post_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("visibility IN ('open', 'private', 'announcement')", name="visibility_valid"),
        sa.CheckConstraint("char_length(btrim(name)) BETWEEN 1 AND 80", name="name_length"),
        sa.ForeignKeyConstraint(["tenant_id", "created_by_membership_id"], ["memberships.tenant_id", "memberships.id"],
                                name="fk_spaces_created_by", ondelete="SET NULL (created_by_membership_id)"),
    )
    op.create_index("uq_spaces_name", "spaces", ["tenant_id", sa.text("lower(name)")], unique=True)
    tenant_table("spaces")

    op.create_table(
        "space_members",
        *tenant_columns("space_members"),
        sa.Column("space_id", UUID(as_uuid=True), nullable=False),
        sa.Column("membership_id", UUID(as_uuid=True), nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("suspended_until", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("tenant_id", "space_id", "membership_id", name="uq_space_members_member"),
        sa.CheckConstraint("role IN ('host', 'member')", name="role_valid"),
        tenant_fk(["space_id"], "spaces", "fk_space_members_space"),
        tenant_fk(["membership_id"], "memberships", "fk_space_members_membership"),
    )
    op.create_index("ix_space_members_membership", "space_members", ["tenant_id", "membership_id"])
    tenant_table("space_members")

    op.create_table(
        "posts",
        *tenant_columns("posts"),
        sa.Column("space_id", UUID(as_uuid=True), nullable=False),
        sa.Column("author_membership_id", UUID(as_uuid=True), nullable=False),
        sa.Column("body_source", sa.Text, nullable=False),
        sa.Column("body_html", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("edited_at", sa.DateTime(timezone=True)),
        sa.Column("pinned_at", sa.DateTime(timezone=True)),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        sa.Column("hidden_at", sa.DateTime(timezone=True)),
        sa.Column("removed_at", sa.DateTime(timezone=True)),
        sa.Column("comment_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("flag_count", sa.Integer, nullable=False, server_default="0"),
        sa.CheckConstraint("char_length(btrim(body_source)) BETWEEN 1 AND 20000", name="body_length"),
        tenant_fk(["space_id"], "spaces", "fk_posts_space"),
        tenant_fk(["author_membership_id"], "memberships", "fk_posts_author"),
    )
    visible = sa.text("deleted_at IS NULL AND hidden_at IS NULL AND removed_at IS NULL")
    # Keyset pages of a space's feed and of the home feed: (created_at, id) descending, visible posts only.
    op.create_index("ix_posts_space_feed", "posts", ["tenant_id", "space_id", sa.text("created_at DESC"),
                                                      sa.text("id DESC")], postgresql_where=visible)
    op.create_index("ix_posts_feed", "posts", ["tenant_id", sa.text("created_at DESC"), sa.text("id DESC")],
                    postgresql_where=visible)
    tenant_table("posts")

    op.create_table(
        "post_revisions",
        *tenant_columns("post_revisions"),
        sa.Column("post_id", UUID(as_uuid=True), nullable=False),
        sa.Column("body_source", sa.Text, nullable=False),
        sa.Column("body_html", sa.Text, nullable=False),
        sa.Column("edited_by_membership_id", UUID(as_uuid=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        tenant_fk(["post_id"], "posts", "fk_post_revisions_post"),
        sa.ForeignKeyConstraint(["tenant_id", "edited_by_membership_id"], ["memberships.tenant_id", "memberships.id"],
                                name="fk_post_revisions_editor", ondelete="SET NULL (edited_by_membership_id)"),
    )
    op.create_index("ix_post_revisions_post", "post_revisions", ["tenant_id", "post_id", "created_at"])
    tenant_table("post_revisions")

    op.create_table(
        "comments",
        *tenant_columns("comments"),
        sa.Column("post_id", UUID(as_uuid=True), nullable=False),
        sa.Column("parent_id", UUID(as_uuid=True)),
        sa.Column("author_membership_id", UUID(as_uuid=True), nullable=False),
        sa.Column("body_source", sa.Text, nullable=False),
        sa.Column("body_html", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        sa.Column("hidden_at", sa.DateTime(timezone=True)),
        sa.Column("removed_at", sa.DateTime(timezone=True)),
        sa.Column("flag_count", sa.Integer, nullable=False, server_default="0"),
        sa.CheckConstraint("char_length(btrim(body_source)) BETWEEN 1 AND 5000", name="body_length"),
        tenant_fk(["post_id"], "posts", "fk_comments_post"),
        tenant_fk(["parent_id"], "comments", "fk_comments_parent"),
        tenant_fk(["author_membership_id"], "memberships", "fk_comments_author"),
    )
    op.create_index("ix_comments_post", "comments", ["tenant_id", "post_id", "created_at"])
    tenant_table("comments")

    op.create_table(
        "reactions",
        *tenant_columns("reactions"),
        sa.Column("post_id", UUID(as_uuid=True), nullable=False),
        sa.Column("membership_id", UUID(as_uuid=True), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("tenant_id", "post_id", "membership_id", "kind", name="uq_reactions_one_per_kind"),
        sa.CheckConstraint(f"kind IN {REACTIONS}", name="kind_valid"),
        tenant_fk(["post_id"], "posts", "fk_reactions_post"),
        tenant_fk(["membership_id"], "memberships", "fk_reactions_membership"),
    )
    tenant_table("reactions")

    op.create_table(
        "post_mentions",
        *tenant_columns("post_mentions"),
        sa.Column("post_id", UUID(as_uuid=True), nullable=False),
        sa.Column("membership_id", UUID(as_uuid=True), nullable=False),
        sa.UniqueConstraint("tenant_id", "post_id", "membership_id", name="uq_post_mentions_once"),
        tenant_fk(["post_id"], "posts", "fk_post_mentions_post"),
        tenant_fk(["membership_id"], "memberships", "fk_post_mentions_membership"),
    )
    tenant_table("post_mentions")

    op.create_table(
        "flags",
        *tenant_columns("flags"),
        sa.Column("post_id", UUID(as_uuid=True)),
        sa.Column("comment_id", UUID(as_uuid=True)),
        sa.Column("membership_id", UUID(as_uuid=True), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("(post_id IS NULL) <> (comment_id IS NULL)", name="one_target"),
        sa.CheckConstraint("char_length(btrim(reason)) BETWEEN 1 AND 500", name="reason_length"),
        tenant_fk(["post_id"], "posts", "fk_flags_post"),
        tenant_fk(["comment_id"], "comments", "fk_flags_comment"),
        tenant_fk(["membership_id"], "memberships", "fk_flags_membership"),
    )
    op.create_index("uq_flags_post_once", "flags", ["tenant_id", "post_id", "membership_id"], unique=True,
                    postgresql_where=sa.text("post_id IS NOT NULL"))
    op.create_index("uq_flags_comment_once", "flags", ["tenant_id", "comment_id", "membership_id"], unique=True,
                    postgresql_where=sa.text("comment_id IS NOT NULL"))
    tenant_table("flags")


def downgrade():
    for table in ("flags", "post_mentions", "reactions", "comments", "post_revisions", "posts", "space_members",
                  "spaces"):
        op.drop_table(table)
