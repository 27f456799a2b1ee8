"""The admin API's lead operations under /api/v1/leads: the list (the same service as
the console's list and ``leadvault leads list``: :mod:`admin.leads`), lookup by address,
detail, reveal, export one, stage change, erase.

Registered on the API's one blueprint (``admin.api.views.bp``) so that every operation
shares its guard, error answers and document.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response, jsonify

from admin import auth
from admin import leads as lead_service
from admin.api import schemas
from admin.api.registry import operation
from admin.api.views import Refusal, _body, _dump, _query, bp, cursor_refusal
from admin.permissions import Permission
from leadvault import db
from leadvault.models import Lead

P = Permission


def _assigned_to(full: Permission) -> int | None:
    """None when the account may see every lead; else its salesperson (sales)."""
    if auth.can(full):
        return None
    user = auth.current_user()
    assert user is not None
    return user.salesperson_id if user.salesperson_id is not None else -1


def _lead(lead_id: uuid.UUID, full: Permission) -> Lead:
    found = lead_service.get(db.session(), lead_id, assigned_to=_assigned_to(full))
    if found is None:
        raise Refusal(404)
    return found


def _filters(args: dict[str, Any]) -> lead_service.Filters:
    return lead_service.Filters(
        stages=tuple(args.get("stage") or ()),
        reached=args.get("reached"),
        grades=tuple(args.get("grade") or ()),
        form=args.get("form"),
        utm_source=args.get("utm_source"),
        utm_campaign=args.get("utm_campaign"),
        first_touch=args["touch"] == "first",
        purpose=args.get("purpose"),
        purpose_state=args.get("purpose_state"),
        suspect=args.get("suspect"),
        score_min=args.get("score_min"),
        score_max=args.get("score_max"),
        created_from=args.get("created_from"),
        created_to=args.get("created_to"),
        assigned_to=_assigned_to(P.LEADS_READ),
    )


# --- leads ---------------------------------------------------------------------------


@operation(
    bp,
    "GET",
    "/leads",
    summary="List leads (pseudonymous), newest first, filtered, by cursor",
    permission=P.LEADS_READ_ASSIGNED,
    query=schemas.LeadQuerySchema,
    response=schemas.LeadPageSchema,
)
def leads_list() -> Response:
    args = _query(schemas.LeadQuerySchema)
    try:
        rows, following = lead_service.list_leads(
            db.session(),
            _filters(args),
            sort=args["sort"],
            cursor=args.get("cursor"),
            limit=args["limit"],
        )
    except lead_service.BadCursor:
        raise cursor_refusal() from None
    return _dump(schemas.LeadPageSchema, {"items": rows, "next_cursor": following})


@operation(
    bp,
    "POST",
    "/leads/lookup",
    summary="Find a lead by its exact e-mail address (blind index; the address stays out of URLs)",
    permission=P.LEADS_READ_ASSIGNED,
    body=schemas.LookupSchema,
    response=schemas.LeadRefSchema,
    errors=(404,),
)
def leads_lookup() -> Response:
    args = _body(schemas.LookupSchema)
    found = lead_service.lookup(db.session(), args["email"], assigned_to=_assigned_to(P.LEADS_READ))
    if found is None:
        raise Refusal(404)
    return _dump(schemas.LeadRefSchema, {"id": found.id})


@operation(
    bp,
    "GET",
    "/leads/{lead_id}",
    summary="A lead: stage, grade, score breakdown, consents and their history, timeline, handoffs",
    permission=P.LEADS_READ_ASSIGNED,
    response=schemas.LeadDetailSchema,
    path_params=(("lead_id", "uuid"),),
)
def lead_detail(lead_id: uuid.UUID) -> Response:
    session = db.session()
    return _dump(
        schemas.LeadDetailSchema, lead_service.detail(session, _lead(lead_id, P.LEADS_READ))
    )


@operation(
    bp,
    "POST",
    "/leads/{lead_id}/reveal",
    summary="The lead's decrypted address and profile (one audit entry)",
    permission=P.LEADS_REVEAL_ASSIGNED,
    response=schemas.RevealedSchema,
    path_params=(("lead_id", "uuid"),),
    personal=True,
)
def lead_reveal(lead_id: uuid.UUID) -> Response:
    session = db.session()
    lead = _lead(lead_id, P.LEADS_REVEAL)
    data = lead_service.reveal(session, lead, actor=auth.current_actor(), ip=auth.client_ip())
    return _dump(schemas.RevealedSchema, data)


@operation(
    bp,
    "POST",
    "/leads/{lead_id}/export",
    summary="Everything held about the lead (access-export document; one audit entry)",
    permission=P.LEADS_EXPORT,
    response=schemas.ExportedSchema,
    path_params=(("lead_id", "uuid"),),
    personal=True,
)
def lead_export(lead_id: uuid.UUID) -> Response:
    session = db.session()
    lead = _lead(lead_id, P.LEADS_EXPORT)
    document = lead_service.export_one(
        session, lead, actor=auth.current_actor(), ip=auth.client_ip()
    )
    response = jsonify(document)
    response.headers["Cache-Control"] = "no-store"
    return response


@operation(
    bp,
    "POST",
    "/leads/{lead_id}/stage",
    summary="Move the lead to another stage, with a reason",
    permission=P.LEADS_WRITE_ASSIGNED,
    body=schemas.StageChangeSchema,
    response=schemas.StageChangedSchema,
    path_params=(("lead_id", "uuid"),),
    errors=(409,),
)
def lead_stage(lead_id: uuid.UUID) -> Response:
    args = _body(schemas.StageChangeSchema)
    session = db.session()
    lead = _lead(lead_id, P.LEADS_WRITE)
    try:
        change = lead_service.change_stage(
            session,
            lead,
            args["stage"],
            args["reason"],
            actor=auth.current_actor(),
            ip=auth.client_ip(),
        )
    except lead_service.LeadError as exc:
        raise Refusal(409, errors={exc.field or "stage": [exc.translated()]}) from None
    return _dump(
        schemas.StageChangedSchema,
        {"id": lead.id, "from_": change.from_stage, "to": change.to_stage},
    )


@operation(
    bp,
    "DELETE",
    "/leads/{lead_id}",
    summary="Erase the lead (crypto-shredded; one audit entry)",
    permission=P.LEADS_ERASE,
    status=204,
    path_params=(("lead_id", "uuid"),),
)
def lead_erase(lead_id: uuid.UUID) -> Response:
    session = db.session()
    lead = _lead(lead_id, P.LEADS_ERASE)
    lead_service.erase(session, lead, actor=auth.current_actor(), ip=auth.client_ip())
    return Response(status=204)
