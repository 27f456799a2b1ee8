"""The admin API's webhook endpoints: list, add (the secret shown once), disable, enable,
rotate the secret, redeliver. The service is the command line's (``export.webhooks``);
each change is an entry in the audit trail (the console's forms write the same).
The operations join the blueprint of ``admin.api.exports``.
"""

from __future__ import annotations

from typing import Any

from flask import Response
from marshmallow import fields, validate
from sqlalchemy.orm import Session

from admin import auth
from admin.api.exports import bp
from admin.api.registry import operation
from admin.api.views import Refusal, _body, _dump
from admin.permissions import Permission
from export import webhooks
from export.models import WebhookEndpoint
from leadvault import audit, db, untrusted
from leadvault.schema_messages import Schema

_ENDPOINT_ID = (("endpoint_id", "int"),)
# The service's name for an input where the request's differs.
_FIELDS = {"event": "events"}


class WebhookRequest(Schema):
    """A new endpoint: its URL, the event types (default all) and the purpose that lets
    its payloads carry contact data (none: ids only). An unknown key is refused (422):
    ``"event"`` for ``"events"`` would otherwise subscribe the endpoint to every type."""

    url = fields.String(required=True, validate=validate.Length(min=8, max=2000))
    events = fields.List(
        fields.String(validate=validate.OneOf(sorted(webhooks.EVENT_TYPES))),
        load_default=list,
        metadata={"description": "the event types to send (none: all)"},
    )
    purpose = fields.String(load_default=None, validate=validate.Length(max=40))
    description = fields.String(
        load_default="",
        validate=validate.Length(max=webhooks.DESCRIPTION_MAX),
        # The service's rule as the API document's pattern (its refusal names the character).
        metadata={"pattern": untrusted.ONE_LINE_OR_EMPTY_PATTERN},
    )


class WebhookEndpointSchema(Schema):
    """An endpoint: its host only (a URL's path may carry a capability token)."""

    id = fields.Integer(required=True)
    host = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": ["active", "disabled"]})
    events = fields.List(fields.String(), required=True)
    purpose = fields.String(allow_none=True)
    description = fields.String(required=True)
    failing_since = fields.DateTime(allow_none=True)
    disabled_reason = fields.String(allow_none=True)
    deliveries = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        metadata={"description": "deliveries by state (pending, sent, failed …)"},
    )


class WebhookAddedSchema(WebhookEndpointSchema):
    secret = fields.String(required=True, metadata={"description": "shown this once"})


class WebhookStateSchema(Schema):
    id = fields.Integer(required=True)
    status = fields.String(required=True)
    held = fields.Integer(metadata={"description": "(disable) queued deliveries now failed"})


class WebhookSecretSchema(Schema):
    id = fields.Integer(required=True)
    secret = fields.String(required=True, metadata={"description": "shown this once"})
    previous_signs_until = fields.DateTime(allow_none=True)


class WebhookRedeliverySchema(Schema):
    id = fields.Integer(required=True)
    queued = fields.Integer(required=True)


def _row(endpoint: WebhookEndpoint, counts: dict[str, int]) -> dict[str, Any]:
    host = webhooks.host_of(webhooks.config_of(db.session(), endpoint))
    return {
        "id": endpoint.id,
        "host": host,
        "status": endpoint.status,
        "events": list(endpoint.event_types),
        "purpose": endpoint.purpose,
        "description": endpoint.description,
        "failing_since": endpoint.failing_since,
        "disabled_reason": endpoint.disabled_reason,
        "deliveries": counts,
    }


def record(
    session: Session, endpoint: WebhookEndpoint, action: audit.Action, **detail: Any
) -> None:
    """One audit entry per change of an endpoint: a purpose lets it carry contact data
    out, a secret lets a receiver trust what it gets."""
    auth.record_audit(
        session, action, audit.ObjectType.WEBHOOK_ENDPOINT, endpoint.id, detail=detail
    )


def _endpoint(endpoint_id: int) -> WebhookEndpoint:
    try:
        return webhooks.get_endpoint(db.session(), endpoint_id)
    except webhooks.WebhookError:
        raise Refusal(404) from None


