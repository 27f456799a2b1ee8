"""The console's sales team pages (the owner's): salespeople with capacity and load,
teams and their members, absences.

Thin: forms are loaded with the admin API's marshmallow schemas and handed to
``scoring.sales_team`` / ``sales_teams`` / ``absences`` (the API and ``leadvault
sales …`` use the same services); a refused form comes back with the message next
to its field.
"""

from __future__ import annotations

from typing import Any

from flask import Response, redirect, request, url_for
from marshmallow import Schema, ValidationError

from admin import auth
from admin.console.views import _error, bp, page
from admin.permissions import Permission
from leadvault import db
from leadvault.i18n import N_
from leadvault.model_base import ROW_ID_MAX
from scoring import absences, routing, sales_team, sales_teams, unrouted
from scoring import schemas as scoring_schemas
from scoring.sales_limits import CAPACITY_MAX, WEIGHT_MAX

P = Permission
# The number inputs' max="…": the service's ceilings (a browser asks before it sends).
LIMITS = {"weight_max": WEIGHT_MAX, "capacity_max": CAPACITY_MAX}


def _load(schema: type[Schema], names: tuple[str, ...]) -> dict[str, Any]:
    """The form's fields through the schema; raises ValidationError naming the field."""
    raw: dict[str, Any] = {}
    for name in names:
        value = request.form.get(name)
        if value is not None and value.strip() != "":
            raw[name] = value.strip()[:400]
    return schema().load(raw)


def _first(messages: Any) -> dict[str, str]:
    """{field: its first message} for showing next to each field."""
    if not isinstance(messages, dict):
        return {"_schema": str(messages)}
    first: dict[str, str] = {}
    for field, value in messages.items():
        message = value
        while isinstance(message, list | dict) and message:
            message = message[0] if isinstance(message, list) else next(iter(message.values()))
        first[str(field)] = str(message)
    return first


def _refusal(exc: routing.SalesError, shown: tuple[str, ...], other: str) -> dict[str, str]:
    """{field: the service's message in the page's language}: under the field it names
    if the form shows that field's errors, else under ``other``."""
    return {exc.field if exc.field in shown else other: exc.translated()}


def _who() -> dict[str, Any]:
    """Who the audit trail records for a change (the signed-in account, its network)."""
    return {"actor": auth.current_actor(), "ip": auth.client_ip()}


def _team_page(status: int = 200, **extra: Any) -> Response:
    """The team page; ``form`` names the form a refusal is about (``person``, ``team``,
    ``absence``): its fields show what was typed, its messages sit next to them."""
    session = db.session()
    form = extra.pop("form", None)
    people = sales_team.roster(session)
    return page(
        "console/sales.html",
        status,
        section="sales",
        people=people,
        teams=sales_teams.team_rows(session),
        absences=absences.absences(session),
        names={row.id: row.name for row in people},
        strategies=routing.STRATEGIES,
        **LIMITS,
        unrouted=unrouted.in_active_rules(session),
        done=request.args.get("done"),
        errors=extra.pop("errors", {}),
        form=form,
        # A refused form is filled again with what was typed (templates: |typed).
        typed=request.form if form else {},
        **extra,
    )


def _back(done: str) -> Response:
    return redirect(url_for("console.sales", done=done))


@bp.get("/sales")
@auth.require(P.SALES_TEAM_WRITE)
def sales() -> Response:
    return _team_page()


@bp.post("/sales/people")
@auth.require(P.SALES_TEAM_WRITE)
def sales_person_add() -> Response:
    try:
        args = _load(
            scoring_schemas.SalespersonInSchema,
            ("email", "name", "language", "weight", "weekly_capacity"),
        )
        team_ids = args.pop("team_ids")  # the API's schema: the form sends none
        session = db.session()
        added = sales_team.add_person(session, **args, **_who())
        for team_id in team_ids:
            sales_teams.add_member(session, team_id, added.id, **_who())
    except ValidationError as exc:
        return _team_page(422, errors=_first(exc.messages), form="person")
    except routing.SalesError as exc:
        errors = _refusal(exc, ("name", "email", "language", "weight", "weekly_capacity"), "email")
        return _team_page(422, errors=errors, form="person")
    return _back("person")


def _person_or_none(person_id: int) -> sales_team.PersonRow | None:
    if person_id == 0:
        return None
    try:
        return sales_team.row_of(db.session(), person_id)
    except sales_team.NotFound:
        return None


