"""CSV rows straight from the driver's rows of a chunk, without records in between.

``export.rows.records`` builds a dict per lead (and one for its scoring state)
that a CSV row then reads cell by cell: a fifth of the export worker's time
per lead. For a CSV of plain columns (no preset, no submission data) the row
function generated for the column list (``export.csv_rows._row_maker``) reads
the lead's row itself instead (:class:`TupleReading`): its fields opened in
one call, the scoring state's columns where ``export.queries.leads_query`` put
them, the consent states of the chunk by lead. The cells are the same
expressions as for a record, so the file is the same byte for byte
(tests/test_exports.py compares both ways).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

from export import csv_rows, queries, rows, writers
from export.columns import Column, Source
from export.fields import Field
from leadvault.crypto import Vault


def applies(fields: Sequence[Field], context: rows.Context) -> bool:
    """Whether a chunk of this export can go straight to CSV rows: every field one of
    ``export.columns``' (no preset's own), no submission data, timestamps printed as
    stored (``Context.text_dates``)."""
    plan = context.plan
    return (
        context.text_dates
        and not plan.submission
        and all(f.column is not None and f.column.source != Source.SUBMISSION for f in fields)
    )


class TupleReading(csv_rows.Reading):
    """A lead's row of ``export.queries.leads_query`` as the row function's argument
    (``lead``), with the chunk's consent states by lead key (``states``)."""

    arg = "lead, states"

    def __init__(self, context: rows.Context, vault: Vault) -> None:
        super().__init__()
        plan = context.plan
        scores = plan.scores
        self.prelude = ["key = lead[0]", "owner = OWNER(key)"]
        self.names = {"OWNER": rows.owner_text, "NO_CONSENTS": {}}
        self._opened: dict[str, str] = {}
        if plan.decrypts:
            # As in ``export.rows.records``: the sealed values after the lead's six
            # columns and the scoring state's; the address only if it is exported.
            first_sealed = 6 + (queries.SCORE_COLUMNS if scores else 0)
            names = (("email",) if plan.email else ()) + tuple(f"attr/{n}" for n in plan.attributes)
            self.names.update(
                OPEN=vault.open_fields,
                SEALED=tuple(name.encode() for name in names),
            )
            start = first_sealed if plan.email else first_sealed + 1
            self.prelude.append(f"opened = OPEN(lead[1], lead[2], owner, SEALED, lead[{start}:])")
            opened_names = ("email", *plan.attributes) if plan.email else plan.attributes
            self._opened = {name: f"opened[{n}]" for n, name in enumerate(opened_names)}
        if scores:
            self.names["DECAYED"] = rows.decayer(context.half_life, context.now)
        self._score = queries.SCORE_AT["score"]

    def value(self, column: Column) -> str | None:
        source, field = column.source, column.field
        if source == Source.CONSENT:
            return None  # the states of ``consents()``
        if source == Source.LEAD:
            if field == "id":
                return "owner"
            return f"lead[{('language', 'created_at', 'last_activity_at').index(field) + 3}]"
        if source in {Source.EMAIL, Source.ATTRIBUTE}:
            return self._opened["email" if source == Source.EMAIL else field]
        if source == Source.SCORE:
            at, score = queries.SCORE_AT[field], self._score
            # No scoring state: every score column empty, as ``records`` leaves them
            # (the score column is NOT NULL, so a state has one).
            if field == "score":
                return (
                    f"(None if lead[{score}] is None else DECAYED(lead[{score}], lead[{at + 1}]))"
                )
            if field == "fit_points":
                return f"(None if lead[{score}] is None else round(lead[{at}], 1))"
            if field == "suspect":
                return f"(None if lead[{score}] is None else bool(lead[{at}]))"
            return f"(None if lead[{score}] is None else lead[{at}])"
        raise ValueError(f"column {column.key!r} is not read from the lead's row")

    def consents(self) -> str:
        return "states(key, NO_CONSENTS)"


def csv_encoder(
    fields: Sequence[Field], context: rows.Context, vault: Vault, *, dialect: str
) -> Callable[[rows.Chunk], tuple[int, bytes]]:
    """A function writing one chunk as CSV lines (encoded), with its row count: what
    ``writers.csv_encoder(fields)(rows.records(chunk, ...))`` writes."""
    row = csv_rows._row_maker(fields, dialect == "excel-de", TupleReading(context, vault))
    write_rows = writers.csv_lines(dialect, len(fields))
    versions, text_dates = context.versions, context.text_dates

    def encode(chunk: rows.Chunk) -> tuple[int, bytes]:
        states = rows.consent_states(chunk.consents, versions, text_dates).get
        return len(chunk.leads), write_rows(map(row, chunk.leads, itertools.repeat(states)))

    return encode
