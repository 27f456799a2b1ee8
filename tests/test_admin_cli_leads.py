"""CLI parity (issue 11.6): `leadvault leads list/show/export-one` use the API's services;
decrypted data only with --reveal, audited as the person at the command line."""

from __future__ import annotations

import json

from click.testing import CliRunner

from leadvault import audit
from leadvault.cli import cli
from tests import factories
from tests.factories import uow


def _run(app, *args):
    return CliRunner().invoke(cli, list(args), obj=app)


def _entries(app, action):
    with uow(app) as s:
        return audit.entries(s, audit.Filters(action=action))


def test_list_show_reveal_export(app, tmp_path):
    email = factories.unique_email("cli")
    lead_id = factories.lead(app, email, profile={"first_name": "Grace"})
    factories.lead(app)

    listed = _run(app, "leads", "list", "--limit", "1")
    assert listed.exit_code == 0, listed.output
    assert "more: --cursor " in listed.output and "@" not in listed.output
    cursor = listed.output.split("--cursor ")[1].strip()
    rest = _run(app, "leads", "list", "--cursor", cursor)
    assert str(lead_id) in rest.output and "newsletter=granted" in rest.output
    bad = _run(app, "leads", "list", "--cursor", "garbage")
    assert bad.exit_code == 1 and "cursor" in bad.output

    shown = _run(app, "leads", "show", str(lead_id))
    assert shown.exit_code == 0
    assert "stage new" in shown.output and "consent newsletter: granted" in shown.output
    assert email not in shown.output and "Grace" not in shown.output
    assert not _entries(app, "lead.revealed")

    revealed = _run(app, "leads", "show", "--email", email, "--reveal")
    assert revealed.exit_code == 0
    assert f"email {email}" in revealed.output and "first_name Grace" in revealed.output
    (entry,) = _entries(app, "lead.revealed")
    assert entry.actor == audit.cli_actor() and entry.object_id == str(lead_id)

    target = tmp_path / "lead.json"
    exported = _run(app, "leads", "export-one", str(lead_id), "--output", str(target))
    assert exported.exit_code == 0, exported.output
    assert json.loads(target.read_text())["lead"]["email"] == email
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    assert len(_entries(app, "lead.exported")) == 1

    assert _run(app, "leads", "show", "not-a-uuid").exit_code == 1
    assert _run(app, "leads", "show").exit_code == 1
    missing = _run(app, "leads", "show", "--email", "nobody@example.org")
    assert missing.exit_code == 1 and "no such lead" in missing.output


def test_list_refuses_a_stage_that_does_not_exist(app):
    """``--stage MQL`` (or a typo) matched no lead and listed nothing, exit 0, as if there
    were no such leads; like ``--reached`` it is refused naming the stages (a usage error,
    exit 2, as every unknown code: tests/test_cli_choices.py)."""
    for args in (("--stage", "MQL"), ("--stage", "mql", "--stage", "bogus"), ("--reached", "x")):
        result = _run(app, "leads", "list", *args)
        assert result.exit_code == 2, (args, result.output)
        assert "is not one of: new, mql, sal, sql, won, lost" in result.output
    assert _run(app, "leads", "list", "--stage", "mql").exit_code == 0
