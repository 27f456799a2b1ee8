"""Webhook refusals in the staff member's language, and descriptions without control
characters.

``export.webhooks.WebhookError`` (and the SSRF guard's ``AddressRefused`` it passes
on) carries a message id with values like ``routing.SalesError``: the console and the
API show ``translated()``, the command line the English ``str``. A description is one
line: the service refuses line breaks, tabs, C0/C1 controls and bidi overrides, naming
the code point, and the API document's pattern says the same.
"""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from export import transport, webhooks
from export.models import EndpointStatus, WebhookEndpoint
from leadvault import untrusted
from tests import factories
from tests.factories import uow
from tests.test_webhooks import LOOPBACK

URL = "http://127.0.0.1:9/hooks/x"
GERMAN = {"Accept-Language": "de"}


def _console(app):
    client, _user_id = factories.signed_in_client(app, "owner")
    return client, factories.csrf_token(client, "/admin/account")


def _endpoints(app) -> int:
    with uow(app) as s:
        return s.scalar(sa.select(sa.func.count()).select_from(WebhookEndpoint))


def test_the_console_add_form_refuses_in_german(make_app):
    app = make_app(webhook_allow_networks=LOOPBACK)
    client, csrf = _console(app)
    guarded = client.post(
        "/console/webhooks?lang=de",
        data={"csrf_token": csrf, "url": "http://169.254.169.254/latest"},
    )
    html = guarded.get_data(as_text=True)
    assert guarded.status_code == 422
    assert "169.254.169.254 löst zu 169.254.169.254 auf, einer Adresse der Art" in html
    assert "a link-local" not in html

    unknown = client.post(
        "/console/webhooks?lang=de",
        data={"csrf_token": csrf, "url": URL, "purpose": "nope"},
    )
    assert unknown.status_code == 422
    assert "unbekannter Zweck „nope“" in unknown.get_data(as_text=True)

    hidden = client.post(
        "/console/webhooks?lang=de",
        data={"csrf_token": csrf, "url": URL, "description": "CRM\u202eevil"},
    )
    html = hidden.get_data(as_text=True)
    assert hidden.status_code == 422
    assert "Die Beschreibung enthält das Steuerzeichen U+202E" in html
    field = re.search(r"<input id=\"w-description\"[^>]*>", html).group(0)
    assert 'aria-invalid="true"' in field and "CRM\ufffdevil" in field
    assert "\u202e" not in html
    assert _endpoints(app) == 0


def test_a_console_action_refused_by_the_service_answers_in_german(make_app):
    app = make_app(webhook_allow_networks=LOOPBACK)
    with uow(app) as s:
        endpoint, _secret = webhooks.create_endpoint(s, url=URL)
        endpoint_id = endpoint.id
    client, csrf = _console(app)
    base = f"/console/webhooks/{endpoint_id}"
    assert client.post(f"{base}/disable", data={"csrf_token": csrf}).status_code == 302
    refused = client.post(f"{base}/redeliver?lang=de", data={"csrf_token": csrf})
    assert refused.status_code == 409
    assert f"Endpunkt {endpoint_id} ist deaktiviert; bitte zuerst aktivieren" in refused.get_data(
        as_text=True
    )


def test_the_api_answers_webhook_refusals_in_german_with_the_field(make_app):
    from tests.test_api_exports import bearer

    app = make_app(webhook_allow_networks=LOOPBACK)
    client = app.test_client()
    owner = {**bearer(factories.personal_token(app, "owner")), **GERMAN}
    tabbed = client.post(
        "/api/v1/webhooks", json={"url": URL, "description": "CRM\tsync"}, headers=owner
    )
    assert tabbed.status_code == 422
    message = tabbed.get_json()["errors"]["description"][0]
    assert message.startswith("Die Beschreibung enthält das Steuerzeichen U+0009")
    assert _endpoints(app) == 0

    added = client.post(
        "/api/v1/webhooks", json={"url": URL, "description": " CRM "}, headers=owner
    )
    assert added.status_code == 201 and added.get_json()["description"] == "CRM"
    base = f"/api/v1/webhooks/{added.get_json()['id']}"
    client.post(f"{base}/disable", headers=owner)
    refused = client.post(f"{base}/redeliver", headers=owner)
    assert refused.status_code == 409
    assert "ist deaktiviert; bitte zuerst aktivieren" in refused.get_json()["detail"]


def test_the_command_line_keeps_the_english_text(app):
    with uow(app) as s, pytest.raises(webhooks.WebhookError) as refused:
        webhooks.get_endpoint(s, 999)
    assert str(refused.value) == "no webhook endpoint 999"
    with pytest.raises(transport.AddressRefused) as guarded:
        transport.Guard((), resolver=lambda _h, _p: ["10.0.0.1"]).check(
            transport.parse_url("https://crm.example.com/x")
        )
    assert str(guarded.value) == (
        "crm.example.com resolves to 10.0.0.1, a private address "
        "(allow it with LEADVAULT_WEBHOOK_ALLOW_NETWORKS)"
    )


SAMPLES = [chr(code) for code in (*range(0x00, 0x21), *range(0x7F, 0xA1))] + [
    "\u00ad",
    "\u200b",
    "\u200d",
    "\u2028",
    "\u2029",
    *(chr(code) for code in range(0x202A, 0x202F)),
    *(chr(code) for code in range(0x2066, 0x206A)),
    "\ufeff",
    "\U0001f600",
]


def test_the_service_refuses_what_the_documents_pattern_refuses(app):
    with uow(app) as s:
        endpoint, _secret = webhooks.create_endpoint(s, url=URL, description="CRM", resolve=False)
        for char in SAMPLES:
            description = f"CRM {char} sync"
            pattern_takes = re.fullmatch(untrusted.ONE_LINE_OR_EMPTY_PATTERN, description)
            try:
                webhooks.update_endpoint(s, endpoint, description=description, resolve=False)
            except webhooks.WebhookError as exc:
                assert pattern_takes is None, repr(char)
                assert exc.field == "description" and f"U+{ord(char):04X}" in str(exc)
                assert endpoint.description != description
            else:
                assert pattern_takes is not None, repr(char)
                assert endpoint.description == description
        # Empty and blank stay allowed (a description is optional).
        webhooks.update_endpoint(s, endpoint, description="  ", resolve=False)
        assert endpoint.description == "" and endpoint.status == EndpointStatus.ACTIVE
        assert re.fullmatch(untrusted.ONE_LINE_OR_EMPTY_PATTERN, "") is not None


def test_the_api_document_gives_the_descriptions_pattern(app):
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    description = document["components"]["schemas"]["WebhookRequest"]["properties"]["description"]
    assert description["pattern"] == untrusted.ONE_LINE_OR_EMPTY_PATTERN
    assert description["maxLength"] == webhooks.DESCRIPTION_MAX
