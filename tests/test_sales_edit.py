"""A salesperson's name and address change (people marry, move, get new addresses):
one service (``sales_team.update_person``) behind the console, the admin API and
``leadvault sales edit``; checked as when adding them, sealed anew, audited by field
name only; their open handoffs stay theirs and the next mail goes to the new address.
Both databases."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from leadvault import audit, clock
from leadvault.cli import cli
from leadvault.models import AuditEntry
from scoring import handoff, routing, rules, rulesets, sales_team, unrouted
from scoring.models import Salesperson
from tests import factories
from tests.conftest import deliver
from tests.test_console import text
from tests.test_console_refused_forms import BAD_NAME, SHOWN_NAME, _marked, _refused, _unmarked
from tests.test_scoring import cli_env, contact_form, mails_to, path_of, qualify, setup_sales

uow = factories.uow
NEW = "anna.berg@sales.example"
CHANGED = audit.Action.SALESPERSON_CHANGED.value


def _entries(app) -> list[AuditEntry]:
    with uow(app) as s:
        return list(s.scalars(sa.select(AuditEntry).where(AuditEntry.action == CHANGED)))


def _contact(app, person_id: int) -> routing.Contact:
    with uow(app) as s:
        return routing.contact(s, s.get(Salesperson, person_id))


# --- the service ---------------------------------------------------------------------


def test_the_new_name_and_address_are_checked_sealed_and_audited(app):
    anna = factories.salesperson(app, "anna@sales.example", "Anna")
    factories.salesperson(app, "ben@sales.example", "Ben")
    with uow(app) as s:
        sales_team.update_person(
            s,
            anna,
            actor="user:7",
            ip="203.0.113.9",
            name=" Anna Berg ",
            email=" Anna.Berg@Sales.example",
        )
    assert _contact(app, anna) == routing.Contact(NEW, "Anna Berg")
    with uow(app) as s:
        assert routing.person_by_email(s, NEW).id == anna
        assert routing.person_by_email(s, "anna@sales.example") is None  # free again
        row = s.execute(sa.text("SELECT * FROM sales_people WHERE id = :id"), {"id": anna}).one()
    assert "berg" not in repr(tuple(row)).lower()  # sealed, as when added
    [entry] = _entries(app)
    assert (entry.actor, entry.object_type, entry.object_id) == ("user:7", "salesperson", str(anna))
    assert audit.detail_of(entry) == {"fields": ["email", "name"]}
    assert entry.ip_prefix == "203.0.113.0"
    assert "berg" not in entry.detail.lower()  # which fields, never their values

    with uow(app) as s:
        refusals = {
            "taken": (
                {"email": "BEN@sales.example"},
                sales_team.Conflict,
                "email",
                "exists already",
            ),
            "no address": ({"email": "a@@b"}, routing.SalesError, "email", "not an email address"),
            "blank": ({"name": "  "}, routing.SalesError, "name", "give a name"),
            "two lines": ({"name": "Anna\nBerg"}, routing.SalesError, "name", r"U\+000A"),
            "long": ({"name": "A" * 121}, routing.SalesError, "name", "longer than 120"),
        }
        for given, kind, field, message in refusals.values():
            with pytest.raises(kind, match=message) as caught:
                sales_team.update_person(s, anna, actor="user:7", **given)
            assert caught.value.field == field
        # The same values again (the address in another case): nothing to record.
        sales_team.update_person(s, anna, actor="user:7", name="Anna Berg", email=NEW.upper())
    assert len(_entries(app)) == 1
    with uow(app) as s:
        sales_team.update_person(s, anna, actor="user:7", weight=3)  # routing's fields too
        sales_team.update_person(s, anna, actor="user:7", weight=3)
    assert [audit.detail_of(e) for e in _entries(app)][1:] == [{"fields": ["weight"]}]
    assert _contact(app, anna) == routing.Contact(NEW, "Anna Berg")


def test_a_refused_field_changes_nothing_even_when_the_caller_commits(app):
    anna = factories.salesperson(app, "anna@sales.example", "Anna")
    for refused in ({"language": "fr"}, {"weight": 0}, {"weekly_capacity": -1}):
        # The refusal is caught inside the unit of work, which then commits: nothing
        # of the change may have been set before the refused field was checked.
        with uow(app) as s:
            with pytest.raises(routing.SalesError) as caught:
                sales_team.update_person(
                    s, anna, actor="user:7", name="Anna Berg", email=NEW, absent=True, **refused
                )
            assert caught.value.field == next(iter(refused))
    assert _contact(app, anna) == routing.Contact("anna@sales.example", "Anna")
    with uow(app) as s:
        assert routing.person_by_email(s, NEW) is None
        assert routing.person_by_email(s, "anna@sales.example").absent is False
    assert _entries(app) == []


def test_open_handoffs_stay_theirs_and_the_reminder_goes_to_the_new_address(
    app, client, smtp_server
):
    setup_sales(app)
    start = clock.now()
    clock.freeze(start)
    lead_id = qualify(app, contact_form(app), "lead1@engines.example")
    deliver(app)
    [offer] = mails_to(smtp_server, "anna@sales.example")
    with uow(app) as s:
        anna = routing.person_by_email(s, "anna@sales.example").id
        sales_team.update_person(s, anna, actor="cli:ops", name="Anna Berg", email=NEW)
    clock.freeze(start + dt.timedelta(hours=17))
    with uow(app) as s:
        assert handoff.sla_job(s)["reminded"] == 1
    deliver(app)
    # The handoff mail already sent stays as it was; the reminder finds Anna at her
    # new address, greeted by her new name.
    assert mails_to(smtp_server, "anna@sales.example") == [offer]
    [reminder] = mails_to(smtp_server, NEW)
    assert "Anna Berg" in reminder.get_body(preferencelist=("plain",)).get_content()
    with uow(app) as s:
        still = handoff.open_handoff(s, lead_id)
        assert (still.person_id, still.status) == (anna, "offered")
    # The link of the first mail still opens the handoff: it names the handoff, not an address.
    body = offer.get_body(preferencelist=("plain",)).get_content()
    accept = re.findall(r"http://\S+/h/\S+/accept", body)[0]
    assert client.get(path_of(accept)).status_code == 200


def test_rules_naming_the_old_address_are_named(app):
    anna = factories.salesperson(app, "anna@sales.example", "Anna")
    vip = (
        '[[routing]]\nname = "vip"\nwhen = { country = "DE" }\nsalesperson = "anna@sales.example"\n'
    )
    with uow(app) as s:
        rulesets.activate(s, rules.example_text() + "\n" + vip, actor="cli:ops")
        assert unrouted.in_active_rules(s) == []
        sales_team.update_person(s, anna, actor="cli:ops", email=NEW)
        assert unrouted.in_active_rules(s) == [unrouted.Unrouted("vip", "anna@sales.example")]


# --- the console ---------------------------------------------------------------------


def _form(csrf: str, **changes: str) -> dict[str, str]:
    form = {"name": "Anna", "email": "anna@sales.example", "language": "en", "weight": "1"}
    return {**form, "weekly_capacity": "50", "active": "1", "csrf_token": csrf, **changes}


def test_the_console_changes_name_and_address_and_keeps_a_refused_form(app):
    anna = factories.salesperson(app, "anna@sales.example", "Anna")
    factories.salesperson(app, "ben@sales.example", "Ben")
    client, user_id = factories.signed_in_client(app, "owner")
    url = f"/console/sales/people/{anna}"
    csrf = factories.csrf_token(client, url)
    page = text(client.get(url))
    assert 'id="e-name"' in page and 'value="anna@sales.example"' in page

    refused = _refused(client.post(url, data=_form(csrf, name=BAD_NAME, weight="4")))
    assert refused.by_id["e-name"]["value"] == SHOWN_NAME
    assert refused.by_id["e-weight"]["value"] == "4"
    _marked(refused, "e-name", "name-error")
    assert "U+000B" in refused.errors["name-error"]
    _unmarked(refused, "e-email")

    taken = _form(csrf, name="Anna Berg", email="ben@sales.example")
    refused = _refused(client.post(url + "?lang=de", data=taken))
    assert refused.by_id["e-name"]["value"] == "Anna Berg"
    assert refused.by_id["e-email"]["value"] == "ben@sales.example"
    _marked(refused, "e-email", "email-error")
    assert "e-email-hint" in refused.by_id["e-email"]["aria-describedby"]
    assert refused.errors["email-error"] == "Es gibt schon eine Vertriebsperson mit dieser Adresse."

    refused = _refused(client.post(url, data=_form(csrf, name="  ")))
    assert refused.errors["name-error"] == "Please give a name."
    assert _contact(app, anna) == routing.Contact("anna@sales.example", "Anna")
    assert _entries(app) == []

    done = client.post(url, data=_form(csrf, name="Anna Berg", email=NEW))
    assert done.status_code == 302 and done.headers["Location"].endswith(f"{url}?saved=1")
    assert _contact(app, anna) == routing.Contact(NEW, "Anna Berg")
    [entry] = _entries(app)
    assert entry.actor == f"user:{user_id}"
    # The trail names the salesperson by number, linked for whoever manages the team.
    trail = text(client.get(f"/console/privacy?action={CHANGED}")).split('id="h-audit"')[1]
    assert ">Salesperson changed</span>" in trail and "fields: email, name" in trail
    assert f'<a href="{url}">#{anna}</a>' in trail
    assert "Anna Berg" not in trail and NEW not in trail
    assert "Anna Berg" in text(client.get("/console/sales"))


# --- the API -------------------------------------------------------------------------


def test_the_api_changes_name_and_address(app, client):
    anna = factories.salesperson(app, "anna@sales.example", "Anna")
    factories.salesperson(app, "ben@sales.example", "Ben")
    owner = {"Authorization": f"Bearer {factories.personal_token(app, 'owner')}"}
    url = f"/api/v1/salespeople/{anna}"

    taken = client.patch(url, json={"email": "ben@sales.example"}, headers=owner)
    assert taken.status_code == 409
    assert taken.get_json()["errors"] == {
        "email": ["A salesperson with this address exists already."]
    }
    bad = client.patch(url, json={"name": "Anna\tBerg"}, headers=owner)
    assert bad.status_code == 422 and "U+0009" in bad.get_json()["errors"]["name"][0]
    assert client.patch(url, json={"email": "not an address"}, headers=owner).status_code == 422
    assert (
        client.patch("/api/v1/salespeople/999999", json={"name": "X"}, headers=owner).status_code
        == 404
    )
    marketing = {"Authorization": f"Bearer {factories.personal_token(app, 'marketing')}"}
    assert client.patch(url, json={"name": "X"}, headers=marketing).status_code == 403
    assert _entries(app) == []

    done = client.patch(url, json={"name": "Anna Berg", "email": NEW, "weight": 2}, headers=owner)
    assert done.status_code == 200, done.get_json()
    body = done.get_json()
    assert (body["name"], body["email"], body["weight"]) == ("Anna Berg", NEW, 2)
    [entry] = _entries(app)
    assert entry.actor.startswith("user:") and audit.detail_of(entry) == {
        "fields": ["email", "name", "weight"]
    }
    document = client.get("/api/v1/openapi.json", headers=owner).get_json()
    patch = document["paths"]["/salespeople/{person_id}"]["patch"]
    assert "409" in patch["responses"]
    schema = patch["requestBody"]["content"]["application/json"]["schema"]
    properties = _properties(document, schema)
    assert {"name", "email"} <= properties.keys()


def _properties(document, schema):
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = document["components"]["schemas"][name]
    return schema["properties"]


# --- the command line ----------------------------------------------------------------


def test_sales_edit_command(app):
    anna = factories.salesperson(app, "anna@sales.example", "Anna")
    factories.salesperson(app, "ben@sales.example", "Ben")
    runner = CliRunner()
    env = cli_env(app)

    def run(*args: str):
        return runner.invoke(cli, ["sales", "edit", *args], env=env, obj=app)

    assert run("anna@sales.example").exit_code == 2  # nothing to change
    unknown = run("nobody@sales.example", "--name", "X")
    assert unknown.exit_code == 1 and "no salesperson with this address" in unknown.output
    taken = run("anna@sales.example", "--email", "ben@sales.example")
    assert taken.exit_code == 1 and "exists already" in taken.output
    bad = run("anna@sales.example", "--name", "Anna\x1b[31m")
    assert bad.exit_code == 1 and "U+001B" in bad.output and "\x1b" not in bad.output
    done = run("Anna@sales.example", "--name", "Anna Berg", "--email", NEW)
    assert done.exit_code == 0, done.output
    assert f"Salesperson {NEW} changed." in done.output
    assert _contact(app, anna) == routing.Contact(NEW, "Anna Berg")
    [entry] = _entries(app)
    assert entry.actor == audit.cli_actor()
