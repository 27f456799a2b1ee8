"""The audit trail's one catalogue of actions and kinds of object: every call site names
one of them (read from the source, so an action no test happens to run is checked too),
the trail refuses any other, the console offers each by its translated label and names
the objects its reader may see anyway; ``leadvault webhooks …`` is audited like the
console and the API."""

from __future__ import annotations

import ast
import enum
from pathlib import Path

import pytest
from click.testing import CliRunner
from markupsafe import escape

from leadvault import audit
from leadvault.cli import cli
from tests import factories
from tests.factories import uow
from tests.test_console import text
from tests.test_scoring import cli_env

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("leadvault", "consent", "capture", "scoring", "widgets", "export", "nurture", "admin")
# What writes an entry ({module alias: function}) and where it takes the action and the
# kind of object: (keyword, position or None).
WRITERS = {
    ("audit", "record"): (("action", None), ("object_type", None)),
    ("audit", "record_lead"): (("action", 2), None),
    ("auth", "record_audit"): (("action", 1), ("object_type", 2)),
}


def _sources() -> list[tuple[str, ast.Module]]:
    return [
        (str(path.relative_to(ROOT)), ast.parse(path.read_text(encoding="utf-8")))
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    ]


def _argument(call: ast.Call, where: tuple[str, int | None]) -> ast.expr | None:
    keyword, position = where
    for given in call.keywords:
        if given.arg == keyword:
            return given.value
    return call.args[position] if position is not None and len(call.args) > position else None


def _typed(tree: ast.Module, catalogue: str) -> dict[str, tuple[str, int]]:
    """Parameters annotated with the catalogue: {function: (parameter, position)}."""
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for position, arg in enumerate(node.args.args + node.args.kwonlyargs):
                if arg.annotation is not None and ast.unparse(arg.annotation) in {
                    catalogue,
                    f"audit.{catalogue}",
                }:
                    found[node.name] = (arg.arg, position)
    return found


