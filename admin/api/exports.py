"""The admin API's exports and imports: ``POST /api/v1/exports`` streams a lead
selection as CSV, XLSX or NDJSON; ``POST /api/v1/imports`` takes a CSV file.

Both are POST although an export only reads: each is an entry in the audit
trail, and GET and HEAD never change anything (mail scanners and prefetchers
follow links). The services are the command line's (``export.service``,
``export.imports``); errors are problem+json with a message naming the field.
"""

from __future__ import annotations

import datetime as dt
import io
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, request, stream_with_context
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from admin import auth
from admin.api import problems
from admin.api.registry import operation
from admin.api.schemas import PRINTABLE, STAGES
from admin.leads import GRADES
from admin.permissions import Permission
from export import imports, service
from export import presets as export_presets
from export import writers as export_writers
from leadvault import db, i18n
from leadvault.app import runtime
from leadvault.db import read_only, unit_of_work
from leadvault.i18n import N_
from leadvault.web import csrf

bp = Blueprint("api_exports", __name__, url_prefix="/api/v1")
# Tokens need no CSRF token; a console session (cookie) does: see _check_csrf.
csrf.exempt(bp)
_CORRECT = N_("Please correct the marked fields.")
_NO_FILE = N_("Send the CSV file as the request body (or as 'file').")


def _check_csrf() -> None:
    """A request signed in by cookie must carry the CSRF token (a form of the console)."""
    if not auth.authenticated_by_token():
        csrf.protect()


# An upload is read into memory once; larger files go through `leadvault import`.
IMPORT_MAX_BYTES = 20 * 1024 * 1024
_PIECE = 64 * 1024


class ExportRequest(Schema):
    """What to export: the format and columns (or a CRM preset) and the lead filters."""

    class Meta:
        unknown = EXCLUDE

    format = fields.String(load_default="csv", validate=validate.OneOf(export_writers.FORMATS))
    columns = fields.String(
        load_default=None,
        validate=[validate.Length(max=2000), PRINTABLE],
        metadata={"description": "comma-separated column keys (default: the standard set)"},
    )
    preset = fields.String(
        load_default=None, validate=validate.OneOf(sorted(export_presets.PRESETS))
    )
    dialect = fields.String(load_default="excel", validate=validate.OneOf(export_writers.DIALECTS))
    stage = fields.List(fields.String(validate=validate.OneOf(STAGES)), load_default=list)
    grade = fields.List(fields.String(validate=validate.OneOf(GRADES)), load_default=list)
    purpose = fields.String(load_default=None, validate=[validate.Length(max=40), PRINTABLE])
    created_from = fields.Date(load_default=None)
    created_to = fields.Date(load_default=None, metadata={"description": "exclusive"})
    # The leads chosen one by one (the console list's selection); with the filters above.
    lead = fields.List(fields.UUID(), load_default=list, validate=validate.Length(max=500))


class ImportRequest(Schema):
    """How to read the uploaded CSV (query parameters; the body is the file)."""

    class Meta:
        unknown = EXCLUDE

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


def _day(value: dt.date | None) -> dt.datetime | None:
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC) if value else None


def _export_args() -> dict[str, Any]:
    if request.is_json:
        raw = request.get_json(silent=True)
        if not isinstance(raw, dict):
            raise ValidationError({"_schema": ["Send a JSON object."]})
        return ExportRequest().load(raw)
    form = request.form
    many = {"stage", "grade", "lead"}
    raw = {key: form.get(key) for key in form if key not in many}
    raw.update({key: form.getlist(key) for key in many})
    return ExportRequest().load({k: v for k, v in raw.items() if v not in ("", None)})


