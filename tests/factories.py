"""Factories: real rows made through the services, with RLS in force."""
from __future__ import annotations

import itertools

from coach import tenancy
from coach.accounts.service import create_user
from coach.extensions import db
from coach.orgs.models import Membership
from coach.orgs.service import create_organization

PASSWORD = "correct-horse-battery"
_seq = itertools.count(1)


def make_user(email: str | None = None, name: str | None = None, tz: str = "Europe/Berlin"):
    n = next(_seq)
    user = create_user(email or f"person{n}@example.com", PASSWORD, name or f"Person {n}", tz)
    db.session.commit()
    return user


def make_org(admin=None, slug: str | None = None, name: str | None = None):
    """An organization with ``admin`` (made if not given) as its admin."""
    n = next(_seq)
    admin = admin or make_user()
    org = create_organization(admin, name or f"Club {n}", slug or f"club-{n}", "Europe/Berlin")
    db.session.commit()
    return org


def add_member(org, user=None, role: str = "athlete"):
    user = user or make_user()
    tenancy.activate(org.id)
    membership = Membership(tenant_id=org.id, user_id=user.id, role=role)
    db.session.add(membership)
    db.session.commit()
    return membership


def media_row(org_id, owner, title: str = "Serve drill", status: str = "ready", audience: str = "staff",
              filename: str = "serve.mp4", duration_ms: int = 12_000):
    """A video's row only (no file in storage), added to the session: for tests about who sees media
    and where it shows, not about uploading or processing it."""
    import uuid
    from datetime import datetime, timezone

    from coach.media.models import MediaItem

    item = MediaItem(tenant_id=org_id, owner_membership_id=owner.id, audience=audience, kind="video",
                     title=title, filename=filename, content_type="video/mp4", status=status,
                     declared_bytes=10, size_bytes=10, counted_bytes=10, part_bytes=10, part_count=1,
                     original_key=f"{org_id}/{uuid.uuid4()}/original", derived_keys={},
                     upload_expires_at=datetime.now(timezone.utc), duration_ms=duration_ms)
    db.session.add(item)
    return item
