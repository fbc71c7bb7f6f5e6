"""``flask media ...``: operator commands for media storage."""
from __future__ import annotations

import math
import re

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from coach.extensions import db
from coach.media.service import human_size, usage
from coach.media.storage import LocalStorage, S3Storage, StorageError, get_storage
from coach.orgs.models import Organization
from coach.tenancy import acting_for

media_cli = AppGroup("media", help="Media storage commands.")


@media_cli.command("storage-setup")
@click.option("--origin", "origins", multiple=True, metavar="URL",
              help="Origin the app's pages are served from (repeatable); default APP_BASE_URL.")
def storage_setup(origins: tuple[str, ...]) -> None:
    """Prepare media storage: the local folders, or the S3 bucket with its CORS and cleanup rules."""
    storage = get_storage()
    try:
        if isinstance(storage, LocalStorage):
            _setup_local(storage)
        elif isinstance(storage, S3Storage):
            _setup_s3(storage, [o.rstrip("/") for o in origins] or [current_app.config["APP_BASE_URL"]])
    except StorageError as exc:
        raise click.ClickException(str(exc)) from exc


def _setup_local(storage: LocalStorage) -> None:
    created = storage.ensure_folders()
    for path in created:
        click.echo(f"Created {path}")
    if not created:
        click.echo(f"Local media folders already exist under {storage.root}")


def _setup_s3(storage: S3Storage, origins: list[str]) -> None:
    for origin in origins:
        if not origin.startswith(("https://", "http://")):
            raise click.BadParameter(f"{origin!r} is not an origin like https://app.example.com", param_hint="--origin")
    created = storage.ensure_bucket()
    click.echo(f"{'Created' if created else 'Found'} bucket {storage.bucket!r}")
    rule = storage.set_cors(origins)
    click.echo(f"Set CORS: {', '.join(rule['AllowedMethods'])} from {', '.join(origins)} (ETag exposed)")
    # A browser that gives up mid-upload leaves parts behind that S3 keeps (and bills) until aborted.
    days = max(1, math.ceil(current_app.config.get("MEDIA_UPLOAD_TTL_HOURS", 24) / 24) + 1)
    storage.abort_incomplete_uploads_after(days)
    click.echo(f"Set lifecycle: incomplete uploads are aborted after {days} days")


@media_cli.command("set-quota")
@click.argument("slug")
@click.argument("size")
def set_quota(slug: str, size: str) -> None:
    """Give organization SLUG room for SIZE of media: "250GB", "500MB", or "default" (MEDIA_QUOTA_BYTES)."""
    org = db.session.scalar(select(Organization).where(Organization.slug == slug))
    if org is None:
        raise click.ClickException(f"No organization with the slug {slug!r}.")
    org.media_quota_bytes = None if size.lower() == "default" else _parse_size(size)
    db.session.commit()
    with acting_for(org.id):
        room = usage(org)
    click.echo(f"{org.name}: {human_size(room.used)} used of {human_size(room.quota)}")


def _parse_size(text: str) -> int:
    """Bytes from "250GB", "1.5 TB", "500MiB" or a plain number of bytes (units are powers of 1024)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)I?B?\s*", text.upper())
    if not match:
        raise click.BadParameter(f"{text!r} is not a size like 250GB, 500MB or default", param_hint="SIZE")
    amount, unit = match.groups()
    return int(float(amount) * 1024 ** " KMGT".index(unit or " "))
