"""Confirmation pages of the double opt-in. GET shows, only POST confirms."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, make_response, render_template, request

from consent import service
from consent.ledger import RequestMeta
from leadvault import db, i18n
from leadvault.crypto import TokenInvalid
from leadvault.web import language

bp = Blueprint("consent", __name__, template_folder="templates")


def request_meta() -> RequestMeta:
    return RequestMeta(ip=request.remote_addr, user_agent=request.headers.get("User-Agent"))


def private_page(body: str, status: int = 200) -> Response:
    """Pages behind signed links: never cached, never leak the token as referrer."""
    response = make_response(body, status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _page(template: str, status: int = 200, **context: Any) -> Response:
    return private_page(render_template(template, **context), status)


def _invalid() -> Response:
    return _page(
        "consent/message.html", 400, title="optin.invalid.title", text="optin.invalid.text"
    )


@bp.route("/c/<token>", methods=["GET", "POST"])
def confirm(token: str) -> Response:
    session = db.session()
    try:
        check = service.read_optin_token(session, token)
    except TokenInvalid:
        return _invalid()
    if check.request is not None:
        g.lang = check.request.language if check.request.language in i18n.LANGUAGES else language()
    if check.request is not None and check.request.confirmed_at is not None:
        return _page("consent/message.html", title="optin.done.title", text="optin.done.text")
    if check.expired or check.request is None:
        return _page("consent/expired.html", 410, token=token)
    if request.method != "POST":  # GET and HEAD (link scanners) never confirm
        lang = language()
        names = [i18n.translate(lang, f"purpose.{p}") for p in check.request.purposes]
        return _page("consent/confirm.html", purposes=names, token=token)
    service.confirm(session, check.request, meta=request_meta())
    return _page("consent/message.html", title="optin.done.title", text="optin.done.text")


@bp.post("/c/<token>/resend")
def resend(token: str) -> Response:
    session = db.session()
    try:
        check = service.read_optin_token(session, token)
    except TokenInvalid:
        return _invalid()
    if check.request is not None:
        g.lang = check.request.language
        if check.expired:
            service.resend_optin(session, check.request)
    # The same reply whatever happened: a token does not reveal whether its request lives.
    return _page("consent/message.html", title="optin.resent.title", text="optin.resent.text")
