"""Confirmation pages of the double opt-in. GET shows, only POST confirms."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    jsonify,
    make_response,
    request,
    send_from_directory,
    url_for,
)
from jinja2 import pass_context

from consent import correction, optin, rights, service
from consent.link_pages import link_problem, optin_link_gone
from leadvault import audit, db, i18n, leads, looks, signals
from leadvault.api import require_token
from leadvault.app import runtime
from leadvault.crypto import TokenExpired, TokenInvalid
from leadvault.i18n import N_
from leadvault.rate_limits import within_limits
from leadvault.web import (
    csrf,
    invalid_link_page,
    language,
    mark_private,
    private_page,
    request_meta,
)

SCHEMA_FOLDER = Path(__file__).parent / "static"

bp = Blueprint("consent", __name__, template_folder="templates")


@bp.context_processor
def _labels() -> dict[str, Any]:
    @pass_context
    def purpose_label(context: Any, purpose: str) -> str:
        return service.purpose_label(purpose, context.get("lang") or language())

    return {"purpose_label": purpose_label, "state_labels": service.STATE_LABELS}


@bp.route("/c/<token>", methods=["GET", "POST"])
def confirm(token: str) -> Response:
    session = db.session()
    try:
        check = optin.read_optin_token(session, token)
    except TokenInvalid:
        return invalid_link_page()
    if check.request is not None and i18n.supported(check.request.language):
        i18n.set_language(check.request.language)
    if check.request is None:  # erased with its lead, or replaced by a newer mail
        return optin_link_gone()
    if check.request.confirmed_at is not None:
        return _confirmed(check.request)
    if check.expired:
        return private_page("consent/expired.html", 410, token=token)
    if request.method != "POST":  # GET and HEAD (link scanners) never confirm
        lang = language()
        names = [service.purpose_label(p, lang) for p in check.request.purposes]
        return private_page("consent/confirm.html", purposes=names, token=token)
    if optin.confirm(session, check.request, meta=request_meta()) is optin.Confirmation.GONE:
        return optin_link_gone()  # erased between the page and the button
    return _confirmed(check.request)


def _confirmed(request: Any) -> Response:
    return private_page(
        "consent/message.html",
        title=N_("Thank you, you have confirmed"),
        text=N_("Your confirmation is recorded. You can withdraw it at any time."),
        extra_links=_confirmation_links(request),
    )


def _confirmation_links(optin: Any) -> list[tuple[str, str]]:
    """Links other packages offer right away (the whitepaper download, …)."""
    found: list[tuple[str, str]] = []
    for _receiver, result in signals.confirmation_links.send(
        db.session(),
        lead_id=optin.lead_id,
        purposes=list(optin.purposes),
        form_ref=optin.form_ref,
        language=language(),
    ):
        found.extend(result or [])
    return found


@bp.post("/c/<token>/resend")
def resend(token: str) -> Response:
    session = db.session()
    try:
        check = optin.read_optin_token(session, token)
    except TokenInvalid:
        return invalid_link_page()
    if not within_limits("resend", runtime(current_app).settings.rate_limit_resend):
        return _too_many()  # per IP
    if check.request is None:  # nothing left to resend (the link's page said so too)
        return optin_link_gone()
    i18n.set_language(check.request.language)
    lead = leads.get(session, check.request.lead_id)
    # Per address: past the limit quietly no further mail (the last one still works).
    if (
        check.expired
        and lead is not None
        and within_limits(
            "resend",
            runtime(current_app).settings.rate_limit_resend,
            ip=False,
            email_index=lead.email_index,
        )
    ):
        optin.resend_optin(session, check.request)
    # The same reply whether or not a mail went out (the per-address limit stays quiet).
    return private_page(
        "consent/message.html",
        title=N_("Please check your inbox"),
        text=N_("If your request is still open, a new confirmation mail is on its way."),
    )


# --- one-click unsubscribe (RFC 8058) ----------------------------------------


@bp.route("/u/<token>", methods=["GET", "POST"])
@csrf.exempt  # mail providers POST without cookies or CSRF tokens (RFC 8058)
def unsubscribe(token: str) -> Response:
    session = db.session()
    try:
        lead_id, purpose = rights.read_unsubscribe(session, token)
    except TokenInvalid:
        return invalid_link_page()
    lead = leads.get(session, lead_id)
    if lead is not None:
        i18n.set_language(lead.language)
    name = service.purpose_label(purpose, language())
    if request.method != "POST":  # GET and HEAD only show the button
        return private_page("consent/unsubscribe.html", purpose=name, token=token)
    if request.form.get("List-Unsubscribe") != "One-Click":
        return private_page("consent/unsubscribe.html", 400, purpose=name, token=token)
    if lead is not None:
        service.withdraw(
            session, lead_id, [purpose], meta=request_meta(), detail="one-click unsubscribe"
        )
    # The same reply for an erased lead: the address is off the list either way.
    return private_page(
        "consent/message.html",
        title=N_("You are unsubscribed"),
        text=N_("You will not receive these mails any more."),
    )


# --- manage my data ----------------------------------------------------------


@bp.get("/manage")
def manage() -> Response:
    return private_page("consent/manage.html")


def _too_many() -> Response:
    return private_page(
        "consent/message.html",
        429,
        title=N_("Something is not right"),
        text=N_("Too many requests. Please wait a moment and try again."),
    )


@bp.post("/manage")
def manage_request() -> Response:
    email = request.form.get("email", "").strip()
    limit = runtime(current_app).settings.rate_limit_manage
    if not within_limits("manage", limit):  # per IP: told to wait
        return _too_many()
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        return private_page(
            "consent/manage.html",
            422,
            error=i18n.translate(
                language(), "Please enter a valid email address, like name@example.com."
            ),
            email=email,
        )
    # Per address: past the limit no further mail, and the same reply; the mails sent
    # already hold working links, so flooding an address locks nobody out.
    if within_limits("manage", limit, ip=False, email=email):
        # Queued like a submission: the same work whether or not the address is a
        # lead's, so the reply's timing tells nothing (the worker looks it up).
        rights.queue_manage_request(db.session(), email, language())
        g.wake_worker = True
    # Identical whether or not the address belongs to a lead.
    return private_page(
        "consent/message.html",
        title=N_("Please check your inbox"),
        text=N_("If we hold data about this address, a mail with a link is on its way."),
    )


# --- preference center -------------------------------------------------------


def _prefs_lead(token: str) -> Any:
    session = db.session()
    lead = rights.read_prefs(session, token)
    i18n.set_language(lead.language)
    return lead


@bp.get("/p/<token>")
def preferences(token: str) -> Response:
    session = db.session()
    try:
        lead = _prefs_lead(token)
    except (TokenInvalid, TokenExpired, rights.LinkGone) as exc:
        return link_problem(exc)
    export = rights.access_export(session, lead)
    sources = [
        item
        for _receiver, found in signals.describe_sources.send(
            session, lead_id=lead.id, lang=lead.language
        )
        for item in found or []
    ]
    mails = [
        (dt.datetime.fromisoformat(m["sent_at"] or m["created_at"]), m["subject"])
        for m in export["mails"]
    ]
    pending_email = correction.pending_email(session, lead)
    looks.record(
        lead.id,
        actor="subject",
        fields=["email", *export["lead"]["profile"], *(["pending_email"] if pending_email else [])],
        via="preference_center",
    )
    return private_page(
        "consent/preferences.html",
        time_zone=leads.zone_of(session, lead, runtime(current_app).settings.zone),
        token=token,
        purposes=rights.purpose_views(session, lead),
        export=export,
        sources=sorted(sources, key=lambda item: item[0], reverse=True),
        mails=sorted(mails, key=lambda item: item[0], reverse=True),
        pending_email=pending_email,
        correct_url=url_for("consent_correction.correct_form", token=token),
        access_url=url_for(
            "consent.access", token=rights.single_use_token(session, rights.ACCESS, lead.id)
        ),
        erase_url=url_for(
            "consent.erase",
            token=rights.single_use_token(session, rights.ERASE, lead.id),
            back=token,
        ),
    )


@bp.post("/p/<token>/<action>")
def change_purpose(token: str, action: str) -> Response:
    session = db.session()
    try:
        lead = _prefs_lead(token)
    except (TokenInvalid, TokenExpired, rights.LinkGone) as exc:
        return link_problem(exc)
    purpose = request.form.get("purpose", "")
    if purpose not in service.purpose_keys(session) or action not in {"withdraw", "grant"}:
        return private_page(
            "consent/message.html",
            400,
            title=N_("Something is not right"),
            text=N_("The request could not be understood."),
        )
    if action == "withdraw":
        service.withdraw(
            session, lead.id, [purpose], meta=request_meta(), detail="preference center"
        )
        return private_page(
            "consent/message.html",
            title=N_("Consent withdrawn"),
            text=N_("Your consent is withdrawn. Queued mails for it are cancelled."),
            back=url_for("consent.preferences", token=token),
        )
    try:
        rights.grant(session, lead, purpose, language(), request_meta())
    except service.ConsentError as exc:  # no text to ask with in this language yet
        return private_page(
            "consent/message.html",
            409,
            title=N_("Something is not right"),
            text=exc.message,
            text_values=exc.values,
            back=url_for("consent.preferences", token=token),
        )
    return private_page(
        "consent/message.html",
        title=N_("Please check your inbox"),
        text=N_("Please confirm with the link in the mail we just sent you."),
        back=url_for("consent.preferences", token=token),
    )


@bp.route("/a/<token>", methods=["GET", "POST"])
def access(token: str) -> Response:
    """The access export (Art. 15/20): GET shows a button, its POST downloads the JSON
    document and uses up the link (a scanner following the link spends nothing)."""
    session = db.session()
    try:
        lead = rights.use_single_use(session, rights.ACCESS, token, spend=request.method == "POST")
    except (TokenInvalid, TokenExpired, rights.LinkGone) as exc:
        return link_problem(exc)
    if request.method != "POST":
        i18n.set_language(lead.language)
        return private_page("consent/access.html", token=token)
    body = json.dumps(rights.access_export(session, lead), indent=2, ensure_ascii=False)
    # The privacy team's log of access requests (issue 12.7): when, not what.
    audit.record_lead(
        session, lead.id, audit.Action.LEAD_ACCESS_EXPORTED, actor="subject", detail={"via": "link"}
    )
    response = mark_private(make_response(body))
    response.mimetype = "application/json"
    response.headers["Content-Disposition"] = 'attachment; filename="my-data.json"'
    return response


def _back_to_prefs(lead: Any) -> str | None:
    """The preference center the erase page was opened from (its own signed link), else None."""
    back = request.args.get("back", "")
    try:
        same = back and rights.read_prefs(db.session(), back).id == lead.id
    except (TokenInvalid, TokenExpired, rights.LinkGone):
        return None
    return url_for("consent.preferences", token=back) if same else None


@bp.route("/e/<token>", methods=["GET", "POST"])
def erase(token: str) -> Response:
    """Erasure (Art. 17): GET asks for confirmation, POST erases; the link works once."""
    session = db.session()
    try:
        lead = rights.use_single_use(session, rights.ERASE, token, spend=request.method == "POST")
    except (TokenInvalid, TokenExpired, rights.LinkGone) as exc:
        return link_problem(exc)
    i18n.set_language(lead.language)
    if request.method != "POST":
        return private_page("consent/erase.html", token=token, back=_back_to_prefs(lead))
    rights.erase(session, lead, actor="subject", reason="self_service")
    return private_page(
        "consent/message.html",
        title=N_("Your data is erased"),
        text=N_("We erased everything we held about you."),
    )


@bp.get("/schemas/access-export.v1.json")
def export_schema() -> Response:
    return send_from_directory(
        SCHEMA_FOLDER, "access-export.v1.json", mimetype="application/schema+json"
    )


# --- API for the owner's newsletter tool -------------------------------------


@bp.get("/api/v1/consent")
@require_token("consent:read")
def api_consent() -> Response | tuple[Response, int]:
    return _consent_states(request.args.get("email"))


@bp.post("/api/v1/consent/lookup")
@csrf.exempt  # server-to-server: the API token authorizes
@require_token("consent:read")
def api_consent_lookup() -> Response | tuple[Response, int]:
    """The same answer for ``{"email": …}`` in a JSON body: keeps the address out of
    URLs, which proxies and access logs record."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return jsonify(error='the body must be a JSON object like {"email": "…"}', status=400), 400
    email = body.get("email")
    return _consent_states(email if isinstance(email, str) else None)


def _consent_states(email: str | None) -> Response | tuple[Response, int]:
    email = (email or "").strip()
    if not email:
        return jsonify(error="the parameter 'email' is required", status=400), 400
    session = db.session()
    lead = leads.find_by_email(session, email)
    if lead is None:
        return jsonify(error="no lead with this address", status=404), 404
    states = service.states(session, lead.id)
    return jsonify(
        purposes={
            purpose: (states[purpose].status if purpose in states else "none")
            for purpose in sorted(service.purpose_keys(session))
        },
        unsubscribe_urls={
            purpose: rights.unsubscribe_url(session, lead.id, purpose)
            for purpose in sorted(service.purpose_keys(session))
        },
    )
