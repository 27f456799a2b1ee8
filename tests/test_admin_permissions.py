"""The permission matrix (issue 11, acceptance): every role against every admin API
operation and every staff page, expected allow or deny from the one table
(admin/permissions.py); a viewer never receives a byte of personal data."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from admin import permissions
from admin.api.registry import OPERATIONS, Operation
from admin.models import Role
from scoring.models import Handoff
from tests import factories
from tests.factories import uow

ROLES = [role.value for role in Role]
# Long enough that no random token, id or signature in a response contains one by
# chance ("Ada" did, once in a few hundred runs: a flaky leak alarm).
FIRST, LAST, COMPANY = "Augusta", "Lovelace", "Analytical Engines"


def _lead(app: Any) -> tuple[uuid.UUID, str]:
    email = factories.unique_email("matrix")
    lead_id = factories.lead(
        app, email, profile={"first_name": FIRST, "last_name": LAST, "company": COMPANY}
    )
    return lead_id, email


def _hand_to(app: Any, lead_id: uuid.UUID, salesperson_id: int) -> None:
    with uow(app) as s:
        s.add(
            Handoff(
                id=uuid.uuid4(),
                lead_id=lead_id,
                person_id=salesperson_id,
                routing_rule="matrix",
                status="offered",
            )
        )


def _expected(role: str, op: Operation) -> bool:
    if op.permission is None:
        return True
    return permissions.allows(permissions.TABLE[Role(role)], op.permission)


def _request(
    client: Any, op: Operation, lead_id: uuid.UUID, email: str, csrf: str, form_id: str = "none"
) -> Any:
    path = "/api/v1" + op.path.replace("{lead_id}", str(lead_id)).replace("{token_id}", "999999")
    path = path.replace("{form_id}", form_id)
    path = re.sub(r"\{[a-z_]+\}", "999999", path)  # other ids: not found, once allowed
    body: dict[str, Any] | None = None
    if op.endpoint.endswith("leads_lookup"):
        body = {"email": email}
    elif op.endpoint.endswith("lead_stage"):
        body = {"stage": "disqualified", "reason": "matrix"}
    elif op.endpoint.endswith("tokens_create"):
        body = {"name": "matrix", "scopes": ["leads:read"], "days": 1}
    elif op.endpoint.endswith(("forms_create", "form_replace", "form_update")):
        body = {"name": "Matrix", "kind": "newsletter"}
    elif op.endpoint.endswith("form_origins"):
        body = {"allowed_origins": ["https://www.example.com"]}
    elif op.endpoint.endswith("webhooks_add"):
        body = {"url": "https://192.0.2.1/matrix", "events": ["lead.erased"]}
    headers = {"X-CSRFToken": csrf}
    return client.open(path, method=op.method.upper(), json=body, headers=headers)


@pytest.mark.parametrize("role", ROLES)
def test_every_api_operation_for_every_role(app, role):
    salesperson = factories.salesperson(app, factories.unique_email("sp"), "Sam")
    extra = {"salesperson_id": salesperson} if role == "sales" else {}
    client, _user_id = factories.signed_in_client(app, role, **extra)
    csrf = factories.csrf_token(client, "/admin/account")
    personal: list[str] = []
    seen: list[str] = []
    for op in OPERATIONS:
        lead_id, email = _lead(app)  # a fresh lead each time (one operation erases it)
        _hand_to(app, lead_id, salesperson)
        personal += [email, FIRST, LAST, COMPANY]
        form_id = factories.form(app, name="Matrix")  # a fresh form (one operation deletes it)
        response = _request(client, op, lead_id, email, csrf, form_id)
        allowed = _expected(role, op)
        where = f"{role} {op.method.upper()} {op.path}: {response.status_code}"
        if allowed:
            assert response.status_code not in (401, 403), where
            assert response.status_code < 500, where
        else:
            assert response.status_code == 403, where
            assert response.mimetype == "application/problem+json", where
        seen.append(response.get_data(as_text=True))
    if role == "viewer":
        everything = "\n".join(seen)
        for value in personal:
            assert value not in everything, value
        assert not re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", everything)


def test_tokens_follow_the_same_table(app):
    """A token with every permission of its role: the same answers as the console."""
    lead_id, email = _lead(app)
    form_id = factories.form(app, name="Matrix")
    reads = [op for op in OPERATIONS if op.method == "get" and "{token_id}" not in op.path]
    for role in ("marketing", "privacy", "viewer"):
        headers = {"Authorization": f"Bearer {factories.personal_token(app, role)}"}
        client = app.test_client()
        for op in reads:
            path = "/api/v1" + op.path.replace("{lead_id}", str(lead_id))
            path = path.replace("{form_id}", form_id)
            path = re.sub(r"\{[a-z_]+\}", "999999", path)
            status = client.get(path, headers=headers).status_code
            assert (status == 403) == (not _expected(role, op)), (role, op.path, status)
    assert email


def test_sales_sees_only_the_leads_handed_to_them(app, client):
    salesperson = factories.salesperson(app, factories.unique_email("sp"), "Sam")
    mine, _ = _lead(app)
    theirs, their_email = _lead(app)
    _hand_to(app, mine, salesperson)
    headers = {"Authorization": f"Bearer {_sales_token(app, salesperson)}"}
    listed = client.get("/api/v1/leads", headers=headers).get_json()["items"]
    assert [row["id"] for row in listed] == [str(mine)]
    assert client.get(f"/api/v1/leads/{mine}", headers=headers).status_code == 200
    assert client.get(f"/api/v1/leads/{theirs}", headers=headers).status_code == 404
    assert client.post(f"/api/v1/leads/{theirs}/reveal", headers=headers).status_code == 404
    lookup = client.post("/api/v1/leads/lookup", json={"email": their_email}, headers=headers)
    assert lookup.status_code == 404
    assert client.post(f"/api/v1/leads/{mine}/reveal", headers=headers).status_code == 200


def _sales_token(app: Any, salesperson: int) -> str:
    from admin import tokens
    from admin.models import User

    user_id, _ = factories.staff_user(app, "sales", salesperson_id=salesperson)
    with uow(app) as s:
        scopes = [p.value for p in permissions.TABLE[Role.SALES]]
        return tokens.create(
            s, s.get(User, user_id), name="t", scopes=scopes, days=1, actor="system"
        )[1]


@pytest.mark.parametrize("role", ROLES)
def test_every_staff_page_for_every_role(app, role):
    """Every GET page of the staff side that states a permission (the console's too)."""
    lead_id, _email = _lead(app)
    extra = {}
    if role == "sales":
        extra["salesperson_id"] = factories.salesperson(app, factories.unique_email("sp"), "S")
    client, _user_id = factories.signed_in_client(app, role, **extra)
    checked = 0
    declared = _api_endpoints()
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if "GET" not in (rule.methods or set()) or not hasattr(view, "required_permission"):
            continue
        if rule.endpoint in declared:
            continue  # above, with every method
        needed = view.required_permission
        path = rule.rule
        for arg in rule.arguments:
            path = re.sub(rf"<(?:[^:<>]+:)?{arg}>", str(lead_id) if "lead" in arg else "1", path)
        response = client.get(path)
        allowed = needed is None or permissions.allows(permissions.TABLE[Role(role)], needed)
        where = f"{role} GET {path}: {response.status_code}"
        if allowed:
            assert response.status_code not in (401, 403), where
            assert response.status_code < 500, where
        else:
            assert response.status_code == 403, where
        checked += 1
    assert checked >= 2


def _api_endpoints() -> set[str]:
    return {op.endpoint for op in OPERATIONS}  # filled as the app's modules are imported


def test_every_api_route_is_a_declared_operation(app):
    """Each route of the admin API is in the registry, so in the document, in the
    matrix above and answered alike (the webhook routes once were not)."""
    undeclared = [
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/")
        and app.view_functions[rule.endpoint].__module__.startswith("admin.")
        and rule.endpoint not in _api_endpoints() | PUBLIC
    ]
    assert undeclared == []
    assert {"api_exports.webhooks_list", "api_exports.import_contacts"} <= _api_endpoints()


# Staff-side routes anyone may open (signing in, links from mails, the API document).
PUBLIC = {
    "admin_auth.sign_in_form",
    "admin_auth.sign_in",
    "admin_auth.totp_form",
    "admin_auth.totp",
    "admin_auth.totp_setup_form",
    "admin_auth.totp_setup",
    "admin_auth.set_password",
    "admin_auth.sign_out",
    "admin_auth.static",
    "admin_api.openapi",
    "admin_api.reference",
    # The console's home checks the sign-in itself and sends each role to its first page;
    # its language switch only sets a cookie.
    "console.home",
    "console.language",
}


def test_every_staff_route_states_its_permission(app):
    """A new console page or API route without @require fails here, not in production."""
    unguarded = [
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.endpoint.split(".")[0].startswith(("admin", "console", "api_"))
        and not rule.endpoint.endswith(".static")
        and rule.endpoint not in PUBLIC
        and not hasattr(app.view_functions[rule.endpoint], "required_permission")
    ]
    assert unguarded == []
