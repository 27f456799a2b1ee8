"""The loader files, gated downloads and the progressive-profiling page."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    request,
    send_file,
    send_from_directory,
)

from capture import service as capture_service
from capture import submission_checks
from consent import rights
from consent import service as consent_service
from consent.link_pages import link_problem
from leadvault import db, i18n
from leadvault.app import runtime
from leadvault.crypto import TokenExpired, TokenInvalid
from leadvault.i18n import N_
from leadvault.rate_limits import within_limits
from leadvault.web import invalid_link_page, language, message_page, private_page
from widgets import service

bp = Blueprint("widgets", __name__, template_folder="templates")

_YEAR = 365 * 24 * 3600


@bp.get("/widgets/<version>/<name>")
def loader(version: str, name: str) -> Response:
    if name not in service.LOADER_FILES:
        abort(404)
    current = version == service.loader_version()
    response = send_from_directory(service.STATIC, name, max_age=_YEAR if current else 0)
    if current:
        response.headers["Cache-Control"] = f"public, max-age={_YEAR}, immutable"
    else:  # an old release's URL: serve today's file, but let nobody keep it
        response.headers["Cache-Control"] = "no-cache"
    response.headers["Access-Control-Allow-Origin"] = "*"  # public code, no credentials
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


@bp.route("/d/<token>", methods=["GET", "POST"])
def download(token: str) -> Response:
    """The link in the mail shows a page; its button (a POST) downloads the file and counts
    it. Mail scanners and link checkers follow links but do not press buttons."""
    session = db.session()
    try:
        lead, asset, form, expired, resendable = service.read_download(session, token)
    except TokenInvalid:
        return invalid_link_page()
    if lead is not None:
        i18n.set_language(lead.language)
    if lead is None or asset is None or form is None:
        return message_page(
            410,
            title=N_("This document is not available"),
            text=N_("The document or your request no longer exists."),
        )
    if expired and not resendable:
        return _too_old()
    if expired or not consent_service.has_consent(session, lead.id, "whitepaper"):
        return private_page("widgets/expired.html", 410, token=token)
    path = service.asset_file(session, asset)
    if not path.is_file():
        return message_page(
            410,
            title=N_("This document is not available"),
            text=N_("The document or your request no longer exists."),
        )
    if request.method != "POST":
        return private_page(
            "widgets/download.html",
            token=token,
            title=asset.title_in(lead.language),
            filename=asset.filename,
            size=asset.size,
        )
    service.record_download(session, lead, asset)
    response = send_file(
        path,
        mimetype=asset.content_type,
        as_attachment=True,
        download_name=asset.filename,
        conditional=True,
        max_age=0,
    )
    response.headers["Cache-Control"] = "private, no-store"  # a file, not a page
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _too_old() -> Response:
    return message_page(
        410,
        title=N_("This download link has expired"),
        text=N_("It is too old to ask for a new one. Please request the document again."),
    )


@bp.post("/d/<token>/resend")
def resend(token: str) -> Response:
    session = db.session()
    try:
        lead, asset, form, _expired, resendable = service.read_download(session, token)
    except TokenInvalid:
        return invalid_link_page()
    limit = runtime(current_app).settings.rate_limit_resend
    if not within_limits("resend", limit):  # per IP: told to wait
        return message_page(
            429,
            title=N_("Something is not right"),
            text=N_("Too many requests. Please wait a moment and try again."),
        )
    if lead is not None:
        i18n.set_language(lead.language)
    if not resendable:
        return _too_old()
    if (
        lead is not None
        and asset
        and form
        and consent_service.has_consent(session, lead.id, "whitepaper")
        # Per address: past the limit quietly no further mail (the last ones still work).
        and within_limits("resend", limit, ip=False, email_index=lead.email_index)
    ):
        service.queue_asset_mail(session, lead, asset, form)
    return message_page(
        title=N_("Please check your inbox"),
        text=N_("If your request is still valid, a mail with a new link is on its way."),
    )


def _profile_context(form_id: str, token: str) -> tuple[Any, Any]:
    session = db.session()
    form = capture_service.get_form(session, form_id)
    if form is None:
        abort(404)
    lead = service.read_profile_token(session, form, token)
    if lead is None:
        raise rights.LeadErased("lead erased")
    i18n.set_language(lead.language)
    return form, lead


@bp.route("/f/<form_id>/more/<token>", methods=["GET", "POST"])
def more(form_id: str, token: str) -> Response:
    """Returning leads are asked only for what we do not know yet, two fields at a time."""
    session = db.session()
    try:
        form, lead = _profile_context(form_id, token)
    except TokenExpired:
        return message_page(
            410,
            title=N_("This link has expired"),
            text=N_("For your protection, these links are valid for a limited time."),
        )
    except rights.LeadErased as exc:
        return link_problem(exc)
    except TokenInvalid:
        return invalid_link_page()
    missing = service.follow_up_missing(session, form, lead)
    if request.method == "POST":
        values = {}
        errors = {}
        for name in missing:
            value = request.form.get(name, "").strip()
            problem = submission_checks.text_problem(name, value)
            if len(value) > 200:
                errors[name] = i18n.translate(
                    language(), "Please use at most %(max)s characters.", max=200
                )
            elif problem is not None:
                errors[name] = i18n.translate(language(), problem)
            elif value:
                values[name] = value
        if errors:
            return private_page(
                "widgets/more.html", 422, fields=missing, errors=errors, values=request.form
            )
        service.save_profile(session, lead, values)
        return message_page(title=N_("Thank you"), text=N_("We saved your details."))
    if not missing:
        return message_page(
            title=N_("Thank you"),
            text=N_("We have everything we need. Thank you!"),
        )
    return private_page("widgets/more.html", fields=missing, errors={}, values={})
