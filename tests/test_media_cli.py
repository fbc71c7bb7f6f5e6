"""``flask media set-quota``: an operator gives one organization more (or less) room for media."""
from __future__ import annotations

from sqlalchemy import select

from coach.extensions import db
from coach.orgs.models import Organization
from tests.factories import make_org, make_user


def quota_of(slug: str):
    db.session.expire_all()
    return db.session.scalar(select(Organization.media_quota_bytes).where(Organization.slug == slug))


def test_set_quota_stores_the_size_and_default_clears_it(app, ctx):
    make_org(make_user("ada@example.com", "Ada Admin"), slug="river", name="River Club")
    db.session.commit()
    runner = app.test_cli_runner()

    result = runner.invoke(args=["media", "set-quota", "river", "250GB"])
    assert result.exit_code == 0, result.output
    assert "River Club: 0 bytes used of 250 GB" in result.output
    assert quota_of("river") == 250 * 1024 ** 3

    result = runner.invoke(args=["media", "set-quota", "river", "default"])
    assert result.exit_code == 0, result.output
    assert quota_of("river") is None
    assert "used of 100 GB" in result.output


def test_set_quota_refuses_unknown_organizations_and_unreadable_sizes(app, ctx):
    make_org(make_user("ada@example.com", "Ada Admin"), slug="river")
    db.session.commit()
    runner = app.test_cli_runner()

    unknown = runner.invoke(args=["media", "set-quota", "nowhere", "1GB"])
    assert unknown.exit_code != 0 and "No organization with the slug 'nowhere'" in unknown.output
    garbled = runner.invoke(args=["media", "set-quota", "river", "lots"])
    assert garbled.exit_code != 0 and "is not a size like 250GB" in garbled.output
    assert quota_of("river") is None
