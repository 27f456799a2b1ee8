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
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from export.columns import Column, Source
from leadvault import clock
from leadvault.db import vault_of
from leadvault.models import Lead, LeadAttribute

CHUNK = 1000
Record = dict[str, Any]


def _raw(column: Any, label: str = "key") -> Any:
    """A column as the driver returns it (SQLite: ids as hex text, enums as text),
    labelled: turning every id of every table into a ``uuid.UUID`` and every status
    into an enum costs more than decrypting."""
    return sa.type_coerce(column, sa.String()).label(label)


def _utc(raw: Any) -> dt.datetime | None:
    """A timestamp read raw (see ``_raw``) as an aware UTC datetime: SQLite returns
    the stored text, PostgreSQL an aware datetime. What ``UTCDateTime`` does, without
    its three Python calls per value (an export reads several per lead)."""
    if raw is None:
        return None
    if type(raw) is str:
        return _fromisoformat(raw).replace(tzinfo=dt.UTC)
    return raw if raw.tzinfo is dt.UTC else raw.astimezone(dt.UTC)


_fromisoformat = dt.datetime.fromisoformat


def _owner(raw: Any) -> str:
    """A lead's id in its canonical text form (the associated data its fields are
    sealed with) from the driver's value: SQLite's 32 hex digits or a ``uuid.UUID``."""
    if isinstance(raw, str) and len(raw) == 32:
        return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"
    return str(raw)


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


def _in(column: Any, keys: list[Any]) -> Any:
    """``column IN keys`` for keys as the driver returned them (see ``_raw``)."""
    return sa.type_coerce(column, sa.String()).in_(keys)


def _scores(session: Session, keys: list[Any], half_life: float) -> dict[Any, Record]:
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
        ).where(_in(table.c.lead_id, keys))
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


class ConsentState(NamedTuple):
    status: str  # a ConsentStatus value
    date: dt.datetime | None
    version: int | None


def _consents(
    session: Session, keys: list[Any], purposes: Sequence[str], versions: dict[int, int]
) -> dict[Any, dict[str, ConsentState]]:
    from consent.models import Consent, ConsentStatus

    table = Consent.__table__
    out: dict[Any, dict[str, ConsentState]] = {}
    # The date that goes with the state: only that one is read and converted.
    date = sa.case(
        (table.c.status == ConsentStatus.GRANTED, table.c.granted_at),
        (table.c.status == ConsentStatus.WITHDRAWN, table.c.withdrawn_at),
        (table.c.status == ConsentStatus.PENDING, table.c.requested_at),
    )
    for key, purpose, status, text_id, raw_date in session.execute(
        sa.select(
            _raw(table.c.lead_id),
            table.c.purpose,
            _raw(table.c.status, "status"),
            table.c.text_id,
            _raw(date, "date"),
        ).where(_in(table.c.lead_id, keys), table.c.purpose.in_(list(purposes)))
    ).all():
        states = out.get(key)
        if states is None:
            states = out[key] = {}
        states[purpose] = ConsentState(
            status, _utc(raw_date), versions.get(text_id) if text_id is not None else None
        )
    return out


def _text_versions(session: Session) -> dict[int, int]:
    from consent.models import ConsentText

    return dict(session.execute(sa.select(ConsentText.id, ConsentText.version)).all())


def _first_submissions(session: Session, keys: list[Any]) -> dict[Any, Any]:
    from capture.models import Submission

    table = Submission.__table__
    first: dict[Any, Any] = {}
    for row in session.execute(
        sa.select(table.c.id, _raw(table.c.lead_id), table.c.data)
        .where(_in(table.c.lead_id, keys))
        .order_by(table.c.created_at.desc())
    ).all():
        first[row.key] = row  # the earliest wins (read last)
    return first


def _attributes(
    session: Session, keys: list[Any], names: Sequence[str]
) -> dict[Any, dict[str, bytes]]:
    attr = LeadAttribute.__table__
    out: dict[Any, dict[str, bytes]] = {}
    for key, name, sealed in session.execute(
        sa.select(_raw(attr.c.lead_id), attr.c.name, attr.c.value).where(
            _in(attr.c.lead_id, keys), attr.c.name.in_(list(names))
        )
    ).all():
        fields = out.get(key)
        if fields is None:
            fields = out[key] = {}
        fields[name] = sealed
    return out


