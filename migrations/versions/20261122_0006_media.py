"""Media: uploaded items (quota-counted), timestamped review comments, attachments to posts.

Revision ID: 0006_media
Revises: 0005_spaces
Created: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

from rls import tenant_columns, tenant_fk, tenant_table

revision = "0006_media"
down_revision = "0005_spaces"
branch_labels = None
depends_on = None


def upgrade():
    # An organization may get more (or less) room than MEDIA_QUOTA_BYTES; NULL means the default.
    op.add_column("organizations", sa.Column("media_quota_bytes", sa.BigInteger))
    op.create_check_constraint("media_quota_positive", "organizations",
                               "media_quota_bytes IS NULL OR media_quota_bytes >= 0")

    op.create_table(
        "media_items",
        *tenant_columns("media_items"),
        sa.Column("owner_membership_id", UUID(as_uuid=True)),
        sa.Column("audience", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("failure_reason", sa.String(300)),
        sa.Column("declared_bytes", sa.BigInteger, nullable=False),
        sa.Column("size_bytes", sa.BigInteger),
        sa.Column("derived_bytes", sa.BigInteger, nullable=False, server_default="0"),
        # What the organization's quota counts for this item right now (see coach.media.service).
        sa.Column("counted_bytes", sa.BigInteger, nullable=False),
        sa.Column("upload_id", sa.String(300)),
        sa.Column("part_bytes", sa.Integer, nullable=False),
        sa.Column("part_count", sa.Integer, nullable=False),
        sa.Column("original_key", sa.String(300), nullable=False),
        sa.Column("derived_keys", sa.dialects.postgresql.JSONB, nullable=False, server_default="{}"),
        sa.Column("width", sa.Integer),
        sa.Column("height", sa.Integer),
        sa.Column("duration_ms", sa.Integer),
        sa.Column("processing_attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("upload_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True)),
        sa.Column("ready_at", sa.DateTime(timezone=True)),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("audience IN ('staff', 'organization')", name="audience_valid"),
        sa.CheckConstraint("kind IN ('image', 'video', 'pdf')", name="kind_valid"),
        sa.CheckConstraint("status IN ('uploading', 'processing', 'ready', 'failed', 'deleting')",
                           name="status_valid"),
        sa.CheckConstraint("declared_bytes > 0", name="declared_positive"),
        sa.CheckConstraint("counted_bytes >= 0 AND derived_bytes >= 0", name="bytes_not_negative"),
        sa.CheckConstraint("part_bytes > 0 AND part_count BETWEEN 1 AND 10000", name="parts_valid"),
        sa.CheckConstraint("char_length(btrim(title)) BETWEEN 1 AND 200", name="title_length"),
        sa.CheckConstraint("status <> 'failed' OR failure_reason IS NOT NULL", name="failure_has_reason"),
        sa.ForeignKeyConstraint(["tenant_id", "owner_membership_id"], ["memberships.tenant_id", "memberships.id"],
                                name="fk_media_items_owner", ondelete="SET NULL (owner_membership_id)"),
    )
    op.create_index("ix_media_items_library", "media_items",
                    ["tenant_id", sa.text("created_at DESC"), sa.text("id DESC")])
    op.create_index("ix_media_items_owner", "media_items",
                    ["tenant_id", "owner_membership_id", sa.text("created_at DESC")])
    op.create_index("ix_media_items_pending", "media_items", ["tenant_id", "status"],
                    postgresql_where=sa.text("status IN ('uploading', 'processing', 'deleting')"))
    tenant_table("media_items")

    op.create_table(
        "media_comments",
        *tenant_columns("media_comments"),
        sa.Column("media_id", UUID(as_uuid=True), nullable=False),
        sa.Column("parent_id", UUID(as_uuid=True)),
        sa.Column("author_membership_id", UUID(as_uuid=True), nullable=False),
        sa.Column("at_ms", sa.Integer, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("at_ms >= 0", name="at_not_negative"),
        sa.CheckConstraint("char_length(btrim(body)) BETWEEN 1 AND 2000", name="body_length"),
        tenant_fk(["media_id"], "media_items", "fk_media_comments_media"),
        tenant_fk(["parent_id"], "media_comments", "fk_media_comments_parent"),
        tenant_fk(["author_membership_id"], "memberships", "fk_media_comments_author"),
    )
    op.create_index("ix_media_comments_media", "media_comments", ["tenant_id", "media_id", "at_ms", "created_at"])
    tenant_table("media_comments")

    op.create_table(
        "post_attachments",
        *tenant_columns("post_attachments"),
        sa.Column("post_id", UUID(as_uuid=True), nullable=False),
        sa.Column("media_id", UUID(as_uuid=True), nullable=False),
        sa.Column("position", sa.SmallInteger, nullable=False),
        sa.UniqueConstraint("tenant_id", "post_id", "media_id", name="uq_post_attachments_once"),
        sa.CheckConstraint("position BETWEEN 0 AND 9", name="position_range"),
        tenant_fk(["post_id"], "posts", "fk_post_attachments_post"),
        tenant_fk(["media_id"], "media_items", "fk_post_attachments_media"),
    )
    op.create_index("ix_post_attachments_media", "post_attachments", ["tenant_id", "media_id"])
    tenant_table("post_attachments")

    # The media sweep (run by the worker for all organizations) asks which organizations have
    # abandoned uploads, stuck processing or deletions to finish; it then acts inside each
    # organization under the normal policy. The function returns organization ids only.
    op.execute("CREATE POLICY sweep_function_read ON media_items FOR SELECT TO CURRENT_USER USING (true)")
    op.execute("""
        CREATE FUNCTION media_due_tenants(p_now timestamptz, p_stuck interval) RETURNS SETOF uuid
        LANGUAGE sql SECURITY DEFINER SET search_path = '' STABLE AS $$
            SELECT DISTINCT tenant_id FROM public.media_items
            WHERE (status = 'uploading' AND upload_expires_at <= p_now)
               OR (status = 'processing' AND uploaded_at <= p_now - p_stuck)
               OR (status = 'deleting' AND deleted_at <= p_now - interval '5 minutes')
        $$
    """)


def downgrade():
    op.execute("DROP FUNCTION media_due_tenants(timestamptz, interval)")
    for table in ("post_attachments", "media_comments", "media_items"):
        op.drop_table(table)
    op.drop_constraint("media_quota_positive", "organizations")
    op.drop_column("organizations", "media_quota_bytes")
