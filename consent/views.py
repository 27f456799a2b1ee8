"""Consent's public pages: the double opt-in's confirmation, one-click unsubscribe, the
request for a "manage my data" link; and the consent API for the owner's newsletter tool.
GET shows, only POST changes. The preference center and the access and erasure pages
it links to are ``consent/rights_views.py``, on this same blueprint."""

from __future__ import annotations

from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask import Blueprint, Response, current_app, g, jsonify, request
from jinja2 import pass_context

from consent import optin, rights, rights_views, service
from consent.link_pages import optin_link_gone
from leadvault import db, i18n, leads, signals
from leadvault.api import require_token
from leadvault.app import runtime
from leadvault.crypto import TokenInvalid
from leadvault.i18n import N_
from leadvault.rate_limits import within_limits
from leadvault.web import csrf, invalid_link_page, language, private_page, request_meta

bp = Blueprint("consent", __name__, template_folder="templates")
# The preference center and the rights it links to (Art. 15-17), on this blueprint.
rights_views.add_routes(bp)


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
