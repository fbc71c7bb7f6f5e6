"""Outbox topics of the directory domain (see :mod:`coach.platform.events`).

The projection's consumers (``coach.directory.jobs``) refresh a coach's public listing on these and on the
booking, calendar and payments topics that change what a listing shows (offerings, availability, bookings,
packs); notifications ask an athlete to review an ended session and tell a coach of a new review.
"""
from __future__ import annotations

from coach.platform.events import Topic

PROFILE_CHANGED = Topic("directory.profile_changed",
                        "coach_membership_id: the profile, its terms, listing choice or verification changed")
LISTING_CHANGED = Topic("directory.listing_changed",
                        "coach_membership_id (or null: every coach of the organization, e.g. it was listed or "
                        "unlisted, renamed, or its taxonomy changed); the projection refreshes or removes rows")
REVIEW_POSTED = Topic("directory.review_posted", "review_id; booking_id; coach_membership_id; stars")
REVIEW_CHANGED = Topic("directory.review_changed",
                       "review_id; coach_membership_id; what ('edited' | 'replied' | 'hidden' | 'restored')")
