"""``leadvault scoring …`` and ``leadvault report funnel`` (``leadvault sales …`` is
``scoring.sales_cli``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from leadvault.commands import DAY, Refused, app_session, codes_of, load_app, report
from leadvault.untrusted import for_terminal


def _stages() -> list[str]:
    from scoring.models import Stage

    return [stage.value for stage in Stage]


def _grades() -> list[str]:
    from scoring.rule_model import GRADES

    return list(GRADES)


# Options that filter leads by stage or grade (``leads list``, ``export``): exactly one
# of the codes, else exit 2 naming them (``--stage MQL`` selected nothing, silently).
STAGE_CODES = codes_of(_stages)
GRADE_CODES = codes_of(_grades)


@click.group()
def scoring() -> None:
    """Scoring rules and scores."""


@scoring.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--allow-empty",
    is_flag=True,
    help="Load a file without any [[engagement]] or [[fit]] rule (every lead scores 0).",
)
def load(path: Path, allow_empty: bool) -> None:
    """Validate a rules file, make it the active version and re-grade every lead."""
    from leadvault import audit
    from scoring import rules, rulesets, unrouted

    app = load_app()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Refused(f"cannot read {path}: {type(exc).__name__}") from None
    try:
        with app_session(app) as session:
            row = rulesets.activate(
                session, text, actor=audit.cli_actor(), source=str(path), allow_empty=allow_empty
            )
            version, sha = row.version, row.sha256
            # Loaded anyway: the people may be added or changed next (either order).
            warning = unrouted.warning(unrouted.in_text(session, text))
    except rules.RulesError as exc:
        raise Refused(str(exc)) from None
    except rulesets.NoScoringRules as exc:
        raise Refused(f"{path}: {exc}; nothing loaded (--allow-empty loads it anyway)") from None
    click.echo(f"Rules version {version} active ({sha[:12]}); every lead re-graded.")
    if warning:
        click.echo(for_terminal(warning), err=True)


@scoring.command("dry-run")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--limit", default=20000, show_default=True, type=click.IntRange(1, 100000))
def dry_run(path: Path, limit: int) -> None:
    """How many leads a rules file would move (grade, MQL) if loaded; writes nothing."""
    from scoring import rules, rulesets

    app = load_app()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Refused(f"cannot read {path}: {type(exc).__name__}") from None
    problem = rulesets.validate(text)
    if problem is not None:
        raise Refused(f"{path}:{problem.line or 1}: {problem.reason()}")
    try:
        with app_session(app) as session:
            result = rulesets.dry_run(session, text, limit=limit)
    except rules.RulesError as exc:
        raise Refused(str(exc)) from None
    scope = "all" if result.complete else f"the first {result.checked} of {result.total}"
    click.echo(f"Checked {scope} leads:")
    click.echo(f"  {result.grade_changes} would change grade  {result.grade_moves or ''}")
    click.echo(f"  {result.promotions} would become MQL")
    click.echo(f"  {result.score_changes} would change score")


@scoring.command("versions")
def versions() -> None:
    """List stored rule versions."""
    from scoring import rules

    app = load_app()
    with app_session(app) as session:
        for row in rules.versions(session):
            mark = "*" if row.active else " "
            loaded = f"{row.loaded_at:%Y-%m-%d %H:%M}"
            click.echo(
                f"{mark} v{row.version}  {loaded}  {row.sha256[:12]}  {for_terminal(row.source)}"
            )


@scoring.command("recompute")
@click.option("--chunk", default=2000, show_default=True, type=click.IntRange(1, 50000))
def recompute(chunk: int) -> None:
    """Recompute every lead's score, breakdown and fit under the active rules."""
    from leadvault.app import runtime
    from leadvault.db import unit_of_work
    from scoring import recompute as service

    app = load_app()
    factory = runtime(app).session_factory
    with app.app_context():
        with unit_of_work(factory) as session:
            ids = service.lead_ids(session)
        with click.progressbar(length=len(ids), label="Recomputing scores") as bar:
            for start in range(0, len(ids), chunk):
                with unit_of_work(factory) as session:
                    bar.update(service.recompute_chunk(session, ids[start : start + chunk]))
    click.echo(f"{len(ids)} leads recomputed.")


@scoring.command("explain")
@click.option("--email", required=True, help="The lead's address (not logged).")
def explain(email: str) -> None:
    """Why a lead has its score: each rule's share, summing to the score; its stage and grade."""
    from leadvault import leads
    from scoring import rules, scores
    from scoring.models import LeadScore, Stage

    app = load_app()
    with app_session(app) as session:
        lead = leads.find_by_email(session, email)
        if lead is None:
            raise Refused("no lead with this address")
        result = scores.explain(session, lead.id, rules.active(session))
        state = session.get(LeadScore, lead.id)
        click.echo(f"score {result.score:.2f}")
        click.echo(f"stage {state.stage if state is not None else Stage.NEW.value}")
        grade = state.fit_grade if state is not None else "D"
        flags = ", ".join(state.flags or []) if state is not None else ""
        click.echo(f"grade {grade}" + (f"  ({flags})" if flags else ""))
        for rule, value in sorted(result.breakdown.items(), key=lambda kv: -abs(kv[1])):
            click.echo(f"  {rule:24} {value:8.2f}")


@report.command("funnel")
@click.option(
    "--since",
    required=True,
    type=DAY,
    help="Leads created on or after this day (UTC).",
)
def funnel(since: dt.datetime) -> None:
    """Counts and conversion per stage, by form and UTM, with reject reasons."""
    from scoring import report as service

    app = load_app()
    with app_session(app) as session:
        result = service.funnel(session, since.replace(tzinfo=dt.UTC))
        for line in service.as_lines(result):
            click.echo(for_terminal(line))
