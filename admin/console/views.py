"""The console's pages (thin: reports, queries and presentation live beside this file)."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField

from admin import auth, reports
from admin import leads as lead_service
from admin.console import bulk, lead_detail, nav, queries
from admin.console import dashboard as dashboard_module
from admin.permissions import Permission
from leadvault import db, i18n, untrusted
from leadvault.i18n import N_
from leadvault.models import Lead
from leadvault.web import error_response

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
LANGUAGE_COOKIE = "lv_console_lang"
_Form = TypeVar("_Form", bound=FlaskForm)
# Scripts and styles from Leadvault only; nothing inline, nothing from elsewhere.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; connect-src 'self'; "
    # The forms section previews the hosted form page (our own origin) in an iframe.
    "frame-src 'self'"
)


@bp.before_request
def use_chosen_language() -> None:
    """The language chosen with the switch (a cookie), or ``?lang=``; also for the
    sign-in and account pages, which wear the console's look."""
    chosen = request.args.get("lang") or request.cookies.get(LANGUAGE_COOKIE)
    if i18n.supported(chosen):
        i18n.set_language(chosen or "")


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    # Pages may show personal data: never stored by a browser or a proxy.
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers["Referrer-Policy"] = "same-origin"
    return response


@bp.context_processor
def page_context() -> dict[str, Any]:
    """What the console's templates use (also the sign-in and account pages')."""
    user = auth.current_user() if not (request.endpoint or "").endswith(".static") else None
    return {
        "nav_entries": nav.entries(auth.can) if user is not None else [],
        "staff_user": user,
        "can": auth.can,
        "P": Permission,
        "languages": i18n.LANGUAGES,
        "stage_label": dashboard_module.stage_label,
        "consent_label": dashboard_module.consent_label,
    }


def page(template: str, status: int = 200, /, **context: Any) -> Response:
    return make_response(render_template(template, **context), status)


def typed_again(form: _Form) -> _Form:
    """A refused form's text fields, to be shown again: what was typed, each character
    staff text refuses as U+FFFD (``untrusted.typed_again``; one-line for inputs)."""
    for field in form:
        if isinstance(field, StringField) and isinstance(field.data, str):
            one_line = not isinstance(field, TextAreaField)
            field.data = untrusted.typed_again(field.data, one_line=one_line)
    return form


@bp.get("/")
def home() -> Response:
    """The first page the account may open."""
    user = auth.current_user()
    if user is None:
        raise auth.NotSignedIn
    for entry in nav.entries(auth.can):
        return redirect(url_for(entry.endpoint))
    raise auth.Forbidden(Permission.REPORTS_READ)


@bp.post("/language")
def language() -> Response:
    """Remember the console language in a cookie (not a change of any record)."""
    auth.current_user()  # keeps the sign-in cookie fresh
    chosen = i18n.supported(request.form.get("lang"))
    if chosen is None:
        return _error(400, N_("There is no such language."))
    target = _same_site(request.form.get("next")) or url_for("console.home")
    response = redirect(target)
    response.set_cookie(
        LANGUAGE_COOKIE,
        chosen,
        max_age=365 * 86400,
        httponly=True,
        samesite="Lax",
        secure=request.is_secure,
        path="/",
    )
    return response


