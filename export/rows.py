"""Reading a lead selection in chunks, decrypting only what the columns need.

The selection is any SQLAlchemy ``Select`` of lead ids (the admin API's
filters build one), ordered by creation time and id. The leads are read by one
query joined to the selection in that order, each row carrying the lead's
sealed profile fields (scalar subqueries); every other table the columns need
(consents, scores, submissions) by one query in the same order, the queries
advancing together chunk by chunk (``_Side``), so a chunk's rows of every
table arrive without a lookup per lead. Rows are streamed (SQLite: the
driver's own tuples, see ``_stream``), and each chunk (``Chunk``) is turned
into plain records (``records``: data keys unwrapped for that chunk only)
before the next is read, so memory stays flat however many leads are
exported; ``export.parallel`` does that part in a worker process. Core rows,
not ORM objects: nothing piles up in the session's identity map. All queries
run in the caller's one transaction: one snapshot.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression

from export.columns import Column, Source
from leadvault import clock
from leadvault.crypto import Vault
from leadvault.models import Lead, LeadAttribute

# Leads per chunk. With a worker process, up to 2 x AHEAD chunks are in flight (being
# read, pickled, waiting, worked on), and the objects a chunk needs at once decide how
# many pages of the heap the worker shares with the reader either of them writes to
# (copied then): 500 instead of 1000 took the export's memory growth with its worker
# from ~36 to ~27 MB (200 000 leads), at about the same CPU time.
CHUNK = 500
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


def stamp_text(raw: Any) -> str:
    """A timestamp as a CSV cell shows it (``YYYY-MM-DD HH:MM:SS``, UTC), from the
    driver's value: SQLite's stored text (``UTCDateTime`` writes UTC as
    ``YYYY-MM-DD HH:MM:SS.ffffff``) is sliced, not parsed and formatted again; anything
    else goes through a datetime."""
    if type(raw) is str and len(raw) >= 19 and raw[10] == " ":
        return raw[:19]
    moment = _utc(raw)
    assert moment is not None
    return moment.isoformat(" ", "seconds")[:19]


def owner_text(raw: Any) -> str:
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


def _chosen(selection: sa.Select[Any], *, rowid: bool = False) -> sa.Subquery:
    """The selection as a subquery of ids (``key``) with their creation times: the
    export's order, shared by every query of an export (see ``_Side``)."""
    [column] = selection.selected_columns
    # ``rowid``: SQLite's row number of the lead too (in the creation-time index with
    # the id): the leads query finds each row by it, not by a search of the id index
    # (a random page of it per lead, one read each, as the ids are random).
    return selection.with_only_columns(
        column.label("lead_id"),
        Lead.__table__.c.created_at.label("lead_created"),
        *([sa.literal_column("leads.rowid").label("lead_rowid")] if rowid else []),
    ).subquery("chosen")


def _in_order(
    chosen: sa.Subquery, query: sa.Select[Any], *after: Any, require: str | None
) -> sa.Select[Any]:
    """``query`` (its first column the lead's key) for the chosen leads only, in the
    export's order (creation time, id; then ``after`` within a lead)."""
    if require is not None:
        from consent.models import Consent, ConsentStatus

        query = query.where(
            chosen.c.lead_id.in_(
                sa.select(Consent.lead_id).where(
                    Consent.purpose == require, Consent.status == ConsentStatus.GRANTED
                )
            )
        )
    return query.order_by(chosen.c.lead_created, chosen.c.lead_id, *after)


