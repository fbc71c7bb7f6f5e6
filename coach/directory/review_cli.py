"""``flask directory check-ratings``: recount reviews against the kept ratings (registered by the directory's CLI
group)."""
from __future__ import annotations

import click
from sqlalchemy import select

from coach import tenancy
from coach.directory import reviews
from coach.extensions import db
from coach.orgs.models import Organization


@click.command("check-ratings")
@click.option("--org", "slug", default=None, help="Only this organization (its slug); every one by default.")
@click.option("--fix", is_flag=True, help="Rewrite wrong counts from the reviews (the listings follow).")
def check_ratings_command(slug: str | None, fix: bool) -> None:
    """Compare every coach's counted ratings with their visible reviews; print each difference."""
    query = select(Organization).order_by(Organization.slug)
    if slug:
        query = query.where(Organization.slug == slug)
    orgs = list(db.session.scalars(query))
    if slug and not orgs:
        raise click.ClickException(f"No organization has the slug {slug!r}.")
    wrong = 0
    for org in orgs:
        with tenancy.acting_for(org.id):
            found = reviews.check_ratings(org.id, fix=fix)
            db.session.commit()
        for mismatch in found:
            click.echo(f"{org.slug}: {mismatch}{' (fixed)' if fix else ''}")
        wrong += len(found)
    click.echo(f"{wrong} coach{'es' if wrong != 1 else ''} with wrong counts"
               f"{', fixed' if fix and wrong else ''} in {len(orgs)} organization{'s' if len(orgs) != 1 else ''}.")
    if wrong and not fix:
        raise SystemExit(1)
