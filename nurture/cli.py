"""``leadvault nurture …``, ``leadvault bounces …`` and ``leadvault report nurture``."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import click
from sqlalchemy.exc import OperationalError

from leadvault import i18n
from leadvault.commands import DAY, ROW_ID, ConfigProblem, Refused, app_session, load_app


def _read(path: Path) -> tuple[str, dict[str, str]]:
    """The sequence file and the template files it names (from its folder)."""
    from nurture import parser

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Refused(f"cannot read {path}: {type(exc).__name__}") from None
    folder = path.resolve().parent
    files: dict[str, str] = {}
    for name in parser.file_names(text):
        file = (folder / name).resolve()
        if not file.is_relative_to(folder) or not file.is_file():
            continue  # the parser names the missing file with its line
        try:
            files[name] = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise Refused(f"cannot read {file}: {type(exc).__name__}") from None
    return text, files


def _sequence_error(exc: Exception) -> Refused:
    return Refused(str(exc))


@click.group()
def nurture() -> None:
    """Nurture sequences: load, inspect, preview and test their mails."""


@nurture.command("validate")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def validate(path: Path) -> None:
    """Check a sequence file (and its template files) without storing it."""
    from nurture import parser, sequences

    text, files = _read(path)
    app = load_app()
    try:
        with app_session(app) as session:
            parsed = sequences.validate(session, text, source=str(path), files=files)
    except parser.SequenceError as exc:
        raise _sequence_error(exc) from None
    click.echo(
        f"{path}: sequence {parsed.key!r} is valid ({len(parsed.steps)} steps, "
        f"{len({name for name, _lang in parsed.mails})} mails in {', '.join(parsed.languages)})."
    )


@nurture.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def load(path: Path) -> None:
    """Validate a sequence file and store it as the key's new active version."""
    from nurture import parser, sequences

    text, files = _read(path)
    app = load_app()
    try:
        with app_session(app) as session:
            row = sequences.load(session, text, source=str(path), files=files)
            key, version = row.key, row.version
    except parser.SequenceError as exc:
        raise _sequence_error(exc) from None
    click.echo(f"Sequence {key!r} version {version} is active.")
    if version > 1:
        click.echo(
            "Leads already in it move to this version at their next step when it has a step "
            "of the same name; the others finish on the version they are on."
        )


@nurture.command("list")
def list_() -> None:
    """Stored sequences with their versions and how many leads run in each."""
    from nurture import report, sequences

    app = load_app()
    with app_session(app) as session:
        rows = sequences.versions(session)
        if not rows:
            click.echo("No sequences loaded. Start from nurture/sequence.example.toml.")
            return
        summary = {r.key: r for r in report.nurture(session)}
        for row in rows:
            mark = "*" if row.active else " "
            counts = summary[row.key]
            click.echo(
                f"{mark} {row.key:24} v{row.version:<3} {row.trigger:18} {row.purpose:12} "
                f"loaded {row.loaded_at:%Y-%m-%d %H:%M}  running {counts.running} "
                f"of {counts.entered}  {row.source}"
            )


@nurture.command("show")
@click.argument("key")
@click.option("--version", type=ROW_ID, help="A stored version (default: the active one).")
def show(key: str, version: int | None) -> None:
    """Trigger, audience, exit conditions and steps of a sequence."""
    from nurture import sequences

    app = load_app()
    with app_session(app) as session:
        try:
            row = sequences.row(session, key, version)
        except sequences.SequenceNotFound:
            raise Refused(f"no sequence {key!r}" + (f" v{version}" if version else "")) from None
        parsed = sequences.parsed(row)
    click.echo(f"{parsed.key} v{parsed.version}{' (active)' if row.active else ''}: {parsed.name}")
    click.echo(f"  purpose   {parsed.purpose}; languages {', '.join(parsed.languages)}")
    trigger = {k: v for k, v in vars(parsed.trigger).items() if v is not None}
    click.echo(f"  trigger   {json.dumps(trigger)}")
    audience = {
        k: sorted(v) if isinstance(v, frozenset) else v
        for k, v in vars(parsed.audience).items()
        if v is not None
    }
    click.echo(f"  audience  {json.dumps(audience) if audience else 'everyone'}")
    exit_ = vars(parsed.exit)
    click.echo(f"  exit      {json.dumps({k: v for k, v in exit_.items() if v})}")
    for index, step in enumerate(parsed.steps, start=1):
        extra = ""
        if step.kind == "branch":
            names = [s.name for s in parsed.steps] + ["end"]
            extra = f" -> {names[step.then or 0]} else {names[step.otherwise or 0]}"
        click.echo(f"  {index:2}. {step.name:24} {step.describe()}{extra}")


@nurture.command("disable")
@click.argument("key")
def disable(key: str) -> None:
    """Stop a sequence: nobody enters, running leads leave at their next step."""
    from nurture import sequences

    app = load_app()
    try:
        with app_session(app) as session:
            changed = sequences.disable(session, key)
    except sequences.SequenceNotFound:
        raise Refused(f"no sequence {key!r}") from None
    click.echo(f"Sequence {key!r} disabled." if changed else f"Sequence {key!r} was not active.")


