"""Event payloads: the server batch and the browser call.

Their refusals are message ids translated into the request's language: a validator's
error is lazy (marshmallow formats it while it loads, inside the request), a schema
check's message is translated where it is raised; marshmallow's own messages by the
Schema base (leadvault.schema_messages).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from leadvault import clock, day_fields, i18n, untrusted
from leadvault.model_base import ROW_ID_MAX
from leadvault.schema_messages import Schema
from scoring import absences, routing
from scoring.sales_limits import CAPACITY_MAX, WEIGHT_MAX

MAX_BATCH = 1000
MAX_PROPERTIES = 30
MAX_PROPERTIES_BYTES = 4096
TYPE_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"


class EventSchema(Schema):
    type = fields.String(
        required=True,
        validate=validate.Regexp(
            TYPE_PATTERN, error=i18n.lazy_gettext("must be a lower-case name such as page_view")
        ),
    )
    lead_id = fields.UUID()
    email = fields.Email()
    occurred_at = fields.AwareDateTime(default_timezone=dt.UTC)
    properties = fields.Dict(keys=fields.String(validate=validate.Length(1, 40)))

    @validates_schema
    def _check(self, data: dict[str, Any], **_: Any) -> None:
        if self.context_free_needs_lead and ("lead_id" in data) == ("email" in data):
            raise ValidationError(i18n.gettext("give exactly one of lead_id and email"), "lead_id")
        props = data.get("properties") or {}
        if len(props) > MAX_PROPERTIES:
            raise ValidationError(
                i18n.gettext("at most %(max)s properties", max=MAX_PROPERTIES), "properties"
            )
        for key, value in props.items():
            if not isinstance(value, str | int | float | bool) and value is not None:
                raise ValidationError(
                    i18n.gettext("%(key)s must be a string, number or boolean", key=repr(key)),
                    "properties",
                )
        if len(json.dumps(props)) > MAX_PROPERTIES_BYTES:
            raise ValidationError(
                i18n.gettext("properties exceed %(max)s bytes", max=MAX_PROPERTIES_BYTES),
                "properties",
            )
        occurred = data.get("occurred_at")
        if occurred is not None:
            now = clock.now()
            if occurred > now + dt.timedelta(minutes=5):
                raise ValidationError(i18n.gettext("lies in the future"), "occurred_at")
            if occurred < now - dt.timedelta(days=365 * 2):
                raise ValidationError(i18n.gettext("is more than two years old"), "occurred_at")

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
        validate=validate.Length(
            1, MAX_BATCH, error=i18n.lazy_gettext("must hold 1 to %(max)s events", max=MAX_BATCH)
        ),
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


# --- rules, the sales team and handoffs: the admin API's and the console's payloads ----


class RulesTextSchema(Schema):
    text = fields.String(required=True, validate=validate.Length(1, 200_000))


class DryRunRequestSchema(RulesTextSchema):
    limit = fields.Integer(
        load_default=20_000,
        validate=validate.Range(1, 100_000),
        metadata={"description": "At most this many leads are replayed (oldest first)."},
    )


class ActivateSchema(Schema):
    """Either a new rules file or an earlier version to make active again."""

    text = fields.String(validate=validate.Length(1, 200_000))
    version = fields.Integer(validate=validate.Range(1, ROW_ID_MAX))
    allow_empty = fields.Boolean(
        load_default=False,
        truthy={True},  # JSON true/false only: "yes" is no decision to wipe every score
        falsy={False},
        metadata={
            "description": "Activate even without any [[engagement]] or [[fit]] rule "
            "(every lead then scores 0); refused (422) otherwise."
        },
    )

    @validates_schema
    def _one(self, data: dict[str, Any], **_: Any) -> None:
        if ("text" in data) == ("version" in data):
            raise ValidationError(i18n.gettext("give exactly one of text and version"), "text")


class RulesProblemSchema(Schema):
    valid = fields.Boolean(required=True)
    line = fields.Integer(allow_none=True, metadata={"description": "1-based line, or null"})
    message = fields.String(allow_none=True)


class DryRunSchema(Schema):
    checked = fields.Integer(required=True)
    total = fields.Integer(required=True)
    complete = fields.Boolean(required=True)
    grade_changes = fields.Integer(required=True)
    grade_moves = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        metadata={"description": '"B>A": how many leads would move from grade B to A'},
    )
    promotions = fields.Integer(
        required=True, metadata={"description": "New or recycled leads that would become MQL"}
    )
    score_changes = fields.Integer(required=True)


class RuleVersionSchema(Schema):
    version = fields.Integer(required=True)
    source = fields.String(required=True)
    sha256 = fields.String(required=True)
    loaded_at = fields.AwareDateTime(required=True)
    active = fields.Boolean(required=True)


class UnroutedRuleSchema(Schema):
    rule = fields.String(required=True, metadata={"description": "The routing rule, or fallback"})
    salesperson = fields.String(
        required=True, metadata={"description": "The address it names, which no salesperson has"}
    )


class RuleActivatedSchema(RuleVersionSchema):
    unrouted_rules = fields.List(
        fields.Nested(UnroutedRuleSchema),
        required=True,
        metadata={
            "description": "Routing rules of the now active file naming an address no "
            "salesperson has: they route no lead until a salesperson has that address "
            "(activated anyway; empty when every address is a salesperson's)"
        },
    )


class DiffLineSchema(Schema):
    kind = fields.String(required=True, metadata={"enum": ["add", "remove", "context", "hunk"]})
    text = fields.String(required=True)


class RuleVersionDetailSchema(RuleVersionSchema):
    text = fields.String(required=True, attribute="raw_text")
    diff = fields.List(fields.Nested(DiffLineSchema), required=True)


class VersionsQuerySchema(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))
    before = fields.Integer(validate=validate.Range(1, ROW_ID_MAX))


class DiffQuerySchema(Schema):
    against = fields.Integer(validate=validate.Range(1, ROW_ID_MAX))


_LANGUAGE = validate.OneOf(i18n.LANGUAGES)
# The service's range (routing.check_routing_fields) as a validator too: the API document
# states it (minimum, maximum), and the console and the API refuse with marshmallow's
# message naming both ends, as for their other numbers.
_WEIGHT = validate.Range(1, WEIGHT_MAX)
_CAPACITY = validate.Range(0, CAPACITY_MAX)


def _contact_name(value: str) -> None:
    """The service's own check (one line, not blank), so the refusal names the field."""
    try:
        routing.contact_name(value)
    except routing.SalesError as exc:
        raise ValidationError(exc.translated()) from None


