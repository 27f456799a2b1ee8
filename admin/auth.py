"""Who is asking: staff sign-ins (server-side sessions) and personal API tokens.

A sign-in is a row in ``staff_sessions`` keyed by the SHA-256 of a random
token. The browser holds the token in a cookie signed with a timestamp that is
renewed on every answer: a cookie older than the idle timeout is refused
without the database having to note each request (GET requests never write),
and the row's ``expires_at`` is the absolute limit. Signing in, passing the
TOTP step and changing the password each start a new session id (no fixation);
a password change or reset ends every other one.

Views state what they need with :func:`require` (a :class:`Permission`);
:func:`current_user` and :func:`current_actor` say who is asking.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, g, request
from limits import parse_many
from sqlalchemy.orm import Session

from admin import permissions
from admin.models import SessionStage, StaffSession, User
from admin.permissions import Permission
from leadvault import audit, clock, db
from leadvault.crypto import TokenExpired, TokenInvalid, random_token, sha256_hex
from leadvault.rate_limits import limiter

COOKIE = "lv_staff"
_COOKIE_PURPOSE = "staff-session"
_PENDING_MINUTES = 10  # a sign-in waiting for its TOTP code


class NotSignedIn(Exception):
    """No valid sign-in or API token (401)."""


class Forbidden(Exception):
    """Signed in, but the role (or the token's scopes) does not allow this (403)."""

    def __init__(self, permission: Permission) -> None:
        super().__init__(permission.value)
        self.permission = permission


# --- who is asking ------------------------------------------------------------------


def _settings() -> Any:
    from leadvault.app import runtime

    return runtime(current_app).settings


def _vault() -> Any:
    from leadvault.app import runtime

    return runtime(current_app).vault


def _session_from_cookie(stage: SessionStage | None = SessionStage.FULL) -> StaffSession | None:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    g.staff_cookie_checked = True  # renewed if live, else cleared (see _refresh_cookie)
    idle = _settings().admin_session_idle_minutes * 60
    try:
        token = _vault().unsign(_COOKIE_PURPOSE, raw, max_age_seconds=idle)
    except (TokenInvalid, TokenExpired):
        return None
    if not isinstance(token, str):
        return None
    row = db.session().get(StaffSession, sha256_hex(token))
    if row is None or row.expires_at <= clock.now() or not row.user.active:
        return None
    g.staff_session_token = token  # a live session: its cookie is renewed
    if stage is not None and row.stage != stage:
        return None
    return row


def current_user() -> User | None:
    """The signed-in account of this request (console cookie or API token), or None."""
    if "staff_user" in g:
        return g.staff_user
    g.staff_user = None
    g.staff_scopes = None
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        from admin import tokens

        found = tokens.authenticate(db.session(), header[7:].strip())
        if found is not None and request.method not in db.SAFE_METHODS:
            found.last_used_at = clock.now()  # stamped on writes only (GET never writes)
        if found is not None:
            g.staff_user, g.staff_scopes = found.user, frozenset(found.scopes)
            g.staff_via_token = True
        return g.staff_user
    row = _session_from_cookie()
    if row is not None:
        g.staff_user = row.user
    return g.staff_user


def authenticated_by_token() -> bool:
    current_user()
    return bool(g.get("staff_via_token"))


def granted() -> frozenset[Permission]:
    """What this request may do: the role's permissions (narrowed by a token's scopes)."""
    user = current_user()
    if user is None:
        return frozenset()
    allowed = permissions.of_role(user.role)
    scopes = g.get("staff_scopes")
    if scopes is not None:
        allowed = frozenset(p for p in allowed if p.value in scopes)
    return allowed


def can(permission: Permission) -> bool:
    return permissions.allows(granted(), permission)


def current_actor() -> str:
    """The audit label of who is asking (``user:7``)."""
    user = current_user()
    return audit.user_actor(user.id) if user is not None else "anonymous"


def client_ip() -> str | None:
    return request.remote_addr


def record_audit(
    session: Session,
    action: audit.Action,
    object_type: audit.ObjectType,
    object_id: str | int | None = None,
    *,
    detail: dict[str, Any] | None = None,
    actor: str | None = None,
) -> None:
    """One audit entry about this request: by whoever is asking (``actor`` overrides it,
    e.g. the account that is signing in) from the client's address."""
    audit.record(
        session,
        actor=actor or current_actor(),
        action=action,
        object_type=object_type,
        object_id=object_id,
        detail=detail,
        ip=client_ip(),
    )


def require(permission: Permission) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """View decorator: 401 unless signed in (or a valid token), 403 unless allowed."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if current_user() is None:
                raise NotSignedIn
            if not can(permission):
                raise Forbidden(permission)
            return view(*args, **kwargs)

        wrapped.required_permission = permission  # type: ignore[attr-defined]
        return wrapped

    return decorate


def require_signed_in(view: Callable[..., Any]) -> Callable[..., Any]:
    """View decorator for pages every role has (own account, sign out)."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            raise NotSignedIn
        return view(*args, **kwargs)

    wrapped.required_permission = None  # type: ignore[attr-defined]
    return wrapped


# --- sessions ------------------------------------------------------------------------


def start_session(session: Session, user: User, stage: SessionStage) -> str:
    """A new session (new id) for ``user``; the one this browser had is ended first."""
    end_current_session(session)
    token = random_token(32)
    now = clock.now()
    lifetime = (
        dt.timedelta(hours=_settings().admin_session_max_hours)
        if stage == SessionStage.FULL
        else dt.timedelta(minutes=_PENDING_MINUTES)
    )
    session.add(
        StaffSession(
            id=sha256_hex(token),
            user_id=user.id,
            stage=stage,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    session.flush()
    g.staff_session_token = token
    g.staff_cookie_set = True
    if stage == SessionStage.FULL:
        user.last_login_at = now
        g.staff_user = user
        g.staff_scopes = None
    return token


def pending_session() -> StaffSession | None:
    """The sign-in of this browser waiting for its TOTP code or TOTP set-up."""
    for stage in (SessionStage.TOTP, SessionStage.ENROL):
        row = _session_from_cookie(stage)
        if row is not None:
            return row
    return None


def current_session_id() -> str | None:
    token = g.get("staff_session_token")
    return sha256_hex(token) if token else None


def end_current_session(session: Session) -> None:
    row = _session_from_cookie(stage=None)
    if row is not None:
        session.delete(row)
        session.flush()
    g.staff_session_token = None
    g.staff_cookie_set = True
    g.staff_user = None


def _refresh_cookie(response: Response) -> Response:
    """Renew the signed cookie (its age is the idle timeout) or clear it.

    Only where this request looked at the sign-in (read the cookie, or started or
    ended a session): a public page, a form submission or a stylesheet never did,
    and answers untouched without this hook reading headers or settings.
    """
    # Every path that holds a session token set one of these two first.
    if not (g.get("staff_cookie_checked") or g.get("staff_cookie_set")):
        return response
    if request.headers.get("Authorization", "").startswith("Bearer "):
        return response
    token = g.get("staff_session_token")
    settings = _settings()
    secure = settings.base_url.startswith("https://")
    if token:
        response.set_cookie(
            COOKIE,
            _vault().sign(_COOKIE_PURPOSE, token),
            max_age=settings.admin_session_max_hours * 3600,
            httponly=True,
            secure=secure,
            samesite="Lax",
            path="/",
        )
        response.headers["Cache-Control"] = "no-store"
        response.vary.add("Cookie")
    else:  # looked at the sign-in and found none live, or ended it
        response.delete_cookie(COOKIE, path="/", httponly=True, secure=secure, samesite="Lax")
    return response


# --- sign-in throttling -------------------------------------------------------------


def _account_key(email: str) -> str:
    return _vault().blind_index(email or "-").hex()


def account_throttled(email: str) -> bool:
    """Whether this address (known or not) had too many failed sign-ins lately."""
    strategy = limiter.limiter
    key = _account_key(email)
    return not all(
        strategy.test(item, "admin-login-account", key)
        for item in parse_many(_settings().admin_login_limit_account)
    )


def count_failure(email: str) -> None:
    strategy = limiter.limiter
    key = _account_key(email)
    for item in parse_many(_settings().admin_login_limit_account):
        strategy.hit(item, "admin-login-account", key)


def keep_audit_of_refusal() -> None:
    """Commit this request's audit entries although it answers with an error (a failed
    sign-in is recorded; nothing else is written on that path)."""
    g.commit_despite_error = True


def init_app(app: Flask) -> None:
    app.after_request(_refresh_cookie)
