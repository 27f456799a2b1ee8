"""What the public form endpoints answer with: the hosted form page, the reply to an
accepted (or silently dropped) submission, the reply to a refused one, and the CORS and
framing (CSP) headers each carries. The routes are ``capture/views.py``.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlsplit

from flask import Response, current_app, jsonify, make_response, redirect, render_template, request

from capture import bots, origins, service
from capture.models import Form, FormKind
from leadvault import db, i18n
from leadvault.app import runtime
from leadvault.i18n import N_


def _settings() -> Any:
    return runtime(current_app).settings


def own_origin() -> str:
    return _origin_of(_settings().base_url)


@functools.cache
def _origin_of(url: str) -> str:
    return origins.normalise_origin(url)


def _frame_csp(form: Form, *, script: bool) -> str:
    ancestors = " ".join(["'self'", *form.allowed_origins])
    targets = ["'self'"]
    if form.redirect_url:
        # The redirect is a page (with a path) on one of the form's origins.
        parts = urlsplit(form.redirect_url)
        targets.append(origins.normalise_origin(f"{parts.scheme}://{parts.netloc}"))
    script_src = "'self'" if script else "'none'"
    return (
        f"default-src 'none'; style-src 'self'; img-src 'self'; script-src {script_src}; "
        f"connect-src 'self'; form-action {' '.join(targets)}; "
        f"frame-ancestors {ancestors}; base-uri 'none'"
    )


def cors(response: Response, form: Form) -> Response:
    origin = request.headers.get("Origin")
    if origin and origin != "null" and service.origin_allowed(form, origin, own_origin()):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        response.headers["Access-Control-Max-Age"] = "600"
    response.headers.add("Vary", "Origin")
    return response


# The hosted page's heading for a form without a title in any language: what the form is
# for, never its name (the name is for staff only).
HEADINGS = {
    FormKind.NEWSLETTER: N_("Subscribe to our newsletter"),
    FormKind.WHITEPAPER: N_("Download the whitepaper"),
    FormKind.CONTACT: N_("Contact us"),
}


def heading(form: Form, lang: str) -> str:
    """The hosted page's h1 and title: the form's public title, else what the form is for."""
    return form.public_title(lang) or i18n.translate(lang, HEADINGS[FormKind(form.kind)])


def render_form_page(
    form: Form,
    lang: str,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    status: int = 200,
) -> Response:
    session = db.session()
    body = render_template(
        "capture/form.html",
        form=form,
        heading=heading(form, lang),
        fields=form.fields,
        consents=service.consent_texts_for(session, form, lang),
        render_token=bots.issue_render_token(session, form),
        challenge=bots.pow_challenge(session) if form.proof_of_work else None,
        values=values or {},
        errors=errors or {},
        notice=notice,
        company_sizes=service.COMPANY_SIZES,
    )
    response = make_response(body, status)
    # Its own scripts only: the time zone field (zone.js) and the proof of work (pow.js).
    response.headers["Content-Security-Policy"] = _frame_csp(form, script=True)
    response.headers["Cache-Control"] = "no-store"
    return response


def back_link(form: Form, raw: dict[str, Any]) -> tuple[str, str] | None:
    """(URL, host) of the page the visitor came from, when it is on an allowed origin."""
    for candidate in (raw.get("page_url"), request.referrer):
        if isinstance(candidate, str) and candidate:
            parts = origins.page_on_owner_site(form, candidate)
            if parts is not None:
                return parts.geturl(), parts.hostname or ""
    return None


def accepted_reply(
    form: Form, lang: str, as_json: bool, raw: dict[str, Any] | None = None
) -> Response:
    """The reply every accepted (or silently dropped) submission gets."""
    thanks = (form.thank_you or {}).get(lang) or i18n.translate(
        lang, "Thank you! Please check your inbox and confirm your email address."
    )
    if as_json:
        body: dict[str, Any] = {"status": "ok", "message": thanks}
        if form.redirect_url:
            body["redirect"] = form.redirect_url
        return cors(jsonify(body), form)
    if form.redirect_url:
        return redirect(form.redirect_url, 303)
    back = back_link(form, raw or {})
    response = make_response(
        render_template(
            "capture/thanks.html",
            message=thanks,
            back_url=back[0] if back else None,
            back_host=back[1] if back else None,
        )
    )
    response.headers["Content-Security-Policy"] = _frame_csp(form, script=False)
    return response


def refused_reply(
    form: Form, lang: str, raw: dict[str, Any], errors: dict[str, str], as_json: bool
) -> Response:
    """A refused submission: a 422 naming the fields (JSON), or the form again with them marked."""
    if as_json:
        response = jsonify(
            error=i18n.translate(lang, "Some fields need your attention."),
            fields=errors,
            status=422,
        )
        response.status_code = 422
        return cors(response, form)
    values = {k: v for k, v in raw.items() if isinstance(v, str | list)}
    return render_form_page(form, lang, values=values, errors=errors, status=422)
