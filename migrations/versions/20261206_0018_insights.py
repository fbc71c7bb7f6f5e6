"""The admins' dashboard and the operators' console (being written)

Revision ID: 0018_insights
Revises: 0017_erasure
Created: 2026-12-06
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0018_insights"
down_revision = "0017_erasure"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
