"""``leadvault forms …``"""

from __future__ import annotations

import datetime as dt

import click

from leadvault.commands import Refused, app_session, load_app, report
from leadvault.untrusted import for_terminal


def snippets(base_url: str, public_id: str) -> dict[str, str]:
    hosted = f"{base_url}/f/{public_id}"
    return {
        "hosted": hosted,
        "iframe": (
            # Size attributes, not a style attribute: a strict host CSP blocks inline styles.
            f'<iframe src="{hosted}" title="Leadvault form" loading="lazy" '
            'width="100%" height="512"></iframe>'
        ),
    }


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
@click.option("--thanks-en", help="Thank-you text in English.")
@click.option("--thanks-de", help="Thank-you text in German.")
@click.option("--redirect", "redirect_url", help="Send visitors here after submitting instead.")
@click.option("--proof-of-work", is_flag=True, help="Require an ALTCHA proof-of-work challenge.")
@click.option("--follow-up", "follow_ups", multiple=True, help="A field asked of returning leads.")
def add(
    name: str,
    kind: str,
    fields: tuple[str, ...],
    purposes: tuple[str, ...],
    origins: tuple[str, ...],
    thanks_en: str | None,
    thanks_de: str | None,
    redirect_url: str | None,
    proof_of_work: bool,
    follow_ups: tuple[str, ...],
) -> None:
    """Create a form and print its id and embed snippets."""
    from capture import service

    default_purpose = {
        "newsletter": "newsletter!",
        "whitepaper": "whitepaper!",
        "contact": "sales_contact!",
    }
    thank_you = {k: v for k, v in {"en": thanks_en, "de": thanks_de}.items() if v}
    app = load_app()
    try:
        with app_session(app) as session:
            form = service.create_form(
                session,
                name=name,
                kind=kind,
                fields=[service.FieldSpec(n, r) for n, r in _parse_specs(fields, "field")],
                purposes=[
                    service.PurposeSpec(n, r)
                    for n, r in _parse_specs(purposes or (default_purpose[kind],), "purpose")
                ],
                allowed_origins=origins,
                thank_you=thank_you or None,
                redirect_url=redirect_url,
                proof_of_work=proof_of_work,
                follow_up_fields=follow_ups,
            )
            public_id = form.public_id
    except service.FormError as exc:
        raise Refused(str(exc)) from None
    _print_form(app, public_id)


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
        from capture.signals import form_snippets

        shown = list(snippets(rt.settings.base_url, form.public_id).items())
        for _receiver, extra in form_snippets.send(session, form=form):
            shown.extend(extra or [])
        for label, snippet in shown:
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
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="From this day (YYYY-MM-DD, UTC).",
)
@click.option("--until", type=click.DateTime(formats=["%Y-%m-%d"]), help="To this day, inclusive.")
def bots_report(since: dt.datetime, until: dt.datetime | None) -> None:
    """Bot verdicts per day, form and reason, and what became of the submissions."""
    from capture import service

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
