"""Outbox topics of the media domain (see :mod:`coach.platform.events`)."""
from __future__ import annotations

from coach.platform.events import Topic

MEDIA_UPLOADED = Topic("media.uploaded", "media_id: every part is stored; the item waits to be processed")
MEDIA_READY = Topic("media.ready", "media_id: the renditions are made; the item can be viewed")
MEDIA_DELETED = Topic("media.deleted", "media_id: the item is marked deleting; its objects are to be removed")
MEDIA_REVIEW_COMMENTED = Topic(
    "media.review_commented",
    "media_id; comment_id; owner_membership_id (empty when the owner left); author_membership_id")
