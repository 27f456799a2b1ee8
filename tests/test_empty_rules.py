"""A rules file without one scoring rule (empty, comments only, truncated to its
settings) would re-grade every lead to score 0, grade D. The command line, the API and
the console refuse to activate it unless told so explicitly; both databases."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from leadvault.cli import cli
from scoring import rules, rulesets
from scoring.models import LeadScore
from tests import factories
from tests.test_scoring import cli_env, contact_form
from tests.test_scoring_admin import EXAMPLE, _graded_lead, _owner

uow = factories.uow
# What a slip of the hand loads: nothing, a comment, the settings without a rule.
EMPTY_FILES = ["", "# to do\n", "[stages]\nmql_score = 20\n"]


def _versions(app) -> list[int]:
    with uow(app) as s:
        return [row.version for row in rules.versions(s)]


def _score(app, lead_id) -> float:
    with uow(app) as s:
        return s.get(LeadScore, lead_id).score


@pytest.mark.parametrize("text", EMPTY_FILES)
def test_scoring_load_refuses_a_file_without_a_scoring_rule(app, tmp_path, text):
    lead_id = _graded_lead(app, contact_form(app))
    before = _score(app, lead_id)
    assert before > 0
    path = tmp_path / "rules.toml"
    path.write_text(text)
    runner = CliRunner()
    refused = runner.invoke(cli, ["scoring", "load", str(path)], env=cli_env(app), obj=app)
    assert refused.exit_code == 1, refused.output  # understood, refused
    assert "no scoring rule" in refused.output and str(path) in refused.output
    assert "--allow-empty" in refused.output
    assert _versions(app) == [] and _score(app, lead_id) == before

    loaded = runner.invoke(
        cli, ["scoring", "load", "--allow-empty", str(path)], env=cli_env(app), obj=app
    )
    assert loaded.exit_code == 0, loaded.output
    assert _versions(app) == [1] and _score(app, lead_id) == 0


def test_a_real_file_loads_without_the_flag_and_a_bad_one_still_names_its_line(app, tmp_path):
    runner = CliRunner()
    path = tmp_path / "rules.toml"
    path.write_text("[[fit]]\n")
    refused = runner.invoke(
        cli, ["scoring", "load", "--allow-empty", str(path)], env=cli_env(app), obj=app
    )
    assert refused.exit_code == 1 and f"{path}:" in refused.output
    assert "no scoring rule" not in refused.output
    path.write_text(EXAMPLE)
    loaded = runner.invoke(cli, ["scoring", "load", str(path)], env=cli_env(app), obj=app)
    assert loaded.exit_code == 0, loaded.output


def test_the_api_refuses_activating_or_restoring_rules_without_a_scoring_rule(app):
    client, headers, _ = _owner(app, "marketing")
    url = "/api/v1/scoring/rules/activate"
    for text in EMPTY_FILES[1:]:  # "" is refused by the schema already
        refused = client.post(url, json={"text": text}, headers=headers)
        assert refused.status_code == 422, refused.get_json()
        assert refused.mimetype == "application/problem+json"
        assert "no scoring rule" in refused.get_json()["errors"]["text"][0]
        assert "allow_empty" in refused.get_json()["detail"]
    assert _versions(app) == []
    for wrong in ("yes", None, [True]):
        odd = client.post(url, json={"text": "# x\n", "allow_empty": wrong}, headers=headers)
        assert odd.status_code == 422 and _versions(app) == []
    empty = client.post(url, json={"text": "# x\n", "allow_empty": True}, headers=headers)
    assert empty.status_code == 201 and empty.get_json()["version"] == 1
    assert client.post(url, json={"text": EXAMPLE}, headers=headers).status_code == 201
    # Making the empty version active again is the same decision, asked again.
    restore = client.post(url, json={"version": 1}, headers=headers)
    assert restore.status_code == 422
    assert "no scoring rule" in restore.get_json()["errors"]["version"][0]
    assert _versions(app) == [1, 2]
    again = client.post(url, json={"version": 1, "allow_empty": True}, headers=headers)
    assert again.status_code == 201 and again.get_json()["version"] == 3


def test_the_console_asks_before_activating_rules_without_a_scoring_rule(app):
    client, _user_id = factories.signed_in_client(app, "marketing")
    csrf = factories.csrf_token(client, "/console/scoring")
    text = "# to do\n"
    confirm = client.post("/console/scoring/confirm", data={"text": text, "csrf_token": csrf})
    html = confirm.get_data(as_text=True)
    assert confirm.status_code == 200 and 'id="confirm-scores-nothing"' in html
    # Required, and submitted with the activate form (it stands above both buttons).
    box = re.search(
        r'<input type="checkbox" name="allow_empty" value="1" required form="([^"]+)">', html
    )
    assert box and f'id="{box.group(1)}"' in html
    refused = client.post("/console/scoring/activate", data={"text": text, "csrf_token": csrf})
    assert refused.status_code == 422
    assert 'id="rules-problem"' in refused.get_data(as_text=True)
    assert "no scoring rule" in refused.get_data(as_text=True)
    assert _versions(app) == []
    done = client.post(
        "/console/scoring/activate", data={"text": text, "csrf_token": csrf, "allow_empty": "1"}
    )
    assert done.status_code == 302 and _versions(app) == [1]

    with uow(app) as s:
        rulesets.activate(s, EXAMPLE, actor="user:1")
    # A full file shows no warning; restoring the empty version asks again.
    plain = client.post("/console/scoring/confirm", data={"text": EXAMPLE, "csrf_token": csrf})
    assert 'id="confirm-scores-nothing"' not in plain.get_data(as_text=True)
    page = client.get("/console/scoring/versions/1/restore").get_data(as_text=True)
    assert 'id="confirm-scores-nothing"' in page
    restore = client.post("/console/scoring/versions/1/restore", data={"csrf_token": csrf})
    assert restore.status_code == 422 and _versions(app) == [1, 2]
    restored = client.post(
        "/console/scoring/versions/1/restore", data={"csrf_token": csrf, "allow_empty": "1"}
    )
    assert restored.status_code == 302 and _versions(app) == [1, 2, 3]