def _leads_query(
    chosen: sa.Subquery, names: Sequence[str], scores: bool, *, rowid: bool = False
) -> sa.Select[Any]:
    """The leads' rows, each with its sealed profile fields ``names`` (None where
    missing) as columns of its own: one row per lead (an index lookup each) instead of
    a row per field to gather in Python (see ``_Side``). With ``scores``, the lead's
    scoring state too (``SCORE_COLUMNS``, all None without one), joined here: at most
    one per lead, so a query of its own walked the selection once more and sent every
    lead's key along again, for nothing (a fifth of the reader's time per lead)."""
    from scoring.models import LeadScore

    table = Lead.__table__
    attr = LeadAttribute.__table__
    state = LeadScore.__table__
    fields = [
        sa.select(attr.c.value)
        .where(attr.c.lead_id == table.c.id, attr.c.name == name)
        .scalar_subquery()
        .label(f"attr_{number}")
        for number, name in enumerate(names)
    ]
    # The sealed values last (the address, then the profile fields): one slice of the
    # row is what ``Vault.open_fields`` opens.
    query = sa.select(
        _raw(chosen.c.lead_id),
        table.c.wrapped_key,
        table.c.key_version,
        table.c.language,
        _raw(table.c.created_at, "created_at"),
        _raw(table.c.last_activity_at, "last_activity_at"),
        *(
            [
                state.c.score,
                _raw(state.c.as_of, "as_of"),
                state.c.stage,
                _raw(state.c.stage_changed_at, "stage_changed_at"),
                state.c.fit_grade,
                state.c.fit_points,
                state.c.suspect,
                state.c.first_form,
                state.c.utm_source,
                state.c.utm_campaign,
            ]
            if scores
            else []
        ),
        table.c.email,
        *fields,
    ).join_from(
        chosen,
        table,
        sa.literal_column("leads.rowid") == chosen.c.lead_rowid
        if rowid
        else table.c.id == chosen.c.lead_id,
    )
    if scores:
        query = query.outerjoin(state, state.c.lead_id == chosen.c.lead_id)
    return query


# The scoring state's columns in a lead's row (``_leads_query``), after the lead's six.
SCORE_COLUMNS = 10


def decayer(half_life: float, now: dt.datetime) -> Callable[[float, Any], float]:
    """A function giving a stored score (and its ``as_of`` as the driver returns it)
    decayed to ``now`` and rounded, as the console shows it."""
    from scoring.scores import decay, score_at

    # SQLite's stored text is UTC: its age is taken from naive datetimes (the same
    # seconds as ``score_at`` with aware ones, without a ``replace`` per lead).
    naive_now = now.astimezone(dt.UTC).replace(tzinfo=None)
    fromisoformat = _fromisoformat

    def decayed(score: float, as_of: Any) -> float:
        if type(as_of) is str:
            return round(
                decay(score, (naive_now - fromisoformat(as_of)).total_seconds(), half_life), 1
            )
        return round(score_at(score, _utc(as_of), now, half_life), 1)

    return decayed


def _score_maker(
    half_life: float, now: dt.datetime, text_dates: bool
) -> Callable[[Sequence[Any]], Record]:
    """A function turning a lead row's scoring columns (``_leads_query``) into the
    record's ``scores``: the score decayed to ``now``, as the console shows it."""
    decayed = decayer(half_life, now)

    def scores(values: Sequence[Any]) -> Record:
        score, as_of, stage, changed, grade, points, suspect, form, source, campaign = values
        if score is None:  # no scoring state (the score column is NOT NULL)
            return _NO_SCORES
        return {
            "score": decayed(score, as_of),
            "stage": stage,
            "stage_changed_at": changed if text_dates else _utc(changed),
            "fit_grade": grade,
            "fit_points": round(points, 1),
            "suspect": bool(suspect),
            "first_form": form,
            "utm_source": source,
            "utm_campaign": campaign,
        }

    return scores


# Where each of the scoring state's columns is in a lead's row (``_leads_query``).
SCORE_AT = {
    name: 6 + number
    for number, name in enumerate(
        (
            "score",
            "as_of",
            "stage",
            "stage_changed_at",
            "fit_grade",
            "fit_points",
            "suspect",
            "first_form",
            "utm_source",
            "utm_campaign",
        )
    )
}


class ConsentState(NamedTuple):
    status: str  # a ConsentStatus value
    date: dt.datetime | str | None  # str: the driver's text (see ``Context.text_dates``)
    version: int | None


def _consents_query(
    chosen: sa.Subquery, purposes: Sequence[str], *, sqlite: bool = False
) -> sa.Select[Any]:
    from consent.models import Consent, ConsentStatus

    table = Consent.__table__
    purpose = table.c.purpose
    if sqlite:
        # ``+purpose``: SQLite then seeks the (lead, purpose) index once per lead and
        # reads the lead's few consents, filtering them here, instead of one seek per
        # purpose of the list (4.3 -> 2.8 us a lead, 200 000 leads, four purposes).
        purpose = UnaryExpression(purpose, operator=operators.custom_op("+"), type_=sa.String())
    # The date that goes with the state: only that one is read and converted.
    date = sa.case(
        (table.c.status == ConsentStatus.GRANTED, table.c.granted_at),
        (table.c.status == ConsentStatus.WITHDRAWN, table.c.withdrawn_at),
        (table.c.status == ConsentStatus.PENDING, table.c.requested_at),
    )
    return (
        sa.select(
            _raw(chosen.c.lead_id),
            table.c.purpose,
            _raw(table.c.status, "status"),
            table.c.text_id,
            _raw(date, "date"),
        )
        .join_from(chosen, table, table.c.lead_id == chosen.c.lead_id)
        .where(purpose.in_(list(purposes)))
    )


