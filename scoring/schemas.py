"""Event payloads: the server batch and the browser call."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from leadvault import clock

MAX_BATCH = 1000
MAX_PROPERTIES = 30
MAX_PROPERTIES_BYTES = 4096
TYPE_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"


class EventSchema(Schema):
    type = fields.String(
        required=True,
        validate=validate.Regexp(TYPE_PATTERN, error="must be a lower-case name such as page_view"),
    )
    lead_id = fields.UUID()
    email = fields.Email()
    occurred_at = fields.AwareDateTime(default_timezone=dt.UTC)
    properties = fields.Dict(keys=fields.String(validate=validate.Length(1, 40)))

    @validates_schema
    def _check(self, data: dict[str, Any], **_: Any) -> None:
        if self.context_free_needs_lead and ("lead_id" in data) == ("email" in data):
            raise ValidationError("give exactly one of lead_id and email", "lead_id")
        props = data.get("properties") or {}
        if len(props) > MAX_PROPERTIES:
            raise ValidationError(f"at most {MAX_PROPERTIES} properties", "properties")
        for key, value in props.items():
            if not isinstance(value, str | int | float | bool) and value is not None:
                raise ValidationError(f"{key!r} must be a string, number or boolean", "properties")
        if len(json.dumps(props)) > MAX_PROPERTIES_BYTES:
            raise ValidationError(f"properties exceed {MAX_PROPERTIES_BYTES} bytes", "properties")
        occurred = data.get("occurred_at")
        if occurred is not None:
            now = clock.now()
            if occurred > now + dt.timedelta(minutes=5):
                raise ValidationError("lies in the future", "occurred_at")
            if occurred < now - dt.timedelta(days=365 * 2):
                raise ValidationError("is more than two years old", "occurred_at")

    context_free_needs_lead = True


class BrowserEventSchema(EventSchema):
    token = fields.String(required=True, validate=validate.Length(1, 500))
    context_free_needs_lead = False

    class Meta:
        exclude = ("lead_id", "email")


class BatchSchema(Schema):
    events = fields.List(
        fields.Nested(EventSchema),
        required=True,
        validate=validate.Length(1, MAX_BATCH, error=f"must hold 1 to {MAX_BATCH} events"),
    )


def first_problem(messages: Any, path: str = "") -> str:
    """The first error as ``events[3].type: message`` for a human-readable reply."""
    if isinstance(messages, list):
        return f"{path}: {messages[0]}" if messages and isinstance(messages[0], str) else path
    if isinstance(messages, dict):
        key = sorted(messages, key=str)[0]
        if isinstance(key, int):
            return first_problem(messages[key], f"{path}[{key}]")
        return first_problem(messages[key], f"{path}.{key}" if path else str(key))
    return f"{path}: {messages}"
