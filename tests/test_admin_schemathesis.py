"""Schemathesis against the served OpenAPI document (issue 11, acceptance): for every
operation, bounded generated requests on both databases; no 5xx, every answer
conforms to its documented status, content type and schema, and authentication
is enforced (a request without credentials gets the documented 401)."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from tests import factories

MAX_EXAMPLES = 25


def test_api_conforms_to_its_document(app: Any) -> None:
    factories.lead(app, profile={"first_name": "Ada"})
    headers = {"Authorization": f"Bearer {factories.personal_token(app, 'owner')}"}
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: Any) -> None:
            # A cursor is opaque: a schema-valid string that this API never gave out is
            # refused (422), which Schemathesis cannot know; every other check stays.
            opaque = "cursor" in (case.query or {})
            # A form definition names purposes, consent text versions and an asset that
            # must exist, and a redirect on one of its own origins: schema-valid values
            # are refused (422) when they name nothing, which the document cannot state.
            definition = case.method in {"POST", "PUT", "PATCH"} and case.path in {
                "/forms",
                "/forms/{form_id}",
            }
            # Likewise what only the data can say: an export's column keys name consent
            # purposes (rows, not schema), and an import's body is a CSV file whose
            # columns, purposes and encoding the schema cannot describe. A rules file is
            # TOML checked rule by rule (the 422 names the line), and an absence must end
            # on or after its start and not lie in the past.
            semantic = _names_runtime_values(case) or (
                case.method == "POST"
                and case.path in {"/scoring/rules/dry-run", "/scoring/rules/activate", "/absences"}
            )
            excluded = [checks.positive_data_acceptance] if opaque or definition or semantic else []
            case.call_and_validate(headers=headers, excluded_checks=excluded)

        run()


def _names_runtime_values(case: Any) -> bool:
    if case.path == "/imports":
        return True
    # An upload's content is checked against its file type (a PDF must start with
    # %PDF-), which a schema cannot say either.
    if case.method == "POST" and case.path == "/assets":
        return True
    # A webhook's URL must resolve to a public address (the SSRF guard) and its purpose
    # name a row; the schema says only that they are strings.
    if case.method == "POST" and case.path == "/webhooks":
        return True
    # A salesperson's address must be one mail can reach (email-validator's syntax and
    # domain rules), stricter than what "format: email" lets a generator make.
    if case.method == "POST" and case.path == "/salespeople":
        return True
    if (
        case.method == "PATCH"
        and case.path == "/salespeople/{person_id}"
        and isinstance(case.body, dict)
        and "email" in case.body
    ):
        return True
    # A date range must hold something (a "to" before its "from" is refused naming both),
    # which the document states in words only: a schema has no order between fields.
    given = {**(case.query or {}), **(case.body if isinstance(case.body, dict) else {})}
    if {"created_from", "created_to"} <= given.keys() or {"since", "until"} <= given.keys():
        return True
    return case.path == "/exports" and isinstance(case.body, dict) and "columns" in case.body
