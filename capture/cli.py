"""``leadvault forms …``"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import click

from leadvault.commands import DAY, Refused, app_session, load_app, refuse_empty_span, report
from leadvault.untrusted import for_terminal

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from capture.models import Form
    from leadvault.audit import Action


def _parse_specs(values: tuple[str, ...], what: str) -> list[tuple[str, bool]]:
    """``name`` is optional, ``name!`` is required."""
    specs = []
    for value in values:
        name = value.rstrip("!").strip()
        if not name:
            raise Refused(f"empty {what} name")
        specs.append((name, value.endswith("!")))
    return specs


@click.group()
def forms() -> None:
    """Forms that website owners embed."""


@forms.command("add")
@click.option("--name", required=True, help="A name for you, never shown to visitors.")
@click.option("--kind", type=click.Choice(["newsletter", "whitepaper", "contact"]), required=True)
@click.option(
    "--field",
    "fields",
    multiple=True,
    help="A field besides email; append ! to require it (e.g. --field first_name!).",
)
@click.option(
    "--purpose",
    "purposes",
    multiple=True,
    help="A consent purpose; append ! to require it. Default: the kind's own purpose.",
)
@click.option("--origin", "origins", multiple=True, help="An origin allowed to embed and post.")
@click.option("--title-en", help="Title visitors see in English (the hosted page's heading).")
@click.option("--title-de", help="Title visitors see in German.")
@click.option("--intro-en", help="Intro text under the title in English.")
@click.option("--intro-de", help="Intro text under the title in German.")
@click.option("--thanks-en", help="Thank-you text in English.")
@click.option("--thanks-de", help="Thank-you text in German.")
@click.option(
    "--redirect", "redirect_url", help="Send visitors here after submitting (an allowed origin)."
)
@click.option("--proof-of-work", is_flag=True, help="Require an ALTCHA proof-of-work challenge.")
@click.option("--follow-up", "follow_ups", multiple=True, help="A field asked of returning leads.")
def add(
    name: str,
    kind: str,
    fields: tuple[str, ...],
    purposes: tuple[str, ...],
    origins: tuple[str, ...],
    redirect_url: str | None,
    proof_of_work: bool,
    follow_ups: tuple[str, ...],
    **texts: str | None,
) -> None:
    """Create a form and print its id and embed snippets."""
    from marshmallow import ValidationError

    from capture import definition_service, definitions, schemas
    from leadvault import i18n

    def per_language(part: str) -> dict[str, str]:
        return {lang: v for lang in i18n.LANGUAGES if (v := texts.get(f"{part}_{lang}"))}

    raw: dict[str, object] = {
        "name": name,
        "kind": kind,
        "fields": [{"name": n, "required": r} for n, r in _parse_specs(fields, "field")],
        "allowed_origins": list(origins),
        "title": per_language("title"),
        "intro": per_language("intro"),
        "thank_you": per_language("thanks"),
        "redirect_url": redirect_url,
        "proof_of_work": proof_of_work,
        "follow_up_fields": list(follow_ups),
    }
    if purposes:
        raw["purposes"] = [
            {"purpose": n, "required": r} for n, r in _parse_specs(purposes, "purpose")
        ]
    try:
        loaded = schemas.FormDefinitionSchema().load(raw)
    except ValidationError as exc:
        raise Refused(_first_problem(exc.messages)) from None
    app = load_app()
    try:
        with app_session(app) as session:
            form = definition_service.create_form(session, schemas.definition_from(loaded))
            public_id = form.public_id
    except definitions.FormError as exc:
        raise Refused(str(exc)) from None
    _print_form(app, public_id)


def _first_problem(messages: object, where: str = "") -> str:
    """``--field``: the message of the first refused option, for a one-line refusal."""
    if isinstance(messages, dict):
        key, value = next(iter(messages.items()))
        return _first_problem(value, where or str(key))
    if isinstance(messages, list) and messages:
        return _first_problem(messages[0], where)
    return f"{where.replace('_', '-')}: {messages}"


@forms.command("archive")
@click.argument("form_id")
def archive(form_id: str) -> None:
    """Archive a form: it takes no more submissions (its history stays)."""
    from capture import definition_service
    from leadvault import audit

    app = load_app()
    with app_session(app) as session:
        form = _form(session, form_id)
        changed = definition_service.archive_form(session, form)
        if changed:
            _audit(session, audit.Action.FORM_ARCHIVED, form.public_id)
    click.echo(f"{form_id} archived" if changed else f"{form_id} was already archived")


@forms.command("delete")
@click.argument("form_id")
def delete(form_id: str) -> None:
    """Delete a form that never took a submission (else archive it)."""
    from capture import definition_service, definitions
    from leadvault import audit

    app = load_app()
    try:
        with app_session(app) as session:
            form = _form(session, form_id)
            public_id = form.public_id
            definition_service.delete_form(session, form)
            _audit(session, audit.Action.FORM_DELETED, public_id)
    except definitions.FormInUse as exc:
        raise Refused(f"{exc} (leadvault forms archive {form_id})") from None
    click.echo(f"{form_id} deleted")


def _audit(session: Session, action: Action, public_id: str) -> None:
    """The same audit entries as the console's and the API's, by the person at the shell."""
    from leadvault import audit

    audit.record(
        session,
        actor=audit.cli_actor(),
        action=action,
        object_type=audit.ObjectType.FORM,
        object_id=public_id,
    )


def _form(session: Session, public_id: str) -> Form:
    """A form by its public id, archived ones too."""
    import sqlalchemy as sa

    from capture.models import Form

    found = session.scalars(sa.select(Form).where(Form.public_id == public_id[:32])).one_or_none()
    if found is None:
        raise Refused(f"no form with id {public_id!r}")
    return found


def _print_form(app: object, public_id: str) -> None:
    from capture import service
    from leadvault.app import runtime

    rt = runtime(app)  # type: ignore[arg-type]
    with app_session(app) as session:  # type: ignore[arg-type]
        form = service.get_form(session, public_id)
        if form is None:
            raise Refused(f"no form with id {public_id!r}")
        fields = ", ".join(f["name"] + ("!" if f["required"] else "") for f in form.fields)
        purposes = ", ".join(p["purpose"] + ("!" if p["required"] else "") for p in form.purposes)
        click.echo(f"id           {form.public_id}")
        click.echo(f"name         {for_terminal(form.name)} ({form.kind})")
        click.echo(f"fields       email!{', ' + fields if fields else ''}")
        click.echo(f"purposes     {purposes}")
        click.echo(f"origins      {', '.join(form.allowed_origins) or '(only the hosted page)'}")
        if form.redirect_url:
            click.echo(f"redirect     {for_terminal(form.redirect_url)}")
        if form.proof_of_work:
            click.echo("proof of work  on")
        for label, snippet in service.embed_snippets(session, form, rt.settings.base_url):
            click.echo(f"\n{label}:\n{snippet}")


@forms.command("list")
def list_() -> None:
    """List all forms."""
    from capture import service

    app = load_app()
    with app_session(app) as session:
        rows = service.list_forms(session)
        if not rows:
            click.echo("No forms yet. Create one with `leadvault forms add`.")
        for form in rows:
            state = "" if form.active else "  (inactive)"
            click.echo(f"{form.public_id}  {form.kind:10}  {for_terminal(form.name)}{state}")


@forms.command("show")
@click.argument("form_id")
def show(form_id: str) -> None:
    """Show one form with its embed snippets."""
    _print_form(load_app(), form_id)


@report.command("bots")
@click.option(
    "--since",
    required=True,
    type=DAY,
    help="From this day (UTC).",
)
@click.option("--until", type=DAY, help="To this day, inclusive.")
def bots_report(since: dt.datetime, until: dt.datetime | None) -> None:
    """Bot verdicts per day, form and reason, and what became of the submissions."""
    from capture import service

    refuse_empty_span(("--since", since), ("--until", until), last_included=True)
    app = load_app()
    with app_session(app) as session:
        rows = service.bot_report(session, since.date(), until.date() if until else None)
        names = {form.public_id: form.name for form in service.list_forms(session)}
    if not rows:
        click.echo("No bot verdicts in this time.")
        return
    click.echo(f"{'day':10}  {'form':16}  {'reason':13}  {'count':>6}  outcome   form name")
    for row in rows:
        name = for_terminal(names.get(row.form, ""))
        click.echo(
            f"{row.day.isoformat():10}  {row.form:16}  {row.reason:13}  {row.count:6}  "
            f"{row.outcome:8}  {name}"
        )