def _email(*, required: bool) -> fields.Email:
    return fields.Email(required=required, validate=validate.Length(3, 254))


def _name(*, required: bool) -> fields.String:
    return fields.String(
        required=required,
        validate=[validate.Length(1, routing.NAME_MAX), _contact_name],
        # The service's rule as the API document's pattern (its refusal names the character).
        metadata={"pattern": untrusted.ONE_LINE_PATTERN},
    )


class SalespersonInSchema(Schema):
    email = _email(required=True)
    name = _name(required=True)
    language = fields.String(load_default=i18n.DEFAULT_LANGUAGE, validate=_LANGUAGE)
    weight = fields.Integer(load_default=1, validate=_WEIGHT)
    weekly_capacity = fields.Integer(load_default=50, validate=_CAPACITY)
    team_ids = fields.List(
        fields.Integer(validate=validate.Range(1, ROW_ID_MAX)),
        load_default=list,
        validate=validate.Length(max=50),
    )


class SalespersonPatchSchema(Schema):
    # Checked as when adding; another salesperson's address is refused (409).
    email = _email(required=False)
    name = _name(required=False)
    language = fields.String(validate=_LANGUAGE)
    weight = fields.Integer(validate=_WEIGHT)
    weekly_capacity = fields.Integer(validate=_CAPACITY)
    active = fields.Boolean()


class SalespersonSchema(Schema):
    id = fields.Integer(required=True)
    email = fields.String(required=True)
    name = fields.String(required=True)
    language = fields.String(required=True)
    weight = fields.Integer(required=True)
    weekly_capacity = fields.Integer(required=True)
    load_this_week = fields.Integer(required=True)
    absent_today = fields.Boolean(required=True)
    active = fields.Boolean(required=True)
    teams = fields.List(fields.String(), required=True)


class TeamInSchema(Schema):
    name = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[a-z][a-z0-9_\-]{0,79}$",
            error=i18n.lazy_gettext("lower-case letters, digits, _ or -"),
        ),
    )
    strategy = fields.String(
        load_default="round_robin", validate=validate.OneOf(["round_robin", "least_loaded"])
    )


class TeamPatchSchema(Schema):
    strategy = fields.String(
        required=True, validate=validate.OneOf(["round_robin", "least_loaded"])
    )


class MemberRefSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)


class TeamSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    strategy = fields.String(required=True)
    members = fields.List(fields.Nested(MemberRefSchema), required=True)


class MemberInSchema(Schema):
    person_id = fields.Integer(required=True, validate=validate.Range(1, ROW_ID_MAX))


class AbsenceInSchema(Schema):
    person_id = fields.Integer(required=True, validate=validate.Range(1, ROW_ID_MAX))
    starts_on = day_fields.Day(required=True)  # days read as every date filter reads them
    ends_on = day_fields.Day(required=True)

    @validates_schema
    def _order(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("starts_on") and data.get("ends_on") and data["ends_on"] < data["starts_on"]:
            raise ValidationError(i18n.gettext(absences.ABSENCE_ORDER), "ends_on")


class AbsenceSchema(Schema):
    id = fields.Integer(required=True)
    person_id = fields.Integer(required=True)
    starts_on = fields.Date(required=True)
    ends_on = fields.Date(required=True)


class AbsenceQuerySchema(Schema):
    person_id = fields.Integer(validate=validate.Range(1, ROW_ID_MAX))
    limit = fields.Integer(load_default=200, validate=validate.Range(1, 500))


class HandoffQuerySchema(Schema):
    overdue = fields.Boolean(load_default=False)
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))
    cursor = fields.String(validate=validate.Length(1, 200))


class HandoffRowSchema(Schema):
    id = fields.UUID(required=True)
    lead_id = fields.UUID(required=True)
    status = fields.String(required=True)
    person_id = fields.Integer(allow_none=True)
    routing_rule = fields.String(required=True)
    attempt = fields.Integer(required=True)
    offered_at = fields.AwareDateTime(required=True)
    due_at = fields.AwareDateTime(required=True)
    overdue = fields.Boolean(required=True)
    reminded = fields.Boolean(required=True)
    grade = fields.String(required=True)
    score = fields.Float(required=True)


class HandoffBoardSchema(Schema):
    items = fields.List(fields.Nested(HandoffRowSchema), required=True)
    open_count = fields.Integer(required=True)
    overdue_count = fields.Integer(required=True)
    next_cursor = fields.String(allow_none=True)
