"""The preference center's correction pages (Art. 16): the form, and the new address's
confirmation. GET shows, only POST changes (mail scanners follow links)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request, url_for

from consent import correction, rights
from consent.link_pages import link_problem
from leadvault import db, i18n, leads, looks, profile
from leadvault.app import runtime
from leadvault.crypto import TokenExpired, TokenInvalid
from leadvault.i18n import N_
from leadvault.models import Lead
from leadvault.rate_limits import within_limits
from leadvault.web import language, private_page, request_meta

bp = Blueprint("consent_correction", __name__, template_folder="templates")

_GONE = (TokenInvalid, TokenExpired, rights.LinkGone)


# Why a spent correction link is spent (the preference center has the address in use).
_CORRECTION_USED = N_(
    "The address was confirmed already, or a newer change replaced this one. "
    "Your preference center shows the address we use."
)


def _form(
    token: str, lead: Lead, values: dict[str, str], errors: dict[str, str], *, stored: bool
) -> Response:
    """The form; ``stored``: ``values`` are the lead's data (decrypted), not what was typed."""
    session = db.session()
    pending = correction.pending_email(session, lead)
    shown = [*(values if stored else []), *(["pending_email"] if pending else [])]
    if shown:
        looks.record(lead.id, actor="subject", fields=shown, via="correction_form")
    return private_page(
        "consent/correct.html",
        422 if errors else 200,
        token=token,
        values=values,
        errors=errors,
        fields=correction.FIELDS,
        company_sizes=profile.COMPANY_SIZES,
        pending=pending,
        back=url_for("consent.preferences", token=token),
    )


@bp.get("/p/<token>/correct")
def correct_form(token: str) -> Response:
    session = db.session()
    try:
        lead = rights.read_prefs(session, token)
    except _GONE as exc:
        return link_problem(exc, used_text=_CORRECTION_USED)
    i18n.set_language(lead.language)
    values = {"email": leads.email_of(session, lead), **leads.attributes_of(session, lead)}
    return _form(token, lead, values, {}, stored=True)


@bp.post("/p/<token>/correct")
def correct(token: str) -> Response:
    session = db.session()
    try:
        lead = rights.read_prefs(session, token)
    except _GONE as exc:
        return link_problem(exc, used_text=_CORRECTION_USED)
    i18n.set_language(lead.language)
    values = correction.cleaned(request.form)
    errors = correction.problems(values, language())
    if errors:
        return _form(token, lead, values, errors, stored=False)
    limit = runtime(current_app).settings.rate_limit_manage
    if correction.changes_address(session, lead, values["email"]) and not within_limits(
        "email-change", limit, email_index=lead.email_index
    ):
        # Counted per IP and per lead: each new address gets a mail from us.
        return private_page(
            "consent/message.html",
            429,
            title=N_("Something is not right"),
            text=N_("Too many requests. Please wait a moment and try again."),
            back=url_for("consent.preferences", token=token),
        )
    outcome = correction.correct(session, lead, values, language(), ip=request_meta().ip)
    if outcome.email_pending:
        text = N_(
            "Your data is corrected. To change your address, please confirm it with the link "
            "we just sent to the new address; until then we keep using the old one."
        )
    else:
        text = N_("Your data is corrected.")
    return private_page(
        "consent/message.html",
        title=N_("Thank you"),
        text=text,
        back=url_for("consent.preferences", token=token),
    )


@bp.route("/address/<token>", methods=["GET", "POST"])
def confirm_address(token: str) -> Response:
    session = db.session()
    try:
        lead, change = correction.read_email_change(
            session, token, for_update=request.method == "POST"
        )
    except _GONE as exc:
        return link_problem(exc, used_text=_CORRECTION_USED)
    i18n.set_language(lead.language)
    if request.method != "POST":
        # A link in the notice to the old address changes it back: the page says so.
        undo = correction.is_undo(session, lead, change)
        return private_page("consent/confirm_address.html", token=token, undo=undo)
    try:
        correction.confirm_email_change(session, lead, change, ip=request_meta().ip)
    except leads.AddressTaken:
        return private_page(
            "consent/message.html",
            409,
            title=N_("Something is not right"),
            text=correction.ADDRESS_TAKEN,
        )
    return private_page(
        "consent/message.html",
        title=N_("Your address is changed"),
        text=N_("From now on we write to this address."),
    )
