"""Reading a lead selection in chunks, decrypting only what the columns need.

The selection is any SQLAlchemy ``Select`` of lead ids (the admin API's
filters build one). Its ids stream from a server-side cursor (``yield_per``)
in chunks; each chunk's data comes with one query per table, is decrypted
with data keys unwrapped for that chunk only, and is handed on as plain
records before the next chunk is read, so memory stays flat however many
leads are exported. Core rows, not ORM objects: nothing piles up in the
session's identity map.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from export.columns import Column, Source
from leadvault import clock
from leadvault.crypto import WrappedKey
from leadvault.db import vault_of
from leadvault.models import Lead, LeadAttribute

CHUNK = 1000
Record = dict[str, Any]


def _raw(column: Any) -> Any:
    """A lead id column as the driver returns it (SQLite: hex text), labelled ``key``:
    turning every id of every table into a ``uuid.UUID`` costs more than decrypting."""
    return sa.type_coerce(column, sa.String()).label("key")


@dataclasses.dataclass(frozen=True)
class Plan:
    """Which tables and sealed fields a column list needs."""

    columns: tuple[Column, ...]
    attributes: tuple[str, ...]
    email: bool
    scores: bool
    submission: bool
    purposes: tuple[str, ...]

    @classmethod
    def of(cls, columns: Sequence[Column], *, require: str | None = None) -> Plan:
        purposes = {c.field for c in columns if c.source == Source.CONSENT}
        if require:
            purposes.add(require)
        return cls(
            columns=tuple(columns),
            attributes=tuple(
                dict.fromkeys(c.field for c in columns if c.source == Source.ATTRIBUTE)
            ),
            email=any(c.source == Source.EMAIL for c in columns),
            scores=any(c.source == Source.SCORE for c in columns),
            submission=any(c.source == Source.SUBMISSION for c in columns),
            purposes=tuple(sorted(purposes)),
        )

    @property
    def decrypts(self) -> bool:
        return self.email or bool(self.attributes) or self.submission


def _half_life(session: Session) -> float:
    from scoring import rules

    return rules.active(session).half_life_seconds


def _scores(session: Session, ids: list[uuid.UUID], half_life: float) -> dict[Any, Record]:
    from scoring.models import LeadScore
    from scoring.scores import score_at

    now = clock.now()
    table = LeadScore.__table__
    out: dict[Any, Record] = {}
    for row in session.execute(
        sa.select(
            _raw(table.c.lead_id),
            table.c.score,
            table.c.as_of,
            table.c.stage,
            table.c.stage_changed_at,
            table.c.fit_grade,
            table.c.fit_points,
            table.c.suspect,
            table.c.first_form,
            table.c.utm_source,
            table.c.utm_campaign,
        ).where(table.c.lead_id.in_(ids))
    ).all():
        out[row.key] = {
            "score": round(score_at(row.score, row.as_of, now, half_life), 1),
            "stage": row.stage,
            "stage_changed_at": row.stage_changed_at,
            "fit_grade": row.fit_grade,
            "fit_points": round(row.fit_points, 1),
            "suspect": bool(row.suspect),
            "first_form": row.first_form,
            "utm_source": row.utm_source,
            "utm_campaign": row.utm_campaign,
        }
    return out


@dataclasses.dataclass(frozen=True)
class ConsentState:
    status: str
    date: dt.datetime | None
    version: int | None


def _consents(
    session: Session, ids: list[uuid.UUID], purposes: Sequence[str], versions: dict[int, int]
) -> dict[Any, dict[str, ConsentState]]:
    from consent.models import Consent, ConsentStatus

    table = Consent.__table__
    out: dict[Any, dict[str, ConsentState]] = {}
    for row in session.execute(
        sa.select(
            _raw(table.c.lead_id),
            table.c.purpose,
            table.c.status,
            table.c.text_id,
            table.c.requested_at,
            table.c.granted_at,
            table.c.withdrawn_at,
        ).where(table.c.lead_id.in_(ids), table.c.purpose.in_(list(purposes)))
    ).all():
        date = {
            ConsentStatus.GRANTED: row.granted_at,
            ConsentStatus.WITHDRAWN: row.withdrawn_at,
            ConsentStatus.PENDING: row.requested_at,
        }.get(row.status)
        version = versions.get(row.text_id) if row.text_id is not None else None
        out.setdefault(row.key, {})[row.purpose] = ConsentState(row.status, date, version)
    return out


def _text_versions(session: Session) -> dict[int, int]:
    from consent.models import ConsentText

    return dict(session.execute(sa.select(ConsentText.id, ConsentText.version)).all())


def _first_submissions(session: Session, ids: list[uuid.UUID]) -> dict[Any, Any]:
    from capture.models import Submission

    table = Submission.__table__
    first: dict[Any, Any] = {}
    for row in session.execute(
        sa.select(table.c.id, _raw(table.c.lead_id), table.c.data)
        .where(table.c.lead_id.in_(ids))
        .order_by(table.c.created_at.desc())
    ).all():
        first[row.key] = row  # the earliest wins (read last)
    return first


def _chunk(
    session: Session,
    ids: list[uuid.UUID],
    plan: Plan,
    *,
    half_life: float,
    versions: dict[int, int],
    require: str | None,
) -> list[Record]:
    from consent.models import ConsentStatus

    table = Lead.__table__
    lead_rows = {
        row.id: row
        for row in session.execute(
            sa.select(
                table.c.id,
                _raw(table.c.id),
                table.c.email,
                table.c.wrapped_key,
                table.c.key_version,
                table.c.language,
                table.c.created_at,
                table.c.last_activity_at,
            ).where(table.c.id.in_(ids))
        ).all()
    }
    consents = _consents(session, ids, plan.purposes, versions) if plan.purposes else {}
    if require is not None:
        ids = [
            i
            for i in ids
            if i in lead_rows
            and (state := consents.get(lead_rows[i].key, {}).get(require)) is not None
            and state.status == ConsentStatus.GRANTED
        ]
    attributes: dict[Any, dict[str, bytes]] = {}
    if plan.attributes:
        attr = LeadAttribute.__table__
        for row in session.execute(
            sa.select(_raw(attr.c.lead_id), attr.c.name, attr.c.value).where(
                attr.c.lead_id.in_(ids), attr.c.name.in_(plan.attributes)
            )
        ).all():
            attributes.setdefault(row.key, {})[row.name] = row.value
    scores = _scores(session, ids, half_life) if plan.scores else {}
    submissions = _first_submissions(session, ids) if plan.submission else {}
    vault = vault_of(session)
    records: list[Record] = []
    for lead_id in ids:
        lead = lead_rows.get(lead_id)
        if lead is None:
            continue  # erased since the selection was read
        key_of = lead.key
        record: Record = {
            "id": str(lead_id),
            "language": lead.language,
            "created_at": lead.created_at,
            "last_activity_at": lead.last_activity_at,
        }
        if plan.decrypts:
            key = vault.unwrap(WrappedKey(lead.wrapped_key, lead.key_version), lead_id)
            if plan.email:
                record["email"] = key.decrypt("email", lead.email)
            sealed = attributes.get(key_of, {})
            for name in plan.attributes:
                value = sealed.get(name)
                record[name] = key.decrypt(f"attr/{name}", value) if value is not None else None
            if plan.submission:
                submission = submissions.get(key_of)
                record["source"] = (
                    key.decrypt_json(f"submission/{submission.id}", submission.data)
                    if submission is not None
                    else {}
                )
        record["scores"] = scores.get(key_of, {})
        record["consents"] = consents.get(key_of, {})
        records.append(record)
    return records


def count(session: Session, selection: sa.Select[Any]) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(selection.subquery())) or 0


def stream(
    session: Session,
    selection: sa.Select[Any],
    columns: Sequence[Column],
    *,
    require: str | None = None,
    chunk_size: int = CHUNK,
) -> Iterator[list[Record]]:
    """Chunks of records for the selected leads (only those granting ``require``, if given)."""
    plan = Plan.of(columns, require=require)
    half_life = _half_life(session) if plan.scores else 0.0
    versions = _text_versions(session) if plan.purposes else {}
    result = session.execute(selection.execution_options(yield_per=chunk_size))
    for partition in result.partitions():
        ids = [row[0] for row in partition]
        records = _chunk(
            session, ids, plan, half_life=half_life, versions=versions, require=require
        )
        yield records


def value(record: Record, column: Column) -> Any:
    """A column's raw value (str, float, datetime, bool or None) in a record."""
    source = column.source
    if source in {Source.LEAD, Source.EMAIL, Source.ATTRIBUTE}:
        return record.get(column.key if source != Source.ATTRIBUTE else column.field)
    if source == Source.SCORE:
        return record["scores"].get(column.field)
    if source == Source.SUBMISSION:
        return record.get("source", {}).get(column.field)
    state = record["consents"].get(column.field)
    if column.part == "date":
        return state.date if state else None
    if column.part == "version":
        return state.version if state else None
    return state.status if state else "none"
