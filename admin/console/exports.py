"""Console pages for exports, imports and webhooks (issue 14.4), over the services the
command line and the API use (``export.service``, ``export.imports``,
``export.webhooks``).

- Exports: the lead list's filters (its query string, as ``/console/leads`` takes
  it) or leads chosen one by one (``lead=<uuid>``, repeated), columns or a CRM
  preset, format and CSV dialect (German Excel's preselected for a German
  console); the download streams and is one audit entry (``admin.api.exports.download``).
- Imports: a CSV upload with a mapping preset, a dry run that reports every line,
  then the real run (the file is chosen again: nothing uploaded is kept).
- Webhooks: endpoints with their state, added with event types and purpose; test
  ping, secret rotation (the new ``whsec_`` secret shown once), disable and
  enable, the per-attempt log and redelivery of failed events.
"""

from __future__ import annotations

import io
import uuid
from typing import Any

from flask import Response, current_app, redirect, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from admin import auth
from admin import leads as lead_service
from admin.api import exports as api_exports
from admin.api import imports as api_imports
from admin.api import webhooks as api_webhooks
from admin.console import queries
from admin.console.views import _error, bp, page
from admin.permissions import Permission
from consent import service as consent_service
from export import columns as export_columns
from export import import_mapping, imports, service, webhooks, writers
from export import presets as export_presets
from leadvault import audit, db, i18n
from leadvault.app import runtime
from leadvault.i18n import N_

MAX_CHOSEN = 500  # leads chosen one by one (the list's pages, as the API allows)
MAX_SHOWN_LINES = 500  # lines of an import report shown on the page
IMPORT_PRESETS = ("auto", *import_mapping.PRESETS)
# The lead list's filters an export takes over (queries.parse_filters reads them).
FILTER_ARGS = (
    "stage",
    "reached",
    "grade",
    "form",
    "utm_source",
    "touch",
    "suspect",
    "score_min",
    "score_max",
    "since",
    "until",
)


# --- exports --------------------------------------------------------------------------


def _filter_args(source: Any) -> dict[str, str]:
    return {name: source.get(name) for name in FILTER_ARGS if source.get(name)}


def _chosen(values: list[str]) -> list[uuid.UUID]:
    if len(values) > MAX_CHOSEN:
        raise queries.FilterError(N_("Choose at most 500 leads at a time."))
    try:
        return list(dict.fromkeys(uuid.UUID(value[:36]) for value in values))
    except ValueError:
        raise queries.FilterError(N_("The request could not be understood.")) from None


def _selection(source: Any) -> tuple[Any, str, int]:
    """The selected leads (the lead list's filters, or leads chosen one by one), the
    selection in words for the audit entry, and how many leads it holds now."""
    chosen = _chosen(source.getlist("lead"))
    if chosen:
        selection, words = service.selection(lead_ids=chosen)
    else:
        filters = queries.parse_filters(_filter_args(source))
        selection = lead_service.selection(filters.service_filters(assigned_to=None))
        words = "; ".join(f"{k}={v}" for k, v in filters.query_args(sort="created").items())
    return selection, words, service.count(db.session(), selection)


def _export_form(status: int = 200, *, error: str | None = None, chosen: Any = None) -> Response:
    session = db.session()
    source = chosen if chosen is not None else request.args
    try:
        _, words, matching = _selection(source)
    except queries.FilterErrors as exc:
        return _unusable_filter(source, exc)
    except queries.FilterError as exc:
        return _error(400, str(exc))
    purposes = export_columns.purpose_keys(session)
    columns = list(export_columns.FIXED.values())
    consent = [export_columns.consent_columns(p) for p in purposes]
    form = source if chosen is not None else {}
    default_dialect = "excel-de" if i18n.current_language() == "de" else "excel"
    return page(
        "console/exports.html",
        status,
        section="exports",
        filter_args=_filter_args(source),
        chosen=source.getlist("lead"),
        words=words,
        matching=matching,
        columns=columns,
        consent=consent,
        selected=set(form.getlist("column")) if form else set(export_columns.DEFAULT),
        presets={name: export_presets.get(name).title for name in export_presets.PRESETS},
        preset=form.get("preset", "") if form else "",
        formats=writers.FORMATS,
        format=form.get("format", "csv") if form else "csv",
        dialect=form.get("dialect", default_dialect) if form else default_dialect,
        error=error,
    )


def _unusable_filter(source: Any, exc: queries.FilterErrors) -> Response:
    """The export page without its form: each filter that cannot be used, named, and a
    link back to the lead list, which marks them (an export of other leads than meant
    is worse than none)."""
    return page(
        "console/exports.html",
        400,
        section="exports",
        problems=list(exc.texts().values()),
        filter_args=_filter_args(source),
        chosen=[],
    )


