"""The preference center (consents, the data we hold, the mails we sent) and the rights
pages it links to: access export (Art. 15/20) and erasure (Art. 17). GET shows, only
POST changes (mail scanners follow links).

The pages are on consent's blueprint (``consent.preferences``, ``consent.access`` …):
``consent/views.py`` adds them with :func:`add_routes`.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    make_response,
    request,
    send_from_directory,
    url_for,
)

from consent import correction, rights, service
from consent.link_pages import link_problem
from leadvault import audit, db, i18n, leads, looks, signals
from leadvault.app import runtime
from leadvault.crypto import TokenExpired, TokenInvalid
from leadvault.i18n import N_
from leadvault.web import language, mark_private, private_page, request_meta

SCHEMA_FOLDER = Path(__file__).parent / "static"


def add_routes(bp: Blueprint) -> None:
    """These pages on ``bp`` (consent's), each under its function's name as endpoint."""
    bp.add_url_rule("/p/<token>", view_func=preferences, methods=["GET"])
    bp.add_url_rule("/p/<token>/<action>", view_func=change_purpose, methods=["POST"])
    bp.add_url_rule("/a/<token>", view_func=access, methods=["GET", "POST"])
    bp.add_url_rule("/e/<token>", view_func=erase, methods=["GET", "POST"])
    bp.add_url_rule("/schemas/access-export.v1.json", view_func=export_schema, methods=["GET"])


def _prefs_lead(token: str) -> Any:
    session = db.session()
    lead = rights.read_prefs(session, token)
    i18n.set_language(lead.language)
    return lead


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


def export_schema() -> Response:
    return send_from_directory(
        SCHEMA_FOLDER, "access-export.v1.json", mimetype="application/schema+json"
    )
