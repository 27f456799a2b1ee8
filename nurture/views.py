"""The click redirect: GET shows a page that forwards at once, only POST counts the click."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Response, redirect, request, url_for

from leadvault import db, i18n
from leadvault.crypto import TokenInvalid
from leadvault.i18n import N_
from leadvault.web import csrf, mark_private, private_page
from nurture import clicks

bp = Blueprint(
    "nurture",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static/nurture",
)


def _page_csp(target: str) -> str:
    parts = urlsplit(target)
    origin = f"{parts.scheme}://{parts.netloc}"
    # form-action covers the redirect after the no-script button's POST.
    return (
        "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; "
        f"form-action 'self' {origin}; frame-ancestors 'none'; base-uri 'none'"
    )


@bp.route("/n/<token>", methods=["GET", "POST"])
@csrf.exempt  # the signed token is the authority; the page posts without a cookie
def click(token: str) -> Response:
    session = db.session()
    try:
        link = clicks.resolve(session, token)
    except TokenInvalid:
        return private_page(
            "consent/message.html",
            400,
            title=N_("This link no longer works"),
            text=N_("The link is incomplete, was changed, or its mail is no longer known to us."),
        )
    if link.send is not None:
        i18n.set_language(link.send.language)
    if request.method == "POST":
        clicks.record(session, link)
        if request.form.get("js") == "1":  # the page's script goes on to the target itself
            return mark_private(Response(status=204))
        return mark_private(redirect(link.target, 303))
    host = urlsplit(link.target).hostname or link.target
    response = private_page(
        "nurture/click.html",
        target=link.target,
        host=host,
        action=url_for("nurture.click", token=token),
    )
    response.headers["Content-Security-Policy"] = _page_csp(link.target)
    return response