def consent_states(
    rows: Sequence[Any], versions: dict[int, int], text_dates: bool
) -> dict[Any, dict[str, ConsentState]]:
    out: dict[Any, dict[str, ConsentState]] = {}
    get_version = versions.get
    for key, purpose, status, text_id, raw_date in rows:
        states = out.get(key)
        if states is None:
            states = out[key] = {}
        states[purpose] = ConsentState(
            status,
            raw_date if text_dates else _utc(raw_date),
            get_version(text_id) if text_id is not None else None,
        )
    return out


def _text_versions(session: Session) -> dict[int, int]:
    from consent.models import ConsentText

    return dict(session.execute(sa.select(ConsentText.id, ConsentText.version)).all())


def _submissions_query(chosen: sa.Subquery) -> tuple[sa.Select[Any], tuple[Any, ...]]:
    from capture.models import Submission

    table = Submission.__table__
    query = sa.select(_raw(chosen.c.lead_id), table.c.id, table.c.data).join_from(
        chosen, table, table.c.lead_id == chosen.c.lead_id
    )
    # Latest first within a lead: the earliest is read last and wins (``_first``).
    return query, (table.c.created_at.desc(), table.c.id.desc())


def _first(rows: Sequence[Any]) -> dict[Any, tuple[Any, bytes]]:
    return {key: (submission_id, data) for key, submission_id, data in rows}


class _Side:
    """One table's rows for the chosen leads, in the export's order, taken chunk by chunk.

    Every query of an export reads the same leads in the same order (see
    ``_in_order``), so a chunk's rows of this table are the next ones whose lead is
    in the chunk: one streaming query per table for the whole export instead of one
    lookup per lead and chunk.
    """

    def __init__(self, rows: Iterator[Any]) -> None:
        self._rows = rows
        self._next = next(rows, None)

    def take(self, keys: set[Any] | dict[Any, Any]) -> list[Any]:
        taken: list[Any] = []
        row = self._next
        rows = self._rows
        while row is not None and row[0] in keys:
            taken.append(row)
            row = next(rows, None)
        self._next = row
        return taken


_NO_SCORES: Record = {}
_NO_CONSENTS: dict[str, ConsentState] = {}


@dataclasses.dataclass
class Chunk:
    """A chunk's rows of every table the columns need, as the driver returned them
    (plain tuples on SQLite: cheap to hand to another process, see ``export.parallel``)."""

    leads: list[Any]  # with the scoring state's columns (``_leads_query``)
    consents: list[Any]
    submissions: list[Any]


@dataclasses.dataclass(frozen=True)
class Context:
    """What turning a chunk's rows into records needs besides the data keys."""

    plan: Plan
    half_life: float
    now: dt.datetime
    versions: dict[int, int]
    # Timestamps stay as the driver's value (SQLite: text) for a writer that only
    # prints them (``stamp_text``): parsing and formatting them again was a tenth of
    # a CSV export. Records for other writers hold aware datetimes.
    text_dates: bool = False


