"""Consumers of space events.

``space.mentioned`` emails the mentioned member now; the notifications issue replaces this
with in-app notifications and per-kind preferences. ``space.post_created`` and
``space.commented`` have no effect yet beyond being consumed (they will feed
notifications and the live "new posts" push).
"""
from __future__ import annotations

import uuid

from sqlalchemy import select

from coach.extensions import db
from coach.orgs.models import Membership, Organization
from coach.platform.jobs import consumer
from coach.platform.mail import queue_email
from coach.spaces.models import Post, Space


@consumer("space.mentioned")
def email_mention(payload: dict) -> None:
    post = db.session.get(Post, uuid.UUID(payload["post_id"]))
    member = db.session.get(Membership, uuid.UUID(payload["membership_id"]))
    author = db.session.get(Membership, uuid.UUID(payload["author_membership_id"]))
    if post is None or member is None or author is None or not post.visible:
        return
    space = db.session.get(Space, post.space_id)
    org = db.session.scalar(select(Organization).where(Organization.id == post.tenant_id))
    queue_email(member.user.email, f"{author.user.display_name} mentioned you in {space.name}", "mention",
                member=member, author=author, space=space, org=org, post=post, excerpt=payload.get("excerpt", ""),
                comment_id=payload.get("comment_id"))


@consumer("space.post_created")
def _post_created(payload: dict) -> None:
    """Nothing to do until notifications and live updates land."""


@consumer("space.commented")
def _commented(payload: dict) -> None:
    """Nothing to do until notifications land."""
