"""RFC 9457 problem details: every API error in one shape.

``{"type": "about:blank", "title": "...", "status": 404, "detail": "..."}`` with
``Content-Type: application/problem+json``; validation errors add ``errors``
(field name -> messages). Never an exception's text.
"""

from __future__ import annotations

from typing import Any

from flask import Response, json
from werkzeug.http import HTTP_STATUS_CODES

from leadvault import i18n
from leadvault.web import ERROR_MESSAGES

MEDIA_TYPE = "application/problem+json"

# The core's messages per status, and the API's own where they differ.
_DETAILS = {
    **ERROR_MESSAGES,
    401: i18n.N_("Sign in, or send a personal API token: Authorization: Bearer lvp_…"),
    403: i18n.N_("Your role or your token's scopes do not allow this."),
    409: i18n.N_("This conflicts with the current state."),
    415: i18n.N_("Send JSON (Content-Type: application/json)."),
}


def problem(
    status: int, detail: str | None = None, *, errors: dict[str, Any] | None = None
) -> Response:
    """A problem+json response; ``detail`` is an English message id (translated)."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTP_STATUS_CODES.get(status, "Error"),
        "status": status,
        "detail": i18n.gettext(detail or _DETAILS.get(status, _DETAILS[400])),
    }
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body), status=status, mimetype=MEDIA_TYPE)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="leadvault"'
    response.headers["Cache-Control"] = "no-store"
    return response
