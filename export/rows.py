"""Reading a lead selection in chunks, decrypting only what the columns need.

The selection is any SQLAlchemy ``Select`` of lead ids (the admin API's
filters build one), ordered by creation time and id. The leads are read by one
query (``export.queries``) joined to the selection in that order, each row
carrying the lead's sealed profile fields; every other table the columns need
(consents, submissions) by one query in the same order, the queries advancing
together chunk by chunk (``export.queries.Side``), so a chunk's rows of every
table arrive without a lookup per lead. Rows are streamed (SQLite: the
driver's own tuples), and each chunk (``Chunk``) is turned into plain records
(``records``: data keys unwrapped for that chunk only) before the next is read,
so memory stays flat however many leads are exported; ``export.parallel`` does
that part in a worker process (``export.direct`` writes a CSV of plain columns
straight from the rows). Core rows, not ORM objects: nothing piles up in the
session's identity map. All queries run in the caller's one transaction: one
snapshot.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from export import queries
from export.columns import Column, Source
from leadvault import clock
from leadvault.crypto import Vault

# Leads per chunk. With a worker process, up to 2 x AHEAD chunks are in flight (being
# read, pickled, waiting, worked on), and the objects a chunk needs at once decide how
# many pages of the heap the worker shares with the reader either of them writes to
# (copied then): 500 instead of 1000 took the export's memory growth with its worker
# from ~36 to ~27 MB (200 000 leads), at about the same CPU time.
CHUNK = 500
Record = dict[str, Any]


def _utc(raw: Any) -> dt.datetime | None:
    """A timestamp read raw (see ``export.queries.raw``) as an aware UTC datetime: SQLite returns
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
    """A function turning a lead row's scoring columns (``export.queries.leads_query``) into the
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


class ConsentState(NamedTuple):
    status: str  # a ConsentStatus value
    date: dt.datetime | str | None  # str: the driver's text (see ``Context.text_dates``)
    version: int | None


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


def _first(rows: Sequence[Any]) -> dict[Any, tuple[Any, bytes]]:
    return {key: (submission_id, data) for key, submission_id, data in rows}


_NO_SCORES: Record = {}
_NO_CONSENTS: dict[str, ConsentState] = {}


@dataclasses.dataclass
class Chunk:
    """A chunk's rows of every table the columns need, as the driver returned them
    (plain tuples on SQLite: cheap to hand to another process, see ``export.parallel``)."""

    leads: list[Any]  # with the scoring state's columns (``export.queries.leads_query``)
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
    # The sealed values of a lead's row (see ``export.queries.leads_query``): after the lead's six
    # columns and the scoring state's, the address if it is exported, and the profile
    # fields.
    first_sealed = 6 + (queries.SCORE_COLUMNS if scores is not None else 0)
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
        half_life=queries.half_life(session) if plan.scores else 0.0,
        now=clock.now(),
        versions=queries.text_versions(session) if plan.purposes else {},
        text_dates=text_dates,
    )
    return context, _chunks(session, selection, plan, require, chunk_size)


def _chunks(
    session: Session, selection: sa.Select[Any], plan: Plan, require: str | None, chunk_size: int
) -> Iterator[Chunk]:
    sqlite = session.connection().dialect.name == "sqlite"
    chosen = queries.chosen_ids(selection, rowid=sqlite)

    def side(query: sa.Select[Any], *after: Any) -> queries.Side:
        return queries.Side(
            queries.stream(
                session, queries.in_order(chosen, query, *after, require=require), chunk_size
            )
        )

    leads = queries.stream(
        session,
        queries.in_order(
            chosen,
            queries.leads_query(chosen, plan.attributes, plan.scores, rowid=sqlite),
            require=require,
        ),
        chunk_size,
    )
    consents = (
        side(queries.consents_query(chosen, plan.purposes, sqlite=sqlite))
        if plan.purposes
        else None
    )
    submissions = None
    if plan.submission:
        query, after = queries.submissions_query(chosen)
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
