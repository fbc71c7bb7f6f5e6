"""Deleting accounts and closing organizations (being written)

Revision ID: 0017_erasure
Revises: 0016_account_security
Created: 2026-12-06
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0017_erasure"
down_revision = "0016_account_security"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
