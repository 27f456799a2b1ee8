"""``leadvault import FILE.csv``: contacts in from Mautic, HubSpot, listmonk or a spreadsheet."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import IO

import click

from leadvault import i18n
from leadvault.commands import load_app, refusing


def _count_lines(path: Path) -> int:
    lines = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            lines += block.count(b"\n")
    return max(lines, 1)


def _overrides(pairs: tuple[str, ...]) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs:
        column, sep, field = pair.rpartition("=")
        if not sep or not column.strip() or not field.strip():
            raise click.BadParameter(f"{pair!r}: use COLUMN=FIELD", param_hint="--map")
        found[column.strip()] = field.strip()
    return found


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--preset",
    type=click.Choice(["auto", "leadvault", "mautic", "hubspot", "listmonk"]),
    default="auto",
    show_default=True,
    help="Whose export the file is (auto: the one whose column names match best).",
)
@click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="COLUMN=FIELD",
    help="Map a column to a field (email, first_name, optin_at …; '-' ignores it). Repeat.",
)
@click.option(
    "--purpose",
    "purposes",
    multiple=True,
    default=("newsletter",),
    show_default=True,
    help="Purpose the contacts consented to (with proof) or are asked for (repeat).",
)
@click.option(
    "--language",
    type=click.Choice(i18n.LANGUAGES),
    default=i18n.DEFAULT_LANGUAGE,
    show_default=True,
    help="Language of new contacts whose line names none (their mails are in it).",
)
@click.option("--encoding", default="utf-8", show_default=True, help="e.g. cp1252 for old Excel")
@click.option("--dry-run", is_flag=True, help="Check every line and report; store nothing.")
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write every line's outcome to this CSV file (line, outcome, consent, detail).",
)
def import_command(  # noqa: PLR0917 - click passes options positionally
    file: Path,
    preset: str,
    maps: tuple[str, ...],
    purposes: tuple[str, ...],
    language: str,
    encoding: str,
    dry_run: bool,
    report_path: Path | None,
) -> None:
    """Import contacts from a CSV file (Mautic, HubSpot, listmonk exports or your own).

    Consent is imported only with proof: the columns optin_at, optin_source and
    optin_text. Contacts without it are asked again by a double opt-in mail
    (LEADVAULT_IMPORT_REPERMISSION_PER_HOUR, sent by the worker). Erased
    addresses are refused, known ones merged. Each line's outcome names the
    line, never the address.
    """
    from export import imports
    from leadvault import audit
    from leadvault.app import runtime

    app = load_app()
    overrides = _overrides(maps)
    total = _count_lines(file) - 1
    report_file: IO[str] | None = None
    writer = None
    if report_path is not None:
        try:
            report_file = report_path.open("w", newline="", encoding="utf-8")
        except OSError as exc:  # a missing folder, no permission: before any line is read
            raise click.ClickException(
                f"could not write to {report_path}: {exc.strerror or exc}; nothing was imported"
            ) from None
        writer = csv.writer(report_file)
        writer.writerow(["line", "outcome", "consent", "detail"])
    done = [0]
    problems: list[str] = []

    try:
        with (
            app.app_context(),
            file.open("rb") as source,
            click.progressbar(
                length=max(total, 1),
                label="Checking" if dry_run else "Importing",
                file=sys.stderr,
            ) as bar,
        ):

            def on_line(result: imports.LineResult) -> None:
                if writer is not None:
                    writer.writerow([result.line, result.outcome, result.consent, result.detail])
                if dry_run or result.outcome == "refused":
                    problems.append(str(result))
                step = result.line - 1 - done[0]
                if step > 0:
                    bar.update(step)
                    done[0] += step

            with refusing(imports.MappingError, imports.ImportRefused):
                report = imports.run(
                    runtime(app).session_factory,
                    source,
                    purposes=purposes,
                    preset=preset,
                    overrides=overrides,
                    language=language,
                    encoding=encoding,
                    dry_run=dry_run,
                    actor=audit.cli_actor(),
                    on_line=on_line,
                )
    finally:
        if report_file is not None:
            report_file.close()
    click.echo(f"Columns ({report.preset}): {'; '.join(report.mapping)}")
    if report.ignored:
        click.echo(f"Ignored columns: {', '.join(report.ignored)}")
    for line in problems:
        click.echo(line)
    prefix = "Dry run, nothing stored. " if dry_run else ""
    click.echo(prefix + report.summary())
    if report.repermission and not dry_run:
        per_hour = runtime(app).settings.import_repermission_per_hour
        click.echo(
            f"The worker sends the re-permission mails, at most {per_hour} an hour "
            "(LEADVAULT_IMPORT_REPERMISSION_PER_HOUR)."
        )