class _Check:
    """Is an expression plainly one of a catalogue's members (or passed through)?"""

    def __init__(self, catalogue: type[enum.Enum], tree: ast.Module, name: str) -> None:
        self.catalogue = catalogue
        self.constants = {
            target.id: node.value
            for node in tree.body
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        self.passed_through = {parameter for parameter, _ in _typed(tree, name).values()}

    def codes(self, node: ast.expr | None) -> list[str]:
        """The codes ``node`` can be; [] unless it is plainly a member."""
        if isinstance(node, ast.IfExp):
            both = [self.codes(node.body), self.codes(node.orelse)]
            return both[0] + both[1] if all(both) else []
        if isinstance(node, ast.Attribute) and node.attr in self.catalogue.__members__:
            return [self.catalogue.__members__[node.attr].value]
        if isinstance(node, ast.Constant) and node.value in self.catalogue._value2member_map_:
            return [node.value]
        if isinstance(node, ast.Name) and node.id in self.constants:
            return self.codes(self.constants[node.id])
        return []

    def ok(self, node: ast.expr | None) -> bool:
        return bool(self.codes(node)) or (
            isinstance(node, ast.Name) and node.id in self.passed_through
        )


def test_every_call_site_names_a_catalogued_action_and_kind():
    sources = _sources()
    # Functions that take ``action: audit.Action`` and write it (asset, webhook, form helpers).
    # A private one (``_record``) is only looked for in its own module.
    public = {
        name: where
        for _, tree in sources
        for name, where in _typed(tree, "Action").items()
        if not name.startswith("_")
    }
    problems, seen = [], set()
    for path, tree in sources:
        wrappers = {**public, **_typed(tree, "Action")}
        actions = _Check(audit.Action, tree, "Action")
        kinds = _Check(audit.ObjectType, tree, "ObjectType")
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(
                node.func, ast.Attribute | ast.Name
            ):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id
            owner = getattr(func.value, "id", None) if isinstance(func, ast.Attribute) else None
            where = f"{path}:{node.lineno}"
            if (owner, name) in WRITERS:
                action_at, kind_at = WRITERS[owner, name]
                checks = [(actions, action_at)] + ([(kinds, kind_at)] if kind_at else [])
            elif name in wrappers and _argument(node, wrappers[name]) is not None:
                checks = [(actions, wrappers[name])]  # a helper's caller
            else:
                continue
            for check, at in checks:
                value = _argument(node, at)
                if not check.ok(value):
                    problems.append(f"{where}: {ast.unparse(value) if value else None}")
                seen.update(check.codes(value) if check is actions else [])
    assert problems == []
    # Each catalogued action is written somewhere: the filter offers no dead choice.
    assert set(audit.Action) - seen == set()


def test_the_trail_refuses_what_is_not_catalogued(app):
    with uow(app) as s:
        with pytest.raises(audit.AuditError, match=r"not in audit\.Action"):
            audit.record(s, actor="user:1", action="lead.peeked", object_type="lead")
        with pytest.raises(audit.AuditError, match=r"not in audit\.ObjectType"):
            audit.record(s, actor="user:1", action=audit.Action.LOGIN, object_type="person")
        entry = audit.record(
            s, actor="user:1", action="webhook.added", object_type="webhook_endpoint"
        )
        assert entry.action == "webhook.added"


def test_every_label_is_distinct():
    for catalogue in (audit.Action, audit.ObjectType):
        labels = [member.label for member in catalogue]
        assert len(set(labels)) == len(labels), catalogue


def test_webhook_commands_are_audited_as_the_cli_user(make_app):
    app = make_app(webhook_allow_networks=("127.0.0.1/32",))
    runner = CliRunner()
    env = {**cli_env(app), "LEADVAULT_WEBHOOK_ALLOW_NETWORKS": "127.0.0.1/32"}

    def run(*args: str) -> str:
        result = runner.invoke(cli, ["webhooks", *args], env=env, obj=app)
        assert result.exit_code == 0, result.output
        return result.output

    added = run(
        "add", "http://127.0.0.1:9/hook", "--event", "lead.erased", "--purpose", "newsletter"
    )
    endpoint = added.split()[1]
    for command in ("disable", "enable", "redeliver", "rotate-secret", "remove"):
        run(command, endpoint)
    with uow(app) as s:
        trail = list(reversed(audit.entries(s, audit.Filters(object_type="webhook_endpoint"))))
        assert [(e.action, e.actor, e.object_id) for e in trail] == [
            (f"webhook.{what}", audit.cli_actor(), endpoint)
            for what in ("added", "disabled", "enabled", "redelivered", "secret_rotated", "removed")
        ]
        assert audit.detail_of(trail[0]) == {"events": ["lead.erased"], "purpose": "newsletter"}
        assert audit.detail_of(trail[3]) == {"queued": 0}
        assert "whsec_" not in "".join(e.detail for e in trail)
    # The console names the endpoint by its description, or says it was removed.
    kept = run("add", "http://127.0.0.1:9/crm", "--description", "CRM").split()[1]
    owner, _ = factories.signed_in_client(app, "owner")
    page = _trail(text(owner.get("/console/privacy?object_type=webhook_endpoint")))
    assert f'<a href="/console/webhooks/{kept}">#{kept} CRM</a>' in page
    assert page.count(f"#{endpoint} (removed)") == 6
    assert "events: lead.erased; purpose: newsletter" in page


def _trail(page: str) -> str:
    return page.split('id="h-audit"')[1]


def test_the_console_offers_every_action_by_its_label_and_names_objects(app):
    form_id = factories.form(app, name="Spring webinar")
    with uow(app) as s:
        for action in (audit.Action.FORM_ARCHIVED, audit.Action.FORM_RESTORED):
            audit.record(s, actor="cli:ops", action=action, object_type="form", object_id=form_id)
        audit.record(s, actor="system", action=audit.Action.LEADS_IMPORTED, object_type="leads")
    owner, _ = factories.signed_in_client(app, "owner")
    page = _trail(text(owner.get("/console/privacy")))
    for action in audit.Action:
        assert f'<option value="{action.value}">{escape(action.label)}</option>' in page
    assert '<option value="webhook_endpoint">Webhook endpoint</option>' in page
    assert "Form archived" in page and "Leadvault (automatic)" in page
    assert f'<a href="/console/forms/{form_id}">Spring webinar</a>' in page

    only = _trail(text(owner.get("/console/privacy?action=form.archived&lang=de")))
    rows = only.split("<tbody>")[1]
    assert "Formular archiviert" in rows and "wieder in Gebrauch" not in rows
    assert '<option value="form.archived" selected>Formular archiviert</option>' in only

    # The privacy role does not see forms: the entry names the form by its id, unlinked.
    privacy, _ = factories.signed_in_client(app, "privacy")
    theirs = _trail(text(privacy.get("/console/privacy?object_type=form")))
    assert "Spring webinar" not in theirs and f"/console/forms/{form_id}" not in theirs
    assert form_id[:12] in theirs


def test_an_erased_lead_is_named_as_erased_and_not_linked(app):
    from consent import rights
    from leadvault.models import Lead

    kept, erased = factories.lead(app), factories.lead(app)
    with uow(app) as s:
        for lead_id in (kept, erased):
            audit.record_lead(s, lead_id, audit.Action.LEAD_REVEALED, actor="user:1")
        rights.erase(s, s.get(Lead, erased), actor="user:1", reason="request")
    privacy, _ = factories.signed_in_client(app, "privacy")
    page = _trail(text(privacy.get("/console/privacy?object_type=lead")))
    assert f'<a href="/console/leads/{kept}">{str(kept)[:8]}</a>' in page
    assert f"{str(erased)[:8]} (erased)" in page and f"/console/leads/{erased}" not in page
