"""A salesperson's weight and weekly capacity have one range (``scoring.sales_limits``),
refused by the service (``routing.check_routing_fields``) whoever calls it: the console
and the admin API (whose forms and document state it), and ``leadvault sales add`` and
``edit`` alike (exit 1 with the service's English message; ``add`` exited 2 with
click's range message). A refusal stores nothing and records nothing. Both databases."""

from __future__ import annotations

import re

import pytest

from scoring import routing, sales_team
from scoring.sales_limits import CAPACITY_MAX, WEIGHT_MAX
from tests import factories
from tests.factories import uow
from tests.test_sales_cli import _sales, _state, _trail

REFUSED = {
    ("weight", WEIGHT_MAX + 1): f"The weight must be at most {WEIGHT_MAX}.",
    ("weight", 0): "The weight must be at least 1.",
    ("weekly_capacity", CAPACITY_MAX + 1): f"The weekly capacity must be at most {CAPACITY_MAX}.",
    ("weekly_capacity", -1): "The weekly capacity must be at least 0.",
}
ANNA = ("en", 1, 50, True)  # language, weight, weekly capacity, active: as added


def test_the_service_refuses_out_of_range_numbers_when_adding_and_changing(app):
    anna = factories.salesperson(app, "anna@sales.example", "Anna")
    for (field, value), message in REFUSED.items():
        with uow(app) as s, pytest.raises(routing.SalesError) as added:
            sales_team.add_person(
                s, actor="user:7", email="ben@sales.example", name="Ben", **{field: value}
            )
        with uow(app) as s, pytest.raises(routing.SalesError) as changed:
            sales_team.update_person(s, anna, actor="user:7", **{field: value})
        for refusal in (added.value, changed.value):
            assert (refusal.field, str(refusal)) == (field, message)
    # Refused before anything was written: the transactions above committed nothing.
    assert _state(app, "anna@sales.example") == ANNA
    with uow(app) as s:
        assert routing.person_by_email(s, "ben@sales.example") is None
    assert _trail(app) == []
    with uow(app) as s:  # the ceilings themselves are taken
        sales_team.update_person(
            s, anna, actor="user:7", weight=WEIGHT_MAX, weekly_capacity=CAPACITY_MAX
        )
    assert _state(app, "anna@sales.example") == ("en", WEIGHT_MAX, CAPACITY_MAX, True)


def test_the_german_refusal_names_the_ceiling(app):
    with uow(app) as s, pytest.raises(routing.SalesError) as caught:
        sales_team.update_person(
            s,
            routing.add_person(s, email="anna@sales.example", name="Anna").id,
            actor="user:7",
            weekly_capacity=CAPACITY_MAX + 1,
        )
    assert caught.value.translated("de") == (
        f"Die Leads pro Woche dürfen höchstens {CAPACITY_MAX} sein."
    )


def test_the_console_and_the_api_refuse_past_the_ceilings_and_store_nothing(app):
    anna = factories.salesperson(app, "anna@sales.example", "Anna")
    client, _ = factories.signed_in_client(app, "owner")
    csrf = factories.csrf_token(client, "/console/sales")
    headers = {"X-CSRFToken": csrf}
    ranges = {"weight": (1, WEIGHT_MAX), "weekly_capacity": (0, CAPACITY_MAX)}
    for field, (low, high) in ranges.items():
        expected = {
            field: [f"Must be greater than or equal to {low} and less than or equal to {high}."]
        }
        made = client.post(
            "/api/v1/salespeople",
            json={"email": "ben@sales.example", "name": "Ben", field: high + 1},
            headers=headers,
        )
        assert (made.status_code, made.get_json()["errors"]) == (422, expected)
        patched = client.patch(
            f"/api/v1/salespeople/{anna}", json={field: high + 1}, headers=headers
        )
        assert (patched.status_code, patched.get_json()["errors"]) == (422, expected)
        form = {"csrf_token": csrf, "language": "en", "weight": "1", "weekly_capacity": "50"}
        page = client.post(
            "/console/sales/people",
            data={**form, "email": "ben@sales.example", "name": "Ben", field: str(high + 1)},
        )
        assert page.status_code == 422
        assert f'id="{field}-error">{expected[field][0]}</p>' in page.get_data(as_text=True)
    assert _state(app, "anna@sales.example") == ANNA
    with uow(app) as s:
        assert routing.person_by_email(s, "ben@sales.example") is None
    assert _trail(app) == []
    # The API document and the console's number inputs state the same range.
    document = client.get("/api/v1/openapi.json").get_json()
    for name in ("SalespersonIn", "SalespersonPatch"):
        properties = document["components"]["schemas"][name]["properties"]
        for field, (low, high) in ranges.items():
            assert (properties[field]["minimum"], properties[field]["maximum"]) == (low, high)
    for path, prefix in (("/console/sales", "p"), (f"/console/sales/people/{anna}", "e")):
        html = client.get(path).get_data(as_text=True)
        for field, short in (("weight", "weight"), ("weekly_capacity", "capacity")):
            low, high = ranges[field]
            tag = re.search(rf'<input id="{prefix}-{short}"[^>]*>', html)
            assert tag and f'min="{low}" max="{high}"' in tag.group(0), (path, field)


def test_sales_add_and_edit_refuse_out_of_range_numbers_alike(app):
    factories.salesperson(app, "anna@sales.example", "Anna")
    sales = _sales(app)
    options = {
        "weight": ("--weight", "--weight"),
        "weekly_capacity": ("--weekly-capacity", "--weekly-capacity"),
    }
    for (field, value), message in REFUSED.items():
        add_option, edit_option = options[field]
        added = sales(
            "add", "--email", "ben@sales.example", "--name", "Ben", add_option, str(value)
        )
        edited = sales("edit", "anna@sales.example", edit_option, str(value))
        for result in (added, edited):
            assert (result.exit_code, result.output) == (1, f"Error: {message}\n"), field
    assert _state(app, "anna@sales.example") == ANNA
    with uow(app) as s:
        assert routing.person_by_email(s, "ben@sales.example") is None
    assert _trail(app) == []
    for command in ("add", "edit"):
        shown = " ".join(sales(command, "--help").output.split())
        assert f"(1-{WEIGHT_MAX})" in shown and f"(0-{CAPACITY_MAX})" in shown, shown
    # add's old name for the option still answers (scripts written for it).
    edge = ("--weight", str(WEIGHT_MAX), "--capacity", str(CAPACITY_MAX))
    assert sales("add", "--email", "ben@sales.example", "--name", "Ben", *edge).exit_code == 0
    assert _state(app, "ben@sales.example") == ("en", WEIGHT_MAX, CAPACITY_MAX, True)
