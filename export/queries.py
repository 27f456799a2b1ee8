"""The queries of an export: the chosen leads' rows of each table, in one order.

Every query of an export reads the selection's leads in the same order
(creation time, id: ``in_order``), so the tables' rows can be taken chunk by
chunk in step (``Side``) from one streaming query each (``stream``). The leads
query carries each lead's sealed profile fields (scalar subqueries) and its
scoring state (an outer join): one row per lead. Columns are read raw (``raw``:
as the driver returns them); ``export.rows`` turns the rows into records.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression

from leadvault.models import Lead, LeadAttribute


def raw(column: Any, label: str = "key") -> Any:
    """A column as the driver returns it (SQLite: ids as hex text, enums as text),
    labelled: turning every id of every table into a ``uuid.UUID`` and every status
    into an enum costs more than decrypting."""
    return sa.type_coerce(column, sa.String()).label(label)


def half_life(session: Session) -> float:
    from scoring import rules

    return rules.active(session).half_life_seconds


def chosen_ids(selection: sa.Select[Any], *, rowid: bool = False) -> sa.Subquery:
    """The selection as a subquery of ids (``key``) with their creation times: the
    export's order, shared by every query of an export (see ``Side``)."""
    [column] = selection.selected_columns
    # ``rowid``: SQLite's row number of the lead too (in the creation-time index with
    # the id): the leads query finds each row by it, not by a search of the id index
    # (a random page of it per lead, one read each, as the ids are random).
    return selection.with_only_columns(
        column.label("lead_id"),
        Lead.__table__.c.created_at.label("lead_created"),
        *([sa.literal_column("leads.rowid").label("lead_rowid")] if rowid else []),
    ).subquery("chosen")


def in_order(
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


def leads_query(
    chosen: sa.Subquery, names: Sequence[str], scores: bool, *, rowid: bool = False
) -> sa.Select[Any]:
    """The leads' rows, each with its sealed profile fields ``names`` (None where
    missing) as columns of its own: one row per lead (an index lookup each) instead of
    a row per field to gather in Python (see ``Side``). With ``scores``, the lead's
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
        raw(chosen.c.lead_id),
        table.c.wrapped_key,
        table.c.key_version,
        table.c.language,
        raw(table.c.created_at, "created_at"),
        raw(table.c.last_activity_at, "last_activity_at"),
        *(
            [
                state.c.score,
                raw(state.c.as_of, "as_of"),
                state.c.stage,
                raw(state.c.stage_changed_at, "stage_changed_at"),
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


# The scoring state's columns in a lead's row (``leads_query``), after the lead's six.
SCORE_COLUMNS = 10


# Where each of the scoring state's columns is in a lead's row (``leads_query``).
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


def consents_query(
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
            raw(chosen.c.lead_id),
            table.c.purpose,
            raw(table.c.status, "status"),
            table.c.text_id,
            raw(date, "date"),
        )
        .join_from(chosen, table, table.c.lead_id == chosen.c.lead_id)
        .where(purpose.in_(list(purposes)))
    )


def text_versions(session: Session) -> dict[int, int]:
    from consent.models import ConsentText

    return dict(session.execute(sa.select(ConsentText.id, ConsentText.version)).all())


def submissions_query(chosen: sa.Subquery) -> tuple[sa.Select[Any], tuple[Any, ...]]:
    from capture.models import Submission

    table = Submission.__table__
    query = sa.select(raw(chosen.c.lead_id), table.c.id, table.c.data).join_from(
        chosen, table, table.c.lead_id == chosen.c.lead_id
    )
    # Latest first within a lead: the earliest is read last and wins (``_first``).
    return query, (table.c.created_at.desc(), table.c.id.desc())


class Side:
    """One table's rows for the chosen leads, in the export's order, taken chunk by chunk.

    Every query of an export reads the same leads in the same order (see
    ``in_order``), so a chunk's rows of this table are the next ones whose lead is
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


def count(session: Session, selection: sa.Select[Any]) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(selection.subquery())) or 0


def stream(session: Session, query: sa.Select[Any], chunk_size: int) -> Iterator[Any]:
    """The query's rows, streamed, in the session's transaction. On SQLite the driver's
    own tuples straight from its cursor: SQLAlchemy's result rows cost more per row
    than SQLite reading them, and every column is read raw anyway (``raw``)."""
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
