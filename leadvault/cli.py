"""The ``leadvault`` command line: the root group, serving (``run``, ``worker``), the schema
(``db``) and the entry point.

The core's other groups are in modules of their own, ``leadvault/<group>_cli.py``
(``keys``, ``check``, ``api-tokens``, ``audit``, ``i18n``), the domain packages'
in their ``cli.py``; both are registered here.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click
from flask import Flask
from sqlalchemy.exc import OperationalError, ProgrammingError

from leadvault import api_tokens_cli, audit_cli, check_cli, i18n_cli, keys_cli
from leadvault.commands import (
    ConfigProblem,
    Refused,
    configure_logging,
    load_app,
    load_settings,
    report,
)
from leadvault.settings import Settings


def ensure_instance(settings: Settings) -> bool:
    """Create the instance folder and the key ring on first start."""
    from leadvault import instance
    from leadvault.crypto import Keyring, KeyringError

    settings.instance.mkdir(mode=0o700, parents=True, exist_ok=True)
    instance.secure(settings)  # an existing folder too: owner-only
    try:
        _keyring, created = Keyring.load_or_create(settings.keyring)
    except (KeyringError, OSError) as exc:
        raise ConfigProblem(f"LEADVAULT_KEYRING: {exc}") from None
    if created:
        click.echo(f"Created key ring {settings.keyring} (mode 0600). Back it up: without it")
        click.echo("the encrypted personal data cannot be read.")
    return created


def upgrade_database(app: Flask) -> None:
    from leadvault import migrate
    from leadvault.app import runtime

    migrate.upgrade(runtime(app).engine, time_zone=runtime(app).settings.time_zone)


@click.group()
@click.version_option(package_name="leadvault")
def cli() -> None:
    """Leadvault: privacy-first lead capture and consent."""


def _quiet_handler() -> type:
    from werkzeug.serving import WSGIRequestHandler

    from leadvault.access_log import LOGGED_PATH

    class QuietHandler(WSGIRequestHandler):
        """Logs method, path and status: no client IP, no query string (personal data),
        no signed link's token (the path as :mod:`leadvault.access_log` masked it)."""

        def address_string(self) -> str:
            return "-"

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            # No environ: the request was refused before it reached the app.
            path = getattr(self, "environ", {}).get(LOGGED_PATH, "-")
            self.log("info", '"%s %s" %s', self.command, path, code)

    return QuietHandler


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--no-worker", is_flag=True, help="Serve only; run `leadvault worker` apart.")
def run(host: str, port: int, no_worker: bool) -> None:
    """Serve the web app and the worker in one process (the embedded default)."""
    from werkzeug.serving import make_server

    from leadvault.app import runtime
    from leadvault.worker import Worker

    _QuietHandler = _quiet_handler()  # noqa: N806 - a class

    settings = load_settings()
    configure_logging(settings.log_level)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    ensure_instance(settings)
    # Without LEADVAULT_BASE_URL, links point at the address we serve on.
    overrides = (
        {} if os.environ.get("LEADVAULT_BASE_URL") else {"base_url": f"http://{host}:{port}"}
    )
    app = load_app(overrides)
    settings = runtime(app).settings
    upgrade_database(app)
    stop = threading.Event()
    thread = None
    if not no_worker:
        thread = threading.Thread(target=Worker(app).run, args=(stop,), daemon=True)
        thread.start()
    try:
        server = make_server(host, port, app, threaded=True, request_handler=_QuietHandler)
    except OSError as exc:
        stop.set()
        raise Refused(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    mail = (
        f"SMTP {settings.smtp.describe()}" if settings.smtp else f"files in {settings.mail_folder}"
    )
    click.echo(f"Leadvault is running on http://{host}:{port}/  (mail: {mail})")
    click.echo(f"Public links use {settings.base_url}. Press Ctrl+C to stop.")
    # shutdown() blocks until serve_forever() returns, so it must not run in the
    # main thread that serve_forever() runs in (the signal handler does): deadlock.
    signal.signal(
        signal.SIGTERM,
        lambda *_: threading.Thread(target=server.shutdown, daemon=True).start(),
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        runtime(app).wake.set()
        if thread is not None:
            thread.join(timeout=10)


@cli.command()
@click.option("--once", is_flag=True, help="Deliver what is due, run jobs once, then exit.")
@click.option(
    "--batch-size",
    default=None,
    type=click.IntRange(1, 1000),
    help="Inbox items or mails taken at once (default: LEADVAULT_WORKER_BATCH_SIZE).",
)
def worker(once: bool, batch_size: int | None) -> None:
    """Deliver queued mails with retries and run the scheduled jobs."""
    from leadvault import instance
    from leadvault.worker import Worker, lower_priority

    settings = load_settings()
    configure_logging(settings.log_level)
    instance.secure(settings)
    lower_priority(settings.worker_nice)
    app = load_app()
    runner = Worker(app, batch_size=batch_size)
    # What start-up loaded (the app, SQLAlchemy, Jinja, Babel: ~145 000 objects) lives as
    # long as the process: out of the collector's full passes, which walked all of it
    # about three times per 1 000 leads (as leadvault.wsgi does for the web workers).
    gc.collect()
    gc.freeze()
    if once:
        while runner.deliver_once():
            pass
        runner.run_due_jobs()
        runner.close()
        return
    stop = threading.Event()

    def request_stop(*_: object) -> None:
        stop.set()
        runner.runtime.wake.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    runner.run(stop)


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create the key ring if absent and migrate the schema to the newest revision."""
    settings = load_settings()
    ensure_instance(settings)
    app = load_app()
    upgrade_database(app)
    from leadvault import migrate
    from leadvault.app import runtime

    click.echo(f"Database at revision {migrate.current(runtime(app).engine)}.")


@db.command("backup")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def db_backup(directory: Path) -> None:
    """Copy the SQLite database, both its files, into DIRECTORY while Leadvault runs:
    one consistent pair (restore both together). PostgreSQL: use pg_dump."""
    from leadvault import sqlite_backup
    from leadvault.app import runtime

    engine = runtime(load_app()).engine
    with contextlib.ExitStack() as bars:
        shown: dict[str, Any] = {}

        def progress(name: str, done: int, total: int) -> None:
            if name not in shown:
                bar = click.progressbar(length=total, label=f"Copying {name}")
                shown[name] = bars.enter_context(bar)
            shown[name].update(done - shown[name].pos)

        try:
            copied = sqlite_backup.backup(engine, directory.resolve(), progress)
        except sqlite_backup.BackupRefused as exc:
            raise click.ClickException(str(exc)) from None
    for path in copied:
        click.echo(f"Wrote {path}")
    click.echo("Back up the key ring apart from these files (README, Keys and backups).")


def _first_line(exc: BaseException) -> str:
    from leadvault.checks import first_line

    return first_line(exc)


def register_core_commands(group: click.Group) -> None:
    """The core's command groups, each in a module of its own (``leadvault/<group>_cli.py``)."""
    group.add_command(keys_cli.keys)
    group.add_command(check_cli.check)
    group.add_command(api_tokens_cli.api_tokens)
    group.add_command(audit_cli.audit)
    group.add_command(i18n_cli.i18n)


def register_domain_commands(group: click.Group) -> None:
    import admin.cli
    import capture.cli
    import consent.cli
    import export.cli
    import nurture.cli
    import scoring.cli
    import scoring.sales_cli
    import widgets.cli

    group.add_command(capture.cli.forms)
    group.add_command(consent.cli.consent)
    group.add_command(consent.cli.leads)
    group.add_command(consent.cli.purge)
    group.add_command(widgets.cli.assets)
    group.add_command(scoring.cli.scoring)
    group.add_command(scoring.sales_cli.sales)
    group.add_command(report)  # with the reports capture and scoring add to it
    group.add_command(export.cli.webhooks)
    group.add_command(export.cli.export_command)
    group.add_command(export.cli.import_command)
    group.add_command(nurture.cli.nurture)
    group.add_command(nurture.cli.bounces)
    scoring.cli.report.add_command(nurture.cli.report_nurture)
    group.add_command(admin.cli.users)
    group.add_command(admin.cli.dashboard)
    for command in (admin.cli.leads_list, admin.cli.leads_show, admin.cli.leads_export_one):
        consent.cli.leads.add_command(command)


register_core_commands(cli)
register_domain_commands(cli)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: configuration and database problems become one-line messages."""
    from leadvault.instance import private_umask
    from leadvault.untrusted import guard_terminal

    guard_terminal()  # nothing printed can drive the terminal (escape sequences)
    private_umask()  # files 0600, folders 0700 (leadvault.instance)
    try:
        return cli.main(args=argv, prog_name="leadvault", standalone_mode=True)
    except OperationalError as exc:
        click.echo(f"Error: database does not answer: {_first_line(exc)}", err=True)
        sys.exit(1)
    except ProgrammingError:
        click.echo("Error: database schema is missing; run `leadvault db upgrade`", err=True)
        sys.exit(1)
