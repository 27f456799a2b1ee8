"""``leadvault consent …``"""

from __future__ import annotations

import click

from leadvault import i18n
from leadvault.commands import Refused, app_session, load_app
from leadvault.untrusted import for_terminal


@click.group()
def consent() -> None:
    """Consent ledger and texts."""


@consent.command("verify")
def verify() -> None:
    """Check the ledger's hash chain; exit 1 naming the first broken entry."""
    from consent import ledger

    app = load_app()
    with app_session(app) as session:
        verdict = ledger.verify(session)
    if verdict.ok:
        click.echo(verdict.describe("Consent ledger"))
        return
    click.echo(verdict.describe("Consent ledger"), err=True)
    raise SystemExit(1)


@consent.command("texts")
def texts() -> None:
    """List purposes and their consent text versions (newest first per language)."""
    from consent import texts as consent_texts

    app = load_app()
    with app_session(app) as session:
        for entry in consent_texts.overview(session):
            for language, rows in entry.versions.items():
                for row in rows:
                    text = for_terminal(row.text)
                    click.echo(
                        f"{row.purpose:14} {language} v{row.version}  {row.sha256[:12]}  {text}"
                    )


@consent.command("add-text")
@click.option("--purpose", required=True)
@click.option("--lang", "language", required=True, type=click.Choice(i18n.LANGUAGES))
@click.option("--text", required=True, help="The exact wording shown next to the checkbox.")
@click.option(
    "--keep-forms",
    is_flag=True,
    help="Leave forms on the version they show (default: they show the new one from now).",
)
def add_text(purpose: str, language: str, text: str, keep_forms: bool) -> None:
    """Add a new version of a purpose's consent text (old versions stay as they were)."""
    from consent import service
    from consent import texts as consent_texts

    app = load_app()
    try:
        with app_session(app) as session:
            published = consent_texts.publish(
                session, purpose=purpose, language=language, text=text, adopt=not keep_forms
            )
            row = published.text
            click.echo(f"Added {row.purpose} {row.language} v{row.version} ({row.sha256}).")
            if published.forms_moved:
                click.echo(f"Forms now showing it: {', '.join(published.forms_moved)}")
    except service.ConsentError as exc:
        raise Refused(str(exc)) from None


@consent.command("proof")
@click.option("--email", required=True, help="The lead's address (not stored in any log).")
def proof(email: str) -> None:
    """Print a lead's consent history with hashes, for an authority."""
    from consent import ledger
    from leadvault import leads

    app = load_app()
    with app_session(app) as session:
        lead = leads.find_by_email(session, email)
        if lead is None:
            raise Refused("no lead with this address (it may have been erased)")
        entries = ledger.history(session, str(lead.id))
        verdict = ledger.verify(session)
        click.echo(f"Consent proof for lead {lead.id}")
        click.echo(
            f"Ledger chain: {'intact' if verdict.ok else 'BROKEN'} ({verdict.checked} entries)"
        )
        click.echo("")
        for entry in entries:
            click.echo(
                f"#{entry.id} {entry.created_at:%Y-%m-%d %H:%M:%S}Z {entry.event:9} "
                f"purpose={entry.purpose or '-'} form={entry.form_ref or '-'} "
                f"text=v{entry.text_version or '-'} sha256={entry.text_sha256 or '-'} "
                f"ip={entry.ip_prefix or '-'}"
            )
            click.echo(f"    prev={entry.prev_hash}  hash={entry.entry_hash}")


@click.group()
def leads() -> None:
    """Leads: list, show (--reveal), export one, erase (requests by letter or phone)."""


@leads.command("erase")
@click.option("--email", required=True, help="The address to erase.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def erase(email: str, yes: bool) -> None:
    """Erase a lead (Art. 17): crypto-shred its data key and delete its rows."""
    from consent import rights
    from leadvault import audit

    if not yes:
        click.confirm("Erase everything held about this address? This cannot be undone", abort=True)
    app = load_app()
    with app_session(app) as session:
        found = rights.erase_by_email(session, email, actor=audit.cli_actor())
    if not found:
        raise Refused("no lead with this address")
    click.echo("Erased. A suppression entry keeps the address from being imported again.")


@click.command()
def purge() -> None:
    """Apply the retention rules now (the worker also runs this every hour)."""
    from consent import retention

    app = load_app()
    with app_session(app) as session:
        counts = retention.purge(session)
    for name, value in counts.items():
        click.echo(f"{name.replace('_', ' ')}: {value}")
