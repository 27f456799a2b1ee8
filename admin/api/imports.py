"""The admin API's imports: ``POST /api/v1/imports`` takes a CSV file of contacts.

POST, an entry in the audit trail; the service is the command line's
(``export.imports``); errors are problem+json with a message naming the field.
The operation joins the blueprint of ``admin.api.exports``.
"""

from __future__ import annotations

import io
from typing import Any

from flask import Response, current_app, request
from marshmallow import ValidationError, fields, validate

from admin import auth
from admin.api.exports import bp
from admin.api.registry import operation
from admin.api.schemas import PRINTABLE
from admin.api.views import Refusal, _dump, _errors, _query
from admin.permissions import Permission
from export import imports
from leadvault import db, i18n
from leadvault.app import runtime
from leadvault.i18n import N_
from leadvault.schema_messages import Schema

_NO_FILE = N_("Send the CSV file as the request body (or as 'file').")

# An upload is read into memory once; larger files go through `leadvault import`.
IMPORT_MAX_BYTES = 20 * 1024 * 1024


class ImportRequest(Schema):
    """How to read the uploaded CSV (query parameters; the body is the file). An unknown
    parameter is refused (422): ``dryrun=true`` for ``dry_run`` would import for real."""

    preset = fields.String(
        load_default="auto",
        validate=validate.OneOf(["auto", "leadvault", "mautic", "hubspot", "listmonk"]),
    )
    purpose = fields.List(
        fields.String(validate=[validate.Length(max=40), PRINTABLE]), load_default=list
    )
    map = fields.List(
        fields.String(validate=[validate.Length(max=300), PRINTABLE]),
        load_default=list,
        metadata={"description": "COLUMN=FIELD, overriding the preset's mapping"},
    )
    language = fields.String(load_default="en", validate=validate.OneOf(i18n.LANGUAGES))
    encoding = fields.String(load_default="utf-8", validate=[validate.Length(max=40), PRINTABLE])
    dry_run = fields.Boolean(load_default=False)


class ImportLineSchema(Schema):
    line = fields.Integer(required=True)
    outcome = fields.String(required=True)
    consent = fields.String(allow_none=True)
    detail = fields.String(allow_none=True)


class ImportReportSchema(Schema):
    """What an import did (a dry run: would do); lines by number, never by address."""

    batch = fields.String(allow_none=True)
    dry_run = fields.Boolean(required=True)
    preset = fields.String(required=True)
    mapping = fields.List(fields.String(), required=True)
    ignored_columns = fields.List(fields.String(), required=True)
    lines = fields.Integer(required=True)
    created = fields.Integer(required=True)
    merged = fields.Integer(required=True)
    refused = fields.Integer(required=True)
    consent_imported = fields.Integer(required=True)
    repermission = fields.Integer(required=True)
    summary = fields.String(required=True)
    outcomes = fields.List(fields.Nested(ImportLineSchema), required=True)


def _overrides(pairs: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs:
        column, sep, field = pair.rpartition("=")
        if not sep or not column.strip() or not field.strip():
            raise ValidationError({"map": [f"{pair!r}: use COLUMN=FIELD"]})
        found[column.strip()] = field.strip()
    return found


@operation(
    bp,
    "POST",
    "/imports",
    summary="Import contacts from the CSV file in the body (dry_run: a report per line only)",
    permission=Permission.LEADS_WRITE,
    query=ImportRequest,
    response=ImportReportSchema,
    body_types=("text/csv",),
    max_bytes=IMPORT_MAX_BYTES,
    tag="exports",
)
def import_contacts() -> Response:
    """Import the CSV in the body (or a multipart ``file``); answers with the report.

    Query: ``purpose`` (repeat; default newsletter), ``preset``, ``map=COLUMN=FIELD``
    (repeat), ``language``, ``encoding``, ``dry_run``. Each line's outcome names the
    line, never the address; a dry run lists every line, a real run the refused ones.
    """
    args = _query(ImportRequest)
    try:
        overrides = _overrides(args["map"])
    except ValidationError as exc:
        raise Refusal(422, errors=_errors(exc)) from None
    upload = request.files.get("file")
    data = upload.read() if upload is not None else request.get_data(cache=False)
    if not data:
        raise Refusal(400, _NO_FILE)
    actor, ip = auth.current_actor(), auth.client_ip()
    # The import is a job of its own (a transaction per 200 lines): end this request's
    # transaction first, so that on SQLite it does not hold the write lock meanwhile.
    db.session().commit()
    lines: list[dict[str, Any]] = []
    dry_run = args["dry_run"]

    def on_line(result: imports.LineResult) -> None:
        if dry_run or result.outcome == "refused":
            lines.append(
                {
                    "line": result.line,
                    "outcome": result.outcome,
                    "consent": result.consent_translated(),
                    "detail": result.detail_translated(),
                }
            )

    try:
        report = imports.run(
            runtime(current_app).session_factory,
            io.BytesIO(data),
            purposes=args["purpose"] or ["newsletter"],
            preset=args["preset"],
            overrides=overrides,
            language=args["language"],
            encoding=args["encoding"],
            dry_run=dry_run,
            actor=actor,
            ip=ip,
            on_line=on_line,
        )
    except (imports.MappingError, imports.ImportRefused) as exc:
        raise Refusal(422, exc.translated()) from None
    return _dump(
        ImportReportSchema,
        {
            "batch": report.batch,
            "dry_run": report.dry_run,
            "preset": report.preset,
            "mapping": report.mapping,
            "ignored_columns": report.ignored,
            "lines": report.lines,
            "created": report.created,
            "merged": report.merged,
            "refused": report.refused,
            "consent_imported": report.consent_imported,
            "repermission": report.repermission,
            "summary": report.summary(),
            "outcomes": lines,
        },
    )
