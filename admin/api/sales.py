"""The admin API's sales team: salespeople (capacity, weight, language), teams and
their members, absences. The owner's (``sales-team:write``).

Thin views over ``scoring.sales_team`` (people), ``scoring.sales_teams`` (teams),
``scoring.absences`` and ``scoring.routing`` (the console and ``leadvault sales …``
use the same services). Salespeople are staff: their name and address are stored
sealed and shown only here.
"""

from __future__ import annotations

from flask import Response

from admin import auth
from admin.api.registry import operation
from admin.api.views import Refusal, _body, _dump, _query, bp
from admin.permissions import Permission
from leadvault import db
from scoring import absences, routing, sales_team, sales_teams
from scoring import schemas as scoring_schemas

P = Permission


def _who() -> dict[str, str | None]:
    """Who the audit trail records for a change (the token's account, its network)."""
    return {"actor": auth.current_actor(), "ip": auth.client_ip()}


def _refused(exc: routing.SalesError, field: str = "_schema") -> Refusal:
    """The refusal in the request's language, under the field the service names
    (``field`` when it names none, e.g. a team id of the request's path or body)."""
    errors = {exc.field or field: [exc.translated()]}
    if isinstance(exc, sales_team.NotFound):
        return Refusal(404, errors=errors)
    if isinstance(exc, sales_team.Conflict):
        return Refusal(409, errors=errors)
    return Refusal(422, errors=errors)


# --- salespeople ---------------------------------------------------------------------


@operation(
    bp,
    "GET",
    "/salespeople",
    summary="Salespeople with capacity, load this week, absence today and teams",
    permission=P.SALES_TEAM_WRITE,
    response=scoring_schemas.SalespersonSchema,
    many=True,
    personal=True,
    tag="sales",
)
def salespeople_list() -> Response:
    return _dump(scoring_schemas.SalespersonSchema, sales_team.roster(db.session()), many=True)


@operation(
    bp,
    "POST",
    "/salespeople",
    summary="Add a salesperson (name and address stored sealed)",
    permission=P.SALES_TEAM_WRITE,
    body=scoring_schemas.SalespersonInSchema,
    response=scoring_schemas.SalespersonSchema,
    status=201,
    errors=(404, 409),
    personal=True,
    tag="sales",
)
def salespeople_create() -> Response:
    args = _body(scoring_schemas.SalespersonInSchema)
    session = db.session()
    try:
        added = sales_team.add_person(
            session,
            email=args["email"],
            name=args["name"],
            language=args["language"],
            weight=args["weight"],
            weekly_capacity=args["weekly_capacity"],
            **_who(),
        )
        for team_id in args["team_ids"]:
            sales_teams.add_member(session, team_id, added.id, **_who())
    except routing.SalesError as exc:
        raise _refused(exc, "team_ids") from None
    return _dump(scoring_schemas.SalespersonSchema, sales_team.row_of(session, added.id), 201)


@operation(
    bp,
    "GET",
    "/salespeople/{person_id}",
    summary="One salesperson",
    permission=P.SALES_TEAM_WRITE,
    response=scoring_schemas.SalespersonSchema,
    path_params=(("person_id", "int"),),
    personal=True,
    tag="sales",
)
def salesperson_detail(person_id: int) -> Response:
    try:
        row = sales_team.row_of(db.session(), person_id)
    except routing.SalesError as exc:
        raise _refused(exc) from None
    return _dump(scoring_schemas.SalespersonSchema, row)


@operation(
    bp,
    "PATCH",
    "/salespeople/{person_id}",
    summary=(
        "Change a salesperson's name, address (audited; their open handoffs' next mails go "
        "to it), language, weight, weekly capacity or activity"
    ),
    permission=P.SALES_TEAM_WRITE,
    body=scoring_schemas.SalespersonPatchSchema,
    response=scoring_schemas.SalespersonSchema,
    errors=(409,),
    path_params=(("person_id", "int"),),
    personal=True,
    tag="sales",
)
def salesperson_update(person_id: int) -> Response:
    args = _body(scoring_schemas.SalespersonPatchSchema)
    session = db.session()
    try:
        sales_team.update_person(session, person_id, **args, **_who())
        row = sales_team.row_of(session, person_id)
    except routing.SalesError as exc:
        raise _refused(exc) from None
    return _dump(scoring_schemas.SalespersonSchema, row)


@operation(
    bp,
    "DELETE",
    "/salespeople/{person_id}",
    summary="Deactivate a salesperson (routing skips them; their handoffs stay on record)",
    permission=P.SALES_TEAM_WRITE,
    status=204,
    path_params=(("person_id", "int"),),
    tag="sales",
)
def salesperson_deactivate(person_id: int) -> Response:
    try:
        sales_team.update_person(db.session(), person_id, active=False, **_who())
    except routing.SalesError as exc:
        raise _refused(exc) from None
    return Response(status=204)


# --- teams ---------------------------------------------------------------------------


@operation(
    bp,
    "GET",
    "/teams",
    summary="Teams with their routing strategy and members",
    permission=P.SALES_TEAM_WRITE,
    response=scoring_schemas.TeamSchema,
    many=True,
    personal=True,
    tag="sales",
)
def teams_list() -> Response:
    return _dump(scoring_schemas.TeamSchema, sales_teams.team_rows(db.session()), many=True)