@operation(
    bp,
    "GET",
    "/webhooks",
    summary="Webhook endpoints (host only) with their deliveries by state",
    permission=Permission.SETTINGS_MANAGE,
    response=WebhookEndpointSchema,
    many=True,
    tag="webhooks",
)
def webhooks_list() -> Response:
    session = db.session()
    counts = webhooks.counts(session)
    rows = [_row(e, counts.get(e.id, {})) for e in webhooks.list_endpoints(session)]
    return _dump(WebhookEndpointSchema, rows, many=True)


@operation(
    bp,
    "POST",
    "/webhooks",
    summary="Add a webhook endpoint (SSRF-guarded); the answer holds its signing secret, "
    "shown this once",
    permission=Permission.SETTINGS_MANAGE,
    body=WebhookRequest,
    response=WebhookAddedSchema,
    status=201,
    tag="webhooks",
)
def webhooks_add() -> Response:
    args = _body(WebhookRequest)
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
        message = exc.translated()
        field = _FIELDS.get(exc.field or "", exc.field)
        raise Refusal(422, message, errors={field: [message]} if field else None) from None
    record(
        session,
        endpoint,
        audit.Action.WEBHOOK_ADDED,
        events=endpoint.event_types,
        purpose=endpoint.purpose,
    )
    return _dump(WebhookAddedSchema, {**_row(endpoint, {}), "secret": secret}, 201)


@operation(
    bp,
    "POST",
    "/webhooks/{endpoint_id}/disable",
    summary="Disable an endpoint; its queued deliveries fail (redeliver brings them back)",
    permission=Permission.SETTINGS_MANAGE,
    response=WebhookStateSchema,
    path_params=_ENDPOINT_ID,
    tag="webhooks",
)
def webhooks_disable(endpoint_id: int) -> Response:
    endpoint = _endpoint(endpoint_id)
    session = db.session()
    held = webhooks.disable(session, endpoint, reason="disabled through the API")
    record(session, endpoint, audit.Action.WEBHOOK_DISABLED, held=held)
    return _dump(WebhookStateSchema, {"id": endpoint_id, "status": endpoint.status, "held": held})


@operation(
    bp,
    "POST",
    "/webhooks/{endpoint_id}/enable",
    summary="Enable an endpoint again",
    permission=Permission.SETTINGS_MANAGE,
    response=WebhookStateSchema,
    path_params=_ENDPOINT_ID,
    tag="webhooks",
)
def webhooks_enable(endpoint_id: int) -> Response:
    endpoint = _endpoint(endpoint_id)
    session = db.session()
    webhooks.enable(session, endpoint)
    record(session, endpoint, audit.Action.WEBHOOK_ENABLED)
    return _dump(WebhookStateSchema, {"id": endpoint_id, "status": endpoint.status})


@operation(
    bp,
    "POST",
    "/webhooks/{endpoint_id}/rotate-secret",
    summary="A new signing secret (shown this once); the old one signs too for the overlap",
    permission=Permission.SETTINGS_MANAGE,
    response=WebhookSecretSchema,
    path_params=_ENDPOINT_ID,
    tag="webhooks",
)
def webhooks_rotate_secret(endpoint_id: int) -> Response:
    endpoint = _endpoint(endpoint_id)
    session = db.session()
    secret = webhooks.rotate_secret(session, endpoint, overlap_hours=None)
    record(session, endpoint, audit.Action.WEBHOOK_SECRET_ROTATED)
    until = endpoint.previous_secret_until
    return _dump(
        WebhookSecretSchema, {"id": endpoint_id, "secret": secret, "previous_signs_until": until}
    )


@operation(
    bp,
    "POST",
    "/webhooks/{endpoint_id}/redeliver",
    summary="Queue an endpoint's failed events again (same webhook-id: receivers de-duplicate)",
    permission=Permission.SETTINGS_MANAGE,
    response=WebhookRedeliverySchema,
    path_params=_ENDPOINT_ID,
    errors=(409,),
    tag="webhooks",
)
def webhooks_redeliver(endpoint_id: int) -> Response:
    endpoint = _endpoint(endpoint_id)
    session = db.session()
    try:
        queued = webhooks.redeliver(session, endpoint=endpoint, failed_only=True)
    except webhooks.WebhookError as exc:  # a disabled endpoint
        raise Refusal(409, exc.translated()) from None
    record(session, endpoint, audit.Action.WEBHOOK_REDELIVERED, queued=queued)
    return _dump(WebhookRedeliverySchema, {"id": endpoint_id, "queued": queued})
