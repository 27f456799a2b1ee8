"""API tokens for the JSON API: create, revoke, authenticate a request."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import jsonify, request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from leadvault import clock, db, untrusted
from leadvault.crypto import random_token, sha256_hex
from leadvault.models import ApiToken

SCOPES = ("consent:read", "events:write")
# The name column holds this many characters (api_tokens.name, personal_tokens.name).
TOKEN_NAME_MAX = 80


class ApiTokenError(Exception):
    """A token request the service refuses; the message names the problem."""


def token_name_refused(name: str) -> bool:
    """Whether a token name (trimmed) is refused: it needs 1 to 80 characters on one line.
    A NUL failed PostgreSQL's insert and a longer name its column (tracebacks, a 500), and
    a name of nothing cannot be revoked by name. Personal tokens (``admin.tokens``) too."""
    return not 1 <= len(name) <= TOKEN_NAME_MAX or untrusted.one_line_refused(name) is not None


def create_token(session: Session, name: str, scopes: list[str]) -> str:
    """Create a token and return it; it is shown once and stored only as a hash."""
    name = name.strip()
    if token_name_refused(name):
        raise ApiTokenError("a token name has 1 to 80 characters on one line")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ApiTokenError(f"unknown scope {unknown[0]!r}; scopes are {', '.join(SCOPES)}")
    if session.scalar(sa.select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise ApiTokenError(f"a token named {name!r} exists already")
    secret = "lv_" + random_token(32)
    try:
        # A savepoint: another request may create the same name between the check
        # above and this insert; then the unique index decides, and we say so.
        with session.begin_nested():
            session.add(ApiToken(name=name, token_hash=sha256_hex(secret), scopes=scopes))
    except IntegrityError:
        raise ApiTokenError(f"a token named {name!r} exists already") from None
    return secret


def revoke_token(session: Session, name: str) -> bool:
    token = session.scalars(sa.select(ApiToken).where(ApiToken.name == name)).one_or_none()
    if token is None or token.revoked_at is not None:
        return False
    token.revoked_at = clock.now()
    return True


def authenticate(
    session: Session, header: str | None, scope: str, *, record_use: bool = True
) -> ApiToken | None:
    """The token of a ``Bearer`` header with ``scope``; ``record_use`` stamps its last use
    (not on GET and HEAD, which never write)."""
    if not header or not header.startswith("Bearer "):
        return None
    token = session.scalars(
        sa.select(ApiToken).where(ApiToken.token_hash == sha256_hex(header[7:].strip()))
    ).one_or_none()
    if token is None or token.revoked_at is not None or scope not in token.scopes:
        return None
    if record_use:
        token.last_used_at = clock.now()
    return token


def require_token(scope: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for API views: 401 with a JSON message unless a valid token has ``scope``."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            header = request.headers.get("Authorization")
            safe = request.method in db.SAFE_METHODS
            if authenticate(db.session(), header, scope, record_use=not safe) is None:
                response = jsonify(
                    error=f"a valid API token with scope {scope!r} is required "
                    "(Authorization: Bearer <token>)",
                    status=401,
                )
                response.status_code = 401
                response.headers["WWW-Authenticate"] = 'Bearer realm="leadvault"'
                return response
            return view(*args, **kwargs)

        return wrapped

    return decorate
