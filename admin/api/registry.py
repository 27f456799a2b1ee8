"""One declaration per API operation: the Flask route, its permission, its schemas,
and from the same declarations the OpenAPI 3.1 document (apispec).

The permission matrix test and the reference page read :data:`OPERATIONS` too,
so what is documented, what is enforced and what is tested cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint
from marshmallow import Schema

from admin.api import problems
from admin.permissions import Permission
from leadvault.model_base import ROW_ID_MAX

PREFIX = "/api/v1"


@dataclasses.dataclass(frozen=True)
class Operation:
    method: str
    path: str  # OpenAPI style: /leads/{lead_id}
    endpoint: str
    summary: str
    permission: Permission | None  # None: any signed-in account
    query: type[Schema] | None = None
    body: type[Schema] | None = None
    response: type[Schema] | None = None
    status: int = 200
    many: bool = False
    errors: tuple[int, ...] = ()
    personal: bool = False  # answers with decrypted personal data
    tag: str = "leads"
    path_params: tuple[tuple[str, str], ...] = ()  # (name, format)
    # Media types the body may come as: the ``body`` schema's fields for JSON and form
    # posts, any other (a CSV upload) a file of that type.
    body_types: tuple[str, ...] = ("application/json",)
    # Media types of the answer: JSON follows ``response``; others (a streamed CSV
    # file …) are documented as a file of that type.
    response_types: tuple[str, ...] = ("application/json",)
    # The largest body (an upload), or what tells it when asked (a limit read at request
    # time); None: the app's limit (LEADVAULT_MAX_BODY_BYTES).
    max_bytes: int | Callable[[], int] | None = None
    # The refusal of a body over ``max_bytes`` that names what is too large (an upload's
    # file and its limit), wherever the limit is hit; None: the request and its limit.
    too_large: Callable[[], Exception] | None = None


OPERATIONS: list[Operation] = []
_BODY_LIMITS: dict[str, int | Callable[[], int]] = {}
_TOO_LARGE: dict[str, Callable[[], Exception]] = {}


def body_limit(endpoint: str | None) -> int | None:
    """The body limit an operation declares (set before anything reads the body)."""
    limit = _BODY_LIMITS.get(endpoint or "")
    return limit() if callable(limit) else limit


def too_large_refusal(endpoint: str | None) -> Exception | None:
    """The refusal an operation declares for a body over its limit (``too_large``)."""
    refusal = _TOO_LARGE.get(endpoint or "")
    return refusal() if refusal is not None else None


def _flask_path(path: str, params: tuple[tuple[str, str], ...]) -> str:
    converters = {"uuid": "uuid", "int": "int", "string": "string"}
    for name, kind in params:
        path = path.replace("{" + name + "}", f"<{converters[kind]}:{name}>")
    return path


def operation(
    bp: Blueprint,
    method: str,
    path: str,
    *,
    summary: str,
    permission: Permission | None,
    **options: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a view as ``method path`` and document it."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        from admin import auth

        params = tuple(options.pop("path_params", ()))
        checked = _ids_checked(view, [name for name, kind in params if kind == "int"])
        guarded = (
            auth.require(permission)(checked)
            if permission is not None
            else auth.require_signed_in(checked)
        )
        op = Operation(
            method=method.lower(),
            path=path,
            endpoint=f"{bp.name}.{view.__name__}",
            summary=summary,
            permission=permission,
            path_params=params,
            **options,
        )
        OPERATIONS.append(op)
        if op.max_bytes is not None:
            _BODY_LIMITS[op.endpoint] = op.max_bytes
        if op.too_large is not None:
            _TOO_LARGE[op.endpoint] = op.too_large
        bp.add_url_rule(
            _flask_path(path, params),
            view.__name__,
            functools.wraps(view)(guarded),
            methods=[method.upper()],
            provide_automatic_options=False,
        )
        return view

    return decorate


def _ids_checked(view: Callable[..., Any], names: list[str]) -> Callable[..., Any]:
    """The view, answering 404 for an integer id no row can have (0, negative, too big)."""
    if not names:
        return view

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if any(not 0 < kwargs[name] <= ROW_ID_MAX for name in names):
            return problems.problem(404)
        return view(*args, **kwargs)

    return checked


def _schema_name(schema: type[Schema]) -> str:
    return re.sub(r"Schema$", "", schema.__name__)


PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "object", "additionalProperties": True},
    },
}


def build_spec(base_url: str) -> dict[str, Any]:
    spec = APISpec(
        title="Leadvault admin API",
        version="1",
        openapi_version="3.1.0",
        plugins=[MarshmallowPlugin()],
        servers=[{"url": f"{base_url}{PREFIX}"}],
        info={
            "description": (
                "Leads, consent, scoring and reports of one Leadvault instance. "
                "Authenticate with a personal API token (Authorization: Bearer lvp_…) "
                "or the console's sign-in (cookie plus X-CSRFToken on writes). "
                "Every error is RFC 9457 problem+json. Lists are bounded and paged."
            )
        },
    )
    spec.components.security_scheme(
        "token", {"type": "http", "scheme": "bearer", "description": "Personal API token (lvp_…)"}
    )
    spec.components.security_scheme(
        "console", {"type": "apiKey", "in": "cookie", "name": "lv_staff"}
    )
    spec.components.schema("Problem", PROBLEM)
    seen: set[str] = set()
    for schema in {s for op in OPERATIONS for s in (op.query, op.body, op.response) if s}:
        name = _schema_name(schema)
        if name not in seen:
            spec.components.schema(name, schema=schema)
            seen.add(name)
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


_ERROR_TEXT = {
    400: "The request could not be understood",
    401: "Not signed in, or no valid token",
    403: "The role or the token's scopes do not allow this",
    404: "No such object (or not yours to see)",
    409: "Conflicts with the current state",
    413: "The body is too large",
    415: "The body is not JSON",
    422: "Invalid input; `errors` names the fields",
}


def _operation(op: Operation) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {
            "in": "path",
            "name": name,
            "required": True,
            "schema": {"type": "string", "format": "uuid"}
            if kind == "uuid"
            else {"type": "integer"}
            if kind == "int"
            else {"type": "string"},
        }
        for name, kind in op.path_params
    ]
    if op.query is not None:
        parameters.append({"in": "query", "schema": op.query})
    responses: dict[str, Any] = {}
    if op.status == 204:
        responses["204"] = {"description": "Done"}
    else:
        ref = {"$ref": f"#/components/schemas/{_schema_name(op.response)}"} if op.response else {}
        schema = {"type": "array", "items": ref} if op.many else ref
        responses[str(op.status)] = {
            "description": "OK",
            "content": {
                media: {"schema": _media_schema(media, schema)} for media in op.response_types
            },
        }
    errors = {401, 403, *op.errors}
    if op.max_bytes is not None:
        errors.add(413)
    if op.query is not None or op.body is not None:
        errors |= {400, 422}
    if op.body is not None:
        errors.add(415)
    if op.path_params:
        errors.add(404)
    for status in sorted(errors):
        responses[str(status)] = _problem(_ERROR_TEXT[status])
    document: dict[str, Any] = {
        "summary": op.summary,
        "operationId": op.endpoint.split(".", 1)[1],
        "tags": [op.tag],
        "security": [{"token": []}, {"console": []}],
        "parameters": parameters,
        "responses": responses,
        "x-permission": op.permission.value if op.permission else None,
    }
    content = {
        media: {"schema": _media_schema(media, op.body)}
        for media in op.body_types
        if op.body is not None or media not in _FORM_TYPES
    }
    if content:
        document["requestBody"] = {"required": True, "content": content}
    return document


# Bodies whose fields the schema describes (an upload's file is one of them, binary).
_FORM_TYPES = {"application/json", "application/x-www-form-urlencoded", "multipart/form-data"}


def _media_schema(media: str, schema: Any) -> Any:
    """The schema of a body or answer of one media type: fields for JSON and forms,
    a file (a string of bytes) for anything else."""
    return schema if media in _FORM_TYPES else {"type": "string", "format": "binary"}
