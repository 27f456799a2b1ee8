"""The JSON admin API under /api/v1/: the blueprint, its request helpers, tokens, audit
trail, ledger verification (the lead operations are in ``admin/api/leads.py``, the
reports in ``admin/api/reports.py``).

Thin views over the services (admin.tokens, leadvault.audit); every
operation is declared once with its permission and schemas (registry.operation).
Authentication: a personal API token, or the console's sign-in plus a CSRF token
(X-CSRFToken header) on writes.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from marshmallow import Schema, ValidationError, fields
from werkzeug.exceptions import RequestEntityTooLarge

from admin import auth, permissions, tokens
from admin.api import problems, schemas
from admin.api.registry import (
    OPERATIONS,
    PREFIX,
    body_limit,
    build_spec,
    operation,
    too_large_refusal,
)
from admin.models import PersonalToken
from admin.permissions import Permission
from leadvault import audit, days, db, i18n, sizes
from leadvault.i18n import N_
from leadvault.web import csrf

P = Permission


class Refusal(Exception):
    """Answer with a problem (status, English message id, field errors)."""

    def __init__(
        self, status: int, detail: str | None = None, errors: dict[str, Any] | None = None
    ) -> None:
        super().__init__(status)
        self.status, self.detail, self.errors = status, detail, errors


def cursor_refusal() -> Refusal:
    """A ``cursor`` argument that is not a list's ``next_cursor``."""
    message = i18n.gettext(N_("Not a cursor this API gave out."))
    return Refusal(422, errors={"cursor": [message]})


def _refusal(exc: Refusal) -> Response:
    return problems.problem(exc.status, exc.detail, errors=exc.errors)


_TOO_LARGE = N_("The request is larger than %(size)s, the most taken here.")


def _too_large(_exc: RequestEntityTooLarge) -> Response:
    """A body over the operation's limit (or the app's), read by the CSRF check or the
    view: the limit is named, and what is too large where the operation says (an
    upload's file), so that both paths answer alike."""
    refusal = too_large_refusal(request.endpoint)
    if isinstance(refusal, Refusal):
        return _refusal(refusal)
    limit = request.max_content_length or 0
    return problems.problem(413, i18n.gettext(_TOO_LARGE, size=sizes.readable(limit)))


def _guard() -> Response | None:
    """Writes by the console's sign-in need its CSRF token; tokens need none. An
    operation's own body limit applies first (the CSRF check may read a form)."""
    limit = body_limit(request.endpoint)
    if limit is not None:
        request.max_content_length = limit
    if request.method in db.SAFE_METHODS or auth.authenticated_by_token():
        return None
    if auth.current_user() is None:
        return None  # the view's permission check answers 401
    try:
        csrf.protect()
    except CSRFError:
        return problems.problem(400, N_("The page expired. Please reload it and try again."))
    return None


def api_blueprint(name: str, **options: Any) -> Blueprint:
    """A blueprint of the API under /api/v1/: the guard above, refusals as problems
    (every module's operations answer alike, whichever blueprint they join)."""
    blueprint = Blueprint(name, __name__, url_prefix=PREFIX, **options)
    csrf.exempt(blueprint)
    blueprint.before_request(_guard)
    blueprint.register_error_handler(Refusal, _refusal)
    blueprint.register_error_handler(RequestEntityTooLarge, _too_large)
    return blueprint


bp = api_blueprint("admin_api", template_folder="../templates")


def _query(schema: type[Schema]) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    repeated: dict[str, list[str]] = {}
    for key in request.args:
        values = request.args.getlist(key)
        many = isinstance(schema._declared_fields.get(key), fields.List)
        if not many and len(values) > 1:
            # Taking one of them silently (?limit=1&limit=500) answers another question
            # than the client asked.
            repeated[key] = [i18n.gettext(N_("Give this parameter once."))]
        raw[key] = values if many else values[-1]
    if repeated:
        raise Refusal(422, errors=repeated)
    try:
        return schema().load(raw)
    except ValidationError as exc:
        raise Refusal(422, errors=_errors(exc)) from None


def _body(schema: type[Schema]) -> dict[str, Any]:
    if not request.is_json:
        raise Refusal(415)
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise Refusal(400, N_("The request could not be understood."))
    try:
        return schema().load(data)
    except ValidationError as exc:
        raise Refusal(422, errors=_errors(exc)) from None


def _errors(exc: ValidationError) -> dict[str, Any]:
    messages = exc.messages
    return messages if isinstance(messages, dict) else {"_schema": messages}


def _dump(schema: type[Schema], value: Any, status: int = 200, *, many: bool = False) -> Response:
    response = jsonify(schema(many=many).dump(value))
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


# --- who am I ------------------------------------------------------------------------


@operation(
    bp,
    "GET",
    "/me",
    summary="The account asking",
    permission=None,
    response=schemas.MeSchema,
    tag="account",
)
def me() -> Response:
    user = auth.current_user()
    assert user is not None
    return _dump(
        schemas.MeSchema,
        {
            "id": user.id,
            "role": user.role,
            "permissions": sorted(p.value for p in auth.granted()),
            "via": "token" if auth.authenticated_by_token() else "console",
        },
    )