@bp.get("/exports")
@auth.require(Permission.LEADS_EXPORT)
def exports() -> Response:
    """Choose what to export of the selected leads."""
    return _export_form()


@bp.post("/exports")
@auth.require(Permission.LEADS_EXPORT)
def export_download() -> Response:
    """Stream the file; one audit entry with the selection and the rows written."""
    form = request.form
    try:
        selection, words, _matching = _selection(form)
    except queries.FilterErrors as exc:
        return _unusable_filter(form, exc)
    except queries.FilterError as exc:
        return _error(400, str(exc))
    chosen_columns = form.getlist("column")
    preset = form.get("preset") or None
    try:
        plan = service.prepare(
            db.session(),
            format=form.get("format", "csv"),
            columns=None if preset else (chosen_columns or ["__none__"]),
            preset=preset,
            dialect=form.get("dialect", "excel"),
        )
    except service.ExportError:
        message = (
            N_("Choose at least one column or a CRM preset.")
            if not preset and not chosen_columns
            else N_("The export could not be made from these choices.")
        )
        return _export_form(422, error=message, chosen=form)
    # The download reads in a session of its own: end this request's transaction.
    db.session().commit()
    return api_exports.download(
        plan, selection, words, actor=auth.current_actor(), ip=auth.client_ip()
    )


# --- imports --------------------------------------------------------------------------


def _import_form(status: int = 200, **context: Any) -> Response:
    purposes = sorted(export_columns.purpose_keys(db.session()))
    form = context.pop("form", None) or {}
    return page(
        "console/imports.html",
        status,
        section="imports",
        presets=IMPORT_PRESETS,
        purposes=purposes,
        purpose_label=lambda key: consent_service.purpose_label(key, i18n.current_language()),
        chosen_purposes=set(form.getlist("purpose")) if form else {"newsletter"},
        preset=form.get("preset", "auto") if form else "auto",
        language=form.get("language", i18n.current_language()) if form else i18n.current_language(),
        encoding=form.get("encoding", "utf-8") if form else "utf-8",
        **context,
    )


@bp.get("/imports")
@auth.require(Permission.LEADS_WRITE)
def imports_page() -> Response:
    """Upload a CSV of contacts: check it (dry run), then import it."""
    return _import_form()


@bp.post("/imports")
@auth.require(Permission.LEADS_WRITE)
def import_upload() -> Response:
    """Run the import (or its dry run) on the uploaded file; the report per line."""
    form = request.form
    try:
        upload = request.files.get("file")
        data = upload.read(api_imports.IMPORT_MAX_BYTES + 1) if upload is not None else b""
    except RequestEntityTooLarge:
        data = b"x" * (api_imports.IMPORT_MAX_BYTES + 1)
    if not data:
        return _import_form(422, form=form, error=N_("Choose a CSV file."))
    if len(data) > api_imports.IMPORT_MAX_BYTES:
        return _import_form(
            413, form=form, error=N_("The file is too large: import it with `leadvault import`.")
        )
    dry_run = form.get("mode") != "run"
    language = form.get("language") or i18n.current_language()
    lines: list[imports.LineResult] = []

    def on_line(result: imports.LineResult) -> None:
        if len(lines) < MAX_SHOWN_LINES and (dry_run or result.outcome == "refused"):
            lines.append(result)

    # The import is a job of its own (a transaction per chunk of lines).
    db.session().commit()
    try:
        report = imports.run(
            runtime(current_app).session_factory,
            io.BytesIO(data),
            purposes=form.getlist("purpose") or ["newsletter"],
            preset=form.get("preset", "auto"),
            language=language,
            encoding=(form.get("encoding") or "utf-8")[:40],
            dry_run=dry_run,
            actor=auth.current_actor(),
            ip=auth.client_ip(),
            on_line=on_line,
        )
    except (imports.MappingError, imports.ImportRefused) as exc:
        return _import_form(
            422, form=form, error=N_("The file cannot be imported:"), why=exc.translated()
        )
    return _import_form(form=form, report=report, lines=lines, shown_max=MAX_SHOWN_LINES)


# --- webhooks -------------------------------------------------------------------------


def _endpoint_or_404(endpoint_id: int) -> Any:
    try:
        return webhooks.get_endpoint(db.session(), endpoint_id)
    except webhooks.WebhookError:
        return None