@operation(
    bp,
    "POST",
    "/teams",
    summary="Create a team",
    permission=P.SALES_TEAM_WRITE,
    body=scoring_schemas.TeamInSchema,
    response=scoring_schemas.TeamSchema,
    status=201,
    errors=(409,),
    tag="sales",
)
def teams_create() -> Response:
    args = _body(scoring_schemas.TeamInSchema)
    session = db.session()
    try:
        team = sales_teams.add_team(session, args["name"], args["strategy"], **_who())
    except routing.SalesError as exc:
        raise _refused(exc, "name") from None
    return _dump(scoring_schemas.TeamSchema, sales_teams.team_row(session, team.id), 201)


@operation(
    bp,
    "PATCH",
    "/teams/{team_id}",
    summary="Change a team's routing strategy",
    permission=P.SALES_TEAM_WRITE,
    body=scoring_schemas.TeamPatchSchema,
    response=scoring_schemas.TeamSchema,
    path_params=(("team_id", "int"),),
    personal=True,
    tag="sales",
)
def team_update(team_id: int) -> Response:
    args = _body(scoring_schemas.TeamPatchSchema)
    session = db.session()
    try:
        sales_teams.update_team(session, team_id, strategy=args["strategy"], **_who())
        row = sales_teams.team_row(session, team_id)
    except routing.SalesError as exc:
        raise _refused(exc, "strategy") from None
    return _dump(scoring_schemas.TeamSchema, row)


@operation(
    bp,
    "DELETE",
    "/teams/{team_id}",
    summary="Delete a team that never handed off a lead",
    permission=P.SALES_TEAM_WRITE,
    status=204,
    errors=(409,),
    path_params=(("team_id", "int"),),
    tag="sales",
)
def team_delete(team_id: int) -> Response:
    try:
        sales_teams.delete_team(db.session(), team_id, **_who())
    except routing.SalesError as exc:
        raise _refused(exc) from None
    return Response(status=204)


@operation(
    bp,
    "POST",
    "/teams/{team_id}/members",
    summary="Add a salesperson to a team",
    permission=P.SALES_TEAM_WRITE,
    body=scoring_schemas.MemberInSchema,
    response=scoring_schemas.TeamSchema,
    path_params=(("team_id", "int"),),
    personal=True,
    tag="sales",
)
def team_member_add(team_id: int) -> Response:
    args = _body(scoring_schemas.MemberInSchema)
    session = db.session()
    try:
        sales_teams.add_member(session, team_id, args["person_id"], **_who())
        row = sales_teams.team_row(session, team_id)
    except routing.SalesError as exc:
        raise _refused(exc, "person_id") from None
    return _dump(scoring_schemas.TeamSchema, row)


@operation(
    bp,
    "DELETE",
    "/teams/{team_id}/members/{person_id}",
    summary="Take a salesperson out of a team",
    permission=P.SALES_TEAM_WRITE,
    status=204,
    path_params=(("team_id", "int"), ("person_id", "int")),
    tag="sales",
)
def team_member_remove(team_id: int, person_id: int) -> Response:
    try:
        sales_teams.remove_member(db.session(), team_id, person_id, **_who())
    except routing.SalesError as exc:
        raise _refused(exc) from None
    return Response(status=204)


# --- absences ------------------------------------------------------------------------


@operation(
    bp,
    "GET",
    "/absences",
    summary="Absences not yet over, soonest first",
    permission=P.SALES_TEAM_WRITE,
    query=scoring_schemas.AbsenceQuerySchema,
    response=scoring_schemas.AbsenceSchema,
    many=True,
    tag="sales",
)
def absences_list() -> Response:
    args = _query(scoring_schemas.AbsenceQuerySchema)
    rows = absences.absences(db.session(), person_id=args.get("person_id"), limit=args["limit"])
    return _dump(scoring_schemas.AbsenceSchema, rows, many=True)


@operation(
    bp,
    "POST",
    "/absences",
    summary="Record whole days (UTC) a salesperson is away; routing skips them",
    permission=P.SALES_TEAM_WRITE,
    body=scoring_schemas.AbsenceInSchema,
    response=scoring_schemas.AbsenceSchema,
    status=201,
    errors=(404,),
    tag="sales",
)
def absences_create() -> Response:
    args = _body(scoring_schemas.AbsenceInSchema)
    try:
        absence = absences.add_absence(
            db.session(), args["person_id"], args["starts_on"], args["ends_on"], **_who()
        )
    except routing.SalesError as exc:
        field = "person_id" if isinstance(exc, sales_team.NotFound) else "ends_on"
        raise _refused(exc, field) from None
    return _dump(scoring_schemas.AbsenceSchema, absence, 201)


@operation(
    bp,
    "DELETE",
    "/absences/{absence_id}",
    summary="Delete an absence",
    permission=P.SALES_TEAM_WRITE,
    status=204,
    path_params=(("absence_id", "int"),),
    tag="sales",
)
def absence_delete(absence_id: int) -> Response:
    try:
        absences.delete_absence(db.session(), absence_id, **_who())
    except routing.SalesError as exc:
        raise _refused(exc) from None
    return Response(status=204)
