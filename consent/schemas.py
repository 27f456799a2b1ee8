"""Marshmallow schemas of purposes and consent text versions (the admin API's shapes)."""

from __future__ import annotations

from marshmallow import EXCLUDE, fields, validate

from consent.service import MAX_TEXT_LENGTH
from leadvault import i18n
from leadvault.schema_messages import Schema
from leadvault.untrusted import STAFF_TEXT_REFUSED

_ALLOWED = f"[^{STAFF_TEXT_REFUSED}]"
_VISIBLE = rf"[^\s{STAFF_TEXT_REFUSED}]"
# At least one visible character, no control characters (line breaks are fine).
TEXT_PATTERN = f"^{_ALLOWED}*{_VISIBLE}{_ALLOWED}*$"


class FormUseSchema(Schema):
    """A form that shows a version."""

    id = fields.String(required=True)
    name = fields.String(required=True)
    active = fields.Boolean(required=True)


class ConsentTextSchema(Schema):
    id = fields.Integer(required=True)
    purpose = fields.String(required=True)
    language = fields.String(required=True)
    version = fields.Integer(required=True)
    text = fields.String(required=True)
    sha256 = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    forms = fields.List(
        fields.Nested(FormUseSchema),
        required=True,
        metadata={"description": "The forms that show this version"},
    )


class PurposeSchema(Schema):
    key = fields.String(required=True)
    label = fields.String(required=True)
    marketing = fields.Boolean(required=True)
    versions = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.Nested(ConsentTextSchema)),
        required=True,
        metadata={"description": "Per language, the newest versions first"},
    )


class PurposeQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    versions = fields.Integer(
        load_default=10,
        validate=validate.Range(1, 50),
        metadata={"description": "How many versions per language (newest first)"},
    )


class NewTextSchema(Schema):
    language = fields.String(required=True, validate=validate.OneOf(i18n.LANGUAGES))
    text = fields.String(
        required=True,
        validate=[validate.Length(1, MAX_TEXT_LENGTH), validate.Regexp(TEXT_PATTERN)],
        metadata={"description": "The exact wording shown next to the checkbox"},
    )
    adopt = fields.Boolean(
        load_default=True,
        metadata={
            "description": "Forms showing an older version of this purpose and language "
            "show the new one from now (default); false leaves them as they are"
        },
    )


class DiffPartSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(["same", "added", "removed"]))
    text = fields.String(required=True)


class PublishedSchema(Schema):
    text = fields.Nested(ConsentTextSchema, required=True)
    previous_version = fields.Integer(required=True, allow_none=True)
    diff = fields.List(
        fields.Nested(DiffPartSchema),
        required=True,
        metadata={"description": "Word by word against the previous version"},
    )
    forms_moved = fields.List(
        fields.String(),
        required=True,
        metadata={"description": "Public ids of the forms that now show the new version"},
    )
