"""``leadvault i18n``: the translation catalogues (``leadvault.catalogues``)."""

from __future__ import annotations

import click

from leadvault.commands import ConfigProblem


@click.group()
def i18n() -> None:
    """Translation catalogues (developers; needs the source checkout)."""


@i18n.command("update")
def i18n_update() -> None:
    """Extract message ids from the source and merge them into every catalogue."""
    from leadvault import catalogues

    try:
        changes = catalogues.update()
    except catalogues.SourceTreeMissing as exc:
        raise ConfigProblem(str(exc)) from None
    for line in changes or ["all catalogues up to date"]:
        click.echo(line)


@i18n.command("check")
def i18n_check() -> None:
    """Exit 1 naming every message id that is missing, empty or fuzzy in a catalogue."""
    from leadvault import catalogues

    try:
        problems = catalogues.check()
    except catalogues.SourceTreeMissing as exc:
        raise ConfigProblem(str(exc)) from None
    for problem in problems:
        click.echo(str(problem), err=True)
    if problems:
        raise SystemExit(1)
    click.echo("every message id is translated")
