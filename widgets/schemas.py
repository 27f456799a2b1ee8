"""Marshmallow schemas of gated assets (the admin API's shapes)."""

from __future__ import annotations

from marshmallow import EXCLUDE, fields, validate

from leadvault import sizes
from leadvault.schema_messages import Schema
from leadvault.untrusted import STAFF_TEXT_REFUSED
from widgets.assets import MAX_BYTES, MAX_DESCRIPTION, MAX_LISTED, MAX_TITLE

_ALLOWED = f"[^{STAFF_TEXT_REFUSED}]"
# A title: at least one visible character, no control characters.
TITLE_PATTERN = rf"^{_ALLOWED}*[^\s{STAFF_TEXT_REFUSED}]{_ALLOWED}*$"
DESCRIPTION_PATTERN = f"^{_ALLOWED}*$"


_TITLE = [validate.Length(1, MAX_TITLE), validate.Regexp(TITLE_PATTERN)]


def _description() -> fields.String:
    return fields.String(
        load_default="",
        validate=[validate.Length(0, MAX_DESCRIPTION), validate.Regexp(DESCRIPTION_PATTERN)],
    )


class AssetTextsSchema(Schema):
    """Title (English required, German optional) and description per language."""

    title_en = fields.String(required=True, validate=_TITLE)
    title_de = fields.String(
        load_default=None,
        validate=_TITLE,
        metadata={"description": "Left out: the English title is shown"},
    )
    description_en = _description()
    description_de = _description()


class AssetUploadSchema(AssetTextsSchema):
    """multipart/form-data: the file and its texts."""

    file = fields.Raw(
        required=True,
        metadata={
            "type": "string",
            "format": "binary",
            "description": "PDF, EPUB, ZIP, DOCX, XLSX, PPTX, PNG or JPEG; at most "
            + sizes.readable(MAX_BYTES),
        },
    )


class FormRefSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    active = fields.Boolean(required=True)


class AssetSchema(Schema):
    id = fields.String(required=True, attribute="public_id")
    title = fields.String(required=True)
    titles = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    descriptions = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    filename = fields.String(required=True)
    content_type = fields.String(required=True)
    size = fields.Integer(required=True)
    sha256 = fields.String(required=True)
    download_count = fields.Integer(required=True)
    created_at = fields.DateTime(required=True)
    archived_at = fields.DateTime(required=True, allow_none=True)
    forms = fields.List(
        fields.Nested(FormRefSchema),
        required=True,
        metadata={"description": "The forms that deliver this asset"},
    )


class AssetQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    archived = fields.Boolean(
        load_default=False, metadata={"description": "List the archived assets instead"}
    )
    limit = fields.Integer(load_default=100, validate=validate.Range(1, MAX_LISTED))
