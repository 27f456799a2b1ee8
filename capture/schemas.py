"""Marshmallow schemas of a form definition, as an owner sends it (the admin API, the
console's form editor, the command line), and the :class:`Definition` they load into.

A submission's checks against its form are in ``capture.submission_checks``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from marshmallow import RAISE, fields, validate

from capture.definitions import (
    DEFAULT_PURPOSE,
    FIELD_NAMES,
    INTRO_MAX,
    ORIGINS_MAX,
    PROFILE_FIELDS,
    THANK_YOU_MAX,
    TITLE_MAX,
    Definition,
    FieldSpec,
    PurposeSpec,
)
from capture.models import FormKind
from leadvault import i18n
from leadvault.schema_messages import Schema

# No control characters (a NUL is refused by PostgreSQL, the others are never meant);
# texts of several lines may hold line breaks and tabs.
_ONE_LINE = validate.Regexp(
    r"^[^\x00-\x1f\x7f]*$", error=i18n.N_("must not contain control characters")
)
_LINES = validate.Regexp(
    r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$", error=i18n.N_("must not contain control characters")
)


def _line(high: int, **options: Any) -> fields.String:
    return fields.String(validate=[validate.Length(0, high), _ONE_LINE], **options)


def _per_language(high: int, *, multiline: bool) -> fields.Dict:
    return fields.Dict(
        keys=fields.String(validate=validate.OneOf(i18n.LANGUAGES)),
        values=fields.String(
            validate=[validate.Length(0, high), _LINES if multiline else _ONE_LINE]
        ),
        allow_none=True,
        metadata={
            "description": f"Per language ({', '.join(i18n.LANGUAGES)}); an empty text is left out"
        },
    )


class FieldSpecSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.OneOf(FIELD_NAMES))
    required = fields.Boolean(load_default=False)


class PurposeSpecSchema(Schema):
    class Meta:
        unknown = RAISE

    purpose = _line(40, required=True)
    required = fields.Boolean(load_default=True)


class FormDefinitionSchema(Schema):
    """A form as an owner defines it (``POST``/``PUT``; ``PATCH`` loads it with partial=True)."""

    class Meta:
        unknown = RAISE

    name = fields.String(
        required=True,
        validate=[validate.Length(1, 120), _ONE_LINE],
        metadata={"description": "A name for staff; visitors see the title"},
    )
    kind = fields.String(required=True, validate=validate.OneOf(list(FormKind)))
    title = _per_language(TITLE_MAX, multiline=False)
    intro = _per_language(INTRO_MAX, multiline=True)
    fields_ = fields.List(
        fields.Nested(FieldSpecSchema),
        data_key="fields",
        load_default=list,
        validate=validate.Length(0, len(FIELD_NAMES)),
        metadata={"description": "Fields besides the email address, which is always asked"},
    )
    purposes = fields.List(
        fields.Nested(PurposeSpecSchema),
        validate=validate.Length(1, 10),
        metadata={"description": "Default: the kind's own purpose, required"},
    )
    consent_versions = fields.Dict(
        keys=fields.String(validate=validate.OneOf(i18n.LANGUAGES)),
        values=fields.Dict(
            keys=_line(40),
            values=fields.Integer(strict=True, validate=validate.Range(1, 2**31 - 1)),
        ),
        allow_none=True,
        metadata={
            "description": "Consent text version per language and purpose; "
            "default: the form's current version, else the newest"
        },
    )
    allowed_origins = fields.List(
        _line(200), load_default=list, validate=validate.Length(0, ORIGINS_MAX)
    )
    thank_you = _per_language(THANK_YOU_MAX, multiline=True)
    redirect_url = fields.String(
        allow_none=True,
        validate=[validate.Length(0, 500), _ONE_LINE],
        metadata={"description": "A page on one of the allowed origins"},
    )
    proof_of_work = fields.Boolean(load_default=False)
    follow_up_fields = fields.List(
        fields.String(validate=validate.OneOf(PROFILE_FIELDS)),
        load_default=list,
        validate=validate.Length(0, len(PROFILE_FIELDS)),
    )


def definition_from(loaded: Mapping[str, Any], base: Definition | None = None) -> Definition:
    """A :class:`Definition` from what :class:`FormDefinitionSchema` loaded; with ``base``,
    the keys not given keep the base's values (a PATCH)."""
    values: dict[str, Any] = {}
    for key, value in loaded.items():
        if key == "fields_":
            values["fields"] = [FieldSpec(f["name"], f["required"]) for f in value]
        elif key == "purposes":
            values["purposes"] = [PurposeSpec(p["purpose"], p["required"]) for p in value]
        elif key in _DEFINITION_KEYS:
            values[key] = value
    if base is not None:
        return dataclasses.replace(base, **values)
    if "purposes" not in values and values.get("kind") in DEFAULT_PURPOSE:
        values["purposes"] = [PurposeSpec(DEFAULT_PURPOSE[FormKind(values["kind"])], True)]
    return Definition(**values)


_DEFINITION_KEYS = {f.name for f in dataclasses.fields(Definition)}
