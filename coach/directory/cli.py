"""``flask directory ...``: operator commands for the public coach directory."""
from __future__ import annotations

import click
from flask.cli import AppGroup

from coach.directory import projection
from coach.directory.review_cli import check_ratings_command

directory_cli = AppGroup("directory", help="Public coach directory commands.")
directory_cli.add_command(check_ratings_command)


@directory_cli.command("rebuild")
def rebuild() -> None:
    """Project every organization's listed coaches into the public directory again (safe to run any time)."""
    done = projection.rebuild_all()
    click.echo(f"Rebuilt the directory: {done.listings} listed coaches in {done.organizations} organizations.")
