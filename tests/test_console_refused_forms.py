"""A refused console form comes back as it was sent: every field shows what was typed
(a character the field refuses as U+FFFD, never raw), the field the message is about
is marked (``aria-invalid`` and ``aria-describedby`` naming the message), and the
other forms of the page are left alone. Sales team, salesperson, webhooks, accounts,
API tokens, consent texts, assets and the form editor; both databases."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from tests import factories

BAD_NAME = "Anna\x0b<b>Berg</b>\u202e"
SHOWN_NAME = "Anna\ufffd<b>Berg</b>\ufffd"


class _Fields(HTMLParser):
    """Inputs, selects and textareas of a page by id: value, checked, attributes."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.by_id: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, list[dict[str, Any]]] = {}
        self.errors: dict[str, str] = {}
        self._select: dict[str, Any] | None = None
        self._open: dict[str, Any] | None = None
        self._error: str | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag in {"input", "select", "textarea", "fieldset"} and found.get("id"):
            field = {"tag": tag, **found, "text": ""}
            self.by_id[str(found["id"])] = field
            if tag == "select":
                self._select = field
            if tag == "textarea":
                self._open = field
        if tag == "input" and found.get("name"):
            self.groups.setdefault(str(found["name"]), []).append(found)
        if tag == "option" and self._select is not None and "selected" in found:
            self._select["value"] = found.get("value")
        if tag == "p" and found.get("id", "").endswith("-error"):
            self._error = str(found["id"])
            self.errors[self._error] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        if tag == "textarea":
            self._open = None
        if tag == "p":
            self._error = None

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open["text"] += data
        if self._error is not None:
            self.errors[self._error] += data


def _refused(response: Any) -> _Fields:
    assert response.status_code == 422, response.status_code
    html = response.get_data(as_text=True)
    for char in "\x0b\u202e\x00":
        assert char not in html  # refused characters never go back raw
    return _Fields(html)


def _marked(page: _Fields, field_id: str, message_id: str) -> None:
    field = page.by_id[field_id]
    assert field.get("aria-invalid") == "true", field
    assert message_id in str(field.get("aria-describedby", "")).split(), field


def _unmarked(page: _Fields, *field_ids: str) -> None:
    for field_id in field_ids:
        assert "aria-invalid" not in page.by_id[field_id], page.by_id[field_id]


def _checked(page: _Fields, name: str) -> list[str]:
    return [str(i["value"]) for i in page.groups.get(name, []) if "checked" in i]


def test_the_sales_team_forms_keep_what_was_typed(app):
    client, _ = factories.signed_in_client(app, "owner")
    csrf = factories.csrf_token(client, "/console/sales")
    person = {"name": BAD_NAME, "email": "anna@sales.example", "language": "de"}
    person |= {"weight": "3", "weekly_capacity": "20", "csrf_token": csrf}
    page = _refused(client.post("/console/sales/people", data=person))
    assert page.by_id["p-name"]["value"] == SHOWN_NAME
    assert page.by_id["p-email"]["value"] == "anna@sales.example"
    assert page.by_id["p-language"]["value"] == "de"
    assert (page.by_id["p-weight"]["value"], page.by_id["p-capacity"]["value"]) == ("3", "20")
    _marked(page, "p-name", "name-error")
    assert "U+000B" in page.errors["name-error"]
    _unmarked(page, "p-email", "p-weight", "team-name")
    assert page.by_id["team-name"].get("value", "") == ""  # the other forms as they were

    page = _refused(
        client.post("/console/sales/people", data={**person, "name": "Anna", "email": "a@@b"})
    )
    assert page.by_id["p-name"]["value"] == "Anna"
    assert page.by_id["p-email"]["value"] == "a@@b"
    _marked(page, "p-email", "email-error")
    _unmarked(page, "p-name")

    page = _refused(
        client.post("/console/sales/people", data={**person, "name": "A", "weight": "0"})
    )
    assert page.by_id["p-weight"]["value"] == "0"
    _marked(page, "p-weight", "weight-error")

    team = {"name": "Bad Team", "strategy": "least_loaded", "csrf_token": csrf}
    page = _refused(client.post("/console/sales/teams", data=team))
    assert page.by_id["team-name"]["value"] == "Bad Team"
    assert page.by_id["team-strategy"]["value"] == "least_loaded"
    _marked(page, "team-name", "name-error")
    _unmarked(page, "p-name")  # the salesperson form does not take the team's message
    assert page.by_id["p-name"].get("value", "") == ""

    anna = factories.salesperson(app, "anna@sales.example", "Anna")
    factories.salesperson(app, "ben@sales.example", "Ben")
    absence = {"person_id": str(anna), "starts_on": "2031-05-10", "ends_on": "2031-05-01"}
    page = _refused(client.post("/console/sales/absences", data={**absence, "csrf_token": csrf}))
    assert page.by_id["a-person"]["value"] == str(anna)
    assert (page.by_id["a-from"]["value"], page.by_id["a-to"]["value"]) == (
        "2031-05-10",
        "2031-05-01",
    )
    _marked(page, "a-to", "ends_on-error")

    edit = {"language": "de", "weight": "0", "weekly_capacity": "7", "csrf_token": csrf}
    page = _refused(client.post(f"/console/sales/people/{anna}", data=edit))
    assert page.by_id["e-language"]["value"] == "de"
    assert (page.by_id["e-weight"]["value"], page.by_id["e-capacity"]["value"]) == ("0", "7")
    assert "checked" not in page.by_id["e-active"]  # unticked as sent, though Anna is active
    _marked(page, "e-weight", "weight-error")


