"""The API's and the console's schemas refuse in the request's language: marshmallow's own
messages and ours (control characters, how to write a date) were English to German users.
leadvault.schema_messages translates them as they leave the schema."""

from __future__ import annotations

import inspect
import re

from markupsafe import Markup
from marshmallow import fields, validate

from leadvault import i18n, schema_messages
from tests import factories

GERMAN = {"Accept-Language": "de"}
ENGLISH = {"Accept-Language": "en"}
CONTROL = "darf keine Steuerzeichen enthalten"


def _owner(app):
    client, _ = factories.signed_in_client(app, "owner")
    return client, {"X-CSRFToken": factories.csrf_token(client, "/admin/account")}


def test_control_characters_and_dates_are_refused_in_german_by_the_admin_api(app):
    client, headers = _owner(app)
    export = client.post(
        "/api/v1/exports",
        json={"purpose": "news\x01letter", "created_from": "31.03.2025"},
        headers=headers | GERMAN,
    )
    assert export.status_code == 422
    assert export.get_json()["errors"] == {
        "purpose": [CONTROL],
        "created_from": [
            "Kein gültiges Datum: Schreiben Sie das Datum als JJJJ-MM-TT, z. B. 2025-03-31."
        ],
    }
    leads = client.get("/api/v1/leads?created_from=yesterday", headers=headers | GERMAN)
    assert leads.status_code == 422
    assert leads.get_json()["errors"] == {
        "created_from": [
            "Kein gültiger Zeitpunkt: Schreiben Sie ihn als 2025-03-31 oder "
            "2025-03-31T08:00:00+02:00 (Jahre 1 bis 9999)."
        ]
    }
    english = client.get("/api/v1/leads?created_from=yesterday", headers=headers | ENGLISH)
    assert english.get_json()["errors"]["created_from"][0].startswith("Not a valid date and time")


def test_a_form_definitions_control_characters_are_refused_in_german(app):
    client, headers = _owner(app)
    body = {"name": "Footer\x07", "kind": "newsletter", "purposes": [{"purpose": "newsletter"}]}
    german = client.post("/api/v1/forms", json=body, headers=headers | GERMAN)
    assert german.status_code == 422
    assert german.get_json()["errors"]["name"] == [CONTROL]
    english = client.post("/api/v1/forms", json=body, headers=headers | ENGLISH)
    assert english.get_json()["errors"]["name"] == ["must not contain control characters"]


def test_translated_messages_are_plain_text_that_pages_escape():
    lazy = i18n.lazy_gettext("must not contain control characters")
    with i18n.force_locale("de"):
        shown = schema_messages.translated({"name": [lazy, "<b>odd</b>"]})
    assert shown == {"name": [CONTROL, "<b>odd</b>"]}
    for message in shown["name"]:
        assert type(message) is str and not isinstance(message, Markup)


def test_a_value_inside_a_message_is_kept_as_it_was():
    with i18n.force_locale("de"):
        refilled = schema_messages.translated_message("Must be one of: {x}, a.b, {y}.")
    assert refilled == "Muss einer dieser Werte sein: {x}, a.b, {y}."


def _marshmallow_messages() -> set[str]:
    """marshmallow's own message templates, filled as it fills them before a load."""
    found = {*fields.Field.default_error_messages.values()}
    found |= set(schema_messages.Schema._default_error_messages.values())
    for cls in vars(fields).values():
        if inspect.isclass(cls) and issubclass(cls, fields.Field):
            found |= set(getattr(cls, "default_error_messages", {}).values())
    for cls in vars(validate).values():
        if inspect.isclass(cls) and issubclass(cls, validate.Validator):
            default = getattr(cls, "default_message", None)
            if isinstance(default, str):
                found.add(default)
    for equal in (True, False):
        for upper in (True, False):
            # Range fills its operators while it is built.
            rng = validate.Range(0, 1, min_inclusive=equal, max_inclusive=upper)
            found |= {rng.message_min, rng.message_max, rng.message_all}
    length = validate.Length
    found |= {length.message_min, length.message_max, length.message_all, length.message_equal}
    filled = set()
    for message in found:
        if "{awareness}" in message:  # only a datetime has one
            for awareness in ("aware", "naive"):
                filled.add(message.format_map(_Keep(obj_type="datetime", awareness=awareness)))
        else:
            for obj_type in ("datetime", "date", "time"):
                filled.add(message.format_map(_Keep(obj_type=obj_type)))
    return filled


class _Keep(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def test_every_message_of_marshmallow_is_known():
    # A marshmallow upgrade that words a message anew fails here, not in front of a user.
    # A timedelta's "{input!r} cannot be formatted" is left: no schema of ours has one.
    known = set(schema_messages.MARSHMALLOW)
    missing = {
        m for m in _marshmallow_messages() - known if not re.search(r"timedelta|\{input!r\}", m)
    }
    assert not missing
