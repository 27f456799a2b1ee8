"""Personal API tokens: each acts as its account, narrowed to scopes, and expires.

A token's scopes are permission names (``leads:read`` …) and never more than its
account's role allows; the role is checked again at every use, so a role change
or a disabled account takes effect at once.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Session

from admin import permissions
from admin.models import PersonalToken, User
from leadvault import api, audit, clock
from leadvault.crypto import random_token, sha256_hex
from leadvault.db import settings_of
from leadvault.i18n import N_
from leadvault.refusals import RefusedRequest

PREFIX = "lvp_"


class TokenError(RefusedRequest, ValueError):
    """A token request the service refuses; the message names the problem."""


def create(
    session: Session,
    user: User,
    *,
    name: str,
    scopes: list[str],
    days: int,
    actor: str,
    ip: str | None = None,
) -> tuple[PersonalToken, str]:
    """A new token and its secret (shown once)."""
    name = name.strip()
    if api.token_name_refused(name):
        raise TokenError(N_("the name must have 1 to 80 characters on one line"), field="name")
    maximum = settings_of(session).api_token_max_days
    if not 1 <= days <= maximum:
        raise TokenError(N_("a token lives 1 to %(maximum)s days"), field="days", maximum=maximum)
    allowed = {p.value for p in permissions.of_role(user.role)}
    unknown = sorted(set(scopes) - {p.value for p in permissions.Permission})
    if unknown:
        raise TokenError(N_("unknown scope '%(scope)s'"), field="scopes", scope=unknown[0])
    beyond = sorted(set(scopes) - allowed)
    if beyond:
        raise TokenError(
            N_("the account's role does not allow '%(scope)s'"), field="scopes", scope=beyond[0]
        )
    if not scopes:
        raise TokenError(N_("a token needs at least one scope"), field="scopes")
    secret = PREFIX + random_token(32)
    now = clock.now()
    token = PersonalToken(
        user_id=user.id,
        name=name,
        token_hash=sha256_hex(secret),
        scopes=sorted(set(scopes)),
        created_at=now,
        expires_at=now + dt.timedelta(days=days),
    )
    session.add(token)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=audit.Action.TOKEN_CREATED,
        object_type=audit.ObjectType.TOKEN,
        object_id=token.id,
        detail={"user": user.id, "scopes": token.scopes, "days": days},
        ip=ip,
    )
    return token, secret


def revoke(session: Session, token: PersonalToken, *, actor: str, ip: str | None = None) -> None:
    if token.revoked_at is None:
        token.revoked_at = clock.now()
        audit.record(
            session,
            actor=actor,
            action=audit.Action.TOKEN_REVOKED,
            object_type=audit.ObjectType.TOKEN,
            object_id=token.id,
            ip=ip,
        )


def of_user(session: Session, user: User) -> list[PersonalToken]:
    return list(
        session.scalars(
            sa.select(PersonalToken)
            .where(PersonalToken.user_id == user.id)
            .order_by(PersonalToken.id.desc())
            .limit(200)
        )
    )


def authenticate(session: Session, secret: str) -> PersonalToken | None:
    """The valid token with this secret (its account active), else None."""
    if not secret.startswith(PREFIX) or len(secret) > 100:
        return None
    token = session.scalars(
        sa.select(PersonalToken).where(PersonalToken.token_hash == sha256_hex(secret))
    ).one_or_none()
    if (
        token is None
        or token.revoked_at is not None
        or token.expires_at <= clock.now()
        or not token.user.active
    ):
        return None
    return token