@operation(
    bp,
    "POST",
    "/exports",
    summary="Stream the selected leads as CSV, XLSX or NDJSON (one audit entry: filter, rows)",
    permission=Permission.LEADS_EXPORT,
    body=ExportRequest,
    response_types=tuple(sorted(set(service.MEDIA_TYPES.values()))),
    personal=True,
    tag="exports",
)
def export_leads() -> Response:
    """Stream the selected leads; the audit entry is written when the stream ends."""
    _check_csrf()
    try:
        args = _export_args()
    except ValidationError as exc:
        return problems.problem(422, _CORRECT, errors=exc.messages)
    rt = runtime(current_app)
    selection, filters = service.selection(
        stages=args["stage"],
        grades=args["grade"],
        purpose=args["purpose"],
        created_from=_day(args["created_from"]),
        created_to=_day(args["created_to"]),
        lead_ids=args["lead"],
    )
    with read_only(rt.session_factory) as session:
        try:
            plan = service.prepare(
                session,
                format=args["format"],
                columns=args["columns"],
                preset=args["preset"],
                dialect=args["dialect"],
            )
        except service.ExportError as exc:
            return problems.problem(400, str(exc))
    return download(plan, selection, filters, actor=auth.current_actor(), ip=auth.client_ip())


def download(
    plan: service.Export, selection: Any, filters: str, *, actor: str, ip: str | None
) -> Response:
    """The export as a streamed download (the API's and the console's): read in a
    read-only session of its own; its audit entry is written when the stream ends (or
    breaks off), with the rows written."""
    rt = runtime(current_app)

    def pieces() -> Iterator[bytes]:
        tally = [0]
        completed = False
        try:
            with read_only(rt.session_factory) as session:
                if plan.format == "xlsx":
                    yield from _xlsx(session, selection, plan, filters, tally)
                else:
                    yield from service.stream(session, selection, plan, tally=tally)
            completed = True
        finally:
            with unit_of_work(rt.session_factory) as session:
                service.audited(
                    session,
                    plan,
                    actor=actor,
                    filters=filters if completed else f"{filters or 'none'} (broken off)",
                    rows_written=tally[0],
                    ip=ip,
                )

    response = Response(stream_with_context(pieces()), mimetype=None)
    response.headers["Content-Type"] = plan.content_type
    response.headers["Content-Disposition"] = f'attachment; filename="{plan.filename()}"'
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _xlsx(
    session: Any, selection: Any, plan: service.Export, filters: str, tally: list[int]
) -> Iterator[bytes]:
    """XLSX cannot stream while it is written: a temporary file, then its bytes."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "leads.xlsx"
        tally[0] = service.write(session, selection, plan, path, filters=filters)
        with path.open("rb") as handle:
            while piece := handle.read(_PIECE):
                yield piece


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
    errors=(413,),
    tag="exports",
)
def import_contacts() -> Response:
    """Import the CSV in the body (or a multipart ``file``); answers with the report.

    Query: ``purpose`` (repeat; default newsletter), ``preset``, ``map=COLUMN=FIELD``
    (repeat), ``language``, ``encoding``, ``dry_run``. Each line's outcome names the
    line, never the address; a dry run lists every line, a real run the refused ones.
    """
    request.max_content_length = IMPORT_MAX_BYTES
    _check_csrf()
    try:
        raw: dict[str, Any] = {k: v for k, v in request.args.items() if k not in {"purpose", "map"}}
        raw.update(purpose=request.args.getlist("purpose"), map=request.args.getlist("map"))
        args = ImportRequest().load(raw)
        overrides = _overrides(args["map"])
    except ValidationError as exc:
        return problems.problem(422, _CORRECT, errors=exc.messages)
    upload = request.files.get("file")
    data = upload.read() if upload is not None else request.get_data(cache=False)
    if not data:
        return problems.problem(400, _NO_FILE)
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
                    "consent": result.consent,
                    "detail": result.detail,
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
        return problems.problem(422, str(exc))
    body = {
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
    }
    from flask import json

    response = Response(json.dumps(body), status=200, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


# --- webhooks -----------------------------------------------------------------------


class WebhookRequest(Schema):
    """A new endpoint: its URL, the event types (default all) and the purpose that lets
    its payloads carry contact data (none: ids only)."""

    class Meta:
        unknown = EXCLUDE

    url = fields.String(required=True, validate=validate.Length(min=8, max=2000))
    events = fields.List(fields.String(validate=validate.Length(max=40)), load_default=list)
    purpose = fields.String(load_default=None, validate=validate.Length(max=40))
    description = fields.String(load_default="", validate=validate.Length(max=200))


def _endpoint_json(endpoint: Any, host: str, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "host": host,
        "status": endpoint.status,
        "events": list(endpoint.event_types),
        "purpose": endpoint.purpose,
        "description": endpoint.description,
        "failing_since": endpoint.failing_since.isoformat() if endpoint.failing_since else None,
        "disabled_reason": endpoint.disabled_reason,
        "deliveries": counts,
    }


def _json(body: Any, status: int = 200) -> Response:
    from flask import json

    response = Response(json.dumps(body), status=status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/webhooks")
@auth.require(Permission.SETTINGS_MANAGE)
def webhooks_list() -> Response:
    """Endpoints (host only: a URL may carry a capability token) and delivery counts."""
    from export import webhooks

    session = db.session()
    counts = webhooks.counts(session)
    return _json(
        [
            _endpoint_json(
                endpoint,
                webhooks.host_of(webhooks.config_of(session, endpoint)),
                counts.get(endpoint.id, {}),
            )
            for endpoint in webhooks.list_endpoints(session)
        ]
    )


@bp.post("/webhooks")
@auth.require(Permission.SETTINGS_MANAGE)
def webhooks_add() -> Response:
    """Add an endpoint; the answer holds its signing secret, shown this once."""
    from export import webhooks

    _check_csrf()
    raw = request.get_json(silent=True)
    try:
        if not isinstance(raw, dict):
            raise ValidationError({"_schema": ["Send a JSON object."]})
        args = WebhookRequest().load(raw)
    except ValidationError as exc:
        return problems.problem(422, _CORRECT, errors=exc.messages)
    session = db.session()
    try:
        endpoint, secret = webhooks.create_endpoint(
            session,
            url=args["url"],
            event_types=args["events"],
            purpose=args["purpose"],
            description=args["description"],
        )
    except webhooks.WebhookError as exc:
        return problems.problem(422, str(exc))
    host = webhooks.host_of(webhooks.config_of(session, endpoint))
    return _json({**_endpoint_json(endpoint, host, {}), "secret": secret}, 201)


@bp.post("/webhooks/<int:endpoint_id>/<any(disable, enable, 'rotate-secret', redeliver):action>")
@auth.require(Permission.SETTINGS_MANAGE)
def webhooks_action(endpoint_id: int, action: str) -> Response:
    """Disable, enable, rotate the secret (both sign during the overlap) or queue the
    failed events again (same webhook-id, so receivers de-duplicate)."""
    from export import webhooks

    _check_csrf()
    session = db.session()
    try:
        endpoint = webhooks.get_endpoint(session, endpoint_id)
    except webhooks.WebhookError:
        return problems.problem(404)
    try:
        if action == "disable":
            held = webhooks.disable(session, endpoint, reason="disabled through the API")
            return _json({"id": endpoint_id, "status": endpoint.status, "held": held})
        if action == "enable":
            webhooks.enable(session, endpoint)
            return _json({"id": endpoint_id, "status": endpoint.status})
        if action == "rotate-secret":
            secret = webhooks.rotate_secret(session, endpoint, overlap_hours=None)
            until = endpoint.previous_secret_until
            return _json(
                {
                    "id": endpoint_id,
                    "secret": secret,
                    "previous_signs_until": until.isoformat() if until else None,
                }
            )
        queued = webhooks.redeliver(
            session, endpoint=endpoint, event_id=None, failed_only=True, since=None
        )
        return _json({"id": endpoint_id, "queued": queued})
    except webhooks.WebhookError as exc:
        return problems.problem(409, str(exc))
