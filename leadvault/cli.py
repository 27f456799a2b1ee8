"""The ``leadvault`` command line."""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading
from typing import Any

import click
from flask import Flask
from sqlalchemy.exc import OperationalError, ProgrammingError

from leadvault.commands import (
    ConfigProblem,
    Refused,
    app_session,
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

    class QuietHandler(WSGIRequestHandler):
        """Logs method, path and status: no client IP, no query string (personal data)."""

        def address_string(self) -> str:
            return "-"

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            path = self.path.split("?", 1)[0]
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


@cli.group()
def keys() -> None:
    """Master key rotation."""


@keys.command("status")
def keys_status() -> None:
    """Show master key versions and how many data keys each wraps."""
    from leadvault import keys as key_service
    from leadvault.app import runtime

    app = load_app()
    keyring = runtime(app).vault.keyring
    with app_session(app) as session:
        for version in sorted(keyring.master_keys):
            active = " (active)" if version == keyring.active_version else ""
            used = key_service.count_using(session, version)
            click.echo(f"version {version}{active}: {used} data keys")


@keys.command("rotate")
def keys_rotate() -> None:
    """Add a master key version and re-wrap every data key under it."""
    from leadvault import keys as key_service
    from leadvault.app import runtime
    from leadvault.db import unit_of_work

    app = load_app()
    rt = runtime(app)
    keyring = rt.vault.keyring
    version = keyring.add_master_version()
    # Save first: a crash mid-way leaves keys wrapped by either version, both held.
    keyring.save()
    with unit_of_work(rt.session_factory) as session:
        total = key_service.count_stale(session, version)
    with click.progressbar(length=total, label=f"Re-wrapping under version {version}") as bar:
        while True:
            with unit_of_work(rt.session_factory) as session:
                done = key_service.rewrap_batch(session)
            if not done:
                break
            bar.update(done)
    click.echo(f"Master key version {version} is active; {total} data keys re-wrapped.")
    older = sorted(v for v in keyring.master_keys if v != version)
    if older:
        click.echo(f"Retire older versions with: leadvault keys retire {older[0]}")


@keys.command("retire")
@click.argument("version", type=int)
def keys_retire(version: int) -> None:
    """Remove an old master key version once no data key uses it."""
    from leadvault import keys as key_service
    from leadvault.app import runtime
    from leadvault.crypto import KeyringError

    app = load_app()
    keyring = runtime(app).vault.keyring
    with app_session(app) as session:
        used = key_service.count_using(session, version)
    if used:
        raise Refused(
            f"master key version {version} still wraps {used} data keys; "
            "run `leadvault keys rotate` first"
        )
    try:
        keyring.retire_master_version(version)
    except KeyringError as exc:
        raise Refused(str(exc)) from None
    keyring.save()
    click.echo(f"Master key version {version} retired.")


@cli.command()
def check() -> None:
    """Print what is configured and whether the database and SMTP answer."""
    from leadvault import checks

    settings = load_settings()
    lines = checks.run(load_app(), settings)
    for line in lines:
        click.echo(line.printed())
    if any(line.level == "error" for line in lines):
        raise SystemExit(1)


def _first_line(exc: BaseException) -> str:
    from leadvault.checks import first_line

    return first_line(exc)


@cli.group("api-tokens")
def api_tokens() -> None:
    """Tokens for the JSON API."""


@api_tokens.command("create")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, required=True, help="consent:read, events:write")
def api_tokens_create(name: str, scopes: tuple[str, ...]) -> None:
    """Create a token; it is printed once and stored only as a hash."""
    from leadvault import api

    app = load_app()
    try:
        with app_session(app) as session:
            secret = api.create_token(session, name, list(scopes))
    except api.ApiTokenError as exc:
        raise Refused(str(exc)) from None
    click.echo(secret)


@api_tokens.command("revoke")
@click.argument("name")
def api_tokens_revoke(name: str) -> None:
    """Revoke a token by name."""
    from leadvault import api

    app = load_app()
    with app_session(app) as session:
        if not api.revoke_token(session, name):
            raise Refused(f"no active token named {name!r}")
    click.echo(f"Token {name!r} revoked.")


@cli.group()
def audit() -> None:
    """The audit trail of looks at personal data, exports, erasures and account changes."""


@audit.command("verify")
def audit_verify() -> None:
    """Check the audit trail's hash chain; exit 1 naming the first broken entry."""
    from leadvault import audit as trail

    app = load_app()
    with app_session(app) as session:
        verdict = trail.verify(session)
    if verdict.ok:
        click.echo(verdict.describe("Audit trail"))
        return
    click.echo(verdict.describe("Audit trail"), err=True)
    raise SystemExit(1)


def _catalogued(name: str) -> Any:
    """A click callback that takes only a code of ``audit.<name>`` (a typo would match
    no entry and look like an empty trail), naming the valid ones when refusing."""

    def check(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
        from leadvault import audit as trail

        catalogue: type[trail.Catalogued] = getattr(trail, name)
        if value is None or value in catalogue.codes():
            return value
        raise click.BadParameter(f"{value!r} is not one of: {', '.join(sorted(catalogue.codes()))}")

    return check


@audit.command("list")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 200))
@click.option("--actor", help="user:7, cli:root …")
@click.option(
    "--action",
    callback=_catalogued("Action"),
    help="lead.revealed, auth.login_failed … (a wrong one lists them all)",
)
@click.option(
    "--object-type",
    callback=_catalogued("ObjectType"),
    help="lead, form, webhook_endpoint … (a wrong one lists them all)",
)
@click.option("--object", "object_id", help="a lead's id, a form's id …")
def audit_list(
    limit: int,
    actor: str | None,
    action: str | None,
    object_type: str | None,
    object_id: str | None,
) -> None:
    """The newest entries, newest first."""
    from leadvault import audit as trail

    app = load_app()
    filters = trail.Filters(
        actor=actor, action=action, object_type=object_type, object_id=object_id
    )
    with app_session(app) as session:
        for entry in trail.entries(session, filters, limit=limit):
            click.echo(
                f"#{entry.id} {entry.created_at:%Y-%m-%d %H:%M:%S}Z {entry.actor} {entry.action} "
                f"{entry.object_type}:{entry.object_id or '-'} ip={entry.ip_prefix or '-'} "
                f"{entry.detail}"
            )


@cli.group()
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


def register_domain_commands(group: click.Group) -> None:
    import admin.cli
    import capture.cli
    import consent.cli
    import export.cli
    import nurture.cli
    import scoring.cli
    import widgets.cli

    group.add_command(capture.cli.forms)
    group.add_command(consent.cli.consent)
    group.add_command(consent.cli.leads)
    group.add_command(consent.cli.purge)
    group.add_command(widgets.cli.assets)
    group.add_command(scoring.cli.scoring)
    group.add_command(scoring.cli.sales)
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
