"""The audit trail as people read it: each action and kind of object by its label, and
the object named (a form's name, an asset's title, a rules version) with a link to its
page, where the reader's role may open that page anyway.

Names come from one query per kind of object on the page (at most 50 entries), never
from personal data: a lead is the start of its id, an account its number.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from flask import url_for
from sqlalchemy.orm import Session

from admin import auth
from admin.permissions import Permission
from leadvault import audit, i18n
from leadvault.i18n import N_
from leadvault.models import AuditEntry, Lead

NONE = "\u2013"  # an en dash for "none"
# Actors that are not an account or a shell login.
ACTOR_LABELS = {
    "subject": N_("the lead itself"),
    "system": N_("Leadvault (automatic)"),
    "anonymous": N_("not signed in"),
    "unknown": N_("unknown account"),
}


@dataclasses.dataclass(frozen=True)
class Row:
    entry: AuditEntry
    detail: list[tuple[str, str]]  # (key, value as text), by key
    action: str  # the action's label in the reader's language, or its code if not catalogued
    kind: str  # the kind of object's label, or its code
    name: str  # the object, as its page calls it; "" when the entry names none
    url: str | None  # the object's page, when the reader may open it


@dataclasses.dataclass(frozen=True)
class _Named:
    name: str
    url: str | None
    # An id that can be used again (SQLite reuses a deleted endpoint's): entries older
    # than the object are about an earlier one, shown as ``earlier``.
    since: dt.datetime | None = None
    earlier: _Named | None = None


def choices(catalogue: type[audit.Catalogued]) -> list[tuple[str, str]]:
    """(code, translated label) of every action or kind of object, by label: a filter's
    choices."""
    return sorted(((m.value, i18n.gettext(m.label)) for m in catalogue), key=lambda c: c[1])


def rows(session: Session, entries: Sequence[AuditEntry]) -> list[Row]:
    ids: dict[str, set[str]] = defaultdict(set)
    for entry in entries:
        if entry.object_id is not None:
            ids[entry.object_type].add(entry.object_id)
    named: dict[tuple[str, str], _Named] = {}
    for kind, found in ids.items():
        namer = _NAMERS.get(kind)
        if namer is not None:
            named.update({(kind, ref): name for ref, name in namer(session, found).items()})
    result = []
    for entry in entries:
        ref = entry.object_id
        fallback = _Named(ref[:12], None) if ref is not None else _Named("", None)
        shown = named.get((entry.object_type, ref or ""), fallback)
        if shown.since is not None and shown.earlier is not None and entry.created_at < shown.since:
            shown = shown.earlier
        result.append(
            Row(
                entry=entry,
                detail=[
                    (key, _text(value)) for key, value in sorted(audit.detail_of(entry).items())
                ],
                action=audit.Action.shown(entry.action),
                kind=audit.ObjectType.shown(entry.object_type),
                name=shown.name,
                url=shown.url,
            )
        )
    return result


def _text(value: Any) -> str:
    """A detail's value as people write it (not Python's ``['a']``, ``None``, ``True``)."""
    if isinstance(value, list):
        return ", ".join(_text(item) for item in value) or NONE
    if value is None:
        return NONE
    if isinstance(value, bool):
        return i18n.gettext("yes") if value else i18n.gettext("no")
    return str(value)


def actor_label(actor: str) -> str | None:
    """A label for the actors that are not an account (``subject``, ``system``)."""
    return ACTOR_LABELS.get(actor)


# --- one query per kind of object -------------------------------------------------------


def _leads(session: Session, refs: Iterable[str]) -> dict[str, _Named]:
    wanted = {}
    for ref in refs:
        try:
            wanted[uuid.UUID(ref)] = ref
        except ValueError:
            continue
    kept = set(session.scalars(sa.select(Lead.id).where(Lead.id.in_(wanted)))) if wanted else set()
    may_open = auth.can(Permission.LEADS_READ)
    return {
        ref: _Named(
            ref[:8] if lead_id in kept else i18n.gettext("%(id)s (erased)", id=ref[:8]),
            url_for("console.lead", lead_id=lead_id) if may_open and lead_id in kept else None,
        )
        for lead_id, ref in wanted.items()
    }


def _forms(session: Session, refs: Iterable[str]) -> dict[str, _Named]:
    if not auth.can(Permission.FORMS_READ):
        return {}
    from capture.models import Form

    found = session.execute(
        sa.select(Form.public_id, Form.name).where(Form.public_id.in_(list(refs)))
    )
    return {ref: _Named(name, url_for("console.form", form_id=ref)) for ref, name in found}


def _assets(session: Session, refs: Iterable[str]) -> dict[str, _Named]:
    if not auth.can(Permission.ASSETS_READ):
        return {}
    from widgets.models import Asset

    found = session.scalars(sa.select(Asset).where(Asset.public_id.in_(list(refs))))
    lang = i18n.current_language()
    return {
        asset.public_id: _Named(
            asset.title_in(lang), url_for("console.asset_page", asset_id=asset.public_id)
        )
        for asset in found
    }


def _webhooks(session: Session, refs: Iterable[str]) -> dict[str, _Named]:
    if not auth.can(Permission.SETTINGS_MANAGE):
        return {}
    from export.models import WebhookEndpoint

    numbers = [int(ref) for ref in refs if ref.isdigit() and len(ref) < 10]
    found = session.execute(
        sa.select(
            WebhookEndpoint.id, WebhookEndpoint.description, WebhookEndpoint.created_at
        ).where(WebhookEndpoint.id.in_(numbers))
    )
    gone = {str(n): _Named(i18n.gettext("#%(id)s (removed)", id=n), None) for n in numbers}
    named = {
        str(endpoint_id): _Named(
            f"#{endpoint_id} {description}".strip(),
            url_for("console.webhook", endpoint_id=endpoint_id),
            since=created_at,
            earlier=gone[str(endpoint_id)],
        )
        for endpoint_id, description, created_at in found
    }
    return {**gone, **named}


def _consent_texts(session: Session, refs: Iterable[str]) -> dict[str, _Named]:
    if not auth.can(Permission.CONSENT_TEXTS_READ):
        return {}
    from consent.models import ConsentText

    numbers = [int(ref) for ref in refs if ref.isdigit() and len(ref) < 10]
    found = session.execute(
        sa.select(
            ConsentText.id, ConsentText.purpose, ConsentText.language, ConsentText.version
        ).where(ConsentText.id.in_(numbers))
    )
    return {
        str(text_id): _Named(
            f"{purpose} ({language}) v{version}",
            url_for("console.consent_purpose", purpose=purpose),
        )
        for text_id, purpose, language, version in found
    }


def _rule_sets(session: Session, refs: Iterable[str]) -> dict[str, _Named]:
    may_open = auth.can(Permission.SCORING_READ)
    return {
        ref: _Named(
            i18n.gettext("version %(n)s", n=ref),
            url_for("console.scoring_version", version=int(ref)) if may_open else None,
        )
        for ref in refs
        if ref.isdigit() and len(ref) < 10
    }


def _users(session: Session, refs: Iterable[str]) -> dict[str, _Named]:
    may_open = auth.can(Permission.USERS_MANAGE)
    return {ref: _Named(f"#{ref}", url_for("console.users") if may_open else None) for ref in refs}


def _tokens(session: Session, refs: Iterable[str]) -> dict[str, _Named]:
    may_open = auth.can(Permission.SETTINGS_MANAGE)
    return {
        ref: _Named(f"#{ref}", url_for("console.api_tokens") if may_open else None) for ref in refs
    }


def _salespeople(session: Session, refs: Iterable[str]) -> dict[str, _Named]:
    """By number: a salesperson's name is personal data (and may be what changed)."""
    may_open = auth.can(Permission.SALES_TEAM_WRITE)
    return {
        ref: _Named(
            f"#{ref}",
            url_for("console.sales_person", person_id=int(ref)) if may_open else None,
        )
        for ref in refs
        if ref.isdigit() and len(ref) < 10
    }


