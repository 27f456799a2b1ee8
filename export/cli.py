"""The export package's command line: ``leadvault export`` (leads out as CSV, XLSX or
NDJSON) here; ``leadvault webhooks …`` in ``export.webhook_cli`` and ``leadvault import``
in ``export.import_cli``, registered through this module."""

from __future__ import annotations

import datetime as dt

import click

from export.import_cli import import_command
from export.webhook_cli import webhooks
from leadvault.commands import DAY, app_session, load_app, refuse_empty_span, refuse_unknown
from scoring.cli import GRADE_CODES, STAGE_CODES

__all__ = ["export_command", "import_command", "webhooks"]


@click.command("export")
@click.option(
    "--format",
    "format_",
    type=click.Choice(["csv", "xlsx", "ndjson"]),
    default="csv",
    show_default=True,
)
@click.option("--columns", default=None, help="Comma-separated column keys (see --list-columns).")
@click.option(
    "--preset",
    type=click.Choice(["hubspot", "salesforce", "pipedrive", "mautic"]),
    default=None,
    help="A CRM's import columns; only leads that granted sales_contact.",
)
@click.option(
    "--dialect",
    type=click.Choice(["excel", "excel-de"]),
    default="excel",
    show_default=True,
    help="CSV: excel (',') or excel-de (BOM, ';', decimal comma) for German Excel.",
)
@click.option(
    "--stage", "stages", multiple=True, callback=STAGE_CODES, help="Only these stages (repeat)."
)
@click.option(
    "--grade", "grades", multiple=True, callback=GRADE_CODES, help="Only these grades (repeat)."
)
@click.option("--purpose", default=None, help="Only leads that granted this purpose.")
@click.option("--created-from", type=DAY, default=None, help="UTC day, inclusive")
@click.option("--created-to", type=DAY, default=None, help="UTC day, exclusive")
@click.option(
    "-o",
    "--output",
    default="-",
    show_default=True,
    help="File to write, or - for standard output.",
)
@click.option(
    "--workers",
    type=click.IntRange(0, 16),
    default=None,
    help="Processes decrypting and formatting CSV/NDJSON while this one reads"
    " (default: 1 on a machine with two cores or more; 0: none).",
)
@click.option("--list-columns", is_flag=True, help="Print the column keys and exit.")
def export_command(
    format_: str,
    columns: str | None,
    preset: str | None,
    dialect: str,
    stages: tuple[str, ...],
    grades: tuple[str, ...],
    purpose: str | None,
    created_from: dt.datetime | None,
    created_to: dt.datetime | None,
    output: str,
    workers: int | None,
    list_columns: bool,
) -> None:
    """Export leads as CSV, XLSX or NDJSON (each export is recorded in the audit trail)."""
    import sys
    import tempfile
    from pathlib import Path

    from export import columns as columns_module
    from export import parallel, service
    from leadvault import audit
    from leadvault.app import runtime
    from leadvault.db import read_only

    refuse_empty_span(
        ("--created-from", created_from), ("--created-to", created_to), last_included=False
    )
    app = load_app()
    rt = runtime(app)
    if list_columns:
        with app_session(app) as session:
            click.echo("\n".join(columns_module.known(columns_module.purpose_keys(session))))
        return
    to_stdout = output == "-"
    if format_ == "xlsx" and to_stdout and sys.stdout.isatty():
        raise click.UsageError("XLSX is binary: give --output FILE.xlsx")
    selection, filters = service.selection(
        stages=stages,
        grades=grades,
        purpose=purpose,
        created_from=created_from,
        created_to=created_to,
    )
    with app.app_context(), read_only(rt.session_factory) as session:
        if purpose is not None:
            refuse_unknown("--purpose", purpose, columns_module.purpose_keys(session))
        try:
            plan = service.prepare(
                session, format=format_, columns=columns, preset=preset, dialect=dialect
            )
        except service.ExportError as exc:
            raise click.UsageError(str(exc)) from None
        total = service.count(session, selection)
        try:
            with click.progressbar(
                length=total, label="Exporting", file=sys.stderr if to_stdout else None
            ) as bar:
                if to_stdout and format_ == "xlsx":
                    with tempfile.TemporaryDirectory() as folder:
                        path = Path(folder) / "leads.xlsx"
                        written = service.write(
                            session, selection, plan, path, filters=filters, on_chunk=bar.update
                        )
                        sys.stdout.buffer.write(path.read_bytes())
                else:
                    target = sys.stdout.buffer if to_stdout else output
                    written = service.write(
                        session,
                        selection,
                        plan,
                        target,
                        filters=filters,
                        on_chunk=bar.update,
                        workers=parallel.default_workers() if workers is None else workers,
                    )
        except parallel.WorkerFailed as exc:  # killed, out of memory
            raise click.ClickException(f"the export stopped: {exc}; nothing was recorded") from None
        except OSError as exc:  # disk full, a closed pipe, no permission
            where = "standard output" if to_stdout else output
            raise click.ClickException(
                f"could not write to {where}: {exc.strerror or exc}; the export stopped"
                " and nothing was recorded"
            ) from None
    with app_session(app) as session:
        service.audited(
            session, plan, actor=audit.cli_actor(), filters=filters, rows_written=written
        )
    note = f" (only leads that granted {plan.require})" if plan.require else ""
    where = "" if to_stdout else f" to {output}"
    click.echo(f"{written} leads exported{where}{note}.", err=to_stdout)
