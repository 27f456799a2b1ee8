"""The admin API's webhook endpoints: list, add (the secret shown once), disable, enable,
rotate the secret, redeliver. The service is the command line's (``export.webhooks``).
The routes join the blueprint of ``admin.api.exports``.
"""

from __future__ import annotations

from typing import Any

from flask import Response, request
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from admin import auth
from admin.api import problems
from admin.api.exports import CORRECT, bp, check_csrf
from admin.permissions import Permission
from leadvault import db


class WebhookRequest(Schema):
    """A new endpoint: its URL, the event types (default all) and the purpose that lets
    its payloads carry contact data (none: ids only)."""

    class Meta:
        unknown = EXCLUDE

    url = fields.String(required=True, validate=validate.Length(min=8, max=2000))
    events = fields.List(fields.String(validate=validate.Length(max=40)), load_default=list)
    purpose = fields.String(load_default=None, validate=validate.Length(max=40))
    description = fields.String(load_default="", validate=validate.Length(max=200))


def _endpoint_json(endpoint: Any, host: str, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "host": host,
        "status": endpoint.status,
        "events": list(endpoint.event_types),
        "purpose": endpoint.purpose,
        "description": endpoint.description,
        "failing_since": endpoint.failing_since.isoformat() if endpoint.failing_since else None,
        "disabled_reason": endpoint.disabled_reason,
        "deliveries": counts,
    }


def _json(body: Any, status: int = 200) -> Response:
    from flask import json

    response = Response(json.dumps(body), status=status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/webhooks")
@auth.require(Permission.SETTINGS_MANAGE)
def webhooks_list() -> Response:
    """Endpoints (host only: a URL may carry a capability token) and delivery counts."""
    from export import webhooks

    session = db.session()
    counts = webhooks.counts(session)
    return _json(
        [
            _endpoint_json(
                endpoint,
                webhooks.host_of(webhooks.config_of(session, endpoint)),
                counts.get(endpoint.id, {}),
            )
            for endpoint in webhooks.list_endpoints(session)
        ]
    )


@bp.post("/webhooks")
@auth.require(Permission.SETTINGS_MANAGE)
def webhooks_add() -> Response:
    """Add an endpoint; the answer holds its signing secret, shown this once."""
    from export import webhooks

    check_csrf()
    raw = request.get_json(silent=True)
    try:
        if not isinstance(raw, dict):
            raise ValidationError({"_schema": ["Send a JSON object."]})
        args = WebhookRequest().load(raw)
    except ValidationError as exc:
        return problems.problem(422, CORRECT, errors=exc.messages)
    session = db.session()
    try:
        endpoint, secret = webhooks.create_endpoint(
            session,
            url=args["url"],
            event_types=args["events"],
            purpose=args["purpose"],
            description=args["description"],
        )
    except webhooks.WebhookError as exc:
        return problems.problem(422, str(exc))
    host = webhooks.host_of(webhooks.config_of(session, endpoint))
    return _json({**_endpoint_json(endpoint, host, {}), "secret": secret}, 201)


@bp.post("/webhooks/<int:endpoint_id>/<any(disable, enable, 'rotate-secret', redeliver):action>")
@auth.require(Permission.SETTINGS_MANAGE)
def webhooks_action(endpoint_id: int, action: str) -> Response:
    """Disable, enable, rotate the secret (both sign during the overlap) or queue the
    failed events again (same webhook-id, so receivers de-duplicate)."""
    from export import webhooks

    check_csrf()
    session = db.session()
    try:
        endpoint = webhooks.get_endpoint(session, endpoint_id)
    except webhooks.WebhookError:
        return problems.problem(404)
    try:
        if action == "disable":
            held = webhooks.disable(session, endpoint, reason="disabled through the API")
            return _json({"id": endpoint_id, "status": endpoint.status, "held": held})
        if action == "enable":
            webhooks.enable(session, endpoint)
            return _json({"id": endpoint_id, "status": endpoint.status})
        if action == "rotate-secret":
            secret = webhooks.rotate_secret(session, endpoint, overlap_hours=None)
            until = endpoint.previous_secret_until
            return _json(
                {
                    "id": endpoint_id,
                    "secret": secret,
                    "previous_signs_until": until.isoformat() if until else None,
                }
            )
        queued = webhooks.redeliver(
            session, endpoint=endpoint, event_id=None, failed_only=True, since=None
        )
        return _json({"id": endpoint_id, "queued": queued})
    except webhooks.WebhookError as exc:
        return problems.problem(409, str(exc))