def records(chunk: Chunk, context: Context, vault: Vault) -> list[Record]:
    """The records of one chunk, in its order: each lead's data key is unwrapped once
    and opens all its fields in one call."""
    plan = context.plan
    text_dates = context.text_dates
    names = plan.attributes
    email = plan.email
    sealed_names = tuple(
        name.encode() for name in (("email",) if email else ()) + tuple(f"attr/{n}" for n in names)
    )
    opened_names = ("email", *names) if email else names
    decrypts = plan.decrypts
    scores = _score_maker(context.half_life, context.now, text_dates) if plan.scores else None
    consents = consent_states(chunk.consents, context.versions, text_dates)
    submissions = _first(chunk.submissions)
    get_consents = consents.get
    open_fields = vault.open_fields
    # The sealed values of a lead's row (see ``_leads_query``): after the lead's six
    # columns and the scoring state's, the address if it is exported, and the profile
    # fields.
    first_sealed = 6 + (SCORE_COLUMNS if scores is not None else 0)
    sealed_from = first_sealed if email else first_sealed + 1
    records: list[Record] = []
    append = records.append
    for lead in chunk.leads:
        key, wrapped, version, language, created_at, last_activity_at = lead[:6]
        owner = owner_text(key)
        record: Record = {
            "id": owner,
            "language": language,
            "created_at": created_at if text_dates else _utc(created_at),
            "last_activity_at": last_activity_at if text_dates else _utc(last_activity_at),
            "scores": scores(lead[6:first_sealed]) if scores is not None else _NO_SCORES,
            "consents": get_consents(key, _NO_CONSENTS),
        }
        if plan.submission:
            data_key = vault.unwrap_stored(wrapped, version, owner)
            opened = data_key.decrypt_many(
                [
                    (name.decode(), value)
                    for name, value in zip(sealed_names, lead[sealed_from:], strict=True)
                ]
            )
            submission = submissions.get(key)
            record["source"] = (
                data_key.decrypt_json(f"submission/{submission[0]}", submission[1])
                if submission is not None
                else {}
            )
            record.update(zip(opened_names, opened, strict=True))
        elif decrypts:
            opened = open_fields(wrapped, version, owner, sealed_names, lead[sealed_from:])
            record.update(zip(opened_names, opened, strict=True))
        append(record)
    return records


def count(session: Session, selection: sa.Select[Any]) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(selection.subquery())) or 0


def _stream(session: Session, query: sa.Select[Any], chunk_size: int) -> Iterator[Any]:
    """The query's rows, streamed, in the session's transaction. On SQLite the driver's
    own tuples straight from its cursor: SQLAlchemy's result rows cost more per row
    than SQLite reading them, and every column is read raw anyway (``_raw``)."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        result = connection.execute(query)
        cursor = result.cursor
        try:
            while batch := cursor.fetchmany(chunk_size):
                yield from batch
        finally:
            result.close()
    else:
        with connection.execute(query.execution_options(yield_per=chunk_size)) as result:
            yield from result


def read(
    session: Session,
    selection: sa.Select[Any],
    columns: Sequence[Column],
    *,
    require: str | None = None,
    chunk_size: int = CHUNK,
    text_dates: bool = False,
) -> tuple[Context, Iterator[Chunk]]:
    """The rows of the selected leads (only those granting ``require``, if given),
    chunk by chunk, and what :func:`records` needs to turn them into records.

    The selection's rows keep their order by creation time and id (what
    ``export.service.selection`` orders by); a limit, if any, is kept, but makes
    SQLite materialise the selection once per table read (slow for large ones).
    """
    plan = Plan.of(columns, require=require)
    context = Context(
        plan=plan,
        half_life=_half_life(session) if plan.scores else 0.0,
        now=clock.now(),
        versions=_text_versions(session) if plan.purposes else {},
        text_dates=text_dates,
    )
    return context, _chunks(session, selection, plan, require, chunk_size)


def _chunks(
    session: Session, selection: sa.Select[Any], plan: Plan, require: str | None, chunk_size: int
) -> Iterator[Chunk]:
    sqlite = session.connection().dialect.name == "sqlite"
    chosen = _chosen(selection, rowid=sqlite)

    def side(query: sa.Select[Any], *after: Any) -> _Side:
        return _Side(
            _stream(session, _in_order(chosen, query, *after, require=require), chunk_size)
        )

    leads = _stream(
        session,
        _in_order(
            chosen,
            _leads_query(chosen, plan.attributes, plan.scores, rowid=sqlite),
            require=require,
        ),
        chunk_size,
    )
    consents = (
        side(_consents_query(chosen, plan.purposes, sqlite=sqlite)) if plan.purposes else None
    )
    submissions = None
    if plan.submission:
        query, after = _submissions_query(chosen)
        submissions = side(query, *after)
    while lead_rows := list(itertools.islice(leads, chunk_size)):
        keys = {row[0] for row in lead_rows}
        yield Chunk(
            leads=lead_rows,
            consents=consents.take(keys) if consents else [],
            submissions=submissions.take(keys) if submissions else [],
        )


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