# --- personal API tokens ---------------------------------------------------------------


@operation(
    bp,
    "GET",
    "/tokens",
    summary="Your personal API tokens",
    permission=None,
    response=schemas.TokenSchema,
    many=True,
    tag="account",
)
def tokens_list() -> Response:
    user = auth.current_user()
    assert user is not None
    return _dump(schemas.TokenSchema, tokens.of_user(db.session(), user), many=True)


@operation(
    bp,
    "POST",
    "/tokens",
    summary="Create a personal API token (console sign-in only; the secret is shown once)",
    permission=None,
    body=schemas.TokenCreateSchema,
    response=schemas.TokenCreatedSchema,
    status=201,
    tag="account",
)
def tokens_create() -> Response:
    args = _body(schemas.TokenCreateSchema)
    if auth.authenticated_by_token():
        raise Refusal(403, N_("Tokens are made while signed in, not with another token."))
    user = auth.current_user()
    assert user is not None
    try:
        token, secret = tokens.create(
            db.session(),
            user,
            name=args["name"],
            scopes=args["scopes"],
            days=args["days"],
            actor=auth.current_actor(),
            ip=auth.client_ip(),
        )
    except tokens.TokenError as exc:
        raise Refusal(422, errors={exc.field or "scopes": [exc.translated()]}) from None
    created = {name: getattr(token, name) for name in schemas.TokenSchema._declared_fields}
    return _dump(schemas.TokenCreatedSchema, {**created, "secret": secret}, 201)


@operation(
    bp,
    "DELETE",
    "/tokens/{token_id}",
    summary="Revoke a token (yours; an owner may revoke anyone's)",
    permission=None,
    status=204,
    path_params=(("token_id", "int"),),
    tag="account",
)
def tokens_revoke(token_id: int) -> Response:
    session = db.session()
    user = auth.current_user()
    assert user is not None
    token = session.get(PersonalToken, token_id)
    if token is None or (token.user_id != user.id and not auth.can(P.USERS_MANAGE)):
        raise Refusal(404)
    tokens.revoke(session, token, actor=auth.current_actor(), ip=auth.client_ip())
    return Response(status=204)


# --- audit trail and ledger ------------------------------------------------------------


def _audit_row(entry: Any) -> dict[str, Any]:
    return {
        "id": entry.id,
        "created_at": entry.created_at,
        "actor": entry.actor,
        "action": entry.action,
        "action_label": audit.Action.shown(entry.action),
        "object_type": entry.object_type,
        "object_type_label": audit.ObjectType.shown(entry.object_type),
        "object_id": entry.object_id,
        "detail": audit.detail_of(entry),
        "ip_prefix": entry.ip_prefix,
        "entry_hash": entry.entry_hash,
    }


@operation(
    bp,
    "GET",
    "/audit",
    summary="Audit trail entries, newest first (continue with before=<last id>); each with "
    "its action's and object type's label in the language of Accept-Language",
    permission=P.AUDIT_READ,
    query=schemas.AuditQuerySchema,
    response=schemas.AuditEntrySchema,
    many=True,
    tag="privacy",
)
def audit_list() -> Response:
    args = _query(schemas.AuditQuerySchema)
    filters = audit.Filters(
        actor=args.get("actor"),
        action=args.get("action"),
        object_type=args.get("object_type"),
        object_id=args.get("object_id"),
        since=days.start_of(args.get("since")),
        until=days.end_of(args.get("until")),  # the "until" day included
    )
    rows = audit.entries(db.session(), filters, before=args.get("before"), limit=args["limit"])
    return _dump(schemas.AuditEntrySchema, [_audit_row(r) for r in rows], many=True)


def _verdict(verdict: Any) -> Response:
    return _dump(
        schemas.VerdictSchema,
        {
            "ok": verdict.ok,
            "checked": verdict.checked,
            "broken_id": verdict.broken_id,
            "reason": verdict.reason,
        },
    )


@operation(
    bp,
    "GET",
    "/audit/verify",
    summary="Verify the audit trail's hash chain",
    permission=P.AUDIT_READ,
    response=schemas.VerdictSchema,
    tag="privacy",
)
def audit_verify() -> Response:
    return _verdict(audit.verify(db.session()))


@operation(
    bp,
    "GET",
    "/ledger/verify",
    summary="Verify the consent ledger's hash chain",
    permission=P.LEDGER_READ,
    response=schemas.VerdictSchema,
    tag="privacy",
)
def ledger_verify() -> Response:
    from consent import ledger

    return _verdict(ledger.verify(db.session()))


# --- the document ----------------------------------------------------------------------


def _spec() -> dict[str, Any]:
    return build_spec(auth._settings().base_url)


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 document (public: it holds no data)."""
    return jsonify(_spec())


@bp.get("/docs")
def reference() -> str:
    """A readable reference, rendered here from the same document (no CDN, no script)."""
    spec = _spec()
    return render_template(
        "admin/api_reference.html",
        spec=spec,
        operations=sorted(OPERATIONS, key=lambda op: (op.tag, op.path, op.method)),
        roles={
            role.value: sorted(p.value for p in granted)
            for role, granted in permissions.TABLE.items()
        },
    )
