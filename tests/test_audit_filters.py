"""The trail's filters take only the catalogue's codes (``leadvault audit list`` and
``GET /api/v1/audit`` refuse a typo naming the valid ones, instead of an empty list that
looks like a quiet trail), and the API's entries carry each code's label, in the
request's language, as the console shows it."""

from __future__ import annotations

import sqlalchemy as sa
from click.testing import CliRunner

from leadvault import audit
from leadvault.cli import cli
from leadvault.models import AuditEntry
from tests import factories
from tests.factories import uow


def _bearer(app, role="privacy"):
    return {"Authorization": f"Bearer {factories.personal_token(app, role)}"}


def test_cli_refuses_an_action_or_object_type_not_in_the_catalogue(app):
    with uow(app) as s:
        audit.record(s, actor="cli:ops", action=audit.Action.FORM_ARCHIVED, object_type="form")
    runner = CliRunner()
    typo = runner.invoke(cli, ["audit", "list", "--action", "form.archive"], obj=app)
    assert typo.exit_code == 2, typo.output
    assert "'form.archive' is not one of:" in typo.output and "form.archived" in typo.output
    kind = runner.invoke(cli, ["audit", "list", "--object-type", "forms"], obj=app)
    assert kind.exit_code == 2 and "'forms' is not one of:" in kind.output
    assert "webhook_endpoint" in kind.output
    found = runner.invoke(
        cli, ["audit", "list", "--action", "form.archived", "--object-type", "form"], obj=app
    )
    assert found.exit_code == 0 and "form.archived form:-" in found.output
    other = runner.invoke(cli, ["audit", "list", "--object-type", "lead"], obj=app)
    assert other.exit_code == 0 and other.output == ""


def test_api_refuses_an_action_or_object_type_not_in_the_catalogue(app, client):
    headers = _bearer(app)
    for field, typo, valid in (
        ("action", "form.archive", "form.archived"),
        ("object_type", "forms", "webhook_endpoint"),
    ):
        refused = client.get(f"/api/v1/audit?{field}={typo}", headers=headers)
        assert refused.status_code == 422, refused.get_data(as_text=True)
        assert refused.mimetype == "application/problem+json"
        body = refused.get_json()
        assert body["detail"] and list(body["errors"]) == [field]
        assert valid in body["errors"][field][0]  # the valid ones, named
    assert client.get("/api/v1/audit?action=form.archived", headers=headers).status_code == 200
    # The document lists the accepted values.
    spec = client.get("/api/v1/openapi.json").get_json()
    parameters = {p["name"]: p for p in spec["paths"]["/audit"]["get"]["parameters"]}
    assert parameters["action"]["schema"]["enum"] == audit.Action.codes()
    assert parameters["object_type"]["schema"]["enum"] == audit.ObjectType.codes()
    entry = spec["components"]["schemas"]["AuditEntry"]
    assert {"action_label", "object_type_label"} <= set(entry["required"])


def test_api_entries_carry_the_labels_in_the_requests_language(app, client):
    headers = _bearer(app)  # before the entries: making it is one
    with uow(app) as s:
        audit.record(s, actor="cli:ops", action=audit.Action.FORM_ARCHIVED, object_type="form")
        older = audit.record(s, actor="cli:ops", action=audit.Action.LOGIN, object_type="user")
        # An entry older than its catalogue (its code renamed since) shows its code.
        s.execute(
            sa.update(AuditEntry).where(AuditEntry.id == older.id).values(action="auth.signin")
        )
    english = client.get("/api/v1/audit?limit=2", headers=headers).get_json()
    german = client.get(
        "/api/v1/audit?limit=2", headers={**headers, "Accept-Language": "de"}
    ).get_json()
    assert [(r["action"], r["action_label"], r["object_type_label"]) for r in english] == [
        ("auth.signin", "auth.signin", "Account"),
        ("form.archived", "Form archived", "Form"),
    ]
    assert german[1]["action"] == "form.archived" and german[1]["object_type"] == "form"
    assert german[1]["action_label"] == "Formular archiviert"
    assert german[1]["object_type_label"] == "Formular"


def test_the_console_shows_an_uncatalogued_code_as_it_is(app):
    """An entry written under a code renamed since (the trail is append-only) is shown by
    its code; looked up as a message id it made the trail page a 500."""
    with uow(app) as s:
        older = audit.record(s, actor="cli:ops", action=audit.Action.LOGIN, object_type="user")
        s.execute(
            sa.update(AuditEntry)
            .where(AuditEntry.id == older.id)
            .values(action="auth.signin", object_type="staff")
        )
    client, _ = factories.signed_in_client(app, "privacy")
    for lang in ("en", "de"):
        page = client.get(f"/console/privacy?lang={lang}")
        assert page.status_code == 200, page.status_code
        html = page.get_data(as_text=True)
        assert '<span title="auth.signin">auth.signin</span>' in html
        assert '<span class="muted">staff</span>' in html