def _leads(session: Session, keys: list[Any]) -> dict[Any, Any]:
    table = Lead.__table__
    return {
        row[0]: row
        for row in session.execute(
            sa.select(
                _raw(table.c.id),
                table.c.email,
                table.c.wrapped_key,
                table.c.key_version,
                table.c.language,
                _raw(table.c.created_at, "created_at"),
                _raw(table.c.last_activity_at, "last_activity_at"),
            ).where(_in(table.c.id, keys))
        ).all()
    }


_NO_SCORES: Record = {}
_NO_CONSENTS: dict[str, ConsentState] = {}


def _chunk(
    session: Session,
    keys: list[Any],
    plan: Plan,
    *,
    half_life: float,
    versions: dict[int, int],
    require: str | None,
) -> list[Record]:
    """The records of one chunk of lead ids (as the driver returns them), in their order.

    One query per table for the whole chunk; each lead's data key is unwrapped once
    and opens all its fields in one call.
    """
    lead_rows = _leads(session, keys)
    consents = _consents(session, keys, plan.purposes, versions) if plan.purposes else {}
    if require is not None:
        keys = [
            key
            for key in keys
            if (state := consents.get(key, _NO_CONSENTS).get(require)) is not None
            and state.status == "granted"
        ]
    attributes = _attributes(session, keys, plan.attributes) if plan.attributes else {}
    scores = _scores(session, keys, half_life) if plan.scores else {}
    submissions = _first_submissions(session, keys) if plan.submission else {}
    unwrap = vault_of(session).unwrap_stored
    names = plan.attributes
    email = plan.email
    sealed_names = (("email",) if email else ()) + tuple(f"attr/{name}" for name in names)
    decrypts = plan.decrypts
    no_fields: dict[str, bytes] = {}
    records: list[Record] = []
    append = records.append
    for key in keys:
        lead = lead_rows.get(key)
        if lead is None:
            continue  # erased since the selection was read
        _key, sealed_email, wrapped, version, language, created_at, last_activity_at = lead
        owner = _owner(key)
        record: Record = {
            "id": owner,
            "language": language,
            "created_at": _utc(created_at),
            "last_activity_at": _utc(last_activity_at),
            "scores": scores.get(key, _NO_SCORES),
            "consents": consents.get(key, _NO_CONSENTS),
        }
        if decrypts:
            data_key = unwrap(wrapped, version, owner)
            sealed = attributes.get(key, no_fields)
            values = [sealed.get(name) for name in names]
            if email:
                values.insert(0, sealed_email)
            opened = data_key.decrypt_many(list(zip(sealed_names, values, strict=True)))
            record.update(zip(("email", *names) if email else names, opened, strict=True))
            if plan.submission:
                submission = submissions.get(key)
                record["source"] = (
                    data_key.decrypt_json(f"submission/{submission.id}", submission.data)
                    if submission is not None
                    else {}
                )
        append(record)
    return records


def _raw_ids(selection: sa.Select[Any]) -> sa.Select[Any]:
    """The selection with its id column as the driver returns it (see ``_raw``)."""
    [column] = selection.selected_columns
    return selection.with_only_columns(sa.type_coerce(column, sa.String()))


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
    result = session.execute(_raw_ids(selection).execution_options(yield_per=chunk_size))
    for partition in result.partitions():
        keys = [row[0] for row in partition]
        yield _chunk(session, keys, plan, half_life=half_life, versions=versions, require=require)


def getter(column: Column) -> Callable[[Record], Any]:
    """Reads a column's raw value (str, float, datetime, bool or None) from a record;
    where it is found is decided once per column, not once per cell."""
    source, field = column.source, column.field
    if source in {Source.LEAD, Source.EMAIL}:
        key = column.key
        return lambda record: record.get(key)
    if source == Source.ATTRIBUTE:
        return lambda record: record.get(field)
    if source == Source.SCORE:
        return lambda record: record["scores"].get(field)
    if source == Source.SUBMISSION:
        return lambda record: record.get("source", {}).get(field)
    if column.part == "date":
        return lambda record: state.date if (state := record["consents"].get(field)) else None
    if column.part == "version":
        return lambda record: state.version if (state := record["consents"].get(field)) else None
    return lambda record: state.status if (state := record["consents"].get(field)) else "none"