def _webhooks_page(status: int = 200, **context: Any) -> Response:
    session = db.session()
    counts = webhooks.counts(session)
    endpoints = [
        (
            endpoint,
            webhooks.host_of(webhooks.config_of(session, endpoint)),
            counts.get(endpoint.id, {}),
        )
        for endpoint in webhooks.list_endpoints(session)
    ]
    return page(
        "console/webhooks.html",
        status,
        section="webhooks",
        endpoints=endpoints,
        event_types=webhooks.EVENT_TYPES,
        purposes=sorted(export_columns.purpose_keys(session)),
        **context,
    )


@bp.get("/webhooks")
@auth.require(Permission.SETTINGS_MANAGE)
def webhooks_page() -> Response:
    """Endpoints with their state and deliveries; a form to add one."""
    return _webhooks_page()


@bp.post("/webhooks")
@auth.require(Permission.SETTINGS_MANAGE)
def webhook_add() -> Response:
    """Add an endpoint (SSRF-guarded); its signing secret is shown this once."""
    form = request.form
    session = db.session()
    try:
        endpoint, secret = webhooks.create_endpoint(
            session,
            url=(form.get("url") or "").strip()[:2000],
            event_types=form.getlist("event"),
            purpose=form.get("purpose") or None,
            description=form.get("description") or "",
        )
    except webhooks.WebhookError as exc:
        return _webhooks_page(
            422,
            error=N_("The endpoint was not added:"),
            why=exc.translated(),
            field=exc.field or "url",
            form=form,
        )
    api_webhooks.record(
        session,
        endpoint,
        audit.Action.WEBHOOK_ADDED,
        events=endpoint.event_types,
        purpose=endpoint.purpose,
    )
    return page(
        "console/webhook_secret.html",
        section="webhooks",
        endpoint=endpoint,
        secret=secret,
        added=True,
    )


@bp.get("/webhooks/<int:endpoint_id>")
@auth.require(Permission.SETTINGS_MANAGE)
def webhook(endpoint_id: int) -> Response:
    """One endpoint: its events, the log of deliveries and of each attempt."""
    endpoint = _endpoint_or_404(endpoint_id)
    if endpoint is None:
        return _error(404, N_("There is no such webhook endpoint."))
    session = db.session()
    return page(
        "console/webhook.html",
        section="webhooks",
        endpoint=endpoint,
        host=webhooks.host_of(webhooks.config_of(session, endpoint)),
        messages=webhooks.messages(session, endpoint),
        attempts=webhooks.attempts(session, endpoint),
        done=request.args.get("done"),
        count=request.args.get("count", type=int),
    )


_ACTIONS = ("test", "rotate-secret", "disable", "enable", "redeliver")


@bp.post(
    "/webhooks/<int:endpoint_id>/<any(test, 'rotate-secret', disable, enable, redeliver):action>"
)
@auth.require(Permission.SETTINGS_MANAGE)
def webhook_action(endpoint_id: int, action: str) -> Response:
    """Ping, rotate the secret (both sign during the overlap), disable, enable, or queue
    the failed events again (same webhook-id, so receivers de-duplicate)."""
    endpoint = _endpoint_or_404(endpoint_id)
    if endpoint is None:
        return _error(404, N_("There is no such webhook endpoint."))
    session = db.session()
    count = None
    try:
        if action == "test":
            if endpoint.status != "active":
                return _error(409, N_("The endpoint is disabled; enable it first."))
            webhooks.enqueue_test(session, endpoint)
            api_webhooks.record(session, endpoint, audit.Action.WEBHOOK_TESTED)
        elif action == "rotate-secret":
            secret = webhooks.rotate_secret(session, endpoint, overlap_hours=None)
            api_webhooks.record(session, endpoint, audit.Action.WEBHOOK_SECRET_ROTATED)
            return page(
                "console/webhook_secret.html",
                section="webhooks",
                endpoint=endpoint,
                secret=secret,
                added=False,
            )
        elif action == "disable":
            count = webhooks.disable(session, endpoint, reason="disabled in the console")
            api_webhooks.record(session, endpoint, audit.Action.WEBHOOK_DISABLED, held=count)
        elif action == "enable":
            webhooks.enable(session, endpoint)
            api_webhooks.record(session, endpoint, audit.Action.WEBHOOK_ENABLED)
        else:
            count = webhooks.redeliver(session, endpoint=endpoint, failed_only=True)
            api_webhooks.record(session, endpoint, audit.Action.WEBHOOK_REDELIVERED, queued=count)
    except webhooks.WebhookError as exc:
        return _error(409, exc.translated())
    args: dict[str, Any] = {"endpoint_id": endpoint.id, "done": action}
    if count is not None:
        args["count"] = count
    return redirect(url_for("console.webhook", **args))
