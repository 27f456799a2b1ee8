"""Marshmallow schemas of the admin API: inputs (validated) and outputs (documented).

Input schemas refuse unknown fields; the OpenAPI document is generated from
these classes (admin/api/registry.py).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from marshmallow import fields, validate, validates_schema

from admin.api.dates import UtcDateTime, day_field, refuse_empty_span
from admin.leads import GRADES, MAX_PAGE, PURPOSE_STATES, REASON_MAX, SORTS
from admin.permissions import Permission
from capture.schemas import FormDefinitionSchema
from leadvault import audit
from leadvault.i18n import N_
from leadvault.model_base import ROW_ID_MAX
from leadvault.schema_messages import Schema
from scoring.models import Stage

STAGES = [s.value for s in Stage]
# No control characters (a NUL is refused by PostgreSQL, the others are never meant).
_PRINTABLE = validate.Regexp(
    r"^[^\x00-\x1f\x7f]*$", error=N_("must not contain control characters")
)
PRINTABLE = _PRINTABLE  # for the API modules beside this one (exports, imports)


def _text(low: int, high: int, **options: Any) -> fields.String:
    return fields.String(validate=[validate.Length(low, high), _PRINTABLE], **options)


_SCORE = validate.Range(min=-1e9, max=1e9)


class LeadQuerySchema(Schema):
    stage = fields.List(fields.String(validate=validate.OneOf(STAGES)))
    reached = fields.String(
        validate=validate.OneOf(STAGES),
        metadata={"description": "a stage the lead reached at some time"},
    )
    grade = fields.List(fields.String(validate=validate.OneOf(GRADES)))
    form = _text(1, 32)
    utm_source = _text(1, 100)
    utm_campaign = _text(1, 100)
    touch = fields.String(
        validate=validate.OneOf(("any", "first")),
        load_default="any",
        metadata={
            "description": "form and UTM values of any submission, or of the first touch "
            "only ('-' then matches none)"
        },
    )
    purpose = _text(1, 40)
    purpose_state = fields.String(validate=validate.OneOf(PURPOSE_STATES))
    suspect = fields.Boolean()
    score_min = fields.Float(validate=_SCORE, allow_nan=False)
    score_max = fields.Float(validate=_SCORE, allow_nan=False)
    created_from = UtcDateTime(
        default_timezone=dt.UTC,
        metadata={"description": "inclusive; a day alone (2025-03-31) is its midnight UTC"},
    )
    created_to = UtcDateTime(
        default_timezone=dt.UTC,
        metadata={"description": "exclusive; must lie after created_from (422 otherwise)"},
    )
    cursor = fields.String(
        validate=[validate.Length(1, 200), validate.Regexp(r"^[A-Za-z0-9_-]+$")],
        metadata={"description": "next_cursor of the previous page (opaque)"},
    )
    sort = fields.String(
        validate=validate.OneOf(SORTS),
        load_default="created",
        metadata={"description": "newest first, or highest score first (scored leads only)"},
    )
    limit = fields.Integer(validate=validate.Range(1, MAX_PAGE), load_default=50)

    @validates_schema
    def _span(self, data: dict[str, Any], **_: Any) -> None:
        refuse_empty_span(data, "created_from", "created_to", last_included=False)


class LeadSummarySchema(Schema):
    id = fields.UUID(required=True)
    created_at = fields.DateTime(required=True)
    language = fields.String(required=True)
    stage = fields.String(required=True)
    grade = fields.String(required=True)
    score = fields.Float(required=True)
    suspect = fields.Boolean(required=True)
    first_form = fields.String(allow_none=True)
    utm_source = fields.String(allow_none=True)
    utm_campaign = fields.String(allow_none=True)
    consents = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


class LeadPageSchema(Schema):
    items = fields.List(fields.Nested(LeadSummarySchema), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class LookupSchema(Schema):
    email = _text(3, 320, required=True)


class LeadRefSchema(Schema):
    id = fields.UUID(required=True)


class ConsentStateSchema(Schema):
    purpose = fields.String(required=True)
    status = fields.String(required=True)
    requested_at = fields.String(allow_none=True)
    granted_at = fields.String(allow_none=True)
    withdrawn_at = fields.String(allow_none=True)


class LedgerItemSchema(Schema):
    id = fields.Integer(required=True)
    at = fields.String(required=True)
    event = fields.String(required=True)
    purpose = fields.String(allow_none=True)
    form = fields.String(allow_none=True)
    text_version = fields.Integer(allow_none=True)
    entry_hash = fields.String(required=True)


class TimelineItemSchema(Schema):
    at = fields.String(allow_none=True, required=True)
    kind = fields.String(
        required=True, validate=validate.OneOf(["submission", "event", "stage", "handoff"])
    )
    form = fields.String(allow_none=True)
    utm_source = fields.String(allow_none=True)
    utm_campaign = fields.String(allow_none=True)
    type = fields.String()
    points = fields.Float()
    from_ = fields.String(data_key="from", attribute="from", allow_none=True)
    to = fields.String()
    cause_kind = fields.String()
    status = fields.String()


class RulePointsSchema(Schema):
    rule = fields.String(required=True)
    points = fields.Float(required=True)


class HandoffSchema(Schema):
    id = fields.String(required=True)
    status = fields.String(required=True)
    salesperson = fields.Integer(allow_none=True)
    routing_rule = fields.String(required=True)
    offered_at = fields.String(allow_none=True)
    decided_at = fields.String(allow_none=True)
    reject_reason = fields.String(allow_none=True)


class LeadDetailSchema(Schema):
    id = fields.UUID(required=True)
    created_at = fields.String(required=True)
    last_activity_at = fields.String(allow_none=True)
    language = fields.String(required=True)
    stage = fields.String(required=True)
    grade = fields.String(required=True)
    score = fields.Float(required=True)
    fit_points = fields.Float(required=True)
    suspect = fields.Boolean(required=True)
    flags = fields.List(fields.String(), required=True)
    fields_ = fields.List(fields.String(), data_key="fields", attribute="fields", required=True)
    consents = fields.List(fields.Nested(ConsentStateSchema), required=True)
    consent_history = fields.List(fields.Nested(LedgerItemSchema), required=True)
    timeline = fields.List(fields.Nested(TimelineItemSchema), required=True)
    score_breakdown = fields.List(fields.Nested(RulePointsSchema), required=True)
    handoffs = fields.List(fields.Nested(HandoffSchema), required=True)


class RevealedSchema(Schema):
    id = fields.UUID(required=True)
    email = fields.String(required=True)
    profile = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


class ExportedSchema(Schema):
    """The access-export document (its own JSON schema: /schemas/access-export.v1.json)."""

    schema = fields.String(required=True)
    schema_version = fields.Integer(required=True)
    lead = fields.Dict(required=True)


class StageChangeSchema(Schema):
    stage = fields.String(required=True, validate=validate.OneOf(STAGES))
    reason = _text(1, REASON_MAX, required=True)


class StageChangedSchema(Schema):
    id = fields.UUID(required=True)
    from_ = fields.String(data_key="from", allow_none=True, required=True)
    to = fields.String(required=True)


class MeSchema(Schema):
    id = fields.Integer(required=True)
    role = fields.String(required=True)
    permissions = fields.List(fields.String(), required=True)
    via = fields.String(required=True, validate=validate.OneOf(["token", "console"]))


class TokenCreateSchema(Schema):
    name = _text(1, 80, required=True)
    scopes = fields.List(
        fields.String(validate=validate.OneOf([p.value for p in Permission])),
        required=True,
        validate=validate.Length(1, len(Permission)),
    )
    days = fields.Integer(required=True, validate=validate.Range(1, 3650))


class TokenSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    scopes = fields.List(fields.String(), required=True)
    created_at = fields.DateTime(required=True)
    expires_at = fields.DateTime(required=True)
    last_used_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)


class TokenCreatedSchema(TokenSchema):
    secret = fields.String(required=True)


class AuditQuerySchema(Schema):
    actor = _text(1, 80)
    # Only catalogued codes: a typo would match nothing and look like an empty trail.
    action = fields.String(validate=validate.OneOf(audit.Action.codes()))
    object_type = fields.String(validate=validate.OneOf(audit.ObjectType.codes()))
    object_id = _text(1, 64)
    # Days as the console's trail filters them: from the first moment of "since" to the
    # end of "until" (both days included), UTC.
    since = day_field(metadata={"description": "UTC day, inclusive"})
    until = day_field(
        metadata={"description": "UTC day, inclusive; not before since (422 otherwise)"}
    )
    before = fields.Integer(validate=validate.Range(1, ROW_ID_MAX))
    limit = fields.Integer(validate=validate.Range(1, 200), load_default=50)

    @validates_schema
    def _span(self, data: dict[str, Any], **_: Any) -> None:
        refuse_empty_span(data, "since", "until", last_included=True)


_AS_SHOWN = "as the console names it, in the request's language (Accept-Language)"


class AuditEntrySchema(Schema):
    id = fields.Integer(required=True)
    created_at = fields.DateTime(required=True)
    actor = fields.String(required=True)
    action = fields.String(required=True)
    action_label = fields.String(
        required=True,
        metadata={"description": f"the action {_AS_SHOWN}"},
    )
    object_type = fields.String(required=True)
    object_type_label = fields.String(
        required=True,
        metadata={"description": f"the kind of object {_AS_SHOWN}"},
    )
    object_id = fields.String(allow_none=True)
    detail = fields.Dict(required=True)
    ip_prefix = fields.String(allow_none=True)
    entry_hash = fields.String(required=True)


class VerdictSchema(Schema):
    ok = fields.Boolean(required=True)
    checked = fields.Integer(required=True)
    broken_id = fields.Integer(allow_none=True, required=True)
    reason = fields.String(allow_none=True, required=True)


class ReportQuerySchema(Schema):
    days = fields.Integer(validate=validate.Range(1, 366), load_default=30)
    form = _text(1, 32)
    utm_source = _text(1, 100)


class SourcesQuerySchema(ReportQuerySchema):
    by = fields.String(
        validate=validate.OneOf(["utm_source", "utm_campaign", "form"]), load_default="utm_source"
    )


class FunnelStepSchema(Schema):
    stage = fields.String(required=True)
    reached = fields.Integer(required=True)
    conversion = fields.Float(allow_none=True, required=True)
    median_seconds = fields.Float(allow_none=True, required=True)


class FunnelSchema(Schema):
    days = fields.Integer(required=True)
    steps = fields.List(fields.Nested(FunnelStepSchema), required=True)
    current = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)


class SourceQualitySchema(Schema):
    key = fields.String(required=True)
    leads = fields.Integer(required=True)
    mql = fields.Integer(required=True)
    sal = fields.Integer(required=True)
    suspect = fields.Integer(required=True)
    rejected = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)


class BotsQuerySchema(Schema):
    days = fields.Integer(validate=validate.Range(1, 366), load_default=30)


class BotDaySchema(Schema):
    day = fields.Date(required=True)
    dropped = fields.Integer(required=True)
    accepted = fields.Integer(required=True)
    reasons = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)


class FormSchema(Schema):
    public_id = fields.String(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True)
    title = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    intro = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    fields_ = fields.List(fields.Dict(), data_key="fields", attribute="fields", required=True)
    purposes = fields.List(fields.Dict(), required=True)
    consent_versions = fields.Dict(
        keys=fields.String(),
        values=fields.Dict(keys=fields.String(), values=fields.Integer()),
        required=True,
    )
    allowed_origins = fields.List(fields.String(), required=True)
    thank_you = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    redirect_url = fields.String(allow_none=True)
    proof_of_work = fields.Boolean(required=True)
    follow_up_fields = fields.List(fields.String(), required=True)
    asset = fields.String(allow_none=True, metadata={"description": "The asset handed out"})
    active = fields.Boolean(required=True)
    created_at = fields.DateTime(required=True)


class FormWriteSchema(FormDefinitionSchema):
    """A form to create or replace (PATCH: any subset of the keys)."""

    asset = fields.String(
        allow_none=True,
        validate=[validate.Length(0, 32), _PRINTABLE],
        metadata={"description": "Public id of the asset a whitepaper form hands out"},
    )


class FormPatchSchema(FormWriteSchema):
    """Any subset of a form's keys; the others stay as they are."""

    name = fields.String(validate=[validate.Length(1, 120), _PRINTABLE])
    kind = fields.String(validate=validate.OneOf(["newsletter", "whitepaper", "contact"]))

    def __init__(self, **options: Any) -> None:
        super().__init__(partial=True, **options)


class OriginsSchema(Schema):
    allowed_origins = fields.List(
        _text(1, 200),
        required=True,
        validate=validate.Length(0, 50),
    )