def _same_site(target: str | None) -> str | None:
    """A path on this site only (no scheme, no host, no protocol-relative //)."""
    if not target or len(target) > 2000 or not target.startswith("/") or target.startswith("//"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target:
        return None
    return target


def _error(status: int, message: str) -> Response:
    body, code = error_response(status, message)
    return make_response(body, code)


# --- dashboard ----------------------------------------------------------------------------


@bp.get("/dashboard")
@auth.require(Permission.REPORTS_READ)
def dashboard() -> Response:
    raw_days = request.args.get("days", str(reports.PERIODS[0]))
    # A period the switch does not offer (a hand-made or old link): the default period
    # with the switch described by the message, as a 400 like a marked filter.
    period_error = None
    if raw_days not in {str(d) for d in reports.PERIODS}:
        period_error = i18n.gettext(
            N_("The dashboard covers the last 30 or 90 days: the last %(days)d are shown."),
            days=reports.PERIODS[0],
        )
        raw_days = str(reports.PERIODS[0])
    from leadvault.app import runtime

    may_list = auth.can(Permission.LEADS_READ)

    def link(**args: str) -> str | None:
        return url_for("console.leads", **args) if may_list else None

    board = dashboard_module.build(
        db.session(),
        days=int(raw_days),
        zone=runtime(current_app).settings.zone,
        link=link,
    )
    return page(
        "console/dashboard.html",
        400 if period_error else 200,
        section="dashboard",
        board=board,
        period_error=period_error,
    )


# --- leads --------------------------------------------------------------------------------


def _assigned_to() -> int | None:
    """None when the account sees every lead; else the salesperson whose leads it sees
    (-1, none at all, for a sales account not linked to a salesperson)."""
    if auth.can(Permission.LEADS_READ):
        return None
    salesperson_id = getattr(auth.current_user(), "salesperson_id", None)
    return -1 if salesperson_id is None else salesperson_id


@bp.get("/leads")
@auth.require(Permission.LEADS_READ_ASSIGNED)
def leads() -> Response:
    errors: dict[str, str] = {}
    try:
        filters = queries.parse_filters(request.args)
    except queries.FilterErrors as exc:
        # The list again with each unusable filter marked and the others kept.
        filters, errors = exc.kept, exc.texts()
    assigned_to = _assigned_to()
    session = db.session()
    rows, next_cursor = (
        ([], None)
        if errors
        else lead_service.list_leads(
            session,
            filters.service_filters(assigned_to=assigned_to),
            sort=filters.sort,
            cursor=filters.cursor,
            limit=queries.PAGE_SIZE,
        )
    )
    form_choices = lead_service.forms(session)
    return page(
        "console/leads.html",
        400 if errors else 200,
        section="leads",
        filters=filters,
        filter_errors=errors,
        # What was typed into a marked field, shown again for correcting.
        typed={name: request.args.get(name, "")[:100] for name in errors},
        rows=rows,
        next_cursor=next_cursor,
        forms=form_choices,
        stages=queries.STAGES,
        grades=queries.GRADES,
        sales_only=assigned_to is not None,
        reasons=lead_service.CHANGE_REASONS,
        not_found=g.get("console_not_found", False),
    )


@bp.post("/leads/find")
@auth.require(Permission.LEADS_READ_ASSIGNED)
def find_lead() -> Response:
    """Exact search by address (blind index), by POST: an address never goes in a URL."""
    email = (request.form.get("email") or "").strip()
    if not email or len(email) > 320:
        g.console_not_found = True
        return _not_found_list()
    lead = lead_service.lookup(db.session(), email, assigned_to=_assigned_to())
    if lead is not None:
        return redirect(url_for("console.lead", lead_id=lead.id))
    g.console_not_found = True
    return _not_found_list()


def _not_found_list() -> Response:
    response = leads()
    response.status_code = 404
    return response


# --- bulk actions on the list's selection -------------------------------------------------


def _chosen_leads() -> list[Lead]:
    ids = bulk.chosen_ids(request.form.getlist("lead"))
    return bulk.visible_leads(db.session(), ids, assigned_to=_assigned_to())


@bp.post("/leads/bulk/stage")
@auth.require(Permission.LEADS_WRITE_ASSIGNED)
def bulk_stage() -> Response:
    """Move the chosen leads to one stage, with a reason; one audit entry each."""
    try:
        outcomes = bulk.change_stages(
            db.session(),
            _chosen_leads(),
            (request.form.get("to") or "")[:16],
            (request.form.get("reason") or "")[:40],
            actor=auth.current_actor(),
            ip=auth.client_ip(),
        )
    except bulk.BulkError as exc:
        return _error(422, str(exc))
    return page("console/bulk_done.html", section="leads", action="stage", outcomes=outcomes)


@bp.post("/leads/bulk/erase")
@auth.require(Permission.LEADS_ERASE)
def bulk_erase() -> Response:
    """First a confirmation page naming the chosen leads; erased only on its button."""
    try:
        chosen = _chosen_leads()
    except bulk.BulkError as exc:
        return _error(422, str(exc))
    if request.form.get("confirmed") != "1":
        return page("console/bulk_erase.html", section="leads", leads=chosen)
    outcomes = bulk.erase(db.session(), chosen, actor=auth.current_actor(), ip=auth.client_ip())
    return page("console/bulk_done.html", section="leads", action="erase", outcomes=outcomes)


# --- one lead -----------------------------------------------------------------------------


def _lead_or_404(lead_id: uuid.UUID) -> Lead:
    lead = lead_service.get(db.session(), lead_id, assigned_to=_assigned_to())
    if lead is None:
        abort(404)
    return lead


def _lead_page(lead: Lead, status: int = 200, **extra: Any) -> Response:
    session = db.session()
    return page(
        "console/lead.html",
        status,
        section="leads",
        lead=lead_detail.summary(session, lead),
        timeline=lead_detail.timeline(session, lead.id),
        consents=lead_detail.consent_rows(session, lead.id),
        reasons=lead_service.CHANGE_REASONS,
        may_reveal=auth.can(Permission.LEADS_REVEAL_ASSIGNED),
        may_change=auth.can(Permission.LEADS_WRITE_ASSIGNED),
        **extra,
    )


@bp.get("/leads/<uuid:lead_id>")
@auth.require(Permission.LEADS_READ_ASSIGNED)
def lead(lead_id: uuid.UUID) -> Response:
    return _lead_page(_lead_or_404(lead_id))


@bp.post("/leads/<uuid:lead_id>/reveal")
@auth.require(Permission.LEADS_REVEAL_ASSIGNED)
def reveal(lead_id: uuid.UUID) -> Response:
    """Personal data: shown in the answer to this POST only, and recorded in the audit trail."""
    found = _lead_or_404(lead_id)
    data = lead_detail.reveal(db.session(), found, actor=auth.current_actor(), ip=auth.client_ip())
    return _lead_page(found, personal=data)


@bp.post("/leads/<uuid:lead_id>/stage")
@auth.require(Permission.LEADS_WRITE_ASSIGNED)
def change_stage(lead_id: uuid.UUID) -> Response:
    found = _lead_or_404(lead_id)
    try:
        lead_detail.change_stage(
            db.session(),
            found,
            (request.form.get("to") or "")[:16],
            (request.form.get("reason") or "")[:40],
            actor=auth.current_actor(),
            ip=auth.client_ip(),
        )
    except lead_detail.StageChangeError as exc:
        return _lead_page(found, 422, stage_error=str(exc))
    return redirect(url_for("console.lead", lead_id=found.id, changed="1"))