def _sales_teams(session: Session, refs: Iterable[str]) -> dict[str, _Named]:
    """By name (a team's name is no personal data); a deleted one by its number."""
    from scoring.models import SalesTeam

    may_open = auth.can(Permission.SALES_TEAM_WRITE)
    numbers = [int(ref) for ref in refs if ref.isdigit() and len(ref) < 10]
    found = session.execute(
        sa.select(SalesTeam.id, SalesTeam.name, SalesTeam.created_at).where(
            SalesTeam.id.in_(numbers)
        )
    )
    gone = {str(n): _Named(i18n.gettext("#%(id)s (removed)", id=n), None) for n in numbers}
    named = {
        str(team_id): _Named(
            name,
            url_for("console.sales") if may_open else None,
            since=created_at,
            earlier=gone[str(team_id)],
        )
        for team_id, name, created_at in found
    }
    return {**gone, **named}


_NAMERS: dict[str, Callable[[Session, Iterable[str]], dict[str, _Named]]] = {
    audit.ObjectType.LEAD: _leads,
    audit.ObjectType.FORM: _forms,
    audit.ObjectType.ASSET: _assets,
    audit.ObjectType.WEBHOOK_ENDPOINT: _webhooks,
    audit.ObjectType.CONSENT_TEXT: _consent_texts,
    audit.ObjectType.RULE_SET: _rule_sets,
    audit.ObjectType.USER: _users,
    audit.ObjectType.TOKEN: _tokens,
    audit.ObjectType.SALESPERSON: _salespeople,
    audit.ObjectType.SALES_TEAM: _sales_teams,
}
