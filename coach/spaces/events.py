"""Outbox topics of the spaces domain (see :mod:`coach.platform.events`)."""
from __future__ import annotations

from coach.platform.events import Topic

SPACE_POST_CREATED = Topic("space.post_created", "post_id; space_id; author_membership_id")
SPACE_COMMENTED = Topic("space.commented",
                        "post_id; comment_id; post_author_membership_id; author_membership_id")
SPACE_MENTIONED = Topic("space.mentioned",
                        "post_id; comment_id (absent for a mention in the post); membership_id (who is "
                        "mentioned); author_membership_id; excerpt (plain text)")