def _mail_args(session: object, key: str, mail: str, lang: str) -> object:
    from nurture import sequences

    try:
        parsed = sequences.parsed(sequences.row(session, key))  # type: ignore[arg-type]
    except sequences.SequenceNotFound:
        raise Refused(f"no sequence {key!r}") from None
    if (mail, lang) not in parsed.mails:
        names = sorted({name for name, _lang in parsed.mails})
        raise Refused(
            f"sequence {key!r} has no mail {mail!r} in {lang!r}; mails: {', '.join(names)}"
        )
    return parsed


@nurture.command("preview")
@click.argument("key")
@click.argument("mail")
@click.option(
    "--lang", type=click.Choice(i18n.LANGUAGES), default=i18n.DEFAULT_LANGUAGE, show_default=True
)
@click.option("--html", "as_html", is_flag=True, help="Print the HTML part instead of the text.")
def preview(key: str, mail: str, lang: str, as_html: bool) -> None:
    """Show a mail as a lead gets it, with sample personal values."""
    from nurture import mails

    app = load_app()
    with app_session(app) as session:
        parsed = _mail_args(session, key, mail, lang)
        content = mails.preview(session, parsed, mail, lang)  # type: ignore[arg-type]
    click.echo(f"Subject: {content.subject}")
    click.echo("")
    click.echo(content.html if as_html else content.text)


@nurture.command("test-send")
@click.argument("key")
@click.argument("mail")
@click.option("--to", "to", required=True, help="Your own address.")
@click.option(
    "--lang", type=click.Choice(i18n.LANGUAGES), default=i18n.DEFAULT_LANGUAGE, show_default=True
)
def test_send(key: str, mail: str, to: str, lang: str) -> None:
    """Queue the preview of a mail to your own address (the worker sends it)."""
    from email_validator import EmailNotValidError, validate_email

    from nurture import mails

    try:
        validate_email(to, check_deliverability=False)
    except EmailNotValidError:
        raise ConfigProblem("--to is not a valid address") from None
    app = load_app()
    with app_session(app) as session:
        parsed = _mail_args(session, key, mail, lang)
        mails.send_test(session, parsed, mail, lang, to)  # type: ignore[arg-type]
    click.echo("Test mail queued; `leadvault worker --once` (or the running worker) sends it.")


@nurture.command("tick")
def tick_now() -> None:
    """Run the due steps now (the worker does this every 30 seconds)."""
    from nurture import tick

    app = load_app()
    with app_session(app) as session:
        result = tick.run(session)
    click.echo(
        f"due {result.due}: sent {result.sent}, held by cap or quiet hours {result.held}, "
        f"waiting {result.waiting}, completed {result.completed}, exited {result.exited}"
    )


@nurture.command("lead")
@click.option("--email", required=True, help="The lead's address (not logged).")
def lead(email: str) -> None:
    """A lead's sequences, nurture mails, clicks and bounce suppression."""
    from leadvault import leads
    from nurture import report

    app = load_app()
    with app_session(app) as session:
        found = leads.find_by_email(session, email)
        if found is None:
            raise Refused("no lead with this address")
        click.echo(json.dumps(report.lead_overview(session, found), indent=2))


@click.group()
def bounces() -> None:
    """Inbound bounces (DSN) and complaints (ARF)."""


@bounces.command("ingest")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the message from this file instead of standard input.",
)
def ingest(path: Path | None) -> None:
    """Read one message (an MTA pipe) and act on a bounce or a complaint in it.

    Exits 0 for anything that is not a report, so the MTA does not bounce it
    again; 75 (temporary failure: the MTA retries) when the database is away."""
    from nurture import bounces as service

    raw = path.read_bytes() if path is not None else sys.stdin.buffer.read()
    app = load_app()
    try:
        with app_session(app) as session:
            outcome = service.ingest(session, raw)
    except OperationalError:
        click.echo("Error: database does not answer; try again later", err=True)
        sys.exit(75)
    click.echo(outcome.describe())


@bounces.command("poll")
def poll() -> None:
    """Ingest the unseen messages of LEADVAULT_BOUNCE_IMAP_URL once."""
    import imaplib

    from nurture import bounces as service

    app = load_app()
    from leadvault.app import runtime

    config = runtime(app).settings.bounce_imap_url
    if config is None:
        raise ConfigProblem("LEADVAULT_BOUNCE_IMAP_URL is not set")
    try:
        with app_session(app) as session:
            counts = service.poll(session, config)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise Refused(f"IMAP {config.host}: {type(exc).__name__}") from None
    click.echo(", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "no new messages")


@click.command("nurture")
@click.option("--sequence", "key", help="Only this sequence.")
@click.option(
    "--since",
    type=DAY,
    help="Runs entered and mails queued on or after this day (UTC).",
)
def report_nurture(key: str | None, since: dt.datetime | None) -> None:
    """Per sequence and step: entered, sent, clicked, unsubscribed, bounced, MQL, handed off."""
    from nurture import report

    app = load_app()
    with app_session(app) as session:
        result = report.nurture(
            session, key=key, since=since.replace(tzinfo=dt.UTC) if since else None
        )
    if key and not result:
        raise Refused(f"no sequence {key!r}")
    for line in report.as_lines(result):
        click.echo(line)
