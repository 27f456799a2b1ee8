"""The admin API's exports: ``POST /api/v1/exports`` streams a lead selection as CSV,
XLSX or NDJSON. Its blueprint carries the imports (``admin.api.imports``) and the
webhook endpoints (``admin.api.webhooks``) too.

POST although an export only reads: it is an entry in the audit trail, and GET
and HEAD never change anything (mail scanners and prefetchers follow links). The
service is the command line's (``export.service``); errors are problem+json with
a message naming the field.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Response, current_app, request, stream_with_context
from marshmallow import EXCLUDE, RAISE, ValidationError, fields, validate, validates_schema

from admin import auth
from admin.api.dates import day_field, refuse_empty_span
from admin.api.registry import operation
from admin.api.schemas import PRINTABLE, STAGES
from admin.api.views import Refusal, _errors, api_blueprint
from admin.leads import GRADES
from admin.permissions import Permission
from export import presets as export_presets
from export import service
from export import writers as export_writers
from leadvault.app import runtime
from leadvault.db import read_only, unit_of_work
from leadvault.i18n import N_
from leadvault.schema_messages import Schema

# The API's guard and refusals (views.api_blueprint): a console session's writes carry
# the CSRF token, tokens need none.
bp = api_blueprint("api_exports")


_PIECE = 64 * 1024


class ExportRequest(Schema):
    """What to export: the format and columns (or a CRM preset) and the lead filters.
    A JSON body's unknown key is refused (422): ``"stages"`` for ``"stage"`` would
    otherwise export every lead. The console list's form posts its other fields too."""

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
    created_from = day_field(load_default=None, metadata={"description": "UTC day, inclusive"})
    created_to = day_field(
        load_default=None,
        metadata={"description": "UTC day, exclusive; must lie after created_from (422 otherwise)"},
    )
    # The leads chosen one by one (the console list's selection); with the filters above.
    lead = fields.List(fields.UUID(), load_default=list, validate=validate.Length(max=500))

    @validates_schema
    def _span(self, data: dict[str, Any], **_: Any) -> None:
        refuse_empty_span(data, "created_from", "created_to", last_included=False)


def _day(value: dt.date | None) -> dt.datetime | None:
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC) if value else None


def _export_args() -> dict[str, Any]:
    """The request's JSON object or form post, checked; refused as every operation
    refuses (views._body: 400 for what is not an object, 422 naming the fields)."""
    if request.is_json:
        raw = request.get_json(silent=True)
        if not isinstance(raw, dict):
            raise Refusal(400, N_("The request could not be understood."))
    else:
        form = request.form
        many = {"stage", "grade", "lead"}
        raw = {key: form.get(key) for key in form if key not in many}
        raw.update({key: form.getlist(key) for key in many})
        raw = {k: v for k, v in raw.items() if v not in ("", None)}
    try:
        return ExportRequest().load(raw, unknown=RAISE if request.is_json else EXCLUDE)
    except ValidationError as exc:
        raise Refusal(422, errors=_errors(exc)) from None


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
    args = _export_args()
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
            # Valid fields that do not go together (an unknown column, a preset with
            # columns): 422 with the message, as the imports and webhooks answer.
            raise Refusal(422, exc.translated()) from None
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
