"""Onboarding: the first steps shown on a member's home (issue 21).

Every step's "done" is computed from the rows the step creates (an invitation, weekly hours, a space, a post,
an offering, a booking). Three facts have no such row, so they are kept here:

- ``memberships.onboarding_dismissed_at``: the member hid their checklist (per membership: another admin of the
  same organization still sees theirs).
- ``organizations.timezone_confirmed_at``: an admin looked at the organization's time zone and kept or changed
  it (the checklist's "Looks right" button, or saving the settings page).
- ``users.profile_confirmed_at``: the person checked their name and time zone (the walkthrough's "Looks right",
  or saving the profile page). Sign-up preselects the zone from the browser, so having one proves nothing.

Revision ID: 0022_onboarding
Revises: 0021_directory
Created: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0022_onboarding"
down_revision = "0021_directory"
branch_labels = None
depends_on = None

COLUMNS = (("memberships", "onboarding_dismissed_at"), ("organizations", "timezone_confirmed_at"),
           ("users", "profile_confirmed_at"))


def upgrade():
    # Nullable, no default: adding them rewrites nothing and takes only a brief lock. The tables' grants and
    # policies (0001) already cover new columns.
    for table, column in COLUMNS:
        op.add_column(table, sa.Column(column, sa.DateTime(timezone=True), nullable=True))


def downgrade():
    for table, column in COLUMNS:
        op.drop_column(table, column)