def test_webhook_accounts_and_token_forms_keep_what_was_typed(make_app):
    from tests.test_webhooks import LOOPBACK

    app = make_app(webhook_allow_networks=LOOPBACK)
    client, _ = factories.signed_in_client(app, "owner")
    csrf = factories.csrf_token(client, "/console/webhooks")
    hook = {
        "url": "http://169.254.169.254/latest",
        "description": "CRM\x0b",
        "purpose": "newsletter",
        "event": ["lead.erased", "lead.confirmed"],
        "csrf_token": csrf,
    }
    page = _refused(client.post("/console/webhooks", data=hook))
    assert page.by_id["w-url"]["value"] == hook["url"]
    assert page.by_id["w-description"]["value"] == "CRM\ufffd"
    assert page.by_id["w-purpose"]["value"] == "newsletter"
    assert sorted(_checked(page, "event")) == ["lead.confirmed", "lead.erased"]
    _marked(page, "w-url", "webhook-error")
    _unmarked(page, "w-description", "w-purpose")
    page = _refused(
        client.post(
            "/console/webhooks", data={**hook, "url": "http://127.0.0.1:9/h", "event": "nonsense"}
        )
    )
    assert "aria-invalid" not in page.by_id["w-url"]
    assert page.by_id["w-url"]["value"] == "http://127.0.0.1:9/h"

    sales = factories.salesperson(app, "sam@sales.example", "Sam")
    account = {"email": "not an address", "role": "marketing", "csrf_token": csrf}
    page = _refused(client.post("/console/settings/users", data=account))
    assert page.by_id["add-email"]["value"] == "not an address"
    assert page.by_id["add-role"]["value"] == "marketing"
    _marked(page, "add-email", "users-error")
    account = {"email": "new@example.org", "role": "sales", "csrf_token": csrf}
    page = _refused(client.post("/console/settings/users", data=account))
    assert (page.by_id["add-email"]["value"], page.by_id["add-role"]["value"]) == (
        "new@example.org",
        "sales",
    )
    _marked(page, "add-sp", "users-error")
    _unmarked(page, "add-email")
    page = _refused(
        client.post(
            "/console/settings/users", data={**account, "role": "pope", "salesperson": str(sales)}
        )
    )
    assert page.by_id["add-sp"]["value"] == str(sales)
    _marked(page, "add-role", "users-error")

    token = {"name": "CRM sync", "days": "30", "csrf_token": csrf}
    page = _refused(client.post("/console/settings/tokens", data=token))
    assert (page.by_id["token-name"]["value"], page.by_id["token-days"]["value"]) == (
        "CRM sync",
        "30",
    )
    assert page.by_id["token-name"].get("aria-invalid") is None
    scopes = ["leads:read", "forms:write"]
    page = _refused(
        client.post("/console/settings/tokens", data={**token, "name": " ", "scope": scopes})
    )
    assert sorted(_checked(page, "scope")) == sorted(scopes)
    _marked(page, "token-name", "token-error")


def test_wtforms_pages_show_refused_characters_as_replacement_marks(app):
    client, _ = factories.signed_in_client(app, "owner")
    csrf = factories.csrf_token(client, "/console/consent/newsletter/new")
    wording = "I agree\u202e to the newsletter.\nTwice a month."
    page = _refused(
        client.post(
            "/console/consent/newsletter/new?language=en",
            data={"text": wording, "csrf_token": csrf, "step": "preview"},
        )
    )
    assert page.by_id["text"]["text"].strip() == "I agree\ufffd to the newsletter.\nTwice a month."
    assert page.by_id["text"]["aria-invalid"] == "true"

    form = {"name": "Spring\x0b", "kind": "newsletter", "after": "thanks", "csrf_token": csrf}
    form |= {"title_en": "Hello\u202e", "intro_en": "Line one\nline two\x00"}
    page = _refused(client.post("/console/forms/new", data=form))
    assert page.by_id["name"]["value"] == "Spring\ufffd"
    assert page.by_id["title_en"]["value"] == "Hello\ufffd"
    assert page.by_id["intro_en"]["text"].strip() == "Line one\nline two\ufffd"
