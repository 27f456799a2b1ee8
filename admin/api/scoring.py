"""The admin API's scoring rules and handoffs: validate, dry-run, activate, versions;
open and overdue handoffs.

Thin views over ``scoring.rulesets`` and ``scoring.handoff_board`` (the console
and ``leadvault scoring load`` use the same services). A rules file the
service refuses is problem+json naming the line. Registered on the API's one
blueprint, so the CSRF guard and the problem answers are those of every operation.
"""

from __future__ import annotations

from typing import Any

from flask import Response

from admin import auth
from admin.api.registry import operation
from admin.api.views import Refusal, _body, _dump, _query, bp, cursor_refusal
from admin.permissions import Permission
from leadvault import db, i18n
from leadvault.i18n import N_
from scoring import handoff_board, rules, rulesets, unrouted
from scoring import schemas as scoring_schemas

P = Permission


def rules_refusal(problem: rulesets.Problem) -> Refusal:
    """A 422 whose ``errors.text`` names the line: ``line 12: unknown section 'x'``, in
    the request's language."""
    return Refusal(
        422,
        N_("The rules file has a problem; errors.text names the line."),
        errors={"text": [problem.translated()]},
    )


def _version_row(row: Any) -> dict[str, Any]:
    return {
        "version": row.version,
        "source": row.source,
        "sha256": row.sha256,
        "loaded_at": row.loaded_at,
        "active": row.active,
    }


@operation(
    bp,
    "POST",
    "/scoring/rules/validate",
    summary="Check a rules file without storing it; the answer names the line of a problem",
    permission=P.SCORING_READ,
    body=scoring_schemas.RulesTextSchema,
    response=scoring_schemas.RulesProblemSchema,
    tag="scoring",
)
def rules_validate() -> Response:
    args = _body(scoring_schemas.RulesTextSchema)
    problem = rulesets.validate(args["text"])
    if problem is None:
        return _dump(scoring_schemas.RulesProblemSchema, {"valid": True})
    return _dump(
        scoring_schemas.RulesProblemSchema,
        {"valid": False, "line": problem.line, "message": problem.reason(i18n.current_language())},
    )


@operation(
    bp,
    "POST",
    "/scoring/rules/dry-run",
    summary="How many leads would change grade or stage under a rules file (writes nothing)",
    permission=P.SCORING_READ,
    body=scoring_schemas.DryRunRequestSchema,
    response=scoring_schemas.DryRunSchema,
    tag="scoring",
)
def rules_dry_run() -> Response:
    args = _body(scoring_schemas.DryRunRequestSchema)
    problem = rulesets.validate(args["text"])
    if problem is not None:
        raise rules_refusal(problem)
    result = rulesets.dry_run(db.session(), args["text"], limit=args["limit"])
    return _dump(
        scoring_schemas.DryRunSchema,
        {**result.__dict__, "complete": result.complete},
    )


@operation(
    bp,
    "POST",
    "/scoring/rules/activate",
    summary="Store a rules file (or an earlier version) as the next version, make it active "
    "and re-grade every lead (one audit entry); unrouted_rules lists its routing rules that "
    "name an address no salesperson has",
    permission=P.SCORING_WRITE,
    body=scoring_schemas.ActivateSchema,
    response=scoring_schemas.RuleActivatedSchema,
    status=201,
    errors=(404,),
    tag="scoring",
)
def rules_activate() -> Response:
    args = _body(scoring_schemas.ActivateSchema)
    session = db.session()
    actor, ip = auth.current_actor(), auth.client_ip()
    allow_empty = args["allow_empty"]
    try:
        if "version" in args:
            try:
                row = rulesets.restore(
                    session, args["version"], actor=actor, ip=ip, allow_empty=allow_empty
                )
            except rulesets.RuleSetError as exc:
                raise Refusal(404, errors={"version": [exc.translated()]}) from None
        else:
            problem = rulesets.validate(args["text"])
            if problem is not None:
                raise rules_refusal(problem)
            row = rulesets.activate(
                session, args["text"], actor=actor, ip=ip, source="api", allow_empty=allow_empty
            )
    except rules.RulesError as exc:  # a concurrent activation won every retry
        raise Refusal(409, errors={"text": [exc.translated()]}) from None
    except rulesets.NoScoringRules as exc:
        raise Refusal(
            422,
            N_("The rules file has no scoring rule; send allow_empty: true to activate it."),
            errors={"version" if "version" in args else "text": [exc.translated()]},
        ) from None
    # Not refused (the people may be added or changed next): pointed out.
    found = unrouted.in_text(session, row.raw_text)
    return _dump(
        scoring_schemas.RuleActivatedSchema, {**_version_row(row), "unrouted_rules": found}, 201
    )


@operation(
    bp,
    "GET",
    "/scoring/rules/versions",
    summary="Stored rule versions, newest first (continue with before=<last version>)",
    permission=P.SCORING_READ,
    query=scoring_schemas.VersionsQuerySchema,
    response=scoring_schemas.RuleVersionSchema,
    many=True,
    tag="scoring",
)
def rules_versions() -> Response:
    args = _query(scoring_schemas.VersionsQuerySchema)
    rows = rulesets.history(db.session(), limit=args["limit"], before=args.get("before"))
    return _dump(scoring_schemas.RuleVersionSchema, [_version_row(r) for r in rows], many=True)


@operation(
    bp,
    "GET",
    "/scoring/rules/versions/{version}",
    summary="One rule version: its text and its diff against the version before "
    "(or against=<version>)",
    permission=P.SCORING_READ,
    query=scoring_schemas.DiffQuerySchema,
    response=scoring_schemas.RuleVersionDetailSchema,
    path_params=(("version", "int"),),
    tag="scoring",
)
def rules_version(version: int) -> Response:
    args = _query(scoring_schemas.DiffQuerySchema)
    session = db.session()
    try:
        row = rulesets.by_version(session, version)
        lines = rulesets.diff(session, version, args.get("against"))
    except rulesets.RuleSetError as exc:
        raise Refusal(404, errors={"version": [exc.translated()]}) from None
    return _dump(
        scoring_schemas.RuleVersionDetailSchema,
        {**_version_row(row), "raw_text": row.raw_text, "diff": lines},
    )


# --- handoffs --------------------------------------------------------------------------


def handoff_scope() -> int | None:
    """None: every salesperson's handoffs; else the account's own salesperson (sales)."""
    if auth.can(P.HANDOFFS_READ):
        return None
    user = auth.current_user()
    assert user is not None
    return user.salesperson_id if user.salesperson_id is not None else -1


@operation(
    bp,
    "GET",
    "/handoffs",
    summary="Open handoffs (queued or offered), longest waiting first, with the overdue ones "
    "marked; sales see their own",
    permission=P.HANDOFFS_OWN,
    query=scoring_schemas.HandoffQuerySchema,
    response=scoring_schemas.HandoffBoardSchema,
    tag="scoring",
)
def handoffs_list() -> Response:
    args = _query(scoring_schemas.HandoffQuerySchema)
    after = None
    if args.get("cursor"):
        try:
            after = handoff_board.decode_cursor(args["cursor"])
        except ValueError:
            raise cursor_refusal() from None
    found = handoff_board.board(
        db.session(),
        person_id=handoff_scope(),
        overdue_only=args["overdue"],
        limit=args["limit"],
        after=after,
    )
    return _dump(
        scoring_schemas.HandoffBoardSchema,
        {
            "items": found.rows,
            "open_count": found.open_count,
            "overdue_count": found.overdue_count,
            "next_cursor": handoff_board.encode_cursor(found.next_after),
        },
    )
