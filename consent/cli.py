"""``leadvault consent …``"""

from __future__ import annotations

import click

from leadvault.cli import Refused, app_session, load_app


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
        click.echo(f"Consent ledger intact: {verdict.checked} entries verified.")
        return
    where = f"entry {verdict.broken_id}" if verdict.broken_id is not None else "the end"
    click.echo(
        f"Consent ledger BROKEN at {where}: {verdict.reason} "
        f"({verdict.checked} entries before it verified).",
        err=True,
    )
    raise SystemExit(1)


@consent.command("texts")
def texts() -> None:
    """List purposes and their consent text versions."""
    import sqlalchemy as sa

    from consent.models import ConsentText

    app = load_app()
    with app_session(app) as session:
        rows = session.scalars(
            sa.select(ConsentText).order_by(
                ConsentText.purpose, ConsentText.language, ConsentText.version
            )
        )
        for row in rows:
            click.echo(
                f"{row.purpose:14} {row.language} v{row.version}  {row.sha256[:12]}  {row.text}"
            )


@consent.command("add-text")
@click.option("--purpose", required=True)
@click.option("--lang", "language", required=True, type=click.Choice(["en", "de"]))
@click.option("--text", required=True, help="The exact wording shown next to the checkbox.")
def add_text(purpose: str, language: str, text: str) -> None:
    """Add a new version of a purpose's consent text (old versions stay as they were)."""
    from consent import service

    app = load_app()
    try:
        with app_session(app) as session:
            row = service.add_text(session, purpose=purpose, language=language, text=text)
            click.echo(f"Added {row.purpose} {row.language} v{row.version} ({row.sha256}).")
    except service.ConsentError as exc:
        raise Refused(str(exc)) from None
