"""The console's settings (issue 12.8): users and roles, API tokens, the TOTP policy,
branding and `leadvault check` — the owner's only; every change audited."""

from __future__ import annotations

import re

import pytest

from admin import accounts, two_factor
from leadvault.audit import Action
from tests import factories
from tests.factories import uow
from tests.test_console import audit_count, csrf, one_h1, text


@pytest.mark.parametrize("role", ["marketing", "privacy", "viewer", "sales"])
def test_settings_are_the_owners(app, role):
    client, _ = factories.signed_in_client(app, role)
    for path in ("/console/settings", "/console/settings/users", "/console/settings/tokens"):
        assert client.get(path).status_code == 403, path
    assert "/console/settings" not in text(client.get("/admin/account"))


def test_general_settings_show_branding_totp_policy_and_the_check(app):
    client, _ = factories.signed_in_client(app, "owner")
    page = text(client.get("/console/settings"))
    one_h1(page)
    assert "LEADVAULT_BRAND_NAME" in page and "#0b5cad" in page
    assert "Result of the check" not in page  # the check connects: it runs on request
    checked = text(client.get("/console/settings?check=1"))
    assert "Result of the check" in checked and "answers, schema up to date" in checked

    token = csrf(client, "/console/settings")
    before = audit_count(app, "settings.totp_required")
    response = client.post("/console/settings/totp", data={"required": "1", "csrf_token": token})
    assert response.status_code == 302
    with uow(app) as s:
        assert two_factor.totp_required(s)
    assert audit_count(app, "settings.totp_required") == before + 1
    assert "Make the code optional" in text(client.get("/console/settings"))


def test_owner_adds_changes_resets_and_disables_accounts(app):
    client, owner_id = factories.signed_in_client(app, "owner")
    token = csrf(client, "/console/settings/users")
    bad = client.post(
        "/console/settings/users",
        data={"email": "not-an-address", "role": "marketing", "csrf_token": token},
    )
    assert bad.status_code == 422 and "not a valid e-mail address" in text(bad)

    email = factories.unique_email("new")
    added = client.post(
        "/console/settings/users", data={"email": email, "role": "marketing", "csrf_token": token}
    )
    assert added.status_code == 201
    one_h1(text(added))
    link = re.search(r'id="setup-link" readonly value="([^"]+)"', text(added))
    assert link and "/admin/set-password/" in link.group(1)
    assert audit_count(app, Action.USER_CREATED) >= 1
    # The link is shown once: the list does not show it again.
    assert link.group(1) not in text(client.get("/console/settings/users"))
    with uow(app) as s:
        user = accounts.find(s, email)
        assert user is not None and user.role == "marketing"
        user_id = user.id

    changed = client.post(
        f"/console/settings/users/{user_id}/role", data={"role": "viewer", "csrf_token": token}
    )
    assert changed.status_code == 302
    reset = client.post(f"/console/settings/users/{user_id}/reset", data={"csrf_token": token})
    assert reset.status_code == 200 and "/admin/set-password/" in text(reset)
    disabled = client.post(f"/console/settings/users/{user_id}/disable", data={"csrf_token": token})
    assert disabled.status_code == 302
    with uow(app) as s:
        user = accounts.find(s, email)
        assert user.role == "viewer" and not user.active
    for action in (Action.USER_ROLE_CHANGED, Action.USER_PASSWORD_RESET, Action.USER_DISABLED):
        assert audit_count(app, action) == 1, action

    # The last owner stays: a message, not an error page.
    last = client.post(
        f"/console/settings/users/{owner_id}/role", data={"role": "viewer", "csrf_token": token}
    )
    assert last.status_code == 422 and "last owner" in text(last)
    missing = client.post("/console/settings/users/999999/disable", data={"csrf_token": token})
    assert missing.status_code == 404


def test_owner_creates_a_token_shown_once_and_revokes_it(app):
    client, _ = factories.signed_in_client(app, "owner")
    token = csrf(client, "/console/settings/tokens")
    refused = client.post(
        "/console/settings/tokens", data={"name": "CRM", "days": "30", "csrf_token": token}
    )
    assert refused.status_code == 422 and "at least one scope" in text(refused)
    made = client.post(
        "/console/settings/tokens",
        data={"name": "CRM", "days": "30", "scope": ["leads:read"], "csrf_token": token},
    )
    assert made.status_code == 201
    secret = re.search(r'id="token-secret" readonly value="([^"]+)"', text(made)).group(1)
    api = app.test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    assert api.get("/api/v1/leads", headers=headers).status_code == 200
    listing = text(client.get("/console/settings/tokens"))
    assert secret not in listing and "CRM" in listing
    token_id = re.search(r"/console/settings/tokens/(\d+)/revoke", listing).group(1)
    revoked = client.post(f"/console/settings/tokens/{token_id}/revoke", data={"csrf_token": token})
    assert revoked.status_code == 302
    assert api.get("/api/v1/leads", headers=headers).status_code == 401
    assert audit_count(app, Action.TOKEN_REVOKED) == 1