def _person_page(row: sales_team.PersonRow, status: int = 200, **extra: Any) -> Response:
    session = db.session()
    return page(
        "console/sales_person.html",
        status,
        section="sales",
        person=row,
        absences=absences.absences(session, person_id=row.id),
        errors=extra.pop("errors", {}),
        saved=request.args.get("saved") == "1",
        typed=request.form if status == 422 else {},
        unrouted=unrouted.in_active_rules(session),
        **LIMITS,
        **extra,
    )


PERSON_FIELDS = ("name", "email", "language", "weight", "weekly_capacity")


@bp.get("/sales/people/<int:person_id>")
@auth.require(P.SALES_TEAM_WRITE)
def sales_person(person_id: int) -> Response:
    row = _person_or_none(person_id)
    if row is None:
        return _error(404, N_("There is no such salesperson."))
    return _person_page(row)


@bp.post("/sales/people/<int:person_id>")
@auth.require(P.SALES_TEAM_WRITE)
def sales_person_update(person_id: int) -> Response:
    row = _person_or_none(person_id)
    if row is None:
        return _error(404, N_("There is no such salesperson."))
    try:
        args = _load(scoring_schemas.SalespersonPatchSchema, PERSON_FIELDS)
        for field in ("name", "email"):
            # Emptied: the service refuses it by name (``_load`` leaves blanks out).
            if field in request.form and field not in args:
                args[field] = ""
        args["active"] = request.form.get("active") == "1"
        sales_team.update_person(db.session(), person_id, **args, **_who())
    except ValidationError as exc:
        return _person_page(row, 422, errors=_first(exc.messages))
    except routing.SalesError as exc:
        return _person_page(row, 422, errors=_refusal(exc, PERSON_FIELDS, "weight"))
    return redirect(url_for("console.sales_person", person_id=person_id, saved=1))


@bp.post("/sales/absences")
@auth.require(P.SALES_TEAM_WRITE)
def sales_absence_add() -> Response:
    try:
        args = _load(scoring_schemas.AbsenceInSchema, ("person_id", "starts_on", "ends_on"))
        absences.add_absence(
            db.session(), args["person_id"], args["starts_on"], args["ends_on"], **_who()
        )
    except ValidationError as exc:
        return _team_page(422, errors=_first(exc.messages), form="absence")
    except routing.SalesError as exc:
        errors = _refusal(exc, ("person_id", "ends_on"), "ends_on")
        return _team_page(422, errors=errors, form="absence")
    return _back("absence")


@bp.post("/sales/absences/<int:absence_id>/delete")
@auth.require(P.SALES_TEAM_WRITE)
def sales_absence_delete(absence_id: int) -> Response:
    try:
        absences.delete_absence(db.session(), absence_id, **_who())
    except sales_team.NotFound:
        return _error(404, N_("There is no such absence."))
    return _back("absence-deleted")


@bp.post("/sales/teams")
@auth.require(P.SALES_TEAM_WRITE)
def sales_team_add() -> Response:
    try:
        args = _load(scoring_schemas.TeamInSchema, ("name", "strategy"))
        sales_teams.add_team(db.session(), args["name"], args["strategy"], **_who())
    except ValidationError as exc:
        return _team_page(422, errors=_first(exc.messages), form="team")
    except routing.SalesError as exc:
        return _team_page(422, errors=_refusal(exc, ("name", "strategy"), "name"), form="team")
    return _back("team")


@bp.post("/sales/teams/<int:team_id>")
@auth.require(P.SALES_TEAM_WRITE)
def sales_team_update(team_id: int) -> Response:
    """One form per team: change the strategy, add a member, remove one, or delete it."""
    session = db.session()
    action = request.form.get("action", "")
    try:
        if action == "strategy":
            args = _load(scoring_schemas.TeamPatchSchema, ("strategy",))
            sales_teams.update_team(session, team_id, strategy=args["strategy"], **_who())
        elif action == "add_member":
            args = _load(scoring_schemas.MemberInSchema, ("person_id",))
            sales_teams.add_member(session, team_id, args["person_id"], **_who())
        elif action.startswith("remove:") and action[7:].isdecimal():
            person_id = min(int(action[7:]), ROW_ID_MAX)
            sales_teams.remove_member(session, team_id, person_id, **_who())
        elif action == "delete":
            sales_teams.delete_team(session, team_id, **_who())
        else:
            return _error(400, N_("The request could not be understood."))
    except ValidationError as exc:
        message = next(iter(_first(exc.messages).values()))
        return _team_page(422, errors={f"team-{team_id}": message})
    except sales_team.NotFound:
        return _error(404, N_("There is no such team or salesperson."))
    except routing.SalesError as exc:
        return _team_page(422, errors={f"team-{team_id}": exc.translated()})
    return _back("team")
