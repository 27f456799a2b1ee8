"""``leadvault check``: what is configured and whether its parts answer (``leadvault.checks``)."""

from __future__ import annotations

import click

from leadvault.commands import load_app, load_settings


@click.command()
def check() -> None:
    """Print what is configured and whether the database and SMTP answer."""
    from leadvault import checks

    settings = load_settings()
    lines = checks.run(load_app(), settings)
    for line in lines:
        click.echo(line.printed())
    if any(line.level == "error" for line in lines):
        raise SystemExit(1)
