"""``leadvault api-tokens``: tokens for the JSON API (``leadvault.api``)."""

from __future__ import annotations

import click

from leadvault.commands import Refused, app_session, load_app


@click.group("api-tokens")
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
