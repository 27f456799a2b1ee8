"""The audit trail: every look at decrypted personal data, every export, erasure,
role change, login and failed login, append-only and hash-chained.

Any package records with :func:`record` inside the transaction of what it
audits (so a rolled-back change leaves no entry, and an entry never exists
without its change). The chain is the consent ledger's (``leadvault.chain``);
``leadvault audit verify`` walks it and names the first entry that does not fit.

Entries are pseudonymous. ``actor`` is a label: ``user:<id>`` for a staff
account (console or API token), ``cli:<login name>`` for the command line,
``system`` for jobs. ``object_id`` is an id (a lead's UUID, a form's id),
``detail`` a flat dict of scalars, and the IP is kept only as its network
(/24, /48). Nothing here may carry an address, a name or a token.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import getpass
import json
import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from leadvault import clock
from leadvault.chain import Chain, Verdict
from leadvault.crypto import truncate_ip
from leadvault.models import AuditEntry, AuditHead


class Action(enum.StrEnum):
    """The actions Leadvault records; packages may add their own (``[a-z0-9_.-]``)."""

    LEAD_REVEALED = "lead.revealed"  # decrypted personal data shown
    LEAD_EXPORTED = "lead.exported"  # one lead's data exported
    LEAD_ACCESS_EXPORTED = "lead.access_exported"  # the lead downloaded its own data
    LEAD_ERASED = "lead.erased"
    LEAD_STAGE_CHANGED = "lead.stage_changed"
    LEADS_EXPORTED = "leads.exported"  # a bulk export
    LOGIN = "auth.login"
    LOGIN_FAILED = "auth.login_failed"
    LOGOUT = "auth.logout"
    PASSWORD_CHANGED = "auth.password_changed"
    TOTP_ENABLED = "auth.totp_enabled"
    USER_CREATED = "user.created"
    USER_ROLE_CHANGED = "user.role_changed"
    USER_DISABLED = "user.disabled"
    USER_PASSWORD_RESET = "user.password_reset"
    TOKEN_CREATED = "token.created"
    TOKEN_REVOKED = "token.revoked"


class AuditError(ValueError):
    """A call that would put something unfit into the trail (a programming error)."""


_ACTION = re.compile(r"^[a-z][a-z0-9_.-]{1,39}$")
_LABEL = re.compile(r"^[A-Za-z0-9_.:@+-]{1,80}$")
_OBJECT_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# Values that look like an e-mail address are refused: the trail is pseudonymous.
_ADDRESS = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+")
_DETAIL_MAX = 2000
Scalar = str | int | float | bool | None


def _canonical(entry: AuditEntry) -> dict[str, Any]:
    return {
        "created_at": entry.created_at.isoformat(timespec="microseconds"),
        "actor": entry.actor,
        "action": entry.action,
        "object_type": entry.object_type,
        "object_id": entry.object_id,
        "detail": entry.detail,
        "ip_prefix": entry.ip_prefix,
    }


CHAIN = Chain(entry_model=AuditEntry, head_model=AuditHead, canonical=_canonical)


def _detail_json(detail: dict[str, Any]) -> str:
    if not isinstance(detail, dict):
        raise AuditError("detail must be a dict")
    for key, value in detail.items():
        if not isinstance(key, str) or not _OBJECT_TYPE.match(key):
            raise AuditError(f"detail key {key!r} is not a plain name")
        values = value if isinstance(value, list) else [value]
        for item in values:
            if not isinstance(item, Scalar):
                raise AuditError(f"detail[{key!r}] holds a {type(item).__name__}, not a scalar")
            if isinstance(item, str) and _ADDRESS.search(item):
                raise AuditError(f"detail[{key!r}] looks like an address: no personal data here")
    text = json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if len(text) > _DETAIL_MAX:
        raise AuditError(f"detail is longer than {_DETAIL_MAX} characters")
    return text


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str | int | None = None,
    detail: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEntry:
    """Append one entry in the caller's transaction (flushed, never committed).

    ``ip`` is the raw client address; only its network is stored.
    """
    if not _LABEL.match(actor) or _ADDRESS.fullmatch(actor):
        raise AuditError(f"actor {actor!r} is not a label like user:7 or cli:root")
    if not _ACTION.match(action):
        raise AuditError(f"action {action!r} is not a dotted name")
    if not _OBJECT_TYPE.match(object_type):
        raise AuditError(f"object type {object_type!r} is not a plain name")
    object_ref = None if object_id is None else str(object_id)
    if object_ref is not None and (len(object_ref) > 64 or _ADDRESS.search(object_ref)):
        raise AuditError("object_id must be an id, at most 64 characters")
    entry = AuditEntry(
        created_at=clock.now(),
        actor=actor,
        action=str(action),
        object_type=object_type,
        object_id=object_ref,
        detail=_detail_json(detail or {}),
        ip_prefix=truncate_ip(ip),
    )
    return CHAIN.append(session, entry)


def cli_actor() -> str:
    """The actor label of the person at the command line (their login name)."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        name = "unknown"
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:70] or "unknown"
    return f"cli:{cleaned}"


def record_lead(
    session: Session,
    lead_id: object,
    action: str,
    *,
    actor: str,
    detail: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEntry:
    """One entry about a lead (a view, export, stage change or erasure of it)."""
    return record(
        session,
        actor=actor,
        action=action,
        object_type="lead",
        object_id=str(lead_id),
        detail=detail,
        ip=ip,
    )


def user_actor(user_id: int) -> str:
    return f"user:{user_id}"


def verify(session: Session) -> Verdict:
    """Walk the trail from the start; the verdict names the first entry that does not fit."""
    return CHAIN.verify(session)


@dataclasses.dataclass(frozen=True)
class Filters:
    actor: str | None = None
    action: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    actions: tuple[str, ...] = ()  # any of these


MAX_PAGE = 200


def entries(
    session: Session, filters: Filters | None = None, *, before: int | None = None, limit: int = 50
) -> list[AuditEntry]:
    """Newest first, at most ``limit`` (≤ 200); ``before`` is the id to continue below."""
    filters = filters or Filters()
    query = sa.select(AuditEntry).order_by(AuditEntry.id.desc()).limit(max(1, min(limit, MAX_PAGE)))
    conditions = [
        AuditEntry.actor == filters.actor if filters.actor else None,
        AuditEntry.action == filters.action if filters.action else None,
        AuditEntry.action.in_(filters.actions) if filters.actions else None,
        AuditEntry.object_type == filters.object_type if filters.object_type else None,
        AuditEntry.object_id == filters.object_id if filters.object_id else None,
        AuditEntry.created_at >= filters.since if filters.since else None,
        AuditEntry.created_at < filters.until if filters.until else None,
        AuditEntry.id < before if before is not None else None,
    ]
    for condition in conditions:
        if condition is not None:
            query = query.where(condition)
    return list(session.scalars(query))


def detail_of(entry: AuditEntry) -> dict[str, Any]:
    return json.loads(entry.detail)
