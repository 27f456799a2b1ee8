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
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.orm import Session

from leadvault import clock, i18n
from leadvault.chain import Chain, Verdict
from leadvault.crypto import truncate_ip
from leadvault.i18n import N_
from leadvault.models import AuditEntry, AuditHead


class Catalogued(enum.StrEnum):
    """A value with its human label (marked for translation; the console and the API show it)."""

    label: str

    def __new__(cls, value: str, label: str) -> Self:
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label
        return member

    @classmethod
    def codes(cls) -> list[str]:
        """Every code, in catalogue order (what a filter accepts)."""
        return [member.value for member in cls]

    @classmethod
    def shown(cls, code: str) -> str:
        """``code`` as people read it: its label in the current language, or the code
        itself for an entry older than its catalogue (the code renamed or dropped since;
        a code is no message id, so it is never looked up)."""
        member = cls._value2member_map_.get(code)
        return i18n.gettext(member.label) if isinstance(member, Catalogued) else code


class Action(Catalogued):
    """Every action Leadvault records, in one catalogue: :func:`record` refuses any other,
    so the console's trail can offer each by name (tests/test_audit_catalogue.py checks
    that every call site names one of these)."""

    LEAD_REVEALED = "lead.revealed", N_("Personal data shown")
    LEAD_EXPORTED = "lead.exported", N_("A lead's data exported")
    LEAD_ACCESS_EXPORTED = "lead.access_exported", N_("The lead downloaded its data")
    LEAD_ERASED = "lead.erased", N_("Lead erased")
    LEAD_STAGE_CHANGED = "lead.stage_changed", N_("Stage changed by hand")
    LEAD_CORRECTED = "lead.corrected", N_("The lead corrected its data")
    LEAD_EMAIL_CHANGE_REQUESTED = "lead.email_change_requested", N_("New address asked for")
    LEAD_EMAIL_CHANGED = "lead.email_changed", N_("Address changed (confirmed)")
    LEADS_EXPORTED = "leads.exported", N_("Leads exported")
    LEADS_IMPORTED = "leads.imported", N_("Leads imported")
    LOGIN = "auth.login", N_("Signed in")
    LOGIN_FAILED = "auth.login_failed", N_("Sign-in failed")
    LOGOUT = "auth.logout", N_("Signed out")
    PASSWORD_CHANGED = "auth.password_changed", N_("Password changed")
    TOTP_ENABLED = "auth.totp_enabled", N_("Two-factor sign-in set up")
    TOTP_REMOVED = "auth.totp_removed", N_("Two-factor sign-in removed")
    TOTP_REQUIRED = "settings.totp_required", N_("Two-factor sign-in required or not")
    USER_CREATED = "user.created", N_("Account created")
    USER_ROLE_CHANGED = "user.role_changed", N_("Role changed")
    USER_DISABLED = "user.disabled", N_("Account disabled")
    USER_PASSWORD_RESET = "user.password_reset", N_("Password reset")
    TOKEN_CREATED = "token.created", N_("API token created")
    TOKEN_REVOKED = "token.revoked", N_("API token revoked")
    FORM_CREATED = "form.created", N_("Form created")
    FORM_CHANGED = "form.changed", N_("Form changed")
    FORM_ORIGINS_CHANGED = "form.origins_changed", N_("Form's allowed websites changed")
    FORM_ARCHIVED = "form.archived", N_("Form archived")
    FORM_RESTORED = "form.restored", N_("Form taken into use again")
    FORM_DELETED = "form.deleted", N_("Form deleted")
    ASSET_UPLOADED = "asset.uploaded", N_("Asset uploaded")
    ASSET_TEXTS_CHANGED = "asset.texts_changed", N_("Asset's texts changed")
    ASSET_ARCHIVED = "asset.archived", N_("Asset archived")
    WEBHOOK_ADDED = "webhook.added", N_("Webhook endpoint added")
    WEBHOOK_DISABLED = "webhook.disabled", N_("Webhook endpoint disabled")
    WEBHOOK_ENABLED = "webhook.enabled", N_("Webhook endpoint enabled")
    WEBHOOK_SECRET_ROTATED = "webhook.secret_rotated", N_("Webhook signing secret renewed")
    WEBHOOK_REDELIVERED = "webhook.redelivered", N_("Webhook events queued again")
    WEBHOOK_TESTED = "webhook.tested", N_("Webhook test event sent")
    WEBHOOK_REMOVED = "webhook.removed", N_("Webhook endpoint removed")
    CONSENT_TEXT_PUBLISHED = "consent_text.published", N_("Consent text published")
    RULES_ACTIVATED = "scoring.rules_activated", N_("Scoring rules activated")
    SALESPERSON_ADDED = "salesperson.added", N_("Salesperson added")
    SALESPERSON_CHANGED = "salesperson.changed", N_("Salesperson changed")
    SALESPERSON_DEACTIVATED = "salesperson.deactivated", N_("Salesperson deactivated")
    SALESPERSON_ACTIVATED = "salesperson.activated", N_("Salesperson active again")
    SALESPERSON_ABSENCE_ADDED = "salesperson.absence_added", N_("Salesperson's absence planned")
    SALESPERSON_ABSENCE_DELETED = "salesperson.absence_deleted", N_("Salesperson's absence deleted")
    SALES_TEAM_ADDED = "sales_team.added", N_("Sales team created")
    SALES_TEAM_CHANGED = "sales_team.changed", N_("Sales team's strategy changed")
    SALES_TEAM_MEMBER_ADDED = "sales_team.member_added", N_("Salesperson added to a team")
    SALES_TEAM_MEMBER_REMOVED = "sales_team.member_removed", N_("Salesperson taken out of a team")
    SALES_TEAM_DELETED = "sales_team.deleted", N_("Sales team deleted")


class ObjectType(Catalogued):
    """What an entry is about; ``object_id`` is its id (a lead's UUID, a form's public id)."""

    LEAD = "lead", N_("Lead")
    LEADS = "leads", N_("Leads (bulk)")
    USER = "user", N_("Account")
    TOKEN = "token", N_("API token")
    SETTING = "setting", N_("Setting")
    FORM = "form", N_("Form")
    ASSET = "asset", N_("Asset")
    WEBHOOK_ENDPOINT = "webhook_endpoint", N_("Webhook endpoint")
    CONSENT_TEXT = "consent_text", N_("Consent text")
    RULE_SET = "rule_set", N_("Scoring rules")
    SALESPERSON = "salesperson", N_("Salesperson")
    SALES_TEAM = "sales_team", N_("Sales team")


class AuditError(ValueError):
    """A call that would put something unfit into the trail (a programming error)."""


_LABEL = re.compile(r"^[A-Za-z0-9_.:@+-]{1,80}$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
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
        if not isinstance(key, str) or not _NAME.match(key):
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
    if action not in Action._value2member_map_:
        raise AuditError(f"action {action!r} is not in audit.Action (add it there, labelled)")
    if object_type not in ObjectType._value2member_map_:
        raise AuditError(f"object type {object_type!r} is not in audit.ObjectType")
    object_ref = None if object_id is None else str(object_id)
    if object_ref is not None and (len(object_ref) > 64 or _ADDRESS.search(object_ref)):
        raise AuditError("object_id must be an id, at most 64 characters")
    entry = AuditEntry(
        created_at=clock.now(),
        actor=actor,
        action=str(action),
        object_type=str(object_type),
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
    action: Action,
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
        object_type=ObjectType.LEAD,
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
